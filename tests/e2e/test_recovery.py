"""A `pulumi up` killed at each step boundary (SIGKILL to the CLI and every plugin), recovered with the one documented
command (`make recover STACK=…`, commands/recover/) under the real CLI and the strict azure-native stand-in.

At every point the stack converges (a preview after it shows no change), nothing irreversible runs twice (the
guests' logs: one deprovision or sysprep; the fake ARM's request log: one deallocate, one generalize, one create of
the version, one role assignment made), and nothing is done by hand. The fakes hold the run at each point (see
tests/e2e/killing.py), so the kill lands there for certain. Then the variants of the version's create: a version
still replicating after recovery's bound, and a version of that number from another VM (refused, nothing changed).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.harness import Workspace
from tests.e2e.killing import ArmHold, Hold, SysprepHold, WaagentHold, kill_up_at, lock_files, recover
from tests.e2e.world import World, make_world, new_workspace
from tests.fakes.arm import FakeImageVersion, ReplicationStep, wait_for
from tests.fakes.sandbox import Sandbox

pytestmark = pytest.mark.e2e

VERSION = r"/images/{image}/versions/1\.0\.0$"
VERSION_PUT = VERSION.format(image="win2022")
ROLE_PUT = r"/roleAssignments/[^/]+$"
VM_OPERATION = r"/providers/Microsoft\.Compute/locations/[^/]+/operations/[^/]+$"
VERSION_TYPE = "azure-native:compute:GalleryImageVersion"
GUEST_TYPE = "pulumi-python:dynamic/generalization:GuestGeneralization"
VM_TYPE = "pulumi-python:dynamic/generalization:VmGeneralization"
ROLE_TYPE = "azure-native:authorization:RoleAssignment"
WAITING_FOR_THE_DEPROVISION = "a deprovision is still running on"
SYSPREP_WATCHED = "sysprep is already running (PID"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with make_world(tmp_path / "world") as w:
        yield w


def pending_creates(ws: Workspace) -> list[str]:
    # Read from the checkpoint file, not `pulumi stack export`: a kill can land while the file backend rewrites
    # the checkpoint's metadata sidecar in place (gocloud fileblob's setAttrs), and the CLI then refuses the stack
    # ("failed to load checkpoint: EOF") until `make recover` removes it; the checkpoint is renamed into place whole.
    (checkpoint,) = (ws.backend / ".pulumi" / "stacks").glob(f"**/{ws.stack}.json")
    latest = json.loads(checkpoint.read_text())["checkpoint"]["latest"]
    ops = latest.get("pending_operations") or []
    return sorted(op["resource"]["urn"].split("::")[-1] for op in ops if op["type"] == "creating")


def the_version(world: World) -> FakeImageVersion:
    (version,) = world.arm.image_versions.values()
    return version


# --- the kill points ------------------------------------------------------------------------------------------


def hold_the_deprovision(world: World) -> Hold:
    assert isinstance(world.sandbox, Sandbox), "the real waagent sandbox"
    return WaagentHold(world.sandbox.root)


def hold_sysprep(world: World) -> Hold:
    return SysprepHold(world.guest)


def hold_the_deallocation(world: World) -> Hold:
    """Azure accepted the deallocate (the VM is deallocating); the first poll of its operation is held. Once the
    client is gone, Azure finishes on its own: the VM is deallocated after two more reads of it."""
    arm, vm = world.arm, world.windows_vm

    def azure_finishes() -> None:
        vm.settles_to, vm.settle_after_reads = "deallocated", 2

    fault = arm.hold("GET", VM_OPERATION, when=lambda: arm.count("POST", "/deallocate$") == 1)
    return ArmHold(fault, "the deallocation", then=azure_finishes)


def hold_after_the_generalize(world: World) -> Hold:
    """The VM is generalized and the chain recorded; azure-native's existence check before the version's PUT is
    held: the version's create is pending, Azure has nothing of it."""
    arm = world.arm
    fault = arm.hold("GET", VERSION_PUT, when=lambda: arm.count("POST", "/generalize$") == 1)
    return ArmHold(fault, "the version's create, after the generalize")


@dataclass
class ReplicationRunning:
    """Azure accepted the version's create and replicates it: the capture's operation answers InProgress (the
    fault stays); reached at its first poll. Released, the version replicates by `replication`, if given."""

    world: World
    replication: dict[str, list[ReplicationStep]] | None = None
    what: str = "the version's create (replication running)"

    def __post_init__(self) -> None:
        self.fault = self.world.arm.add_fault(
            200, method="GET", path="/capsOperations/", times=None, body={"status": "InProgress"}
        )

    def reached(self) -> bool:
        return self.fault.reached.is_set()

    def release(self) -> None:
        if self.replication is not None:
            the_version(self.world).replication = self.replication


def hold_the_replication(world: World) -> Hold:
    """Killed while Azure replicates the version, region by region, each read moving it on (the version is
    Succeeded once Completed)."""
    return ReplicationRunning(world, {"West Europe": [("Replicating", 20), ("Replicating", 70), ("Completed", 100)]})


def hold_the_role_assignment(world: World) -> Hold:
    """The publisher's role assignment's PUT is held: Azure makes it after the client is gone."""
    return ArmHold(world.arm.hold("PUT", ROLE_PUT), "the role assignment's create")


@dataclass(frozen=True)
class KillPoint:
    """Where a `pulumi up` is killed: how the fakes hold it there, what the kill leaves behind, what `make recover`
    says about it."""

    linux: bool
    """The stack captures the Linux VM (the waagent sandbox), else the Windows VM (the fake WinRM guest)."""
    hold: Callable[[World], Hold]
    pending: tuple[str, ...]
    """Pending creates the kill leaves in the state (among others of steps running alongside)."""
    left_in_azure: Callable[[World], bool]
    """What Azure (or the guest) has at the kill."""
    says: tuple[str, ...]
    """Lines (or their starts) `make recover` prints about it."""
    release_on: str | None = None
    """Let the guest go on only once recovery prints this (the deprovision or the sysprep the killed run started,
    found still running and watched); None: right after the kill."""
    exactly_pending: bool = False
    """`pending` is all the kill leaves."""


POINTS = {
    "the Linux deprovision": KillPoint(
        linux=True,
        hold=hold_the_deprovision,
        pending=("ubuntu-2204-1.0.0-guest",),
        left_in_azure=lambda w: not w.linux_vm.generalized and w.linux_vm.power_state == "running",
        says=(
            f"ubuntu-2204-1.0.0-guest ({GUEST_TYPE}): mark the VM generalized, then clear: sshd on ",
            WAITING_FOR_THE_DEPROVISION,
            "offers no host key any more: waagent deleted them, so the killed run's deprovision went through",
        ),
        release_on=WAITING_FOR_THE_DEPROVISION,
    ),
    "sysprep": KillPoint(
        linux=False,
        hold=hold_sysprep,
        pending=("win2022-1.0.0-guest",),
        left_in_azure=lambda w: not w.windows_vm.generalized and w.windows_vm.power_state == "running",
        # `pulumi up` finds the killed run's sysprep still running, and watches it instead of starting another.
        says=(f"win2022-1.0.0-guest ({GUEST_TYPE}): clear", SYSPREP_WATCHED),
        release_on=SYSPREP_WATCHED,
        exactly_pending=True,
    ),
    "deallocate": KillPoint(
        linux=False,
        hold=hold_the_deallocation,
        pending=("win2022-1.0.0-vm",),
        left_in_azure=lambda w: w.windows_vm.power_state == "deallocating" and not w.windows_vm.generalized,
        # `pulumi up` waits for Azure to finish it, and never deallocates a second time.
        says=(f"win2022-1.0.0-vm ({VM_TYPE}): clear", "is deallocating; waiting until it has stopped"),
    ),
    "between generalize and the version's create": KillPoint(
        linux=False,
        hold=hold_after_the_generalize,
        pending=("win2022-1.0.0",),
        left_in_azure=lambda w: w.windows_vm.generalized and not w.arm.image_versions,
        says=(f"win2022-1.0.0 ({VERSION_TYPE}): clear: not in Azure (",),
    ),
    "the version's create, replicating": KillPoint(
        linux=False,
        hold=hold_the_replication,
        pending=("win2022-1.0.0",),
        left_in_azure=lambda w: the_version(w).provisioning_state == "Creating",
        says=(
            f"win2022-1.0.0 ({VERSION_TYPE}): import: in Azure at ",
            "win2022 1.0.0: still replicating: provisioning Creating, replication InProgress "
            "(West Europe Replicating 20%)",
            "win2022 1.0.0: replicated",
        ),
    ),
    "the role assignment": KillPoint(
        linux=False,
        hold=hold_the_role_assignment,
        pending=("e2e_gallery-publisher-owner",),
        # Azure makes it once the held PUT is let go, after the client is gone.
        left_in_azure=lambda w: wait_for(lambda: len(w.arm.role_assignments) == 1, timeout=10),
        says=(f"e2e_gallery-publisher-owner ({ROLE_TYPE}): import: in Azure at ",),
    ),
}


@pytest.mark.parametrize("where", list(POINTS))
def test_a_killed_up_recovers_with_one_command(where: str, tmp_path: Path, engine: Path, world: World) -> None:
    point = POINTS[where]
    image, vm = ("ubuntu-2204", world.linux_vm) if point.linux else ("win2022", world.windows_vm)
    ws = new_workspace(tmp_path / "ws", engine, world, linux=point.linux, windows=not point.linux)
    hold = point.hold(world)

    killed = kill_up_at(ws, hold, release=point.release_on is None)
    # Both plugins outlive the CLI: the dynamic host (run from the workspace) and the azure-native test plugin
    # (run from the repository's .venv: found by its environment, not its command line).
    assert any("pulumi.dynamic" in c for c in killed), killed
    assert any("azure_native_provider" in c for c in killed), killed
    pending = pending_creates(ws)
    if point.exactly_pending:
        assert pending == sorted(point.pending)
    assert set(point.pending) <= set(pending), pending
    assert point.left_in_azure(world), f"the kill at {where} left something else in Azure"
    locked = ws.pulumi("up", "--yes", program=True)
    assert locked.returncode != 0 and "pulumi cancel" in locked.output
    assert lock_files(ws), "the killed run left no lock"

    # The one documented command: nothing else is done by hand, before or after it.
    def on_line(line: str) -> None:
        if point.release_on is not None and point.release_on in line:
            hold.release()

    result = recover(ws, on_line=on_line)
    assert result.returncode == 0, result.output[-6000:]
    for said in point.says:
        assert said in result.stdout, result.stdout[-6000:]
    assert "lock: released (pulumi cancel)" in result.stdout
    assert not lock_files(ws)
    state = ws.export()["deployment"]
    assert not state.get("pending_operations")

    # Nothing irreversible twice.
    if point.linux:
        assert isinstance(hold, WaagentHold)
        assert len(hold.launches()) == 1, f"waagent was started again: {hold.launches()}"
        assert not world.sandbox.user_exists(world.sandbox.username)
    else:
        assert world.guest.sysprep_launch_count == 1, "sysprep was started a second time"
    assert world.arm.count("POST", "/deallocate$") == 1
    assert world.arm.count("POST", "/generalize$") == 1
    assert world.arm.count("PUT", VERSION.format(image=image)) == 1
    # One safety snapshot of the VM's OS disk (sourceVms.<key>.safetySnapshot is on by default), taken before the
    # guest step and found again by its name after the kill: never a second one.
    taken = [r for r in world.arm.requests if r.method == "PUT" and "/snapshots/" in r.path and r.status < 300]
    assert len(taken) == 1 and len(world.arm.snapshots) == 1, taken
    (snapshot,) = world.arm.snapshots.values()
    assert snapshot["properties"]["creationData"]["sourceResourceId"] == vm.os_disk_id
    made = [r for r in world.arm.requests if r.method == "PUT" and "/roleAssignments/" in r.path and r.status < 300]
    assert len(made) == 1 and len(world.arm.role_assignments) == 1, made

    # Converged: Azure and the state agree, and a preview has nothing to do.
    assert vm.generalized and vm.power_state == "deallocated"
    assert the_version(world).provisioning_state == "Succeeded"
    resources = {r["urn"].split("::")[-1]: r for r in state["resources"]}
    assert resources[f"{image}-1.0.0"]["id"] == the_version(world).id
    assert resources[f"{image}-1.0.0"]["outputs"]["provisioningState"] == "Succeeded"
    (assignment,) = world.arm.role_assignments.values()
    assert resources["e2e_gallery-publisher-owner"]["id"] == assignment.id
    exported = json.dumps(ws.export())
    assert world.guest.password not in exported
    assert world.sandbox.private_key.strip().splitlines()[1] not in exported
    again = ws.pulumi("preview", "--json", program=True).expect_ok()
    assert {step["op"] for step in again.events()} == {"same"}, again.events()


# --- the version's create: the variants -----------------------------------------------------------------------


def killed_during_the_version_create(tmp_path: Path, engine: Path, world: World) -> Workspace:
    """A stack whose `pulumi up` was killed once Azure accepted the version's create, its replication running:
    the capture's operation answers InProgress (the fault stays), the version is Creating."""
    ws = new_workspace(tmp_path / "ws", engine, world, linux=False)
    kill_up_at(ws, ReplicationRunning(world))  # the test scripts the replication
    assert pending_creates(ws) == ["win2022-1.0.0"]
    assert the_version(world).provisioning_state == "Creating"
    return ws


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
