"""`images[]`: each gallery image definition — its identity, what it claims (features, security type, plan image
type), its Marketplace details, the opt-in test boot of new versions — and its versions (config.versions)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from typing import Any
from urllib.parse import urlsplit

from config import vm_sizes
from config.constants import (
    ARCHITECTURES,
    CONFIDENTIAL_SECURITY_TYPES,
    DEFINITION_NAME,
    DISK_CONTROLLER_TYPES,
    DISK_TYPES,
    HYPER_V_GENERATIONS,
    MARKETPLACE_PLAN_SOURCE,
    OLD_PLAN_IMAGE_TYPES,
    OS_STATES,
    OS_TYPES,
    PLAN_IMAGE_TYPES,
    RESERVED_ADMIN_NAMES,
    RESOURCE_GROUP_NAME,
    SECURITY_TYPES,
    SUBNET_ID,
    TEST_BOOT_VM_SIZES,
)
from config.reader import MISSING, Node, read_future_date
from config.specs import ImageDefinitionSpec, ImageVersionSpec, PurchasePlanSpec, SourceVmSpec, TestBootSpec
from config.versions import read_version
from hooks.steps import MARKETPLACE_DATA_DISK_SOURCE

_IDENTIFIER_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
# Size names: letters, digits, '_', and '-' in constrained-vCPU sizes (Standard_E4-2ds_v5).
_VM_SIZE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{2,63}$")
# OSProfile.adminUsername (https://learn.microsoft.com/rest/api/compute/virtual-machines/create-or-update#osprofile):
# 1-64 characters on Linux, at most 20 on Windows, not ending in "." on Windows, and not one of RESERVED_ADMIN_NAMES.
# Linux: the guest's useradd takes POSIX portable names in lower case (Debian and Ubuntu refuse upper case), and most
# distributions at most 32 characters (warned). Windows: user names are case-insensitive, may hold upper case, and
# not the characters sAMAccountName refuses (https://learn.microsoft.com/windows/win32/adschema/a-samaccountname).
_LINUX_ADMIN = re.compile(r"[a-z_][a-z0-9_-]{0,63}")
_WINDOWS_FORBIDDEN = set('"/\\[]:;|=,+*?<>')
_WINDOWS_MAX, _USERADD_MAX = 20, 32


def read_definition(
    node: Node, source_vms: Mapping[str, SourceVmSpec | None], today: date
) -> ImageDefinitionSpec | None:
    name = node.string(
        "name",
        None,
        DEFINITION_NAME,
        "is not a valid image definition name (1-80 letters, digits, '.', '_', '-')",
        required=True,
    )
    fields: dict[str, Any] = {
        "os_type": node.choice("osType", OS_TYPES, None, required=True),
        "os_state": node.choice("osState", OS_STATES, "Generalized"),
        "hyper_v_generation": node.choice("hyperVGeneration", HYPER_V_GENERATIONS, "V2"),
        "architecture": node.choice("architecture", ARCHITECTURES, "x64"),
        "security_type": node.choice("securityType", SECURITY_TYPES, "Standard"),
    }
    if fields["hyper_v_generation"] == "V1" and fields["security_type"] != "Standard":
        node.problem("securityType", f"{fields['security_type']} needs hyperVGeneration V2")
    if fields["architecture"] == "Arm64" and fields["hyper_v_generation"] == "V1":
        node.problem("architecture", "Arm64 images need hyperVGeneration V2")
    if fields["architecture"] == "Arm64" and fields["security_type"] in CONFIDENTIAL_SECURITY_TYPES:
        node.problem(
            "securityType",
            f"{fields['security_type']} needs an x64 definition: confidential VMs run on AMD SEV-SNP or Intel TDX "
            f"sizes only, none of them Arm64 ({vm_sizes.CONFIDENTIAL_VM_SIZES}); use TrustedLaunch or Standard",
        )
    ident = node.child("identifier", required=True)
    publisher = offer = sku = None
    if ident is not None:
        hint = "is not a valid identifier part (letters, digits, '.', '_', '-', up to 128)"
        publisher = ident.string("publisher", None, _IDENTIFIER_PART, hint, True)
        offer = ident.string("offer", None, _IDENTIFIER_PART, hint, True)
        sku = ident.string("sku", None, _IDENTIFIER_PART, hint, True)
        ident.done()
    extras = {
        "description": node.string("description", ""),
        "eula": node.string("eula", None),
        "privacy_statement_uri": _uri(node, "privacyStatementUri"),
        "release_note_uri": _uri(node, "releaseNoteUri"),
        "end_of_life_date": read_future_date(node, "endOfLifeDate", today),
        **_features(node, fields),
        "purchase_plan": _purchase_plan(node),
        "disallowed_disk_types": _disallowed_disk_types(node),
        "plan_image_type": _plan_image_type(node, fields),
        "test_boot": _test_boot(node, fields),
    }
    rec = node.child("recommended")
    limits: dict[str, Any] = {}
    if rec is not None:
        limits = {
            "min_vcpus": rec.integer("minVCpus", None, 1, 1024),
            "max_vcpus": rec.integer("maxVCpus", None, 1, 1024),
            "min_memory_gb": rec.integer("minMemoryGb", None, 1, 16384),
            "max_memory_gb": rec.integer("maxMemoryGb", None, 1, 16384),
        }
        for low, high, low_key, high_key in (
            ("min_vcpus", "max_vcpus", "minVCpus", "maxVCpus"),
            ("min_memory_gb", "max_memory_gb", "minMemoryGb", "maxMemoryGb"),
        ):
            if limits[low] is not None and limits[high] is not None and limits[low] > limits[high]:
                rec.problem(low_key, f"{limits[low]} is larger than {high_key} ({limits[high]})")
        rec.done()
    parsed = [(n.path, read_version(n, fields, source_vms, today)) for n in node.items("versions")]
    versions = [v for _, v in parsed if v]
    _check_plan_data_disks(node, parsed)
    test_boot = extras["test_boot"]
    if test_boot is not None and rec is not None:
        _check_boot_size_against_recommended(node, test_boot.vm_size, limits)
    seen: set[str] = set()
    for path, v in parsed:
        if v is None:
            continue
        if v.version in seen:
            node.problems.append(f"{path}.version: {v.version!r} is declared twice in {name!r}")
        seen.add(v.version)
    node.done()
    if name is None or publisher is None or offer is None or sku is None or None in fields.values():
        return None
    return ImageDefinitionSpec(
        name=name, publisher=publisher, offer=offer, sku=sku, versions=tuple(versions), **fields, **extras, **limits
    )


def _uri(node: Node, key: str) -> str | None:
    """An http(s) URI, as Azure and Partner Center show it to customers."""
    value: str | None = node.string(key, None)
    if value is None:
        return None
    url = urlsplit(value)
    if url.scheme not in ("http", "https") or not url.netloc or any(c.isspace() for c in value):
        node.problem(key, f"{value!r} is not an http(s) URL, e.g. https://contoso.example/privacy")
        return None
    return value


def _features(node: Node, fields: Mapping[str, Any]) -> dict[str, Any]:
    """`features`: what the definition claims beside securityType; the capture-time checks hold the VM to it."""
    child = node.child("features")
    if child is None:
        return {}
    controllers = child.strings("diskControllerTypes")
    for i, c in enumerate(controllers):
        if c not in DISK_CONTROLLER_TYPES:
            child.problems.append(
                f"{child.at('diskControllerTypes')}[{i}]: {c!r} is not one of {', '.join(DISK_CONTROLLER_TYPES)}"
            )
    if len(set(controllers)) != len(controllers):
        child.problem("diskControllerTypes", "lists a controller type more than once")
    if child.raw("diskControllerTypes") == []:
        child.problem("diskControllerTypes", "must list SCSI, NVMe or both (or be left out: SCSI only)")
    if "NVMe" in controllers and fields.get("hyper_v_generation") == "V1":
        child.problem("diskControllerTypes", "NVMe needs hyperVGeneration V2")
    accelerated = child.raw("acceleratedNetwork")
    hibernate = child.raw("hibernate")
    result = {
        "disk_controller_types": tuple(c for c in DISK_CONTROLLER_TYPES if c in controllers),
        "accelerated_network": child.boolean("acceleratedNetwork", False) if accelerated is not MISSING else None,
        "hibernate": child.boolean("hibernate", False) if hibernate is not MISSING else None,
    }
    child.done()
    return result


def _plan_image_type(node: Node, fields: Mapping[str, Any]) -> str | None:
    """`planImageType`: the Marketplace plan's image type must fit the definition's architecture and Hyper-V
    generation (a Gen1 plan image cannot be a V2 definition). Marketplace galleries only."""
    old = node.value.get("planImageType")
    if isinstance(old, str) and old in OLD_PLAN_IMAGE_TYPES:
        # Stacks written before planImageType followed the Product Ingestion API's spelling keep working.
        node.raw("planImageType")
        kind: str | None = OLD_PLAN_IMAGE_TYPES[old]
        node.shared.warnings.append(
            f"{node.at('planImageType')}: {old!r} is the old spelling; write {kind!r}, as Partner Center's Product "
            "Ingestion API spells the image type (read as that)"
        )
    else:
        kind = node.choice("planImageType", PLAN_IMAGE_TYPES, None)
    if kind is None:
        return None
    if not node.shared.marketplace:
        node.problem("planImageType", "is a Marketplace rule: remove it, or set marketplace: true")
        return None
    architecture, generation = PLAN_IMAGE_TYPES[kind]
    have = (fields.get("architecture"), fields.get("hyper_v_generation"))
    if None not in have and have != (architecture, generation):
        node.problem(
            "planImageType",
            f"{kind} needs architecture {architecture} and hyperVGeneration {generation}, but the definition has "
            f"architecture {have[0]} and hyperVGeneration {have[1]}: Partner Center refuses the image for this plan "
            f"image type ({MARKETPLACE_PLAN_SOURCE}). Fix: change hyperVGeneration/architecture (and the source VM), "
            "or planImageType to the plan image type the definition fits",
        )
    return kind


def _test_boot(node: Node, fields: Mapping[str, Any]) -> TestBootSpec | None:
    """`validate: true` + `validation`: the test boot of each new version."""
    validate = node.boolean("validate", False)
    child = node.child("validation")
    if child is None:
        if validate:
            node.problem(
                "validation",
                "is required with validate: true: {resourceGroup: <existing group>, subnetId: <subnet ID>} for the "
                "throwaway VM (it gets no public IP)",
            )
        return None
    rg = child.string("resourceGroup", None, RESOURCE_GROUP_NAME, "is not a valid resource group name", required=True)
    subnet = child.string(
        "subnetId",
        None,
        SUBNET_ID,
        "is not a subnet ID (/subscriptions/<guid>/resourceGroups/<rg>/providers/Microsoft.Network/virtualNetworks/"
        "<vnet>/subnets/<subnet>)",
        required=True,
    )
    confidential = fields.get("security_type") in CONFIDENTIAL_SECURITY_TYPES
    default_size = TEST_BOOT_VM_SIZES["confidential" if confidential else str(fields.get("architecture") or "x64")]
    size: str | None = child.string("vmSize", default_size, _VM_SIZE, "is not a VM size like Standard_D2s_v5")
    if size is not None:
        boot = vm_sizes.boot_problems(
            size, fields.get("architecture"), fields.get("security_type"), fields.get("hyper_v_generation")
        )
        for problem in boot:
            child.problem("vmSize", problem)
        size = None if boot else size
    timeout = child.positive("timeoutMinutes", TestBootSpec.timeout_minutes)
    username: str | None = child.string("adminUsername", TestBootSpec.admin_username)
    if username is not None and (refused := _admin_name_problem(username, fields.get("os_type"))):
        child.problem("adminUsername", refused)
        username = None
    elif username is not None and fields.get("os_type") == "Linux" and len(username) > _USERADD_MAX:
        child.shared.warnings.append(
            f"{child.at('adminUsername')}: {username!r} has {len(username)} characters; Azure allows 64, but most "
            f"distributions' useradd refuses more than {_USERADD_MAX}, which fails the test VM's provisioning"
        )
    child.done()
    if not validate:
        node.problem("validation", "is only used with validate: true (set it, or remove validation)")
        return None
    if rg is None or subnet is None or size is None or username is None:
        return None
    return TestBootSpec(rg, subnet, size, timeout, username)


def _check_plan_data_disks(node: Node, parsed: list[tuple[str, ImageVersionSpec | None]]) -> None:
    """Marketplace: every image of a plan has the same number of data disks (MARKETPLACE_DATA_DISK_SOURCE); versions
    that declare different dataDiskLuns counts are warned about (a plan may publish only some of them)."""
    declared = [(path, len(v.data_disk_luns)) for path, v in parsed if v and v.data_disk_luns is not None]
    if not node.shared.marketplace or len({n for _, n in declared}) < 2:
        return
    shown = ", ".join(f"{path}: {n}" for path, n in declared)
    node.shared.warnings.append(
        f"{node.at('versions')}: the versions declare different numbers of data disks ({shown}); every image of a "
        f"Marketplace plan needs the same number ({MARKETPLACE_DATA_DISK_SOURCE})"
    )


def _check_boot_size_against_recommended(node: Node, size: str, limits: Mapping[str, Any]) -> None:
    """The test VM's size outside the definition's own `recommended` vCPUs: Azure allows it, but it is probably not
    the size meant."""
    parsed = vm_sizes.parse(size)
    if parsed is None:
        return
    low, high = limits.get("min_vcpus"), limits.get("max_vcpus")
    if (low is not None and parsed.vcpus < low) or (high is not None and parsed.vcpus > high):
        node.shared.warnings.append(
            f"{node.at('validation.vmSize')}: {size} has {parsed.vcpus} vCPUs, outside the definition's recommended "
            f"{low or 1}-{high or 'any'} (recommended.minVCpus/maxVCpus); the test boot uses it anyway"
        )


def _admin_name_problem(name: str, os_type: str | None) -> str | None:
    """Why Azure (or the guest) refuses `name` as the test VM's administrator, by the definition's OS; None when
    the OS is not known (its own problem is reported)."""
    if name.lower() in RESERVED_ADMIN_NAMES:
        return f"{name!r} is a name Azure refuses for a VM administrator; choose another"
    if os_type == "Linux" and not _LINUX_ADMIN.fullmatch(name):
        return (
            f"{name!r} is not a valid Linux administrator name: 1-64 lower-case letters, digits, '_' or '-', not "
            "starting with a digit or '-' (the test VM's useradd refuses others), e.g. igvalidate"
        )
    if os_type == "Windows":
        bad = sorted(set(name) & _WINDOWS_FORBIDDEN)
        if len(name) > _WINDOWS_MAX:
            return f"{name!r} has {len(name)} characters; a Windows administrator name has at most {_WINDOWS_MAX}"
        if name.endswith(".") or not name.strip(". "):
            return (
                f"{name!r} is not a valid Windows administrator name: it must not end in '.' or be only dots and spaces"
            )
        if bad:
            return f"{name!r} is not a valid Windows administrator name: it must not contain {' '.join(bad)}"
    return None


def _purchase_plan(node: Node) -> PurchasePlanSpec | None:
    child = node.child("purchasePlan")
    if child is None:
        return None
    name = child.string("name", None, required=True)
    publisher = child.string("publisher", None, required=True)
    product = child.string("product", None, required=True)
    child.done()
    if name is None or publisher is None or product is None:
        return None
    return PurchasePlanSpec(name, publisher, product)


def _disallowed_disk_types(node: Node) -> tuple[str, ...]:
    types = node.strings("disallowedDiskTypes")
    for i, t in enumerate(types):
        if t not in DISK_TYPES:
            node.problems.append(f"{node.at('disallowedDiskTypes')}[{i}]: {t!r} is not one of {', '.join(DISK_TYPES)}")
    if len(set(types)) != len(types):
        node.problem("disallowedDiskTypes", "lists a disk type more than once")
    return tuple(dict.fromkeys(t for t in types if t in DISK_TYPES))
