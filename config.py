"""Stack configuration -> typed, immutable specs.

Layer 1 of 3: pure Python, no Pulumi resources. `load(raw)` validates everything at once and raises one
ConfigError listing every problem with its key path (`images[0].versions[1].version: ...`). Components receive
these specs, never `pulumi.Config`.

Secrets (private keys, passphrases, passwords) are wrapped in `Secret` as soon as they are read, so a spec can be
printed or logged without leaking them; the components hand them to Pulumi as secret outputs.
"""

from __future__ import annotations

import calendar
import difflib
import json
import math
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import yaml

from hooks.errors import ConfigError
from hooks.host_keys import parse_host_key
from hooks.regions import closest_region, normalize_region
from hooks.targets import PUBLIC_CLOUD_ARM, ImageVersionRef, VmRef

PROJECT = "image-gallery"
# Scalar keys are declared with their types and defaults in Pulumi.yaml (the CLI checks them); Pulumi cannot
# declare object-valued keys, so the structured ones are validated here only.
SCALAR_KEYS = (
    "galleryName",
    "galleryResourceGroup",
    "galleryLocation",
    "galleryDescription",
    "publisherPrincipalId",
    "publisherPrincipalType",
    "publisherRole",
    "publisherTenantId",
    "publisherAccess",
    "graphEndpoint",
    "marketplace",
    "armEndpoint",
    "armAudience",
    "armPollIntervalSeconds",
    "armOperationTimeoutMinutes",
    "onArmUnreachable",
    "parallelHosts",
    "allowUnknownRegions",
)
STRUCTURED_KEYS = ("galleryTags", "images", "sourceVms")
MAX_PARALLEL_HOSTS = 64
"""Each host is one Python process (~60 MB): more than this is a mistake, not a speed-up."""
TOP_LEVEL_KEYS = SCALAR_KEYS + STRUCTURED_KEYS
# Optional string keys whose Pulumi.yaml default is "" (a declared key needs a default to be optional).
_BLANK_MEANS_UNSET = ("galleryDescription", "publisherPrincipalId", "publisherTenantId", "armAudience")

OS_TYPES = ("Linux", "Windows")
OS_STATES = ("Generalized", "Specialized")
HYPER_V_GENERATIONS = ("V1", "V2")
ARCHITECTURES = ("x64", "Arm64")
SECURITY_TYPES = (
    "Standard",
    "TrustedLaunch",
    "TrustedLaunchSupported",
    "ConfidentialVM",
    "ConfidentialVmSupported",
    "TrustedLaunchAndConfidentialVmSupported",
)
STORAGE_ACCOUNT_TYPES = ("Standard_LRS", "Standard_ZRS", "Premium_LRS", "PremiumV2_LRS")
REPLICATION_MODES = ("Full", "Shallow")
PRINCIPAL_TYPES = ("User", "Group", "ServicePrincipal", "ForeignGroup", "Device")
PUBLISHER_ROLES = {
    # Partner Center needs Owner on the gallery (second seed document).
    "Owner": "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
    # Newer guidance also accepts this narrower role for the Partner Center service principals.
    "ComputeGalleryImageReader": "cf7c76d2-98a3-4358-a134-615aa78bf44d",
}
PUBLISHER_ACCESS = ("owner", "partnerCenterServicePrincipals")
"""How Partner Center reads the gallery: `owner` (seed 003: the publisher account gets publisherRole on the gallery),
or `partnerCenterServicePrincipals` (Microsoft's newer guidance: register Microsoft.PartnerCenterIngestion on the
gallery's subscription and grant Compute Gallery Image Reader on the gallery to Partner Center's service principals)."""
PARTNER_CENTER_APPS = (
    ("Microsoft Partner Center Resource Provider", "497d76fa-f477-478a-aa29-49b0dee35030"),
    ("Compute Image Registry", "5947d96b-019a-46ba-ad4b-8ffc6f493b2e"),
)
"""Partner Center's first-party applications (display name, application ID); their service principals in the
publisher's tenant get Compute Gallery Image Reader on the gallery (README "Publishing to Partner Center")."""
PARTNER_CENTER_NAMESPACE = "Microsoft.PartnerCenterIngestion"
PUBLIC_CLOUD_GRAPH = "https://graph.microsoft.com"
DISK_CONTROLLER_TYPES = ("SCSI", "NVMe")
DISK_TYPES = (
    "Standard_LRS",
    "StandardSSD_LRS",
    "StandardSSD_ZRS",
    "Premium_LRS",
    "Premium_ZRS",
    "PremiumV2_LRS",
    "UltraSSD_LRS",
)
"""Managed disk types an image definition can disallow (`disallowed.diskTypes`)."""
WINRM_TRANSPORTS = ("ntlm", "kerberos", "credssp", "basic")
SYSPREP_MODES = ("vm", "")
SYSPREP_CHECKS = (
    "guest-agent",
    "server-roles",
    "bitlocker",
    "appx",
    "pending-reboot",
    "cdrom",
    "removable-storage",
)
SYSPREP_EXTRA_ARGS_MAX_LENGTH = 200
"""extraArgs joined by spaces; the sysprep script must stay one cmd.exe command line (hooks/windows/sysprep.py)."""
ON_ARM_UNREACHABLE = ("fail", "warn")
CONFIDENTIAL_VM_ENCRYPTION_TYPES = ("EncryptedVMGuestStateOnlyWithPmk", "EncryptedWithPmk", "EncryptedWithCmk")
"""`confidentialVmEncryptionType` of a version (targetRegions[].encryption.osDiskImage.securityProfile)."""
CONFIDENTIAL_SECURITY_TYPES = ("ConfidentialVM", "ConfidentialVmSupported", "TrustedLaunchAndConfidentialVmSupported")
"""Definition security types a confidential VM encryption type applies to."""
PLAN_IMAGE_TYPES = {"x64Gen1": ("x64", "V1"), "x64Gen2": ("x64", "V2"), "Arm64Gen2": ("Arm64", "V2")}
"""`planImageType`: the image type of the Marketplace plan's technical configuration → (architecture,
hyperVGeneration) the definition must have."""
DEFAULT_END_OF_LIFE_MONTHS = 6
"""The Azure CLI's default end of life of a new image version (and deletion blocked before it)."""
TEST_BOOT_VM_SIZES = {"x64": "Standard_D2s_v5", "Arm64": "Standard_D2ps_v5", "confidential": "Standard_DC2as_v5"}
"""Default `validation.vmSize` of the test boot, by architecture (confidential definitions need a DC size)."""

# Naming rules: https://learn.microsoft.com/azure/azure-resource-manager/management/resource-name-rules
# Microsoft.Compute/galleries: 1-80, alphanumerics, underscores and periods, start and end with alphanumeric.
_GALLERY_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9_.]{0,78}[A-Za-z0-9])?$")
_DEFINITION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,78}[A-Za-z0-9]$|^[A-Za-z0-9]$")
_IDENTIFIER_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
# Gallery image versions: Major.Minor.Patch of ASCII digits (`\d` would let full-width digits through).
_VERSION = re.compile(r"^([0-9]+)\.([0-9]+)\.([0-9]+)$")
_REGION = re.compile(r"^[a-z][a-z0-9]{1,40}$")
# resourcegroups: 1-90, underscores, hyphens, periods, parentheses, letters or digits; can't end with a period.
_RESOURCE_GROUP = re.compile(r"^[-\w._()]{0,89}[-\w_()]$")
_HOST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$|^\[?[0-9a-fA-F:]+\]?$")
_SYSPREP_ARG = re.compile(r"^/[A-Za-z]+(:[A-Za-z0-9]+)?$")
_SHA256_HEX = re.compile(r"^([0-9a-fA-F]{2}:?){31}[0-9a-fA-F]{2}$")
# Tags: https://learn.microsoft.com/azure/azure-resource-manager/management/tag-resources#limitations
# At most 50 per resource; names up to 512 and values up to 256 characters; no `< > % & \ ? /` in names.
_MAX_TAGS, _MAX_TAG_NAME, _MAX_TAG_VALUE = 50, 512, 256
_TAG_NAME_FORBIDDEN = set("<>%&\\?/")
_DISK_ENCRYPTION_SET_ID = re.compile(
    r"^/subscriptions/[0-9a-fA-F-]{36}/resourceGroups/[-\w._()]{1,90}/providers/Microsoft\.Compute"
    r"/diskEncryptionSets/[A-Za-z0-9_-]{1,80}$",
    re.IGNORECASE,
)
_SUBNET_ID = re.compile(
    r"^/subscriptions/(?P<sub>[0-9a-fA-F-]{36})/resourceGroups/(?P<rg>[-\w._()]{1,90})/providers/Microsoft\.Network"
    r"/virtualNetworks/(?P<vnet>[-\w.]{2,64})/subnets/(?P<subnet>[-\w.]{1,80})$",
    re.IGNORECASE,
)
_VM_SIZE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{2,63}$")
_MAX_U32 = 2**31 - 1  # Azure stores each version part as a 32-bit signed integer
_MAX_LUN = 63
_ADMIN_USERNAME = re.compile(r"^[a-z_][a-z0-9_-]{0,19}$")
_RESERVED_ADMIN_NAMES = frozenset(
    [
        "administrator",
        "admin",
        "user",
        "user1",
        "user2",
        "user3",
        "user4",
        "user5",
        "test",
        "test1",
        "test2",
        "test3",
        "1",
        "123",
        "a",
        "actuser",
        "adm",
        "admin1",
        "admin2",
        "aspnet",
        "backup",
        "console",
        "david",
        "guest",
        "john",
        "owner",
        "root",
        "server",
        "sql",
        "support",
        "support_388945a0",
        "sys",
    ]
)
"""Administrator names Azure refuses for a VM (osProfile.adminUsername)."""
MARKETPLACE_PLAN_SOURCE = (
    "https://learn.microsoft.com/partner-center/marketplace-offers/azure-vm-plan-technical-configuration"
)


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


# ---------------------------------------------------------------------------------------------------------- specs


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
class PartnerCenterAppSpec:
    """One of Partner Center's first-party applications, looked up by application ID in the tenant."""

    display_name: str
    app_id: str


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
    apps: tuple[PartnerCenterAppSpec, ...] = tuple(PartnerCenterAppSpec(n, a) for n, a in PARTNER_CENTER_APPS)
    """With partnerCenterServicePrincipals: the applications whose service principals get the reader role."""

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
class SshSpec:
    """SSH access to a Linux source VM (for `waagent -deprovision+user`)."""

    host: str
    """Address the machine running Pulumi can reach (private IP, DNS name, or a forwarded bastion port)."""
    username: str
    """Admin user with passwordless sudo; waagent deletes this user."""
    port: int = 22
    private_key: Secret | None = None
    """OpenSSH private key (secret: `pulumi config set --secret --path ...`)."""
    passphrase: Secret | None = None
    """Passphrase of the private key, if any (secret)."""
    password: Secret | None = None
    """Password instead of a key (secret)."""
    host_key: str | None = None
    """Expected host key, `ssh-ed25519 AAAA...` or a known_hosts line. Required unless insecureIgnoreHostKey."""
    insecure_ignore_host_key: bool = False
    """Accept any host key. Loudly warned; only for throwaway test VMs."""
    connect_timeout_minutes: float = 10.0
    """Bound for connecting while the VM boots (retries with backoff)."""
    command_timeout_minutes: float = 15.0
    """Bound for the deprovision script."""


@dataclass(frozen=True)
class SysprepSpec:
    """How sysprep is run and watched on a Windows source VM."""

    mode: str = "vm"
    """Value for `/mode:` (`vm`), or empty for none."""
    extra_args: tuple[str, ...] = ()
    """Extra sysprep flags such as `/unattend:...` are not allowed; only `/flag` or `/flag:value` words."""
    skip_checks: frozenset[str] = frozenset()
    """Pre-checks to skip by name: guest-agent, server-roles, bitlocker, appx, pending-reboot, cdrom,
    removable-storage."""
    agent_timeout_minutes: float = 10.0
    """Bound for the Azure guest agent services to be Running."""
    timeout_minutes: float = 60.0
    """Bound for sysprep to reach IMAGE_STATE_GENERALIZE_RESEAL_TO_OOBE."""
    poll_interval_seconds: float = 5.0
    """Seconds between ImageState polls."""


@dataclass(frozen=True)
class WinRmSpec:
    """WinRM access to a Windows source VM (for sysprep)."""

    host: str
    username: str
    """Local administrator sysprep runs as (never SYSTEM)."""
    password: Secret
    """Password of that user (secret)."""
    port: int = 5986
    use_https: bool = True
    transport: str = "ntlm"
    """ntlm | kerberos | credssp | basic."""
    ca_certificate: str | None = None
    """PEM of the CA (or self-signed certificate) that issued the WinRM listener's certificate."""
    certificate_sha256: str | None = None
    """Pinned SHA-256 fingerprint of the listener certificate (instead of caCertificate)."""
    insecure_skip_certificate_validation: bool = False
    """Accept any certificate. Loudly warned; only for throwaway test VMs."""
    connect_timeout_minutes: float = 10.0
    sysprep: SysprepSpec = field(default_factory=SysprepSpec)
    allow_unencrypted_http: bool = False
    """`useHttps: false` was opted into explicitly (`allowUnencryptedHttp: true`); loudly warned."""


@dataclass(frozen=True)
class SourceVmSpec:
    """An existing VM that versions are captured from, and how to reach its guest."""

    key: str
    """Name under `sourceVms` that versions refer to."""
    vm: VmRef
    ssh: SshSpec | None = None
    winrm: WinRmSpec | None = None
    deallocate: bool = True
    """For Specialized definitions: deallocate before capture (recommended for a consistent disk)."""

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
        m = _SUBNET_ID.fullmatch(self.subnet_id)
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


# --------------------------------------------------------------------------------------------------------- reader

T = TypeVar("T")
_MISSING = object()


@dataclass
class _Shared:
    """What every node of one load needs to know."""

    plain_paths: frozenset[str] | None = None
    """Key paths written in plaintext in the stack file, when it was read: a secret field at one of them is
    refused even when another field of the same top-level key is `secure:`."""
    allow_unknown_regions: bool = False
    marketplace: bool = True
    """The gallery's `marketplace` switch: Marketplace-only keys are refused without it."""
    warnings: list[str] = field(default_factory=list)
    stack: str | None = None
    """The stack being loaded, when known: a version cannot be promoted from its own stack."""


class _Node:
    """A mapping in the raw config, with its key path; records problems instead of raising."""

    def __init__(
        self,
        value: Mapping[str, Any],
        path: str,
        problems: list[str],
        secret_ok: bool,
        shared: _Shared | None = None,
    ) -> None:
        self.value = value
        self.path = path
        self.problems = problems
        self.secret_ok = secret_ok
        self.shared = shared or _Shared()
        self._used: set[str] = set()
        self._empty: set[str] = set()

    def at(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def problem(self, key: str, message: str) -> None:
        if key in self._empty and message.startswith("is required"):
            return  # already reported as empty
        self.problems.append(f"{self.at(key)}: {message}")

    def raw(self, key: str) -> Any:
        """The value, or _MISSING; a key written with nothing after the colon is reported, never taken as unset."""
        self._used.add(key)
        value = self.value.get(key, _MISSING)
        if value is None and key not in self._empty:
            self._empty.add(key)
            self.problems.append(f"{self.at(key)}: has no value (nothing after the colon): set a value or remove it")
        return value

    def string(
        self,
        key: str,
        default: Any = _MISSING,
        pattern: re.Pattern[str] | None = None,
        hint: str = "",
        required: bool = False,
    ) -> Any:
        value = self.raw(key)
        if value is _MISSING or value is None:
            if default is _MISSING or required:
                self.problem(key, "is required")
            return default
        if isinstance(value, Secret):
            self.problem(key, "must not be a secret value")
            return default
        if not isinstance(value, str) or not value.strip():
            self.problem(key, f"must be a non-empty string, got {value!r}")
            return default
        if pattern is not None and not pattern.fullmatch(value):
            self.problem(key, f"{value!r} {hint or 'is malformed'}")
            return default
        return value

    def choice(self, key: str, choices: Iterable[str], default: Any = _MISSING, required: bool = False) -> Any:
        options = tuple(choices)
        value = self.string(key, default, required=required)
        if value is default:
            return default
        if value not in options:
            shown = ", ".join(repr(o) for o in options)
            self.problem(key, f"{value!r} is not one of {shown}")
            return default
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self.raw(key)
        if value is _MISSING or value is None:
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        self.problem(key, f"must be true or false, got {value!r}")
        return default

    def integer(self, key: str, default: Any, low: int, high: int) -> Any:
        value = self.raw(key)
        if value is _MISSING or value is None:
            if default is _MISSING:
                self.problem(key, "is required")
            return default
        if isinstance(value, str) and re.fullmatch(r"-?[0-9]+", value.strip()):
            value = int(value)
        # A float is refused even when whole (`2.0`): the CLI refuses it for keys Pulumi.yaml declares integer.
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(key, f"must be an integer, got {value!r}")
            return default
        if not low <= value <= high:
            self.problem(key, f"{value} is out of range {low}-{high}")
            return default
        return value

    def positive(self, key: str, default: float) -> float:
        value = self.raw(key)
        if value is _MISSING or value is None:
            return default
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.problem(key, f"must be a positive number, got {value!r}")
            return default
        if isinstance(value, bool) or not number > 0:
            self.problem(key, f"must be a positive number, got {value!r}")
            return default
        if not math.isfinite(number):  # inf would be an endless wait (a create timeout of "infm")
            self.problem(key, f"must be a finite number of {_unit(key)}, got {value!r}")
            return default
        return number

    def secret(self, key: str) -> Secret | None:
        value = self.raw(key)
        if value is _MISSING or value is None:
            return None
        if isinstance(value, Secret):
            if not value.reveal().strip():
                self.problem(key, "is empty")
                return None
            return value
        if isinstance(value, str) and value.strip():
            plain_paths = self.shared.plain_paths
            written_plain = plain_paths is not None and self.at(key) in plain_paths
            if written_plain or not self.secret_ok:
                self.problem(
                    key,
                    "is stored in plaintext; store it encrypted with "
                    f"`pulumi config set --secret --path '{self.at(key)}'`",
                )
            return Secret(value)
        self.problem(key, "must be a non-empty string")
        return None

    def child(self, key: str, required: bool = False) -> _Node | None:
        value = self.raw(key)
        if value is _MISSING or value is None:
            if required:
                self.problem(key, "is required")
            return None
        if not isinstance(value, Mapping):
            self.problem(key, f"must be an object, got {type(value).__name__}")
            return None
        return _Node(value, self.at(key), self.problems, self.secret_ok, self.shared)

    def items(self, key: str, required: bool = False) -> list[_Node]:
        value = self.raw(key)
        if value is _MISSING or value is None:
            if required:
                self.problem(key, "is required and must list at least one entry")
            return []
        if not isinstance(value, list):
            self.problem(key, f"must be a list, got {type(value).__name__}")
            return []
        if required and not value:
            self.problem(key, "must list at least one entry")
        nodes = []
        for i, item in enumerate(value):
            path = f"{self.at(key)}[{i}]"
            if not isinstance(item, Mapping):
                self.problems.append(f"{path}: must be an object, got {type(item).__name__}")
                continue
            nodes.append(_Node(item, path, self.problems, self.secret_ok, self.shared))
        return nodes

    def strings(self, key: str, pattern: re.Pattern[str] | None = None, hint: str = "") -> tuple[str, ...]:
        value = self.raw(key)
        if value is _MISSING or value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.problem(key, "must be a list of strings")
            return ()
        for i, v in enumerate(value):
            if pattern is not None and not pattern.fullmatch(v):
                self.problems.append(f"{self.at(key)}[{i}]: {v!r} {hint}")
        return tuple(value)

    def done(self) -> None:
        """Report keys nobody read: typos must not be silently ignored."""
        for key in self.value:
            if key not in self._used:
                known = ", ".join(sorted(self._used))
                close = difflib.get_close_matches(str(key), sorted(self._used), n=1, cutoff=0.75)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                self.problem(str(key), f"unknown key (known keys here: {known}){hint}")


def _unit(key: str) -> str:
    return "seconds" if key.endswith("Seconds") else "minutes" if key.endswith("Minutes") else "units"


def _guid(node: _Node, key: str, default: Any = _MISSING, required: bool = False) -> Any:
    value = node.string(key, default, required=required)
    if value is default or value is None:
        return value
    try:
        return str(uuid.UUID(value))
    except ValueError:
        node.problem(key, f"{value!r} is not a GUID (object ID like 00000000-0000-0000-0000-000000000000)")
        return default


def _future_date(node: _Node, key: str, today: date) -> str | None:
    value = node.raw(key)
    if value is _MISSING or value is None:
        return None
    parsed: date | None
    if isinstance(value, date):  # YAML parses unquoted dates
        parsed = value if not isinstance(value, datetime) else value.date()
    else:
        try:
            parsed = datetime.fromisoformat(value).date() if isinstance(value, str) else None
        except ValueError:
            parsed = None
        if parsed is None:
            node.problem(key, f"{value!r} is not an ISO date (YYYY-MM-DD)")
            return None
    if parsed <= today:
        node.problem(key, f"{parsed.isoformat()} is not in the future")
        return None
    return parsed.isoformat() + "T00:00:00Z"


# ----------------------------------------------------------------------------------------------------- sections


def _gallery(root: _Node) -> GallerySpec | None:
    name = root.string("galleryName", None, required=True)
    if name is not None and not _GALLERY_NAME.fullmatch(name):
        root.problem(
            "galleryName",
            f"{name!r} is not a valid gallery name: use 1-80 letters, digits, '_' or '.', "
            "starting and ending with a letter or digit",
        )
        name = None
    rg = root.string(
        "galleryResourceGroup",
        None,
        _RESOURCE_GROUP,
        "is not a valid resource group name (1-90 letters, digits, '_', '-', '.', '(', ')'; not ending with '.')",
        True,
    )
    location = _region(root, "galleryLocation", required=True)
    description = root.string("galleryDescription", "")
    tags_raw = root.raw("galleryTags")
    tags: dict[str, str] = {}
    if tags_raw is not _MISSING and tags_raw is not None:
        if isinstance(tags_raw, Mapping) and all(isinstance(v, str) for v in tags_raw.values()):
            tags = {str(k): v for k, v in tags_raw.items()}
            _check_tags(root, tags)
        else:
            root.problem("galleryTags", "must be a map of strings")
    marketplace = root.boolean("marketplace", True)
    if name is None or rg is None or location is None:
        return None
    return GallerySpec(name, rg, location, description, tags, marketplace)


def _check_tags(root: _Node, tags: Mapping[str, str]) -> None:
    """Azure's tag limits (see _MAX_TAGS): ARM would refuse the gallery only at `pulumi up`."""
    if len(tags) > _MAX_TAGS:
        root.problem("galleryTags", f"has {len(tags)} tags; Azure allows at most {_MAX_TAGS}")
    for name, value in tags.items():
        at = f"galleryTags.{name}"
        if not name.strip():
            root.problems.append(f"{at}: a tag name must not be empty")
        if len(name) > _MAX_TAG_NAME:
            root.problems.append(f"{at}: the tag name has {len(name)} characters; Azure allows {_MAX_TAG_NAME}")
        bad = sorted(set(name) & _TAG_NAME_FORBIDDEN)
        if bad:
            root.problems.append(f"{at}: a tag name must not contain {' '.join(bad)} (Azure refuses < > % & \\ ? /)")
        if len(value) > _MAX_TAG_VALUE:
            root.problems.append(f"{at}: the value has {len(value)} characters; Azure allows {_MAX_TAG_VALUE}")


def _region(node: _Node, key: str, required: bool = False) -> Any:
    """A region's short name: display names (`West Europe`) are normalized; an unknown name is refused with the
    closest known one, unless `allowUnknownRegions: true` (sovereign clouds, regions newer than the repo's list)."""
    value = node.string(key, None, required=required)
    if value is None:
        return None
    known = normalize_region(value)
    if known is not None:
        return known
    short = value.replace(" ", "").lower()
    if not _REGION.fullmatch(short):
        node.problem(key, f"{value!r} is not an Azure region name like 'westeurope' or 'West Europe'")
        return None
    if node.shared.allow_unknown_regions:
        return short
    close = closest_region(value)
    hint = f"did you mean {close!r}? " if close else ""
    node.problem(
        key,
        f"{value!r} is not a known Azure public region ({hint}see hooks/azure_regions.json); for sovereign clouds "
        "or new regions set allowUnknownRegions: true",
    )
    return None


def _publisher(root: _Node) -> PublisherSpec | None:
    """Partner Center's access: the publisher's role (when publisherPrincipalId is set) and, with publisherAccess
    partnerCenterServicePrincipals, the first-party service principals' reader role and the provider registration."""
    principal_id = _guid(root, "publisherPrincipalId", None)
    principal_type = root.choice("publisherPrincipalType", PRINCIPAL_TYPES, "User")
    role = root.choice("publisherRole", PUBLISHER_ROLES, "Owner")
    tenant_id = _guid(root, "publisherTenantId", None)
    access = root.choice("publisherAccess", PUBLISHER_ACCESS, "owner")
    graph = root.string("graphEndpoint", PUBLIC_CLOUD_GRAPH)
    problem = _endpoint_problem(graph)
    if problem:
        root.problem("graphEndpoint", f"{graph!r} {problem.replace('ARM tokens', 'Graph tokens')}")
        graph = PUBLIC_CLOUD_GRAPH
    principal_given = root.raw("publisherPrincipalId") not in (_MISSING, None)
    if access == "partnerCenterServicePrincipals":
        if principal_type is None or (principal_given and principal_id is None):
            return None
        return PublisherSpec(principal_id, principal_type, role, tenant_id, access, graph.rstrip("/"))
    if principal_id is None or principal_type is None:
        if tenant_id is not None and not principal_given:
            root.problem(
                "publisherTenantId",
                "is only used with publisherPrincipalId (set both or neither) or with publisherAccess: "
                "partnerCenterServicePrincipals",
            )
        return None
    return PublisherSpec(principal_id, principal_type, role, tenant_id, access, graph.rstrip("/"))


def _azure(root: _Node) -> AzureSpec:
    endpoint = root.string("armEndpoint", PUBLIC_CLOUD_ARM)
    problem = _endpoint_problem(endpoint)
    if problem:
        root.problem("armEndpoint", f"{endpoint!r} {problem}")
        endpoint = PUBLIC_CLOUD_ARM
    return AzureSpec(
        arm_endpoint=endpoint.rstrip("/"),
        audience=root.string("armAudience", None),
        # Declared integer in Pulumi.yaml: the CLI refuses 2.5 there, so the plan does too.
        poll_interval_seconds=root.integer("armPollIntervalSeconds", 15, 1, 3600),
        operation_timeout_minutes=root.integer("armOperationTimeoutMinutes", 30, 1, 7 * 24 * 60),
        on_arm_unreachable=root.choice("onArmUnreachable", ON_ARM_UNREACHABLE, "fail"),
        parallel_hosts=root.integer("parallelHosts", 0, 0, MAX_PARALLEL_HOSTS),
    )


def _endpoint_problem(endpoint: str) -> str | None:
    """Why an ARM endpoint is unusable, or None: ARM tokens are only ever sent to an https URL with a host."""
    try:
        url = urlsplit(endpoint)
        url.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError as exc:
        return f"is not a well-formed URL ({exc})"
    if url.scheme != "https":
        return "must be an https:// URL (ARM tokens are never sent over http)"
    if not url.hostname or not _HOST.fullmatch(url.hostname) or any(c.isspace() for c in endpoint):
        return "must be an https:// URL with a host name, e.g. https://management.azure.com"
    if url.username or url.password or url.query or url.fragment:
        return "must be a plain https://host[:port][/path] URL (no credentials, query or fragment)"
    return None


def _ssh(node: _Node) -> SshSpec | None:
    host = node.string("host", None, _HOST, "is not a host name or IP address", True)
    username = node.string("username", None, required=True)
    port = node.integer("port", 22, 1, 65535)
    private_key = node.secret("privateKey")
    passphrase = node.secret("passphrase")
    password = node.secret("password")
    if (private_key is None) == (password is None):
        node.problems.append(
            f"{node.path}: set exactly one of privateKey or password (got {'both' if private_key else 'neither'})"
        )
    if passphrase is not None and private_key is None:
        node.problem("passphrase", "is only used with privateKey")
    host_key = node.string("hostKey", None)
    if host_key is not None:
        try:
            parse_host_key(host_key)
        except ValueError as exc:
            node.problem("hostKey", str(exc))
    insecure = node.boolean("insecureIgnoreHostKey", False)
    if insecure and host_key is not None:
        node.problem(
            "insecureIgnoreHostKey", "contradicts hostKey: remove one (verifying the host key is the safe choice)"
        )
    if host_key is None and not insecure:
        node.problem(
            "hostKey",
            "is required: the VM's host key (`ssh-keyscan <host>` from a trusted network, or "
            "`az vm run-command invoke ... cat /etc/ssh/ssh_host_ed25519_key.pub`); "
            "set insecureIgnoreHostKey: true only for throwaway VMs",
        )
    connect = node.positive("connectTimeoutMinutes", SshSpec.connect_timeout_minutes)
    command = node.positive("commandTimeoutMinutes", SshSpec.command_timeout_minutes)
    node.done()
    if host is None or username is None:
        return None
    return SshSpec(host, username, port, private_key, passphrase, password, host_key, insecure, connect, command)


def _sysprep(node: _Node | None) -> SysprepSpec:
    if node is None:
        return SysprepSpec()
    mode = "" if node.raw("mode") == "" else node.choice("mode", SYSPREP_MODES, "vm")
    extra = node.strings("extraArgs", _SYSPREP_ARG, "is not a sysprep flag like /flag or /flag:value")
    for i, arg in enumerate(extra):
        if arg.lower().split(":")[0] in (
            "/unattend",
            "/quiet",
            "/mode",
            "/shutdown",
            "/reboot",
            "/quit",
            "/oobe",
            "/generalize",
            "/audit",
        ):
            node.problems.append(f"{node.at('extraArgs')}[{i}]: {arg!r} is set by image-gallery itself; remove it")
    if len(" ".join(extra)) > SYSPREP_EXTRA_ARGS_MAX_LENGTH:
        node.problems.append(
            f"{node.at('extraArgs')}: {len(' '.join(extra))} characters together, more than "
            f"{SYSPREP_EXTRA_ARGS_MAX_LENGTH}: the sysprep command must fit one Windows command line"
        )
    skip = node.strings("skipChecks")
    for i, name in enumerate(skip):
        if name not in SYSPREP_CHECKS:
            node.problems.append(f"{node.at('skipChecks')}[{i}]: {name!r} is not one of {', '.join(SYSPREP_CHECKS)}")
    spec = SysprepSpec(
        mode=mode,
        extra_args=extra,
        skip_checks=frozenset(skip),
        agent_timeout_minutes=node.positive("agentTimeoutMinutes", SysprepSpec.agent_timeout_minutes),
        timeout_minutes=node.positive("timeoutMinutes", SysprepSpec.timeout_minutes),
        poll_interval_seconds=node.positive("pollIntervalSeconds", SysprepSpec.poll_interval_seconds),
    )
    node.done()
    return spec


def _winrm(node: _Node) -> WinRmSpec | None:
    host = node.string("host", None, _HOST, "is not a host name or IP address", True)
    username = node.string("username", None, required=True)
    password = node.secret("password")
    if password is None and node.value.get("password") is None:  # an empty or malformed one is reported already
        node.problem("password", "is required (secret: `pulumi config set --secret --path ...`)")
    use_https = node.boolean("useHttps", True)
    allow_http = node.boolean("allowUnencryptedHttp", False)
    if not use_https and not allow_http:
        node.problem(
            "useHttps",
            "false sends WinRM traffic without TLS (only NTLM/Kerberos message encryption protects the password and "
            "the sysprep session); keep useHttps: true, or set allowUnencryptedHttp: true to accept that",
        )
    elif not use_https:
        node.shared.warnings.append(
            f"{node.path}: WinRM over plain http (allowUnencryptedHttp: true): the session is not protected by TLS; "
            "use it only on an isolated network"
        )
    elif allow_http:
        node.problem("allowUnencryptedHttp", "is only used with useHttps: false")
    port = node.integer("port", 5986 if use_https else 5985, 1, 65535)
    transport = node.choice("transport", WINRM_TRANSPORTS, "ntlm")
    ca = node.string("caCertificate", None)
    if ca is not None and "-----BEGIN CERTIFICATE-----" not in ca:
        node.problem("caCertificate", "must be a PEM certificate (-----BEGIN CERTIFICATE----- ...)")
    pin = node.string("certificateSha256", None, _SHA256_HEX, "is not a SHA-256 fingerprint (64 hex digits)")
    insecure = node.boolean("insecureSkipCertificateValidation", False)
    if use_https and ca is None and pin is None and not insecure:
        node.problem(
            "caCertificate",
            "set caCertificate or certificateSha256 so the WinRM listener's certificate can be verified "
            "(or insecureSkipCertificateValidation: true for throwaway VMs only)",
        )
    if insecure and (ca is not None or pin is not None):
        node.problem(
            "insecureSkipCertificateValidation",
            "contradicts caCertificate/certificateSha256: remove one (verification is the safe choice)",
        )
    if ca is not None and pin is not None:
        node.problem("certificateSha256", "set caCertificate or certificateSha256, not both")
    if not use_https and (ca is not None or pin is not None):
        which = "certificateSha256" if pin is not None else "caCertificate"
        node.problem(which, "contradicts useHttps: false: there is no certificate to verify over http")
    if not use_https and transport == "basic":
        node.problem("transport", "basic over http would send the password in clear; use useHttps: true")
    connect = node.positive("connectTimeoutMinutes", WinRmSpec.connect_timeout_minutes)
    sysprep = _sysprep(node.child("sysprep"))
    node.done()
    if host is None or username is None or password is None:
        return None
    return WinRmSpec(
        host, username, password, port, use_https, transport, ca, pin, insecure, connect, sysprep, allow_http
    )


def _source_vms(node: _Node | None) -> dict[str, SourceVmSpec | None]:
    """Every declared key; None for an entry whose own problems are already reported."""
    result: dict[str, SourceVmSpec | None] = {}
    if node is None:
        return result
    for key in list(node.value):
        vm_node = node.child(str(key), required=True)
        result[str(key)] = None
        if vm_node is None:
            continue
        vm_id = vm_node.string("id", None, required=True)
        vm: VmRef | None = None
        if vm_id is not None:
            try:
                vm = VmRef.parse(vm_id)
            except ValueError as exc:
                vm_node.problem("id", str(exc))
        ssh_node = vm_node.child("ssh")
        winrm_node = vm_node.child("winrm")
        if ssh_node is not None and winrm_node is not None:
            vm_node.problems.append(f"{vm_node.path}: set ssh (Linux) or winrm (Windows), not both")
        ssh = _ssh(ssh_node) if ssh_node is not None else None
        winrm = _winrm(winrm_node) if winrm_node is not None else None
        deallocate = vm_node.boolean("deallocate", True)
        vm_node.done()
        if vm is not None and (ssh_node is None or ssh is not None) and (winrm_node is None or winrm is not None):
            result[str(key)] = SourceVmSpec(str(key), vm, ssh, winrm, deallocate)
    return result


def _target_region(node: _Node, default_replicas: int, default_storage: str) -> TargetRegionSpec | None:
    name = _region(node, "name", required=True)
    replicas = node.integer("replicaCount", default_replicas, 1, 100)
    storage = node.choice("storageAccountType", STORAGE_ACCOUNT_TYPES, default_storage)
    exclude = node.boolean("excludeFromLatest", False)
    hint = (
        "is not a disk encryption set ID "
        "(/subscriptions/<guid>/resourceGroups/<rg>/providers/Microsoft.Compute/diskEncryptionSets/<name>)"
    )
    des = node.string("diskEncryptionSetId", None, _DISK_ENCRYPTION_SET_ID, hint)
    cvm_des = node.string("confidentialVmDiskEncryptionSetId", None, _DISK_ENCRYPTION_SET_ID, hint)
    node.done()
    if name is None:
        return None
    return TargetRegionSpec(name, replicas, storage, exclude, des, cvm_des)


def _default_end_of_life(today: date) -> str:
    """DEFAULT_END_OF_LIFE_MONTHS after `today` (the last day of the month when that day does not exist)."""
    month = today.month - 1 + DEFAULT_END_OF_LIFE_MONTHS
    year, month = today.year + month // 12, month % 12 + 1
    day = min(today.day, calendar.monthrange(year, month)[1])
    return date(year, month, day).isoformat() + "T00:00:00Z"


def _data_disk_luns(node: _Node) -> tuple[int, ...] | None:
    value = node.raw("dataDiskLuns")
    if value is _MISSING or value is None:
        return None
    if not isinstance(value, list) or any(isinstance(v, bool) or not isinstance(v, int) for v in value):
        node.problem("dataDiskLuns", f"must be a list of LUNs (integers 0-63), got {value!r}")
        return None
    bad = [v for v in value if not 0 <= v <= _MAX_LUN]
    if bad:
        node.problem("dataDiskLuns", f"{bad} out of range: a LUN is 0-{_MAX_LUN}")
        return None
    if len(set(value)) != len(value):
        node.problem("dataDiskLuns", "lists a LUN more than once")
        return None
    return tuple(sorted(value))


def _check_encryption(
    node: _Node, regions: list[TargetRegionSpec], definition: Mapping[str, Any], cvm_type: str | None
) -> None:
    """Confidential VM encryption only for confidential definitions; a customer-managed key needs a confidential
    disk encryption set in every target region, and only then."""
    security = definition.get("security_type")
    if cvm_type is not None and security is not None and security not in CONFIDENTIAL_SECURITY_TYPES:
        node.problem(
            "confidentialVmEncryptionType",
            f"is only for confidential definitions (securityType {', '.join(CONFIDENTIAL_SECURITY_TYPES)}); the "
            f"definition's securityType is {security}: remove it or change securityType",
        )
    for i, region in enumerate(regions):
        at = f"{node.at('targetRegions')}[{i}].confidentialVmDiskEncryptionSetId"
        if cvm_type == "EncryptedWithCmk" and region.confidential_vm_disk_encryption_set_id is None:
            node.problems.append(
                f"{at}: is required in every target region with confidentialVmEncryptionType EncryptedWithCmk "
                f"(the disk encryption set of {region.name} holding the customer-managed key)"
            )
        if cvm_type != "EncryptedWithCmk" and region.confidential_vm_disk_encryption_set_id is not None:
            node.problems.append(f"{at}: is only used with confidentialVmEncryptionType EncryptedWithCmk")


def _version(
    node: _Node, definition: dict[str, Any], source_vms: Mapping[str, SourceVmSpec | None], today: date
) -> ImageVersionSpec | None:
    version = node.string("version", None, required=True)
    if version is not None:
        m = _VERSION.fullmatch(version)
        if not m:
            node.problem("version", f"{version!r} is not Major.Minor.Patch")
            version = None
        elif any(int(part) > _MAX_U32 for part in m.groups()):
            node.problem("version", f"{version!r}: each part must be a non-negative 32-bit integer (<= {_MAX_U32})")
            version = None
    promoted = node.raw("sourceVersion") not in (_MISSING, None)
    source_key = node.string("sourceVm", None)
    if not promoted and node.raw("sourceVm") is _MISSING:
        node.problem("sourceVm", "is required (or sourceVersion, to promote a version of another stack or gallery)")
    source_version = _source_version(node) if promoted else None
    if promoted and source_key is not None:
        node.problem("sourceVersion", "set sourceVm (capture from a VM) or sourceVersion (promote a version), not both")
    source = None
    if source_key is not None:
        source = source_vms.get(source_key)
        if source_key not in source_vms:
            known = ", ".join(sorted(source_vms)) or "none defined"
            node.problem("sourceVm", f"{source_key!r} is not a key under sourceVms (defined: {known})")
    replicas = node.integer("replicaCount", 1, 1, 100)
    storage = node.choice("storageAccountType", STORAGE_ACCOUNT_TYPES, "Standard_LRS")
    regions = [r for r in (_target_region(n, replicas, storage) for n in node.items("targetRegions", True)) if r]
    names = [r.name for r in regions]
    for dup in sorted({n for n in names if names.count(n) > 1}):
        node.problem("targetRegions", f"region {dup!r} is listed more than once")
    cvm_type = node.choice("confidentialVmEncryptionType", CONFIDENTIAL_VM_ENCRYPTION_TYPES, None)
    _check_encryption(node, regions, definition, cvm_type)
    spec_kwargs = dict(
        replication_mode=node.choice("replicationMode", REPLICATION_MODES, "Full"),
        exclude_from_latest=node.boolean("excludeFromLatest", False),
        end_of_life_date=_future_date(node, "endOfLifeDate", today),
        create_timeout_minutes=node.positive("createTimeoutMinutes", ImageVersionSpec.create_timeout_minutes),
        protect=node.boolean("protect", True),
        allow_deletion_of_replicated_locations=node.boolean("allowDeletionOfReplicatedLocations", False),
        block_deletion_before_end_of_life=(
            node.boolean("blockDeletionBeforeEndOfLife", True)
            if node.raw("blockDeletionBeforeEndOfLife") not in (_MISSING, None)
            else None
        ),
        data_disk_luns=_data_disk_luns(node),
        confidential_vm_encryption_type=cvm_type,
        default_end_of_life_date=_default_end_of_life(today),
    )
    if promoted and spec_kwargs["data_disk_luns"] is not None:
        node.problem("dataDiskLuns", "is only used with sourceVm (a promoted version keeps its source's data disks)")
    node.done()
    if source is not None:
        _check_source_fits(node, source, definition)
    if version is None or (source is None and source_version is None) or not regions:
        return None
    if promoted and source_key is not None:
        return None
    return ImageVersionSpec(
        version=version,
        source_vm=source,
        source_version=source_version,
        target_regions=tuple(regions),
        replica_count=replicas,
        storage_account_type=storage,
        **spec_kwargs,
    )


_STACK_NAME = re.compile(r"^([A-Za-z0-9_.-]{1,100}/){0,2}[A-Za-z0-9_.-]{1,100}$")


def _source_version(node: _Node) -> SourceVersionSpec | None:
    """`sourceVersion`: `{id: <version resource ID>}`, or `{stack: <stack>, version: <definition>/<x.y.z>}`."""
    child = node.child("sourceVersion")
    if child is None:
        return None
    has_id = child.raw("id") not in (_MISSING, None)
    has_stack = child.raw("stack") not in (_MISSING, None)
    if has_id == has_stack:
        child.problems.append(
            f"{child.path}: set id (the source version's resource ID) or stack and version (a version another stack "
            f"of this project exports in versionIds), {'not both' if has_id else 'one of them'}"
        )
    ref = stack = definition = version = None
    if has_id:
        raw_id = child.string("id", None)
        if raw_id is not None:
            try:
                ref = ImageVersionRef.parse(raw_id)
            except ValueError as exc:
                child.problem("id", str(exc))
        if not has_stack and child.raw("version") not in (_MISSING, None):
            child.problem("version", "is only used with stack (with id, the ID names the version)")
    if has_stack:
        stack = child.string(
            "stack",
            None,
            _STACK_NAME,
            "is not a stack name: `dev`, or `organization/image-gallery/dev` (letters, digits, '-', '_', '.')",
        )
        if stack is not None and stack.split("/")[-1] == node.shared.stack:
            child.problem("stack", f"{stack!r} is this stack itself; promote from another stack")
            stack = None
        key = child.string("version", None, required=True)
        if key is not None:
            name, _, number = key.partition("/")
            if not _DEFINITION_NAME.fullmatch(name) or not _VERSION.fullmatch(number):
                child.problem(
                    "version",
                    f"{key!r} is not <definition>/<Major.Minor.Patch> as exported in that stack's versionIds "
                    "(e.g. ubuntu-2204-hardened/1.0.0)",
                )
            else:
                definition, version = name, number
    child.done()
    if ref is not None and not has_stack:
        return SourceVersionSpec(id=ref)
    if stack is not None and definition is not None and not has_id:
        return SourceVersionSpec(stack=stack, definition=definition, version=version)
    return None


def _check_source_fits(node: _Node, source: SourceVmSpec, definition: dict[str, Any]) -> None:
    """The guest transport must fit the definition: ssh for Linux, winrm for Windows, none when Specialized."""
    os_type, os_state = definition.get("os_type"), definition.get("os_state")
    where = f"sourceVms.{source.key}"
    if os_state == "Specialized":
        return  # no guest step: the VM is captured as it is
    if os_type == "Linux" and source.ssh is None:
        node.problem("sourceVm", f"{where} needs an ssh block: Linux VMs are deprovisioned with waagent over SSH")
    if os_type == "Windows" and source.winrm is None:
        node.problem("sourceVm", f"{where} needs a winrm block: Windows VMs are sysprepped over WinRM")
    if os_type == "Linux" and source.winrm is not None:
        node.problem("sourceVm", f"{where} has a winrm block but the definition's osType is Linux")
    if os_type == "Windows" and source.ssh is not None:
        node.problem("sourceVm", f"{where} has an ssh block but the definition's osType is Windows")


def _definition(node: _Node, source_vms: Mapping[str, SourceVmSpec | None], today: date) -> ImageDefinitionSpec | None:
    name = node.string(
        "name",
        None,
        _DEFINITION_NAME,
        "is not a valid image definition name (1-80 letters, digits, '.', '_', '-')",
        required=True,
    )
    fields: dict[str, Any] = {
        "os_type": node.choice("osType", OS_TYPES, None, required=True),
        "os_state": node.choice("osState", OS_STATES, "Generalized"),
        "hyper_v_generation": node.choice("hyperVGeneration", HYPER_V_GENERATIONS, "V2"),
        "architecture": node.choice("architecture", ARCHITECTURES, "x64"),
        "security_type": node.choice("securityType", SECURITY_TYPES, "Standard"),
    }
    if fields["hyper_v_generation"] == "V1" and fields["security_type"] != "Standard":
        node.problem("securityType", f"{fields['security_type']} needs hyperVGeneration V2")
    if fields["architecture"] == "Arm64" and fields["hyper_v_generation"] == "V1":
        node.problem("architecture", "Arm64 images need hyperVGeneration V2")
    ident = node.child("identifier", required=True)
    publisher = offer = sku = None
    if ident is not None:
        hint = "is not a valid identifier part (letters, digits, '.', '_', '-', up to 128)"
        publisher = ident.string("publisher", None, _IDENTIFIER_PART, hint, True)
        offer = ident.string("offer", None, _IDENTIFIER_PART, hint, True)
        sku = ident.string("sku", None, _IDENTIFIER_PART, hint, True)
        ident.done()
    extras = {
        "description": node.string("description", ""),
        "eula": node.string("eula", None),
        "privacy_statement_uri": _uri(node, "privacyStatementUri"),
        "release_note_uri": _uri(node, "releaseNoteUri"),
        "end_of_life_date": _future_date(node, "endOfLifeDate", today),
        **_features(node, fields),
        "purchase_plan": _purchase_plan(node),
        "disallowed_disk_types": _disallowed_disk_types(node),
        "plan_image_type": _plan_image_type(node, fields),
        "test_boot": _test_boot(node, fields),
    }
    rec = node.child("recommended")
    limits: dict[str, Any] = {}
    if rec is not None:
        limits = {
            "min_vcpus": rec.integer("minVCpus", None, 1, 1024),
            "max_vcpus": rec.integer("maxVCpus", None, 1, 1024),
            "min_memory_gb": rec.integer("minMemoryGb", None, 1, 16384),
            "max_memory_gb": rec.integer("maxMemoryGb", None, 1, 16384),
        }
        for low, high, low_key, high_key in (
            ("min_vcpus", "max_vcpus", "minVCpus", "maxVCpus"),
            ("min_memory_gb", "max_memory_gb", "minMemoryGb", "maxMemoryGb"),
        ):
            if limits[low] is not None and limits[high] is not None and limits[low] > limits[high]:
                rec.problem(low_key, f"{limits[low]} is larger than {high_key} ({limits[high]})")
        rec.done()
    parsed = [(n.path, _version(n, fields, source_vms, today)) for n in node.items("versions")]
    versions = [v for _, v in parsed if v]
    seen: set[str] = set()
    for path, v in parsed:
        if v is None:
            continue
        if v.version in seen:
            node.problems.append(f"{path}.version: {v.version!r} is declared twice in {name!r}")
        seen.add(v.version)
    node.done()
    if name is None or publisher is None or offer is None or sku is None or None in fields.values():
        return None
    return ImageDefinitionSpec(
        name=name, publisher=publisher, offer=offer, sku=sku, versions=tuple(versions), **fields, **extras, **limits
    )


def _uri(node: _Node, key: str) -> str | None:
    """An http(s) URI, as Azure and Partner Center show it to customers."""
    value: str | None = node.string(key, None)
    if value is None:
        return None
    url = urlsplit(value)
    if url.scheme not in ("http", "https") or not url.netloc or any(c.isspace() for c in value):
        node.problem(key, f"{value!r} is not an http(s) URL, e.g. https://contoso.example/privacy")
        return None
    return value


def _features(node: _Node, fields: Mapping[str, Any]) -> dict[str, Any]:
    """`features`: what the definition claims beside securityType; the capture-time checks hold the VM to it."""
    child = node.child("features")
    if child is None:
        return {}
    controllers = child.strings("diskControllerTypes")
    for i, c in enumerate(controllers):
        if c not in DISK_CONTROLLER_TYPES:
            child.problems.append(
                f"{child.at('diskControllerTypes')}[{i}]: {c!r} is not one of {', '.join(DISK_CONTROLLER_TYPES)}"
            )
    if len(set(controllers)) != len(controllers):
        child.problem("diskControllerTypes", "lists a controller type more than once")
    if child.raw("diskControllerTypes") == []:
        child.problem("diskControllerTypes", "must list SCSI, NVMe or both (or be left out: SCSI only)")
    if "NVMe" in controllers and fields.get("hyper_v_generation") == "V1":
        child.problem("diskControllerTypes", "NVMe needs hyperVGeneration V2")
    accelerated = child.raw("acceleratedNetwork")
    hibernate = child.raw("hibernate")
    result = {
        "disk_controller_types": tuple(c for c in DISK_CONTROLLER_TYPES if c in controllers),
        "accelerated_network": child.boolean("acceleratedNetwork", False) if accelerated is not _MISSING else None,
        "hibernate": child.boolean("hibernate", False) if hibernate is not _MISSING else None,
    }
    child.done()
    return result


def _plan_image_type(node: _Node, fields: Mapping[str, Any]) -> str | None:
    """`planImageType`: the Marketplace plan's image type must fit the definition's architecture and Hyper-V
    generation (a Gen1 plan image cannot be a V2 definition). Marketplace galleries only."""
    kind: str | None = node.choice("planImageType", PLAN_IMAGE_TYPES, None)
    if kind is None:
        return None
    if not node.shared.marketplace:
        node.problem("planImageType", "is a Marketplace rule: remove it, or set marketplace: true")
        return None
    architecture, generation = PLAN_IMAGE_TYPES[kind]
    have = (fields.get("architecture"), fields.get("hyper_v_generation"))
    if None not in have and have != (architecture, generation):
        node.problem(
            "planImageType",
            f"{kind} needs architecture {architecture} and hyperVGeneration {generation}, but the definition has "
            f"architecture {have[0]} and hyperVGeneration {have[1]}: Partner Center refuses the image for this plan "
            f"image type ({MARKETPLACE_PLAN_SOURCE}). Fix: change hyperVGeneration/architecture (and the source VM), "
            "or planImageType to the plan image type the definition fits",
        )
    return kind


def _test_boot(node: _Node, fields: Mapping[str, Any]) -> TestBootSpec | None:
    """`validate: true` + `validation`: the test boot of each new version."""
    validate = node.boolean("validate", False)
    child = node.child("validation")
    if child is None:
        if validate:
            node.problem(
                "validation",
                "is required with validate: true: {resourceGroup: <existing group>, subnetId: <subnet ID>} for the "
                "throwaway VM (it gets no public IP)",
            )
        return None
    rg = child.string("resourceGroup", None, _RESOURCE_GROUP, "is not a valid resource group name", required=True)
    subnet = child.string(
        "subnetId",
        None,
        _SUBNET_ID,
        "is not a subnet ID (/subscriptions/<guid>/resourceGroups/<rg>/providers/Microsoft.Network/virtualNetworks/"
        "<vnet>/subnets/<subnet>)",
        required=True,
    )
    confidential = fields.get("security_type") in CONFIDENTIAL_SECURITY_TYPES
    default_size = TEST_BOOT_VM_SIZES["confidential" if confidential else str(fields.get("architecture") or "x64")]
    size = child.string("vmSize", default_size, _VM_SIZE, "is not a VM size like Standard_D2s_v5")
    timeout = child.positive("timeoutMinutes", TestBootSpec.timeout_minutes)
    username = child.string(
        "adminUsername", TestBootSpec.admin_username, _ADMIN_USERNAME, "is not a valid administrator name"
    )
    if username in _RESERVED_ADMIN_NAMES:
        child.problem("adminUsername", f"{username!r} is a name Azure refuses for a VM administrator; choose another")
        username = None
    child.done()
    if not validate:
        node.problem("validation", "is only used with validate: true (set it, or remove validation)")
        return None
    if rg is None or subnet is None or size is None or username is None:
        return None
    return TestBootSpec(rg, subnet, size, timeout, username)


def _purchase_plan(node: _Node) -> PurchasePlanSpec | None:
    child = node.child("purchasePlan")
    if child is None:
        return None
    name = child.string("name", None, required=True)
    publisher = child.string("publisher", None, required=True)
    product = child.string("product", None, required=True)
    child.done()
    if name is None or publisher is None or product is None:
        return None
    return PurchasePlanSpec(name, publisher, product)


def _disallowed_disk_types(node: _Node) -> tuple[str, ...]:
    types = node.strings("disallowedDiskTypes")
    for i, t in enumerate(types):
        if t not in DISK_TYPES:
            node.problems.append(f"{node.at('disallowedDiskTypes')}[{i}]: {t!r} is not one of {', '.join(DISK_TYPES)}")
    if len(set(types)) != len(types):
        node.problem("disallowedDiskTypes", "lists a disk type more than once")
    return tuple(dict.fromkeys(t for t in types if t in DISK_TYPES))


# -------------------------------------------------------------------------------------------------------- loader


def load(
    raw: Mapping[str, Any],
    secret_keys: Iterable[str] = (),
    today: date | None = None,
    plain_paths: Iterable[str] | None = None,
    strays: Mapping[str, str] | None = None,
    stack: str | None = None,
) -> StackSpec:
    """Validate the project's config (keys without the `image-gallery:` prefix) into a StackSpec.

    `secret_keys` names the top-level keys Pulumi holds encrypted; a secret field (privateKey, password,
    passphrase) under any other key is reported, because it would sit in plaintext in `Pulumi.<stack>.yaml`.
    `plain_paths` (see `plain_leaf_paths`), when the stack file could be read, checks each secret field on its
    own: Pulumi encrypts a whole top-level key as soon as one field is `secure:`, which would hide a plaintext key
    beside it. `stack` (the stack being loaded) refuses a version promoted from that same stack. `strays` (see
    `stray_keys`) maps keys set in a misspelt namespace to how they were written, so that a
    missing required key points at them. Raises ConfigError listing every problem.
    """
    problems: list[str] = []
    today = today or date.today()
    secret_set = set(secret_keys)
    strays = strays or {}
    values = {k: v for k, v in raw.items() if not (k in _BLANK_MEANS_UNSET and v == "")}
    shared = _Shared(frozenset(plain_paths) if plain_paths is not None else None, stack=stack)
    root = _Node(values, "", problems, secret_ok=False, shared=shared)
    shared.allow_unknown_regions = root.boolean("allowUnknownRegions", False)

    gallery = _gallery(root)
    shared.marketplace = gallery.marketplace if gallery is not None else True
    publisher = _publisher(root)
    azure = replace(_azure(root), allow_unknown_regions=shared.allow_unknown_regions)
    source_node = root.child("sourceVms")
    if source_node is not None:
        source_node.secret_ok = "sourceVms" in secret_set
    source_vms = _source_vms(source_node)
    definitions = [(n.path, _definition(n, source_vms, today)) for n in root.items("images", True)]
    images = [d for _, d in definitions if d]
    root.done()

    _check_uniqueness([(path, d) for path, d in definitions if d], problems)
    _check_source_reuse(images, problems)
    warnings = [stray_warning(full) for full in strays.values()] + shared.warnings
    for i, p in enumerate(problems):
        key = p.partition(":")[0]
        if key in strays and p.startswith(f"{key}: is required"):
            problems[i] = f"{p} ({stray_warning(strays[key])})"
    if problems:
        raise ConfigError(problems)
    assert gallery is not None
    sources = {k: v for k, v in source_vms.items() if v}
    return StackSpec(gallery, tuple(images), publisher, azure, sources, tuple(warnings))


def _check_uniqueness(images: list[tuple[str, ImageDefinitionSpec]], problems: list[str]) -> None:
    by_name: dict[str, str] = {}
    by_ident: dict[tuple[str, str, str], str] = {}
    for path, d in images:
        if d.name.lower() in by_name:
            problems.append(f"{path}.name: {d.name!r} is used by {by_name[d.name.lower()]} too")
        by_name.setdefault(d.name.lower(), path)
        ident = (d.publisher.lower(), d.offer.lower(), d.sku.lower())
        if ident in by_ident:
            problems.append(
                f"{path}.identifier: publisher/offer/sku {d.publisher}/{d.offer}/{d.sku} is already used by "
                f"{by_ident[ident]!r}; it must be unique within the gallery"
            )
        by_ident.setdefault(ident, d.name)


def _check_source_reuse(images: list[ImageDefinitionSpec], problems: list[str]) -> None:
    """A generalized VM can be captured many times, but only one chain may generalize it."""
    users: dict[str, list[str]] = {}
    for d in images:
        for v in d.versions:
            if d.os_state == "Generalized" and v.source_vm is not None:
                users.setdefault(v.source_vm.key, []).append(f"{d.name}/{v.version}")
    for key, who in users.items():
        if len(who) > 1:
            problems.append(
                f"sourceVms.{key}: generalized by more than one version ({', '.join(who)}); a VM is generalized "
                "once: capture it into one version, and build a new source VM for the next version"
            )


def parse_engine_values(values: Mapping[str, str], project: str = PROJECT) -> dict[str, Any]:
    """This project's keys (prefix removed), as the engine passes them: scalars stay strings, structured values
    arrive as JSON. Never raises: `load` reports unknown keys and malformed values with everything else."""
    raw: dict[str, Any] = {}
    for full, value in values.items():
        namespace, _, key = full.partition(":")
        if namespace != project:
            continue
        if key in SCALAR_KEYS or not isinstance(value, str):
            raw[key] = value
            continue
        try:
            raw[key] = json.loads(value)
        except json.JSONDecodeError:
            raw[key] = value  # reported by load: not a list / not an object / unknown key
    return raw


def _squash(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def stray_keys(keys: Iterable[str], project: str = PROJECT) -> dict[str, str]:
    """Keys set in a namespace close to ours (`image-galery:publisherRole`, `imagegallery:galleryName`): they do
    nothing, so the user's value is silently replaced by the default. Our key -> the full key as written."""
    strays: dict[str, str] = {}
    for full in keys:
        namespace, sep, key = full.partition(":")
        if not sep or namespace == project:
            continue
        close = _squash(namespace) == _squash(project)
        if close or difflib.SequenceMatcher(None, namespace.lower(), project).ratio() >= 0.85:
            strays.setdefault(key, full)
    return strays


def stray_warning(full: str, project: str = PROJECT) -> str:
    namespace, _, key = full.partition(":")
    return (
        f"{full} is set in namespace {namespace!r}, not {project!r}, so it does nothing; did you mean {project}:{key}?"
    )


def plain_leaf_paths(stack_config: Mapping[str, Any], project: str = PROJECT) -> frozenset[str]:
    """Key paths (`sourceVms.vm.ssh.privateKey`, `images[0].name`) of this project's values written in plaintext in
    a stack file's `config:` map; `{secure: ...}` leaves are not among them."""
    found: set[str] = set()

    def walk(value: Any, path: str) -> None:
        if isinstance(value, Mapping):
            if set(value) == {"secure"}:
                return
            for k, v in value.items():
                walk(v, f"{path}.{k}")
        elif isinstance(value, list):
            for i, v in enumerate(value):
                walk(v, f"{path}[{i}]")
        else:
            found.add(path)

    for full, value in stack_config.items():
        namespace, sep, key = str(full).partition(":")
        if (namespace if sep else project) == project:
            walk(value, key if sep else namespace)
    return frozenset(found)


def _stack_file_plain_paths(project: str, stack: str) -> frozenset[str] | None:
    """plain_leaf_paths of `Pulumi.<stack>.yaml` in the project directory; None when it cannot be read (config
    from elsewhere, e.g. `--config-file`): then the rule falls back to the top-level key."""
    try:
        doc = yaml.safe_load((Path.cwd() / f"Pulumi.{stack}.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return None
    stack_config = doc.get("config") if isinstance(doc, dict) else None
    return plain_leaf_paths(stack_config, project) if isinstance(stack_config, dict) else None


def from_pulumi() -> StackSpec:
    """Read this project's stack config from the Pulumi runtime (plaintext, then wrapped) and validate it."""
    import pulumi
    from pulumi.runtime import config as runtime_config

    project = pulumi.get_project()
    values = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    secret_keys = [k.partition(":")[2] for k in values if runtime_config.is_config_secret(k)]
    plain = _stack_file_plain_paths(project, pulumi.get_stack())
    raw = parse_engine_values(values, project)
    spec = load(raw, secret_keys, None, plain, stray_keys(values, project), stack=pulumi.get_stack())
    for warning in spec.warnings:
        pulumi.log.warn(warning)
    return spec


@dataclass(frozen=True)
class LoginInput:
    """One `azure-native:*` login setting of the stack (hooks/login.py LOGIN_KEYS), handed to the explicit dynamic
    provider hosts as an input: they receive only their own inputs in `configure()`, not the stack config."""

    key: str
    """The full stack key, e.g. `azure-native:clientId` (the input's name too, so both kinds of host read it alike)."""
    value: str = field(repr=False)
    secret: bool
    """Marked secret in the host's inputs (encrypted in the state): the key is a secret, or the stack holds it so."""


def login_from_pulumi() -> tuple[LoginInput, ...]:
    """The stack's `azure-native:*` login settings, for the explicit dynamic provider hosts."""
    from pulumi.runtime import config as runtime_config

    from hooks.login import LOGIN_KEYS, stack_key

    values = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    found: list[LoginInput] = []
    for key in LOGIN_KEYS:
        full = stack_key(key.name)
        value = values.get(full)
        if isinstance(value, str) and value != "":
            found.append(LoginInput(full, value, key.secret or runtime_config.is_config_secret(full)))
    return tuple(found)
