"""An image version under the SDK's mocks, beyond its inputs field by field (test_components.py): its disk
encryption per target region, the Azure CLI's end-of-life default pinned at first creation (and a configured one
not), its test boot (on the chain's generalization host, or on a host of the pool for a promoted version), and what
the plan says of them. Their config keys are tests/unit/config/'s."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

import config
from commands import plan
from components.captured_image_version import pinned_defaults
from hooks.providers.version_test_boot import VersionTestBoot
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


def with_version(**fields: Any) -> dict[str, Any]:
    raw = sc.base()
    raw["images"][0]["versions"][0].update(fields)
    return raw


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
