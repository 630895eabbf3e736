"""The ARM side of the pipeline: read a VM's state and facts, deallocate it, mark it generalized, and read the
gallery and subscription resources a capture depends on. Plain functions over azure-mgmt-compute, usable without
Pulumi; every call bounded, every expected failure one of the `hooks.errors` types.

One module per job:
- `budget`: how long a call may take (the operation's bound, retries, throttling, long-running-operation polls);
- `errors`: Azure's errors translated into `hooks.errors` types, never carrying a token;
- `session`: one login and one connection pool per process and endpoint, and the raw `request()`;
- `operations`: raw requests for one subscription and the asynchronous operations they start (`ArmRequests`);
- `sdk_guard`: the azure-mgmt-compute model guard, put in place by the first session;
- `vm`: a VM's power state and operations; `vm_facts`: what a capture checks of a VM;
- `gallery`: image versions, their replication, image definitions; `subscription`: tenant, locations, providers;
- `snapshots`: the safety snapshots of a source VM's disks before the guest step (hooks/safety_snapshots.py names them);
- `spelling`: Azure's spelling of compared values.

`from hooks import arm; arm.get_status(...)` is how callers use it: every public name is re-exported here.
"""

from __future__ import annotations

from hooks.arm.budget import WaitEnded
from hooks.arm.errors import (
    Call,
    LoginRefused,
    arm_errors,
    azure_error_detail,
    quote_azure,
    scrub_tokens,
    tenant_of_refusal,
    translate,
)
from hooks.arm.gallery import (
    PERMISSION_IMAGE_DEFINITION_READ,
    PERMISSION_IMAGE_VERSION_READ,
    ImageDefinitionFacts,
    ImageVersionFacts,
    RegionReplication,
    ReplicationStatus,
    VersionSourceFacts,
    get_image_definition,
    get_image_version,
    get_replication_status,
    get_version_source,
)
from hooks.arm.operations import ArmRequests
from hooks.arm.sdk_guard import guard_compute_models
from hooks.arm.session import (
    ArmSession,
    SharedLogin,
    TenantLogin,
    access_token,
    close_sessions,
    ensure_login,
    login_of,
    request,
    session,
)
from hooks.arm.snapshots import SNAPSHOTS_API_VERSION, delete_safety_snapshots, take_safety_snapshots
from hooks.arm.subscription import (
    LOCATIONS_API_VERSION,
    PERMISSION_PROVIDER_READ,
    PERMISSION_SUBSCRIPTION_READ,
    PROVIDERS_API_VERSION,
    SUBSCRIPTIONS_API_VERSION,
    get_subscription_tenant,
    list_locations,
    provider_registration_state,
    read_subscription_tenant,
)
from hooks.arm.vm import (
    PERMISSION_VM_DEALLOCATE,
    PERMISSION_VM_GENERALIZE,
    PERMISSION_VM_INSTANCE_VIEW,
    POST_SENDS,
    VmStatus,
    deallocate,
    generalize,
    get_status,
    verify_generalized,
    wait_until_stopped,
)
from hooks.arm.vm_facts import PERMISSION_DISK_READ, PERMISSION_VM_READ, DataDiskFacts, VmFacts, get_facts

__all__ = [
    "LOCATIONS_API_VERSION",
    "PERMISSION_DISK_READ",
    "PERMISSION_IMAGE_DEFINITION_READ",
    "PERMISSION_IMAGE_VERSION_READ",
    "PERMISSION_PROVIDER_READ",
    "PERMISSION_SUBSCRIPTION_READ",
    "PERMISSION_VM_DEALLOCATE",
    "PERMISSION_VM_GENERALIZE",
    "PERMISSION_VM_INSTANCE_VIEW",
    "PERMISSION_VM_READ",
    "POST_SENDS",
    "PROVIDERS_API_VERSION",
    "SNAPSHOTS_API_VERSION",
    "SUBSCRIPTIONS_API_VERSION",
    "ArmRequests",
    "ArmSession",
    "Call",
    "DataDiskFacts",
    "ImageDefinitionFacts",
    "ImageVersionFacts",
    "LoginRefused",
    "RegionReplication",
    "ReplicationStatus",
    "SharedLogin",
    "TenantLogin",
    "VersionSourceFacts",
    "VmFacts",
    "VmStatus",
    "WaitEnded",
    "access_token",
    "arm_errors",
    "azure_error_detail",
    "close_sessions",
    "deallocate",
    "delete_safety_snapshots",
    "ensure_login",
    "generalize",
    "get_facts",
    "get_image_definition",
    "get_image_version",
    "get_replication_status",
    "get_status",
    "get_subscription_tenant",
    "get_version_source",
    "guard_compute_models",
    "list_locations",
    "login_of",
    "provider_registration_state",
    "quote_azure",
    "read_subscription_tenant",
    "request",
    "scrub_tokens",
    "session",
    "take_safety_snapshots",
    "tenant_of_refusal",
    "translate",
    "verify_generalized",
    "wait_until_stopped",
]
