"""Existing stacks keep working after the providers moved, through the real dynamic provider host: refresh (Read)
and delete (Delete) of resources whose state holds a provider blob written before the move
(tests/unit/data/provider_blobs_before_providers_package.json; tests/unit/test_provider_state.py says why)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fakes.dynamic_host import DynamicHost, host_factory  # noqa: F401
from tests.unit.test_provider_state import OLD_BLOBS

VM_ID = (
    "/subscriptions/00000000-0000-0000-0000-00000000aaaa/resourceGroups/rg/providers/Microsoft.Compute"
    "/virtualMachines/web"
)
VERSION_ID = (
    "/subscriptions/00000000-0000-0000-0000-00000000aaaa/resourceGroups/rg/providers/Microsoft.Compute/galleries/g"
    "/images/img/versions/1.0.0"
)
SUBSCRIPTION = "00000000-0000-0000-0000-00000000aaaa"

STATES: dict[str, tuple[str, str, dict[str, Any], str]] = {
    # old dotted name: (type, id, outputs as the state holds them, what delete logs)
    "hooks.providers.GuestGeneralizationProvider": (
        "generalization:GuestGeneralization",
        f"{VM_ID}/guestGeneralization",
        {"vm_id": VM_ID, "os_type": "Linux", "action": "deprovisioned", "resource_name": "img-1.0.0-guest"},
        f"[img-1.0.0-guest] removed from the stack; the VM {VM_ID} was left untouched",
    ),
    "hooks.providers.VmGeneralizationProvider": (
        "generalization:VmGeneralization",
        f"{VM_ID}/vmGeneralization",
        {"vm_id": VM_ID, "generalized": True, "power_state": "deallocated", "resource_name": "img-1.0.0-vm"},
        f"[img-1.0.0-vm] removed from the stack; the VM {VM_ID} was left untouched",
    ),
    "hooks.promotion.VersionPromotionProvider": (
        "promotion:VersionPromotion",
        f"{VERSION_ID}/promotion",
        {"source_id": VERSION_ID, "checked_at": "2026-11-30T10:00:00+00:00"},  # its outputs name no resource
        f"[promotion] removed from the stack; the source version {VERSION_ID} was left untouched",
    ),
    "hooks.version_boot_provider.VersionTestBootProvider": (
        "validation:VersionTestBoot",
        f"{VERSION_ID}/testBoot",
        {"version_id": VERSION_ID, "agent_status": "Ready", "resource_name": "img-test-boot"},
        "[img-test-boot] removed from the stack; the test boot left nothing in Azure to delete",
    ),
    "hooks.partner_center_providers.ProviderRegistrationProvider": (
        "partnercenter:ProviderRegistration",
        f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.PartnerCenterIngestion",
        {
            "subscription_id": SUBSCRIPTION,
            "namespace": "Microsoft.PartnerCenterIngestion",
            "registration_state": "Registered",
            "resource_name": "registration",
        },
        "[registration] removed from the stack; Microsoft.PartnerCenterIngestion stays registered",
    ),
    "hooks.partner_center_providers.PartnerCenterServicePrincipalProvider": (
        "partnercenter:PartnerCenterServicePrincipal",
        "11111111-2222-3333-4444-555555555555",
        {"object_id": "11111111-2222-3333-4444-555555555555", "app_id": "app", "resource_name": "principal"},
        "",
    ),
}
NO_AZURE_ON_READ = set(STATES) - {"hooks.partner_center_providers.ProviderRegistrationProvider"}
"""Providers whose Read only hands back the record (a registration's Read asks ARM for its state)."""


@pytest.mark.parametrize("old_name", sorted(STATES))
def test_refresh_and_delete_of_a_resource_created_before_the_move(host_factory: Any, old_name: str) -> None:  # noqa: F811
    type_, id_, outputs, deleted = STATES[old_name]
    urn = f"urn:pulumi:dev::image-gallery::pulumi-python:dynamic/{type_}::{outputs.get('resource_name', 'x')}"
    state = {**outputs, "__provider": OLD_BLOBS[old_name]}
    host: DynamicHost = host_factory()
    host.configure({})
    if old_name in NO_AZURE_ON_READ:
        read_id, read_outs = host.read(urn, id_, state)
        assert read_id == id_
        assert {k: read_outs.get(k) for k in outputs} == outputs
        assert read_outs["__provider"] == OLD_BLOBS[old_name], "the state keeps its blob"
    host.delete(urn, id_, state)
    assert deleted in host.close()
