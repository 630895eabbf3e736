"""The components under the Pulumi SDK's mocks, through a MockMonitor subclass that sees resource options.

The program (`__main__.py`) runs exactly as `pulumi up` would run it, against `plan.RecordingMonitor`'s records."""

from __future__ import annotations

import base64
import uuid
from typing import Any

import pulumi
import pytest

from commands import plan, stack_file
from components.image_gallery import ROLE_ASSIGNMENT_NAMESPACE, role_assignment_name
from tests.unit import stack_configs as sc

GALLERY_T = "azure-native:compute:Gallery"
IMAGE_T = "azure-native:compute:GalleryImage"
VERSION_T = "azure-native:compute:GalleryImageVersion"
ROLE_T = "azure-native:authorization:RoleAssignment"
GUEST_T = plan.DYNAMIC_GUEST
VM_T = plan.DYNAMIC_VM


def run(raw: dict[str, Any]) -> list[plan.PlannedResource]:
    values, secrets = sc.as_engine_config(raw)
    return plan.run_program("image-gallery", "unit", values, secrets).resources


def one(resources: list[plan.PlannedResource], typ: str, name: str | None = None) -> plan.PlannedResource:
    found = [r for r in resources if r.type == typ and (name is None or r.name == name)]
    assert len(found) == 1, f"expected one {typ} {name or ''}, found {[r.name for r in found]}"
    return found[0]


@pytest.fixture(scope="module")
def resources() -> list[plan.PlannedResource]:
    return run(sc.base())


def test_tree_and_parents(resources: list[plan.PlannedResource]) -> None:
    by_urn = {r.urn: r for r in resources}
    kinds = sorted((r.type, r.name) for r in resources)
    assert (GALLERY_T, "unit_gallery") in kinds
    assert len([r for r in resources if r.type == IMAGE_T]) == 2
    assert len([r for r in resources if r.type == VERSION_T]) == 2
    # Every azure-native and dynamic resource sits under one of our components.
    for r in resources:
        if r.type.startswith(("azure-native:", "pulumi-python:dynamic")):
            assert r.parent in by_urn, f"{r.name} has no component parent"
            assert by_urn[r.parent].type.startswith("image-gallery:index:")


def test_version_depends_on_the_chain(resources: list[plan.PlannedResource]) -> None:
    guest = one(resources, GUEST_T, "ubuntu-1.2.3-guest")
    vm = one(resources, VM_T, "ubuntu-1.2.3-vm")
    version = one(resources, VERSION_T, "ubuntu-1.2.3")
    image = one(resources, IMAGE_T, "unit_gallery-ubuntu")
    assert guest.urn in vm.depends_on
    assert guest.urn in vm.property_dependencies["after_guest"], "the ARM half must wait for the guest's output"
    assert {vm.urn, image.urn} <= set(version.depends_on)
    # The capture's source VM ID is the ARM half's output, so it cannot be known before verification.
    assert vm.urn in version.property_dependencies["storageProfile"]
    assert version.inputs["storageProfile"] == {"source": {"virtualMachineId": sc.vm_id("linux-src")}}


def test_role_assignment_scoped_to_gallery_with_stable_guid(resources: list[plan.PlannedResource]) -> None:
    gallery = one(resources, GALLERY_T)
    role = one(resources, ROLE_T)
    gallery_id = (
        "/subscriptions/<subscription>/resourceGroups/rg-images/providers/Microsoft.Compute/galleries/unit_gallery"
    )
    assert role.inputs["scope"] == gallery_id
    assert role.inputs["roleDefinitionId"] == (
        "/subscriptions/<subscription>/providers/Microsoft.Authorization/roleDefinitions/"
        "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
    )
    assert role.inputs["principalId"] == sc.PRINCIPAL
    assert role.inputs["principalType"] == "User"
    expected = str(
        uuid.uuid5(
            ROLE_ASSIGNMENT_NAMESPACE, f"{gallery_id.lower()}|{sc.PRINCIPAL}|8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
        )
    )
    assert role.inputs["roleAssignmentName"] == expected
    assert role.options["deleteBeforeReplace"] is True
    assert gallery.urn in role.depends_on


def test_role_guid_is_stable_and_distinct() -> None:
    a = role_assignment_name("/subscriptions/x/g", sc.PRINCIPAL, "role-1")
    assert a == role_assignment_name("/SUBSCRIPTIONS/X/G", sc.PRINCIPAL.upper(), "ROLE-1")
    assert a != role_assignment_name("/subscriptions/x/g2", sc.PRINCIPAL, "role-1")
    assert a != role_assignment_name("/subscriptions/x/g", sc.PRINCIPAL, "role-2")
    assert uuid.UUID(a).version == 5


def test_role_uses_the_gallery_subscription_and_chosen_role() -> None:
    raw = sc.base()
    raw["publisherRole"] = "ComputeGalleryImageReader"
    values, secrets = sc.as_engine_config(raw)
    values["azure-native:subscriptionId"] = '"11111111-2222-3333-4444-555555555555"'
    role = one(plan.run_program("image-gallery", "unit", values, secrets).resources, ROLE_T)
    assert role.inputs["roleDefinitionId"] == (
        "/subscriptions/11111111-2222-3333-4444-555555555555/providers/Microsoft.Authorization/roleDefinitions/"
        "cf7c76d2-98a3-4358-a134-615aa78bf44d"
    )
    assert role.name.endswith("publisher-computegalleryimagereader")


def test_no_publisher_no_role() -> None:
    raw = sc.base()
    del raw["publisherPrincipalId"]
    assert not [r for r in run(raw) if r.type == ROLE_T]


def test_definition_inputs_field_by_field(resources: list[plan.PlannedResource]) -> None:
    linux = one(resources, IMAGE_T, "unit_gallery-ubuntu").inputs
    assert linux["galleryImageName"] == "ubuntu"
    assert linux["galleryName"] == "unit_gallery"
    assert linux["resourceGroupName"] == "rg-images"
    assert linux["location"] == "westeurope"
    assert (linux["osType"], linux["osState"], linux["hyperVGeneration"], linux["architecture"]) == (
        "Linux",
        "Generalized",
        "V2",
        "x64",
    )
    assert linux["identifier"] == {"offer": "ubuntu", "publisher": "contoso", "sku": "22_04"}
    assert linux["features"] == [{"name": "SecurityType", "value": "TrustedLaunch"}]
    assert linux["recommended"] == {"vCPUs": {"max": 8, "min": 2}}
    windows = one(resources, IMAGE_T, "unit_gallery-win2022").inputs
    assert "features" not in windows, "Standard security type has no SecurityType feature"
    assert windows["hyperVGeneration"] == "V1"


def test_version_inputs_field_by_field(resources: list[plan.PlannedResource]) -> None:
    version = one(resources, VERSION_T, "ubuntu-1.2.3")
    i = version.inputs
    assert (i["galleryImageVersionName"], i["galleryImageName"], i["galleryName"]) == (
        "1.2.3",
        "ubuntu",
        "unit_gallery",
    )
    assert i["publishingProfile"] == {
        "endOfLifeDate": "2030-01-31T00:00:00Z",
        "excludeFromLatest": False,
        "replicaCount": 2,
        "replicationMode": "Full",
        "storageAccountType": "Standard_LRS",
        "targetRegions": [
            {
                "excludeFromLatest": False,
                "name": "westeurope",
                "regionalReplicaCount": 3,
                "storageAccountType": "Standard_ZRS",
            },
            {
                "excludeFromLatest": False,
                "name": "northeurope",
                "regionalReplicaCount": 2,
                "storageAccountType": "Standard_LRS",
            },
        ],
    }
    # Not configured: the Azure CLI's default (deletion blocked before the end of life), pinned at first creation.
    assert i["safetyProfile"] == {"allowDeletionOfReplicatedLocations": False, "blockDeletionBeforeEndOfLife": True}
    assert version.options["ignoreChanges"] == ["safetyProfile.blockDeletionBeforeEndOfLife"]
    assert version.options["customTimeouts"] == {"create": "240m"}
    assert version.options["protect"] is True
    win = one(resources, VERSION_T, "win2022-0.0.1")
    assert win.options["protect"] is False
    assert win.options["customTimeouts"] == {"create": "180m"}


def test_guest_step_inputs_and_secret_credentials(resources: list[plan.PlannedResource]) -> None:
    guest = one(resources, GUEST_T, "ubuntu-1.2.3-guest")
    i = guest.inputs
    assert i["vm_id"] == sc.vm_id("linux-src")
    assert i["os_type"] == "Linux"
    assert i["ssh"] == {
        "command_timeout": 900,
        "connect_timeout": 600,
        "host": "10.0.0.4",
        "host_key": sc.HOST_KEY,
        "insecure_ignore_host_key": False,
        "keep_machine_id": False,
        "port": 22,
        "username": "azureuser",
    }
    assert i["arm"] == {
        "audience": None,
        "endpoint": "https://management.azure.com",
        "operation_timeout": 1200,
        "poll_interval": 5,
    }
    assert i["credentials"] == stack_file.SECRET, "credentials must reach the engine as a secret"
    assert "credentials" in guest.options["additionalSecretOutputs"]
    win = one(resources, GUEST_T, "win2022-0.0.1-guest").inputs
    assert win["winrm"]["scheme"] == "https"
    assert win["winrm"]["insecure_skip_certificate_validation"] is True
    assert win["winrm"]["sysprep"]["mode"] == "vm"


def test_no_plaintext_secret_anywhere(resources: list[plan.PlannedResource]) -> None:
    text = repr([(r.inputs, r.options) for r in resources])
    assert "UNIT-TEST-KEY-MATERIAL" not in text
    assert sc.WINRM_PASSWORD not in text


def test_provider_blob_is_a_small_reference_without_secrets() -> None:
    from pulumi.dynamic.dynamic import serialize_provider

    from hooks.providers.chain import GuestGeneralizationProvider, VmGeneralizationProvider

    for provider in (GuestGeneralizationProvider(), VmGeneralizationProvider()):
        blob = serialize_provider(provider)
        raw = base64.b64decode(blob)
        assert len(blob) < 200, f"provider blob is {len(blob)} bytes: something is captured by value"
        assert b"hooks.providers" in raw
        assert b"KEY-MATERIAL" not in raw and sc.WINRM_PASSWORD.encode() not in raw


def test_specialized_definition_skips_guest_and_generalize() -> None:
    raw = sc.base()
    raw["images"] = [raw["images"][0]]
    raw["images"][0]["osState"] = "Specialized"
    resources = run(raw)
    assert not [r for r in resources if r.type == GUEST_T]
    vm = one(resources, VM_T)
    assert vm.inputs["generalize"] is False
    assert vm.inputs["deallocate"] is True


def test_outputs_exported_per_stack() -> None:
    values, secrets = sc.as_engine_config(sc.base())
    exports = plan.run_program("image-gallery", "unit", values, secrets).exports
    base = "/subscriptions/<subscription>/resourceGroups/rg-images/providers/Microsoft.Compute/galleries/unit_gallery"
    assert exports["galleryId"] == base
    assert exports["definitionIds"] == {"ubuntu": f"{base}/images/ubuntu", "win2022": f"{base}/images/win2022"}
    assert exports["versionIds"] == {
        "ubuntu/1.2.3": f"{base}/images/ubuntu/versions/1.2.3",
        "win2022/0.0.1": f"{base}/images/win2022/versions/0.0.1",
    }


def test_checks_read_azure_in_a_preview_only(
    resources: list[plan.PlannedResource], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A preview's Check runs the capture-time checks; the update's Check does not (the Create runs them).
    halves = [r for r in resources if r.type in (GUEST_T, VM_T)]
    assert halves and all(r.inputs["read_in_check"] is True for r in halves)
    monkeypatch.setattr(pulumi.runtime, "is_dry_run", lambda: False)
    update = [r for r in run(sc.base()) if r.type in (GUEST_T, VM_T)]
    assert update and all(r.inputs["read_in_check"] is False for r in update)
