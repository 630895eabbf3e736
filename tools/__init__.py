"""Tools for the people working on the project, not tests: the benchmark (`make bench`), the demo (`make demo`),
mutation testing (`make mutation`), the benchmark's flat yardstick program, and the pinned Pulumi CLI build
(tools/engine, `make engine`). They may use the test fakes (tests.fakes)."""
