"""Safety snapshots: an incremental snapshot of each managed disk of the source VM (OS disk and data disks), taken
before the guest step of an in-place capture, so that a VM whose sysprep or waagent deprovision went wrong can be
given its disks back.

Microsoft, "Create an incremental snapshot for managed disks"
(https://learn.microsoft.com/azure/virtual-machines/disks-incremental-snapshots): an incremental snapshot is a
`Microsoft.Compute/snapshots` resource with `creationData: {createOption: Copy, sourceResourceId: <disk id>}` and
`incremental: true`, in the disk's region; billed for the changed data only. REST reference "Snapshots - Create
Or Update" (https://learn.microsoft.com/rest/api/compute/snapshots/create-or-update), api-version
`SNAPSHOTS_API_VERSION`.

Re-entrant: each snapshot has a name derived from its disk and the version (`snapshot_name`), so a re-run reads
it first and never takes a second one; one still being created is awaited (bounded), not created again.

Names, tags and the restore commands: hooks/safety_snapshots.py (no Azure SDK).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from hooks.arm.errors import quote_azure
from hooks.arm.operations import ArmRequests
from hooks.errors import ArmError, PreCheckFailed, WaitTimeout
from hooks.log import Log
from hooks.safety_snapshots import TAG_KEEP_UNTIL, SafetySnapshot, SnapshotPlan, snapshot_name
from hooks.targets import ArmSettings, VmRef
from hooks.waiting import Deadline

SNAPSHOTS_API_VERSION = "2024-03-02"
"""Microsoft.Compute/snapshots (the disk resource provider's API, as Microsoft.Compute/disks)."""
VM_API_VERSION = "2024-07-01"
"""Microsoft.Compute/virtualMachines: the VM model, for its disks' IDs."""
PERMISSION_SNAPSHOT_WRITE = "Microsoft.Compute/snapshots/write"
PERMISSION_SNAPSHOT_READ = "Microsoft.Compute/snapshots/read"
PERMISSION_SNAPSHOT_DELETE = "Microsoft.Compute/snapshots/delete"
PERMISSION_VM_READ = "Microsoft.Compute/virtualMachines/read"

_DISK_ID = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/Microsoft\.Compute/disks/(?P<name>[^/]+)$",
    re.I,
)
_IN_PROGRESS = ("creating", "updating", "inprogress", "accepted")
NEXT_RUN = "The next run finds the snapshot by its name and waits for it; it never takes a second one."


def _snapshot_path(vm: VmRef, name: str) -> str:
    group = f"/subscriptions/{vm.subscription_id}/resourceGroups/{vm.resource_group}"
    return f"{group}/providers/Microsoft.Compute/snapshots/{name}"


def vm_disks(client: ArmRequests, vm: VmRef) -> tuple[str, list[tuple[str, int | None]]]:
    """The VM's region and its managed disks as (disk ID, LUN or None for the OS disk). A VM with an unmanaged
    disk cannot be snapshotted this way: refused before anything is changed."""
    model = client.get(vm.id, VM_API_VERSION, str(vm), PERMISSION_VM_READ)
    if model is None:
        raise ArmError(f"{vm} was not found: nothing to snapshot. Check sourceVms.<key>.id.")
    storage = (model.get("properties") or {}).get("storageProfile") or {}
    disks: list[tuple[str, int | None]] = []
    for disk, lun in [(storage.get("osDisk") or {}, None)] + [
        (d, d.get("lun")) for d in storage.get("dataDisks") or []
    ]:
        disk_id = (disk.get("managedDisk") or {}).get("id")
        if not disk_id:
            which = "OS disk" if lun is None else f"data disk at LUN {lun}"
            raise PreCheckFailed(
                f"The {which} of {vm} is not a managed disk, so no safety snapshot can be taken of it. Nothing was "
                "changed. Snapshot it yourself, then set sourceVms.<key>.safetySnapshot: false and run again."
            )
        disks.append((str(disk_id), None if lun is None else int(lun)))
    return str(model.get("location") or ""), disks


def take_safety_snapshots(
    settings: ArmSettings, vm: VmRef, plan: SnapshotPlan, log: Log, now: datetime | None = None
) -> tuple[SafetySnapshot, ...]:
    """An incremental snapshot of each managed disk of `vm`, or the one a previous run took. Every wait bounded by
    `settings.operation_timeout` (armOperationTimeoutMinutes)."""
    client = ArmRequests(settings, vm.subscription_id, log, NEXT_RUN)
    location, disks = vm_disks(client, vm)
    taken = now or datetime.now(UTC)
    tags = plan.tags(vm, taken)
    deadline = Deadline(settings.operation_timeout, f"the safety snapshots of {vm}")
    snapshots: list[SafetySnapshot] = []
    for disk_id, lun in disks:
        name = snapshot_name(disk_id.rsplit("/", 1)[-1], plan.version)
        snapshots.append(ensure_snapshot(client, vm, name, disk_id, lun, location, tags, deadline, log))
    return tuple(snapshots)


def ensure_snapshot(
    client: ArmRequests,
    vm: VmRef,
    name: str,
    disk_id: str,
    lun: int | None,
    location: str,
    tags: dict[str, str],
    deadline: Deadline,
    log: Log,
) -> SafetySnapshot:
    path = _snapshot_path(vm, name)
    what = f"snapshot {name} of disk {disk_id.rsplit('/', 1)[-1]}"
    found = client.get(path, SNAPSHOTS_API_VERSION, what, PERMISSION_SNAPSHOT_READ)
    if found is not None:
        source = str(((found.get("properties") or {}).get("creationData") or {}).get("sourceResourceId") or "")
        if source.lower() != disk_id.lower():
            raise PreCheckFailed(
                f"A snapshot named {name} already exists in resource group {vm.resource_group}, but of "
                f"{source or 'another source'}, not of {disk_id}. Nothing was changed. Delete or rename it, then run "
                "again."
            )
        log.info(f"safety {what} exists already (taken by an earlier run); not taken again")
        _wait_succeeded(client, path, what, found, deadline)
        keep = str((found.get("tags") or {}).get(TAG_KEEP_UNTIL) or "")
        return SafetySnapshot(str(found.get("id") or path), disk_id, lun, keep)
    body = {
        "location": location,
        "tags": tags,
        "properties": {"creationData": {"createOption": "Copy", "sourceResourceId": disk_id}, "incremental": True},
    }
    log.info(f"taking an incremental safety {what}")
    status, answer, headers = client.send(
        "PUT", f"{path}?api-version={SNAPSHOTS_API_VERSION}", "create", what, PERMISSION_SNAPSHOT_WRITE, body
    )
    if status == 404:
        # Azure's answer when the source disk does not exist (NotFound "Resource <disk> is not found.").
        error = (answer or {}).get("error") or {}
        raise ArmError(
            f"Azure could not take the safety {what}: {error.get('code') or 'NotFound'}: "
            f"{quote_azure(str(error.get('message') or 'not found'))} Nothing was changed in the VM. Check that "
            f"{vm} still has the disk {disk_id}, then run again."
        )
    client.wait_operation(headers, "create", what, deadline)
    snapshot_id = str((answer or {}).get("id") or path)
    log.info(f"safety {what} taken: {snapshot_id}")
    return SafetySnapshot(snapshot_id, disk_id, lun, tags.get(TAG_KEEP_UNTIL, ""))


def _wait_succeeded(client: ArmRequests, path: str, what: str, found: Any, deadline: Deadline) -> None:
    """An existing snapshot still being created (a run killed while Azure took it): poll it until Succeeded."""
    state = str((found.get("properties") or {}).get("provisioningState") or "")
    while state.lower() in _IN_PROGRESS:
        if deadline.expired:
            raise WaitTimeout(f"{deadline.timeout()}: the safety {what} is still {state}. {NEXT_RUN}")
        deadline.sleep(client.settings.poll_interval)
        body = client.get(path, SNAPSHOTS_API_VERSION, what, PERMISSION_SNAPSHOT_READ, within=deadline)
        if body is None:
            raise ArmError(f"The safety {what} disappeared while it was being created. Run again to take it anew.")
        state = str((body.get("properties") or {}).get("provisioningState") or "")
    if state.lower() not in ("succeeded", ""):
        raise ArmError(
            f"The safety {what} is in provisioning state {state}, not Succeeded. Delete it "
            f"(`az snapshot delete --ids {path}`) and run again."
        )


def delete_safety_snapshots(settings: ArmSettings, snapshots: tuple[SafetySnapshot, ...], log: Log) -> list[str]:
    """Delete the given snapshots (each bounded by operation_timeout); the IDs deleted. One already gone is fine."""
    deleted: list[str] = []
    for snap in snapshots:
        match = _DISK_ID.match(snap.disk_id)
        subscription = match["sub"] if match else snap.id.split("/")[2]
        client = ArmRequests(settings, subscription, log)
        deadline = Deadline(settings.operation_timeout, f"the deletion of snapshot {snap.name}")
        if client.delete(snap.id, SNAPSHOTS_API_VERSION, f"snapshot {snap.name}", PERMISSION_SNAPSHOT_DELETE, deadline):
            deleted.append(snap.id)
    return deleted
