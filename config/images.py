"""`images[]`: each gallery image definition — its identity, what it claims (features, security type, plan image
type), its Marketplace details, the opt-in test boot of new versions — and its versions (config.versions)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from typing import Any
from urllib.parse import urlsplit

from config.constants import (
    ARCHITECTURES,
    CONFIDENTIAL_SECURITY_TYPES,
    DEFINITION_NAME,
    DISK_CONTROLLER_TYPES,
    DISK_TYPES,
    HYPER_V_GENERATIONS,
    MARKETPLACE_PLAN_SOURCE,
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
from config.specs import ImageDefinitionSpec, PurchasePlanSpec, SourceVmSpec, TestBootSpec
from config.versions import read_version

_IDENTIFIER_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_VM_SIZE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{2,63}$")
_ADMIN_USERNAME = re.compile(r"^[a-z_][a-z0-9_-]{0,19}$")


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
    kind: str | None = node.choice("planImageType", PLAN_IMAGE_TYPES, None)
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
    size = child.string("vmSize", default_size, _VM_SIZE, "is not a VM size like Standard_D2s_v5")
    timeout = child.positive("timeoutMinutes", TestBootSpec.timeout_minutes)
    username = child.string(
        "adminUsername", TestBootSpec.admin_username, _ADMIN_USERNAME, "is not a valid administrator name"
    )
    if username in RESERVED_ADMIN_NAMES:
        child.problem("adminUsername", f"{username!r} is a name Azure refuses for a VM administrator; choose another")
        username = None
    child.done()
    if not validate:
        node.problem("validation", "is only used with validate: true (set it, or remove validation)")
        return None
    if rg is None or subnet is None or size is None or username is None:
        return None
    return TestBootSpec(rg, subnet, size, timeout, username)


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
