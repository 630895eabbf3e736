"""CapturedImageVersion: generalize one source VM, then capture it into a gallery image version.

Layer 2: specs -> Pulumi resources. The two halves of the chain are dynamic resources (hooks/providers/chain.py); the
version takes its source VM ID from the ARM half's output and depends on it explicitly, so it can never race
the chain."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi_azure_native import compute

from components.version_test_boot import version_test_boot
from config import AzureSpec, GallerySpec, ImageDefinitionSpec, ImageVersionSpec, SourceVmSpec, TargetRegionSpec
from hooks.providers.chain import GuestGeneralization, VmGeneralization
from hooks.providers.engine_log import child_urn
from hooks.providers.version_test_boot import VersionTestBoot
from hooks.safety_snapshots import SnapshotPlan

SECONDS_PER_MINUTE = 60.0
COMPONENT_TYPE = "image-gallery:index:CapturedImageVersion"


@dataclass(frozen=True)
class CapturedImageVersionArgs:
    """Inputs of CapturedImageVersion."""

    version: ImageVersionSpec
    """The version to create and where it is replicated."""
    definition: ImageDefinitionSpec
    """The image definition it belongs to (its OS type/state decide the chain)."""
    gallery: GallerySpec
    """The gallery holding the definition."""
    azure: AzureSpec
    """How the chain reaches ARM."""
    gallery_image: pulumi.Resource
    """The GalleryImage resource; the version depends on it."""
    gallery_id: pulumi.Input[str] | None = None
    """The gallery's resource ID (unknown in the first preview of a new stack; checks needing it then wait)."""
    publisher_tenant_id: str | None = None
    """When set, checks the gallery's subscription belongs to this tenant (Partner Center requirement)."""
    definition_path: str = "images[?]"
    """Config key path of the definition, for messages (e.g. `images[0]`)."""
    version_path: str = "images[?].versions[?]"
    """Config key path of the version, for messages (e.g. `images[0].versions[1]`)."""
    host: pulumi.ProviderResource | None = None
    """The dynamic provider host that runs this chain (components/generalization_hosts.py); None: the default."""


def read_in_check() -> bool:
    """Whether a chain's Check reads Azure for the capture-time checks: in a preview (and the preview pass of
    `pulumi up`) yes, that is where they are shown. In the update itself no: the engine calls Check one resource at
    a time while it plans the steps, so a read there (and a host's first import of the Azure SDK) would hold up
    every chain behind it; the Create runs the same checks anyway, right before the irreversible step."""
    return bool(pulumi.runtime.is_dry_run())


def arm_props(azure: AzureSpec) -> dict[str, Any]:
    return {
        "endpoint": azure.arm_endpoint,
        "audience": azure.audience,
        "poll_interval": azure.poll_interval_seconds,
        "operation_timeout": azure.operation_timeout_minutes * SECONDS_PER_MINUTE,
    }


def guest_props(source: SourceVmSpec, definition: ImageDefinitionSpec, azure: AzureSpec) -> dict[str, Any]:
    """Non-secret inputs of the guest half: the guest's settings as the provider rebuilds them
    (hooks.targets' `from_props`), the sysprep options inside `winrm`."""
    ssh, winrm = source.ssh, source.winrm
    return {
        "vm_id": source.vm.id,
        "os_type": definition.os_type,
        "arm": arm_props(azure),
        "ssh": ssh.to_props() if ssh is not None else None,
        "winrm": {**winrm.to_props(), "sysprep": source.sysprep.to_props()} if winrm is not None else None,
    }


def safety_snapshot_props(args: CapturedImageVersionArgs) -> dict[str, Any] | None:
    """The guest half's `safety_snapshot` input: the snapshots before the guest step, tagged with the stack, the
    version and the source VM; None with `safetySnapshot: false`."""
    source = args.version.source_vm
    if source is None or not source.safety_snapshot:
        return None
    version = f"{args.definition.name}/{args.version.version}"
    return SnapshotPlan(pulumi.get_stack(), version, source.safety_snapshot_retention_days).to_props()


def capture_props(args: CapturedImageVersionArgs) -> dict[str, Any]:
    """What the capture-time checks compare the source VM with (hooks/preflight/), and where it came from."""
    d, v = args.definition, args.version
    return {
        "definition": {
            "name": d.name,
            "os_type": d.os_type,
            "os_state": d.os_state,
            "hyper_v_generation": d.hyper_v_generation,
            "architecture": d.architecture,
            "security_type": d.security_type,
            "disk_controller_types": list(d.disk_controller_types),
            "accelerated_network": d.accelerated_network,
            "hibernate": d.hibernate,
            "plan_image_type": d.plan_image_type,
        },
        "marketplace": args.gallery.marketplace,
        "version": v.version,
        "data_disk_luns": list(v.data_disk_luns) if v.data_disk_luns is not None else None,
        "encrypts_data_disks": any(r.disk_encryption_set_id for r in v.target_regions),
        "target_regions": [r.name for r in v.target_regions],
        "gallery_id": args.gallery_id,
        "gallery_resource_group": args.gallery.resource_group,
        "gallery_name": args.gallery.name,
        "publisher_tenant_id": args.publisher_tenant_id,
        "on_arm_unreachable": args.azure.on_arm_unreachable,
        "allow_unknown_regions": args.azure.allow_unknown_regions,
        "paths": {
            "definition": args.definition_path,
            "version": args.version_path,
            "source_vm": f"sourceVms.{v.source_vm.key if v.source_vm else '?'}",
        },
    }


def guest_credentials(source: SourceVmSpec) -> pulumi.Output[dict[str, str]]:
    """The secret input of the guest half: encrypted in the state, never copied into outputs."""
    targets = (source.ssh, source.winrm)
    return pulumi.Output.secret({k: v for t in targets if t is not None for k, v in t.credentials().items()})


END_OF_LIFE_PROPERTY = "publishingProfile.endOfLifeDate"
BLOCK_DELETION_PROPERTY = "safetyProfile.blockDeletionBeforeEndOfLife"


def region_encryption(v: ImageVersionSpec, r: TargetRegionSpec) -> compute.EncryptionImagesArgsDict | None:
    """`targetRegions[].encryption`: the region's disk encryption set for the OS disk and each declared data disk
    LUN, and the confidential VM encryption type (with its own disk encryption set for EncryptedWithCmk)."""
    os_disk: compute.OSDiskImageEncryptionArgsDict = {}
    if r.disk_encryption_set_id is not None:
        os_disk["disk_encryption_set_id"] = r.disk_encryption_set_id
    if v.confidential_vm_encryption_type is not None:
        security: compute.OSDiskImageSecurityProfileArgsDict = {
            "confidential_vm_encryption_type": v.confidential_vm_encryption_type
        }
        if r.confidential_vm_disk_encryption_set_id is not None:
            security["secure_vm_disk_encryption_set_id"] = r.confidential_vm_disk_encryption_set_id
        os_disk["security_profile"] = security
    if not os_disk:
        return None
    encryption: compute.EncryptionImagesArgsDict = {"os_disk_image": os_disk}
    if r.disk_encryption_set_id is not None and v.data_disk_luns:
        encryption["data_disk_images"] = [
            {"lun": lun, "disk_encryption_set_id": r.disk_encryption_set_id} for lun in v.data_disk_luns
        ]
    return encryption


def target_region(v: ImageVersionSpec, r: TargetRegionSpec) -> compute.GalleryTargetRegionArgsDict:
    region: compute.GalleryTargetRegionArgsDict = {
        "name": r.name,
        "regional_replica_count": r.replica_count,
        "storage_account_type": r.storage_account_type,
        "exclude_from_latest": r.exclude_from_latest,
    }
    encryption = region_encryption(v, r)
    if encryption is not None:
        region["encryption"] = encryption
    return region


def end_of_life(v: ImageVersionSpec) -> tuple[str | None, bool]:
    """The version's end of life, and whether it is the Azure CLI's default (then pinned at first creation)."""
    if v.end_of_life_date is not None:
        return v.end_of_life_date, False
    return v.default_end_of_life_date, v.default_end_of_life_date is not None


def publishing_profile(v: ImageVersionSpec) -> compute.GalleryImageVersionPublishingProfileArgsDict:
    return {
        "target_regions": [target_region(v, r) for r in v.target_regions],
        "replica_count": v.replica_count,
        "storage_account_type": v.storage_account_type,
        "replication_mode": v.replication_mode,
        "exclude_from_latest": v.exclude_from_latest,
        "end_of_life_date": end_of_life(v)[0],
    }


def pinned_defaults(v: ImageVersionSpec) -> list[str]:
    """Properties taking the Azure CLI's defaults, computed from the day of the run: Pulumi keeps the value of the
    version's first creation (ignore_changes uses the state's input), so the default never causes a diff later,
    and a version deployed before these defaults keeps what it has. Configuring the key lifts the pin."""
    pinned = []
    if end_of_life(v)[1]:
        pinned.append(END_OF_LIFE_PROPERTY)
    if v.block_deletion_before_end_of_life is None:
        pinned.append(BLOCK_DELETION_PROPERTY)
    return pinned


def gallery_image_version(
    name: str,
    version: ImageVersionSpec,
    definition: ImageDefinitionSpec,
    gallery: GallerySpec,
    source: compute.GalleryArtifactVersionFullSourceArgsDict,
    depends_on: list[pulumi.Resource],
    parent: pulumi.Resource,
) -> compute.GalleryImageVersion:
    """The version resource, captured or promoted: `source` must be an output of the step that has to finish
    first (the ARM half's VM ID, or the promotion checks' source ID), so the version can never race it."""
    v = version
    safety: compute.GalleryImageVersionSafetyProfileArgsDict = {
        "allow_deletion_of_replicated_locations": v.allow_deletion_of_replicated_locations,
        "block_deletion_before_end_of_life": v.block_deletion_before_end_of_life is not False,
    }
    return compute.GalleryImageVersion(
        name,
        gallery_image_version_name=v.version,
        gallery_image_name=definition.name,
        gallery_name=gallery.name,
        resource_group_name=gallery.resource_group,
        location=gallery.location,
        storage_profile={"source": source},
        publishing_profile=publishing_profile(v),
        safety_profile=safety,
        opts=pulumi.ResourceOptions(
            parent=parent,
            depends_on=depends_on,
            custom_timeouts=pulumi.CustomTimeouts(create=f"{v.create_timeout_minutes:g}m"),
            protect=v.protect,
            ignore_changes=pinned_defaults(v),
        ),
    )


class CapturedImageVersion(pulumi.ComponentResource):
    """A gallery image version captured from a source VM, after that VM was generalized and deallocated."""

    guest: GuestGeneralization | None
    vm: VmGeneralization
    image_version: compute.GalleryImageVersion
    test_boot: VersionTestBoot | None

    def __init__(self, name: str, args: CapturedImageVersionArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(COMPONENT_TYPE, name, None, opts)
        v, d, source = args.version, args.definition, args.version.source_vm
        assert source is not None, "a captured version needs sourceVm (promoted ones are PromotedImageVersion)"
        generalize = d.os_state == "Generalized"

        # A Specialized image keeps the VM's identity: no guest step, no generalize call.
        self.guest = None
        vm_depends: list[pulumi.Resource] = []
        guest_done: pulumi.Input[str | None] = None
        if generalize:
            self.guest = GuestGeneralization(
                f"{name}-guest",
                {
                    **guest_props(source, d, args.azure),
                    "capture": capture_props(args),
                    "safety_snapshot": safety_snapshot_props(args),
                    "read_in_check": read_in_check(),
                    "credentials": guest_credentials(source),
                    "log_urn": self._child_urn(opts, name, GuestGeneralization.TYPE, f"{name}-guest"),
                },
                opts=pulumi.ResourceOptions(parent=self, additional_secret_outputs=["credentials"], provider=args.host),
            )
            vm_depends.append(self.guest)
            guest_done = self.guest.finished_at

        self.vm = VmGeneralization(
            f"{name}-vm",
            {
                "vm_id": source.vm.id,
                "arm": arm_props(args.azure),
                "generalize": generalize,
                "deallocate": source.deallocate or generalize,
                # Data dependency on the guest half: this input is unknown until the guest half has finished.
                "after_guest": guest_done,
                # Specialized images have no guest half: the ARM half runs the capture-time checks instead.
                "capture": None if generalize else capture_props(args),
                "read_in_check": read_in_check(),
                "log_urn": self._child_urn(opts, name, VmGeneralization.TYPE, f"{name}-vm"),
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=vm_depends, provider=args.host),
        )

        # The VM ID comes from the ARM half's output: the capture cannot start before verification.
        self.image_version = gallery_image_version(
            name, v, d, args.gallery, {"virtual_machine_id": self.vm.vm_id}, [self.vm, args.gallery_image], self
        )
        # Opt-in (validate: true): boot the new version once, after it exists, on the chain's host.
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
            self._child_urn(opts, name, VersionTestBoot.TYPE, f"{name}-test-boot"),
        )
        self.register_outputs({"versionId": self.image_version.id, "sourceVmId": source.vm.id})

    @staticmethod
    def _child_urn(opts: pulumi.ResourceOptions | None, own_name: str, type_: str, name: str) -> str | None:
        """The URN the engine will give a child step, so its progress lines show under it
        (hooks/providers/engine_log.py).

        A plain string, not derived from `self.urn`: that would make the child depend on its own parent. Known
        for a component at the top of the stack (as `__main__.py` creates it); None under another parent, where
        the lines go to the provider host's stderr instead."""
        if opts is not None and opts.parent is not None:
            return None
        own = f"urn:pulumi:{pulumi.get_stack()}::{pulumi.get_project()}::{COMPONENT_TYPE}::{own_name}"
        return child_urn(own, type_, name)
