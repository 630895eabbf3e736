"""Managed disk snapshots in the fake ARM (tests/fakes/arm.py mixes this in): `Microsoft.Compute/snapshots`, with
Azure's shapes, errors and API versions.

- PUT (REST "Snapshots - Create Or Update", https://learn.microsoft.com/rest/api/compute/snapshots/create-or-update):
  answers 202 with the snapshot (provisioningState Creating) and an operation to follow; the snapshot exists from
  then on (a re-run finds it), Succeeded once its operation ends. A second PUT of the same name is an update (200),
  never a second snapshot.
- `creationData.createOption: Copy` needs `sourceResourceId` naming a disk that exists, as Azure requires: a missing
  disk answers 404 NotFound "Resource <name> is not found." (what `az snapshot create --source <missing disk>`
  shows, quoted in Azure/azure-cli-extensions issues #5362 and #4542); no sourceResourceId answers 400
  InvalidParameter.
- Only the disk resource provider's API versions are served (`SNAPSHOT_API_VERSIONS`); another, e.g. the VM API's,
  answers 400 NoRegisteredProviderFound, as ARM does for a version the type does not have.
- DELETE: 202 and an operation; 204 when it is not there.

And what the restore commands of a guest failure do (run by the fake `az`, tests/fakes/az_restore.py): a disk
created from a snapshot (PUT disks, createOption Copy; a missing snapshot is Azure's NotFound), and a VM's OS disk
swapped for it (PATCH the VM; only when the VM is stopped, as Microsoft's "Swap the OS disk" requires).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

SNAPSHOT_API_VERSIONS = frozenset({"2022-07-02", "2023-01-02", "2023-04-02", "2023-10-02", "2024-03-02", "2025-01-02"})
"""api-versions of Microsoft.Compute/snapshots (the disk RP's; azure-rest-api-specs DiskRP)."""

_Answer = tuple[int, dict[str, Any] | None, dict[str, str]]


def _error(code: str, message: str, target: str | None = None) -> dict[str, Any]:
    err: dict[str, Any] = {"code": code, "message": message}
    if target:
        err["target"] = target
    return {"error": err}


class SnapshotRoutes:
    """The snapshot routes of FakeArm: `snapshots` ((sub, rg, name), lower-case → the snapshot as Azure returns it)."""

    snapshots: dict[tuple[str, str, str], dict[str, Any]]
    _body: dict[str, Any]

    # provided by FakeArm
    _start_vm_operation: Callable[..., dict[str, str]]
    disk_exists: Callable[[str], dict[str, Any] | None]

    def _api_refused(self, query: dict[str, str]) -> _Answer | None:
        version = query.get("api-version", "")
        if version in SNAPSHOT_API_VERSIONS:
            return None
        supported = "', '".join(sorted(SNAPSHOT_API_VERSIONS))
        return (
            400,
            _error(
                "NoRegisteredProviderFound",
                f"No registered resource provider found for location 'westeurope' and API version '{version}' for "
                f"type 'snapshots'. The supported api-versions are '{supported}'.",
            ),
            {},
        )

    def _on_snapshot(self, m: re.Match[str], query: dict[str, str]) -> _Answer:
        refused = self._api_refused(query)
        if refused is not None:
            return refused
        snap = self.snapshots.get((m["sub"].lower(), m["rg"].lower(), m["name"].lower()))
        if snap is None:
            return (
                404,
                _error(
                    "ResourceNotFound",
                    f"The Resource 'Microsoft.Compute/snapshots/{m['name']}' under resource group '{m['rg']}' was not "
                    "found. For more details please go to https://aka.ms/ARMResourceNotFoundFix",
                ),
                {},
            )
        return 200, snap, {}

    def _on_put_snapshot(self, m: re.Match[str], query: dict[str, str]) -> _Answer:
        refused = self._api_refused(query)
        if refused is not None:
            return refused
        body = self._body
        key = (m["sub"].lower(), m["rg"].lower(), m["name"].lower())
        props = body.get("properties") or {}
        creation = props.get("creationData") or {}
        existing = self.snapshots.get(key)
        if existing is not None:
            # An update: tags may change; the source may not.
            old = existing["properties"]["creationData"].get("sourceResourceId", "")
            if creation.get("sourceResourceId", old).lower() != old.lower():
                return (
                    409,
                    _error(
                        "PropertyChangeNotAllowed",
                        "Changing property 'sourceResourceId' is not allowed.",
                        "creationData.sourceResourceId",
                    ),
                    {},
                )
            existing["tags"] = dict(body.get("tags") or existing.get("tags") or {})
            return 200, existing, {}
        if not body.get("location"):
            return 400, _error("LocationRequired", "The location property is required for this definition."), {}
        if creation.get("createOption") != "Copy":
            return (
                400,
                _error(
                    "InvalidParameter",
                    "The value of parameter creationData.createOption is invalid.",
                    "creationData.createOption",
                ),
                {},
            )
        source_id = str(creation.get("sourceResourceId") or "")
        if not source_id:
            return (
                400,
                _error(
                    "InvalidParameter",
                    "Required parameter 'sourceResourceId' is missing (null).",
                    "sourceResourceId",
                ),
                {},
            )
        disk = self.disk_exists(source_id)
        if disk is None:
            name = source_id.rstrip("/").rsplit("/", 1)[-1]
            return 404, _error("NotFound", f"Resource {name} is not found."), {}
        group = f"/subscriptions/{m['sub']}/resourceGroups/{m['rg']}"
        snap: dict[str, Any] = {
            "name": m["name"],
            "id": f"{group}/providers/Microsoft.Compute/snapshots/{m['name']}",
            "type": "Microsoft.Compute/snapshots",
            "location": body["location"],
            "tags": dict(body.get("tags") or {}),
            "sku": {"name": "Standard_ZRS" if props.get("incremental") else "Standard_LRS", "tier": "Standard"},
            "properties": {
                "creationData": {
                    "createOption": "Copy",
                    "sourceResourceId": source_id,
                    "sourceUniqueId": str(uuid.uuid5(uuid.NAMESPACE_URL, source_id.lower())),
                },
                "incremental": bool(props.get("incremental")),
                "diskSizeGB": (disk.get("properties") or {}).get("diskSizeGB", 30),
                "timeCreated": datetime.now(UTC).isoformat(),
                "provisioningState": "Creating",
                "uniqueId": str(uuid.uuid4()),
            },
        }
        if props.get("incremental"):
            snap["properties"]["completionPercent"] = 0.0
        os_type = (disk.get("properties") or {}).get("osType")
        if os_type:
            snap["properties"]["osType"] = os_type
        self.snapshots[key] = snap

        def settle(ok: bool) -> None:
            if ok:
                snap["properties"]["provisioningState"] = "Succeeded"
                if snap["properties"]["incremental"]:
                    snap["properties"]["completionPercent"] = 100.0
            else:
                self.snapshots.pop(key, None)

        return 202, snap, self._start_vm_operation(m["sub"], snap["location"], query, settle)

    def _on_delete_snapshot(self, m: re.Match[str], query: dict[str, str]) -> _Answer:
        refused = self._api_refused(query)
        if refused is not None:
            return refused
        key = (m["sub"].lower(), m["rg"].lower(), m["name"].lower())
        snap = self.snapshots.get(key)
        if snap is None:
            return 204, None, {}

        def remove(ok: bool) -> None:
            if ok:
                self.snapshots.pop(key, None)

        return 202, None, self._start_vm_operation(m["sub"], snap["location"], query, remove)

    # What the restore commands of a guest failure do (hooks/safety_snapshots.py restore_commands): a disk from a
    # snapshot, and a VM's OS disk swapped for it.

    def _on_put_disk(self, m: re.Match[str], query: dict[str, str]) -> _Answer:
        """REST "Disks - Create Or Update" with `creationData: {createOption: Copy, sourceResourceId: <snapshot>}`:
        202 and an operation; a snapshot that does not exist answers 404 NotFound, as for a missing source disk."""
        body = self._body
        creation = (body.get("properties") or {}).get("creationData") or {}
        source_id = str(creation.get("sourceResourceId") or "")
        snap = next((s for s in self.snapshots.values() if s["id"].lower() == source_id.lower()), None)
        if creation.get("createOption") != "Copy" or not source_id:
            return 400, _error("InvalidParameter", "Required parameter 'sourceResourceId' is missing (null)."), {}
        if snap is None:
            name = source_id.rstrip("/").rsplit("/", 1)[-1]
            return 404, _error("NotFound", f"Resource {name} is not found."), {}
        key = (m["sub"].lower(), m["rg"].lower(), m["name"].lower())
        if key in self.disks:
            return 409, _error("Conflict", f"Disk {m['name']} already exists."), {}
        props = snap["properties"]
        disk: dict[str, Any] = {
            "name": m["name"],
            "id": f"/subscriptions/{m['sub']}/resourceGroups/{m['rg']}/providers/Microsoft.Compute/disks/{m['name']}",
            "type": "Microsoft.Compute/disks",
            "location": body.get("location") or snap["location"],
            "tags": dict(body.get("tags") or {}),
            "sku": {"name": "Premium_LRS", "tier": "Premium"},
            "properties": {
                "creationData": {"createOption": "Copy", "sourceResourceId": snap["id"]},
                "diskSizeGB": props.get("diskSizeGB", 30),
                "provisioningState": "Succeeded",
                "diskState": "Unattached",
                "timeCreated": datetime.now(UTC).isoformat(),
                **({"osType": props["osType"]} if props.get("osType") else {}),
            },
        }
        self.disks[key] = disk
        return 202, disk, self._start_vm_operation(m["sub"], disk["location"], query, None)

    def _on_patch_vm(self, m: re.Match[str], query: dict[str, str]) -> _Answer:
        """REST "Virtual Machines - Update" (PATCH) swapping `storageProfile.osDisk.managedDisk.id`: Azure swaps an
        OS disk only on a stopped (deallocated) VM, and only for a disk that exists ("Swap the OS disk")."""
        vm = self.vms.get((m["sub"].lower(), m["rg"].lower(), m["name"].lower()))
        if vm is None:
            return 404, _error("ResourceNotFound", f"The Resource 'Microsoft.Compute/virtualMachines/{m['name']}'"), {}
        os_disk = ((self._body.get("properties") or {}).get("storageProfile") or {}).get("osDisk") or {}
        new_id = str((os_disk.get("managedDisk") or {}).get("id") or "")
        if not new_id:
            return 400, _error("InvalidParameter", "Only the OS disk swap is served by this fake."), {}
        if vm.power_state not in ("stopped", "deallocated"):
            return (
                409,
                _error(
                    "OperationNotAllowed",
                    f"The OS disk of VM '{vm.name}' can be changed only when the VM is stopped (deallocated).",
                ),
                {},
            )
        disk = self.disks.get(_disk_key(new_id))
        if disk is None:
            return 404, _error("NotFound", f"Resource {new_id.rstrip('/').rsplit('/', 1)[-1]} is not found."), {}
        disk["managedBy"] = vm.id
        disk["properties"]["diskState"] = "Reserved"
        vm.os_disk_swapped_to = disk["id"]
        status, model, _ = self._on_vm(m, {})
        return status, model, {}

    _on_vm: Callable[..., _Answer]
    disks: dict[tuple[str, str, str], dict[str, Any]]
    vms: dict[tuple[str, str, str], Any]


def _disk_key(disk_id: str) -> tuple[str, str, str]:
    parts = disk_id.strip("/").split("/")
    return (parts[1].lower(), parts[3].lower(), parts[-1].lower()) if len(parts) >= 8 else ("", "", "")
