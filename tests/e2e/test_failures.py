"""What users meet when something is wrong, under the real Pulumi CLI: a VM that does not match its image
definition, caught by preview (or, without one, by the create) before anything irreversible. A `pulumi up` killed
in the middle of a step (sysprep among them) is tests/e2e/test_recovery.py's."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.world import World, make_world, new_workspace

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
