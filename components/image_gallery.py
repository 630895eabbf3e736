"""ImageGallery: the gallery, its image definitions, and the publisher's role on the gallery.

Layer 2: specs -> Pulumi resources. Declarative only: no network calls, no sleeping."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pulumi
from pulumi_azure_native import authorization, compute

from components.captured_image_version import arm_props
from config import (
    PARTNER_CENTER_NAMESPACE,
    PUBLISHER_ROLES,
    AzureSpec,
    GallerySpec,
    ImageDefinitionSpec,
    PartnerCenterPrincipalSpec,
    PublisherSpec,
)
from hooks.providers.partner_center import PartnerCenterServicePrincipal, ProviderRegistration
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


def definition_features(d: ImageDefinitionSpec) -> list[compute.GalleryImageFeatureArgsDict] | None:
    """SecurityType and the optional features, as Azure names them (`az sig image-definition create --features`)."""
    features = list(security_features(d.security_type) or [])
    if d.disk_controller_types:
        features.append({"name": "DiskControllerTypes", "value": ", ".join(d.disk_controller_types)})
    if d.accelerated_network is not None:
        features.append({"name": "IsAcceleratedNetworkSupported", "value": str(d.accelerated_network)})
    if d.hibernate is not None:
        features.append({"name": "IsHibernateSupported", "value": str(d.hibernate)})
    return features or None


@dataclass(frozen=True)
class ImageGalleryArgs:
    """Inputs of ImageGallery."""

    gallery: GallerySpec
    """The gallery itself."""
    images: tuple[ImageDefinitionSpec, ...]
    """Image definitions to declare in it."""
    publisher: PublisherSpec | None = None
    """Partner Center's access: the publisher's role and/or Partner Center's service principals, on the gallery
    (and nothing wider)."""
    azure: AzureSpec | None = None
    """How the Partner Center resources reach ARM (None: the defaults)."""


class ImageGallery(pulumi.ComponentResource):
    """An Azure Compute Gallery with its image definitions and the publisher's role assignment."""

    gallery: compute.Gallery
    definitions: dict[str, compute.GalleryImage]
    publisher_role: authorization.RoleAssignment | None
    provider_registration: ProviderRegistration | None
    partner_center_roles: dict[str, authorization.RoleAssignment]

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
        publisher = args.publisher
        self.publisher_role = (
            self._publisher_role(name, publisher) if publisher and publisher.principal_id is not None else None
        )
        self.provider_registration = None
        self.partner_center_roles = {}
        if publisher is not None and publisher.service_principals:
            self._partner_center_access(name, publisher, args.azure or AzureSpec())
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
            features=definition_features(d),
            purchase_plan=(
                {
                    "name": d.purchase_plan.name,
                    "publisher": d.purchase_plan.publisher,
                    "product": d.purchase_plan.product,
                }
                if d.purchase_plan
                else None
            ),
            disallowed={"disk_types": list(d.disallowed_disk_types)} if d.disallowed_disk_types else None,
            description=d.description or None,
            eula=d.eula,
            privacy_statement_uri=d.privacy_statement_uri,
            release_note_uri=d.release_note_uri,
            end_of_life_date=d.end_of_life_date,
            recommended=recommended or None,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.gallery]),
        )

    def _partner_center_access(self, name: str, publisher: PublisherSpec, azure: AzureSpec) -> None:
        """Microsoft's newer way: Microsoft.PartnerCenterIngestion registered on the gallery's subscription, and
        Compute Gallery Image Reader on the gallery for each of Partner Center's first-party service principals."""
        self.provider_registration = ProviderRegistration(
            f"{name}-partner-center-ingestion",
            {
                "subscription_id": self.gallery.id.apply(lambda gid: GalleryRef.parse(gid).subscription_id),
                "namespace": PARTNER_CENTER_NAMESPACE,
                "arm": arm_props(azure),
            },
            opts=pulumi.ResourceOptions(parent=self),
        )
        for principal in publisher.principals:
            self.partner_center_roles[principal.key] = self._service_principal_role(name, publisher, principal, azure)

    def _service_principal_role(
        self, name: str, publisher: PublisherSpec, spec: PartnerCenterPrincipalSpec, azure: AzureSpec
    ) -> authorization.RoleAssignment:
        slug = "-".join(spec.display_name.lower().split())
        principal = PartnerCenterServicePrincipal(
            f"{name}-sp-{slug}",
            {
                "display_name": spec.display_name,
                "configured_object_id": spec.object_id,
                "config_key": f"partnerCenterPrincipalIds.{spec.key}",
                "namespace": PARTNER_CENTER_NAMESPACE,
                "graph_endpoint": publisher.graph_endpoint,
                "arm": arm_props(azure),
                "on_unreachable": azure.on_arm_unreachable,
                "config_path": "publisherAccess",
            },
            opts=pulumi.ResourceOptions(parent=self),
        )
        scope = self.gallery.id
        role_guid = PUBLISHER_ROLES["ComputeGalleryImageReader"]
        assert self.provider_registration is not None
        return authorization.RoleAssignment(
            f"{name}-partner-center-{slug}",
            scope=scope,
            principal_id=principal.object_id,
            principal_type="ServicePrincipal",
            role_definition_id=scope.apply(lambda gid: _role_definition_id(gid, role_guid)),
            # Keyed by the display name Microsoft publishes (the same in every tenant, known in preview), not by
            # the object ID, which Graph gives only when the check runs.
            role_assignment_name=scope.apply(lambda gid: role_assignment_name(gid, spec.display_name, role_guid)),
            description=f"Partner Center ({spec.display_name}) reads this gallery's images (managed by image-gallery)",
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[self.provider_registration], delete_before_replace=True
            ),
        )

    def _publisher_role(self, name: str, publisher: PublisherSpec) -> authorization.RoleAssignment:
        scope = self.gallery.id
        role_guid = publisher.role_definition_guid
        assert publisher.principal_id is not None
        principal_id = publisher.principal_id
        return authorization.RoleAssignment(
            f"{name}-publisher-{publisher.role.lower()}",
            # Scoped to the gallery only, never the resource group or subscription.
            scope=scope,
            principal_id=publisher.principal_id,
            principal_type=publisher.principal_type,
            role_definition_id=scope.apply(lambda gid: _role_definition_id(gid, role_guid)),
            role_assignment_name=scope.apply(lambda gid: role_assignment_name(gid, principal_id, role_guid)),
            description="Partner Center publisher access to this gallery (managed by image-gallery)",
            # principalId/scope changes force a replacement; with a deterministic name the old one must go first.
            opts=pulumi.ResourceOptions(parent=self, delete_before_replace=True),
        )


def _role_definition_id(gallery_id: str, role_guid: str) -> str:
    subscription = GalleryRef.parse(gallery_id).subscription_id
    return f"/subscriptions/{subscription}/providers/Microsoft.Authorization/roleDefinitions/{role_guid}"
