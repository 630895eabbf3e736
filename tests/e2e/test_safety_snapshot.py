"""An in-place capture under the real Pulumi CLI takes a safety snapshot of the source VM's OS disk before sysprep
(hooks/arm/snapshots.py), and when sysprep then fails, the error names that snapshot with the commands that swap the
OS disk back: run as printed, through the fake Azure CLI against the fake ARM, they give the VM its disk back."""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.world import World, make_world, new_workspace
from tests.fakes.wsman import SysprepBehaviour

pytestmark = pytest.mark.e2e


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with make_world(tmp_path / "world") as w:
        yield w


def test_a_failed_sysprep_names_the_snapshot_and_its_commands_restore_the_vm(
    tmp_path: Path, engine: Path, world: World
) -> None:
    world.guest.sysprep = SysprepBehaviour(outcome="fail", runtime=0.2)
    vm = world.windows_vm
    original_os_disk = vm.os_disk_id
    ws = new_workspace(tmp_path / "ws", engine, world, linux=False)
    result = ws.pulumi("up", "--yes", "--skip-preview", program=True)
    assert result.returncode != 0
    assert world.guest.sysprep_launch_count == 1

    (snapshot,) = world.arm.snapshots.values()
    assert snapshot["properties"]["creationData"]["sourceResourceId"] == original_os_disk
    assert snapshot["properties"]["incremental"] is True
    assert snapshot["tags"]["image-gallery-stack"] == "e2e"
    assert snapshot["tags"]["image-gallery-source-vm"] == vm.id
    output = " ".join(result.output.split())
    assert f"The safety snapshot of its OS disk taken before the guest step is {snapshot['id']}" in output
    assert "Traceback" not in result.output

    start = output.index("az disk create ")
    stop = f"az vm start --ids {vm.id}"
    env = {**os.environ, **world.arm.env}
    for command in output[start : output.index(stop) + len(stop)].split(" && "):
        argv = shlex.split(command)
        done = subprocess.run([str(world.arm.bin_dir / "az"), *argv[1:]], env=env, capture_output=True, text=True)
        assert done.returncode == 0, (command, done.stderr)
    assert vm.os_disk_id != original_os_disk and vm.power_state == "running" and not vm.generalized
    restored = world.arm.disk_exists(vm.os_disk_id)
    assert restored is not None
    assert restored["properties"]["creationData"]["sourceResourceId"] == snapshot["id"]
