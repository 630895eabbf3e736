"""Recover a stack after a killed `pulumi up`, in one command for people and CI:

    python -m commands.recover STACK [--preview-only] [--wait-minutes N] [--deprovisioned NAME] [--cwd DIR]
    (make recover STACK=dev [PREVIEW=1] [WAIT_MINUTES=N]; the `recover` option of the up workflow runs the same)

A `pulumi up` that was killed (a cancelled CI job, a lost runner) leaves the stack locked, and a pending create in
the state for each step that was running. What that step left in Azure decides what becomes of it:

1. read the state (`pulumi stack export`) and ask Azure about each pending create (`decide`):
   - a gallery, image definition, image version or role assignment (azure-native) is looked for at the ID the
     program gives it (from the create's own inputs): there with the program's properties, it is imported; there
     with other ones (a version of that number captured from another VM), recovery stops and changes nothing; not
     there, the pending create is cleared and `pulumi up` creates it;
   - a step of a chain (a dynamic resource: the guest's or the VM's generalization, a test boot, a promotion's
     checks) is cleared: each step starts again from the VM's real state and never repeats what is done;
   - except a Linux guest's step (commands/killed_deprovision.py): a deprovision the killed run started runs to its
     end in the guest and leaves it unreachable, so recovery looks first (read-only, waiting for a deprovision
     still running): when the guest's host keys are gone, the VM is marked generalized in Azure (deallocate,
     generalize: the step's ARM half) before the step is cleared, and `pulumi up` skips the guest; when it cannot
     tell, it stops, changing nothing;
   a pending update or delete is dropped too: the resource is still in the state, and `pulumi up` redoes it;
2. release the lock (`pulumi cancel`) when a killed update holds it; stop if a `pulumi` of this machine holds it;
   mark the VMs generalized whose deprovision went through (with --preview-only, where there is one, nothing is
   changed at all: `pulumi stack import` would drop the pending step, the only record of the deprovision);
3. write the state back (`pulumi stack import`) and refresh what was imported (`pulumi refresh --target`), so its
   outputs are the provider's own;
4. an imported version still replicating is shown region by region and waited for, bounded by its
   createTimeoutMinutes (or --wait-minutes), so `pulumi up` never runs against a half-made version;
5. `pulumi up`, or with --preview-only `pulumi preview`: what `pulumi up` will do (the state is repaired either way;
   with --preview-only nothing in Azure is touched).

Not `pulumi refresh --import-pending-creates URN ID`: in the pinned CLI (v3.274.1) that turns the pending create
into a pending import which the refresh then drops: the resource is forgotten, not imported (its snapshot keeps
only pending creates of the base state; tests/e2e/test_recovery.py shows it under the CLI).

Exit codes: 0 recovered and `pulumi up` (or the preview) succeeded; 1 refused (nothing changed) or `pulumi up`
failed; 2 usage, config, ARM or CLI error; 3 an imported version still replicates after the bound: the state is
repaired, run the command again to keep waiting.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import re
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from azure.core.credentials import TokenCredential

from commands import killed_deprovision
from commands.replication import UsageError, load_stack
from commands.stack_file import ROOT, StackFileError, read_stack
from config import ImageVersionSpec, StackSpec
from hooks import arm, pipeline
from hooks.errors import ArmError, ConfigError, WaitTimeout
from hooks.log import Log
from hooks.targets import ArmSettings, SshTarget, VmRef
from hooks.waiting import Deadline, poll

EXIT_RECOVERED, EXIT_REFUSED, EXIT_ERROR, EXIT_STILL_REPLICATING = 0, 1, 2, 3

SUBSCRIPTION_ENV = ("ARM_SUBSCRIPTION_ID", "AZURE_SUBSCRIPTION_ID")
"""Where azure-native takes the subscription from when its provider config has none."""
DYNAMIC_PREFIXES = ("pulumi-python:dynamic", "pulumi-nodejs:dynamic")
PROVIDER_PREFIX = "pulumi:providers:"
GUEST_TOKEN = "pulumi-python:dynamic/generalization:GuestGeneralization"
"""The guest half of a chain (hooks/providers/chain.py): the step that deprovisions a Linux guest."""
SIG_KEY = "4dabf18193072939515e22adb298388d"
"""Marks a secret (or another special value) in the state's JSON."""
PULUMI_TIMEOUT = 3 * 3600.0
"""Bound of one `pulumi` command: the longest `pulumi up` the up workflow allows (360 minutes is its job's)."""


class RecoverError(Exception):
    """Recovery cannot go on; the message says what happened and what to do. Nothing was changed unless it says."""


# --- what the program creates in Azure ------------------------------------------------------------------------


@dataclass(frozen=True)
class AzureType:
    """An azure-native resource type the program declares: where its ID comes from and what must match."""

    token: str
    what: str
    """How messages name it."""
    path: str
    """The resource ID with `{input}` placeholders (azure-native builds it the same way from the inputs)."""
    api_version: str
    permission: str
    """What a 403 on the GET names."""
    identity: tuple[str, ...]
    """Dotted input paths Azure must report as the program has them, else the resource is not this stack's:
    what cannot change in place (a version's source, a definition's identifier and OS) or names the grant."""

    @property
    def placeholders(self) -> list[str]:
        return re.findall(r"{(\w+)}", self.path)


_GALLERY = "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Compute/galleries"
AZURE_TYPES = {
    t.token: t
    for t in (
        AzureType(
            "azure-native:compute:Gallery",
            "gallery",
            _GALLERY + "/{galleryName}",
            "2024-03-03",
            "Microsoft.Compute/galleries/read",
            ("location",),
        ),
        AzureType(
            "azure-native:compute:GalleryImage",
            "image definition",
            _GALLERY + "/{galleryName}/images/{galleryImageName}",
            "2024-03-03",
            "Microsoft.Compute/galleries/images/read",
            (
                "location",
                "osType",
                "osState",
                "hyperVGeneration",
                "architecture",
                "identifier.publisher",
                "identifier.offer",
                "identifier.sku",
            ),
        ),
        AzureType(
            "azure-native:compute:GalleryImageVersion",
            "image version",
            _GALLERY + "/{galleryName}/images/{galleryImageName}/versions/{galleryImageVersionName}",
            "2024-03-03",
            arm.PERMISSION_IMAGE_VERSION_READ,
            ("location", "storageProfile.source"),
        ),
        AzureType(
            "azure-native:authorization:RoleAssignment",
            "role assignment",
            "{scope}/providers/Microsoft.Authorization/roleAssignments/{roleAssignmentName}",
            "2022-04-01",
            "Microsoft.Authorization/roleAssignments/read",
            ("principalId", "roleDefinitionId"),
        ),
    )
}
VERSION_TOKEN = "azure-native:compute:GalleryImageVersion"


def flatten(body: Mapping[str, Any]) -> dict[str, Any]:
    """ARM's answer in the inputs' shape: `properties` lifted to the top level (as azure-native's outputs are)."""
    top = {k: v for k, v in body.items() if k != "properties"}
    return {**top, **dict(body.get("properties") or {})}


def _at(values: Mapping[str, Any], dotted: str) -> Any:
    value: Any = values
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def _comparable(value: Any) -> Any:
    """Azure's spelling aside: case, spaces ("West Europe" is westeurope), a role by its GUID, a source by its ID."""
    if isinstance(value, Mapping):
        source = value.get("virtualMachineId") or value.get("id")
        return _comparable(source) if source is not None else {k: _comparable(v) for k, v in value.items()}
    if isinstance(value, str):
        text = value.replace(" ", "").lower()
        return text.rsplit("/", 1)[-1] if "/providers/microsoft.authorization/roledefinitions/" in text else text
    return value


def differences(kind: AzureType, inputs: Mapping[str, Any], found: Mapping[str, Any]) -> list[str]:
    """The identity properties where Azure's resource is not what the program asks for (those both name)."""
    out = []
    for path in kind.identity:
        wanted, have = _at(inputs, path), _at(found, path)
        if wanted is None or have is None or _is_special(wanted):
            continue
        if _comparable(wanted) != _comparable(have):
            out.append(f"{path} is {_shown(have)} in Azure, {_shown(wanted)} in the program")
    return out


def _shown(value: Any) -> str:
    if isinstance(value, Mapping):
        source = value.get("virtualMachineId") or value.get("id")
        if source is not None:
            return str(source)
    return json.dumps(value) if not isinstance(value, str) else value


def _is_special(value: Any) -> bool:
    return isinstance(value, Mapping) and SIG_KEY in value


def _plain(value: Any) -> Mapping[str, Any] | None:
    """A decrypted secret of `pulumi stack export --show-secrets` (`{SIG_KEY: …, "plaintext": "<JSON>"}`) as its
    value; a plain mapping as it is."""
    if _is_special(value) and isinstance(value.get("plaintext"), str):
        value = json.loads(value["plaintext"])
    return value if isinstance(value, Mapping) else None


def resource_id(kind: AzureType, inputs: Mapping[str, Any], subscription_id: str | None) -> str:
    """The ID the program gives the resource: its path with the create's inputs (azure-native's own rule)."""
    values: dict[str, str] = {}
    for name in kind.placeholders:
        value = subscription_id if name == "subscriptionId" else inputs.get(name)
        if not isinstance(value, str) or not value:
            raise RecoverError(
                f"the pending {kind.what} has no {name} in its inputs (found {_shown(value)}): cannot tell where "
                "it would be in Azure"
            )
        values[name] = value.strip("/") if name == "scope" else value
    path = kind.path.format(**values)
    return path if path.startswith("/") else "/" + path


# --- deciding each pending operation --------------------------------------------------------------------------


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
    subscription = subscription_of(resource) if "subscriptionId" in kind.placeholders else None
    try:
        rid = resource_id(kind, inputs, subscription)
    except RecoverError as exc:
        return Decision(urn, Action.REFUSE, str(exc), resource, kind=kind)
    found = read(kind, rid, subscription or _subscription_in(rid))
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


def _subscription_in(rid: str) -> str:
    match = re.match(r"^/subscriptions/([^/]+)", rid, re.IGNORECASE)
    return match[1] if match else ""


def subscription_finder(
    resources: Sequence[Mapping[str, Any]], environ: Mapping[str, str]
) -> Callable[[Mapping[str, Any]], str | None]:
    """A resource's subscription as azure-native has it: its provider's `subscriptionId`, else ARM_SUBSCRIPTION_ID
    (or AZURE_SUBSCRIPTION_ID)."""
    providers = {
        f"{r.get('urn')}::{r.get('id')}": r for r in resources if str(r.get("type", "")).startswith(PROVIDER_PREFIX)
    }

    def find(resource: Mapping[str, Any]) -> str | None:
        provider = providers.get(str(resource.get("provider", "")))
        configured = ((provider or {}).get("inputs") or {}).get("subscriptionId")
        if isinstance(configured, str) and configured:
            return configured
        return next((environ[name] for name in SUBSCRIPTION_ENV if environ.get(name)), None)

    return find


# --- the repaired state ---------------------------------------------------------------------------------------


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


# --- the lock -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Lock:
    """A lock file of a self-managed (file://) backend."""

    path: Path
    pid: int
    hostname: str
    timestamp: str

    def held_here(self) -> bool:
        """Held by a process still running on this machine (a `pulumi` that is not dead)."""
        if self.hostname != socket.gethostname() or self.pid <= 0:
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def file_backend_root(url: str) -> Path | None:
    """The directory of a `file://` backend URL; None for any other backend."""
    if not url.startswith("file://"):
        return None
    rest = url[len("file://") :].split("?", 1)[0]
    return Path(os.path.expanduser(unquote(rest))) if rest.startswith("~") else Path(unquote(urlsplit(url).path))


def stack_locks(backend: Path, project: str, stack: str) -> list[Lock]:
    """The lock files of `stack` in a file backend (`.pulumi/locks/<org>/<project>/<stack>/*.json`, or the
    older `.pulumi/locks/<stack>/`)."""
    root = backend / ".pulumi" / "locks"
    name = stack.rsplit("/", 1)[-1]
    locks = []
    for path in sorted(root.glob("**/*.json")):
        where = path.parent
        if where.name != name or not (where.parent == root or where.parent.name == project):
            continue
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError):
            doc = {}
        locks.append(
            Lock(path, int(doc.get("pid") or 0), str(doc.get("hostname") or ""), str(doc.get("timestamp") or ""))
        )
    return locks


# --- the Pulumi CLI -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PulumiCli:
    """`pulumi` commands on one stack, in the project's directory."""

    stack: str
    cwd: Path
    executable: str = "pulumi"

    def run(
        self, *args: str, stream: bool = False, stack: bool = True, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        argv = [self.executable, *args, *(["--stack", self.stack] if stack else []), "--non-interactive"]
        try:
            done = subprocess.run(
                argv,
                cwd=self.cwd,
                capture_output=not stream,
                text=True,
                timeout=PULUMI_TIMEOUT,
                check=False,
            )
        except FileNotFoundError as exc:
            raise RecoverError(f"the Pulumi CLI ({self.executable}) is not on PATH: install it (v3.274.1)") from exc
        except subprocess.TimeoutExpired as exc:
            raise RecoverError(f"`pulumi {' '.join(args)}` did not end within {PULUMI_TIMEOUT / 3600:g} h") from exc
        if check and done.returncode != 0:
            tail = (done.stderr or done.stdout or "").strip()[-2000:]
            raise RecoverError(
                f"`pulumi {' '.join(args)}` failed (exit {done.returncode})" + (f": {tail}" if tail else "")
            )
        return done

    def export(self) -> dict[str, Any]:
        state: dict[str, Any] = json.loads(self.run("stack", "export").stdout)
        return state

    def backend_url(self) -> str:
        return str(json.loads(self.run("whoami", "--json", stack=False).stdout).get("url") or "")

    def import_state(self, state: Mapping[str, Any]) -> None:
        with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="recover-", delete=False) as f:
            json.dump(state, f)
        try:
            self.run("stack", "import", "--file", f.name)
        finally:
            os.unlink(f.name)


# --- the command ----------------------------------------------------------------------------------------------


@dataclass
class Recovery:
    """One recovery of one stack: the steps of the module's docstring, in order (`run`)."""

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
        state = self.cli.export()
        deployment = state.get("deployment") or {}
        pending = list(deployment.get("pending_operations") or [])
        subscription_of = subscription_finder(deployment.get("resources") or [], os.environ)
        self.say(f"Recovering stack '{self.cli.stack}' after a killed `pulumi up`:")
        decisions = []
        for op in pending:
            decisions.append(decide(op, subscription_of, self.read, self.look_at_guest))
            self.say(decisions[-1].line())
        if not decisions:
            self.say("  no pending operation in the state")
        refused = [d for d in decisions if d.action is Action.REFUSE]
        if refused:
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
        to_generalize = [d for d in decisions if d.action is Action.GENERALIZE]
        if to_generalize and self.preview_only:
            # `pulumi stack import` drops every pending operation: repaired without the VM marked generalized, the
            # state would no longer say that the guest was deprovisioned, and a `pulumi up` would try it again.
            for d in to_generalize:
                self.say(f"{d.name}: `make recover STACK={self.cli.stack}` marks {d.vm_id} generalized, then clears it")
            self.say(
                "Nothing was changed (--preview-only does not touch Azure, and the state is repaired only once that "
                "is done). What `pulumi up` will do then:"
            )
            done = self.cli.run("preview", stream=True, check=False)
            return EXIT_RECOVERED if done.returncode == 0 else EXIT_REFUSED
        self.release_lock()
        for d in to_generalize:
            self.generalize(d)
        if pending:
            state = repaired(state, decisions)
            self.cli.import_state(state)
            imports = sum(d.action is Action.IMPORT for d in decisions)
            self.say(f"state repaired: {imports} imported, {len(decisions) - imports} cleared")
        # What was imported now, or in an earlier run that gave up waiting: read back once Azure is done with it.
        unfinished = [r for r in state["deployment"].get("resources") or [] if creating_version(r)]
        imported = {d.urn for d in decisions if d.action is Action.IMPORT} | {str(r["urn"]) for r in unfinished}
        still = self.wait_for_versions(unfinished)
        if still and not self.preview_only:
            return EXIT_STILL_REPLICATING
        if imported:
            self.cli.run("refresh", "--yes", *[arg for urn in sorted(imported) for arg in ("--target", urn)])
        if self.preview_only:
            if still:
                self.say(f"`make recover STACK={self.cli.stack}` waits for {', '.join(still)} before `pulumi up`")
            self.say("what `pulumi up` will do:")
            done = self.cli.run("preview", stream=True, check=False)
        else:
            done = self.cli.run("up", "--yes", stream=True, check=False)
        return EXIT_RECOVERED if done.returncode == 0 else EXIT_REFUSED

    # ARM

    def read(self, kind: AzureType, rid: str, subscription_id: str) -> Mapping[str, Any] | None:
        call = arm.Call(self.settings, "read", f"the {kind.what} {rid}", kind.permission)
        response = arm.request(
            call,
            subscription_id,
            "GET",
            rid,
            params={"api-version": kind.api_version},
            accept=(404,),
            credential=self.credential,
        )
        if response.status_code == 404:
            return None
        body = response.json()
        return body if isinstance(body, dict) else {}

    # a Linux guest's step

    def look_at_guest(self, urn: str, resource: Mapping[str, Any]) -> Decision:
        """What becomes of the pending step of a Linux guest: Azure's word first (a VM it reports generalized, or
        not running, is left to the step), then the guest's (commands/killed_deprovision.py)."""
        inputs = resource.get("inputs") or {}
        name = urn.rsplit("::", 1)[-1]
        vm_id = str(inputs.get("vm_id") or "")
        try:
            vm = VmRef.parse(vm_id)
        except ValueError as exc:
            return Decision(urn, Action.REFUSE, f"the pending guest step has no VM ID in its inputs ({exc})", resource)
        log = Log(name, sink=lambda line: self.say(f"    {line}"))
        status = arm.get_status(self.settings, vm, log, credential=self.credential)
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
        ssh = inputs.get("ssh")
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
                f"{exc}. If it was deprovisioned, say so: `python -m commands.recover {self.cli.stack} "
                f"--deprovisioned {name}` marks {vm} generalized and goes on; otherwise fix the credentials in the "
                "stack file and run again",
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

    def credentials_of(self, urn: str) -> Mapping[str, Any] | None:
        """The decrypted `credentials` input of a pending operation (`pulumi stack export --show-secrets`, held in
        memory only, never written)."""
        exported = json.loads(self.cli.run("stack", "export", "--show-secrets").stdout)
        for op in exported.get("deployment", {}).get("pending_operations") or []:
            resource = op.get("resource") or {}
            if resource.get("urn") == urn:
                return _plain((resource.get("inputs") or {}).get("credentials"))
        return None

    def generalize(self, decision: Decision) -> None:
        """Mark the VM generalized as the step's ARM half does (hooks/pipeline.py: wait until stopped,
        deallocate, generalize, verify; each skipped when done), so `pulumi up` skips the guest."""
        assert decision.vm_id is not None
        self.say(f"{decision.name}: marking {decision.vm_id} generalized (its guest was deprovisioned)")
        log = Log(decision.name, sink=lambda line: self.say(f"    {line}"))
        pipeline.generalize_vm(pipeline.VmRequest(VmRef.parse(decision.vm_id), self.settings), log)

    # the lock

    def release_lock(self) -> None:
        backend = file_backend_root(self.cli.backend_url())
        if backend is None:
            # Pulumi Cloud (or a bucket): the CLI knows whether an update is in progress, and says so.
            done = self.cli.run("cancel", "--yes", check=False)
            first = (done.stderr or done.stdout or "").strip().splitlines()
            self.say(
                "lock: "
                + (
                    "released (pulumi cancel)"
                    if done.returncode == 0
                    else f"nothing to cancel ({first[-1] if first else 'no update in progress'})"
                )
            )
            return
        locks = stack_locks(backend, self.project, self.cli.stack)
        live = [lock for lock in locks if lock.held_here()]
        if live:
            held = ", ".join(f"pid {lock.pid} since {lock.timestamp}" for lock in live)
            raise Refused(
                f"a `pulumi` command of stack '{self.cli.stack}' is still running on this machine ({held}): let it "
                "finish, or stop it, then run again. Nothing was changed."
            )
        if not locks:
            self.say("lock: none held")
            return
        self.cli.run("cancel", "--yes")
        held = ", ".join(f"pid {lock.pid} on {lock.hostname or '?'} since {lock.timestamp}" for lock in locks)
        self.say(f"lock: released (pulumi cancel): it was held by a killed run ({held})")

    # replication

    def wait_for_versions(self, versions: Sequence[Mapping[str, Any]]) -> list[str]:
        """Show each version Azure is still creating (imported into the state, with its ID) and wait for it,
        bounded (--preview-only: show it only); the labels of those still unfinished."""
        unfinished = []
        for resource in versions:
            where = version_coordinates(resource)
            label = f"{where[3]} {where[4]}"
            status = arm.get_replication_status(self.settings, *where, credential=self.credential)
            if status is None or _settled(status):
                self._report(label, status)
                continue
            self.say(f"{label}: still replicating: {_regions(status)}")
            if self.preview_only:
                unfinished.append(label)
                continue
            minutes = self.wait_minutes if self.wait_minutes is not None else self._create_timeout(where[3], where[4])
            try:
                status = self._follow(label, where, status, minutes)
            except WaitTimeout as exc:
                self.say(
                    f"{label}: {exc}. It is in the state; Azure goes on replicating it. Run this command again to "
                    f"keep waiting, or watch it with `make replication STACK={self.cli.stack} WATCH=1`."
                )
                unfinished.append(label)
                continue
            self._report(label, status)
        return unfinished

    def _follow(
        self, label: str, where: tuple[str, str, str, str, str], first: arm.ReplicationStatus, minutes: float
    ) -> arm.ReplicationStatus | None:
        """Poll the version until Azure settles it, printing each change; WaitTimeout after `minutes`."""
        seen = [_regions(first)]

        def probe() -> tuple[bool, arm.ReplicationStatus | None]:
            now = arm.get_replication_status(self.settings, *where, credential=self.credential)
            shown = _regions(now) if now else "gone"
            if shown != seen[-1]:
                self.say(f"{label}: {shown}")
                seen.append(shown)
            return now is None or _settled(now), now

        deadline = Deadline(minutes * 60, f"the replication of {label} ({minutes:g} min)")
        return poll(probe, deadline, self.settings.poll_interval, lambda s: _regions(s) if s else "gone")

    def _report(self, label: str, status: arm.ReplicationStatus | None) -> None:
        if status is None:
            self.say(f"{label}: no longer in Azure: `pulumi up` creates it again")
        elif "Failed" in (status.provisioning_state, status.aggregated_state):
            raise Refused(
                f"{label} was created but its replication failed ({_regions(status)}): Azure keeps the failed "
                "version, now in the state. Fix the cause in Azure's message, then replace it (`pulumi up "
                "--replace <its urn>`), or delete it and run `pulumi up`."
            )
        else:
            self.say(f"{label}: replicated ({_regions(status)})")

    def _create_timeout(self, image: str, version: str) -> float:
        for d in self.spec.images:
            for v in d.versions:
                if d.name == image and v.version == version:
                    return v.create_timeout_minutes
        return ImageVersionSpec.create_timeout_minutes


def creating_version(resource: Mapping[str, Any]) -> bool:
    """An image version in the state that Azure was still creating when it was recorded (imported mid-replication)."""
    outputs = resource.get("outputs") or {}
    return resource.get("type") == VERSION_TOKEN and outputs.get("provisioningState") == "Creating"


def version_coordinates(resource: Mapping[str, Any]) -> tuple[str, str, str, str, str]:
    """(subscription, resource group, gallery, image, version) of a version in the state, from its ID."""
    match = re.match(
        r"^/subscriptions/([^/]+)/resourceGroups/([^/]+)/providers/Microsoft\.Compute/galleries/([^/]+)"
        r"/images/([^/]+)/versions/([^/]+)$",
        str(resource.get("id") or ""),
        re.IGNORECASE,
    )
    if match is None:
        raise RecoverError(f"{resource.get('urn')} has no image version ID in the state ({resource.get('id')!r})")
    return match[1], match[2], match[3], match[4], match[5]


class Refused(RecoverError):
    """Recovery stops before changing anything (or, for a failed replication, says what it changed)."""


def _settled(status: arm.ReplicationStatus) -> bool:
    if "Failed" in (status.provisioning_state, status.aggregated_state):
        return True
    if status.aggregated_state is None:
        return status.provisioning_state == "Succeeded"
    return status.aggregated_state == "Completed" and status.provisioning_state != "Creating"


def _regions(status: arm.ReplicationStatus) -> str:
    regions = ", ".join(
        f"{r.region} {r.state}" + (f" {r.progress}%" if r.progress is not None else "") for r in status.regions
    )
    return f"provisioning {status.provisioning_state}, replication {status.aggregated_state}" + (
        f" ({regions})" if regions else ""
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m commands.recover", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("stack", help="the stack a killed `pulumi up` left behind (Pulumi.<stack>.yaml)")
    parser.add_argument(
        "--preview-only", action="store_true", help="repair the state, then `pulumi preview` instead of `pulumi up`"
    )
    parser.add_argument(
        "--wait-minutes",
        type=float,
        help="how long to wait for a version still replicating (default: its createTimeoutMinutes)",
    )
    parser.add_argument(
        "--deprovisioned",
        action="append",
        default=[],
        metavar="NAME",
        help="the Linux guest of this pending guest step (e.g. ubuntu-2204-1.0.0-guest) was deprovisioned: mark its "
        "VM generalized without looking (when recovery cannot tell: its user is gone, the host key kept)",
    )
    parser.add_argument("--cwd", type=Path, default=ROOT, help="the project directory (default: this checkout)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:
        return EXIT_ERROR if exc.code else 0
    # azure-identity logs a multi-line warning when the login fails; our one-line error already says it all.
    logging.getLogger("azure").addHandler(logging.NullHandler())
    try:
        spec, _ = load_stack(args.stack, args.cwd)
        project = read_stack(args.stack, args.cwd).project
        settings = ArmSettings(
            endpoint=spec.azure.arm_endpoint,
            audience=spec.azure.audience,
            poll_interval=spec.azure.poll_interval_seconds,
            request_timeout=30.0,
            operation_timeout=120.0,
        )
        with arm.SharedLogin() as login:
            recovery = Recovery(
                PulumiCli(args.stack, args.cwd),
                project,
                spec,
                settings,
                login,
                args.preview_only,
                args.wait_minutes,
                args.deprovisioned,
            )
            return recovery.run()
    except Refused as exc:
        print(f"recover of stack '{args.stack}': refused: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except (UsageError, StackFileError, ConfigError, ArmError, RecoverError) as exc:
        message = "; ".join(exc.problems) if isinstance(exc, ConfigError) else str(exc)
        print(f"recover of stack '{args.stack}': {message}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
