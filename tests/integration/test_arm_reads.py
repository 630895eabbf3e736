"""What the checks read from ARM (hooks/arm/vm_facts.py, gallery.py, subscription.py), against the HTTPS fake of
ARM through azure-mgmt-compute: each fact from where Azure reports it, Azure's default where it reports none,
"not there" told apart from a refusal, and every refusal naming what was read and the permission it needs.

Shapes the fake's resources do not take (a version's end of life, lower-case features, data disks out of LUN
order) are answered as a whole body, as ARM would send them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from hooks import arm
from hooks.errors import ArmAccessDenied, ArmError
from hooks.log import Log
from hooks.targets import ImageVersionRef

if TYPE_CHECKING:
    from tests.fakes.arm import FakeArm

pytest_plugins = ["tests.fakes.arm"]

OTHER_TENANT = "99999999-0000-0000-0000-000000000001"


@pytest.fixture
def log() -> Log:
    return Log("test", sink=lambda line: None)


def version_ref(fake: FakeArm, number: str = "1.0.0") -> ImageVersionRef:
    return ImageVersionRef(fake.subscription_id, "rg-gallery", "gal", "img", number)


# --- a VM's facts ----------------------------------------------------------------------------------------------


def test_the_disk_layout_comes_from_the_vm_model_and_its_os_disk(fake_arm_env: FakeArm, log: Log) -> None:
    vm = fake_arm_env.add_vm(
        power_state="deallocated", os_disk_size_gb=64, data_disk_sizes_gb=[128, 32], disk_controller_type="NVMe"
    )
    facts = arm.get_facts(fake_arm_env.settings(), vm.ref, log)
    assert facts.os_disk_size_gb == 64
    assert facts.data_disks == (arm.DataDiskFacts(0, 128), arm.DataDiskFacts(1, 32))
    assert facts.disk_controller_type == "NVMe"
    assert facts.accelerated_network is True
    assert facts.supports_hibernation is None
    assert facts.status is not None and facts.status.power_state == "deallocated"
    assert facts.vm_id == vm.vm_id


def test_a_vm_model_without_disk_details_leaves_them_unreported(fake_arm_env: FakeArm, log: Log) -> None:
    vm = fake_arm_env.add_vm(managed_os_disk=False, disk_controller_type=None)
    facts = arm.get_facts(fake_arm_env.settings(), vm.ref, log)
    assert (facts.disk_controller_type, facts.accelerated_network, facts.supports_hibernation) == (None, None, None)
    assert facts.os_disk_size_gb == 30
    assert facts.data_disks == ()


def answered_vm(fake: FakeArm, vm_id: str, storage: dict[str, Any], disk: dict[str, Any] | None = None) -> None:
    """The VM model (and its OS disk) answered as given."""
    props = {"vmId": "vm-unique-id", "storageProfile": storage, "instanceView": {"statuses": []}}
    fake.add_fault(
        200,
        method="GET",
        path=r"/virtualMachines/src-vm$",
        body={"id": vm_id, "location": "westeurope", "properties": props},
    )
    if disk is not None:
        fake.add_fault(
            200, method="GET", path=r"/disks/", body={"id": "d", "location": "westeurope", "properties": disk}
        )


def test_data_disks_are_listed_in_lun_order_and_the_disk_says_what_the_model_does_not(
    fake_arm_env: FakeArm, log: Log
) -> None:
    vm = fake_arm_env.add_vm()
    answered_vm(
        fake_arm_env,
        vm.id,
        {
            "osDisk": {"osType": "Linux", "createOption": "FromImage", "managedDisk": {"id": vm.os_disk_id}},
            "dataDisks": [
                {"lun": 3, "createOption": "Empty", "diskSizeGB": 10},
                {"lun": 1, "createOption": "Empty"},
            ],
        },
        {"osType": "Linux", "diskSizeGB": 48, "supportsHibernation": True, "hyperVGeneration": "V2"},
    )
    facts = arm.get_facts(fake_arm_env.settings(), vm.ref, log)
    assert facts.data_disks == (arm.DataDiskFacts(1, None), arm.DataDiskFacts(3, 10))
    assert facts.os_disk_size_gb == 48, "the OS disk's size when the model has none"
    assert facts.supports_hibernation is True
    assert facts.accelerated_network is None, "no supportedCapabilities on the disk"
    assert (facts.hyper_v_generation, facts.architecture, facts.security_type) == ("V2", "x64", "Standard")
    assert facts.vm_id == "vm-unique-id"


def test_the_os_type_comes_from_the_disk_when_the_model_has_none(fake_arm_env: FakeArm, log: Log) -> None:
    vm = fake_arm_env.add_vm()
    os_disk = {"createOption": "FromImage", "managedDisk": {"id": vm.os_disk_id}}
    answered_vm(fake_arm_env, vm.id, {"osDisk": os_disk}, {"osType": "windows"})
    facts = arm.get_facts(fake_arm_env.settings(), vm.ref, log)
    assert facts.os_type == "Windows"
    assert facts.hyper_v_generation == "V1"


def test_an_os_disk_id_of_another_shape_is_not_read(fake_arm_env: FakeArm, log: Log) -> None:
    vm = fake_arm_env.add_vm()
    os_disk = {"osType": "Linux", "createOption": "FromImage", "managedDisk": {"id": "not-a-disk-id"}}
    answered_vm(fake_arm_env, vm.id, {"osDisk": os_disk})
    facts = arm.get_facts(fake_arm_env.settings(), vm.ref, log)
    assert fake_arm_env.count("GET", "/disks/") == 0
    assert (facts.os_type, facts.architecture) == ("Linux", "x64")


def test_a_refused_os_disk_read_names_the_disk_and_its_permission(fake_arm_env: FakeArm, log: Log) -> None:
    vm = fake_arm_env.add_vm()
    fake_arm_env.deny(403, method="GET", path=r"/disks/")
    with pytest.raises(ArmAccessDenied) as caught:
        arm.get_facts(fake_arm_env.settings(), vm.ref, log)
    assert str(caught.value).startswith(f"Azure denied the request to read the OS disk of {vm.ref} ({vm.os_disk_id})")
    assert "the permission Microsoft.Compute/disks/read on it" in str(caught.value)


def test_a_refused_vm_read_says_it_was_reading_the_vm(fake_arm_env: FakeArm, log: Log) -> None:
    vm = fake_arm_env.add_vm()
    fake_arm_env.fail_with_body(409, {"error": {"code": "Conflict", "message": "Busy."}}, path=r"/virtualMachines/")
    with pytest.raises(ArmError) as caught:
        arm.get_facts(fake_arm_env.settings(), vm.ref, log)
    assert str(caught.value).startswith(f"Azure refused to read {vm.ref} (HTTP 409 Conflict): Busy.")


# --- gallery reads ---------------------------------------------------------------------------------------------


def test_an_image_definition_is_read_as_the_checks_compare_it(fake_arm_env: FakeArm) -> None:
    image = fake_arm_env.add_gallery_image(os_state="specialized", hyper_v_generation=None, architecture=None)
    fake_arm_env.fail_with_body(
        200,
        {
            "id": image.id,
            "location": "westeurope",
            "properties": {
                "osType": "linux",
                "osState": "specialized",
                "identifier": {"publisher": "p", "offer": "o", "sku": "s"},
                "features": [{"name": "securitytype", "value": "TrustedLaunchSupported"}, {"value": "nameless"}],
                "endOfLifeDate": "2030-01-31T00:00:00+00:00",
            },
        },
        method="GET",
        path=r"/images/img$",
    )
    found = arm.get_image_definition(fake_arm_env.settings(), fake_arm_env.subscription_id, "rg-gallery", "gal", "img")
    assert found == arm.ImageDefinitionFacts(
        id=image.id,
        os_type="Linux",
        os_state="Specialized",
        hyper_v_generation="V1",
        architecture="x64",
        security_type="TrustedLaunchSupported",
        end_of_life_date="2030-01-31T00:00:00+00:00",
    )


def test_an_image_definition_without_features_or_end_of_life_is_standard(fake_arm_env: FakeArm) -> None:
    fake_arm_env.add_gallery_image(security_type=None, architecture="Arm64")
    found = arm.get_image_definition(fake_arm_env.settings(), fake_arm_env.subscription_id, "rg-gallery", "gal", "img")
    assert found is not None
    assert (found.security_type, found.architecture, found.end_of_life_date) == ("Standard", "Arm64", None)


def test_an_image_definition_answered_without_properties_is_reported(fake_arm_env: FakeArm) -> None:
    image = fake_arm_env.add_gallery_image()
    fake_arm_env.fail_with_body(200, {"id": image.id, "location": "westeurope"}, method="GET", path=r"/images/img$")
    with pytest.raises(ArmError, match=r"image definition img in gallery gal .* without properties; cannot compare it"):
        arm.get_image_definition(fake_arm_env.settings(), fake_arm_env.subscription_id, "rg-gallery", "gal", "img")


def test_a_refused_image_definition_read_is_not_taken_for_a_missing_one(fake_arm_env: FakeArm) -> None:
    fake_arm_env.add_gallery_image()
    fake_arm_env.deny(403, method="GET", path=r"/images/img$")
    with pytest.raises(ArmAccessDenied) as caught:
        arm.get_image_definition(fake_arm_env.settings(), fake_arm_env.subscription_id, "rg-gallery", "gal", "img")
    assert str(caught.value).startswith(
        "Azure denied the request to read image definition img in gallery gal (resource group rg-gallery) (403 "
    )
    assert "the permission Microsoft.Compute/galleries/images/read on it" in str(caught.value)


def test_a_refused_version_read_is_not_taken_for_a_missing_one(fake_arm_env: FakeArm) -> None:
    fake_arm_env.add_image_version(fake_arm_env.add_gallery_image(), "1.0.0")
    busy = {"error": {"code": "Conflict", "message": "Busy."}}
    fake_arm_env.fail_with_body(409, busy, path=r"/versions/1\.0\.0$", times=None)
    with pytest.raises(
        ArmError, match=r"^Azure refused to read the replication status of image version 1\.0\.0 of img"
    ):
        arm.get_replication_status(fake_arm_env.settings(), version_ref(fake_arm_env))
    with pytest.raises(ArmError, match=r"^Azure refused to read image version 1\.0\.0 of img in gallery gal"):
        arm.get_version_source(fake_arm_env.settings(), version_ref(fake_arm_env))


def test_a_version_captured_from_another_version_has_no_source_vm(fake_arm_env: FakeArm) -> None:
    image = fake_arm_env.add_gallery_image()
    source = f"{image.id}/versions/0.9.0"
    fake_arm_env.add_image_version(image, "1.0.0", source_vm_id=source, legacy_source_id=True)
    found = arm.get_image_version(
        fake_arm_env.settings(), fake_arm_env.subscription_id, "rg-gallery", "gal", "img", "1.0.0"
    )
    assert found is not None
    assert found.source_vm_id is None
    assert found.id == f"{image.id}/versions/1.0.0"
    promoted = arm.get_version_source(fake_arm_env.settings(), version_ref(fake_arm_env))
    assert promoted is not None and promoted.source_id == source


def test_a_version_answered_without_a_storage_profile_has_no_source(fake_arm_env: FakeArm) -> None:
    version = fake_arm_env.add_image_version(fake_arm_env.add_gallery_image(), "1.0.0")
    body = {"id": version.id, "location": "westeurope", "properties": {"provisioningState": "Succeeded"}}
    fake_arm_env.fail_with_body(200, body, method="GET", path=r"/versions/1\.0\.0$")
    found = arm.get_image_version(
        fake_arm_env.settings(), fake_arm_env.subscription_id, "rg-gallery", "gal", "img", "1.0.0"
    )
    assert found == arm.ImageVersionFacts(id=version.id, provisioning_state="Succeeded", source_vm_id=None)


def test_a_versions_replication_and_end_of_life_are_read(fake_arm_env: FakeArm, log: Log) -> None:
    image = fake_arm_env.add_gallery_image()
    fake_arm_env.add_image_version(
        image,
        "1.0.0",
        provisioning_state="Creating",
        replication={"West Europe": [("Completed", 100)], "North Europe": [("Replicating", 40, "  copying\n  blobs ")]},
        extra={"publishingProfile": {"endOfLifeDate": "2031-06-30T00:00:00+00:00"}},
    )
    status = arm.get_replication_status(fake_arm_env.settings(), version_ref(fake_arm_env), log)
    assert status == arm.ReplicationStatus(
        provisioning_state="Creating",
        aggregated_state="InProgress",
        regions=(
            arm.RegionReplication("West Europe", "Completed", 100, ""),
            arm.RegionReplication("North Europe", "Replicating", 40, "copying blobs"),
        ),
    )
    assert any(
        "Creating, replication InProgress (West Europe Completed 100%, North Europe" in line for line in log.lines
    )
    source = arm.get_version_source(fake_arm_env.settings(), version_ref(fake_arm_env))
    assert source is not None
    assert source.end_of_life_date == "2031-06-30T00:00:00+00:00"
    assert [r.region for r in source.replication] == ["West Europe", "North Europe"]
    assert arm.get_replication_status(fake_arm_env.settings(), version_ref(fake_arm_env, "9.9.9")) is None


def test_a_version_answered_without_replication_status_reports_none(fake_arm_env: FakeArm) -> None:
    image = fake_arm_env.add_gallery_image()
    version = fake_arm_env.add_image_version(image, "1.0.0")
    body = {"id": version.id, "location": "westeurope", "properties": {"provisioningState": "Succeeded"}}
    fake_arm_env.fail_with_body(200, body, method="GET", path=r"/versions/1\.0\.0$", times=None)
    status = arm.get_replication_status(fake_arm_env.settings(), version_ref(fake_arm_env))
    assert status == arm.ReplicationStatus(provisioning_state="Succeeded", aggregated_state=None, regions=())
    source = arm.get_version_source(fake_arm_env.settings(), version_ref(fake_arm_env))
    assert source is not None
    assert (source.source_id, source.end_of_life_date, source.replication) == (None, None, ())
    assert fake_arm_env.requests[-1].query.get("$expand") == "ReplicationStatus"


# --- subscription reads ----------------------------------------------------------------------------------------


def test_a_subscription_of_another_tenant_is_told_apart_by_arms_refusal(fake_arm_env: FakeArm) -> None:
    sub = "11111111-2222-3333-4444-555555555555"
    fake_arm_env.add_tenant(OTHER_TENANT)
    fake_arm_env.add_subscription(sub, tenant_id=OTHER_TENANT)
    fake_arm_env.add_subscription(fake_arm_env.subscription_id)
    settings = fake_arm_env.settings()
    assert arm.read_subscription_tenant(settings, fake_arm_env.subscription_id) == (fake_arm_env.tenant_id, False)
    assert arm.read_subscription_tenant(settings, sub) == (OTHER_TENANT, True)
    assert arm.get_subscription_tenant(settings, sub) == OTHER_TENANT


@pytest.mark.parametrize("tenant", ["", 7])
def test_a_subscription_answered_with_a_tenant_that_is_no_id_is_reported(fake_arm_env: FakeArm, tenant: object) -> None:
    sub = fake_arm_env.subscription_id
    body = {"id": f"/subscriptions/{sub}", "subscriptionId": sub, "tenantId": tenant}
    fake_arm_env.fail_with_body(200, body, path=r"^/subscriptions/[^/]+$")
    with pytest.raises(ArmError, match=f"ARM returned subscription {sub} without a tenantId"):
        arm.read_subscription_tenant(fake_arm_env.settings(), sub)


def test_a_401_that_names_no_tenant_is_the_token_refused(fake_arm_env: FakeArm) -> None:
    fake_arm_env.add_subscription(fake_arm_env.subscription_id)
    fake_arm_env.deny(401, path=r"^/subscriptions/[^/]+$")
    with pytest.raises(ArmAccessDenied, match=r"rejected the access token while trying to read subscription "):
        arm.read_subscription_tenant(fake_arm_env.settings(), fake_arm_env.subscription_id)


def test_a_missing_subscription_says_how_to_check_it(fake_arm_env: FakeArm) -> None:
    missing = "deadbeef-0000-0000-0000-000000000000"
    with pytest.raises(ArmError) as caught:
        arm.read_subscription_tenant(fake_arm_env.settings(), missing)
    assert str(caught.value).startswith(
        f"subscription {missing} was not found (SubscriptionNotFound): it does not exist or the identity has no role "
        "in it. Check the subscription id and the login (`az account list`). Azure said: The subscription"
    )


def test_a_subscription_refused_otherwise_is_arms_refusal(fake_arm_env: FakeArm) -> None:
    fake_arm_env.add_subscription(fake_arm_env.subscription_id)
    fake_arm_env.deny(403, path=r"^/subscriptions/[^/]+$")
    with pytest.raises(ArmAccessDenied, match=r"needs the permission Microsoft\.Resources/subscriptions/read"):
        arm.read_subscription_tenant(fake_arm_env.settings(), fake_arm_env.subscription_id)


def test_locations_are_keyed_by_name_and_by_display_name_without_spaces(fake_arm_env: FakeArm) -> None:
    sub = fake_arm_env.subscription_id
    fake_arm_env.add_subscription(sub)
    fake_arm_env.locations = [("westeurope", "West Europe"), ("stage1", "Staging One")]
    assert arm.list_locations(fake_arm_env.settings(), sub) == frozenset({"westeurope", "stage1", "stagingone"})
    fake_arm_env.locations = [("eastus2euap", "")]
    assert arm.list_locations(fake_arm_env.settings(), sub) == frozenset({"eastus2euap"})


def test_locations_answered_in_another_shape_are_reported(fake_arm_env: FakeArm) -> None:
    sub = fake_arm_env.subscription_id
    fake_arm_env.add_subscription(sub)
    fake_arm_env.fail_with_body(200, {"value": {"name": "westeurope"}}, path=r"/locations$")
    with pytest.raises(ArmError, match=f"ARM returned no locations for subscription {sub}"):
        arm.list_locations(fake_arm_env.settings(), sub)
    fake_arm_env.fail_with_body(
        200, {"value": ["westeurope", {"name": "NorthEurope", "displayName": 7}]}, path=r"/locations$"
    )
    assert arm.list_locations(fake_arm_env.settings(), sub) == frozenset({"northeurope"})


def test_a_refused_locations_read_names_what_was_read(fake_arm_env: FakeArm) -> None:
    sub = fake_arm_env.subscription_id
    fake_arm_env.add_subscription(sub)
    fake_arm_env.deny(403, path=r"/locations$")
    with pytest.raises(ArmAccessDenied) as caught:
        arm.list_locations(fake_arm_env.settings(), sub)
    assert str(caught.value).startswith(f"Azure denied the request to read the locations of subscription {sub} (403 ")


def test_a_providers_registration_state_is_read_and_none_is_not_registered(fake_arm_env: FakeArm) -> None:
    sub = fake_arm_env.subscription_id
    settings = fake_arm_env.settings()
    assert arm.provider_registration_state(settings, sub, "Microsoft.Compute") == "NotRegistered"
    fake_arm_env.registered_providers[(sub.lower(), "microsoft.compute")] = "Registered"
    assert arm.provider_registration_state(settings, sub, "Microsoft.Compute") == "Registered"
    fake_arm_env.fail_with_body(200, {"namespace": "Microsoft.Compute"}, path=r"/providers/Microsoft\.Compute$")
    assert arm.provider_registration_state(settings, sub, "Microsoft.Compute") == "NotRegistered"
    fake_arm_env.deny(403, path=r"/providers/Microsoft\.Compute$")
    with pytest.raises(ArmAccessDenied) as caught:
        arm.provider_registration_state(settings, sub, "Microsoft.Compute")
    assert str(caught.value).startswith(
        f"Azure denied the request to read resource provider Microsoft.Compute on subscription {sub} (403 "
    )
    assert "Microsoft.Resources/subscriptions/providers/read" in str(caught.value)
