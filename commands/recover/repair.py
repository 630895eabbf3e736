"""The repaired state: the exported state with every pending operation resolved as decided, ready for
`pulumi stack import`."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from commands.recover.azure import flatten
from commands.recover.decisions import Action, Decision


def imported_state(decision: Decision) -> dict[str, Any]:
    """The pending create as a resource at its ARM ID, with ARM's answer as its outputs until the refresh reads
    them through the provider (the inputs stay the program's: `pulumi up` then sees no change)."""
    assert decision.arm_id is not None and decision.found is not None and decision.kind is not None
    state = copy.deepcopy(dict(decision.resource))
    inputs = dict(state.get("inputs") or {})
    state["id"] = decision.arm_id
    state["outputs"] = {**inputs, **flatten(decision.found), "azureApiVersion": decision.kind.api_version}
    state.pop("pendingReplacement", None)
    return state


def repaired(exported: Mapping[str, Any], decisions: Sequence[Decision]) -> dict[str, Any]:
    """The exported state with every pending operation resolved: imports appended as resources (after everything
    they depend on, which the state already holds), the rest dropped."""
    state = copy.deepcopy(dict(exported))
    deployment = state["deployment"]
    resources = deployment.setdefault("resources", [])
    resources.extend(imported_state(d) for d in decisions if d.action is Action.IMPORT)
    deployment.pop("pending_operations", None)
    return state
