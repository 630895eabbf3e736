"""A Linux guest's pending step: Azure's word first (a VM it reports generalized, or not running, is left to the
step), then the guest's (killed_deprovision.py, read-only); and, when the deprovision went through, the VM marked
generalized as the step's ARM half would have, so that `pulumi up` skips the guest."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from azure.core.credentials import TokenCredential

from commands.recover import killed_deprovision
from commands.recover.decisions import Action, Decision
from hooks import arm, pipeline
from hooks.errors import WaitTimeout
from hooks.log import Log
from hooks.targets import ArmSettings, SshTarget, VmRef


@dataclass(frozen=True)
class LinuxGuestStep:
    """Decides the pending step of a Linux guest after looking at its VM and guest, and marks a deprovisioned
    guest's VM generalized."""

    settings: ArmSettings
    credential: TokenCredential
    stack: str
    deprovisioned: Collection[str]
    """Guest steps (by resource name) whose guest the user says was deprovisioned: not looked at."""
    credentials_of: Callable[[str], Mapping[str, Any] | None]
    """URN → the decrypted `credentials` input of its pending step (held in memory only, never written)."""
    say: Callable[[str], None]

    def decide(self, urn: str, resource: Mapping[str, Any]) -> Decision:
        """What becomes of the pending step of a Linux guest."""
        inputs = resource.get("inputs") or {}
        name = urn.rsplit("::", 1)[-1]
        vm_id = str(inputs.get("vm_id") or "")
        try:
            vm = VmRef.parse(vm_id)
        except ValueError as exc:
            return Decision(urn, Action.REFUSE, f"the pending guest step has no VM ID in its inputs ({exc})", resource)
        status = arm.get_status(self.settings, vm, self._log(name), credential=self.credential)
        if status.generalized:
            reason = "Azure reports the VM generalized: `pulumi up` skips the guest"
            return Decision(urn, Action.CLEAR, reason, resource)
        if status.power_state not in pipeline.RUNNABLE_POWER_STATES:
            reason = (
                f"the VM is {status.power_state} and not generalized: `pulumi up` runs the step, which says what to do"
            )
            return Decision(urn, Action.CLEAR, reason, resource)
        if name in self.deprovisioned:
            reason = f"deprovisioned, as --deprovisioned {name} says; `pulumi up` then skips the guest"
            return Decision(urn, Action.GENERALIZE, reason, resource, vm_id=vm.id)
        return self._look_at_guest(urn, name, vm, resource)

    def _look_at_guest(self, urn: str, name: str, vm: VmRef, resource: Mapping[str, Any]) -> Decision:
        ssh = (resource.get("inputs") or {}).get("ssh")
        try:
            target = SshTarget.from_props(ssh if isinstance(ssh, Mapping) else {}, self.credentials_of(urn))
        except (ValueError, TypeError) as exc:
            return Decision(urn, Action.REFUSE, f"the pending guest step has no usable SSH settings ({exc})", resource)
        try:
            found = killed_deprovision.find_out(target, self.say, interval=max(self.settings.poll_interval, 0.5))
        except killed_deprovision.LoginRefused as exc:
            return Decision(
                urn,
                Action.REFUSE,
                f"{exc}. If it was deprovisioned, say so: `make recover STACK={self.stack} DEPROVISIONED={name}` "
                f"marks {vm} generalized and goes on; otherwise fix the credentials in the stack file and run again",
                resource,
            )
        except (killed_deprovision.CannotTell, WaitTimeout) as exc:
            return Decision(
                urn,
                Action.REFUSE,
                f"cannot tell whether the killed run deprovisioned {vm}: {exc}. Make the guest reachable over SSH "
                "(or let its deprovision end) and run again",
                resource,
            )
        if found.deprovisioned:
            reason = f"{found.detail}; `pulumi up` then skips the guest, and nothing is deprovisioned twice"
            return Decision(urn, Action.GENERALIZE, reason, resource, vm_id=vm.id)
        return Decision(urn, Action.CLEAR, f"{found.detail}: `pulumi up` deprovisions it, once", resource)

    def mark_generalized(self, decision: Decision) -> None:
        """Mark the VM generalized as the step's ARM half does (hooks/pipeline.py: wait until stopped,
        deallocate, generalize, verify; each skipped when done), so `pulumi up` skips the guest."""
        assert decision.vm_id is not None
        self.say(f"{decision.name}: marking {decision.vm_id} generalized (its guest was deprovisioned)")
        pipeline.generalize_vm(pipeline.VmRequest(VmRef.parse(decision.vm_id), self.settings), self._log(decision.name))

    def _log(self, name: str) -> Log:
        return Log(name, sink=lambda line: self.say(f"    {line}"))
