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


VM = (
    "/subscriptions/00000000-0000-0000-0000-00000000aaaa/resourceGroups/rg-src"
    "/providers/Microsoft.Compute/virtualMachines/web"
)


def test_vm_ids_compare_without_case() -> None:
    from hooks.providers import GuestGeneralizationProvider, VmGeneralizationProvider

    olds = {"vm_id": VM, "os_type": "Linux", "generalize": True, "deallocate": True}
    news = {**olds, "vm_id": VM.upper().replace("/SUBSCRIPTIONS/", "/subscriptions/") + "/"}
    assert not VmGeneralizationProvider().diff("id", olds, news).changes
    assert not GuestGeneralizationProvider().diff("id", olds, news).changes


def test_generalize_or_deallocate_changes_are_updates_of_the_arm_half() -> None:
    from hooks.providers import VmGeneralizationProvider

    olds = {"vm_id": VM, "generalize": False, "deallocate": True}
    diff = VmGeneralizationProvider().diff("id", olds, {**olds, "generalize": True})
    assert diff.changes and not diff.replaces
    diff = VmGeneralizationProvider().diff("id", olds, {**olds, "deallocate": False})
    assert diff.changes and not diff.replaces
    assert not VmGeneralizationProvider().diff("id", olds, dict(olds)).changes
