"""The generalization chain, read top to bottom in one place.

Two halves, each behind its own dynamic resource so Pulumi shows them separately:

- the guest half (GuestGeneralization): read the VM's state through ARM; if Azure already reports it generalized,
  stop here without contacting the guest; run the capture-time checks; then deprovision (Linux, waagent over SSH)
  or sysprep (Windows, over WinRM);
- the ARM half (VmGeneralization): wait until stopped, deallocate, generalize, verify.

Every step is re-entrant: it looks at the VM's real state first and skips what is already done, so a re-run after
a failure at any point finishes the job without repeating a finished step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from hooks import arm
from hooks.arm import VmStatus
from hooks.errors import ConfigError, ImageGalleryError, PreCheckFailed
from hooks.log import Log
from hooks.safety_snapshots import SafetySnapshot, SnapshotPlan, restore_advice
from hooks.targets import ArmSettings, GuestResult, SshTarget, SysprepOptions, VmRef, WinRmTarget

# The steps below, in words (what `make plan` prints and docs/ documents): hooks/steps.py, which the
# offline plan imports without the Azure SDK. Keep them in step with the functions below.

RUNNABLE_POWER_STATES = ("running", "starting")


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class GuestRequest:
    """Everything the guest half needs."""

    vm: VmRef
    os_type: str
    arm: ArmSettings
    ssh: SshTarget | None = None
    winrm: WinRmTarget | None = None
    sysprep: SysprepOptions = field(default_factory=SysprepOptions)
    capture_checks: Callable[[Log], VmStatus] | None = None
    """Capture-time checks to run before anything irreversible; raises CaptureMismatch. Returns the VM's status
    from the same read (the VM with its instance view), so the half reads the VM once."""
    safety_snapshot: SnapshotPlan | None = None
    """Snapshot the VM's disks before the guest step (sourceVms.<key>.safetySnapshot); None: no snapshot."""


@dataclass(frozen=True)
class GuestOutcome:
    """What the guest half did."""

    action: str
    """deprovisioned | sysprepped | skipped."""
    method: str
    detail: str
    started_at: str
    finished_at: str
    snapshots: tuple[SafetySnapshot, ...] = ()
    """The safety snapshots taken (or found, from an earlier run) before the guest step."""


def generalize_guest(req: GuestRequest, log: Log) -> GuestOutcome:
    """The guest half. Never contacts the guest of a VM that Azure already reports generalized."""
    started = now()
    # The process-wide ARM session logs in once. With capture-time checks, their read of the VM (with its
    # instance view) is the state read too: the VM is read once, not twice.
    status = req.capture_checks(log) if req.capture_checks is not None else arm.get_status(req.arm, req.vm, log)
    if status.generalized:
        log.info(f"Azure reports {req.vm} generalized already: the guest is not contacted")
        return GuestOutcome("skipped", "none", "VM already generalized in Azure; guest not contacted", started, now())
    if status.power_state not in RUNNABLE_POWER_STATES:
        raise PreCheckFailed(
            f"{req.vm} is {status.power_state or 'in an unknown power state'}, but the guest step needs it "
            "running. If nothing has generalized it yet, start it (`az vm start --ids <id>`) and run `pulumi up` "
            "again. If sysprep or waagent already ran on it, do NOT start it: mark it generalized with "
            "`az vm deallocate` + `az vm generalize` and run `pulumi up` again (the guest is then skipped)."
        )
    snapshots = _take_safety_snapshots(req, log)
    try:
        result = _run_in_guest(req, log)
    except ImageGalleryError as exc:
        advice = restore_advice(req.vm, snapshots)
        if not advice or isinstance(exc, ConfigError):
            raise
        # The guest may have been changed before it failed: the same failure (type and fields), naming the way back.
        exc.args = (f"{exc} {advice}",)
        raise
    action = "deprovisioned" if req.os_type == "Linux" else "sysprepped"
    return GuestOutcome(action, result.method, result.detail, started, now(), snapshots)


def _take_safety_snapshots(req: GuestRequest, log: Log) -> tuple[SafetySnapshot, ...]:
    """The last step before anything irreversible: an incremental snapshot of every disk of the VM (or the ones an
    earlier run took), unless safetySnapshot is false."""
    if req.safety_snapshot is None:
        log.info(f"no safety snapshot of {req.vm} (safetySnapshot: false)")
        return ()
    return arm.take_safety_snapshots(req.arm, req.vm, req.safety_snapshot, log)


def _run_in_guest(req: GuestRequest, log: Log) -> GuestResult:
    # Imported here so that Linux-only users never import pywinrm and vice versa.
    if req.os_type == "Linux":
        from hooks import linux

        assert req.ssh is not None, "Linux guest step without SSH target"
        return linux.deprovision(req.ssh, log)
    from hooks import windows

    assert req.winrm is not None, "Windows guest step without WinRM target"
    return windows.sysprep(req.winrm, req.sysprep, log)


@dataclass(frozen=True)
class VmRequest:
    """Everything the ARM half needs."""

    vm: VmRef
    arm: ArmSettings
    generalize: bool = True
    """False for Specialized definitions: the VM is captured as it is."""
    deallocate: bool = True


@dataclass(frozen=True)
class VmOutcome:
    """What the ARM half did and what it verified."""

    actions: tuple[str, ...]
    power_state: str | None
    generalized: bool
    finished_at: str


def generalize_vm(req: VmRequest, log: Log, before: Callable[[], VmStatus] | None = None) -> VmOutcome:
    """The ARM half: stop -> deallocate -> generalize -> verify, each step skipped if already done. `before` runs
    first (the capture-time checks of Specialized definitions) and returns the VM's status from its own read.

    Every step starts from the status read last, so a run that deallocates and generalizes makes seven requests
    (state, deallocate + its polls and final GET, generalize, verify) on one connection of the process-wide
    session."""
    actions: list[str] = []
    status = before() if before is not None else arm.get_status(req.arm, req.vm, log)
    if status.power_state in ("stopping", "deallocating"):
        log.info(f"{req.vm} is {status.power_state}; waiting until it has stopped")
        status = arm.wait_until_stopped(req.arm, req.vm, log, current=status)
    if req.deallocate or req.generalize:
        if status.power_state == "deallocated":
            actions.append("already deallocated")
        else:
            status = arm.deallocate(req.arm, req.vm, log, current=status)
            actions.append("deallocated")
    if req.generalize:
        if status.generalized:
            actions.append("already generalized")
        else:
            arm.generalize(req.arm, req.vm, log, current=status)
            actions.append("generalized")
        status = arm.verify_generalized(req.arm, req.vm, log)
        log.info(f"verified: {req.vm} is deallocated and generalized")
    # Specialized: the status after deallocation (its operation Succeeded) or as read; nothing else changed it.
    return VmOutcome(tuple(actions), status.power_state, status.generalized, now())
