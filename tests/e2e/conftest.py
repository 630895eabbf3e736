"""Fixtures of the end-to-end tests: the pinned Pulumi CLI, built or reused; a test that cannot start the engine
fails, it never skips."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import EngineUnavailable, engine_bin


@pytest.fixture(scope="session")
def engine() -> Path:
    """The pinned CLI's bin directory. A CLI that cannot be built fails the tests: it never skips them."""
    try:
        return engine_bin()
    except EngineUnavailable as exc:
        pytest.fail(f"the Pulumi engine is unavailable: {exc}")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The e2e tests' own time, for the README's figures and to keep an eye on the 20-minute budget."""
    stats = terminalreporter.stats
    seconds = sum(
        getattr(r, "duration", 0.0)
        for outcome in ("passed", "failed", "error")
        for r in stats.get(outcome, [])
        if "tests/e2e/" in getattr(r, "nodeid", "")
    )
    if seconds:
        terminalreporter.write_line(f"e2e: the end-to-end tests took {seconds:.0f}s (setup, calls and teardown)")
