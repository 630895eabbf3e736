"""The opt-in test boot of a new image version (`validate: true` on its definition).

Layer 2, declarative: one VersionTestBoot dynamic resource (hooks/providers/version_test_boot.py) per version of a
definition that asks for it, after the version (its `version_id` input is the version's ID, so it cannot start
earlier), served by the version's generalization host (components/generalization_hosts.py)."""

from __future__ import annotations

from typing import Any

import pulumi
from pulumi_azure_native import compute

from config import GallerySpec, ImageDefinitionSpec, ImageVersionSpec
from hooks.providers.version_test_boot import VersionTestBoot

SECONDS_PER_MINUTE = 60.0


def test_boot_props(
    definition: ImageDefinitionSpec, version: ImageVersionSpec, gallery: GallerySpec, definition_path: str
) -> dict[str, Any]:
    """What to boot and where: the first target region, the configured resource group and subnet."""
    boot = definition.test_boot
    assert boot is not None
    first = version.target_regions[0]
    return {
        "os_type": definition.os_type,
        "os_state": definition.os_state,
        "security_type": definition.security_type,
        "location": first.name,
        "subscription_id": boot.subscription_id,
        "resource_group": boot.resource_group,
        "subnet_id": boot.subnet_id,
        "vm_size": boot.vm_size,
        "admin_username": boot.admin_username,
        "timeout": boot.timeout_minutes * SECONDS_PER_MINUTE,
        "tag_value": f"{gallery.name}/{definition.name}/{version.version}",
        "confidential_vm_encryption_type": version.confidential_vm_encryption_type,
        "confidential_disk_encryption_set_id": first.confidential_vm_disk_encryption_set_id,
        "disallowed_disk_types": list(definition.disallowed_disk_types),
        "path": f"{definition_path}.validation",
    }


def version_test_boot(
    name: str,
    definition: ImageDefinitionSpec,
    version: ImageVersionSpec,
    gallery: GallerySpec,
    arm: dict[str, Any],
    image_version: compute.GalleryImageVersion,
    parent: pulumi.Resource,
    host: pulumi.ProviderResource | None,
    definition_path: str,
    log_urn: str | None,
) -> VersionTestBoot | None:
    """The test boot of `image_version`, or None when the definition does not ask for one."""
    if definition.test_boot is None:
        return None
    return VersionTestBoot(
        f"{name}-test-boot",
        {
            "version_id": image_version.id,
            "boot": test_boot_props(definition, version, gallery, definition_path),
            "arm": arm,
            "log_urn": log_urn,
        },
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[image_version], provider=host),
    )
