"""Rules across fields where Azure would refuse later (issue 22 item 2), and administrator names by OS (item 5):
each rule with a bad value and an edge value that must pass."""

from __future__ import annotations

import copy
from datetime import date
from typing import Any

import pytest

import config
from config import vm_sizes
from hooks.errors import ConfigError
from tests.unit import stack_configs as sc

TODAY = date(2026, 11, 22)
SUBNET = (
    f"/subscriptions/{sc.SUBSCRIPTION}/resourceGroups/rg-net/providers/Microsoft.Network/virtualNetworks/vnet-build"
    "/subnets/validate"
)
DES = f"/subscriptions/{sc.SUBSCRIPTION}/resourceGroups/rg-keys/providers/Microsoft.Compute/diskEncryptionSets/{{}}"
LINUX, WINDOWS = 0, 1


def booted(image: int = LINUX, definition: dict[str, Any] | None = None, **validation: Any) -> dict[str, Any]:
    raw = sc.base()
    raw["images"][image].update(
        validate=True, validation={"resourceGroup": "rg-validate", "subnetId": SUBNET, **validation}
    )
    raw["images"][image].update(definition or {})
    return raw


def load(raw: dict[str, Any]) -> config.StackSpec:
    return config.load(raw, ["sourceVms"], TODAY)


def the_problem(raw: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as raised:
        load(raw)
    (found,) = raised.value.problems
    return found


ARM64 = {"architecture": "Arm64", "securityType": "TrustedLaunch"}
CONFIDENTIAL = {"securityType": "ConfidentialVM"}


# --- the test boot's size -----------------------------------------------------------------------------------------


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


def test_an_arm64_confidential_definition_is_refused() -> None:
    raw = sc.base()
    raw["images"][0].update(architecture="Arm64", securityType="ConfidentialVmSupported")
    found = the_problem(raw)
    assert found.startswith("images[0].securityType: ConfidentialVmSupported needs an x64 definition"), found


def test_a_size_outside_the_recommended_vcpus_is_warned_about() -> None:
    # images[0] recommends 2-8 vCPUs
    stack = load(booted(LINUX, vmSize="Standard_D16s_v5"))
    (warning,) = stack.warnings
    assert warning.startswith("images[0].validation.vmSize: Standard_D16s_v5 has 16 vCPUs, outside the definition's")
    assert load(booted(LINUX, vmSize="Standard_D8s_v5")).warnings == ()


# --- administrator names by OS ------------------------------------------------------------------------------------


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


# --- disk encryption sets -----------------------------------------------------------------------------------------


def with_sets(first: str | None, second: str | None, key: str = "diskEncryptionSetId") -> dict[str, Any]:
    raw = sc.base()
    regions = raw["images"][0]["versions"][0]["targetRegions"]  # westeurope, northeurope
    for region, des in zip(regions, (first, second), strict=True):
        if des is not None:
            region[key] = DES.format(des)
    return raw


def test_one_disk_encryption_set_in_two_regions_is_refused() -> None:
    found = the_problem(with_sets("des-images", "des-images"))
    assert found.startswith(
        "images[0].versions[0].targetRegions[1].diskEncryptionSetId: is also targetRegions[0]'s (westeurope); a disk "
        "encryption set belongs to one region, so northeurope needs its own, created in northeurope"
    ), found


def test_a_set_per_region_is_accepted_and_one_named_for_another_region_is_warned_about() -> None:
    assert load(with_sets("des-weu", "des-neu")).warnings == ()
    assert load(with_sets("des-westeurope-01", "des-northeurope-01")).warnings == ()
    (warning,) = load(with_sets("des-westeurope-01", "des-westeurope-02")).warnings
    assert warning.startswith(
        "images[0].versions[0].targetRegions[1].diskEncryptionSetId: the name of 'des-westeurope-02' says westeurope, "
        "but it encrypts the replica in northeurope"
    )


def test_one_confidential_disk_encryption_set_in_two_regions_is_refused() -> None:
    raw = with_sets("des-cvm", "des-cvm", key="confidentialVmDiskEncryptionSetId")
    raw["images"][0]["securityType"] = "ConfidentialVM"
    raw["images"][0]["versions"][0]["confidentialVmEncryptionType"] = "EncryptedWithCmk"
    assert the_problem(raw).startswith(
        "images[0].versions[0].targetRegions[1].confidentialVmDiskEncryptionSetId: is also targetRegions[0]'s"
    )


# --- Marketplace data disks ---------------------------------------------------------------------------------------


def with_luns(*luns: list[int], marketplace: bool = True) -> dict[str, Any]:
    raw = sc.base()
    raw["marketplace"] = marketplace
    image = raw["images"][0]
    image["osState"] = "Specialized"  # one VM may feed several versions
    template = image["versions"][0]
    image["versions"] = []
    for i, lun_list in enumerate(luns):
        version = copy.deepcopy(template) | {"version": f"1.2.{i}", "dataDiskLuns": lun_list}
        image["versions"].append(version)
    return raw


def test_at_most_sixteen_data_disks_in_a_marketplace_image() -> None:
    assert load(with_luns(list(range(16)))).images[0].versions[0].data_disk_luns == tuple(range(16))
    found = the_problem(with_luns(list(range(17))))
    assert found.startswith(
        "images[0].versions[0].dataDiskLuns: lists 17 data disks; a Marketplace image has at most 16"
    ), found
    load(with_luns(list(range(17)), marketplace=False))


def test_versions_of_a_marketplace_definition_with_different_data_disks_are_warned_about() -> None:
    (warning,) = load(with_luns([0], [0, 1])).warnings
    assert warning.startswith("images[0].versions: the versions declare different numbers of data disks")
    assert load(with_luns([0], [1])).warnings == ()
    assert load(with_luns([0], [0, 1], marketplace=False)).warnings == ()


def test_a_misspelt_test_boot_key_is_refused_with_the_key_meant() -> None:
    found = the_problem(booted(LINUX, vmsize="Standard_D4s_v5"))
    assert found.startswith("images[0].validation.vmsize: unknown key") and "did you mean 'vmSize'?" in found, found


def test_a_tag_name_of_blanks_is_refused() -> None:
    raw = sc.base()
    raw["galleryTags"] = {" ": "x"}
    assert the_problem(raw) == "galleryTags. : a tag name must not be empty"


def test_the_publisher_is_a_user_unless_said_otherwise() -> None:
    raw = sc.base()
    del raw["publisherPrincipalType"]
    publisher = load(raw).publisher
    assert publisher is not None and publisher.principal_type == "User"


def test_a_plain_http_link_for_customers_is_accepted() -> None:
    raw = sc.base()
    raw["images"][0]["privacyStatementUri"] = "http://contoso.example/privacy"
    assert load(raw).images[0].privacy_statement_uri == "http://contoso.example/privacy"


def test_a_plan_image_type_outside_the_marketplace_is_one_problem() -> None:
    raw = sc.base()
    raw["marketplace"] = False
    raw["images"][0]["planImageType"] = "x64Gen1"  # would not fit the V2 definition either: not said twice
    assert the_problem(raw) == "images[0].planImageType: is a Marketplace rule: remove it, or set marketplace: true"


def test_fifty_gallery_tags_and_no_more() -> None:
    raw = sc.base()
    raw["galleryTags"] = {f"tag{i}": "v" for i in range(50)}
    assert len(load(raw).gallery.tags) == 50
    raw["galleryTags"]["one-more"] = "v"
    assert the_problem(raw) == "galleryTags: has 51 tags; Azure allows at most 50"
