"""Suite-wide settings.

CI must have every prerequisite, so under `IMAGE_GALLERY_NO_SKIPS=1` (set by .ci/run) a skipped test fails
instead: a missing prerequisite can never pass silently in CI."""

from __future__ import annotations

import os

import pytest

NO_SKIPS = os.environ.get("IMAGE_GALLERY_NO_SKIPS") == "1"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if NO_SKIPS and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, where every prerequisite must exist: {reason}"
