"""The generalization chain's decisions (hooks/pipeline.py), with ARM and the guests replaced by recorders.

What a user relies on: a guest is never contacted when Azure already reports the VM generalized, nor when the VM is
not running; a Linux VM is deprovisioned over SSH and a Windows VM sysprepped over WinRM, never the other way; the
ARM half skips what is already done and reports the state it left the VM in.
"""

from __future__ import annotations

from typing import Any

import pytest

from hooks import arm, linux, pipeline, windows
from hooks.arm import VmStatus
from hooks.errors import PreCheckFailed
from hooks.log import Log
from hooks.pipeline import GuestRequest, VmRequest
from hooks.targets import ArmSettings, GuestResult, SshTarget, VmRef, WinRmTarget

VM = VmRef("00000000-0000-0000-0000-00000000aaaa", "rg-src", "src-vm")
SETTINGS = ArmSettings()
SSH = SshTarget("10.0.0.4", "azureuser")
WINRM = WinRmTarget("10.0.0.5", "admin", "not-a-real-password")


def status(power: str | None, generalized: bool = False) -> VmStatus:
    codes = (*((f"PowerState/{power}",) if power else ()), *(("OSState/generalized",) if generalized else ()))
    return VmStatus(power, generalized, "succeeded", codes)


class Recorder:
    """Stands in for ARM and both guests; records what the chain asked for, in order."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, first: VmStatus) -> None:
        self.calls: list[str] = []
        self.status = first

        def get_status(settings: ArmSettings, vm: VmRef, log: Log, credential: Any = None) -> VmStatus:
            self.calls.append("get_status")
            return self.status

        def wait_until_stopped(settings: ArmSettings, vm: VmRef, log: Log, current: VmStatus) -> VmStatus:
            self.calls.append("wait_until_stopped")
            self.status = status("stopped", current.generalized)
            return self.status

        def deallocate(settings: ArmSettings, vm: VmRef, log: Log, current: VmStatus) -> VmStatus:
            self.calls.append("deallocate")
            self.status = current.after_deallocation()
            return self.status

        def generalize(settings: ArmSettings, vm: VmRef, log: Log, current: VmStatus) -> None:
            self.calls.append("generalize")
            self.status = status(self.status.power_state, True)

        def verify_generalized(settings: ArmSettings, vm: VmRef, log: Log) -> VmStatus:
            self.calls.append("verify_generalized")
            return self.status

        def deprovision(target: SshTarget, log: Log) -> GuestResult:
            self.calls.append(f"deprovision {target.host}")
            return GuestResult("waagent", "deprovisioned")

        def sysprep(target: WinRmTarget, options: Any, log: Log) -> GuestResult:
            self.calls.append(f"sysprep {target.host}")
            return GuestResult("sysprep", "sysprepped")

        for name, fn in (
            ("get_status", get_status),
            ("wait_until_stopped", wait_until_stopped),
            ("deallocate", deallocate),
            ("generalize", generalize),
            ("verify_generalized", verify_generalized),
        ):
            monkeypatch.setattr(arm, name, fn)
        monkeypatch.setattr(linux, "deprovision", deprovision)
        monkeypatch.setattr(windows, "sysprep", sysprep)


def guest(os_type: str, **kw: Any) -> GuestRequest:
    return GuestRequest(VM, os_type, SETTINGS, ssh=SSH, winrm=WINRM, **kw)


LOG = Log("test")


# --- the guest half ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("power", ["stopped", "deallocated", "stopping", "deallocating", None])
def test_the_guest_step_refuses_a_vm_that_is_not_running_and_never_contacts_it(
    monkeypatch: pytest.MonkeyPatch, power: str | None
) -> None:
    rec = Recorder(monkeypatch, status(power))
    with pytest.raises(PreCheckFailed) as caught:
        pipeline.generalize_guest(guest("Linux"), LOG)
    assert rec.calls == ["get_status"]
    assert str(VM) in str(caught.value)
    assert (power or "unknown power state") in str(caught.value)
    assert "az vm start" in str(caught.value) and "az vm generalize" in str(caught.value)


@pytest.mark.parametrize("power", ["running", "starting"])
def test_a_running_or_starting_linux_vm_is_deprovisioned_over_ssh(monkeypatch: pytest.MonkeyPatch, power: str) -> None:
    rec = Recorder(monkeypatch, status(power))
    outcome = pipeline.generalize_guest(guest("Linux"), LOG)
    assert rec.calls == ["get_status", f"deprovision {SSH.host}"]
    assert (outcome.action, outcome.method, outcome.detail) == ("deprovisioned", "waagent", "deprovisioned")
    assert outcome.started_at <= outcome.finished_at


def test_a_windows_vm_is_sysprepped_over_winrm(monkeypatch: pytest.MonkeyPatch) -> None:
    rec = Recorder(monkeypatch, status("running"))
    outcome = pipeline.generalize_guest(guest("Windows"), LOG)
    assert rec.calls == ["get_status", f"sysprep {WINRM.host}"]
    assert (outcome.action, outcome.method) == ("sysprepped", "sysprep")


@pytest.mark.parametrize("power", ["running", "deallocated", None])
def test_a_vm_azure_reports_generalized_is_skipped_without_contacting_the_guest(
    monkeypatch: pytest.MonkeyPatch, power: str | None
) -> None:
    rec = Recorder(monkeypatch, status(power, generalized=True))
    outcome = pipeline.generalize_guest(guest("Linux"), LOG)
    assert rec.calls == ["get_status"]
    assert (outcome.action, outcome.method) == ("skipped", "none")


def test_the_capture_checks_read_is_the_state_read(monkeypatch: pytest.MonkeyPatch) -> None:
    rec = Recorder(monkeypatch, status("running"))

    def checks(log: Log) -> VmStatus:
        rec.calls.append("capture_checks")
        return status("deallocated", generalized=True)

    outcome = pipeline.generalize_guest(guest("Windows", capture_checks=checks), LOG)
    assert rec.calls == ["capture_checks"]
    assert outcome.action == "skipped"


# --- the ARM half --------------------------------------------------------------------------------------------


def test_a_running_vm_is_deallocated_generalized_and_verified(monkeypatch: pytest.MonkeyPatch) -> None:
    rec = Recorder(monkeypatch, status("running"))
    outcome = pipeline.generalize_vm(VmRequest(VM, SETTINGS), LOG)
    assert rec.calls == ["get_status", "deallocate", "generalize", "verify_generalized"]
    assert outcome.actions == ("deallocated", "generalized")
    assert (outcome.power_state, outcome.generalized) == ("deallocated", True)


@pytest.mark.parametrize("power", ["stopping", "deallocating"])
def test_a_vm_shutting_down_is_waited_for_before_deallocation(monkeypatch: pytest.MonkeyPatch, power: str) -> None:
    rec = Recorder(monkeypatch, status(power))
    pipeline.generalize_vm(VmRequest(VM, SETTINGS), LOG)
    assert rec.calls[:3] == ["get_status", "wait_until_stopped", "deallocate"]


def test_a_re_run_after_the_arm_half_repeats_nothing_but_the_verification(monkeypatch: pytest.MonkeyPatch) -> None:
    rec = Recorder(monkeypatch, status("deallocated", generalized=True))
    outcome = pipeline.generalize_vm(VmRequest(VM, SETTINGS), LOG)
    assert rec.calls == ["get_status", "verify_generalized"]
    assert outcome.actions == ("already deallocated", "already generalized")
    assert (outcome.power_state, outcome.generalized) == ("deallocated", True)


def test_a_deallocated_vm_not_yet_generalized_is_only_generalized(monkeypatch: pytest.MonkeyPatch) -> None:
    rec = Recorder(monkeypatch, status("deallocated"))
    outcome = pipeline.generalize_vm(VmRequest(VM, SETTINGS), LOG)
    assert rec.calls == ["get_status", "generalize", "verify_generalized"]
    assert outcome.actions == ("already deallocated", "generalized")


def test_specialized_reports_the_power_state_after_deallocation(monkeypatch: pytest.MonkeyPatch) -> None:
    rec = Recorder(monkeypatch, status("running"))
    outcome = pipeline.generalize_vm(VmRequest(VM, SETTINGS, generalize=False), LOG)
    assert rec.calls == ["get_status", "deallocate"]
    assert outcome.actions == ("deallocated",)
    assert (outcome.power_state, outcome.generalized) == ("deallocated", False)


def test_specialized_without_deallocation_leaves_the_vm_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    rec = Recorder(monkeypatch, status("running"))
    outcome = pipeline.generalize_vm(VmRequest(VM, SETTINGS, generalize=False, deallocate=False), LOG)
    assert rec.calls == ["get_status"]
    assert (outcome.actions, outcome.power_state, outcome.generalized) == ((), "running", False)


def test_the_checks_read_replaces_the_state_read(monkeypatch: pytest.MonkeyPatch) -> None:
    rec = Recorder(monkeypatch, status("running"))
    outcome = pipeline.generalize_vm(
        VmRequest(VM, SETTINGS, generalize=False), LOG, before=lambda: status("deallocated")
    )
    assert rec.calls == []
    assert outcome.actions == ("already deallocated",)


def test_requests_default_to_generalizing_and_deallocating() -> None:
    req = VmRequest(VM, SETTINGS)
    assert (req.generalize, req.deallocate) == (True, True)
    assert pipeline.RUNNABLE_POWER_STATES == ("running", "starting")
