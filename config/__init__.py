"""Stack configuration -> typed, immutable specs.

Layer 1 of 3: pure Python, no Pulumi resources. `load(raw)` validates everything at once and raises one
ConfigError listing every problem with its key path (`images[0].versions[1].version: ...`). Components receive
these specs, never `pulumi.Config`.

One module per job:
- `constants`: the config's keys, the values Azure accepts, naming rules and shared defaults;
- `specs`: the specs themselves (a source VM's guest settings are hooks.targets' `SshTarget`, `WinRmTarget` and
  `SysprepOptions`), and `Secret` (private keys, passphrases and passwords are wrapped as soon as they are read,
  so they can be printed or logged without leaking them);
- `reader`: `Node`, a mapping of the raw config with its key path, which records problems instead of raising;
- `gallery`, `source_vms`, `images`, `versions`: one reader per section of the stack file;
- `azure_login`: the stack's `azure-native:*` login settings; `vm_sizes`: what a VM size's name says (the test
  boot's size against the definition);
- `loader`: `load`, the sections in order and the rules across them;
- `stack_yaml`: a stack file's YAML as the Pulumi CLI reads it (go-yaml v3's scalars) and hands it over;
- `engine_values`: the config as the engine and the stack file hand it over;
- `pulumi_adapter`: the only module that touches Pulumi (`from_pulumi`, `login_from_pulumi`).

This package re-exports what the rest of the project uses, so `import config` is all a caller needs.
"""

from config.constants import (
    ARCHITECTURES,
    CONFIDENTIAL_SECURITY_TYPES,
    CONFIDENTIAL_VM_ENCRYPTION_TYPES,
    DEFAULT_END_OF_LIFE_MONTHS,
    DISK_CONTROLLER_TYPES,
    DISK_TYPES,
    HYPER_V_GENERATIONS,
    MARKETPLACE_PLAN_SOURCE,
    MAX_PARALLEL_HOSTS,
    OLD_PLAN_IMAGE_TYPES,
    OS_STATES,
    OS_TYPES,
    PARTNER_CENTER_NAMESPACE,
    PARTNER_CENTER_PRINCIPALS,
    PLAN_IMAGE_TYPES,
    PRINCIPAL_TYPES,
    PROJECT,
    PUBLIC_CLOUD_GRAPH,
    PUBLISHER_ACCESS,
    PUBLISHER_ROLES,
    REPLICATION_MODES,
    SCALAR_KEYS,
    SECURITY_TYPES,
    STORAGE_ACCOUNT_TYPES,
    STRUCTURED_KEYS,
    TEST_BOOT_VM_SIZES,
    TOP_LEVEL_KEYS,
)
from config.engine_values import (
    declared_type_problems,
    parse_engine_values,
    plain_leaf_paths,
    stray_keys,
    stray_warning,
)
from config.loader import load
from config.pulumi_adapter import LoginInput, from_pulumi, login_from_pulumi
from config.specs import (
    AzureSpec,
    GallerySpec,
    ImageDefinitionSpec,
    ImageVersionSpec,
    PartnerCenterPrincipalSpec,
    PublisherSpec,
    PurchasePlanSpec,
    Secret,
    SourceVersionSpec,
    SourceVmSpec,
    StackSpec,
    TargetRegionSpec,
    TestBootSpec,
)
from hooks.targets import (
    ON_ARM_UNREACHABLE,
    SYSPREP_CHECKS,
    SYSPREP_EXTRA_ARGS_MAX_LENGTH,
    SYSPREP_MODES,
    WINRM_TRANSPORTS,
)

__all__ = [
    "ARCHITECTURES",
    "CONFIDENTIAL_SECURITY_TYPES",
    "CONFIDENTIAL_VM_ENCRYPTION_TYPES",
    "DEFAULT_END_OF_LIFE_MONTHS",
    "DISK_CONTROLLER_TYPES",
    "DISK_TYPES",
    "HYPER_V_GENERATIONS",
    "MARKETPLACE_PLAN_SOURCE",
    "MAX_PARALLEL_HOSTS",
    "OLD_PLAN_IMAGE_TYPES",
    "ON_ARM_UNREACHABLE",
    "OS_STATES",
    "OS_TYPES",
    "PARTNER_CENTER_NAMESPACE",
    "PARTNER_CENTER_PRINCIPALS",
    "PLAN_IMAGE_TYPES",
    "PRINCIPAL_TYPES",
    "PROJECT",
    "PUBLIC_CLOUD_GRAPH",
    "PUBLISHER_ACCESS",
    "PUBLISHER_ROLES",
    "REPLICATION_MODES",
    "SCALAR_KEYS",
    "SECURITY_TYPES",
    "STORAGE_ACCOUNT_TYPES",
    "STRUCTURED_KEYS",
    "SYSPREP_CHECKS",
    "SYSPREP_EXTRA_ARGS_MAX_LENGTH",
    "SYSPREP_MODES",
    "TEST_BOOT_VM_SIZES",
    "TOP_LEVEL_KEYS",
    "WINRM_TRANSPORTS",
    "AzureSpec",
    "GallerySpec",
    "ImageDefinitionSpec",
    "ImageVersionSpec",
    "LoginInput",
    "PartnerCenterPrincipalSpec",
    "PublisherSpec",
    "PurchasePlanSpec",
    "Secret",
    "SourceVersionSpec",
    "SourceVmSpec",
    "StackSpec",
    "TargetRegionSpec",
    "TestBootSpec",
    "declared_type_problems",
    "from_pulumi",
    "load",
    "login_from_pulumi",
    "parse_engine_values",
    "plain_leaf_paths",
    "stray_keys",
    "stray_warning",
]
