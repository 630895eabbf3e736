"""commands/recover/ without Pulumi or Azure: what becomes of each pending operation, the repaired state, the
lock files of a file backend. The whole command runs under the real CLI in tests/e2e/test_recovery.py."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest
import yaml

from commands.recover import guest_step, killed_deprovision
from commands.recover.azure import AZURE_TYPES, AzureType, resource_id, subscription_finder
from commands.recover.decisions import GUEST_TOKEN, Action, Decision, decide
from commands.recover.errors import RecoverError
from commands.recover.guest_step import LinuxGuestStep
from commands.recover.lock import file_backend_root, repair_checkpoint_metadata, stack_locks
from commands.recover.pulumi_cli import PulumiCli
from commands.recover.recovery import Recovery
from commands.recover.repair import repaired
from commands.recover.replicating import version_coordinates
from commands.recover.state import creating_version
from hooks.arm.vm import VmStatus
from hooks.targets import ArmSettings, ImageVersionRef

SUB = "00000000-0000-0000-0000-00000000aaaa"
GALLERY = f"/subscriptions/{SUB}/resourceGroups/rg-gallery/providers/Microsoft.Compute/galleries/gal"
VERSION_ID = f"{GALLERY}/images/img/versions/1.0.0"
VM = f"/subscriptions/{SUB}/resourceGroups/rg-build/providers/Microsoft.Compute/virtualMachines/vm1"
PROVIDER = "urn:pulumi:dev::image-gallery::pulumi:providers:azure-native::default_3_29_0"
ROLE = f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/8e3af657-a8ff-443c-a75c-2fe8c4bcb635"


def version_inputs(**extra: Any) -> dict[str, Any]:
    return {
        "resourceGroupName": "rg-gallery",
        "galleryName": "gal",
        "galleryImageName": "img",
        "galleryImageVersionName": "1.0.0",
        "location": "westeurope",
        "storageProfile": {"source": {"virtualMachineId": VM}},
        **extra,
    }


def pending(rtype: str, inputs: Mapping[str, Any], op: str = "creating", name: str = "img-1.0.0") -> dict[str, Any]:
    return {
        "type": op,
        "resource": {
            "urn": f"urn:pulumi:dev::image-gallery::{rtype}::{name}",
            "type": rtype,
            "custom": True,
            "inputs": dict(inputs),
            "provider": f"{PROVIDER}::p1",
            "parent": "urn:pulumi:dev::image-gallery::image-gallery:index:CapturedImageVersion::img-1.0.0",
            "dependencies": ["urn:pulumi:dev::image-gallery::pulumi-python:dynamic/generalization:VmGeneralization::x"],
        },
    }


class Azure:
    """ARM as the reader sees it: resource ID → answer; every read recorded."""

    def __init__(self, **resources: Mapping[str, Any]) -> None:
        self.resources = {k.lower(): v for k, v in resources.items()}
        self.reads: list[str] = []

    def read(self, kind: AzureType, rid: str, subscription: str) -> Mapping[str, Any] | None:
        self.reads.append(rid)
        return self.resources.get(rid.lower())


def always(subscription: str | None) -> Any:
    return lambda resource: subscription


def version_in_azure(source: str = VM, state: str = "Creating") -> dict[str, Any]:
    return {
        "id": VERSION_ID,
        "name": "1.0.0",
        "location": "West Europe",
        "properties": {"storageProfile": {"source": {"virtualMachineId": source}}, "provisioningState": state},
    }


def test_a_version_in_azure_from_the_programs_vm_is_imported_at_the_programs_id() -> None:
    azure = Azure(**{VERSION_ID: version_in_azure(VM.upper())})  # ARM IDs are case-insensitive
    d = decide(pending("azure-native:compute:GalleryImageVersion", version_inputs()), always(SUB), azure.read)
    assert d.action is Action.IMPORT and d.arm_id == VERSION_ID
    assert azure.reads == [VERSION_ID]
    assert "provisioning Creating" in d.reason


def test_a_version_of_that_number_from_another_vm_is_refused_naming_both_sources() -> None:
    other = VM.replace("vm1", "vm2")
    azure = Azure(**{VERSION_ID: version_in_azure(other)})
    d = decide(pending("azure-native:compute:GalleryImageVersion", version_inputs()), always(SUB), azure.read)
    assert d.action is Action.REFUSE
    assert f"storageProfile.source is {other} in Azure, {VM} in the program" in d.reason


def test_a_resource_azure_does_not_have_is_cleared_and_a_chain_step_never_asks_azure() -> None:
    azure = Azure()
    d = decide(pending("azure-native:compute:GalleryImageVersion", version_inputs()), always(SUB), azure.read)
    assert d.action is Action.CLEAR and "not in Azure" in d.reason
    step = pending("pulumi-python:dynamic/generalization:GuestGeneralization", {"vm_id": VM}, name="img-1.0.0-guest")
    assert decide(step, always(SUB), azure.read).action is Action.CLEAR
    assert decide(pending("pulumi:providers:azure-native", {}), always(SUB), azure.read).action is Action.CLEAR
    assert azure.reads == [VERSION_ID]


def test_a_linux_guests_step_is_looked_at_and_a_windows_guests_is_cleared() -> None:
    """A deprovision the killed run started leaves the guest unreachable: recovery looks at a Linux guest before
    clearing its step. Sysprep is watched by the step itself, which reads the guest's image state."""
    looked: list[str] = []

    def look(urn: str, resource: Mapping[str, Any]) -> Decision:
        looked.append(urn)
        return Decision(urn, Action.GENERALIZE, "deprovisioned", resource, vm_id=VM)

    linux = pending(GUEST_TOKEN, {"vm_id": VM, "os_type": "Linux"}, name="img-1.0.0-guest")
    windows = pending(GUEST_TOKEN, {"vm_id": VM, "os_type": "Windows"}, name="win-1.0.0-guest")
    assert decide(linux, always(SUB), Azure().read, look).action is Action.GENERALIZE
    assert decide(windows, always(SUB), Azure().read, look).action is Action.CLEAR
    assert looked == [linux["resource"]["urn"]]
    d = decide(linux, always(SUB), Azure().read, look)
    assert d.line() == f"  img-1.0.0-guest ({GUEST_TOKEN}): mark the VM generalized, then clear: deprovisioned"


@dataclass
class FakeCli:
    """The CLI as Recovery drives it (PulumiCli's methods): the exported state, and every command run."""

    exported: dict[str, Any]
    stack: str = "dev"
    commands: list[tuple[str, ...]] = field(default_factory=list)

    def run(self, *args: str, stream: bool = False, stack: bool = True, check: bool = True) -> Any:
        self.commands.append(args)
        return subprocess.CompletedProcess(args, 0, "", "")

    def export(self) -> dict[str, Any]:
        return self.exported

    def backend_url(self) -> str:
        return "https://api.pulumi.com"  # not a file backend: `pulumi cancel` releases the lock

    def import_state(self, state: Mapping[str, Any]) -> None:
        self.commands.append(("stack", "import"))


class DeprovisionedGuest(Recovery):
    """A recovery whose Linux guest the killed run deprovisioned; marking its VM generalized is recorded."""

    def look_at_guest(self, urn: str, resource: Mapping[str, Any]) -> Decision:
        return Decision(urn, Action.GENERALIZE, "host keys gone", resource, vm_id=VM)

    def generalize(self, decision: Decision) -> None:
        cast(FakeCli, self.cli).commands.append(("generalize", str(decision.vm_id)))


def recovery_of_a_killed_deprovision(said: list[str], preview_only: bool = False) -> tuple[Recovery, FakeCli]:
    step = pending(GUEST_TOKEN, {"vm_id": VM, "os_type": "Linux"}, name="img-1.0.0-guest")
    cli = FakeCli({"version": 3, "deployment": {"resources": [], "pending_operations": [step]}})
    unused: Any = None  # the stack spec, ARM settings and login: not reached here
    recovery = DeprovisionedGuest(
        cast(PulumiCli, cli), "image-gallery", unused, unused, unused, preview_only=preview_only, say=said.append
    )
    return recovery, cli


def test_a_deprovisioned_guests_vm_is_marked_generalized_before_the_step_is_cleared() -> None:
    recovery, cli = recovery_of_a_killed_deprovision([])
    assert recovery.run() == 0
    assert [c[:2] for c in cli.commands] == [
        ("cancel", "--yes"),
        ("generalize", VM),
        ("stack", "import"),
        ("up", "--yes"),
    ]


def test_a_preview_of_a_deprovisioned_guest_changes_nothing() -> None:
    """`pulumi stack import` drops every pending operation: repairing the state before the VM is marked
    generalized would lose the only record that its guest was deprovisioned."""
    said: list[str] = []
    recovery, cli = recovery_of_a_killed_deprovision(said, preview_only=True)
    assert recovery.run() == 0
    assert cli.commands == [("preview",)]
    assert f"img-1.0.0-guest: `make recover STACK=dev` marks {VM} generalized, then clears it" in said
    assert any(line.startswith("Nothing was changed (--preview-only does not touch Azure") for line in said)


def test_an_interrupted_update_is_dropped_and_an_unknown_type_is_refused() -> None:
    azure = Azure()
    update = pending("azure-native:compute:GalleryImageVersion", version_inputs(), op="updating")
    assert decide(update, always(SUB), azure.read).action is Action.CLEAR
    unknown = decide(pending("azure-native:network:VirtualNetwork", {}), always(SUB), azure.read)
    assert unknown.action is Action.REFUSE and "does not know where" in unknown.reason
    assert azure.reads == []


def test_a_definition_is_compared_on_what_cannot_change_in_place() -> None:
    image_id = f"{GALLERY}/images/img"
    inputs = {
        "resourceGroupName": "rg-gallery",
        "galleryName": "gal",
        "galleryImageName": "img",
        "location": "westeurope",
        "osType": "Windows",
        "osState": "Generalized",
        "identifier": {"publisher": "contoso", "offer": "o", "sku": "s"},
        "description": "ours",
    }
    found = {
        "id": image_id,
        "location": "westeurope",
        "properties": {
            "osType": "Windows",
            "osState": "Generalized",
            "identifier": {"publisher": "Contoso", "offer": "o", "sku": "other"},
            "description": "someone else's",  # mutable: `pulumi up` updates it
        },
    }
    d = decide(pending("azure-native:compute:GalleryImage", inputs), always(SUB), Azure(**{image_id: found}).read)
    assert d.action is Action.REFUSE
    assert "identifier.sku is other in Azure, s in the program" in d.reason
    assert "publisher" not in d.reason and "description" not in d.reason


def test_a_role_assignment_is_found_at_its_scope_and_compared_by_principal_and_role() -> None:
    rid = f"{GALLERY}/providers/Microsoft.Authorization/roleAssignments/6f0a2c55-0000-4000-8000-000000000001"
    inputs = {
        "scope": GALLERY,
        "roleAssignmentName": "6f0a2c55-0000-4000-8000-000000000001",
        "principalId": "11111111-2222-3333-4444-555555555555",
        "roleDefinitionId": ROLE,
    }
    found = {"id": rid, "properties": {"principalId": inputs["principalId"], "roleDefinitionId": ROLE.upper()}}
    azure = Azure(**{rid: found})
    d = decide(pending("azure-native:authorization:RoleAssignment", inputs), always(None), azure.read)
    assert d.action is Action.IMPORT and d.arm_id == rid
    other = {"id": rid, "properties": {"principalId": "99999999-2222-3333-4444-555555555555", "roleDefinitionId": ROLE}}
    refused = decide(
        pending("azure-native:authorization:RoleAssignment", inputs), always(None), Azure(**{rid: other}).read
    )
    assert refused.action is Action.REFUSE and "principalId is 99999999" in refused.reason


def test_the_id_needs_every_path_input_and_the_subscription() -> None:
    kind = AZURE_TYPES["azure-native:compute:GalleryImageVersion"]
    assert resource_id(kind, version_inputs(), SUB) == VERSION_ID
    with pytest.raises(RecoverError, match="no subscriptionId"):
        resource_id(kind, version_inputs(), None)
    missing = {k: v for k, v in version_inputs().items() if k != "galleryImageVersionName"}
    with pytest.raises(RecoverError, match="no galleryImageVersionName"):
        resource_id(kind, missing, SUB)
    d = decide(pending("azure-native:compute:GalleryImageVersion", missing), always(SUB), Azure().read)
    assert d.action is Action.REFUSE


def test_the_subscription_is_the_providers_else_the_environments() -> None:
    resources = [
        {"urn": PROVIDER, "id": "p1", "type": "pulumi:providers:azure-native", "inputs": {"subscriptionId": "sub-a"}},
        {"urn": PROVIDER + "x", "id": "p2", "type": "pulumi:providers:azure-native", "inputs": {}},
    ]
    find = subscription_finder(resources, {"ARM_SUBSCRIPTION_ID": "sub-env"})
    assert find({"provider": f"{PROVIDER}::p1"}) == "sub-a"
    assert find({"provider": f"{PROVIDER}x::p2"}) == "sub-env"
    assert subscription_finder(resources, {})({"provider": f"{PROVIDER}x::p2"}) is None


def test_the_repaired_state_holds_the_imports_as_resources_and_no_pending_operation() -> None:
    azure = Azure(**{VERSION_ID: version_in_azure()})
    version = pending("azure-native:compute:GalleryImageVersion", version_inputs())
    step = pending("pulumi-python:dynamic/generalization:GuestGeneralization", {}, name="img-1.0.0-guest")
    exported = {
        "version": 3,
        "deployment": {
            "resources": [{"urn": "urn:a", "type": "pulumi:pulumi:Stack"}],
            "pending_operations": [version, step],
        },
    }
    decisions = [decide(op, always(SUB), azure.read) for op in exported["deployment"]["pending_operations"]]
    state = repaired(exported, decisions)
    assert "pending_operations" not in state["deployment"]
    assert exported["deployment"]["pending_operations"], "the export itself is left as it was"
    resources = state["deployment"]["resources"]
    assert [r["urn"] for r in resources] == ["urn:a", version["resource"]["urn"]]
    imported = resources[-1]
    assert imported["id"] == VERSION_ID
    assert imported["inputs"] == version_inputs()  # the program's: `pulumi up` sees no change
    assert imported["outputs"]["provisioningState"] == "Creating"
    assert imported["outputs"]["azureApiVersion"] == AZURE_TYPES[imported["type"]].api_version
    assert imported["parent"] == version["resource"]["parent"]
    assert imported["dependencies"] == version["resource"]["dependencies"]
    assert creating_version(imported)
    assert version_coordinates(imported) == ImageVersionRef(SUB, "rg-gallery", "gal", "img", "1.0.0")
    assert not creating_version({**imported, "outputs": {"provisioningState": "Succeeded"}})


def test_lock_files_of_a_file_backend(tmp_path: Path) -> None:
    assert file_backend_root(f"file://{tmp_path}") == tmp_path
    assert file_backend_root("file://~/state") == Path(os.path.expanduser("~/state"))
    assert file_backend_root("https://api.pulumi.com") is None
    locks = tmp_path / ".pulumi" / "locks" / "organization" / "image-gallery"
    (locks / "dev").mkdir(parents=True)
    (locks / "prod").mkdir()
    dead = {"pid": 2**22 + 7, "hostname": socket.gethostname(), "timestamp": "t1", "username": "u"}
    (locks / "dev" / "a.json").write_text(json.dumps(dead))
    (locks / "prod" / "b.json").write_text(json.dumps(dead))
    other_project = tmp_path / ".pulumi" / "locks" / "organization" / "other" / "dev"
    other_project.mkdir(parents=True)
    (other_project / "c.json").write_text(json.dumps(dead))
    found = stack_locks(tmp_path, "image-gallery", "dev")
    assert [lock.path.name for lock in found] == ["a.json"]
    assert not found[0].held_here()  # no such process
    live = {**dead, "pid": os.getpid()}
    (locks / "dev" / "a.json").write_text(json.dumps(live))
    assert stack_locks(tmp_path, "image-gallery", "dev")[0].held_here()
    elsewhere = {**live, "hostname": "another-runner"}
    (locks / "dev" / "a.json").write_text(json.dumps(elsewhere))
    assert not stack_locks(tmp_path, "image-gallery", "dev")[0].held_here()


@dataclass
class FileBackendCli:
    """The two things the metadata repair asks the CLI: the backend's URL and the stack."""

    backend: Path
    stack: str = "dev"

    def backend_url(self) -> str:
        return f"file://{self.backend}"


def test_a_checkpoint_metadata_file_a_kill_left_empty_is_removed_and_said(tmp_path: Path) -> None:
    stacks = tmp_path / ".pulumi" / "stacks" / "image-gallery"
    stacks.mkdir(parents=True)
    checkpoint = stacks / "dev.json"
    checkpoint.write_text('{"version": 3, "checkpoint": {}}')
    (stacks / "dev.json.attrs").write_text("")  # fileblob's setAttrs truncated it, then the kill came
    kept = [stacks / "prod.json.attrs", tmp_path / ".pulumi" / "stacks" / "other" / "dev.json.attrs"]
    kept[1].parent.mkdir()
    for path in kept:
        path.write_text("")  # another stack's, another project's: not this recovery's to touch
    said: list[str] = []
    repair_checkpoint_metadata(FileBackendCli(tmp_path), "image-gallery", said.append)  # type: ignore[arg-type]
    assert not (stacks / "dev.json.attrs").exists() and checkpoint.exists()
    assert all(path.exists() for path in kept)
    assert said == [
        "state: removed dev.json.attrs, the checkpoint's metadata file, which the killed run left unreadable "
        "(the checkpoint itself is whole)"
    ]
    # A readable one is left as it is, and nothing is said.
    (stacks / "dev.json.attrs").write_text('{"user.content_type": "application/json"}\n')
    said.clear()
    repair_checkpoint_metadata(FileBackendCli(tmp_path), "image-gallery", said.append)  # type: ignore[arg-type]
    assert (stacks / "dev.json.attrs").exists() and said == []


def test_people_and_ci_run_the_same_command() -> None:
    """`make recover` runs this module, and the up workflow's `recover` option runs `make recover`."""
    root = Path(__file__).resolve().parents[2]
    makefile = (root / "Makefile").read_text()
    target = makefile[makefile.index("\nrecover:") :].split("\n\n", 1)[0]
    assert "python -m commands.recover $(STACK)" in target
    steps = yaml.safe_load((root / ".github" / "workflows" / "up-stack.yml").read_text())["jobs"]["up"]["steps"]
    (step,) = [s for s in steps if s.get("name") == "recover from a killed run"]
    assert step["if"] == "inputs.recover"
    assert 'make recover STACK="$STACK"' in step["run"]
    assert "clear-pending-creates" not in step["run"]


def test_make_passes_each_deprovisioned_step_and_the_other_variables() -> None:
    """`make recover STACK=… DEPROVISIONED=<step> <step>` (what a refusal for a guest recovery cannot tell about
    says to run) reaches the command as one --deprovisioned per step."""
    root = Path(__file__).resolve().parents[2]
    make = ["make", "-n", "-s", "-C", str(root), "recover", "STACK=dev"]
    printed = subprocess.run(
        [*make, "DEPROVISIONED=a-guest b-guest", "PREVIEW=1", "WAIT_MINUTES=5"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    argv = printed.replace("\\\n", " ").split("python -m commands.recover", 1)[1].split()
    assert argv == [
        "dev",
        "--preview-only",
        "--wait-minutes",
        "5",
        "--deprovisioned",
        "a-guest",
        "--deprovisioned",
        "b-guest",
    ]
    plain = subprocess.run(make, capture_output=True, text=True, check=True).stdout
    assert plain.replace("\\\n", " ").split("python -m commands.recover", 1)[1].split() == ["dev"]


def test_a_guest_that_keeps_its_host_key_but_refuses_the_login_is_refused_naming_the_make_form(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    running = VmStatus(power_state="running", generalized=False, provisioning_state="succeeded", codes=())
    monkeypatch.setattr(guest_step.arm, "get_status", lambda *args, **kwargs: running)

    def login_refused(*args: Any, **kwargs: Any) -> Any:
        raise killed_deprovision.LoginRefused("sshd on 10.0.0.4:22 still offers the stack's host key, but refuses")

    monkeypatch.setattr(guest_step.killed_deprovision, "find_out", login_refused)
    step = pending(GUEST_TOKEN, {"vm_id": VM, "os_type": "Linux", "ssh": {"host": "10.0.0.4", "username": "u"}})
    said: list[str] = []
    look = LinuxGuestStep(ArmSettings(), cast(Any, None), "dev", (), lambda urn: None, said.append)
    d = look.decide(step["resource"]["urn"], step["resource"])
    assert d.action is Action.REFUSE
    assert "`make recover STACK=dev DEPROVISIONED=img-1.0.0` marks VM vm1 (resource group rg-build)" in d.reason
    told = LinuxGuestStep(ArmSettings(), cast(Any, None), "dev", ("img-1.0.0",), lambda urn: None, said.append)
    confirmed = told.decide(step["resource"]["urn"], step["resource"])
    assert confirmed.action is Action.GENERALIZE and confirmed.vm_id == VM
