"""Provider plumbing that needs no host: how expected failures become the user's message."""

from __future__ import annotations

import pytest

from hooks.errors import GuestCommandFailed
from hooks.log import Log
from hooks.providers import StepFailed, _user_facing


def test_expected_failure_becomes_one_redacted_message() -> None:
    secret = "Pa55-w0rd-that-a-guest-echoed"
    lines: list[str] = []
    log = Log("win-1.0.0-guest", secrets=[secret], sink=lines.append)

    def step() -> None:
        raise GuestCommandFailed(f"guest script failed: net user imageadmin {secret}")

    with pytest.raises(StepFailed) as err:
        _user_facing(log, step)
    assert str(err.value) == "[win-1.0.0-guest] guest script failed: net user imageadmin [secret]"
    assert err.value.__cause__ is None and err.value.__suppress_context__, "no chained traceback"


def test_unexpected_errors_keep_their_traceback() -> None:
    def bug() -> None:
        raise KeyError("vm_id")

    with pytest.raises(KeyError):
        _user_facing(Log("x", sink=lambda _: None), bug)
