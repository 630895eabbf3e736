"""Pulumi dynamic providers for the two halves of the generalization chain.

The providers hold no state (the pickled blob is a reference to this module: ~100 bytes, no secret, no client);
Azure clients and SSH/WinRM sessions are built inside each method. One provider instance serves every resource
of its class from the host's 4 worker threads, so nothing here is shared mutable state.

Props are snake_case plain values (the components build them from the specs). Secrets travel in the single
`credentials` input, which the components mark secret; it is never copied into outputs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pulumi
from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    CreateResult,
    DiffResult,
    ReadResult,
    ResourceProvider,
    UpdateResult,
)
from pulumi.output import Unknown
from pulumi.runtime import rpc

from hooks import pipeline
from hooks.errors import ImageGalleryError
from hooks.log import Log
from hooks.targets import ArmSettings, SshTarget, SysprepOptions, VmRef, WinRmTarget

GUEST_OUTPUTS = ("vm_id", "os_type", "action", "method", "detail", "started_at", "finished_at")
VM_OUTPUTS = ("vm_id", "actions", "power_state", "generalized", "finished_at")


class StepFailed(Exception):
    """Raised to the dynamic provider host: the message is the whole explanation, written for the user."""


def _user_facing(resource: str, fn: Callable[[], Any]) -> Any:
    """Run `fn`; turn expected failures into one clear message (the host adds only a short traceback)."""
    try:
        return fn()
    except ImageGalleryError as exc:
        message = f"[{resource}] {exc}"
        pulumi.log.error(message)
        raise StepFailed(message) from None


def arm_settings(props: Mapping[str, Any]) -> ArmSettings:
    a = props["arm"]
    return ArmSettings(
        endpoint=a["endpoint"],
        audience=a.get("audience"),
        poll_interval=float(a["poll_interval"]),
        operation_timeout=float(a["operation_timeout"]),
        request_timeout=float(a.get("request_timeout", 60.0)),
    )


def _ssh_target(props: Mapping[str, Any], creds: Mapping[str, Any]) -> SshTarget:
    s = props["ssh"]
    return SshTarget(
        host=s["host"],
        port=int(s["port"]),
        username=s["username"],
        private_key=creds.get("private_key"),
        passphrase=creds.get("passphrase"),
        password=creds.get("password"),
        host_key=s.get("host_key"),
        insecure_ignore_host_key=bool(s.get("insecure_ignore_host_key", False)),
        connect_timeout=float(s["connect_timeout"]),
        command_timeout=float(s["command_timeout"]),
    )


def _winrm_target(props: Mapping[str, Any], creds: Mapping[str, Any]) -> tuple[WinRmTarget, SysprepOptions]:
    w = props["winrm"]
    target = WinRmTarget(
        host=w["host"],
        port=int(w["port"]),
        username=w["username"],
        password=str(creds.get("password") or ""),
        scheme=w["scheme"],
        transport=w["transport"],
        ca_bundle=w.get("ca_certificate"),
        cert_sha256=w.get("certificate_sha256"),
        insecure_skip_cert_validation=bool(w.get("insecure_skip_certificate_validation", False)),
        connect_timeout=float(w["connect_timeout"]),
    )
    s = w["sysprep"]
    options = SysprepOptions(
        mode=s["mode"],
        extra_args=tuple(s.get("extra_args") or ()),
        skip_checks=frozenset(s.get("skip_checks") or ()),
        agent_timeout=float(s["agent_timeout"]),
        sysprep_timeout=float(s["timeout"]),
        poll_interval=float(s["poll_interval"]),
    )
    return target, options


def _secrets(creds: Mapping[str, Any] | None) -> list[str]:
    return [str(v) for v in (creds or {}).values() if v]


def _known(value: Any) -> bool:
    """False for values Pulumi does not know yet (preview of a new stack)."""
    if value is None:
        return True
    if isinstance(value, Unknown):
        return False
    if isinstance(value, str):
        return value != rpc.UNKNOWN
    if isinstance(value, Mapping):
        return all(_known(v) for v in value.values())
    if isinstance(value, list | tuple):
        return all(_known(v) for v in value)
    return True


class GuestGeneralizationProvider(ResourceProvider):
    """Runs the guest half: waagent over SSH (Linux) or sysprep over WinRM (Windows)."""

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        failures: list[CheckFailure] = []
        vm_id = news.get("vm_id")
        if isinstance(vm_id, str) and _known(vm_id):
            try:
                VmRef.parse(vm_id)
            except ValueError as exc:
                failures.append(CheckFailure("vm_id", str(exc)))
        if news.get("os_type") not in ("Linux", "Windows"):
            failures.append(CheckFailure("os_type", "must be Linux or Windows"))
        elif news["os_type"] == "Linux" and not news.get("ssh"):
            failures.append(CheckFailure("ssh", "a Linux guest step needs SSH connection details"))
        elif news["os_type"] == "Windows" and not news.get("winrm"):
            failures.append(CheckFailure("winrm", "a Windows guest step needs WinRM connection details"))
        return CheckResult(news, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        # Only a different source VM (or OS) makes this a different job; connection details and timeouts are
        # how to do the job, and the job is done.
        replaces = [k for k in ("vm_id", "os_type") if olds.get(k) != news.get(k)]
        return DiffResult(changes=bool(replaces), replaces=replaces, delete_before_replace=False)

    def create(self, props: dict[str, Any]) -> CreateResult:
        name = str(props.get("resource_name") or "guest")
        creds = props.get("credentials") or {}
        log = Log(name, secrets=_secrets(creds))
        vm = VmRef.parse(props["vm_id"])
        os_type = props["os_type"]
        ssh = _ssh_target(props, creds) if os_type == "Linux" else None
        winrm, sysprep = _winrm_target(props, creds) if os_type == "Windows" else (None, SysprepOptions())
        request = pipeline.GuestRequest(vm, os_type, arm_settings(props), ssh, winrm, sysprep)
        outcome: pipeline.GuestOutcome = _user_facing(name, lambda: pipeline.generalize_guest(request, log))
        outs = {
            "vm_id": vm.id,
            "os_type": os_type,
            "action": outcome.action,
            "method": outcome.method,
            "detail": log.redact(outcome.detail),
            "started_at": outcome.started_at,
            "finished_at": outcome.finished_at,
        }
        return CreateResult(id_=f"{vm.id}/guestGeneralization", outs=outs)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        # Nothing to redo: keep what was recorded when the job ran.
        return UpdateResult(outs={k: olds.get(k) for k in GUEST_OUTPUTS})

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        # The source VM is normally deleted after capture; the record of what was done stays valid, so a refresh
        # must neither fail nor drop the resource.
        return ReadResult(id_=id_, outs={k: props.get(k) for k in GUEST_OUTPUTS})

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        name = str(props.get("resource_name") or "guest")
        Log(name).info(f"removed from the stack; the VM {props.get('vm_id')} was left untouched")


class VmGeneralizationProvider(ResourceProvider):
    """Runs the ARM half: wait until stopped, deallocate, generalize, verify."""

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        failures: list[CheckFailure] = []
        vm_id = news.get("vm_id")
        if isinstance(vm_id, str) and _known(vm_id):
            try:
                VmRef.parse(vm_id)
            except ValueError as exc:
                failures.append(CheckFailure("vm_id", str(exc)))
        return CheckResult(news, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replaces = [k for k in ("vm_id",) if olds.get(k) != news.get(k)]
        return DiffResult(changes=bool(replaces), replaces=replaces, delete_before_replace=False)

    def create(self, props: dict[str, Any]) -> CreateResult:
        name = str(props.get("resource_name") or "vm")
        log = Log(name)
        vm = VmRef.parse(props["vm_id"])
        request = pipeline.VmRequest(
            vm, arm_settings(props), generalize=bool(props["generalize"]), deallocate=bool(props["deallocate"])
        )
        outcome: pipeline.VmOutcome = _user_facing(name, lambda: pipeline.generalize_vm(request, log))
        outs = {
            "vm_id": vm.id,
            "actions": list(outcome.actions),
            "power_state": outcome.power_state,
            "generalized": outcome.generalized,
            "finished_at": outcome.finished_at,
        }
        return CreateResult(id_=f"{vm.id}/vmGeneralization", outs=outs)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs={k: olds.get(k) for k in VM_OUTPUTS})

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        return ReadResult(id_=id_, outs={k: props.get(k) for k in VM_OUTPUTS})

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        name = str(props.get("resource_name") or "vm")
        Log(name).info(f"removed from the stack; the VM {props.get('vm_id')} was left untouched")


class GuestGeneralization(pulumi.dynamic.Resource, module="generalization", name="GuestGeneralization"):
    """Generalizes the source VM from inside the guest (waagent or sysprep). Shown separately in Pulumi."""

    vm_id: pulumi.Output[str]
    action: pulumi.Output[str]
    finished_at: pulumi.Output[str]

    def __init__(self, name: str, props: Mapping[str, Any], opts: pulumi.ResourceOptions | None = None) -> None:
        inputs: dict[str, Any] = {k: None for k in GUEST_OUTPUTS}
        inputs.update(props)
        inputs["resource_name"] = name
        super().__init__(GuestGeneralizationProvider(), name, inputs, opts)


class VmGeneralization(pulumi.dynamic.Resource, module="generalization", name="VmGeneralization"):
    """Deallocates the source VM and marks it generalized through ARM, then verifies. Shown separately."""

    vm_id: pulumi.Output[str]
    generalized: pulumi.Output[bool]
    finished_at: pulumi.Output[str]

    def __init__(self, name: str, props: Mapping[str, Any], opts: pulumi.ResourceOptions | None = None) -> None:
        inputs: dict[str, Any] = {k: None for k in VM_OUTPUTS}
        inputs.update(props)
        inputs["resource_name"] = name
        super().__init__(VmGeneralizationProvider(), name, inputs, opts)
