"""Publishing to the Marketplace, through the real dynamic provider host against the HTTPS fake of ARM (and its
Graph stand-in): the Marketplace's certification rules and the definition's features in the capture-time checks,
the provider registration of Microsoft.PartnerCenterIngestion, and the lookup of Partner Center's service
principals."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import pytest

from config import PARTNER_CENTER_NAMESPACE
from hooks.providers.partner_center import PartnerCenterServicePrincipalProvider, ProviderRegistrationProvider
from tests.fakes.dynamic_host import DynamicHost, host_factory, with_provider  # noqa: F401
from tests.fakes.entra import MICROSOFT_SERVICES_TENANT, FakeServicePrincipal, graph_service_principals
from tests.integration.test_preflight import arm_props, capture, check, guest_props, only_failure

if TYPE_CHECKING:
    from tests.fakes.arm import FakeArm

pytest_plugins = ["tests.fakes.arm"]

PC_URN = "urn:pulumi:test::image-gallery::pulumi-python:dynamic/partnercenter:{}::{}"
REGISTRY = "Compute Image Registry"
# The application ID a public export of Microsoft Graph lists for Compute Image Registry (issue 21); the product never
# uses an application ID, it only logs the one Graph returns.
REGISTRY_SP = FakeServicePrincipal(
    "0f0f0f0f-1111-2222-3333-444444444444", "51b6191a-b045-44cf-8277-ee37c9fb5a06", REGISTRY
)
LOOK_ALIKE = FakeServicePrincipal(
    "bad0bad0-1111-2222-3333-444444444444",
    "bad0bad0-aaaa-bbbb-cccc-dddddddddddd",
    REGISTRY,
    owner_tenant="0badc0de-0000-4000-8000-000000000000",
)
"""Anyone can register an application called "Compute Image Registry" in their tenant and get it consented here."""


@pytest.fixture
def host(fake_arm: FakeArm, host_factory: Any) -> DynamicHost:  # noqa: F811
    h: DynamicHost = host_factory(fake_arm.env)
    h.configure({"image-gallery:gallery": "{}"})
    return h


# --- Marketplace certification rules ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("vm_fields", "fragment"),
    [
        (dict(os_disk_size_gb=2048), "is 2048 GB, but Azure Marketplace certifies Linux OS disks of 1-1023 GB"),
        (dict(os_type="Windows", os_disk_size_gb=512), "Windows OS disks of 30-250 GB"),
        (dict(data_disk_sizes_gb=[32] * 17), "has 17 data disks (at most 16)"),
        (dict(data_disk_sizes_gb=[32, 2048]), "larger than 1023 GB (LUN 1: 2048 GB)"),
    ],
)
def test_marketplace_rules(fake_arm: FakeArm, host: DynamicHost, vm_fields: dict[str, Any], fragment: str) -> None:
    vm = fake_arm.add_vm(**vm_fields)
    definition = {"os_type": vm.os_type}
    props = guest_props(fake_arm, vm.id, capture(fake_arm, definition=definition))
    if vm.os_type == "Windows":
        props.update(os_type="Windows", ssh=None, winrm={"host": "127.0.0.1"})
    prop, reason = only_failure(check(fake_arm, host, props))
    assert (prop, reason.split(": ")[0]) == ("vm_id", "sourceVms.web")
    assert fragment in reason
    assert "https://learn.microsoft.com/partner-center/marketplace-offers/" in reason, "each rule cites its source"
    assert "marketplace: false" in reason


def test_marketplace_false_turns_the_rules_off(fake_arm: FakeArm, host: DynamicHost) -> None:
    vm = fake_arm.add_vm(os_disk_size_gb=2048, data_disk_sizes_gb=[2048] * 17)
    cap = capture(fake_arm, marketplace=False)
    assert check(fake_arm, host, guest_props(fake_arm, vm.id, cap)).failures == []
    stderr = host.close()
    assert "same number of data disks" not in stderr, "no Marketplace warning"
    assert "the version captures the data disks of VM src-vm (resource group rg-src): LUN 0 (2048 GB)" in stderr


def test_data_disks_within_limits_pass_with_a_warning(fake_arm: FakeArm, host: DynamicHost) -> None:
    vm = fake_arm.add_vm(data_disk_sizes_gb=[1023] * 16, os_disk_size_gb=1023)
    assert check(fake_arm, host, guest_props(fake_arm, vm.id, capture(fake_arm))).failures == []
    stderr = host.close()
    assert "has 16 data disk(s)" in stderr and "same number of data disks" in stderr


# --- what the definition's features claim --------------------------------------------------------------------


def test_nvme_only_definition_refuses_a_scsi_vm(fake_arm: FakeArm, host: DynamicHost) -> None:
    vm = fake_arm.add_vm(disk_controller_type="SCSI")
    cap = capture(fake_arm, definition={"disk_controller_types": ["NVMe"]})
    _, reason = only_failure(check(fake_arm, host, guest_props(fake_arm, vm.id, cap)))
    assert reason.startswith("images[0].features.diskControllerTypes: ")
    assert "uses the SCSI disk controller" in reason and "supports NVMe" in reason


def test_nvme_vm_needs_nvme_in_the_definition(fake_arm: FakeArm, host: DynamicHost) -> None:
    vm = fake_arm.add_vm(disk_controller_type="NVMe")
    _, reason = only_failure(check(fake_arm, host, guest_props(fake_arm, vm.id, capture(fake_arm))))
    assert "uses the NVMe disk controller" in reason and "not declared: SCSI only" in reason
    both = capture(fake_arm, definition={"disk_controller_types": ["SCSI", "NVMe"]})
    assert check(fake_arm, host, guest_props(fake_arm, vm.id, both)).failures == []


def test_a_vm_without_a_controller_type_is_scsi(fake_arm: FakeArm, host: DynamicHost) -> None:
    vm = fake_arm.add_vm(disk_controller_type=None)
    nvme_only = capture(fake_arm, definition={"disk_controller_types": ["NVMe"]})
    _, reason = only_failure(check(fake_arm, host, guest_props(fake_arm, vm.id, nvme_only)))
    assert "uses the SCSI disk controller" in reason


# --- Partner Center: provider registration -------------------------------------------------------------------


def registration_props(fake: FakeArm) -> dict[str, Any]:
    return with_provider(
        ProviderRegistrationProvider(),
        {
            "resource_name": "gallery-partner-center-ingestion",
            "subscription_id": fake.subscription_id,
            "namespace": PARTNER_CENTER_NAMESPACE,
            "arm": arm_props(fake),
            "registration_state": None,
        },
    )


def test_registration_registers_reads_and_is_left_on_delete(fake_arm: FakeArm, host: DynamicHost) -> None:
    fake_arm.add_subscription(fake_arm.subscription_id)
    fake_arm.register_polls = 2
    urn = PC_URN.format("ProviderRegistration", "gallery-partner-center-ingestion")
    id_, outs = host.create(urn, registration_props(fake_arm))
    assert outs["registration_state"] == "Registered"
    assert id_ == f"/subscriptions/{fake_arm.subscription_id}/providers/{PARTNER_CENTER_NAMESPACE}"
    posts = [r for r in fake_arm.requests if r.method == "POST"]
    assert [r.path.rsplit("/", 1)[-1] for r in posts] == ["register"]
    # A second create (e.g. after a replace) does not register again.
    host.create(urn, registration_props(fake_arm))
    assert len([r for r in fake_arm.requests if r.method == "POST"]) == 1
    _, read = host.read(urn, id_, {**registration_props(fake_arm), **outs})
    assert read["registration_state"] == "Registered"
    host.delete(urn, id_, {**registration_props(fake_arm), **outs})
    assert fake_arm.non_get_requests() == posts, "delete leaves the provider registered"


# --- Partner Center: service principals by display name, owned by Microsoft --------------------------------------


def principal_props(
    fake: FakeArm, configured: str | None = None, on_unreachable: str = "fail", display_name: str = REGISTRY
) -> dict[str, Any]:
    return with_provider(
        PartnerCenterServicePrincipalProvider(),
        {
            "resource_name": "gallery-sp-compute-image-registry",
            "display_name": display_name,
            "configured_object_id": configured,
            "config_key": "partnerCenterPrincipalIds.computeImageRegistry",
            "namespace": PARTNER_CENTER_NAMESPACE,
            "graph_endpoint": fake.endpoint,
            "arm": arm_props(fake),
            "on_unreachable": on_unreachable,
            "config_path": "publisherAccess",
            "object_id": None,
        },
    )


SP_URN = PC_URN.format("PartnerCenterServicePrincipal", "gallery-sp-compute-image-registry")


def graph_reads(fake: FakeArm) -> list[tuple[str, str | None]]:
    """(path, $filter) of each request the checks sent to Graph."""
    return [(r.path, r.query.get("$filter")) for r in fake.requests if r.path.startswith("/v1.0/")]


def test_service_principal_found_by_name_and_owner_in_preview(fake_arm: FakeArm, host: DynamicHost) -> None:
    fake_arm.service_principals += [LOOK_ALIKE, REGISTRY_SP]
    result = host.check(SP_URN, {}, principal_props(fake_arm))
    assert result.failures == []
    assert result.inputs["object_id"] == REGISTRY_SP.object_id, "Microsoft's, not the look-alike listed first"
    assert fake_arm.non_get_requests() == [], "the lookup is read-only"
    assert graph_reads(fake_arm) == [("/v1.0/servicePrincipals", "displayName eq 'Compute Image Registry'")]
    _, outs = host.create(SP_URN, principal_props(fake_arm))
    assert (outs["object_id"], outs["app_id"], outs["owner_tenant"]) == (
        REGISTRY_SP.object_id,
        REGISTRY_SP.app_id,
        MICROSOFT_SERVICES_TENANT,
    )
    logged = host.close()
    assert (
        f'"Compute Image Registry" found by name: application ID {REGISTRY_SP.app_id}, object ID '
        f"{REGISTRY_SP.object_id}, owner tenant {MICROSOFT_SERVICES_TENANT}"
    ) in logged


def test_a_look_alike_owned_by_another_tenant_is_refused(fake_arm: FakeArm, host: DynamicHost) -> None:
    fake_arm.service_principals.append(LOOK_ALIKE)
    # Graph lists it under the name, as the fake does: a lookup ignoring the owner would grant it the role.
    _, listed = graph_service_principals(fake_arm.service_principals, None, {"$filter": f"displayName eq '{REGISTRY}'"})
    lenient = listed["value"][0]["id"]
    assert lenient == LOOK_ALIKE.object_id
    prop, reason = only_failure(host.check(SP_URN, {}, principal_props(fake_arm)))
    assert prop == "display_name" and reason.startswith("publisherAccess: ")
    assert 'no service principal named "Compute Image Registry" owned by Microsoft' in reason
    assert (
        f"refused {LOOK_ALIKE.object_id} (application {LOOK_ALIKE.app_id}), owned by tenant "
        f"{LOOK_ALIKE.owner_tenant}, not by Microsoft"
    ) in reason
    with pytest.raises(Exception, match="Compute Image Registry"):
        host.create(SP_URN, principal_props(fake_arm))


def test_two_principals_owned_by_microsoft_are_not_guessed_between(fake_arm: FakeArm, host: DynamicHost) -> None:
    twin = FakeServicePrincipal(
        "0f0f0f0f-9999-2222-3333-444444444444", "51b6191a-0000-44cf-8277-ee37c9fb5a06", REGISTRY
    )
    fake_arm.service_principals += [REGISTRY_SP, twin]
    _, reason = only_failure(host.check(SP_URN, {}, principal_props(fake_arm)))
    assert 'lists 2 service principals named "Compute Image Registry" owned by Microsoft\'s tenant' in reason
    assert "set partnerCenterPrincipalIds.computeImageRegistry to the right object ID" in reason


def test_missing_service_principal_says_what_to_register(fake_arm: FakeArm, host: DynamicHost) -> None:
    prop, reason = only_failure(host.check(SP_URN, {}, principal_props(fake_arm)))
    assert prop == "display_name"
    assert reason.startswith('publisherAccess: this tenant has no service principal named "Compute Image Registry"')
    assert f"`az provider register --namespace {PARTNER_CENTER_NAMESPACE} --subscription <id>`" in reason
    assert 'says Registered and `az ad sp list --display-name "Compute Image Registry"' in reason
    assert "set partnerCenterPrincipalIds.computeImageRegistry to its object ID" in reason
    guids = set(re.findall(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", reason))
    assert guids == {MICROSOFT_SERVICES_TENANT}, "no application or object ID is invented"
    assert "az ad sp create" not in reason


def test_a_configured_object_id_is_read_by_id(fake_arm: FakeArm, host: DynamicHost) -> None:
    renamed = FakeServicePrincipal("0f0f0f0f-7777-2222-3333-444444444444", REGISTRY_SP.app_id, "Bildregister")
    fake_arm.service_principals += [LOOK_ALIKE, renamed]
    result = host.check(SP_URN, {}, principal_props(fake_arm, configured=renamed.object_id))
    assert result.failures == [] and result.inputs["object_id"] == renamed.object_id
    assert graph_reads(fake_arm) == [(f"/v1.0/servicePrincipals/{renamed.object_id}", None)], "no lookup by name"
    assert "configured in partnerCenterPrincipalIds.computeImageRegistry" in host.close()


def test_a_configured_object_id_missing_from_the_tenant_is_named(fake_arm: FakeArm, host: DynamicHost) -> None:
    props = principal_props(fake_arm, configured="0f0f0f0f-8888-2222-3333-444444444444")
    _, reason = only_failure(host.check(SP_URN, {}, props))
    assert reason.startswith(
        "publisherAccess: partnerCenterPrincipalIds.computeImageRegistry: 0f0f0f0f-8888-2222-3333-444444444444 is "
        "not a service principal in this tenant"
    ), reason


def test_unreachable_graph_fails_or_warns(fake_arm: FakeArm, host: DynamicHost) -> None:
    props = principal_props(fake_arm)
    props["graph_endpoint"] = "https://127.0.0.1:9"
    _, reason = only_failure(host.check(SP_URN, {}, props))
    assert "not checked (Partner Center's service principals)" in reason
    warn = {**principal_props(fake_arm, on_unreachable="warn"), "graph_endpoint": "https://127.0.0.1:9"}
    assert host.check(SP_URN, {}, warn).failures == []
