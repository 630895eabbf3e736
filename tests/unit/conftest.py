"""Unit-test fixtures: the bad-stack corpus prints its result line in the summary."""

from __future__ import annotations

from typing import Any


def pytest_terminal_summary(terminalreporter: Any, config: Any) -> None:
    from tests.unit.config.test_corpus import CORPUS_RESULT

    line = config.stash.get(CORPUS_RESULT, None)
    if line:
        terminalreporter.write_line(f"bad stack corpus: {line}")
