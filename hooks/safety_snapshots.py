"""Safety snapshots, the plain side: what the guest half snapshots before the guest step (`SnapshotPlan`), what it
took (`SafetySnapshot`), their names and tags, and the commands that give the source VM its OS disk back. No Azure
SDK here: the components and the offline plan import it; hooks/arm/snapshots.py takes and deletes them.

To give the VM its OS disk back, Microsoft's "Swap the OS disk" (Change the OS disk used by an Azure VM,
https://learn.microsoft.com/azure/virtual-machines/linux/os-disk-swap): create a disk from the snapshot, stop the
VM and `az vm update --os-disk` it; `restore_commands` writes those commands out for the actual snapshot.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from hooks.targets import VmRef

INCREMENTAL_SNAPSHOT_DOC = "https://learn.microsoft.com/azure/virtual-machines/disks-incremental-snapshots"
SWAP_OS_DISK_DOC = "https://learn.microsoft.com/azure/virtual-machines/linux/os-disk-swap"
DEFAULT_RETENTION_DAYS = 7
"""`safetySnapshotRetentionDays` when not set: a week to notice that a captured VM is needed again."""
MAX_RETENTION_DAYS = 3650

TAG = "image-gallery-safety-snapshot"
"""On every safety snapshot; its value names the stack and version (`<stack>/<definition>/<version>`)."""
TAG_STACK = "image-gallery-stack"
TAG_VERSION = "image-gallery-version"
TAG_SOURCE_VM = "image-gallery-source-vm"
TAG_KEEP_UNTIL = "image-gallery-keep-until"
"""The date (UTC, ISO) until which the snapshot is kept (`safetySnapshotRetentionDays` after it was taken)."""

NAME_LIMIT = 80
"""Azure's limit on a snapshot's name (letters, digits, `_`, `.`, `-`; ending with a letter, digit or `_`)."""
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


@dataclass(frozen=True)
class SnapshotPlan:
    """What the guest half snapshots before the guest step, and how the snapshots are tagged and kept."""

    stack: str
    version: str
    """`<definition>/<version>`: names the snapshots (with their disk) and tags them."""
    retention_days: int = DEFAULT_RETENTION_DAYS
    """`sourceVms.<key>.safetySnapshotRetentionDays`: 0 deletes them with the version's chain."""

    def to_props(self) -> dict[str, Any]:
        return {"stack": self.stack, "version": self.version, "retention_days": self.retention_days}

    @classmethod
    def from_props(cls, props: Mapping[str, Any]) -> SnapshotPlan:
        return cls(str(props["stack"]), str(props["version"]), int(props.get("retention_days", DEFAULT_RETENTION_DAYS)))

    def tags(self, vm: VmRef, taken: datetime) -> dict[str, str]:
        keep_until = (taken + timedelta(days=self.retention_days)).date().isoformat()
        return {
            TAG: f"{self.stack}/{self.version}"[:256],
            TAG_STACK: self.stack[:256],
            TAG_VERSION: self.version[:256],
            TAG_SOURCE_VM: vm.id[:256],  # Azure's tag values are at most 256 characters
            TAG_KEEP_UNTIL: keep_until,
        }


@dataclass(frozen=True)
class SafetySnapshot:
    """One snapshot taken (or found) of one disk of the source VM."""

    id: str
    disk_id: str
    lun: int | None
    """None for the OS disk; the data disk's LUN otherwise."""
    keep_until: str = ""

    @property
    def name(self) -> str:
        return self.id.rstrip("/").rsplit("/", 1)[-1]

    def to_props(self) -> dict[str, Any]:
        return {"id": self.id, "disk_id": self.disk_id, "lun": self.lun, "keep_until": self.keep_until}

    @classmethod
    def from_props(cls, props: Mapping[str, Any]) -> SafetySnapshot:
        lun = props.get("lun")
        return cls(
            str(props["id"]),
            str(props["disk_id"]),
            int(lun) if lun is not None else None,
            str(props.get("keep_until") or ""),
        )


def snapshot_name(disk_name: str, version: str) -> str:
    """The deterministic name of a disk's safety snapshot for a version: `<disk>-safety-<version>`, shortened with
    a hash of the whole when longer than Azure allows."""
    name = _NAME_UNSAFE.sub("-", f"{disk_name}-safety-{version.replace('/', '-')}")
    if len(name) <= NAME_LIMIT:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:10]
    return f"{name[: NAME_LIMIT - 11]}-{digest}"


def restore_commands(vm: VmRef, snapshot: SafetySnapshot) -> str:
    """The commands that give `vm` its OS disk back from `snapshot` (Microsoft, "Swap the OS disk",
    SWAP_OS_DISK_DOC): a new disk from the snapshot, the VM stopped (deallocated), its OS disk swapped."""
    disk = f"{vm.name[:60]}-restored-osdisk"  # within Azure's 80 characters, ending with a letter
    return (
        f"az disk create --resource-group {vm.resource_group} --name {disk} --source {snapshot.id} && "
        f"az vm deallocate --ids {vm.id} && "
        f"az vm update --ids {vm.id} --os-disk "
        f"/subscriptions/{vm.subscription_id}/resourceGroups/{vm.resource_group}/providers/Microsoft.Compute"
        f"/disks/{disk} && az vm start --ids {vm.id}"
    )


def restore_advice(vm: VmRef, snapshots: tuple[SafetySnapshot, ...]) -> str:
    """What a failure after the snapshots tells the user: which snapshots were taken, and the exact commands that
    swap the OS disk back (SWAP_OS_DISK_DOC)."""
    os_snapshot = next((s for s in snapshots if s.lun is None), None)
    if os_snapshot is None:
        return ""
    data = [f"LUN {s.lun}: {s.id}" for s in snapshots if s.lun is not None]
    also = f" Data disks' snapshots: {'; '.join(data)}." if data else ""
    return (
        f"The safety snapshot of its OS disk taken before the guest step is {os_snapshot.id}.{also} To give the VM "
        f'its OS disk back (Microsoft, "Swap the OS disk", {SWAP_OS_DISK_DOC}): '
        f"{restore_commands(vm, os_snapshot)}"
    )
