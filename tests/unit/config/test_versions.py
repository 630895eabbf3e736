"""`images[].versions[]` (config.versions): each version's number, source VM, replication, end of life and deletion
safety, encryption per target region and data disks; a version's source VM fitting its definition's OS."""

from __future__ import annotations

import copy
from datetime import date
from typing import Any

import pytest

from config.versions import default_end_of_life
from tests.unit import stack_configs as sc
from tests.unit.config.one_change import (
    DELETE,
    LINUX_SPECIALIZED_SOURCE,
    REGIONS,
    SECOND_LINUX_SOURCE,
    SSH,
    VERSION_0,
    WINRM,
    Rule,
    assert_rule,
    config_with,
    load,
    problems_of,
    rule_cases,
    the_problem,
)

DES = f"/subscriptions/{sc.SUBSCRIPTION}/resourceGroups/rg-keys/providers/Microsoft.Compute/diskEncryptionSets/{{}}"


def with_version(**fields: Any) -> dict[str, Any]:
    raw = sc.base()
    raw["images"][0]["versions"][0].update(fields)
    return raw


RULES: list[Rule] = [
    ({f"{VERSION_0}.version": DELETE}, f"{VERSION_0}.version", "is required"),
    ({f"{VERSION_0}.version": "1.0"}, f"{VERSION_0}.version", "'1.0' is not Major.Minor.Patch"),
    ({f"{VERSION_0}.version": "1.0.0.0"}, f"{VERSION_0}.version", "is not Major.Minor.Patch"),
    ({f"{VERSION_0}.version": "v1.0.0"}, f"{VERSION_0}.version", "is not Major.Minor.Patch"),
    ({f"{VERSION_0}.version": "1.-1.0"}, f"{VERSION_0}.version", "is not Major.Minor.Patch"),
    ({f"{VERSION_0}.version": "1.0.0-beta"}, f"{VERSION_0}.version", "is not Major.Minor.Patch"),
    ({f"{VERSION_0}.version": "1.0.0\n"}, f"{VERSION_0}.version", "is not Major.Minor.Patch"),
    (
        {f"{VERSION_0}.version": "1.2147483648.0"},
        f"{VERSION_0}.version",
        "'1.2147483648.0': each part must be a non-negative 32-bit integer (<= 2147483647)",
    ),
    ({f"{VERSION_0}.sourceVm": DELETE}, f"{VERSION_0}.sourceVm", "is required"),
    (
        {f"{VERSION_0}.sourceVm": "linux-bulid"},
        f"{VERSION_0}.sourceVm",
        "'linux-bulid' is not a key under sourceVms (defined: linux-build, win-build)",
    ),
    ({f"{VERSION_0}.targetRegions": DELETE}, f"{VERSION_0}.targetRegions", "is required and must list at least one"),
    ({f"{VERSION_0}.targetRegions": []}, f"{VERSION_0}.targetRegions", "must list at least one entry"),
    (
        {f"{VERSION_0}.targetRegions[1]": {"name": "westeurope", "replicaCount": 2}},
        f"{VERSION_0}.targetRegions",
        "region 'westeurope' is listed more than once",
    ),
    ({f"{VERSION_0}.targetRegions[0].name": DELETE}, f"{VERSION_0}.targetRegions[0].name", "is required"),
    ({f"{VERSION_0}.targetRegions[0].name": "West-Europe"}, f"{VERSION_0}.targetRegions[0].name", "not an Azure"),
    ({f"{VERSION_0}.replicaCount": 0}, f"{VERSION_0}.replicaCount", "0 is out of range 1-100"),
    ({f"{VERSION_0}.replicaCount": 101}, f"{VERSION_0}.replicaCount", "101 is out of range 1-100"),
    ({f"{VERSION_0}.replicaCount": "--5"}, f"{VERSION_0}.replicaCount", "must be an integer, got '--5'"),
    ({f"{VERSION_0}.replicaCount": 1.5}, f"{VERSION_0}.replicaCount", "must be an integer, got 1.5"),
    ({f"{VERSION_0}.replicaCount": True}, f"{VERSION_0}.replicaCount", "must be an integer, got True"),
    (
        {f"{VERSION_0}.targetRegions[0].replicaCount": 0},
        f"{VERSION_0}.targetRegions[0].replicaCount",
        "0 is out of range 1-100",
    ),
    (
        {f"{VERSION_0}.storageAccountType": "Premium_ZRS"},
        f"{VERSION_0}.storageAccountType",
        "'Premium_ZRS' is not one of 'Standard_LRS', 'Standard_ZRS', 'Premium_LRS', 'PremiumV2_LRS'",
    ),
    (
        {f"{VERSION_0}.targetRegions[0].storageAccountType": "standard_lrs"},
        f"{VERSION_0}.targetRegions[0].storageAccountType",
        "'standard_lrs' is not one of",
    ),
    (
        {f"{VERSION_0}.replicationMode": "Partial"},
        f"{VERSION_0}.replicationMode",
        "'Partial' is not one of 'Full', 'Shallow'",
    ),
    ({f"{VERSION_0}.endOfLifeDate": "next year"}, f"{VERSION_0}.endOfLifeDate", "'next year' is not an ISO date"),
    ({f"{VERSION_0}.endOfLifeDate": "2025-01-01"}, f"{VERSION_0}.endOfLifeDate", "2025-01-01 is not in the future"),
    ({f"{VERSION_0}.createTimeoutMinutes": 0}, f"{VERSION_0}.createTimeoutMinutes", "must be a positive number"),
    ({f"{VERSION_0}.excludeFromLatest": "yes"}, f"{VERSION_0}.excludeFromLatest", "must be true or false, got 'yes'"),
    ({f"{VERSION_0}.protect": 1}, f"{VERSION_0}.protect", "must be true or false, got 1"),
]


@pytest.mark.parametrize(("changes", "path", "fragment"), rule_cases(RULES))
def test_rule(changes: dict[str, Any], path: str, fragment: str) -> None:
    assert_rule(changes, path, fragment)


def test_versions_are_unique_per_definition() -> None:
    second = {"version": "1.0.0", "sourceVm": "linux-build-2", "targetRegions": [{"name": "westeurope"}]}
    raw = config_with({"images[0].versions[1]": second, "sourceVms.linux-build-2": SECOND_LINUX_SOURCE})
    assert the_problem(raw) == "images[0].versions[1].version: '1.0.0' is declared twice in 'ubuntu'"


def test_duplicate_versions_are_reported_at_their_own_index_after_an_invalid_one() -> None:
    raw = config_with(
        {
            "images[0].osState": "Specialized",  # so one VM may feed several versions
            f"{VERSION_0}.version": "2.0",
            "images[0].versions[1]": {"version": "2.0.0", "sourceVm": "linux-build", "targetRegions": REGIONS},
            "images[0].versions[2]": {"version": "2.0.0", "sourceVm": "linux-build", "targetRegions": REGIONS},
        }
    )
    assert problems_of(raw) == [
        f"{VERSION_0}.version: '2.0' is not Major.Minor.Patch",
        "images[0].versions[2].version: '2.0.0' is declared twice in 'ubuntu'",
    ]


# --- the source VM ----------------------------------------------------------------------------------------------------


def test_linux_definition_needs_ssh_and_no_winrm() -> None:
    found = problems_of(config_with({f"{VERSION_0}.sourceVm": "win-build", "images[1].versions": []}))
    assert found == [
        f"{VERSION_0}.sourceVm: sourceVms.win-build needs an ssh block: Linux VMs are deprovisioned with waagent "
        "over SSH",
        f"{VERSION_0}.sourceVm: sourceVms.win-build has a winrm block but the definition's osType is Linux",
    ]


def test_windows_definition_needs_winrm_and_no_ssh() -> None:
    found = problems_of(config_with({"images[1].versions[0].sourceVm": "linux-build", "images[0].versions": []}))
    assert found == [
        "images[1].versions[0].sourceVm: sourceVms.linux-build needs a winrm block: Windows VMs are sysprepped "
        "over WinRM",
        "images[1].versions[0].sourceVm: sourceVms.linux-build has an ssh block but the definition's osType is Windows",
    ]


def test_generalized_definition_with_a_transport_less_vm_is_refused() -> None:
    raw = config_with({"sourceVms.golden": LINUX_SPECIALIZED_SOURCE, f"{VERSION_0}.sourceVm": "golden"})
    assert the_problem(raw).startswith(f"{VERSION_0}.sourceVm: sourceVms.golden needs an ssh block")


def test_an_invalid_source_vm_is_reported_once_not_again_by_its_versions() -> None:
    """The versions that use a broken source VM must not add 'not a key under sourceVms' or 'needs an ssh block'."""
    assert the_problem(config_with({"sourceVms.linux-build.id": "vm-1"})).startswith("sourceVms.linux-build.id: ")
    assert the_problem(config_with({f"{SSH}.username": DELETE})) == f"{SSH}.username: is required"
    assert the_problem(config_with({f"{WINRM}.password": DELETE})).startswith(f"{WINRM}.password: is required")


def test_no_source_vms_at_all() -> None:
    found = problems_of(config_with({"sourceVms": DELETE}))
    assert found == [
        f"{VERSION_0}.sourceVm: 'linux-build' is not a key under sourceVms (defined: none defined)",
        "images[1].versions[0].sourceVm: 'win-build' is not a key under sourceVms (defined: none defined)",
    ]


# --- end of life and deletion -----------------------------------------------------------------------------------------


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


# --- encryption per target region -------------------------------------------------------------------------------------


def test_region_encryption_and_luns_are_read() -> None:
    raw = with_version(dataDiskLuns=[1, 0])
    raw["images"][0]["versions"][0]["targetRegions"][0]["diskEncryptionSetId"] = DES.format("des-weu")
    v = load(raw).images[0].versions[0]
    assert v.data_disk_luns == (0, 1)
    assert v.target_regions[0].disk_encryption_set_id == DES.format("des-weu")
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
    found = problems_of(with_version(**fields))
    assert any(p.startswith(expected) for p in found), found


def test_a_malformed_disk_encryption_set_is_named() -> None:
    raw = with_version()
    raw["images"][0]["versions"][0]["targetRegions"][1]["diskEncryptionSetId"] = "des-weu"
    assert problems_of(raw) == [
        "images[0].versions[0].targetRegions[1].diskEncryptionSetId: 'des-weu' is not a disk encryption set ID "
        "(/subscriptions/<guid>/resourceGroups/<rg>/providers/Microsoft.Compute/diskEncryptionSets/<name>)"
    ]


def test_customer_managed_confidential_encryption_needs_a_set_in_every_region() -> None:
    raw = with_version(confidentialVmEncryptionType="EncryptedWithCmk")
    raw["images"][0]["securityType"] = "ConfidentialVM"
    raw["images"][0]["versions"][0]["targetRegions"][0]["confidentialVmDiskEncryptionSetId"] = DES.format("des-weu")
    assert problems_of(raw) == [
        "images[0].versions[0].targetRegions[1].confidentialVmDiskEncryptionSetId: is required in every target "
        "region with confidentialVmEncryptionType EncryptedWithCmk (the disk encryption set of northeurope holding "
        "the customer-managed key)"
    ]
    raw["images"][0]["versions"][0]["targetRegions"][1]["confidentialVmDiskEncryptionSetId"] = DES.format("des-neu")
    assert load(raw).images[0].versions[0].confidential_vm_encryption_type == "EncryptedWithCmk"
    raw["images"][0]["versions"][0]["confidentialVmEncryptionType"] = "EncryptedWithPmk"
    assert all("is only used with confidentialVmEncryptionType EncryptedWithCmk" in p for p in problems_of(raw))


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


# --- Marketplace data disks -------------------------------------------------------------------------------------------


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
