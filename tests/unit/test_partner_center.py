"""Publishing to the Marketplace under the SDK's mocks: the GalleryImage's features, purchase plan and disallowed
disk types, the Partner Center resources for each publisher access, the stack outputs Partner Center reads, and the
capture-time check of the features a definition claims. Their config keys are tests/unit/config/'s."""

from __future__ import annotations

import datetime
from typing import Any

import config
from components.image_gallery import role_assignment_name
from tests.unit import stack_configs as sc
from tests.unit.test_components import IMAGE_T, ROLE_T, one, run

TODAY = datetime.date(2026, 1, 1)
REGISTRATION_T = "pulumi-python:dynamic/partnercenter:ProviderRegistration"
PRINCIPAL_T = "pulumi-python:dynamic/partnercenter:PartnerCenterServicePrincipal"
READER = "cf7c76d2-98a3-4358-a134-615aa78bf44d"


def load(raw: dict[str, Any]) -> config.StackSpec:
    return config.load(raw, ["sourceVms"], TODAY)


def with_image(**fields: Any) -> dict[str, Any]:
    raw = sc.base()
    raw["images"][0].update(fields)
    return raw


# --- components ----------------------------------------------------------------------------------------------


def test_gallery_image_carries_features_plan_and_disallowed() -> None:
    raw = with_image(
        features={"diskControllerTypes": ["SCSI", "NVMe"], "acceleratedNetwork": True, "hibernate": True},
        purchasePlan={"name": "gen2", "publisher": "contoso", "product": "ubuntu-hardened"},
        disallowedDiskTypes=["Standard_LRS", "StandardSSD_LRS"],
    )
    image = one(run(raw), IMAGE_T, "unit_gallery-ubuntu")
    assert image.inputs["features"] == [
        {"name": "SecurityType", "value": "TrustedLaunch"},
        {"name": "DiskControllerTypes", "value": "SCSI, NVMe"},
        {"name": "IsAcceleratedNetworkSupported", "value": "True"},
        {"name": "IsHibernateSupported", "value": "True"},
    ]
    assert image.inputs["purchasePlan"] == {"name": "gen2", "publisher": "contoso", "product": "ubuntu-hardened"}
    assert image.inputs["disallowed"] == {"diskTypes": ["Standard_LRS", "StandardSSD_LRS"]}


def test_capture_input_carries_marketplace_and_features() -> None:
    raw = with_image(features={"diskControllerTypes": ["NVMe"]})
    raw["marketplace"] = False
    guest = one(run(raw), "pulumi-python:dynamic/generalization:GuestGeneralization", "ubuntu-1.2.3-guest")
    capture = guest.inputs["capture"]
    assert capture["marketplace"] is False
    assert capture["definition"]["disk_controller_types"] == ["NVMe"]


def test_owner_access_declares_no_partner_center_resources() -> None:
    resources = run(sc.base())
    assert not [r for r in resources if r.type in (REGISTRATION_T, PRINCIPAL_T)]
    assert len([r for r in resources if r.type == ROLE_T]) == 1


def test_service_principal_access() -> None:
    raw = sc.base()
    raw["publisherAccess"] = "partnerCenterServicePrincipals"
    raw["graphEndpoint"] = "https://graph.microsoft.us"
    resources = run(raw)
    registration = one(resources, REGISTRATION_T)
    assert registration.inputs["namespace"] == "Microsoft.PartnerCenterIngestion"
    gallery_id = (
        "/subscriptions/<subscription>/resourceGroups/rg-images/providers/Microsoft.Compute/galleries/unit_gallery"
    )
    assert registration.inputs["subscription_id"] == "<subscription>"
    principals = [r for r in resources if r.type == PRINCIPAL_T]
    assert sorted(p.inputs["display_name"] for p in principals) == sorted(config.PARTNER_CENTER_PRINCIPALS.values())
    assert {p.inputs.get("configured_object_id") for p in principals} == {None}, "looked up by name, no ID assumed"
    assert sorted(p.inputs["config_key"] for p in principals) == [
        "partnerCenterPrincipalIds.computeImageRegistry",
        "partnerCenterPrincipalIds.resourceProvider",
    ]
    assert {p.inputs["namespace"] for p in principals} == {"Microsoft.PartnerCenterIngestion"}
    assert {p.inputs["graph_endpoint"] for p in principals} == {"https://graph.microsoft.us"}
    roles = [r for r in resources if r.type == ROLE_T and "partner-center" in r.name]
    assert len(roles) == 2
    for role in roles:
        assert role.inputs["scope"] == gallery_id, "scoped to the gallery only"
        assert role.inputs["roleDefinitionId"].endswith(f"/roleDefinitions/{READER}")
        assert role.inputs["principalType"] == "ServicePrincipal"
        assert registration.urn in role.depends_on
        name = next(
            p.inputs["display_name"] for p in principals if p.name.replace("-sp-", "-partner-center-") == role.name
        )
        assert role.inputs["roleAssignmentName"] == role_assignment_name(gallery_id, name, READER)
    # The publisher account's own role is still there (publisherPrincipalId is set).
    assert len([r for r in resources if r.type == ROLE_T]) == 3


def test_a_configured_object_id_reaches_the_principals_lookup() -> None:
    raw = sc.base()
    raw["publisherAccess"] = "partnerCenterServicePrincipals"
    raw["partnerCenterPrincipalIds"] = {"resourceProvider": "5e5e5e5e-0000-4000-8000-000000000002"}
    principals = {p.inputs["display_name"]: p for p in run(raw) if p.type == PRINCIPAL_T}
    assert (
        principals["Microsoft Partner Center Resource Provider"].inputs["configured_object_id"]
        == "5e5e5e5e-0000-4000-8000-000000000002"
    )
    assert principals["Compute Image Registry"].inputs.get("configured_object_id") is None


def test_partner_center_outputs() -> None:
    from components.publishing import partner_center_outputs

    raw = sc.base()
    raw["publisherTenantId"] = "62913c05-bccf-437c-868c-53cdabfbe8d4"
    spec = load(raw)
    ids: dict[str, Any] = {
        f"{d.name}/{v.version}": f"/id/{d.name}/{v.version}" for d in spec.images for v in d.versions
    }
    out = partner_center_outputs(spec, ids)
    key = next(iter(ids))
    assert out["versions"][key] == {"tenantId": "62913c05-bccf-437c-868c-53cdabfbe8d4", "resourceId": ids[key]}
    first = spec.images[0]
    assert out["latestVersions"][first.name] == {
        "version": first.latest_version,
        "resourceId": ids[f"{first.name}/{first.latest_version}"],
    }


def test_feature_claims_need_an_os_disk_that_supports_them() -> None:
    from hooks import preflight
    from hooks.arm import VmFacts
    from hooks.targets import VmRef

    vm = VmRef(sc.SUBSCRIPTION, "rg", "vm")
    facts = VmFacts(
        "westeurope", "Linux", "V2", "TrustedLaunch", "x64", "id", accelerated_network=False, supports_hibernation=False
    )
    target = preflight.CaptureTarget(
        "d",
        "Linux",
        "Generalized",
        "V2",
        "x64",
        "TrustedLaunch",
        "1.0.0",
        ("westeurope",),
        None,
        "rg",
        "g",
        None,
        accelerated_network=True,
        hibernate=True,
        definition_path="images[0]",
    )
    paths = [m.path for m in preflight.compare_vm(vm, facts, target)]
    assert "images[0].features.acceleratedNetwork" in paths and "images[0].features.hibernate" in paths
    unclaimed = preflight.CaptureTarget(
        "d", "Linux", "Generalized", "V2", "x64", "TrustedLaunch", "1.0.0", ("westeurope",), None, "rg", "g", None
    )
    assert [m.path for m in preflight.compare_vm(vm, facts, unclaimed) if "features" in m.path] == []
