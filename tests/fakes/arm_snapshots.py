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
