"""Gallery reads (GET only, bounded): an image version and its source, its replication to the target regions,
and an image definition, as the capture and promotion checks and the replication report need them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from azure.core.credentials import TokenCredential
from azure.core.exceptions import HttpResponseError
from azure.mgmt.compute.models import ReplicationStatusTypes

from hooks.arm.budget import Budget
from hooks.arm.errors import Call, arm_errors
from hooks.arm.session import compute_client
from hooks.arm.spelling import canonical
from hooks.errors import ArmError
from hooks.log import Log
from hooks.targets import ArmSettings, ImageVersionRef

PERMISSION_IMAGE_VERSION_READ = "Microsoft.Compute/galleries/images/versions/read"
PERMISSION_IMAGE_DEFINITION_READ = "Microsoft.Compute/galleries/images/read"


@dataclass(frozen=True)
class ImageVersionFacts:
    """An existing gallery image version (read-only)."""

    id: str
    provisioning_state: str | None
    """Succeeded | Creating | Updating | Failed | Deleting | Migrating."""
    source_vm_id: str | None
    """The VM it was captured from (storageProfile.source.virtualMachineId, or a VM id in source.id)."""


def get_image_version(
    settings: ArmSettings,
    subscription_id: str,
    resource_group: str,
    gallery: str,
    image: str,
    version: str,
    credential: TokenCredential | None = None,
) -> ImageVersionFacts | None:
    """Read an image version; None if it (or its definition, gallery or resource group) does not exist."""
    found = _read_version(settings, subscription_id, (resource_group, gallery, image, version), credential)
    if found is None:
        return None
    props = found.properties
    source = props.storage_profile.source if props and props.storage_profile else None
    source_vm_id = None
    if source is not None:
        source_vm_id = source.virtual_machine_id
        if not source_vm_id and source.id and "/providers/microsoft.compute/virtualmachines/" in source.id.lower():
            source_vm_id = source.id
    return ImageVersionFacts(
        id=found.id or "",
        provisioning_state=canonical(props.provisioning_state) if props else None,
        source_vm_id=source_vm_id,
    )


@dataclass(frozen=True)
class RegionReplication:
    """One target region's replication of an image version, as Azure reports it."""

    region: str
    """As Azure names it: usually the display name ("West Europe"), not the config's `westeurope`."""
    state: str
    """Unknown | Replicating | Completed | Failed."""
    progress: int | None
    """Percent done (0-100); None when Azure reports none."""
    details: str
    """Azure's explanation, mostly of a failure, on one line; "" when none."""


def _read_version(
    settings: ArmSettings,
    subscription_id: str,
    where: tuple[str, str, str, str],
    credential: TokenCredential | None,
    *,
    verb: str = "read",
    with_replication: bool = False,
    log: Log | None = None,
) -> Any | None:
    """GET one image version (resource group, gallery, image, version), bounded like every ARM call; None if it,
    or its definition, gallery or resource group, does not exist."""
    resource_group, gallery, image, version = where
    target = f"image version {version} of {image} in gallery {gallery} (resource group {resource_group})"
    call = Call(settings, verb, target, PERMISSION_IMAGE_VERSION_READ)
    expand = {"expand": ReplicationStatusTypes.REPLICATION_STATUS} if with_replication else {}
    budget = Budget(settings, f"read {target}", log)
    with compute_client(settings, subscription_id, credential) as client, arm_errors(call, budget):
        try:
            return client.gallery_image_versions.get(
                resource_group, gallery, image, version, **expand, **budget.options()
            )
        except HttpResponseError as exc:
            if exc.status_code == 404:
                return None
            raise


def _replication_of(props: Any) -> tuple[RegionReplication, ...]:
    replication = props.replication_status if props else None
    return tuple(
        RegionReplication(
            region=entry.region or "",
            state=canonical(entry.state) or "Unknown",
            progress=entry.progress,
            details=" ".join((entry.details or "").split()),
        )
        for entry in ((replication.summary or []) if replication else [])
    )


@dataclass(frozen=True)
class ReplicationStatus:
    """An image version's replication to its target regions (`$expand=ReplicationStatus`, read-only)."""

    provisioning_state: str | None
    """Creating (while the capture call replicates) | Succeeded | Failed | Updating | Deleting | Migrating."""
    aggregated_state: str | None
    """Unknown | InProgress | Completed | Failed over all regions; None when Azure reports no replication status."""
    regions: tuple[RegionReplication, ...]
    """One entry per region in Azure's summary, in Azure's order."""


def get_replication_status(
    settings: ArmSettings,
    version: ImageVersionRef,
    log: Log | None = None,
    credential: TokenCredential | None = None,
) -> ReplicationStatus | None:
    """Read an image version's replication status (GET only); None if the version does not exist (yet)."""
    found = _read_version(
        settings,
        version.subscription_id,
        (version.resource_group, version.gallery, version.image, version.version),
        credential,
        verb="read the replication status of",
        with_replication=True,
        log=log,
    )
    if found is None:
        return None
    props = found.properties
    replication = props.replication_status if props else None
    status = ReplicationStatus(
        provisioning_state=canonical(props.provisioning_state) if props else None,
        aggregated_state=canonical(replication.aggregated_state) if replication else None,
        regions=_replication_of(props),
    )
    if log is not None:
        regions = ", ".join(f"{r.region} {r.state} {r.progress or 0}%" for r in status.regions)
        log.info(f"{version}: {status.provisioning_state}, replication {status.aggregated_state} ({regions})")
    return status


@dataclass(frozen=True)
class ImageDefinitionFacts:
    """An existing image definition, as the promotion checks compare it (read-only)."""

    id: str
    os_type: str
    os_state: str
    hyper_v_generation: str
    """V1 when Azure reports none (its default)."""
    architecture: str
    """x64 when Azure reports none (its default)."""
    security_type: str
    """The SecurityType feature; Standard when there is none."""
    end_of_life_date: str | None
    """ISO 8601, or None."""


def get_image_definition(
    settings: ArmSettings,
    subscription_id: str,
    resource_group: str,
    gallery: str,
    image: str,
    credential: TokenCredential | None = None,
) -> ImageDefinitionFacts | None:
    """Read an image definition; None if it (or its gallery or resource group) does not exist."""
    target = f"image definition {image} in gallery {gallery} (resource group {resource_group})"
    call = Call(settings, "read", target, PERMISSION_IMAGE_DEFINITION_READ)
    budget = Budget(settings, f"read {target}")  # bounded like every read (it was the one read that was not)
    with compute_client(settings, subscription_id, credential) as client, arm_errors(call, budget):
        try:
            found = client.gallery_images.get(resource_group, gallery, image, **budget.options())
        except HttpResponseError as exc:
            if exc.status_code == 404:
                return None
            raise
    props = found.properties
    if props is None:
        raise ArmError(f"ARM returned {target} without properties; cannot compare it. Run again.")
    features = {str(f.name).lower(): str(f.value) for f in (props.features or []) if f.name}
    eol = props.end_of_life_date
    return ImageDefinitionFacts(
        id=found.id or "",
        os_type=canonical(props.os_type) or "",
        os_state=str(canonical(props.os_state) or "").capitalize(),
        hyper_v_generation=canonical(props.hyper_v_generation) or "V1",
        architecture=canonical(props.architecture) or "x64",
        security_type=features.get("securitytype") or "Standard",
        end_of_life_date=eol.isoformat() if eol is not None else None,
    )


@dataclass(frozen=True)
class VersionSourceFacts:
    """An existing image version with what a promotion needs: its source, end of life and replication."""

    id: str
    location: str
    provisioning_state: str | None
    source_id: str | None
    """storageProfile.source.id (a version promoted from another version, or a legacy VM source) or
    storageProfile.source.virtualMachineId."""
    end_of_life_date: str | None
    """publishingProfile.endOfLifeDate (ISO 8601), or None."""
    replication: tuple[RegionReplication, ...]


def get_version_source(
    settings: ArmSettings, version: ImageVersionRef, credential: TokenCredential | None = None
) -> VersionSourceFacts | None:
    """Read an image version with its replication status (GET only, bounded); None if it does not exist."""
    where = (version.resource_group, version.gallery, version.image, version.version)
    found = _read_version(settings, version.subscription_id, where, credential, with_replication=True)
    if found is None:
        return None
    props = found.properties
    source = props.storage_profile.source if props and props.storage_profile else None
    publishing = props.publishing_profile if props else None
    eol = getattr(publishing, "end_of_life_date", None)
    return VersionSourceFacts(
        id=found.id or "",
        location=found.location or "",
        provisioning_state=canonical(props.provisioning_state) if props else None,
        source_id=(source.id or source.virtual_machine_id) if source is not None else None,
        end_of_life_date=eol.isoformat() if eol is not None else None,
        replication=_replication_of(props),
    )
