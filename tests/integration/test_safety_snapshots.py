"""The safety snapshots of the guest half (hooks/arm/snapshots.py) through the real dynamic provider host, against
the fake ARM's snapshots (tests/fakes/arm_snapshots.py) and the scripted SSH guest: one incremental snapshot per
disk before the guest step, tagged, never a second one, named with the restore command in a guest failure, deleted
with the chain when their retention is 0, refused by Azure for a disk that does not exist."""

# ruff: noqa: F811 (pytest fixtures imported from tests.fakes are reused as parameter and variable names)
from __future__ import annotations

import os
import shlex
import subprocess
from typing import Any

import pytest

from hooks import arm
from hooks.arm.snapshots import SNAPSHOTS_API_VERSION, ensure_snapshot
from hooks.errors import ArmError
from hooks.log import Log
from hooks.safety_snapshots import TAG, TAG_SOURCE_VM, TAG_STACK, TAG_VERSION, SafetySnapshot, SnapshotPlan
from hooks.waiting import Deadline
from tests.fakes.arm import FakeArm, FakeVm, fake_arm, fake_arm_env  # noqa: F401 (fixtures)
from tests.fakes.dynamic_host import DynamicHost, HostError, host_factory  # noqa: F401
from tests.fakes.ssh_guest import SCRIPT_COMMAND, ScriptedLinuxGuest
from tests.fakes.wsman import FakeWsman, GuestModel, guest, ntlm_user_file, wsman_ca, wsman_server  # noqa: F401
from tests.integration.test_guest_provider_linux import GUEST_URN, guest_props

UNDEPLOYABLE = "IMAGE_STATE_UNDEPLOYABLE"
SNAPSHOT_PATH = r"/providers/Microsoft\.Compute/snapshots/"


def props_with_snapshot(fake: FakeArm, vm_id: str, guest: ScriptedLinuxGuest, retention_days: int) -> dict[str, Any]:
    props = guest_props(
        fake, vm_id, host=guest.host, port=guest.port, host_key=guest.host_key, private_key=guest.private_key
    )
    props["safety_snapshot"] = SnapshotPlan("dev", "ubuntu/1.0.0", retention_days).to_props()
    return props


def test_each_disk_is_snapshotted_once_and_a_guest_failure_names_the_restore(
    fake_arm: FakeArm,
    host_factory: Any,
) -> None:
    vm = fake_arm.add_vm(power_state="running", data_disk_sizes_gb=[64])
    host: DynamicHost = host_factory(fake_arm.env)
    with ScriptedLinuxGuest(sudo_installed=False) as broken, pytest.raises(HostError) as err:
        host.create(GUEST_URN, props_with_snapshot(fake_arm, vm.id, broken, 7))
    snapshots = sorted(fake_arm.snapshots.values(), key=lambda s: s["name"])
    assert [s["properties"]["creationData"]["sourceResourceId"] for s in snapshots] == sorted(
        [vm.data_disk_id(0), vm.os_disk_id]
    )
    assert all(s["properties"]["incremental"] is True for s in snapshots)
    assert all(s["properties"]["provisioningState"] == "Succeeded" for s in snapshots)
    assert {s["tags"][TAG_STACK] for s in snapshots} == {"dev"}
    assert {s["tags"][TAG_VERSION] for s in snapshots} == {"ubuntu/1.0.0"}
    assert {s["tags"][TAG_SOURCE_VM] for s in snapshots} == {vm.id}
    assert {s["tags"][TAG] for s in snapshots} == {"dev/ubuntu/1.0.0"}
    os_snapshot = next(s for s in snapshots if s["properties"]["creationData"]["sourceResourceId"] == vm.os_disk_id)
    # The failure names the actual snapshot and the exact commands that swap the OS disk back.
    details = " ".join(err.value.details.split())
    assert os_snapshot["id"] in details
    assert f"az disk create --resource-group {vm.resource_group}" in details
    assert f"--source {os_snapshot['id']}" in details
    assert f"az vm update --ids {vm.id} --os-disk " in details
    assert fake_arm.count("PUT", SNAPSHOT_PATH) == 2

    # The next run finds both snapshots by name: no second snapshot of a disk that sudo never touched.
    with ScriptedLinuxGuest() as guest:
        _, outs = host.create(GUEST_URN, props_with_snapshot(fake_arm, vm.id, guest, 7))
        assert guest.commands == [SCRIPT_COMMAND]
    assert fake_arm.count("PUT", SNAPSHOT_PATH) == 2
    assert sorted(s["id"] for s in outs["safety_snapshots"]) == sorted(s["id"] for s in snapshots)
    assert [s.get("lun") for s in outs["safety_snapshots"]] == [None, 0]  # null fields do not travel


def test_retention_zero_deletes_them_with_the_chain_and_a_retention_keeps_them(
    fake_arm: FakeArm,
    host_factory: Any,
) -> None:
    kept_vm = fake_arm.add_vm("kept-vm", power_state="running")
    gone_vm = fake_arm.add_vm("gone-vm", power_state="running")
    host: DynamicHost = host_factory(fake_arm.env)
    with ScriptedLinuxGuest() as guest:
        kept_id, kept = host.create(GUEST_URN, props_with_snapshot(fake_arm, kept_vm.id, guest, 7))
    with ScriptedLinuxGuest() as guest:
        gone_id, gone = host.create(GUEST_URN, props_with_snapshot(fake_arm, gone_vm.id, guest, 0))
    assert len(fake_arm.snapshots) == 2
    host.delete(GUEST_URN, kept_id, kept)
    assert fake_arm.count("DELETE", SNAPSHOT_PATH) == 0
    host.delete(GUEST_URN, gone_id, gone)
    assert fake_arm.count("DELETE", SNAPSHOT_PATH) == 1
    assert [s["id"] for s in fake_arm.snapshots.values()] == [kept["safety_snapshots"][0]["id"]]


def test_no_snapshot_when_turned_off(fake_arm: FakeArm, host_factory: Any) -> None:
    vm = fake_arm.add_vm(power_state="running")
    host: DynamicHost = host_factory(fake_arm.env)
    with ScriptedLinuxGuest() as guest:
        props = props_with_snapshot(fake_arm, vm.id, guest, 7)
        props["safety_snapshot"] = None
        _, outs = host.create(GUEST_URN, props)
    assert outs["safety_snapshots"] == [] and fake_arm.count(method=None, path=SNAPSHOT_PATH) == 0


def _snapshot(fake: FakeArm, vm: FakeVm, disk_id: str) -> SafetySnapshot:
    client = arm.ArmRequests(fake.settings(poll_interval=0.05), vm.subscription_id, Log("test"))
    deadline = Deadline(10.0, "the test snapshot")
    return ensure_snapshot(client, vm.ref, "s1", disk_id, None, vm.location, {}, deadline, Log("test"))


def test_azure_refuses_a_snapshot_of_a_disk_that_does_not_exist(fake_arm_env: FakeArm) -> None:
    vm = fake_arm_env.add_vm(power_state="running")
    gone = vm.os_disk_id.replace("_OsDisk_", "_Gone_")
    with pytest.raises(ArmError) as err:
        _snapshot(fake_arm_env, vm, gone)
    assert "is not found" in str(err.value) and gone in str(err.value)
    assert fake_arm_env.snapshots == {}
    taken = _snapshot(fake_arm_env, vm, vm.os_disk_id)
    assert taken.name == "s1" and len(fake_arm_env.snapshots) == 1
    snapshot_requests = [r for r in fake_arm_env.requests if "/snapshots/" in r.path]
    assert snapshot_requests and all(r.query["api-version"] == SNAPSHOTS_API_VERSION for r in snapshot_requests)


def test_the_fake_serves_snapshots_only_at_the_disk_api_versions(fake_arm_env: FakeArm) -> None:
    vm = fake_arm_env.add_vm()
    client = arm.ArmRequests(fake_arm_env.settings(), vm.subscription_id, Log("test"))
    path = f"/subscriptions/{vm.subscription_id}/resourceGroups/{vm.resource_group}/providers/Microsoft.Compute"
    with pytest.raises(ArmError) as err:
        client.get(f"{path}/snapshots/s1", "2024-07-01", "snapshot s1", "")
    assert "NoRegisteredProviderFound" in str(err.value) or "api-version" in str(err.value)


def test_a_windows_vm_that_must_be_reinstalled_is_told_which_snapshot_gives_its_disk_back(
    fake_arm: FakeArm,
    host_factory: Any,
    wsman_server: FakeWsman,
    guest: GuestModel,
) -> None:
    from tests.integration.test_guest_provider_windows import GUEST_URN as WINDOWS_URN
    from tests.integration.test_guest_provider_windows import windows_props

    guest.image_state = UNDEPLOYABLE  # a sysprep that failed before: Microsoft says reinstall
    vm = fake_arm.add_vm(power_state="running", os_type="Windows")
    host: DynamicHost = host_factory(fake_arm.env)
    props = windows_props(fake_arm, vm.id, wsman_server, guest, guest.password)
    props["safety_snapshot"] = SnapshotPlan("dev", "win2022/1.0.0", 7).to_props()
    with pytest.raises(HostError) as err:
        host.create(WINDOWS_URN, props)
    (snapshot,) = fake_arm.snapshots.values()
    details = " ".join(err.value.details.split())
    assert UNDEPLOYABLE in details and "restore its OS disk" in details
    assert f"is {snapshot['id']}" in details and f"--source {snapshot['id']}" in details
    assert f"az vm update --ids {vm.id} --os-disk" in details
    assert guest.sysprep_launch_count == 0


def test_the_preview_says_what_will_be_snapshotted(fake_arm: FakeArm, host_factory: Any) -> None:
    vm = fake_arm.add_vm(power_state="running", data_disk_sizes_gb=[64])
    host: DynamicHost = host_factory(fake_arm.env)
    with ScriptedLinuxGuest() as guest:
        props = props_with_snapshot(fake_arm, vm.id, guest, 0)
        assert host.check(GUEST_URN, {}, props).failures == []
        props["safety_snapshot"] = None
        assert host.check(GUEST_URN, {}, props).failures == []
    log = " ".join(host.close().split())
    assert f"safety snapshot: an incremental snapshot of the OS disk and of each data disk of {vm.id}" in log
    assert "named <disk>-safety-ubuntu-1.0.0" in log and "deleted with the version's chain" in log
    assert "safety snapshot: none: sourceVms.<key>.safetySnapshot is false" in log
    assert fake_arm.count(path=SNAPSHOT_PATH) == 0, "a preview takes no snapshot"


def test_the_restore_commands_of_the_message_give_the_vm_its_os_disk_back(fake_arm: FakeArm, host_factory: Any) -> None:
    vm = fake_arm.add_vm(power_state="running")
    original_os_disk = vm.os_disk_id
    host: DynamicHost = host_factory(fake_arm.env)
    with ScriptedLinuxGuest(sudo_installed=False) as broken, pytest.raises(HostError) as err:
        host.create(GUEST_URN, props_with_snapshot(fake_arm, vm.id, broken, 7))
    (snapshot,) = fake_arm.snapshots.values()
    details = " ".join(err.value.details.split())
    start = details.index("az disk create ")
    end = details.index(f"az vm start --ids {vm.id}") + len(f"az vm start --ids {vm.id}")
    # Run as the message gives them, through the fake Azure CLI, against the fake ARM.
    env = {**os.environ, **fake_arm.env}
    for command in details[start:end].split(" && "):
        argv = shlex.split(command)
        assert argv[0] == "az", command
        done = subprocess.run([str(fake_arm.bin_dir / "az"), *argv[1:]], env=env, capture_output=True, text=True)
        assert done.returncode == 0, (command, done.stderr)
    assert vm.os_disk_id != original_os_disk and vm.power_state == "running"
    restored = fake_arm.disk_exists(vm.os_disk_id)
    assert restored is not None
    assert restored["properties"]["creationData"]["sourceResourceId"] == snapshot["id"]
    assert fake_arm.count("PATCH", r"/virtualMachines/") == 1
    # The swap needs the VM deallocated first, as Azure does: the fake refuses it on a running VM.
    again = subprocess.run(
        [str(fake_arm.bin_dir / "az"), "vm", "update", "--ids", vm.id, "--os-disk", vm.os_disk_id],
        env=env,
        capture_output=True,
        text=True,
    )
    assert again.returncode != 0 and "OperationNotAllowed" in again.stderr
