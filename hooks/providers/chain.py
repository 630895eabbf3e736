"""The dynamic resources of the generalization chain: the guest half (`GuestGeneralization`) and the ARM half
(`VmGeneralization`), each run by its provider (hooks/pipeline.py does the work).

Props are snake_case plain values. The guest's settings are hooks.targets' own types on both sides: the components
put `SshTarget` / `WinRmTarget` / `SysprepOptions.to_props()` in the inputs `ssh` / `winrm` / `winrm.sysprep`, and
the guest half rebuilds them with `from_props`. Secrets travel in the single `credentials` input (the targets'
`credentials()`), which the components mark secret; it is never copied into outputs.

The "capture" input (what the VM is captured into) drives the capture-time checks of hooks/preflight/: in
`check` (preview and up; GET only, skipped for what is not known yet) and again in `create` before anything
irreversible. The guest step carries it for Generalized definitions, the ARM half for Specialized ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pulumi
from pulumi.dynamic import CheckFailure, CheckResult, CreateResult, DiffResult, ReadResult, UpdateResult

from hooks.log import Log
from hooks.login import LoginSettings
from hooks.providers.base import (
    DynamicProvider,
    DynamicResource,
    arm_settings,
    known,
    log_for,
    log_urn,
    same_input,
    user_facing,
)
from hooks.providers.engine_log import sink_for
from hooks.safety_snapshots import SnapshotPlan
from hooks.targets import ArmSettings, SshTarget, SysprepOptions, VmRef, WinRmTarget

if TYPE_CHECKING:
    from hooks import preflight
    from hooks.arm import VmStatus

GUEST_OUTPUTS = (
    "vm_id",
    "os_type",
    "action",
    "method",
    "detail",
    "started_at",
    "finished_at",
    "resource_name",
    "safety_snapshots",
    "safety_snapshot_retention_days",
    "arm",
)
"""`safety_snapshots` (their IDs, disks and keep-until dates), their retention and `arm` (how to reach ARM) are
kept so that the chain's delete can delete the snapshots whose retention is over (hooks.arm.snapshots)."""
VM_OUTPUTS = (
    "vm_id",
    "actions",
    "power_state",
    "generalized",
    "finished_at",
    "generalize",
    "deallocate",
    "resource_name",
)
# Inputs whose change makes a different job (a replacement); anything else changes only how the job is done.
GUEST_REPLACE_KEYS = ("vm_id", "os_type")
VM_REPLACE_KEYS = ("vm_id",)
VM_RERUN_KEYS = ("generalize", "deallocate")
"""Inputs of the ARM half whose change re-runs it as an update (the definition's osState, sourceVms.<key>.deallocate):
the same VM, more (or less) to do."""


def _recorded_flag(olds: Mapping[str, Any], key: str) -> bool | None:
    """The `generalize`/`deallocate` the ARM half last ran with. Outputs of older versions of this provider lack
    them: they are inferred from what the run did (generalized: it generalized; deallocated: it deallocated)."""
    value = olds.get(key)
    if isinstance(value, bool):
        return value
    if key == "generalize" and isinstance(olds.get("generalized"), bool):
        return bool(olds["generalized"])
    if key == "deallocate" and isinstance(olds.get("power_state"), str):
        return bool(olds["power_state"] == "deallocated")
    return None


def _secrets(creds: Mapping[str, Any] | None) -> list[str]:
    return [str(v) for v in (creds or {}).values() if v]


def _capture_target(props: Mapping[str, Any]) -> preflight.CaptureTarget | None:
    """The parsed "capture" input, or None when there is none. A gallery ID not known yet becomes None."""
    from hooks import preflight

    capture = props.get("capture")
    if not isinstance(capture, Mapping):
        return None
    gallery_id = capture.get("gallery_id")
    return preflight.CaptureTarget.from_props({**capture, "gallery_id": gallery_id if known(gallery_id) else None})


def _capture_check(
    vm: VmRef, olds: Mapping[str, Any], news: Mapping[str, Any], replace_keys: tuple[str, ...], login: LoginSettings
) -> list[CheckFailure]:
    """The capture-time checks of `vm` (the parsed `vm_id`) as CheckFailures, each reason starting with the config
    key to change.

    Nothing is read when the VM is not known yet (preview of a new stack: `check` does not call this), nor when the
    resource already exists for the same VM: then `create` will not run again (only these keys replace it), and the
    source VM may well have been deleted after its capture."""
    if news.get("read_in_check") is False:
        return []  # the update, not a preview: `create` runs these checks before it changes anything
    if not isinstance(news.get("capture"), Mapping):
        return []
    if olds and all(same_input(k, olds.get(k), news.get(k)) for k in replace_keys):
        return []
    capture = {k: v for k, v in news["capture"].items() if k != "gallery_id"}
    if not (known(capture) and known(news.get("arm"))):
        return []
    try:
        target = _capture_target(news)
    except ValueError as exc:
        return [CheckFailure("capture", str(exc))]
    assert target is not None
    from hooks import preflight

    log = log_for(news, "capture")
    problems = preflight.run_checks(arm_settings(news, login), vm, target, log)
    return [CheckFailure(p.input, str(p)) for p in problems]


class _ChainStepProvider(DynamicProvider):
    """What both halves share: input checks, replace-only diff, a read/update that keep the record of what was
    done, and a delete that leaves the VM alone. Subclasses set the names and implement `create`."""

    outputs: tuple[str, ...] = ()
    replace_keys: tuple[str, ...] = ()
    default_name = "step"

    def _check_inputs(self, news: dict[str, Any]) -> list[CheckFailure]:
        """Checks specific to the half, on known inputs, before the capture-time checks."""
        return []

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        failures: list[CheckFailure] = []
        vm: VmRef | None = None  # not known yet in the preview of a new stack: nothing to read then
        vm_id = news.get("vm_id")
        if isinstance(vm_id, str) and known(vm_id):
            try:
                vm = VmRef.parse(vm_id)
            except ValueError as exc:
                failures.append(CheckFailure("vm_id", str(exc)))
        failures.extend(self._check_inputs(news))
        if vm is not None and not failures:
            failures.extend(_capture_check(vm, olds, news, self.replace_keys, self.login_settings()))
        return CheckResult(news, failures)

    def _reruns(self, olds: Mapping[str, Any], news: Mapping[str, Any]) -> list[str]:
        """Inputs whose change means the job must run again as an update (none for the guest half)."""
        return []

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        # Only a different source VM makes this a different job; connection details and timeouts are how to do
        # the job, and the job is done. ARM IDs differing only in case are the same VM.
        replaces = [k for k in self.replace_keys if not same_input(k, olds.get(k), news.get(k))]
        reruns = [] if replaces else self._reruns(olds, news)
        return DiffResult(changes=bool(replaces or reruns), replaces=replaces, delete_before_replace=False)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        # Nothing to redo: keep what was recorded when the job ran (under the resource's current name).
        outs = {k: olds.get(k) for k in self.outputs}
        outs["resource_name"] = news.get("resource_name") or olds.get("resource_name")
        return UpdateResult(outs=outs)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        # The source VM is normally deleted after capture; the record of what was done stays valid, so a refresh
        # must neither fail nor drop the resource.
        return ReadResult(id_=id_, outs={k: props.get(k) for k in self.outputs})

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        # `props` are the outputs: they record the resource's name (older states lack it: then the VM's name).
        name = props.get("resource_name")
        if not isinstance(name, str) or not name:
            vm_id = str(props.get("vm_id") or "")
            name = f"{vm_id.rstrip('/').rsplit('/', 1)[-1] or 'source VM'} ({self.default_name} step)"
        Log(name, sink=sink_for(log_urn(props))).info(
            f"removed from the stack; the VM {props.get('vm_id')} was left untouched"
        )


class GuestGeneralizationProvider(_ChainStepProvider):
    """Runs the guest half: waagent over SSH (Linux) or sysprep over WinRM (Windows)."""

    outputs = GUEST_OUTPUTS
    replace_keys = GUEST_REPLACE_KEYS
    default_name = "guest"

    def _check_inputs(self, news: dict[str, Any]) -> list[CheckFailure]:
        os_type = news.get("os_type")
        if os_type not in ("Linux", "Windows"):
            return [CheckFailure("os_type", "must be Linux or Windows")]
        if os_type == "Linux" and not news.get("ssh"):
            return [CheckFailure("ssh", "a Linux guest step needs SSH connection details")]
        if os_type == "Windows" and not news.get("winrm"):
            return [CheckFailure("winrm", "a Windows guest step needs WinRM connection details")]
        return []

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        result = super().check(olds, news)
        # The preview says what the create will snapshot before the guest step; nothing when the job is done
        # (the same VM) or when this is the update itself, not its preview.
        vm_id = news.get("vm_id")
        done = bool(olds) and all(same_input(k, olds.get(k), news.get(k)) for k in self.replace_keys)
        if not result.failures and not done and news.get("read_in_check") is not False and known(vm_id):
            from hooks.steps import safety_snapshot_plan

            plan = news.get("safety_snapshot")
            log_for(news, self.default_name).info(f"safety snapshot: {safety_snapshot_plan(vm_id, plan)}")
        return result

    def create(self, props: dict[str, Any]) -> CreateResult:
        from hooks import pipeline

        name = str(props.get("resource_name") or self.default_name)
        creds = props.get("credentials") or {}
        log = log_for(props, self.default_name, secrets=_secrets(creds))
        vm = VmRef.parse(props["vm_id"])
        os_type = props["os_type"]
        ssh = SshTarget.from_props(props["ssh"], creds) if os_type == "Linux" else None
        winrm = WinRmTarget.from_props(props["winrm"], creds) if os_type == "Windows" else None
        sysprep = SysprepOptions.from_props(props["winrm"]["sysprep"]) if os_type == "Windows" else SysprepOptions()
        settings = arm_settings(props, self.login_settings())
        target = _capture_target(props)
        checks = None
        if target is not None:

            def checks(log: Log) -> VmStatus:
                return _checked_status(settings, vm, target, log)

        plan = _snapshot_plan(props)
        request = pipeline.GuestRequest(
            vm, os_type, settings, ssh, winrm, sysprep, capture_checks=checks, safety_snapshot=plan
        )
        outcome: pipeline.GuestOutcome = user_facing(log, lambda: pipeline.generalize_guest(request, log))
        outs = {
            "vm_id": vm.id,
            "os_type": os_type,
            "action": outcome.action,
            "method": outcome.method,
            "detail": log.redact(outcome.detail),
            "started_at": outcome.started_at,
            "finished_at": outcome.finished_at,
            "resource_name": name,
            "safety_snapshots": [snap.to_props() for snap in outcome.snapshots],
            "safety_snapshot_retention_days": plan.retention_days if plan is not None else None,
            "arm": props["arm"],
        }
        return CreateResult(id_=f"{vm.id}/guestGeneralization", outs=outs)

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        # The safety snapshots go with the version's chain once their retention is over (0: at once); the ones
        # still kept are named with the command that deletes them.
        snapshots = [s for s in props.get("safety_snapshots") or [] if isinstance(s, Mapping)]
        if snapshots and isinstance(props.get("arm"), Mapping):
            _release_snapshots(props, snapshots, self.login_settings())
        super().delete(_id, props)


class VmGeneralizationProvider(_ChainStepProvider):
    """Runs the ARM half: wait until stopped, deallocate, generalize, verify.

    Only Specialized definitions pass "capture" here (they have no guest step to run the capture-time checks)."""

    outputs = VM_OUTPUTS
    replace_keys = VM_REPLACE_KEYS
    default_name = "vm"

    def _reruns(self, olds: Mapping[str, Any], news: Mapping[str, Any]) -> list[str]:
        return [k for k in VM_RERUN_KEYS if _recorded_flag(olds, k) != bool(news.get(k))]

    def _run(self, props: Mapping[str, Any]) -> dict[str, Any]:
        from hooks import pipeline

        name = str(props.get("resource_name") or self.default_name)
        log = log_for(props, self.default_name)
        vm = VmRef.parse(props["vm_id"])
        request = pipeline.VmRequest(
            vm,
            arm_settings(props, self.login_settings()),
            generalize=bool(props["generalize"]),
            deallocate=bool(props["deallocate"]),
        )
        target = _capture_target(props)

        def checks() -> VmStatus:
            if target is not None:
                return _checked_status(request.arm, vm, target, log)
            from hooks import arm

            return arm.get_status(request.arm, vm, log)

        def run() -> pipeline.VmOutcome:
            return pipeline.generalize_vm(request, log, before=checks)

        outcome: pipeline.VmOutcome = user_facing(log, run)
        return {
            "vm_id": vm.id,
            "actions": list(outcome.actions),
            "power_state": outcome.power_state,
            "generalized": outcome.generalized,
            "finished_at": outcome.finished_at,
            "generalize": request.generalize,
            "deallocate": request.deallocate,
            "resource_name": name,
        }

    def create(self, props: dict[str, Any]) -> CreateResult:
        outs = self._run(props)
        return CreateResult(id_=f"{outs['vm_id']}/vmGeneralization", outs=outs)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        # A change of `generalize` (the definition's osState) or `deallocate` is more (or less) to do on the same
        # VM: run the half again from the VM's real state (every step skips what is done).
        if self._reruns(olds, news):
            return UpdateResult(outs=self._run(news))
        return super().update(_id, olds, news)


def _snapshot_plan(props: Mapping[str, Any]) -> SnapshotPlan | None:
    """The `safety_snapshot` input; absent (older stacks, or safetySnapshot: false): None, no snapshot."""
    plan = props.get("safety_snapshot")
    return SnapshotPlan.from_props(plan) if isinstance(plan, Mapping) else None


def _release_snapshots(props: Mapping[str, Any], snapshots: list[Mapping[str, Any]], login: LoginSettings) -> None:
    """Delete the safety snapshots whose keep-until date has come (all of them with a retention of 0)."""
    from hooks.arm.snapshots import delete_safety_snapshots
    from hooks.safety_snapshots import SafetySnapshot

    log = Log(str(props.get("resource_name") or "guest"), sink=sink_for(log_urn(props)))
    today = datetime.now(UTC).date().isoformat()
    parsed = [SafetySnapshot.from_props(s) for s in snapshots]
    due = tuple(s for s in parsed if props.get("safety_snapshot_retention_days") == 0 or s.keep_until <= today)
    for kept in (s for s in parsed if s not in due):
        log.info(
            f"safety snapshot {kept.id} kept until {kept.keep_until} (safetySnapshotRetentionDays); delete it then "
            f"with `az snapshot delete --ids {kept.id}`"
        )
    if due:
        settings = arm_settings(props, login)
        for deleted in user_facing(log, lambda: delete_safety_snapshots(settings, due, log)):
            log.info(f"safety snapshot {deleted} deleted")


def _checked_status(settings: ArmSettings, vm: VmRef, target: preflight.CaptureTarget, log: Log) -> VmStatus:
    """The capture-time checks of the create path, and the VM's status from their read of it (read anew only
    when the checks could not read the VM and onArmUnreachable is warn)."""
    from hooks import arm, preflight

    status = preflight.require_match(settings, vm, target, log)
    return status if status is not None else arm.get_status(settings, vm, log)


class GuestGeneralization(DynamicResource, module="generalization", name="GuestGeneralization"):
    """Generalizes the source VM from inside the guest (waagent or sysprep). Shown separately in Pulumi."""

    PROVIDER = GuestGeneralizationProvider
    OUTPUTS = GUEST_OUTPUTS

    vm_id: pulumi.Output[str]
    action: pulumi.Output[str]
    finished_at: pulumi.Output[str]


class VmGeneralization(DynamicResource, module="generalization", name="VmGeneralization"):
    """Deallocates the source VM and marks it generalized through ARM, then verifies. Shown separately."""

    PROVIDER = VmGeneralizationProvider
    OUTPUTS = VM_OUTPUTS

    vm_id: pulumi.Output[str]
    generalized: pulumi.Output[bool]
    finished_at: pulumi.Output[str]
