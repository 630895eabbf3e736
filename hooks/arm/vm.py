"""A VM's power state in ARM: read its instance view, wait while it stops, deallocate it, mark it generalized, and
verify it is ready to be captured. Plain functions, each bounded, each safe to repeat.

Deallocate and generalize are POSTs. azure-core never sends a POST again when its answer is lost (a reset, or no
answer in time), since ARM may have acted on it; these two are safe to send again once the VM shows that ARM did
not, so they read the VM first, and send again (at most `POST_SENDS` times in all) only then."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, replace

from azure.core.credentials import TokenCredential
from azure.core.exceptions import HttpResponseError, ServiceResponseError
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.compute.models import VirtualMachineInstanceView

from hooks.arm.budget import (
    CUT_BY_THE_BOUND,
    BoundedPolling,
    Budget,
    OperationBound,
    WaitEnded,
    bound_text,
    is_reset,
    no_answer,
    raise_if_wait_ended,
)
from hooks.arm.errors import Call, arm_errors, azure_error_detail
from hooks.arm.session import compute_client
from hooks.errors import ArmError, WaitTimeout
from hooks.log import Log
from hooks.targets import ArmSettings, VmRef
from hooks.waiting import Deadline, poll

# Permissions named in ArmAccessDenied messages, so the user knows exactly which action to grant.
PERMISSION_VM_INSTANCE_VIEW = "Microsoft.Compute/virtualMachines/instanceView/read"
PERMISSION_VM_DEALLOCATE = "Microsoft.Compute/virtualMachines/deallocate/action"
PERMISSION_VM_GENERALIZE = "Microsoft.Compute/virtualMachines/generalize/action"

_TRANSITIONAL_POWER_STATES = frozenset({"stopping", "deallocating"})

POST_SENDS = 3
"""Times in all a deallocate or generalize whose answer was lost is sent, each time again only after reading the
VM showed that ARM did not act on it."""

NEXT_RUN_DEALLOCATES = (
    "The next run reads the VM's state first: it waits for a deallocation still under way instead of starting "
    "another, and skips one that finished."
)
_DEALLOCATION_ACCEPTED = (
    f"ARM had accepted the deallocation (202), so it may still be running in Azure. {NEXT_RUN_DEALLOCATES}"
)


def _lost(exc: ServiceResponseError, budget: Budget, sends: int) -> None:
    """A POST that got no answer (reset, or none in time): ARM may or may not have acted on it. Raises it (to be
    translated) once it was sent `POST_SENDS` times or the bound is used up; else says the VM is read first."""
    if sends >= POST_SENDS or budget.remaining <= CUT_BY_THE_BOUND:
        budget.repeated = sends - 1
        raise exc
    if budget.log is not None:
        budget.log.info(
            f"ARM at {budget.settings.endpoint} {no_answer(exc, budget.settings)} to the request to {budget.what}; "
            "reading the VM's state before sending it again (ARM may have acted on it)"
        )


@dataclass(frozen=True)
class VmStatus:
    """A VM's instance view, reduced to what the pipeline decides on. Built from status codes, never their order."""

    power_state: str | None
    """running | starting | stopping | stopped | deallocating | deallocated, or None when Azure reports none."""
    generalized: bool
    """True when the instance view carries OSState/generalized (set by the generalize call)."""
    provisioning_state: str | None
    """e.g. succeeded, updating, failed (the second segment of ProvisioningState/...)."""
    codes: tuple[str, ...]
    """All status codes as Azure sent them."""

    @classmethod
    def from_instance_view(cls, view: VirtualMachineInstanceView | None) -> VmStatus:
        codes = tuple(s.code for s in (view.statuses if view and view.statuses else []) if s.code)
        return cls(
            power_state=_status_value(codes, "PowerState"),
            generalized=any(c.lower() == "osstate/generalized" for c in codes),
            provisioning_state=_status_value(codes, "ProvisioningState"),
            codes=codes,
        )

    def __str__(self) -> str:
        return ", ".join(self.codes) if self.codes else "no statuses"

    def after_deallocation(self) -> VmStatus:
        """This status once a deallocate operation has Succeeded (Azure's PowerState/deallocated), without reading
        the instance view again: the ARM half verifies with one read at its end."""
        codes = tuple(c for c in self.codes if not c.lower().startswith("powerstate/"))
        return replace(self, power_state="deallocated", codes=(*codes, "PowerState/deallocated"))


def _status_value(codes: tuple[str, ...], kind: str) -> str | None:
    prefix = kind.lower() + "/"
    for code in codes:
        if code.lower().startswith(prefix):
            return code[len(prefix) :].split("/", 1)[0].lower()
    return None


def _read_status(
    client: ComputeManagementClient,
    vm: VmRef,
    settings: ArmSettings,
    log: Log | None,
    within: Deadline | None = None,
    *,
    polling: bool = False,
) -> VmStatus:
    """The VM's status; `within`: the longer wait the read is part of, which bounds it too. `polling`: the read is
    one of the wait's polls, which raises WaitEnded when the end of the wait cut it short (the wait then reports
    its own timeout); any other read so cut is ARM not answering within the bound."""
    call = Call(settings, "read the instance view of", str(vm), PERMISSION_VM_INSTANCE_VIEW, vm)
    budget = Budget(settings, f"read the instance view of {vm}", log, within)
    with arm_errors(call, budget):
        try:
            view = client.virtual_machines.instance_view(vm.resource_group, vm.name, **budget.options())
        except ServiceResponseError as exc:
            if polling:
                raise_if_wait_ended(exc, budget)
            raise
        return VmStatus.from_instance_view(view)


def _settled_probe(
    client: ComputeManagementClient, vm: VmRef, settings: ArmSettings, log: Log, deadline: Deadline, seen: VmStatus
) -> Callable[[], tuple[bool, VmStatus]]:
    """A `poll` probe that is done once the VM is no longer stopping or deallocating; each read bounded by what
    is left of the wait. A read that the end of the wait cut short leaves the last status seen (`seen`, at first)
    for the wait's timeout to report, rather than ARM's silence."""
    last = [seen]

    def probe() -> tuple[bool, VmStatus]:
        try:
            status = _read_status(client, vm, settings, log, deadline, polling=True)
        except WaitEnded:
            return False, last[0]
        last[0] = status
        return status.power_state not in _TRANSITIONAL_POWER_STATES, status

    return probe


def get_status(settings: ArmSettings, vm: VmRef, log: Log, credential: TokenCredential | None = None) -> VmStatus:
    """Read the VM's instance view (read-only)."""
    with compute_client(settings, vm.subscription_id, credential) as client:
        status = _read_status(client, vm, settings, log)
    log.info(f"{vm}: {status}")
    return status


def _wait_settled(
    client: ComputeManagementClient, settings: ArmSettings, vm: VmRef, log: Log, deadline: Deadline, seen: VmStatus
) -> VmStatus:
    """Wait (within `deadline`) until the VM, last `seen` stopping or deallocating, has stopped."""
    probe = _settled_probe(client, vm, settings, log, deadline, seen)
    try:
        return poll(probe, deadline, settings.poll_interval, describe=str)
    except WaitTimeout as exc:
        raise WaitTimeout(
            f"{exc}. Check the VM in the Azure portal, then run again (or raise {settings.bound_source})."
        ) from exc


def wait_until_stopped(
    settings: ArmSettings,
    vm: VmRef,
    log: Log,
    credential: TokenCredential | None = None,
    *,
    current: VmStatus | None = None,
) -> VmStatus:
    """If the VM is stopping or deallocating, wait (bounded) until it is stopped or deallocated.

    Any other state is returned as is: the caller decides what a running VM means. `current`: the status the
    caller just read (saves reading it again)."""
    deadline = Deadline(settings.operation_timeout, f"{vm} to finish stopping (PowerState stopped or deallocated)")
    with compute_client(settings, vm.subscription_id, credential) as client:
        first = current if current is not None else _read_status(client, vm, settings, log, deadline)
        if first.power_state not in _TRANSITIONAL_POWER_STATES:
            return first
        log.info(f"{vm} is {first.power_state}; waiting for it to stop")
        status = _wait_settled(client, settings, vm, log, deadline, first)
    log.info(f"{vm} is {status.power_state}")
    return status


def deallocate(
    settings: ArmSettings,
    vm: VmRef,
    log: Log,
    credential: TokenCredential | None = None,
    *,
    current: VmStatus | None = None,
) -> VmStatus:
    """Deallocate the VM and wait (bounded) for the long-running operation to succeed; returns the new status.

    A VM that is already deallocated is left alone, so the step is safe to repeat. `current`: the status the
    caller just read (saves reading it again); the status returned is that one, deallocated (not read again)."""
    what = f"Azure to deallocate {vm} (the deallocate operation to reach Succeeded)"
    deadline = Deadline(settings.operation_timeout, what)
    call = Call(settings, "deallocate", str(vm), PERMISSION_VM_DEALLOCATE, vm)
    with compute_client(settings, vm.subscription_id, credential) as client:
        status = current if current is not None else _read_status(client, vm, settings, log, deadline)
        sends = 0
        while True:
            if status.power_state in _TRANSITIONAL_POWER_STATES:
                # A stop or deallocation (an earlier run's, or ours whose answer was lost) is going: let it finish.
                log.info(f"{vm} is {status.power_state}; waiting for that to finish first")
                status = _wait_settled(client, settings, vm, log, deadline, status)
            if status.power_state == "deallocated":
                went = "deallocated: the request ARM did not answer went through" if sends else "already deallocated"
                log.info(f"{vm} is {went}")
                return status
            log.info(f"deallocating {vm} (currently {status.power_state or 'unknown'})")
            budget = Budget(settings, f"deallocate {vm}", log, deadline)
            options = budget.options()
            # ARMPolling's own `timeout` is its poll interval; the retry policy bounds each poll by the budget.
            poll_options = {k: v for k, v in options.items() if k != "timeout"}
            polling = BoundedPolling(budget, path_format_arguments={"endpoint": settings.endpoint}, **poll_options)
            sends += 1
            with arm_errors(call, budget):
                try:
                    poller = client.virtual_machines.begin_deallocate(
                        vm.resource_group, vm.name, polling=polling, **options
                    )
                    break
                except ServiceResponseError as exc:
                    _lost(exc, budget, sends)
            status = _read_status(client, vm, settings, log, deadline)
        # From here on ARM has accepted the operation: whatever fails, it may still be running in Azure.
        with arm_errors(call.after_acceptance(_DEALLOCATION_ACCEPTED), budget):
            try:
                # The poller's thread ends by itself at the bound (BoundedPolling); the timeout is a safety net.
                poller.result(timeout=deadline.remaining + settings.request_timeout + 1.0)
            except OperationBound as exc:
                raise _still_deallocating(deadline, exc.status, settings, exc.next_poll) from None
            except ServiceResponseError as exc:
                if is_reset(exc) or budget.remaining > CUT_BY_THE_BOUND or budget.unanswered:
                    raise
                # ARM answered every poll, and the bound passed while the last one was on its way (each request's
                # read timeout is capped by what is left of the bound, so a slow answer is cut off there): the
                # bound ended the wait, not a silent ARM.
                raise _still_deallocating(deadline, poller.status(), settings) from None
            except HttpResponseError as exc:
                if exc.status_code is not None and exc.status_code < 400:
                    # The operation document itself said Failed/Canceled: quote Azure's reason.
                    code, message = azure_error_detail(exc)
                    raise ArmError(
                        f"Azure could not deallocate {vm}: the operation ended {poller.status()} with {code}: "
                        f"{message}. Check the VM's activity log in the Azure portal, fix the cause and run again "
                        "(deallocate is safe to repeat)."
                    ) from exc
                raise
        if not poller.done():
            raise _still_deallocating(deadline, poller.status(), settings)
    status = status.after_deallocation()
    log.info(f"{vm} deallocated (the operation Succeeded)")
    return status


def _still_deallocating(
    deadline: Deadline, status: str, settings: ArmSettings, next_poll: float | None = None
) -> WaitTimeout:
    """The deallocation's bound ended the wait while Azure still reported the operation `status`: it passed, or
    ARM set the next poll (`next_poll` seconds away) beyond it."""
    if next_poll is None:
        head = deadline.timeout(f"operation status {status}")
    else:
        head = WaitTimeout(
            f"stopped waiting for {deadline.what} after {deadline.elapsed:.0f}s: the operation is still {status}, "
            f"and ARM set its next poll {next_poll:g}s away (Retry-After: the interval ARM asks between polls of "
            f"this operation), beyond the {deadline.remaining:.0f}s left of the {bound_text(settings)}"
        )
    return WaitTimeout(
        f"{head}. The VM may still be deallocating in Azure: check it in the Azure portal and run again "
        f"(deallocate is safe to repeat), or raise {settings.bound_source}. {NEXT_RUN_DEALLOCATES}"
    )


def generalize(
    settings: ArmSettings,
    vm: VmRef,
    log: Log,
    credential: TokenCredential | None = None,
    *,
    current: VmStatus | None = None,
) -> None:
    """Mark the VM generalized in ARM (synchronous). Irreversible: the VM can never be started again.

    Azure refuses (409 OperationNotAllowed) unless the VM is stopped; deallocate first. `current`: the status
    the caller read last, so that a refusal is explained by the state it fits."""
    call = Call(settings, "generalize", str(vm), PERMISSION_VM_GENERALIZE, vm)
    deadline = Deadline(settings.operation_timeout, f"Azure to mark {vm} generalized")
    log.info(f"marking {vm} as generalized")
    with compute_client(settings, vm.subscription_id, credential) as client:
        refused = None
        for sends in range(1, POST_SENDS + 1):
            budget = Budget(settings, f"generalize {vm}", log, deadline)
            with arm_errors(call, budget):
                try:
                    client.virtual_machines.generalize(vm.resource_group, vm.name, **budget.options())
                    break
                except HttpResponseError as exc:
                    if exc.status_code != 409:
                        raise
                    refused = exc
                    break
                except ServiceResponseError as exc:
                    _lost(exc, budget, sends)
            current = _read_status(client, vm, settings, log, deadline)
            if current.generalized:
                log.info(f"Azure reports {vm} generalized: the request ARM did not answer went through")
                return
        if refused is not None:
            code, message = azure_error_detail(refused)
            if current is None:
                # Read the state now (best effort), so the advice fits it.
                with contextlib.suppress(ArmError):
                    current = _read_status(client, vm, settings, log, deadline)
            raise ArmError(
                f"Azure refused to generalize {vm} (409 {code}): {message}. {_generalize_advice(current)}"
            ) from refused
    log.info(f"{vm} is marked generalized")


def _generalize_advice(status: VmStatus | None) -> str:
    """What to do after a refused generalize, for the state the VM was seen in."""
    if status is None:
        return "Check the VM's state in the Azure portal and run again."
    if status.power_state in ("running", "starting"):
        return (
            f"The VM is {status.power_state}: it can only be marked generalized when it is not running. "
            "Deallocate it (after sysprep / waagent deprovision finished in the guest), then run again."
        )
    if status.power_state in _TRANSITIONAL_POWER_STATES:
        return f"The VM is still {status.power_state}: wait until it has stopped, then run again."
    return (
        f"The VM was seen {status.power_state or 'in no power state'} ({status}), which allows it: another "
        "operation may be running on it. Check its activity log in the Azure portal and run again (the step is "
        "safe to repeat)."
    )


def verify_generalized(
    settings: ArmSettings, vm: VmRef, log: Log, credential: TokenCredential | None = None
) -> VmStatus:
    """Check that the VM is ready to be captured: PowerState/deallocated and OSState/generalized."""
    status = get_status(settings, vm, log, credential)
    problems = []
    if status.power_state != "deallocated":
        problems.append(f"PowerState is {status.power_state or 'missing'} (needs deallocated: run deallocate)")
    if not status.generalized:
        problems.append(
            "OSState/generalized is missing (run generalize, after the guest was sysprepped or deprovisioned)"
        )
    if problems:
        raise ArmError(f"{vm} is not ready to be captured: {'; '.join(problems)}. Statuses: {status}.")
    return status
