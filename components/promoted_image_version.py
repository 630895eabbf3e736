"""PromotedImageVersion: a gallery image version copied from another image version (promotion dev → prod).

Layer 2: specs -> Pulumi resources. No guest step and no ARM half: Azure copies the source version
(`storageProfile.source.id`). The source is given by ID, or read from another stack of this project through a
`pulumi.StackReference` (its `versionIds` output). The promotion checks (hooks/promotion.py) run in preview and
again before the version is created; the version takes the source ID from their output, so it cannot race them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi_azure_native import compute

from components.captured_image_version import arm_props, gallery_image_version
from components.version_test_boot import version_test_boot
from config import AzureSpec, GallerySpec, ImageDefinitionSpec, ImageVersionSpec, SourceVersionSpec
from hooks.providers.engine_log import child_urn
from hooks.providers.promotion import VersionPromotion
from hooks.providers.version_test_boot import VersionTestBoot

COMPONENT_TYPE = "image-gallery:index:PromotedImageVersion"
VERSION_IDS_OUTPUT = "versionIds"
"""The output of this project's stacks that names each version's ID by `definition/version` (__main__.py)."""


class SourceStacks:
    """One `pulumi.StackReference` per stack that versions are promoted from, shared by those versions."""

    def __init__(self) -> None:
        self._refs: dict[str, pulumi.StackReference] = {}

    def reference(self, stack: str) -> pulumi.StackReference:
        if stack not in self._refs:
            self._refs[stack] = pulumi.StackReference(f"source-stack-{stack.replace('/', '-')}", stack_name=stack)
        return self._refs[stack]


@dataclass(frozen=True)
class PromotedImageVersionArgs:
    """Inputs of PromotedImageVersion."""

    version: ImageVersionSpec
    """The version to create, its source version and where it is replicated."""
    definition: ImageDefinitionSpec
    """The image definition it belongs to (the source's definition must match it)."""
    gallery: GallerySpec
    """The gallery holding the definition."""
    azure: AzureSpec
    """How the checks reach ARM."""
    gallery_image: pulumi.Resource
    """The GalleryImage resource; the version depends on it."""
    source_stacks: SourceStacks
    """The stack references, shared by every promoted version of the stack."""
    gallery_id: pulumi.Input[str] | None = None
    """The gallery's resource ID (unknown in the first preview of a new stack; checks needing it then wait)."""
    definition_path: str = "images[?]"
    """Config key path of the definition, for messages (e.g. `images[0]`)."""
    version_path: str = "images[?].versions[?]"
    """Config key path of the version, for messages (e.g. `images[0].versions[1]`)."""
    host: pulumi.ProviderResource | None = None
    """The dynamic provider host of the version's test boot (validate: true); None: the default."""


def source_inputs(source: SourceVersionSpec, stacks: SourceStacks) -> tuple[pulumi.Input[str | None], dict[str, Any]]:
    """The source version's ID (an Output when read from another stack) and how to describe it."""
    described: dict[str, Any] = {"label": source.label, "stack": source.stack, "export_key": None, "exported": None}
    if source.id is not None:
        return source.id.id, described
    assert source.stack is not None
    ids = stacks.reference(source.stack).get_output(VERSION_IDS_OUTPUT)
    key = source.export_key
    described["export_key"] = key
    described["exported"] = ids.apply(lambda found: sorted(found) if isinstance(found, dict) else [])
    return ids.apply(lambda found: found.get(key) if isinstance(found, dict) else None), described


class PromotedImageVersion(pulumi.ComponentResource):
    """A gallery image version promoted from another image version: the same bits, never recaptured."""

    promotion: VersionPromotion
    image_version: compute.GalleryImageVersion
    test_boot: VersionTestBoot | None

    def __init__(self, name: str, args: PromotedImageVersionArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(COMPONENT_TYPE, name, None, opts)
        v, d = args.version, args.definition
        assert v.source_version is not None, "a promoted version needs sourceVersion"
        source_id, described = source_inputs(v.source_version, args.source_stacks)
        self.promotion = VersionPromotion(
            f"{name}-promotion",
            {
                "source_id": source_id,
                "source": described,
                "target": {
                    "definition": {
                        "name": d.name,
                        "os_type": d.os_type,
                        "os_state": d.os_state,
                        "hyper_v_generation": d.hyper_v_generation,
                        "architecture": d.architecture,
                        "security_type": d.security_type,
                    },
                    "version": v.version,
                    "location": args.gallery.location,
                    "gallery_id": args.gallery_id,
                },
                "paths": {
                    "definition": args.definition_path,
                    "version": args.version_path,
                    "source": f"{args.version_path}.sourceVersion",
                },
                "arm": arm_props(args.azure),
                "on_arm_unreachable": args.azure.on_arm_unreachable,
                "log_urn": self._child_urn(opts, name, f"{name}-promotion"),
            },
            opts=pulumi.ResourceOptions(parent=self),
        )
        # The source ID comes from the checks' output: the copy cannot start before they passed.
        self.image_version = gallery_image_version(
            name, v, d, args.gallery, {"id": self.promotion.source_id}, [self.promotion, args.gallery_image], self
        )
        self.test_boot = version_test_boot(
            name,
            d,
            v,
            args.gallery,
            arm_props(args.azure),
            self.image_version,
            self,
            args.host,
            args.definition_path,
            self._boot_urn(opts, name),
        )
        self.register_outputs({"versionId": self.image_version.id, "sourceVersionId": self.promotion.source_id})

    @staticmethod
    def _boot_urn(opts: pulumi.ResourceOptions | None, own_name: str) -> str | None:
        if opts is not None and opts.parent is not None:
            return None
        own = f"urn:pulumi:{pulumi.get_stack()}::{pulumi.get_project()}::{COMPONENT_TYPE}::{own_name}"
        return child_urn(own, VersionTestBoot.TYPE, f"{own_name}-test-boot")

    @staticmethod
    def _child_urn(opts: pulumi.ResourceOptions | None, own_name: str, name: str) -> str | None:
        """The URN of the checks' resource, for progress lines (see CapturedImageVersion._child_urn)."""
        if opts is not None and opts.parent is not None:
            return None
        own = f"urn:pulumi:{pulumi.get_stack()}::{pulumi.get_project()}::{COMPONENT_TYPE}::{own_name}"
        return child_urn(own, VersionPromotion.TYPE, name)
