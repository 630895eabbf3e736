"""ImageGallery: the gallery, its image definitions, and the publisher's role on the gallery.

Layer 2: specs -> Pulumi resources. Declarative only: no network calls, no sleeping."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pulumi
from pulumi_azure_native import authorization, compute

from config import GallerySpec, ImageDefinitionSpec, PublisherSpec
from hooks.targets import GalleryRef

# Fixed namespace so the role assignment name is the same GUID on every run and every machine.
ROLE_ASSIGNMENT_NAMESPACE = uuid.UUID("5f0c6a8e-2b7d-4f7e-9a43-6f1d2f3c9b10")


def role_assignment_name(scope: str, principal_id: str, role_definition_guid: str) -> str:
    """Deterministic GUID from (scope, principal, role): re-runs never collide with RoleAssignmentExists."""
    key = f"{scope.lower()}|{principal_id.lower()}|{role_definition_guid.lower()}"
    return str(uuid.uuid5(ROLE_ASSIGNMENT_NAMESPACE, key))


def security_features(security_type: str) -> list[compute.GalleryImageFeatureArgsDict] | None:
    """Security type is expressed as a feature of the definition; Standard has none."""
    if security_type == "Standard":
        return None
    return [{"name": "SecurityType", "value": security_type}]


@dataclass(frozen=True)
class ImageGalleryArgs:
    """Inputs of ImageGallery."""

    gallery: GallerySpec
    """The gallery itself."""
    images: tuple[ImageDefinitionSpec, ...]
    """Image definitions to declare in it."""
    publisher: PublisherSpec | None = None
    """Partner Center publisher that gets its role on the gallery (and nothing wider)."""


class ImageGallery(pulumi.ComponentResource):
    """An Azure Compute Gallery with its image definitions and the publisher's role assignment."""

    gallery: compute.Gallery
    definitions: dict[str, compute.GalleryImage]
    publisher_role: authorization.RoleAssignment | None

    def __init__(self, name: str, args: ImageGalleryArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("image-gallery:index:ImageGallery", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        spec = args.gallery
        self.gallery = compute.Gallery(
            name,
            # Explicit name: autonaming would append '-xxxx', which gallery names do not allow.
            gallery_name=spec.name,
            resource_group_name=spec.resource_group,
            location=spec.location,
            description=spec.description or None,
            tags=dict(spec.tags) or None,
            opts=child,
        )
        self.definitions = {d.name: self._definition(name, spec, d) for d in args.images}
        self.publisher_role = self._publisher_role(name, args.publisher) if args.publisher else None
        self.register_outputs(
            {
                "galleryId": self.gallery.id,
                "definitionIds": {n: d.id for n, d in self.definitions.items()},
            }
        )

    def _definition(self, name: str, gallery: GallerySpec, d: ImageDefinitionSpec) -> compute.GalleryImage:
        recommended: compute.RecommendedMachineConfigurationArgsDict = {}
        if d.min_vcpus is not None or d.max_vcpus is not None:
            recommended["v_cpus"] = {"min": d.min_vcpus, "max": d.max_vcpus}
        if d.min_memory_gb is not None or d.max_memory_gb is not None:
            recommended["memory"] = {"min": d.min_memory_gb, "max": d.max_memory_gb}
        return compute.GalleryImage(
            f"{name}-{d.name}",
            gallery_image_name=d.name,
            gallery_name=gallery.name,
            resource_group_name=gallery.resource_group,
            location=gallery.location,
            os_type=d.os_type,
            os_state=d.os_state,
            hyper_v_generation=d.hyper_v_generation,
            architecture=d.architecture,
            identifier={"publisher": d.publisher, "offer": d.offer, "sku": d.sku},
            features=security_features(d.security_type),
            description=d.description or None,
            eula=d.eula,
            privacy_statement_uri=d.privacy_statement_uri,
            release_note_uri=d.release_note_uri,
            end_of_life_date=d.end_of_life_date,
            recommended=recommended or None,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.gallery]),
        )

    def _publisher_role(self, name: str, publisher: PublisherSpec) -> authorization.RoleAssignment:
        scope = self.gallery.id
        role_guid = publisher.role_definition_guid
        return authorization.RoleAssignment(
            f"{name}-publisher-{publisher.role.lower()}",
            # Scoped to the gallery only, never the resource group or subscription.
            scope=scope,
            principal_id=publisher.principal_id,
            principal_type=publisher.principal_type,
            role_definition_id=scope.apply(
                lambda gid: (
                    f"/subscriptions/{GalleryRef.parse(gid).subscription_id}/providers/Microsoft.Authorization"
                    f"/roleDefinitions/{role_guid}"
                )
            ),
            role_assignment_name=scope.apply(lambda gid: role_assignment_name(gid, publisher.principal_id, role_guid)),
            description="Partner Center publisher access to this gallery (managed by image-gallery)",
            # principalId/scope changes force a replacement; with a deterministic name the old one must go first.
            opts=pulumi.ResourceOptions(parent=self, delete_before_replace=True),
        )
