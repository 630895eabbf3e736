"""The stack's whole life under the real Pulumi CLI, one step per test, in file order, on one stack.

preview of a new stack → up (one Linux and one Windows version) → up again (no changes) → stack export →
a version bump → refresh after the source VM was deleted → destroy (refused while protected; refused by Azure
before the end of life; done once `blockDeletionBeforeEndOfLife: false` was applied with `pulumi up`).
The peers: fake ARM (also behind the azure-native test plugin), the real sshd with the real waagent in a
sandbox, the fake WinRM guest. Each test asserts on the CLI's exit code, its JSON output and what ARM received.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import Result, Workspace
from tests.e2e.world import GALLERY, World, make_world, new_workspace

pytestmark = pytest.mark.e2e

GUEST_TYPE = "pulumi-python:dynamic/generalization:GuestGeneralization"
VM_TYPE = "pulumi-python:dynamic/generalization:VmGeneralization"
VERSION_TYPE = "azure-native:compute:GalleryImageVersion"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with make_world(tmp_path_factory.mktemp("world")) as w:
        yield w


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory, engine: Path, world: World) -> Workspace:
    return new_workspace(tmp_path_factory.mktemp("ws"), engine, world)


def secrets_of(world: World) -> list[str]:
    key_body = "".join(world.sandbox.private_key.strip().splitlines()[1:-1])
    return [world.guest.password, key_body[:40], key_body[-40:]]


def assert_no_secret(world: World, *texts: str) -> None:
    for text in texts:
        for secret in secrets_of(world):
            assert secret not in text, "a secret appeared in plaintext"


def steps_by_type(result: Result) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for step in result.events():
        urn = step.get("urn", "")
        out.setdefault(urn.split("::")[2].split("$")[-1], []).append(step)
    return out


def test_preview_of_a_new_stack(ws: Workspace, world: World) -> None:
    result = ws.pulumi("preview", "--json", program=True)
    result.expect_ok()
    ops = {(s["urn"].split("::")[-1], s["op"]) for s in result.events()}
    names = {name for name, _ in ops}
    for expected in (
        GALLERY,
        f"{GALLERY}-ubuntu-2204",
        f"{GALLERY}-win2022",
        f"{GALLERY}-publisher-owner",
        "ubuntu-2204-1.0.0",
        "ubuntu-2204-1.0.0-guest",
        "ubuntu-2204-1.0.0-vm",
        "win2022-1.0.0",
        "win2022-1.0.0-guest",
        "win2022-1.0.0-vm",
    ):
        assert expected in names, f"{expected} missing from the preview: {sorted(names)}"
    assert all(op == "create" for _, op in ops)
    # The capture-time checks read each source VM (GET only); nothing was written, no guest was contacted.
    vm_reads = [r for r in world.arm.requests if r.method == "GET" and "/virtualMachines/" in r.path]
    assert any(world.linux_vm.name in r.path for r in vm_reads)
    assert any(world.windows_vm.name in r.path for r in vm_reads)
    assert world.non_get() == []
    assert world.guest.requests == []
    assert_no_secret(world, result.output)


def test_up_creates_everything_in_order(ws: Workspace, world: World) -> None:
    world.arm.requests.clear()
    result = ws.pulumi("up", "--yes", "--skip-preview", program=True)
    result.expect_ok()
    # Guest deprovisioned by the real waagent (it deletes the provisioning user), sysprep ran once.
    assert not world.sandbox.user_exists(world.sandbox.username)
    assert world.guest.sysprep_launch_count == 1
    for vm in (world.linux_vm, world.windows_vm):
        assert vm.power_state == "deallocated" and vm.generalized
    writes = world.non_get()
    # Per VM: deallocate, then generalize, then the version PUT from that VM (the fake ARM refuses otherwise).
    for vm in (world.linux_vm, world.windows_vm):
        dealloc = writes.index(("POST", f"{vm.id}/deallocate"))
        general = writes.index(("POST", f"{vm.id}/generalize"))
        image = "ubuntu-2204" if vm is world.linux_vm else "win2022"
        put = writes.index(
            (
                "PUT",
                f"/subscriptions/{vm.subscription_id}/resourceGroups/rg-gallery/providers"
                f"/Microsoft.Compute/galleries/{GALLERY}/images/{image}/versions/1.0.0",
            )
        )
        assert dealloc < general < put
    assert any(m == "PUT" and "/roleAssignments/" in p and f"/galleries/{GALLERY}/" in p for m, p in writes)
    # Progress lines of the long steps are shown to the user, tied to the resource, without secrets.
    assert "ubuntu-2204-1.0.0-guest" in result.output
    assert "waagent" in result.output
    assert_no_secret(world, result.output)
    state = ws.state_file().read_text()
    assert_no_secret(world, state)


def test_second_up_changes_nothing(ws: Workspace, world: World) -> None:
    world.arm.requests.clear()
    world.guest.requests.clear()
    result = ws.pulumi("up", "--yes", "--expect-no-changes", program=True)
    result.expect_ok()
    assert world.non_get() == []
    assert world.guest.requests == []


def test_stack_export_holds_no_secret_and_small_provider_blobs(ws: Workspace, world: World) -> None:
    exported = ws.export()
    text = json.dumps(exported)
    assert_no_secret(world, text)
    blobs = [
        r["inputs"]["__provider"]
        for r in exported["deployment"]["resources"]
        if r["type"].startswith("pulumi-python:dynamic") and "__provider" in r.get("inputs", {})
    ]
    assert len(blobs) == 4
    for blob in blobs:
        # A secret blob is {sig, ciphertext}; either way it is a pickled reference, not code with its closures.
        size = len(blob["ciphertext"]) if isinstance(blob, dict) else len(base64.b64decode(blob))
        assert size < 2048, f"a provider blob of {size} bytes: the provider is pickled by value"


def test_a_version_bump_runs_only_the_new_chain(ws: Workspace, world: World) -> None:
    # A new version from a new VM, appended to the definition's versions. This VM was generalized by another
    # pipeline, so Azure reports it generalized: its guest is never contacted, the ARM half verifies it.
    new_vm = world.arm.add_vm("ubuntu-build-02", "rg-build", os_type="Linux", power_state="deallocated")
    new_vm.generalized = True
    world.arm.requests.clear()

    def add_source(config: dict[str, Any]) -> None:
        # The new VM's entry: a copy of the first one's (its `secure:` key is valid ciphertext for this stack).
        source = json.loads(json.dumps(config["image-gallery:sourceVms"]["ubuntu-build"]))
        source["id"] = new_vm.id
        config["image-gallery:sourceVms"]["ubuntu-build-2"] = source

    ws.edit_config(add_source)
    # Appending the version with `pulumi config set --path`, as a user can instead of editing the file.
    for path, value in (
        ("images[0].versions[1].version", "1.1.0"),
        ("images[0].versions[1].sourceVm", "ubuntu-build-2"),
        ("images[0].versions[1].targetRegions[0].name", "westeurope"),
    ):
        ws.pulumi("config", "set", "--path", f"image-gallery:{path}", value, check=True)
    up = ws.pulumi("up", "--yes", "--json", program=True).expect_ok()
    creates = {s["urn"].split("::")[-1] for s in up.events() if s["op"] == "create"}
    assert creates == {"ubuntu-2204-1.1.0", "ubuntu-2204-1.1.0-guest", "ubuntu-2204-1.1.0-vm"}
    others = {s["op"] for s in up.events() if s["urn"].split("::")[-1] not in creates}
    assert others <= {"same"}, others
    writes = world.non_get()
    assert [m for m, p in writes if world.windows_vm.name in p or world.linux_vm.name in p] == []
    assert [p for m, p in writes if m == "PUT" and p.endswith("/versions/1.1.0")]


def test_refresh_after_the_source_vm_was_deleted(ws: Workspace, world: World) -> None:
    # Users delete the build VM once the version exists. The guest and VM steps are records of what was done:
    # refresh keeps them (their read does not look for the VM), and the versions are read from the gallery.
    world.arm.remove_vm(world.linux_vm.subscription_id, world.linux_vm.resource_group, world.linux_vm.name)
    world.arm.requests.clear()
    refresh = ws.pulumi("refresh", "--yes", "--json", program=True).expect_ok()
    changed = [s for s in refresh.events() if s["op"] not in ("same", "refresh", "read")]
    assert changed == [] or all(s.get("diffs") in (None, []) for s in changed), changed
    assert world.non_get() == []
    assert ws.pulumi("preview", "--expect-no-changes", program=True).returncode == 0


def test_destroy_is_refused_while_versions_are_protected(ws: Workspace, world: World) -> None:
    world.arm.requests.clear()
    refused = ws.pulumi("destroy", "--yes", program=True)
    assert refused.returncode != 0
    assert "protect" in refused.output
    deleted = [p for m, p in world.non_get() if m == "DELETE"]
    assert not any("/versions/" in p for p in deleted)
    assert not any("/virtualMachines/" in r.path for r in world.arm.requests)


def test_destroy_before_the_end_of_life_is_refused_by_azure(ws: Workspace, world: World) -> None:
    # Unprotected, the versions still have the Azure CLI's default safety profile (blockDeletionBeforeEndOfLife
    # true, end of life six months after creation): Azure refuses their DELETE, and the CLI shows its message.
    ws.pulumi("state", "unprotect", "--all", "--yes", check=True)
    world.arm.requests.clear()
    refused = ws.pulumi("destroy", "--yes", program=True)
    assert refused.returncode != 0
    assert "cannot be deleted before its end of life date" in refused.output
    assert "blockDeletionBeforeEndOfLife is true" in refused.output
    assert VERSION_TYPE in refused.output, "the error names the resource"
    assert len(world.arm.image_versions) == 3, "every version is still there"
    assert not any("/virtualMachines/" in r.path for r in world.arm.requests)


def test_unblocking_deletion_is_an_in_place_update(ws: Workspace, world: World) -> None:
    # The README's way out: set the key false and `pulumi up` (it also puts back what the refused destroy removed).
    def unblock(config: dict[str, Any]) -> None:
        for image in config["image-gallery:images"]:
            for version in image["versions"]:
                version["blockDeletionBeforeEndOfLife"] = False

    ws.edit_config(unblock)
    world.arm.requests.clear()
    up = ws.pulumi("up", "--yes", "--json", program=True).expect_ok()
    ops = {s["urn"].split("::")[-1]: s["op"] for s in up.events() if s["urn"].split("::")[2].endswith(VERSION_TYPE)}
    assert ops == {"ubuntu-2204-1.0.0": "update", "ubuntu-2204-1.1.0": "update", "win2022-1.0.0": "update"}, ops
    for version in world.arm.image_versions.values():
        assert version.extra["safetyProfile"]["blockDeletionBeforeEndOfLife"] is False
        assert version.extra["publishingProfile"]["endOfLifeDate"], "the end of life stays as first created"
    assert not any("/virtualMachines/" in p for _, p in world.non_get())


def test_destroy_after_unprotecting_never_touches_a_source_vm(ws: Workspace, world: World) -> None:
    ws.pulumi("state", "unprotect", "--all", "--yes", check=True)
    world.arm.requests.clear()
    world.guest.requests.clear()
    result = ws.pulumi("destroy", "--yes", program=True).expect_ok()
    deleted = {p.rsplit("/", 1)[-1] for m, p in world.non_get() if m == "DELETE"}
    assert {"1.0.0", "1.1.0", "ubuntu-2204", "win2022", GALLERY} <= deleted
    assert not any("/virtualMachines/" in r.path for r in world.arm.requests)
    assert world.guest.requests == []
    assert "left untouched" in result.output
    assert world.windows_vm.generalized and world.arm.vms  # the VMs themselves are still there
