"""One recovery of one stack, top to bottom (`Recovery.run`): read the state and decide each pending operation,
stop if any is refused, release the lock, mark deprovisioned guests' VMs generalized, write the state back, wait
for versions still replicating, refresh what was imported, then `pulumi up` (or `pulumi preview`)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from azure.core.credentials import TokenCredential

from commands.recover import azure, lock, state
from commands.recover.azure import AzureType
from commands.recover.decisions import Action, Decision, decide
from commands.recover.errors import Refused
from commands.recover.guest_step import LinuxGuestStep
from commands.recover.pulumi_cli import PulumiCli
from commands.recover.repair import repaired
from commands.recover.replicating import VersionWait
from config import StackSpec
from hooks.targets import ArmSettings

EXIT_RECOVERED, EXIT_REFUSED, EXIT_ERROR, EXIT_STILL_REPLICATING = 0, 1, 2, 3


@dataclass
class Recovery:
    """One recovery of one stack: the steps of the package's docstring, in order (`run`)."""

    cli: PulumiCli
    project: str
    spec: StackSpec
    settings: ArmSettings
    credential: TokenCredential
    preview_only: bool = False
    wait_minutes: float | None = None
    """None: each version's createTimeoutMinutes."""
    deprovisioned: Sequence[str] = ()
    """Guest steps (by resource name) whose guest the user says was deprovisioned: not looked at."""
    say: Callable[[str], None] = print

    def run(self) -> int:
        lock.repair_checkpoint_metadata(self.cli, self.project, self.say)
        exported = self.cli.export()
        pending = state.pending_operations(exported)
        decisions = self.decide_each(exported)
        refuse_if_any(decisions)
        to_generalize = [d for d in decisions if d.action is Action.GENERALIZE]
        if to_generalize and self.preview_only:
            return self.preview_before_generalizing(to_generalize)
        self.release_lock()
        for d in to_generalize:
            self.generalize(d)
        if pending:
            exported = repaired(exported, decisions)
            self.cli.import_state(exported)
            imports = sum(d.action is Action.IMPORT for d in decisions)
            self.say(f"state repaired: {imports} imported, {len(decisions) - imports} cleared")
        # What was imported now, or in an earlier run that gave up waiting: read back once Azure is done with it.
        unfinished = [r for r in state.resources(exported) if state.creating_version(r)]
        imported = {d.urn for d in decisions if d.action is Action.IMPORT} | {str(r["urn"]) for r in unfinished}
        still = self.wait_for_versions(unfinished)
        if still and not self.preview_only:
            return EXIT_STILL_REPLICATING
        if imported:
            self.cli.run("refresh", "--yes", *[arg for urn in sorted(imported) for arg in ("--target", urn)])
        return self.up(still)

    def decide_each(self, exported: Mapping[str, Any]) -> list[Decision]:
        """What becomes of each pending operation, each said as it is decided."""
        subscription_of = azure.subscription_finder(state.resources(exported), os.environ)
        self.say(f"Recovering stack '{self.cli.stack}' after a killed `pulumi up`:")
        decisions = []
        for op in state.pending_operations(exported):
            decisions.append(decide(op, subscription_of, self.read, self.look_at_guest))
            self.say(decisions[-1].line())
        if not decisions:
            self.say("  no pending operation in the state")
        return decisions

    def preview_before_generalizing(self, to_generalize: Sequence[Decision]) -> int:
        """--preview-only with a deprovisioned guest: nothing changed at all, and what `pulumi up` will do.
        `pulumi stack import` drops every pending operation: repaired without the VM marked generalized, the state
        would no longer say that the guest was deprovisioned, and a `pulumi up` would try it again."""
        for d in to_generalize:
            self.say(f"{d.name}: `make recover STACK={self.cli.stack}` marks {d.vm_id} generalized, then clears it")
        self.say(
            "Nothing was changed (--preview-only does not touch Azure, and the state is repaired only once that "
            "is done). What `pulumi up` will do then:"
        )
        done = self.cli.run("preview", stream=True, check=False)
        return EXIT_RECOVERED if done.returncode == 0 else EXIT_REFUSED

    def up(self, still_replicating: Sequence[str]) -> int:
        """`pulumi up`, or with --preview-only `pulumi preview`: what `pulumi up` will do."""
        if self.preview_only:
            if still_replicating:
                self.say(
                    f"`make recover STACK={self.cli.stack}` waits for {', '.join(still_replicating)} before `pulumi up`"
                )
            self.say("what `pulumi up` will do:")
            done = self.cli.run("preview", stream=True, check=False)
        else:
            done = self.cli.run("up", "--yes", stream=True, check=False)
        return EXIT_RECOVERED if done.returncode == 0 else EXIT_REFUSED

    # Each step's room, one call each (tests replace the ones that reach Azure or a guest).

    def read(self, kind: AzureType, rid: str, subscription_id: str) -> Mapping[str, Any] | None:
        return azure.read(self.settings, self.credential, kind, rid, subscription_id)

    def look_at_guest(self, urn: str, resource: Mapping[str, Any]) -> Decision:
        return self._guest_step().decide(urn, resource)

    def generalize(self, decision: Decision) -> None:
        self._guest_step().mark_generalized(decision)

    def release_lock(self) -> None:
        lock.release_lock(self.cli, self.project, self.say)

    def wait_for_versions(self, versions: Sequence[Mapping[str, Any]]) -> list[str]:
        wait = VersionWait(
            self.settings, self.credential, self.spec, self.cli.stack, self.preview_only, self.wait_minutes, self.say
        )
        return wait.wait_for(versions)

    def credentials_of(self, urn: str) -> Mapping[str, Any] | None:
        """The decrypted `credentials` input of a pending operation (`pulumi stack export --show-secrets`, held in
        memory only, never written)."""
        return state.pending_credentials(json.loads(self.cli.run("stack", "export", "--show-secrets").stdout), urn)

    def _guest_step(self) -> LinuxGuestStep:
        return LinuxGuestStep(
            self.settings, self.credential, self.cli.stack, self.deprovisioned, self.credentials_of, self.say
        )


def refuse_if_any(decisions: Sequence[Decision]) -> None:
    """Refused, naming each refused operation and why, when any is: nothing is changed then."""
    refused = [d for d in decisions if d.action is Action.REFUSE]
    if not refused:
        return
    advice = (
        " If that resource belongs to this stack after all, delete it in Azure and run again; otherwise give "
        "this stack's resource another name (e.g. another version number) in the stack file."
        if any(d.kind is not None for d in refused)
        else ""
    )
    raise Refused(
        "; ".join(f"{d.name}: {d.reason}" for d in refused)
        + ". Nothing was changed: the stack is still locked and its pending creates are as they were."
        + advice
    )
