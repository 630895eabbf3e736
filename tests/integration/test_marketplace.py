"""Publishing to the Marketplace, through the real dynamic provider host against the HTTPS fake of ARM (and its
Graph stand-in): the Marketplace's certification rules and the definition's features in the capture-time checks,
the provider registration of Microsoft.PartnerCenterIngestion, and the lookup of Partner Center's service
principals."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from config import PARTNER_CENTER_APPS, PARTNER_CENTER_NAMESPACE
from hooks.providers.partner_center import PartnerCenterServicePrincipalProvider, ProviderRegistrationProvider
from tests.fakes.dynamic_host import DynamicHost, host_factory, with_provider  # noqa: F401
from tests.integration.test_preflight import arm_props, capture, check, guest_props, only_failure

if TYPE_CHECKING:
    from tests.fakes.arm import FakeArm

pytest_plugins = ["tests.fakes.arm"]

PC_URN = "urn:pulumi:test::image-gallery::pulumi-python:dynamic/partnercenter:{}::{}"
RESOURCE_PROVIDER_APP, IMAGE_REGISTRY_APP = (app for _, app in PARTNER_CENTER_APPS)


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


# --- Partner Center: service principals by application ID ----------------------------------------------------


def principal_props(fake: FakeArm, app_id: str = IMAGE_REGISTRY_APP, on_unreachable: str = "fail") -> dict[str, Any]:
    return with_provider(
        PartnerCenterServicePrincipalProvider(),
        {
            "resource_name": "gallery-sp-compute-image-registry",
            "app_id": app_id,
            "display_name": "Compute Image Registry",
            "graph_endpoint": fake.endpoint,
            "arm": arm_props(fake),
            "on_unreachable": on_unreachable,
            "config_path": "publisherAccess",
            "object_id": None,
        },
    )


SP_URN = PC_URN.format("PartnerCenterServicePrincipal", "gallery-sp-compute-image-registry")


def test_service_principal_found_in_preview(fake_arm: FakeArm, host: DynamicHost) -> None:
    fake_arm.service_principals[IMAGE_REGISTRY_APP] = ("0f0f0f0f-1111-2222-3333-444444444444", "Compute Image Registry")
    result = host.check(SP_URN, {}, principal_props(fake_arm))
    assert result.failures == []
    assert result.inputs["object_id"] == "0f0f0f0f-1111-2222-3333-444444444444"
    assert fake_arm.non_get_requests() == [], "the lookup is read-only"
    assert any(f"servicePrincipals(appId='{IMAGE_REGISTRY_APP}')" in r.path for r in fake_arm.requests)
    _, outs = host.create(SP_URN, principal_props(fake_arm))
    assert outs["object_id"] == "0f0f0f0f-1111-2222-3333-444444444444"


def test_missing_service_principal_is_named_in_preview(fake_arm: FakeArm, host: DynamicHost) -> None:
    prop, reason = only_failure(host.check(SP_URN, {}, principal_props(fake_arm)))
    assert prop == "app_id"
    assert reason.startswith("publisherAccess: ")
    assert '"Compute Image Registry"' in reason and IMAGE_REGISTRY_APP in reason
    assert (
        "has no service principal in this tenant" in reason and f"az ad sp create --id {IMAGE_REGISTRY_APP}" in reason
    )


def test_unreachable_graph_fails_or_warns(fake_arm: FakeArm, host: DynamicHost) -> None:
    props = principal_props(fake_arm)
    props["graph_endpoint"] = "https://127.0.0.1:9"
    _, reason = only_failure(host.check(SP_URN, {}, props))
    assert "not checked (Partner Center's service principals)" in reason
    warn = {**principal_props(fake_arm, on_unreachable="warn"), "graph_endpoint": "https://127.0.0.1:9"}
    assert host.check(SP_URN, {}, warn).failures == []
