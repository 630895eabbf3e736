"""Issue 12, items 4, 2 (plan image type) and 6 under unit tests: the config keys (per-region encryption, the
confidential VM encryption type, dataDiskLuns, the Azure CLI's end-of-life defaults, planImageType, validate and
validation), what the components declare from them, and the plan's lines."""

from __future__ import annotations

import copy
from datetime import date
from typing import Any

import pytest

import config
from commands import plan
from components.captured_image_version import pinned_defaults
from config.versions import default_end_of_life
from hooks.errors import ConfigError
from hooks.providers.version_test_boot import VersionTestBoot
from hooks.version_boot import TestBootRequest, vm_body
from tests.unit import stack_configs as sc
from tests.unit.test_components import VERSION_T, one, run

TODAY = date(2026, 11, 22)
DES = f"/subscriptions/{sc.SUBSCRIPTION}/resourceGroups/rg-keys/providers/Microsoft.Compute/diskEncryptionSets/des-{{}}"
SUBNET = (
    f"/subscriptions/{sc.SUBSCRIPTION}/resourceGroups/rg-net/providers/Microsoft.Network/virtualNetworks/vnet-build"
    "/subnets/validate"
)
BOOT_T = VersionTestBoot.TYPE


def load(raw: dict[str, Any]) -> config.StackSpec:
    return config.load(raw, secret_keys=["sourceVms"], today=TODAY)


def problems(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        load(raw)
    return raised.value.problems


def with_version(**fields: Any) -> dict[str, Any]:
    raw = sc.base()
    raw["images"][0]["versions"][0].update(fields)
    return raw


def with_definition(**fields: Any) -> dict[str, Any]:
    raw = sc.base()
    raw["images"][0].update(fields)
    return raw


# --- config --------------------------------------------------------------------------------------------------


def test_end_of_life_and_deletion_default_to_the_azure_clis() -> None:
    raw = with_version()
    del raw["images"][0]["versions"][0]["endOfLifeDate"]
    v = load(raw).images[0].versions[0]
    assert (v.end_of_life_date, v.default_end_of_life_date) == (None, "2027-05-22T00:00:00Z")
    assert v.block_deletion_before_end_of_life is None, "not configured: the CLI's default (blocked) applies"
    assert default_end_of_life(date(2026, 8, 31)) == "2027-02-28T00:00:00Z", "clamped to the month's end"


def test_configured_deletion_safety_is_kept() -> None:
    v = load(with_version(blockDeletionBeforeEndOfLife=False)).images[0].versions[0]
    assert v.block_deletion_before_end_of_life is False


def test_region_encryption_and_luns_are_read() -> None:
    raw = with_version(dataDiskLuns=[1, 0])
    raw["images"][0]["versions"][0]["targetRegions"][0]["diskEncryptionSetId"] = DES.format("weu")
    v = load(raw).images[0].versions[0]
    assert v.data_disk_luns == (0, 1)
    assert v.target_regions[0].disk_encryption_set_id == DES.format("weu")
    assert v.target_regions[1].disk_encryption_set_id is None


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (
            {"dataDiskLuns": [0, 0]},
            "images[0].versions[0].dataDiskLuns: lists a LUN more than once",
        ),
        ({"dataDiskLuns": [64]}, "images[0].versions[0].dataDiskLuns: [64] out of range: a LUN is 0-63"),
        ({"dataDiskLuns": "0"}, "images[0].versions[0].dataDiskLuns: must be a list of LUNs"),
        (
            {"confidentialVmEncryptionType": "EncryptedWithPmk"},
            "images[0].versions[0].confidentialVmEncryptionType: is only for confidential definitions",
        ),
        (
            {"confidentialVmEncryptionType": "Encrypted"},
            "images[0].versions[0].confidentialVmEncryptionType: 'Encrypted' is not one of",
        ),
    ],
)
def test_version_key_problems(fields: dict[str, Any], expected: str) -> None:
    found = problems(with_version(**fields))
    assert any(p.startswith(expected) for p in found), found


def test_a_malformed_disk_encryption_set_is_named() -> None:
    raw = with_version()
    raw["images"][0]["versions"][0]["targetRegions"][1]["diskEncryptionSetId"] = "des-weu"
    assert problems(raw) == [
        "images[0].versions[0].targetRegions[1].diskEncryptionSetId: 'des-weu' is not a disk encryption set ID "
        "(/subscriptions/<guid>/resourceGroups/<rg>/providers/Microsoft.Compute/diskEncryptionSets/<name>)"
    ]


def test_customer_managed_confidential_encryption_needs_a_set_in_every_region() -> None:
    raw = with_version(confidentialVmEncryptionType="EncryptedWithCmk")
    raw["images"][0]["securityType"] = "ConfidentialVM"
    raw["images"][0]["versions"][0]["targetRegions"][0]["confidentialVmDiskEncryptionSetId"] = DES.format("weu")
    assert problems(raw) == [
        "images[0].versions[0].targetRegions[1].confidentialVmDiskEncryptionSetId: is required in every target "
        "region with confidentialVmEncryptionType EncryptedWithCmk (the disk encryption set of northeurope holding "
        "the customer-managed key)"
    ]
    raw["images"][0]["versions"][0]["targetRegions"][1]["confidentialVmDiskEncryptionSetId"] = DES.format("neu")
    assert load(raw).images[0].versions[0].confidential_vm_encryption_type == "EncryptedWithCmk"
    raw["images"][0]["versions"][0]["confidentialVmEncryptionType"] = "EncryptedWithPmk"
    assert all("is only used with confidentialVmEncryptionType EncryptedWithCmk" in p for p in problems(raw))


def test_plan_image_type_must_fit_the_generation() -> None:
    assert load(with_definition(planImageType="x64Gen2")).images[0].plan_image_type == "x64Gen2"
    (found,) = problems(with_definition(planImageType="x64Gen1"))
    assert found.startswith(
        "images[0].planImageType: x64Gen1 needs architecture x64 and hyperVGeneration V1, but the definition has "
        "architecture x64 and hyperVGeneration V2"
    )
    assert "https://learn.microsoft.com/partner-center/" in found
    raw = with_definition(planImageType="x64Gen2")
    raw["marketplace"] = False
    assert problems(raw) == ["images[0].planImageType: is a Marketplace rule: remove it, or set marketplace: true"]


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
    found = problems(with_definition(**fields))
    assert any(p.startswith(expected) for p in found), found


# --- components ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def marketplace_resources() -> list[plan.PlannedResource]:
    raw = sc.base()
    image = raw["images"][0]
    image.update(
        validate=True, validation={"resourceGroup": "rg-validate", "subnetId": SUBNET}, planImageType="x64Gen2"
    )
    version = image["versions"][0]
    version["dataDiskLuns"] = [0, 1]
    version["targetRegions"][0]["diskEncryptionSetId"] = DES.format("weu")
    del version["endOfLifeDate"]
    return run(raw)


def test_encryption_goes_into_the_target_regions(marketplace_resources: list[plan.PlannedResource]) -> None:
    regions = one(marketplace_resources, VERSION_T, "ubuntu-1.2.3").inputs["publishingProfile"]["targetRegions"]
    assert regions[0]["encryption"] == {
        "osDiskImage": {"diskEncryptionSetId": DES.format("weu")},
        "dataDiskImages": [
            {"lun": 0, "diskEncryptionSetId": DES.format("weu")},
            {"lun": 1, "diskEncryptionSetId": DES.format("weu")},
        ],
    }
    assert "encryption" not in regions[1]


def test_the_default_end_of_life_is_pinned_at_first_creation(marketplace_resources: list[plan.PlannedResource]) -> None:
    version = one(marketplace_resources, VERSION_T, "ubuntu-1.2.3")
    assert version.inputs["publishingProfile"]["endOfLifeDate"].endswith("T00:00:00Z")
    assert version.inputs["safetyProfile"]["blockDeletionBeforeEndOfLife"] is True
    assert sorted(version.options["ignoreChanges"]) == [
        "publishingProfile.endOfLifeDate",
        "safetyProfile.blockDeletionBeforeEndOfLife",
    ]
    # The plan says what the default means for a later destroy, and the way out.
    notes = " ".join(plan._version_notes(version))
    assert "Azure refuses to delete the version before its end of life" in notes
    assert "set blockDeletionBeforeEndOfLife: false, `pulumi up`, then delete" in notes


def test_configured_values_are_not_pinned() -> None:
    v = load(with_version(blockDeletionBeforeEndOfLife=False)).images[0].versions[0]
    assert pinned_defaults(v) == [], "endOfLifeDate and blockDeletionBeforeEndOfLife configured: no pin"


def test_the_test_boot_follows_the_version_on_the_chains_host(
    marketplace_resources: list[plan.PlannedResource],
) -> None:
    boot = one(marketplace_resources, BOOT_T, "ubuntu-1.2.3-test-boot")
    version = one(marketplace_resources, VERSION_T, "ubuntu-1.2.3")
    guest = one(marketplace_resources, plan.DYNAMIC_GUEST, "ubuntu-1.2.3-guest")
    assert version.urn in boot.depends_on
    assert boot.options["provider"] == guest.options["provider"], "served by the chain's generalization host"
    settings = boot.inputs["boot"]
    assert (settings["location"], settings["resource_group"], settings["subnet_id"]) == (
        "westeurope",
        "rg-validate",
        SUBNET,
    )
    assert settings["tag_value"] == "unit_gallery/ubuntu/1.2.3"
    assert not any("password" in key.lower() for key in settings), "no secret is an input"
    assert not [r for r in marketplace_resources if r.type == BOOT_T and r.name.startswith("win2022")]


def test_the_plan_says_what_happens(marketplace_resources: list[plan.PlannedResource]) -> None:
    entries = plan.describe(marketplace_resources)
    text = plan.render_text("unit", entries)
    assert "the Azure CLI's default" in text and "6 months" in text
    assert "data disks: LUN 0, 1 (dataDiskLuns" in text
    assert "planImageType x64Gen2" in text
    assert "delete the VM, its disks and the NIC" in text


# --- the capture-time rule over the data disks --------------------------------------------------------------


def test_the_data_disk_rule() -> None:
    from hooks.arm import DataDiskFacts
    from hooks.preflight import check_data_disk_luns, data_disks_line
    from tests.unit.test_preflight import VM, facts, target

    two = facts(data_disks=(DataDiskFacts(1, 64), DataDiskFacts(0, 32)))
    assert check_data_disk_luns(VM, two, target(data_disk_luns=(0, 1))) is None
    assert check_data_disk_luns(VM, two, target()) is None, "undeclared and unencrypted: whatever the VM has"
    wrong = check_data_disk_luns(VM, two, target(data_disk_luns=(0,)))
    assert wrong is not None and wrong.path == "images[1].versions[2].dataDiskLuns"
    encrypted = check_data_disk_luns(VM, two, target(encrypts_data_disks=True))
    assert encrypted is not None and "diskEncryptionSetId" in encrypted.message
    assert check_data_disk_luns(VM, facts(), target(encrypts_data_disks=True)) is None
    assert data_disks_line(VM, two, target()).endswith(": LUN 0 (32 GB), LUN 1 (64 GB)")
    assert "no data disks" in data_disks_line(VM, facts(), target())


# --- the throwaway VM's body ---------------------------------------------------------------------------------


def request(**fields: Any) -> TestBootRequest:
    base: dict[str, Any] = dict(
        version_id="/subscriptions/x/resourceGroups/g/providers/Microsoft.Compute/galleries/g/images/i/versions/1.0.0",
        os_type="Windows",
        os_state="Generalized",
        security_type="ConfidentialVM",
        location="westeurope",
        subscription_id=sc.SUBSCRIPTION,
        resource_group="rg-validate",
        subnet_id=SUBNET,
        vm_size="Standard_DC2as_v5",
        admin_username="igvalidate",
        timeout=60.0,
        tag_value="g/i/1.0.0",
    )
    base.update(fields)
    return TestBootRequest(**base)


def test_a_confidential_vm_body() -> None:
    r = request(confidential_vm_encryption_type="EncryptedWithCmk", confidential_disk_encryption_set_id=DES.format("w"))
    body = vm_body(r, (), "Aa1!secret")
    props = body["properties"]
    assert props["securityProfile"]["securityType"] == "ConfidentialVM"
    assert props["storageProfile"]["osDisk"]["managedDisk"]["securityProfile"] == {
        "securityEncryptionType": "DiskWithVMGuestState",
        "diskEncryptionSet": {"id": DES.format("w")},
    }
    assert props["osProfile"]["windowsConfiguration"] == {"provisionVMAgent": True}
    assert len(props["osProfile"]["computerName"]) <= 15, "Windows computer names are at most 15 characters"
    assert "publicIPAddress" not in str(body)


def test_a_disallowed_disk_type_is_not_used() -> None:
    r = request(disallowed_disk_types=("StandardSSD_LRS",), security_type="Standard")
    assert vm_body(r, (0,), "x")["properties"]["storageProfile"]["dataDisks"][0]["managedDisk"] == {
        "storageAccountType": "Premium_LRS"
    }


def test_the_names_derive_from_the_version() -> None:
    assert request().base_name == request(version_id=request().version_id.upper()).base_name
    assert request().base_name != request(version_id=request().version_id.replace("1.0.0", "1.0.1")).base_name
    copy.deepcopy(request())


def test_a_promoted_version_is_test_booted_on_a_host_of_the_pool() -> None:
    raw = sc.base()
    image = raw["images"][1]
    image.update(validate=True, validation={"resourceGroup": "rg-validate", "subnetId": SUBNET})
    version_id = (
        f"/subscriptions/{sc.SUBSCRIPTION}/resourceGroups/rg-dev/providers/Microsoft.Compute/galleries/dev"
        "/images/win2022/versions/0.0.1"
    )
    image["versions"][0] = {
        "version": "0.0.1",
        "sourceVersion": {"id": version_id},
        "targetRegions": [{"name": "westeurope"}],
    }
    resources = run(raw)
    boot = one(resources, BOOT_T, "win2022-0.0.1-test-boot")
    assert one(resources, VERSION_T, "win2022-0.0.1").urn in boot.depends_on
    hosts = {r.urn for r in resources if r.type == "pulumi:providers:pulumi-python"}
    assert boot.options["provider"] and boot.options["provider"].rsplit("::", 1)[0] in hosts


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
    found = problems(with_definition(**fields))
    # (names that are not valid Linux user names at all, like "123", are refused for that first)
    expected = f"images[0].validation.adminUsername: {name!r} is "
    assert any(p.startswith(expected) for p in found), found
