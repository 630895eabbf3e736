"""The stack config's constants: its keys, the values Azure accepts, Azure's naming rules, and the defaults the
specs and the readers share.

The lists of a Windows guest's settings (WinRM transports, sysprep modes, checks and flags) and onArmUnreachable's
values live in hooks.targets, the lowest layer that needs them; the config uses them from there.
"""

from __future__ import annotations

import re

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
STRUCTURED_KEYS = ("galleryTags", "images", "sourceVms", "partnerCenterPrincipalIds")
MAX_PARALLEL_HOSTS = 64
"""Each host is one Python process (~60 MB): more than this is a mistake, not a speed-up."""
TOP_LEVEL_KEYS = SCALAR_KEYS + STRUCTURED_KEYS
# Optional string keys whose Pulumi.yaml default is "" (a declared key needs a default to be optional).
BLANK_MEANS_UNSET = ("galleryDescription", "publisherPrincipalId", "publisherTenantId", "armAudience")

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
PARTNER_CENTER_PRINCIPALS = {
    "resourceProvider": "Microsoft Partner Center Resource Provider",
    "computeImageRegistry": "Compute Image Registry",
}
"""Partner Center's first-party service principals (config key in `partnerCenterPrincipalIds` → display name); each
gets Compute Gallery Image Reader on the gallery. Microsoft publishes their display names, not their IDs: its own
snippet finds them by name (`az ad sp list --display-name "Microsoft Partner Center Resource Provider" --query
'[].id'`, https://aka.ms/ComputeGalleryPermissions), so the checks do the same in Microsoft Graph
(docs/partner-center.md)."""
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
CONFIDENTIAL_VM_ENCRYPTION_TYPES = ("EncryptedVMGuestStateOnlyWithPmk", "EncryptedWithPmk", "EncryptedWithCmk")
"""`confidentialVmEncryptionType` of a version (targetRegions[].encryption.osDiskImage.securityProfile)."""
CONFIDENTIAL_SECURITY_TYPES = ("ConfidentialVM", "ConfidentialVmSupported", "TrustedLaunchAndConfidentialVmSupported")
"""Definition security types a confidential VM encryption type applies to."""
PLAN_IMAGE_TYPES = {"x64Gen1": ("x64", "V1"), "x64Gen2": ("x64", "V2"), "arm64Gen2": ("Arm64", "V2")}
"""`planImageType`: the image type of the Marketplace plan's technical configuration, spelled as the Product
Ingestion API spells `imageType` (lowercase first letter; `vmImageVersions[].vmImages[].imageType` in
https://learn.microsoft.com/partner-center/marketplace-offers/product-ingestion-api-vm) → (architecture,
hyperVGeneration) the definition must have."""
OLD_PLAN_IMAGE_TYPES = {"Arm64Gen2": "arm64Gen2"}
"""Spellings `planImageType` accepted before it followed the ingestion API: still read, with a warning."""
DEFAULT_END_OF_LIFE_MONTHS = 6
"""The Azure CLI's default end of life of a new image version (and deletion blocked before it)."""
TEST_BOOT_VM_SIZES = {"x64": "Standard_D2s_v5", "Arm64": "Standard_D2ps_v5", "confidential": "Standard_DC2as_v5"}
"""Default `validation.vmSize` of the test boot, by architecture (confidential definitions need a DC size)."""

# Naming rules: https://learn.microsoft.com/azure/azure-resource-manager/management/resource-name-rules
DEFINITION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,78}[A-Za-z0-9]$|^[A-Za-z0-9]$")
# resourcegroups: 1-90, underscores, hyphens, periods, parentheses, letters or digits; can't end with a period.
RESOURCE_GROUP_NAME = re.compile(r"^[-\w._()]{0,89}[-\w_()]$")
HOST_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$|^\[?[0-9a-fA-F:]+\]?$")
"""A host name or an IP address (an endpoint's host, a source VM's)."""
SUBNET_ID = re.compile(
    r"^/subscriptions/(?P<sub>[0-9a-fA-F-]{36})/resourceGroups/(?P<rg>[-\w._()]{1,90})/providers/Microsoft\.Network"
    r"/virtualNetworks/(?P<vnet>[-\w.]{2,64})/subnets/(?P<subnet>[-\w.]{1,80})$",
    re.IGNORECASE,
)
RESERVED_ADMIN_NAMES = frozenset(
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
AZURE_NATIVE = "azure-native"
AZURE_NATIVE_SETTINGS = {
    # pulumi_azure_native 3.29.0 (the pinned provider), config/vars.py: every provider setting and its kind.
    "auxiliaryTenantIds": "tenants",
    "clientCertificatePassword": "text",
    "clientCertificatePath": "path",
    "clientId": "application",
    "clientSecret": "text",
    "disableInstanceDiscovery": "boolean",
    "disablePulumiPartnerId": "boolean",
    "environment": "cloud",
    "location": "region",
    "metadataHost": "host",
    "msiEndpoint": "url",
    "oidcRequestToken": "text",
    "oidcRequestUrl": "url",
    "oidcToken": "text",
    "oidcTokenFilePath": "path",
    "partnerId": "guid",
    "subscriptionId": "subscription",
    "tenantId": "tenant",
    "useDefaultAzureCredential": "boolean",
    "useMsi": "boolean",
    "useOidc": "boolean",
    # Read by the VM steps only (hooks/login.py): the audience of GitHub's ID token.
    "oidcAudience": "audience",
}
"""The `azure-native:*` stack settings azure-native and the VM steps read, by kind (config.azure_login's rules);
which of them are secrets is hooks.login.SECRET_KEYS."""
