"""hooks/safety_snapshots.py: the snapshots' names within Azure's rules, their tags and keep-until date, the
plan's and the snapshot's round trip through props, and the restore commands naming the actual snapshot."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from hooks.safety_snapshots import (
    NAME_LIMIT,
    TAG_KEEP_UNTIL,
    SafetySnapshot,
    SnapshotPlan,
    restore_advice,
    restore_commands,
    snapshot_name,
)
from hooks.targets import VmRef

VM = VmRef("00000000-0000-0000-0000-00000000aaaa", "rg-build", "ubuntu-build-01")
GROUP = f"/subscriptions/{VM.subscription_id}/resourceGroups/{VM.resource_group}/providers/Microsoft.Compute"
AZURE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,78}[A-Za-z0-9_]$")
"""Azure's rule for snapshot and disk names: 1-80 characters, ending with a letter, a digit or an underscore."""


def test_names_are_deterministic_and_within_azures_rules() -> None:
    short = snapshot_name("ubuntu-build-01_OsDisk_1_0123456789abcdef0123456789abcdef", "ubuntu/1.0.0")
    assert short == "ubuntu-build-01_OsDisk_1_0123456789abcdef0123456789abcdef-safety-ubuntu-1.0.0"
    long_disk = "a-very-long-build-machine-name-for-images_OsDisk_1_0123456789abcdef0123456789abcdef"
    one, other = snapshot_name(long_disk, "ubuntu/1.0.0"), snapshot_name(long_disk, "ubuntu/1.0.1")
    assert one == snapshot_name(long_disk, "ubuntu/1.0.0") and one != other
    for name in (short, one, other):
        assert len(name) <= NAME_LIMIT and AZURE_NAME.match(name), name


def test_tags_and_keep_until() -> None:
    plan = SnapshotPlan("prod", "ubuntu/1.0.0", 7)
    tags = plan.tags(VM, datetime(2026, 12, 30, 23, 0, tzinfo=UTC))
    assert tags[TAG_KEEP_UNTIL] == "2027-01-06"
    assert tags["image-gallery-safety-snapshot"] == "prod/ubuntu/1.0.0"
    assert tags["image-gallery-source-vm"] == VM.id and all(len(v) <= 256 for v in tags.values())
    assert SnapshotPlan.from_props(plan.to_props()) == plan


def test_restore_commands_name_the_snapshot_and_swap_the_os_disk() -> None:
    snap = SafetySnapshot(f"{GROUP}/snapshots/s-os", f"{GROUP}/disks/os", None, "2027-01-06")
    data = SafetySnapshot(f"{GROUP}/snapshots/s-data", f"{GROUP}/disks/data", 0, "2027-01-06")
    assert SafetySnapshot.from_props(snap.to_props()) == snap
    commands = restore_commands(VM, snap).split(" && ")
    assert commands == [
        f"az disk create --resource-group rg-build --name ubuntu-build-01-restored-osdisk --source {snap.id}",
        f"az vm deallocate --ids {VM.id}",
        f"az vm update --ids {VM.id} --os-disk {GROUP}/disks/ubuntu-build-01-restored-osdisk",
        f"az vm start --ids {VM.id}",
    ]
    advice = restore_advice(VM, (snap, data))
    assert f"is {snap.id}." in advice and f"LUN 0: {data.id}" in advice and "os-disk-swap" in advice
    assert restore_advice(VM, ()) == "" and restore_advice(VM, (data,)) == ""
