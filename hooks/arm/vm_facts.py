"""What Azure checks only at capture time, read up front from a VM's model and its OS disk (read-only): OS type,
Hyper-V generation, security type, architecture, region and the disk layout (hooks/preflight compares them)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from azure.core.credentials import TokenCredential

from hooks.arm.budget import Budget
from hooks.arm.errors import Call, arm_errors
from hooks.arm.session import compute_client
from hooks.arm.spelling import canonical
from hooks.arm.vm import VmStatus
from hooks.errors import ArmError
from hooks.log import Log
from hooks.targets import ArmSettings, VmRef

PERMISSION_VM_READ = "Microsoft.Compute/virtualMachines/read"
PERMISSION_DISK_READ = "Microsoft.Compute/disks/read"

_DISK_ID = re.compile(
    r"^/subscriptions/[^/]+/resourceGroups/(?P<rg>[^/]+)/providers/Microsoft\.Compute/disks/(?P<name>[^/]+)$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class VmFacts:
    """What Azure checks only at capture time, read up front from the VM model and its OS disk (read-only)."""

    location: str
    os_type: str
    """Linux | Windows (storageProfile.osDisk.osType)."""
    hyper_v_generation: str
    """V1 | V2: the instance view's hyperVGeneration; if absent, the OS disk's; if both are absent, V1 (Azure's
    default for disks created before the property existed)."""
    security_type: str
    """Standard | TrustedLaunch | ConfidentialVM: securityProfile.securityType; absent means Standard."""
    architecture: str
    """x64 | Arm64: the OS disk's supportedCapabilities.architecture (the image reference does not carry it);
    absent, or an unmanaged OS disk, means x64 (Azure's default)."""
    vm_id: str
    """The VM's unique id (properties.vmId): tells this VM apart from a later one created under the same name."""
    status: VmStatus | None = field(default=None, compare=False)
    """The instance view read with the model (power state, OSState/generalized); None only when built by hand."""
    os_disk_size_gb: int | None = field(default=None, compare=False)
    """storageProfile.osDisk.diskSizeGB, else the OS disk's diskSizeGB; None when neither reports it."""
    data_disks: tuple[DataDiskFacts, ...] = field(default=(), compare=False)
    """storageProfile.dataDisks, in LUN order."""
    disk_controller_type: str | None = field(default=None, compare=False)
    """SCSI | NVMe: storageProfile.diskControllerType; None when Azure reports none (SCSI, its default)."""
    accelerated_network: bool | None = field(default=None, compare=False)
    """The OS disk's supportedCapabilities.acceleratedNetwork; None when not reported."""
    supports_hibernation: bool | None = field(default=None, compare=False)
    """The OS disk's supportsHibernation; None when not reported."""


@dataclass(frozen=True)
class DataDiskFacts:
    """A data disk of the VM, as the Marketplace rules look at it (read-only)."""

    lun: int
    size_gb: int | None
    """diskSizeGB of the VM model's entry; None when not reported."""


def get_facts(settings: ArmSettings, vm: VmRef, log: Log, credential: TokenCredential | None = None) -> VmFacts:
    """Read the VM model (with its instance view) and, for a managed OS disk, the disk (read-only)."""
    call = Call(settings, "read", str(vm), PERMISSION_VM_READ, vm)
    budget = Budget(settings, f"read {vm}", log)
    with compute_client(settings, vm.subscription_id, credential) as client:
        with arm_errors(call, budget):
            model = client.virtual_machines.get(vm.resource_group, vm.name, expand="instanceView", **budget.options())
        props = model.properties
        os_disk = props.storage_profile.os_disk if props and props.storage_profile else None
        if props is None or os_disk is None:
            raise ArmError(f"ARM returned {vm} without a storage profile; cannot tell its OS. Run again.")

        disk_props = None
        disk_id = os_disk.managed_disk.id if os_disk.managed_disk else None
        match = _DISK_ID.match(disk_id or "")
        if disk_id and match:
            disk_call = Call(settings, "read the OS disk of", f"{vm} ({disk_id})", PERMISSION_DISK_READ)
            disk_budget = Budget(settings, f"read the OS disk of {vm}", log)
            with arm_errors(disk_call, disk_budget):
                disk_props = client.disks.get(match["rg"], match["name"], **disk_budget.options()).properties

    os_type = canonical(os_disk.os_type) or (canonical(disk_props.os_type) if disk_props else None)
    if os_type is None:
        raise ArmError(f"ARM reports no osType for the OS disk of {vm}; cannot match it to an image definition.")

    hyper_v = canonical(props.instance_view.hyper_v_generation) if props.instance_view else None
    if hyper_v is None and disk_props is not None:
        hyper_v = canonical(disk_props.hyper_v_generation)
    if hyper_v is None:
        log.info(f"{vm}: no hyperVGeneration reported; assuming V1 (Azure's default)")
        hyper_v = "V1"

    security = canonical(props.security_profile.security_type) if props.security_profile else None

    arch = None
    if disk_props is not None and disk_props.supported_capabilities is not None:
        arch = canonical(disk_props.supported_capabilities.architecture)
    if arch is None:
        log.info(f"{vm}: the OS disk reports no architecture; assuming x64 (Azure's default)")

    facts = VmFacts(
        location=model.location,
        os_type=os_type,
        hyper_v_generation=hyper_v,
        security_type=security or "Standard",
        architecture=arch or "x64",
        vm_id=props.vm_id or "",
        status=VmStatus.from_instance_view(props.instance_view),
        **_disk_facts(props.storage_profile, disk_props),
    )
    log.info(
        f"{vm}: {facts.os_type}, {facts.hyper_v_generation}, {facts.security_type}, {facts.architecture}, "
        f"in {facts.location}"
    )
    return facts


def _disk_facts(storage: Any, disk_props: Any) -> dict[str, Any]:
    """The disk layout the Marketplace rules and the definition's features are checked against (hooks/preflight)."""
    os_size = storage.os_disk.disk_size_gb or (disk_props.disk_size_gb if disk_props is not None else None)
    caps = disk_props.supported_capabilities if disk_props is not None else None
    controller = getattr(storage, "disk_controller_type", None)
    return {
        "os_disk_size_gb": os_size,
        "data_disks": tuple(
            sorted((DataDiskFacts(d.lun, d.disk_size_gb) for d in storage.data_disks or ()), key=lambda d: d.lun)
        ),
        "disk_controller_type": canonical(controller),
        "accelerated_network": getattr(caps, "accelerated_network", None) if caps is not None else None,
        "supports_hibernation": getattr(disk_props, "supports_hibernation", None) if disk_props is not None else None,
    }
