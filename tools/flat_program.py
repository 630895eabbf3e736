"""The benchmark's yardstick: the same azure-native resources as the product registers, declared flat from the
stack config with no components, no validation and no generalization chain (`make bench` plan ratio)."""

from __future__ import annotations

from typing import Any

import pulumi
from pulumi_azure_native import authorization, compute

cfg = pulumi.Config("image-gallery")
name = cfg.require("galleryName")
rg = cfg.require("galleryResourceGroup")
location = cfg.require("galleryLocation")
sources: dict[str, Any] = cfg.require_object("sourceVms")
gallery = compute.Gallery(name, gallery_name=name, resource_group_name=rg, location=location)
publisher = cfg.get("publisherPrincipalId")
if publisher:  # the product's Owner role assignment on the gallery for the Partner Center publisher
    authorization.RoleAssignment(
        f"{name}-publisher-owner",
        scope=gallery.id,
        principal_id=publisher,
        principal_type=cfg.get("publisherPrincipalType") or "User",
        role_definition_id="/providers/Microsoft.Authorization/roleDefinitions/8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
    )
for d in cfg.require_object("images"):
    image = compute.GalleryImage(
        f"{name}-{d['name']}",
        gallery_image_name=d["name"],
        gallery_name=name,
        resource_group_name=rg,
        location=location,
        os_type=d["osType"],
        os_state=d.get("osState", "Generalized"),
        hyper_v_generation=d.get("hyperVGeneration", "V2"),
        identifier=d["identifier"],
        opts=pulumi.ResourceOptions(depends_on=[gallery]),
    )
    for v in d.get("versions", []):
        compute.GalleryImageVersion(
            f"{d['name']}-{v['version']}",
            gallery_image_version_name=v["version"],
            gallery_image_name=d["name"],
            gallery_name=name,
            resource_group_name=rg,
            location=location,
            storage_profile={"source": {"virtual_machine_id": sources[v["sourceVm"]]["id"]}},
            publishing_profile={"target_regions": [{"name": r["name"]} for r in v["targetRegions"]]},
            opts=pulumi.ResourceOptions(depends_on=[image], protect=True),
        )
