"""The typed, immutable specs a stack config becomes: what the components receive (never `pulumi.Config`).

A source VM's guest settings are hooks.targets' own types (`SshTarget`, `WinRmTarget`, `SysprepOptions`), the ones
the guest step runs with: their secret fields are kept out of repr, so a spec can be printed or logged without
leaking them, and the components hand them to Pulumi as a secret input. A secret value the reader has not placed in
a spec yet is a `Secret`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from config.constants import PARTNER_CENTER_PRINCIPALS, PUBLIC_CLOUD_GRAPH, PUBLISHER_ROLES, SUBNET_ID
from hooks.safety_snapshots import DEFAULT_RETENTION_DAYS
from hooks.targets import PUBLIC_CLOUD_ARM, ImageVersionRef, SshTarget, SysprepOptions, VmRef, WinRmTarget


class Secret:
    """A secret config value. Its repr and str never show the value; `.reveal()` does, on purpose."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret([secret])"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class GallerySpec:
    """The Azure Compute Gallery that holds the image definitions."""

    name: str
    """Gallery name: letters, digits, `_` and `.`, 1-80 characters, no leading or trailing period."""
    resource_group: str
    """Existing resource group the gallery lives in."""
    location: str
    """Azure region of the gallery resource (e.g. `westeurope`)."""
    description: str = ""
    """Free text shown in the portal."""
    tags: Mapping[str, str] = field(default_factory=dict)
    """Tags on the gallery."""
    marketplace: bool = True
    """The gallery publishes to the Azure Marketplace: preview also checks Marketplace certification rules."""


@dataclass(frozen=True)
class PartnerCenterPrincipalSpec:
    """One of Partner Center's first-party service principals: found by display name in the tenant, or given."""

    key: str
    """Its key in `partnerCenterPrincipalIds` (e.g. `computeImageRegistry`)."""
    display_name: str
    """The display name Microsoft publishes (PARTNER_CENTER_PRINCIPALS)."""
    object_id: str | None = None
    """`partnerCenterPrincipalIds.<key>`: the principal's object ID in this tenant, used instead of the lookup by
    display name (for a tenant where the name differs); None: looked up by name."""


@dataclass(frozen=True)
class PublisherSpec:
    """How Partner Center gets read access to the gallery (and only the gallery)."""

    principal_id: str | None
    """Object ID (GUID) of the publisher's user, group or service principal; None: no role for a publisher account
    (only with access `partnerCenterServicePrincipals`)."""
    principal_type: str
    """User | Group | ServicePrincipal | ForeignGroup | Device (avoids replication-lag failures)."""
    role: str = "Owner"
    """Owner (Partner Center's documented requirement) or ComputeGalleryImageReader."""
    tenant_id: str | None = None
    """Publisher's tenant; when set, preview checks the gallery's subscription belongs to it."""
    access: str = "owner"
    """owner | partnerCenterServicePrincipals (see PUBLISHER_ACCESS)."""
    graph_endpoint: str = PUBLIC_CLOUD_GRAPH
    """Microsoft Graph, where preview looks Partner Center's service principals up (sovereign clouds differ)."""
    principals: tuple[PartnerCenterPrincipalSpec, ...] = tuple(
        PartnerCenterPrincipalSpec(k, n) for k, n in PARTNER_CENTER_PRINCIPALS.items()
    )
    """With partnerCenterServicePrincipals: Partner Center's service principals that get the reader role."""

    @property
    def service_principals(self) -> bool:
        """Whether the newer way is selected (resource provider registered, first-party principals granted)."""
        return self.access == "partnerCenterServicePrincipals"

    @property
    def role_definition_guid(self) -> str:
        return PUBLISHER_ROLES[self.role]


@dataclass(frozen=True)
class PurchasePlanSpec:
    """The purchase plan of an image definition (Marketplace images that carry a plan)."""

    name: str
    publisher: str
    product: str


@dataclass(frozen=True)
class AzureSpec:
    """How the imperative side reaches Azure Resource Manager."""

    arm_endpoint: str = PUBLIC_CLOUD_ARM
    """ARM base URL; change for sovereign clouds or Azure Stack."""
    audience: str | None = None
    """Token audience if it differs from the endpoint (Azure Stack Hub)."""
    poll_interval_seconds: float = 15.0
    """Seconds between polls of long-running operations when Azure sends no Retry-After."""
    operation_timeout_minutes: float = 30.0
    """Bound for each ARM wait (deallocation, state changes)."""
    on_arm_unreachable: str = "fail"
    """During preview checks: `fail` or `warn` when ARM cannot be reached or credentials fail."""
    parallel_hosts: int = 0
    """Dynamic provider host processes for the generalization chains; 0: enough that no chain ever waits."""
    allow_unknown_regions: bool = False
    """`allowUnknownRegions`: region names are not checked against Azure's lists (sovereign clouds, new regions)."""


@dataclass(frozen=True)
class SourceVmSpec:
    """An existing VM that versions are captured from, and how to reach its guest."""

    key: str
    """Name under `sourceVms` that versions refer to."""
    vm: VmRef
    """The VM, parsed from `id` once: it travels on as `vm.id`."""
    ssh: SshTarget | None = None
    """`ssh`: how the waagent deprovision reaches a Linux guest."""
    winrm: WinRmTarget | None = None
    """`winrm`: how sysprep reaches a Windows guest."""
    deallocate: bool = True
    """For Specialized definitions: deallocate before capture (recommended for a consistent disk)."""
    sysprep: SysprepOptions = field(default_factory=SysprepOptions)
    """`winrm.sysprep`: how sysprep is run and watched (used with `winrm` only)."""
    safety_snapshot: bool = True
    """`safetySnapshot`: take an incremental snapshot of each of the VM's disks before the guest step (sysprep or
    waagent deprovision), so the VM can be given its disks back (hooks/safety_snapshots.py). Generalized
    definitions only: a Specialized capture changes nothing in the guest."""
    safety_snapshot_retention_days: int = DEFAULT_RETENTION_DAYS
    """`safetySnapshotRetentionDays` (0-3650): how long the safety snapshots are kept; 0 deletes them with the
    version's chain (when the version leaves the stack), as does a later delete once the days are over."""

    @property
    def id(self) -> str:
        return self.vm.id


@dataclass(frozen=True)
class TargetRegionSpec:
    """A region the version is replicated to."""

    name: str
    replica_count: int = 1
    """1-100 replicas in this region."""
    storage_account_type: str = "Standard_LRS"
    exclude_from_latest: bool = False
    disk_encryption_set_id: str | None = None
    """Disk encryption set of this region for the OS disk and every data disk (`encryption.osDiskImage` /
    `dataDiskImages`); None: platform-managed keys."""
    confidential_vm_disk_encryption_set_id: str | None = None
    """With confidentialVmEncryptionType EncryptedWithCmk: this region's disk encryption set for the confidential
    OS disk (`osDiskImage.securityProfile.secureVMDiskEncryptionSetId`)."""


@dataclass(frozen=True)
class TestBootSpec:
    """The opt-in test boot of each new version of a definition (`validate: true`): a throwaway VM from the version
    in its first target region, with no public IP, deleted once Azure reports it provisioned with a Ready agent."""

    __test__ = False  # not a pytest test class

    resource_group: str
    """Existing resource group the throwaway VM, its NIC and disks are created in (subscription of the subnet)."""
    subnet_id: str
    """Subnet the VM's only NIC joins (no public IP); its virtual network must be in the first target region."""
    vm_size: str
    """Size of the throwaway VM."""
    timeout_minutes: float = 20.0
    """Bound for provisioning and the guest agent to report Ready."""
    admin_username: str = "igvalidate"
    """Administrator of a Generalized image's VM (its password is generated per run and never stored)."""

    @property
    def subscription_id(self) -> str:
        m = SUBNET_ID.fullmatch(self.subnet_id)
        assert m is not None
        return m["sub"]


@dataclass(frozen=True)
class SourceVersionSpec:
    """An existing gallery image version that a version is promoted from: Azure copies it, nothing is recaptured.

    Exactly one of `id` or (`stack`, `definition`, `version`) is set."""

    id: ImageVersionRef | None = None
    """The source version's resource ID, given directly (any gallery or subscription the identity can read)."""
    stack: str | None = None
    """Another stack of this project (`dev`, or `organization/image-gallery/dev`) that exports the source version
    in its `versionIds` output; read through a `pulumi.StackReference`."""
    definition: str | None = None
    """With `stack`: the image definition name in that stack."""
    version: str | None = None
    """With `stack`: the version (Major.Minor.Patch) in that stack."""

    @property
    def export_key(self) -> str:
        """The key in the other stack's `versionIds` (`definition/version`)."""
        return f"{self.definition}/{self.version}"

    @property
    def label(self) -> str:
        """Where the version comes from, for the plan and messages."""
        if self.id is not None:
            return f"version {self.id.id}"
        return f"stack {self.stack}: {self.definition} {self.version}"


@dataclass(frozen=True)
class ImageVersionSpec:
    """One gallery image version: captured from a source VM, or promoted from another image version."""

    version: str
    """Major.Minor.Patch, each a non-negative 32-bit integer."""
    source_vm: SourceVmSpec | None
    """The VM it is captured from; None for a promoted version."""
    target_regions: tuple[TargetRegionSpec, ...]
    replica_count: int = 1
    """Default replicas per region."""
    storage_account_type: str = "Standard_LRS"
    replication_mode: str = "Full"
    exclude_from_latest: bool = False
    end_of_life_date: str | None = None
    """ISO date after which the version should not be used; None: not configured, the Azure CLI's default applies
    (DEFAULT_END_OF_LIFE_MONTHS after the version is first created, kept in the state afterwards)."""
    create_timeout_minutes: float = 180.0
    """Bound for Azure's capture + replication (it can take hours with many regions)."""
    protect: bool = True
    """Protect the published version from `pulumi destroy` and accidental replacement."""
    allow_deletion_of_replicated_locations: bool = False
    block_deletion_before_end_of_life: bool | None = None
    """None: not configured, the Azure CLI's default applies (deletion blocked before the end of life)."""
    default_end_of_life_date: str | None = None
    """What the Azure CLI's default end of life is for a version created today (used when end_of_life_date is
    None)."""
    source_version: SourceVersionSpec | None = None
    """The version it is promoted from (instead of `source_vm`): no guest step, no ARM half."""
    data_disk_luns: tuple[int, ...] | None = None
    """`dataDiskLuns`: the LUNs of the source VM's data disks (Azure captures them all); preview holds the VM to
    them. None: not declared (whatever the VM has is captured; preview lists it)."""
    confidential_vm_encryption_type: str | None = None
    """One of CONFIDENTIAL_VM_ENCRYPTION_TYPES, for confidential definitions only."""


@dataclass(frozen=True)
class ImageDefinitionSpec:
    """A gallery image definition and the versions captured into it."""

    name: str
    os_type: str
    os_state: str
    hyper_v_generation: str
    architecture: str
    security_type: str
    publisher: str
    offer: str
    sku: str
    description: str = ""
    eula: str | None = None
    privacy_statement_uri: str | None = None
    release_note_uri: str | None = None
    end_of_life_date: str | None = None
    min_vcpus: int | None = None
    max_vcpus: int | None = None
    min_memory_gb: int | None = None
    max_memory_gb: int | None = None
    versions: tuple[ImageVersionSpec, ...] = ()
    disk_controller_types: tuple[str, ...] = ()
    """The DiskControllerTypes feature (SCSI, NVMe); empty: not declared (Azure's default is SCSI only)."""
    accelerated_network: bool | None = None
    """The IsAcceleratedNetworkSupported feature; None: not declared."""
    hibernate: bool | None = None
    """The IsHibernateSupported feature; None: not declared."""
    purchase_plan: PurchasePlanSpec | None = None
    """The definition's purchase plan (name, publisher, product)."""
    disallowed_disk_types: tuple[str, ...] = ()
    """Managed disk types VMs from this image must not use (`disallowed.diskTypes`)."""
    plan_image_type: str | None = None
    """`planImageType`: the Marketplace plan's image type this definition is published as (PLAN_IMAGE_TYPES)."""
    test_boot: TestBootSpec | None = None
    """`validate: true` with `validation`: boot each new version once before calling it done."""

    @property
    def latest_version(self) -> str | None:
        """The version Azure serves as `latest`: the highest one not excluded from latest (None: there is none)."""
        candidates = [v.version for v in self.versions if not v.exclude_from_latest]
        return max(candidates, key=lambda v: tuple(int(p) for p in v.split(".")), default=None)


@dataclass(frozen=True)
class StackSpec:
    """Everything one stack declares."""

    gallery: GallerySpec
    images: tuple[ImageDefinitionSpec, ...]
    publisher: PublisherSpec | None = None
    azure: AzureSpec = field(default_factory=AzureSpec)
    source_vms: Mapping[str, SourceVmSpec] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    """Things that are allowed but deserve a look: insecure opt-ins, keys in a misspelt namespace."""
