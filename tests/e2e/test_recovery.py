"""A `pulumi up` killed while Azure creates one of the stack's resources, recovered with the one documented command
(`make recover STACK=…`, commands/recover.py) under the real CLI and the strict azure-native stand-in: what the
killed run created is imported at its ID (never created a second time), a version still replicating is waited
for, and a resource that is not the stack's stops the recovery before anything changes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import Workspace
from tests.e2e.killing import kill_up_when, lock_files, recover
from tests.e2e.world import World, make_world, new_workspace
from tests.fakes.arm import FakeImageVersion, wait_for

pytestmark = pytest.mark.e2e

VERSION_PUT = r"/images/win2022/versions/1\.0\.0$"
ROLE_PUT = r"/roleAssignments/[^/]+$"
VERSION_TYPE = "azure-native:compute:GalleryImageVersion"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with make_world(tmp_path / "world") as w:
        yield w


def pending_creates(ws: Workspace) -> list[str]:
    ops = ws.export()["deployment"].get("pending_operations") or []
    return sorted(op["resource"]["urn"].split("::")[-1] for op in ops if op["type"] == "creating")


def the_version(world: World) -> FakeImageVersion:
    (version,) = world.arm.image_versions.values()
    return version


def killed_during_the_version_create(tmp_path: Path, engine: Path, world: World) -> Workspace:
    """A stack whose `pulumi up` was killed once Azure accepted the version's create, its replication running:
    the capture's operation answers InProgress (the fault stays), the version is Creating."""
    ws = new_workspace(tmp_path / "ws", engine, world, linux=False)
    world.arm.add_fault(200, method="GET", path="/capsOperations/", times=None, body={"status": "InProgress"})
    kill_up_when(
        ws,
        lambda: world.arm.count("PUT", VERSION_PUT) == 1 and world.arm.count("GET", "/capsOperations/") > 0,
        "the version's create",
    )
    assert pending_creates(ws) == ["win2022-1.0.0"]
    assert the_version(world).provisioning_state == "Creating"
    return ws


def test_killed_during_the_version_create_is_imported_and_waited_for(
    tmp_path: Path, engine: Path, world: World
) -> None:
    ws = killed_during_the_version_create(tmp_path, engine, world)
    # Azure replicates it region by region; each read moves it on (the version is Succeeded once Completed).
    the_version(world).replication = {"West Europe": [("Replicating", 20), ("Replicating", 70), ("Completed", 100)]}

    result = recover(ws)
    assert result.returncode == 0, result.output[-6000:]
    out = result.stdout
    assert "win2022-1.0.0 (azure-native:compute:GalleryImageVersion): import: in Azure at " in out
    assert "lock: released (pulumi cancel)" in out
    assert (
        "win2022 1.0.0: still replicating: provisioning Creating, replication InProgress (West Europe Replicating 20%)"
        in out
    )
    assert "win2022 1.0.0: replicated" in out
    # Nothing irreversible twice: one capture, one generalize, one sysprep.
    assert world.arm.count("PUT", VERSION_PUT) == 1
    assert world.arm.count("POST", "/generalize$") == 1
    assert world.guest.sysprep_launch_count == 1
    assert the_version(world).provisioning_state == "Succeeded"

    state = ws.export()["deployment"]
    assert not state.get("pending_operations") and not lock_files(ws)
    (version,) = [r for r in state["resources"] if r["type"] == VERSION_TYPE]
    assert version["id"] == the_version(world).id
    assert version["outputs"]["provisioningState"] == "Succeeded"  # read back once replicated
    again = ws.pulumi("preview", "--json", program=True).expect_ok()
    assert {step["op"] for step in again.events()} == {"same"}, again.events()


def test_a_version_still_replicating_after_the_bound_is_kept_and_waited_for_by_the_next_run(
    tmp_path: Path, engine: Path, world: World
) -> None:
    ws = killed_during_the_version_create(tmp_path, engine, world)
    the_version(world).replication = {"West Europe": [("Replicating", 10)]}  # until the test lets it end

    preview = recover(ws, "--preview-only")
    assert preview.returncode == 0, preview.output[-6000:]
    assert "win2022 1.0.0: still replicating" in preview.stdout
    assert f"`make recover STACK={ws.stack}` waits for win2022 1.0.0 before `pulumi up`" in preview.stdout

    first = recover(ws, "--wait-minutes", "0.02")
    assert first.returncode == 3, first.output[-6000:]
    assert "It is in the state; Azure goes on replicating it. Run this command again" in first.stdout
    state = ws.export()["deployment"]
    assert not state.get("pending_operations")
    assert [r["outputs"]["provisioningState"] for r in state["resources"] if r["type"] == VERSION_TYPE] == ["Creating"]

    the_version(world).replication = {"West Europe": [("Replicating", 10), ("Completed", 100)]}
    second = recover(ws)
    assert second.returncode == 0, second.output[-6000:]
    assert "no pending operation in the state" in second.stdout and "win2022 1.0.0: replicated" in second.stdout
    assert world.arm.count("PUT", VERSION_PUT) == 1


def test_a_version_of_that_number_from_another_vm_stops_the_recovery_changing_nothing(
    tmp_path: Path, engine: Path, world: World
) -> None:
    ws = killed_during_the_version_create(tmp_path, engine, world)
    other = world.arm.add_vm("win-build-02", "rg-build", os_type="Windows", power_state="deallocated")
    the_version(world).source_vm_id = other.id  # 1.0.0 was captured from another VM (another pipeline, by hand)
    before, locks, writes = ws.export(), lock_files(ws), world.non_get()

    result = recover(ws)
    assert result.returncode == 1, result.output[-6000:]
    assert "recover of stack 'e2e': refused: win2022-1.0.0: image version /subscriptions/" in result.stderr
    assert "exists in Azure but is not the one this stack was creating" in result.stderr
    assert f"storageProfile.source is {other.id} in Azure, {world.windows_vm.id} in the program" in result.stderr
    assert "Nothing was changed" in result.stderr
    assert ws.export() == before and lock_files(ws) == locks and world.non_get() == writes

    # Why the state is edited rather than handed to the CLI's own flag: `pulumi refresh --import-pending-creates URN
    # ID` of the pinned CLI forgets the resource instead of importing it.
    ws.pulumi("cancel", "--yes", check=True)
    urn = before["deployment"]["pending_operations"][0]["resource"]["urn"]
    pair = ("--import-pending-creates", urn, "--import-pending-creates", the_version(world).id)
    ws.pulumi("refresh", "--yes", *pair, program=True).expect_ok()
    after = ws.export()["deployment"]
    assert not after.get("pending_operations")
    assert urn not in {r["urn"] for r in after["resources"]}, "the pinned CLI imported it after all"
    # Forgotten (as `--clear-pending-creates` forgets it), the version is refused by azure-native's create check.
    up = ws.pulumi("up", "--yes", "--skip-preview", program=True)
    assert up.returncode != 0
    assert f"cannot create already existing resource '{the_version(world).id}'" in up.output, up.output[-3000:]
    assert world.arm.count("PUT", VERSION_PUT) == 1


def test_killed_during_the_role_assignment_imports_it(tmp_path: Path, engine: Path, world: World) -> None:
    """The publisher's role assignment reached Azure, the run died before recording it: created again under its
    (deterministic) name it would be refused as already existing; recovery imports it instead."""
    ws = new_workspace(tmp_path / "ws", engine, world, linux=False)
    slow = world.arm.slow_down(method="PUT", path=ROLE_PUT, seconds=3.0, times=1)
    kill_up_when(ws, lambda: slow.times == 0, "the role assignment's create")
    assert "e2e_gallery-publisher-owner" in pending_creates(ws)
    assert wait_for(lambda: len(world.arm.role_assignments) == 1, timeout=10), "Azure did not make it"
    (assignment,) = world.arm.role_assignments.values()  # made after the client was gone

    result = recover(ws)
    assert result.returncode == 0, result.output[-6000:]
    assert (
        "e2e_gallery-publisher-owner (azure-native:authorization:RoleAssignment): import: in Azure at " in result.stdout
    )
    assert world.arm.count("PUT", ROLE_PUT) == 1
    assert len(world.arm.role_assignments) == 1
    resources = {r["urn"].split("::")[-1]: r for r in ws.export()["deployment"]["resources"]}
    assert resources["e2e_gallery-publisher-owner"]["id"] == assignment.id
    assert world.arm.count("PUT", VERSION_PUT) == 1 and world.guest.sysprep_launch_count == 1
    assert json.dumps(ws.export()).count(world.guest.password) == 0
