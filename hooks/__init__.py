"""The imperative side of image-gallery: ARM operations, SSH and WinRM transports, guest scripts, and, in
`providers/`, the Pulumi dynamic providers that run them. Everything outside `providers/` is usable and testable
without Pulumi, and imports none of it (tests/unit/test_pulumi_imports.py)."""
