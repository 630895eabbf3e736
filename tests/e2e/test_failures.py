"""What users meet when something is wrong, under the real Pulumi CLI: a VM that does not match its image
definition (caught by preview, before anything irreversible), and a `pulumi up` killed in the middle of sysprep."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.killing import kill_up_when, lock_files, recover
from tests.e2e.world import World, make_world, new_workspace
from tests.fakes.wsman import SysprepBehaviour

pytestmark = pytest.mark.e2e


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with make_world(tmp_path / "world") as w:
        yield w


def test_preview_of_a_mismatched_vm_fails_naming_both_values(tmp_path: Path, engine: Path, world: World) -> None:
    world.linux_vm.hyper_v_generation = "V1"  # a Gen1 VM for a V2 definition: Azure refuses it only at capture
    ws = new_workspace(tmp_path / "ws", engine, world, windows=False)
    result = ws.pulumi("preview", "--json", program=True)
    assert result.returncode != 0
    assert "V1" in result.output and "V2" in result.output
    assert "hyperVGeneration" in result.output
    assert world.non_get() == [], "preview wrote to ARM"
    assert world.sandbox.user_exists(world.sandbox.username), "preview touched the guest"
    assert "Traceback" not in result.output


def test_up_without_preview_of_a_mismatched_vm_fails_before_the_guest_is_touched(
    tmp_path: Path, engine: Path, world: World
) -> None:
    """The update does not read Azure in Check (that would hold up the engine's step generation for every chain),
    so with `--skip-preview` the same checks run in the Create, before anything irreversible, with the same
    message."""
    world.linux_vm.hyper_v_generation = "V1"
    ws = new_workspace(tmp_path / "ws", engine, world, windows=False)
    result = ws.pulumi("up", "--yes", "--skip-preview", program=True)
    assert result.returncode != 0
    assert "V1" in result.output and "V2" in result.output
    assert "hyperVGeneration" in result.output
    # The message, under no traceback (hooks/step_failures.py), for the step and again as the stack's error.
    assert "Traceback" not in result.output, result.output[-3000:]
    assert any(
        line.strip().startswith("error: [ubuntu-2204-1.0.0-guest] VM") and "cannot be captured" in line
        for line in result.output.splitlines()
    ), result.output[-3000:]
    assert world.sandbox.user_exists(world.sandbox.username), "the guest was deprovisioned"
    assert not [path for _, path in world.non_get() if "/virtualMachines/" in path], "the VM was changed"


def test_up_killed_during_sysprep_then_recovered(tmp_path: Path, engine: Path, world: World) -> None:
    world.guest.sysprep = SysprepBehaviour(undeployable_after=0.5, runtime=6.0)
    ws = new_workspace(tmp_path / "ws", engine, world, linux=False)
    killed = kill_up_when(ws, lambda: world.guest.sysprep_launch_count > 0, "sysprep")
    # Both plugins outlive the CLI: the dynamic host (run from the workspace) and the azure-native test plugin
    # (run from the repository's .venv: found by its environment, not its command line).
    assert any("pulumi.dynamic" in c for c in killed), killed
    assert any("azure_native_provider" in c for c in killed), killed
    assert world.guest.sysprep_launch_count == 1
    exported = ws.export()
    pending = exported["deployment"].get("pending_operations") or []
    assert [(p["type"], p["resource"]["urn"].split("::")[-1]) for p in pending] == [("creating", "win2022-1.0.0-guest")]
    assert not world.windows_vm.generalized
    locked = ws.pulumi("up", "--yes", program=True)
    assert locked.returncode != 0 and "pulumi cancel" in locked.output
    assert lock_files(ws), "the killed run left no lock"

    # The one documented command: releases the lock, clears the step's pending create (the step starts again from
    # the VM's real state), then `pulumi up`.
    result = recover(ws)
    assert result.returncode == 0, result.output[-6000:]
    assert "win2022-1.0.0-guest (pulumi-python:dynamic/generalization:GuestGeneralization): clear" in result.stdout
    assert "lock: released (pulumi cancel)" in result.stdout
    assert not lock_files(ws)
    assert not (ws.export()["deployment"].get("pending_operations") or [])
    assert world.guest.sysprep_launch_count == 1, "sysprep was started a second time"
    assert world.windows_vm.generalized and world.windows_vm.power_state == "deallocated"
    assert world.arm.count("POST", "/generalize$") == 1
    versions = [
        r for r in ws.export()["deployment"]["resources"] if r["type"] == "azure-native:compute:GalleryImageVersion"
    ]
    assert [r["urn"].split("::")[-1] for r in versions] == ["win2022-1.0.0"], "the version was not created"
    assert world.arm.count("PUT", r"/versions/1\.0\.0$") == 1
    assert json.dumps(ws.export()).count(world.guest.password) == 0
    again = ws.pulumi("preview", "--json", program=True).expect_ok()
    assert {step["op"] for step in again.events()} == {"same"}, again.events()
