"""`images[].versions[]`: each version of a definition, captured from a source VM (`sourceVm`) or promoted from
another image version (`sourceVersion`), and where it is replicated (`targetRegions`)."""

from __future__ import annotations

import calendar
import re
from collections.abc import Mapping
from datetime import date
from typing import Any

from config.constants import (
    CONFIDENTIAL_SECURITY_TYPES,
    CONFIDENTIAL_VM_ENCRYPTION_TYPES,
    DEFAULT_END_OF_LIFE_MONTHS,
    DEFINITION_NAME,
    REPLICATION_MODES,
    STORAGE_ACCOUNT_TYPES,
)
from config.reader import MISSING, Node, read_future_date, read_region
from config.specs import ImageVersionSpec, SourceVersionSpec, SourceVmSpec, TargetRegionSpec
from hooks.regions import known_regions
from hooks.steps import MARKETPLACE_DATA_DISK_SOURCE, MARKETPLACE_MAX_DATA_DISKS
from hooks.targets import ImageVersionRef

# Gallery image versions: Major.Minor.Patch of ASCII digits (`\d` would let full-width digits through).
_VERSION = re.compile(r"^([0-9]+)\.([0-9]+)\.([0-9]+)$")
_MAX_U32 = 2**31 - 1  # Azure stores each version part as a 32-bit signed integer
_MAX_LUN = 63
_DISK_ENCRYPTION_SET_ID = re.compile(
    r"^/subscriptions/[0-9a-fA-F-]{36}/resourceGroups/[-\w._()]{1,90}/providers/Microsoft\.Compute"
    r"/diskEncryptionSets/[A-Za-z0-9_-]{1,80}$",
    re.IGNORECASE,
)
_STACK_NAME = re.compile(r"^([A-Za-z0-9_.-]{1,100}/){0,2}[A-Za-z0-9_.-]{1,100}$")


def _target_region(node: Node, default_replicas: int, default_storage: str) -> TargetRegionSpec | None:
    name = read_region(node, "name", required=True)
    replicas = node.integer("replicaCount", default_replicas, 1, 100)
    storage = node.choice("storageAccountType", STORAGE_ACCOUNT_TYPES, default_storage)
    exclude = node.boolean("excludeFromLatest", False)
    hint = (
        "is not a disk encryption set ID "
        "(/subscriptions/<guid>/resourceGroups/<rg>/providers/Microsoft.Compute/diskEncryptionSets/<name>)"
    )
    des = node.string("diskEncryptionSetId", None, _DISK_ENCRYPTION_SET_ID, hint)
    cvm_des = node.string("confidentialVmDiskEncryptionSetId", None, _DISK_ENCRYPTION_SET_ID, hint)
    node.done()
    if name is None:
        return None
    return TargetRegionSpec(name, replicas, storage, exclude, des, cvm_des)


def default_end_of_life(today: date) -> str:
    """DEFAULT_END_OF_LIFE_MONTHS after `today` (the last day of the month when that day does not exist)."""
    month = today.month - 1 + DEFAULT_END_OF_LIFE_MONTHS
    year, month = today.year + month // 12, month % 12 + 1
    day = min(today.day, calendar.monthrange(year, month)[1])
    return date(year, month, day).isoformat() + "T00:00:00Z"


def _data_disk_luns(node: Node) -> tuple[int, ...] | None:
    value = node.raw("dataDiskLuns")
    if value is MISSING or value is None:
        return None
    if not isinstance(value, list) or any(isinstance(v, bool) or not isinstance(v, int) for v in value):
        node.problem("dataDiskLuns", f"must be a list of LUNs (integers 0-63), got {value!r}")
        return None
    bad = [v for v in value if not 0 <= v <= _MAX_LUN]
    if bad:
        node.problem("dataDiskLuns", f"{bad} out of range: a LUN is 0-{_MAX_LUN}")
        return None
    if len(set(value)) != len(value):
        node.problem("dataDiskLuns", "lists a LUN more than once")
        return None
    if node.shared.marketplace and len(value) > MARKETPLACE_MAX_DATA_DISKS:
        node.problem(
            "dataDiskLuns",
            f"lists {len(value)} data disks; a Marketplace image has at most {MARKETPLACE_MAX_DATA_DISKS} "
            f"({MARKETPLACE_DATA_DISK_SOURCE}): detach the others from the source VM, or set marketplace: false",
        )
        return None
    return tuple(sorted(value))


def _check_encryption(
    node: Node, regions: list[TargetRegionSpec], definition: Mapping[str, Any], cvm_type: str | None
) -> None:
    """Confidential VM encryption only for confidential definitions; a customer-managed key needs a confidential
    disk encryption set in every target region, and only then."""
    security = definition.get("security_type")
    if cvm_type is not None and security is not None and security not in CONFIDENTIAL_SECURITY_TYPES:
        node.problem(
            "confidentialVmEncryptionType",
            f"is only for confidential definitions (securityType {', '.join(CONFIDENTIAL_SECURITY_TYPES)}); the "
            f"definition's securityType is {security}: remove it or change securityType",
        )
    _check_encryption_set_regions(node, regions)
    for i, region in enumerate(regions):
        at = f"{node.at('targetRegions')}[{i}].confidentialVmDiskEncryptionSetId"
        if cvm_type == "EncryptedWithCmk" and region.confidential_vm_disk_encryption_set_id is None:
            node.problems.append(
                f"{at}: is required in every target region with confidentialVmEncryptionType EncryptedWithCmk "
                f"(the disk encryption set of {region.name} holding the customer-managed key)"
            )
        if cvm_type != "EncryptedWithCmk" and region.confidential_vm_disk_encryption_set_id is not None:
            node.problems.append(f"{at}: is only used with confidentialVmEncryptionType EncryptedWithCmk")


def _check_encryption_set_regions(node: Node, regions: list[TargetRegionSpec]) -> None:
    """A disk encryption set belongs to one region, and a version's replica in a region is encrypted with a set of
    that region (https://learn.microsoft.com/azure/virtual-machines/image-version-encryption): the same set in two
    target regions is refused. Which region a set is in only ARM knows (preview); a set whose name says another
    target region is warned about."""
    for key, field in (
        ("diskEncryptionSetId", "disk_encryption_set_id"),
        ("confidentialVmDiskEncryptionSetId", "confidential_vm_disk_encryption_set_id"),
    ):
        first: dict[str, tuple[int, str]] = {}
        for i, region in enumerate(regions):
            des: str | None = getattr(region, field)
            if des is None:
                continue
            at = f"{node.at('targetRegions')}[{i}].{key}"
            seen = first.setdefault(des.lower(), (i, region.name))
            if seen[0] != i:
                node.problems.append(
                    f"{at}: is also targetRegions[{seen[0]}]'s ({seen[1]}); a disk encryption set belongs to one "
                    f"region, so {region.name} needs its own, created in {region.name} "
                    "(https://learn.microsoft.com/azure/virtual-machines/image-version-encryption)"
                )
                continue
            named = _region_in_name(des.rsplit("/", 1)[-1])
            if named is not None and named != region.name:
                node.shared.warnings.append(
                    f"{at}: the name of {des.rsplit('/', 1)[-1]!r} says {named}, but it encrypts the replica in "
                    f"{region.name}: a disk encryption set must be in the region it encrypts; check it is in "
                    f"{region.name}"
                )


def _region_in_name(name: str) -> str | None:
    """A known region named by a whole part of a resource name (`des-westeurope-01`), else None."""
    known = known_regions()
    for part in re.split(r"[-_.]", name.lower()):
        if part in known:
            return part
    return None


def read_version(
    node: Node, definition: dict[str, Any], source_vms: Mapping[str, SourceVmSpec | None], today: date
) -> ImageVersionSpec | None:
    version = node.string("version", None, required=True)
    if version is not None:
        m = _VERSION.fullmatch(version)
        if not m:
            node.problem("version", f"{version!r} is not Major.Minor.Patch")
            version = None
        elif any(int(part) > _MAX_U32 for part in m.groups()):
            node.problem("version", f"{version!r}: each part must be a non-negative 32-bit integer (<= {_MAX_U32})")
            version = None
    promoted = node.raw("sourceVersion") not in (MISSING, None)
    source_key = node.string("sourceVm", None)
    if not promoted and node.raw("sourceVm") is MISSING:
        node.problem("sourceVm", "is required (or sourceVersion, to promote a version of another stack or gallery)")
    source_version = _source_version(node) if promoted else None
    if promoted and source_key is not None:
        node.problem("sourceVersion", "set sourceVm (capture from a VM) or sourceVersion (promote a version), not both")
    source = None
    if source_key is not None:
        source = source_vms.get(source_key)
        if source_key not in source_vms:
            known = ", ".join(sorted(source_vms)) or "none defined"
            node.problem("sourceVm", f"{source_key!r} is not a key under sourceVms (defined: {known})")
    replicas = node.integer("replicaCount", 1, 1, 100)
    storage = node.choice("storageAccountType", STORAGE_ACCOUNT_TYPES, "Standard_LRS")
    regions = [r for r in (_target_region(n, replicas, storage) for n in node.items("targetRegions", True)) if r]
    names = [r.name for r in regions]
    for dup in sorted({n for n in names if names.count(n) > 1}):
        node.problem("targetRegions", f"region {dup!r} is listed more than once")
    cvm_type = node.choice("confidentialVmEncryptionType", CONFIDENTIAL_VM_ENCRYPTION_TYPES, None)
    _check_encryption(node, regions, definition, cvm_type)
    spec_kwargs = dict(
        replication_mode=node.choice("replicationMode", REPLICATION_MODES, "Full"),
        exclude_from_latest=node.boolean("excludeFromLatest", False),
        end_of_life_date=read_future_date(node, "endOfLifeDate", today),
        create_timeout_minutes=node.positive("createTimeoutMinutes", ImageVersionSpec.create_timeout_minutes),
        protect=node.boolean("protect", True),
        allow_deletion_of_replicated_locations=node.boolean("allowDeletionOfReplicatedLocations", False),
        block_deletion_before_end_of_life=(
            node.boolean("blockDeletionBeforeEndOfLife", True)
            if node.raw("blockDeletionBeforeEndOfLife") not in (MISSING, None)
            else None
        ),
        data_disk_luns=_data_disk_luns(node),
        confidential_vm_encryption_type=cvm_type,
        default_end_of_life_date=default_end_of_life(today),
    )
    if promoted and spec_kwargs["data_disk_luns"] is not None:
        node.problem("dataDiskLuns", "is only used with sourceVm (a promoted version keeps its source's data disks)")
    node.done()
    if source is not None:
        _check_source_fits(node, source, definition)
    if version is None or (source is None and source_version is None) or not regions:
        return None
    if promoted and source_key is not None:
        return None
    return ImageVersionSpec(
        version=version,
        source_vm=source,
        source_version=source_version,
        target_regions=tuple(regions),
        replica_count=replicas,
        storage_account_type=storage,
        **spec_kwargs,
    )


def _source_version(node: Node) -> SourceVersionSpec | None:
    """`sourceVersion`: `{id: <version resource ID>}`, or `{stack: <stack>, version: <definition>/<x.y.z>}`."""
    child = node.child("sourceVersion")
    if child is None:
        return None
    has_id = child.raw("id") not in (MISSING, None)
    has_stack = child.raw("stack") not in (MISSING, None)
    if has_id == has_stack:
        child.problems.append(
            f"{child.path}: set id (the source version's resource ID) or stack and version (a version another stack "
            f"of this project exports in versionIds), {'not both' if has_id else 'one of them'}"
        )
    ref = stack = definition = version = None
    if has_id:
        raw_id = child.string("id", None)
        if raw_id is not None:
            try:
                ref = ImageVersionRef.parse(raw_id)
            except ValueError as exc:
                child.problem("id", str(exc))
        if not has_stack and child.raw("version") not in (MISSING, None):
            child.problem("version", "is only used with stack (with id, the ID names the version)")
    if has_stack:
        stack = child.string(
            "stack",
            None,
            _STACK_NAME,
            "is not a stack name: `dev`, or `organization/image-gallery/dev` (letters, digits, '-', '_', '.')",
        )
        if stack is not None and stack.split("/")[-1] == node.shared.stack:
            child.problem("stack", f"{stack!r} is this stack itself; promote from another stack")
            stack = None
        key = child.string("version", None, required=True)
        if key is not None:
            name, _, number = key.partition("/")
            if not DEFINITION_NAME.fullmatch(name) or not _VERSION.fullmatch(number):
                child.problem(
                    "version",
                    f"{key!r} is not <definition>/<Major.Minor.Patch> as exported in that stack's versionIds "
                    "(e.g. ubuntu-2204-hardened/1.0.0)",
                )
            else:
                definition, version = name, number
    child.done()
    if ref is not None and not has_stack:
        return SourceVersionSpec(id=ref)
    if stack is not None and definition is not None and not has_id:
        return SourceVersionSpec(stack=stack, definition=definition, version=version)
    return None


def _check_source_fits(node: Node, source: SourceVmSpec, definition: dict[str, Any]) -> None:
    """The guest transport must fit the definition: ssh for Linux, winrm for Windows, none when Specialized."""
    os_type, os_state = definition.get("os_type"), definition.get("os_state")
    where = f"sourceVms.{source.key}"
    if os_state == "Specialized":
        return  # no guest step: the VM is captured as it is
    if os_type == "Linux" and source.ssh is None:
        node.problem("sourceVm", f"{where} needs an ssh block: Linux VMs are deprovisioned with waagent over SSH")
    if os_type == "Windows" and source.winrm is None:
        node.problem("sourceVm", f"{where} needs a winrm block: Windows VMs are sysprepped over WinRM")
    if os_type == "Linux" and source.winrm is not None:
        node.problem("sourceVm", f"{where} has a winrm block but the definition's osType is Linux")
    if os_type == "Windows" and source.ssh is not None:
        node.problem("sourceVm", f"{where} has an ssh block but the definition's osType is Windows")
