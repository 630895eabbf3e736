"""What becomes of each pending operation a killed `pulumi up` left in the state (`decide`): imported as the
resource Azure has, cleared, cleared after marking its VM generalized, or recovery refused."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from commands.recover.azure import (
    AZURE_TYPES,
    PROVIDER_PREFIX,
    AzureType,
    differences,
    flatten,
    resource_id,
    subscription_in,
)
from commands.recover.errors import RecoverError

DYNAMIC_PREFIXES = ("pulumi-python:dynamic", "pulumi-nodejs:dynamic")
GUEST_TOKEN = "pulumi-python:dynamic/generalization:GuestGeneralization"
"""The guest half of a chain (hooks/providers/chain.py): the step that deprovisions a Linux guest."""


class Action(Enum):
    """What becomes of a pending operation: imported as the resource Azure has, cleared (after marking its VM
    generalized, for a Linux guest whose deprovision went through), or recovery refused."""

    IMPORT = "import"
    CLEAR = "clear"
    GENERALIZE = "generalize"
    REFUSE = "refuse"


@dataclass(frozen=True)
class Decision:
    """What becomes of one pending operation, and why."""

    urn: str
    action: Action
    reason: str
    resource: Mapping[str, Any] = field(repr=False)
    """The pending operation's resource, as exported."""
    arm_id: str | None = None
    found: Mapping[str, Any] | None = field(default=None, repr=False)
    """ARM's answer for an imported resource (its outputs until the refresh)."""
    kind: AzureType | None = None
    vm_id: str | None = None
    """GENERALIZE: the VM to mark generalized before the step is cleared."""

    @property
    def name(self) -> str:
        return self.urn.rsplit("::", 1)[-1]

    @property
    def type(self) -> str:
        return str(self.resource.get("type", ""))

    def line(self) -> str:
        verb = {
            Action.IMPORT: "import",
            Action.CLEAR: "clear",
            Action.GENERALIZE: "mark the VM generalized, then clear",
            Action.REFUSE: "REFUSED",
        }[self.action]
        return f"  {self.name} ({self.type}): {verb}: {self.reason}"


Reader = Callable[[AzureType, str, str], Mapping[str, Any] | None]
"""(type, ARM ID, subscription) → ARM's answer, or None when it is not there (404)."""
GuestLooker = Callable[[str, Mapping[str, Any]], Decision]
"""(URN, the pending guest step's resource) → what becomes of a Linux guest's step, after looking at the guest."""


def decide(
    operation: Mapping[str, Any],
    subscription_of: Callable[[Mapping[str, Any]], str | None],
    read: Reader,
    look_at_guest: GuestLooker | None = None,
) -> Decision:
    """What to do with one pending operation of the exported state; `look_at_guest` decides for a Linux guest's
    step (without it, the step is cleared like every other)."""
    resource = operation.get("resource") or {}
    urn, rtype = str(resource.get("urn", "")), str(resource.get("type", ""))
    op = str(operation.get("type", ""))
    if op != "creating":
        return Decision(
            urn, Action.CLEAR, f"a pending {op}: the resource is still in the state, `pulumi up` redoes it", resource
        )
    inputs = resource.get("inputs") or {}
    if rtype == GUEST_TOKEN and inputs.get("os_type") == "Linux" and look_at_guest is not None:
        return look_at_guest(urn, resource)
    if rtype.startswith(DYNAMIC_PREFIXES):
        return Decision(
            urn,
            Action.CLEAR,
            "a step of the pipeline: it starts again from the VM's real state and never repeats what is done",
            resource,
        )
    if rtype.startswith(PROVIDER_PREFIX):
        return Decision(urn, Action.CLEAR, "a provider: `pulumi up` configures it again", resource)
    kind = AZURE_TYPES.get(rtype)
    if kind is None:
        return Decision(urn, Action.REFUSE, f"recovery does not know where a {rtype} lives in Azure", resource)
    return _decide_azure(urn, resource, kind, subscription_of, read)


def _decide_azure(
    urn: str,
    resource: Mapping[str, Any],
    kind: AzureType,
    subscription_of: Callable[[Mapping[str, Any]], str | None],
    read: Reader,
) -> Decision:
    """An azure-native resource: imported when ARM has it as the program has it, cleared when ARM has none,
    refused when ARM's is not this stack's."""
    inputs = resource.get("inputs") or {}
    subscription = subscription_of(resource) if "subscriptionId" in kind.placeholders else None
    try:
        rid = resource_id(kind, inputs, subscription)
    except RecoverError as exc:
        return Decision(urn, Action.REFUSE, str(exc), resource, kind=kind)
    found = read(kind, rid, subscription or subscription_in(rid))
    if found is None:
        return Decision(urn, Action.CLEAR, f"not in Azure ({rid}): `pulumi up` creates it", resource, rid, kind=kind)
    flat = flatten(found)
    differ = differences(kind, inputs, flat)
    if differ:
        return Decision(
            urn,
            Action.REFUSE,
            f"{kind.what} {rid} exists in Azure but is not the one this stack was creating: {'; '.join(differ)}",
            resource,
            rid,
            found,
            kind,
        )
    state = flat.get("provisioningState")
    made = f", provisioning {state}" if state else ""
    return Decision(
        urn,
        Action.IMPORT,
        f"in Azure at {rid} as the program has it{made}: the killed run created it",
        resource,
        str(found.get("id") or rid),
        found,
        kind,
    )
