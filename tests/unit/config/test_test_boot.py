"""`images[].validate` and `validation` (config.images, config.vm_sizes): the opt-in test boot of a definition's new
versions, read with its defaults; the VM size checked against what the definition needs (architecture, security
type, generation, recommended vCPUs), and the administrator name against Azure's and the guest's rules."""

from __future__ import annotations

from typing import Any

import pytest

from config import vm_sizes
from tests.unit import stack_configs as sc
from tests.unit.config.one_change import load, problems_of, the_problem

SUBNET = (
    f"/subscriptions/{sc.SUBSCRIPTION}/resourceGroups/rg-net/providers/Microsoft.Network/virtualNetworks/vnet-build"
    "/subnets/validate"
)
LINUX, WINDOWS = 0, 1


def with_definition(**fields: Any) -> dict[str, Any]:
    """stack_configs.base() with these fields of images[0] set."""
    raw = sc.base()
    raw["images"][0].update(fields)
    return raw


def booted(image: int = LINUX, definition: dict[str, Any] | None = None, **validation: Any) -> dict[str, Any]:
    raw = sc.base()
    raw["images"][image].update(
        validate=True, validation={"resourceGroup": "rg-validate", "subnetId": SUBNET, **validation}
    )
    raw["images"][image].update(definition or {})
    return raw


ARM64 = {"architecture": "Arm64", "securityType": "TrustedLaunch"}
CONFIDENTIAL = {"securityType": "ConfidentialVM"}


# --- the settings -----------------------------------------------------------------------------------------------------


def test_validation_is_read_with_defaults() -> None:
    boot = load(with_definition(validate=True, validation={"resourceGroup": "rg-validate", "subnetId": SUBNET}))
    spec = boot.images[0].test_boot
    assert spec is not None
    assert (spec.resource_group, spec.subnet_id, spec.vm_size, spec.timeout_minutes) == (
        "rg-validate",
        SUBNET,
        "Standard_D2s_v5",
        20.0,
    )
    assert spec.subscription_id == sc.SUBSCRIPTION


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"validate": True}, "images[0].validation: is required with validate: true"),
        (
            {"validation": {"resourceGroup": "rg-validate", "subnetId": SUBNET}},
            "images[0].validation: is only used with validate: true",
        ),
        (
            {"validate": True, "validation": {"resourceGroup": "rg-validate", "subnetId": "subnet-1"}},
            "images[0].validation.subnetId: 'subnet-1' is not a subnet ID",
        ),
        (
            {"validate": True, "validation": {"subnetId": SUBNET}},
            "images[0].validation.resourceGroup: is required",
        ),
        (
            {"validate": True, "validation": {"resourceGroup": "rg", "subnetId": SUBNET, "timeoutMinutes": 0}},
            "images[0].validation.timeoutMinutes: must be a positive number",
        ),
        (
            {"validate": True, "validation": {"resourceGroup": "rg", "subnetId": SUBNET, "vmSize": "big one"}},
            "images[0].validation.vmSize: 'big one' is not a VM size",
        ),
        (
            {"validate": True, "validation": {"resourceGroup": "rg", "subnetId": SUBNET, "adminUsername": "admin"}},
            "images[0].validation.adminUsername: 'admin' is a name Azure refuses",
        ),
    ],
)
def test_validation_problems(fields: dict[str, Any], expected: str) -> None:
    found = problems_of(with_definition(**fields))
    assert any(p.startswith(expected) for p in found), found


def test_a_misspelt_test_boot_key_is_refused_with_the_key_meant() -> None:
    found = the_problem(booted(LINUX, vmsize="Standard_D4s_v5"))
    assert found.startswith("images[0].validation.vmsize: unknown key") and "did you mean 'vmSize'?" in found, found


# --- the VM size ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("definition", "size"),
    [
        (ARM64, "Standard_D2ps_v5"),
        (ARM64, "Standard_D4pds_v6"),
        (ARM64, "Standard_B2pts_v2"),
        ({}, "Standard_D2s_v5"),
        ({}, "Standard_E4-2ds_v5"),
        ({}, "Standard_NC24ads_A100_v4"),
        (CONFIDENTIAL, "Standard_DC2as_v5"),
        (CONFIDENTIAL, "Standard_DC2es_v5"),
        (CONFIDENTIAL, "Standard_EC4ads_v5"),
        (CONFIDENTIAL, "Standard_NCC40ads_H100_v5"),
        # a name that does not follow the convention is not judged (no false positive)
        (CONFIDENTIAL, "Standard_DC4as_cc_v5"),
        ({"hyperVGeneration": "V1", "securityType": "Standard"}, "Standard_A2_v2"),
    ],
)
def test_a_size_that_fits_the_definition_is_accepted(definition: dict[str, Any], size: str) -> None:
    boot = load(booted(LINUX, definition, vmSize=size)).images[0].test_boot
    assert boot is not None and boot.vm_size == size


@pytest.mark.parametrize(
    ("definition", "size", "fragment"),
    [
        (ARM64, "Standard_D2s_v5", "Standard_D2s_v5 is an x64 size, and the definition's architecture is Arm64"),
        ({}, "Standard_D2ps_v5", "Standard_D2ps_v5 is an Arm64 size (p in its name"),
        (CONFIDENTIAL, "Standard_D2s_v5", "Standard_D2s_v5 is not a confidential VM size, and a ConfidentialVM image"),
        (CONFIDENTIAL, "Standard_DC2s_v3", "Standard_DC2s_v3 is an SGX enclave size, not a confidential VM size"),
        (CONFIDENTIAL, "Standard_DC4s_v2", "Standard_DC4s_v2 is an SGX enclave size"),
        (
            {},
            "Standard_A2_v2",
            "Standard_A2_v2 runs Generation 1 VMs only, and the definition's hyperVGeneration is V2",
        ),
        ({}, "Basic_A1", "Basic_A1 runs Generation 1 VMs only"),
    ],
)
def test_a_size_that_cannot_boot_the_image_is_refused_with_one_that_can(
    definition: dict[str, Any], size: str, fragment: str
) -> None:
    found = the_problem(booted(LINUX, definition, vmSize=size))
    assert found.startswith(f"images[0].validation.vmSize: {fragment}"), found
    assert "https://learn.microsoft.com/azure/" in found and "e.g. Standard_" in found, found


def test_the_default_sizes_fit_their_definitions() -> None:
    for definition, size in ((ARM64, "Standard_D2ps_v5"), (CONFIDENTIAL, "Standard_DC2as_v5"), ({}, "Standard_D2s_v5")):
        boot = load(booted(LINUX, definition)).images[0].test_boot
        assert boot is not None and boot.vm_size == size
        assert vm_sizes.boot_problems(size, definition.get("architecture", "x64"), None, "V2") == []


def test_a_size_outside_the_recommended_vcpus_is_warned_about() -> None:
    # images[0] recommends 2-8 vCPUs
    stack = load(booted(LINUX, vmSize="Standard_D16s_v5"))
    (warning,) = stack.warnings
    assert warning.startswith("images[0].validation.vmSize: Standard_D16s_v5 has 16 vCPUs, outside the definition's")
    assert load(booted(LINUX, vmSize="Standard_D8s_v5")).warnings == ()


# --- the administrator name -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("image", "name"),
    [
        (WINDOWS, "ImageAdmin"),  # Windows names may hold upper case
        (WINDOWS, "Validate.Admin-01"),
        (WINDOWS, "a" * 20),
        (WINDOWS, "svc admin"),
        (LINUX, "igvalidate"),
        (LINUX, "_svc"),
        (LINUX, "image-admin_2"),
        (LINUX, "v" * 32),
    ],
)
def test_legitimate_administrator_names_are_accepted(image: int, name: str) -> None:
    stack = load(booted(image, adminUsername=name))
    boot = stack.images[image].test_boot
    assert boot is not None and boot.admin_username == name
    assert stack.warnings == ()


def test_a_long_linux_name_azure_allows_is_warned_about_not_refused() -> None:
    stack = load(booted(LINUX, adminUsername="v" * 64))
    (warning,) = stack.warnings
    assert "Azure allows 64, but most distributions' useradd refuses more than 32" in warning


@pytest.mark.parametrize(
    ("image", "name", "fragment"),
    [
        (WINDOWS, "a" * 21, "has 21 characters; a Windows administrator name has at most 20"),
        (WINDOWS, "Admin.", "it must not end in '.'"),
        (WINDOWS, "...", "it must not end in '.'"),
        (WINDOWS, "CONTOSO\\admin2x", "it must not contain \\"),
        (WINDOWS, "img[1]", "it must not contain [ ]"),
        (WINDOWS, "ADMINISTRATOR", "is a name Azure refuses for a VM administrator"),
        (WINDOWS, "Guest", "is a name Azure refuses"),
        (LINUX, "v" * 65, "is not a valid Linux administrator name: 1-64 lower-case letters"),
        (LINUX, "ImageAdmin", "is not a valid Linux administrator name"),
        (LINUX, "9lives", "is not a valid Linux administrator name"),
        (LINUX, "-svc", "is not a valid Linux administrator name"),
        (LINUX, "Root", "is a name Azure refuses"),
    ],
)
def test_administrator_names_azure_or_the_guest_refuses_are_refused(image: int, name: str, fragment: str) -> None:
    found = the_problem(booted(image, adminUsername=name))
    assert found.startswith(f"images[{image}].validation.adminUsername: {name!r} ") and fragment in found, found


# Azure's documented list of administrator names a VM refuses (osProfile.adminUsername), written out here on its
# own so that a name dropped from config/constants.py is noticed.
AZURE_REFUSED_ADMIN_NAMES = [
    "administrator",
    "admin",
    "user",
    "user1",
    "user2",
    "user3",
    "user4",
    "user5",
    "test",
    "test1",
    "test2",
    "test3",
    "1",
    "123",
    "a",
    "actuser",
    "adm",
    "admin1",
    "admin2",
    "aspnet",
    "backup",
    "console",
    "david",
    "guest",
    "john",
    "owner",
    "root",
    "server",
    "sql",
    "support",
    "support_388945a0",
    "sys",
]


@pytest.mark.parametrize("name", AZURE_REFUSED_ADMIN_NAMES)
def test_every_administrator_name_azure_refuses_is_refused_before_a_boot(name: str) -> None:
    fields = {"validate": True, "validation": {"resourceGroup": "rg", "subnetId": SUBNET, "adminUsername": name}}
    found = problems_of(with_definition(**fields))
    # (names that are not valid Linux user names at all, like "123", are refused for that first)
    expected = f"images[0].validation.adminUsername: {name!r} is "
    assert any(p.startswith(expected) for p in found), found
