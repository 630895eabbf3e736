"""Capture-time checks: compare a source VM with the image definition and version it is captured into, in
`pulumi preview` and again right before anything irreversible.

Azure enforces these rules only when the image version is created, which is after the guest was sysprepped or
deprovisioned and the VM marked generalized: by then the VM can never be started again (azure-image-pipeline.md,
section 3). Each rule is a small pure function over facts read through ARM; `run_checks` reads what they need
(GET only, bounded to a few seconds, shared between versions that use the same VM) and returns every mismatch
with the config key to change. No Pulumi imports: the providers turn the results into CheckFailures (preview) or
a CaptureMismatch (create, `require_match`).

One module per job: `target` (what is compared, and a `Mismatch`), `rules` (the pure rules), `reads` (bounded,
shared reads), `checks` (running them), `outcome` (what problems mean: the unreachable policy and the create
path's error, shared with the promotion checks). Every public name is re-exported here.
"""

from __future__ import annotations

from hooks.preflight.checks import require_match, run_checks
from hooks.preflight.outcome import apply_unreachable_policy, describe, raise_problems
from hooks.preflight.reads import (
    CACHE_TTL,
    CALL_TIMEOUT,
    CHECK_BUDGET,
    MAX_RETRIES,
    REQUEST_TIMEOUT,
    SHARED_READS,
    CheckReader,
    ReadCache,
    own_copy,
)
from hooks.preflight.rules import (
    FEATURE_RULES,
    MARKETPLACE_MAX_DATA_DISK_GB,
    MARKETPLACE_MAX_DATA_DISKS,
    MARKETPLACE_OS_DISK_GB,
    MARKETPLACE_PATH,
    SUPPORTED_ONLY_SECURITY_TYPES,
    VM_RULES,
    check_accelerated_network,
    check_architecture,
    check_data_disk_luns,
    check_disk_controller,
    check_existing_version,
    check_hibernate,
    check_hyper_v_generation,
    check_marketplace_data_disks,
    check_marketplace_os_disk,
    check_os_type,
    check_publisher_tenant,
    check_region,
    check_regions_exist,
    check_security_type,
    check_state,
    compare_vm,
    data_disk_note,
    data_disks_line,
    region_key,
    security_type_problem,
)
from hooks.preflight.target import (
    ON_ARM_UNREACHABLE,
    ON_ARM_UNREACHABLE_PATH,
    PUBLISHER_TENANT_PATH,
    CaptureTarget,
    Mismatch,
)

__all__ = [
    "CACHE_TTL",
    "CALL_TIMEOUT",
    "CHECK_BUDGET",
    "FEATURE_RULES",
    "MARKETPLACE_MAX_DATA_DISKS",
    "MARKETPLACE_MAX_DATA_DISK_GB",
    "MARKETPLACE_OS_DISK_GB",
    "MARKETPLACE_PATH",
    "MAX_RETRIES",
    "ON_ARM_UNREACHABLE",
    "ON_ARM_UNREACHABLE_PATH",
    "PUBLISHER_TENANT_PATH",
    "REQUEST_TIMEOUT",
    "SHARED_READS",
    "SUPPORTED_ONLY_SECURITY_TYPES",
    "VM_RULES",
    "CaptureTarget",
    "CheckReader",
    "Mismatch",
    "ReadCache",
    "apply_unreachable_policy",
    "check_accelerated_network",
    "check_architecture",
    "check_data_disk_luns",
    "check_disk_controller",
    "check_existing_version",
    "check_hibernate",
    "check_hyper_v_generation",
    "check_marketplace_data_disks",
    "check_marketplace_os_disk",
    "check_os_type",
    "check_publisher_tenant",
    "check_region",
    "check_regions_exist",
    "check_security_type",
    "check_state",
    "compare_vm",
    "data_disk_note",
    "data_disks_line",
    "describe",
    "own_copy",
    "raise_problems",
    "region_key",
    "require_match",
    "run_checks",
    "security_type_problem",
]
