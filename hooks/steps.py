"""What the step flows do, in words: the steps of the generalization chain's two halves and of the test boot, in
the order they run, and the capture-time checks. `make plan` prints them for each resource, and
docs/checks-and-failures.md documents them.

They sit in this module, which imports nothing, so that the offline plan reads them without the Azure SDK,
paramiko or pywinrm (the modules that run the steps import those). Each list names the function that runs it:
keep the two in step.
"""

from __future__ import annotations

SAFETY_SNAPSHOT_STEP = (
    "safety snapshot (unless sourceVms.<key>.safetySnapshot is false): an incremental snapshot of the OS disk and of "
    "each data disk, tagged with the stack, the version and the source VM, in the VM's resource group (one an "
    "earlier run took is found by its name and reused, never taken twice; bounded)"
)
"""hooks.pipeline._take_safety_snapshots (hooks/arm/snapshots.py): the last step before anything irreversible."""

# hooks.pipeline.generalize_guest, Linux (hooks.linux.deprovision)
LINUX_GUEST_STEPS = (
    "read the VM's power and OS state through ARM (GET only); stop here if Azure reports it generalized",
    "capture-time checks against the image definition (same as in preview)",
    SAFETY_SNAPSHOT_STEP,
    "connect over SSH, host key verified, retrying with backoff while the VM boots (bounded)",
    "run hooks/scripts/deprovision.sh with sudo: cloud-init clean, waagent -force -deprovision+user, "
    "history clean-up, sync",
)
# hooks.pipeline.generalize_guest, Windows (hooks.windows.sysprep)
WINDOWS_GUEST_STEPS = (
    "read the VM's power and OS state through ARM (GET only); stop here if Azure reports it generalized",
    "capture-time checks against the image definition (same as in preview)",
    SAFETY_SNAPSHOT_STEP,
    "connect over WinRM, TLS certificate verified, retrying with backoff while the VM boots (bounded)",
    "read ImageState: sysprep already finished → do not run it again; still running → watch it; "
    "IMAGE_STATE_UNDEPLOYABLE → stop (the image must be reinstalled)",
    "wait for the Azure guest agent services to be Running (bounded)",
    "pre-checks: unsupported server roles (a failing role query too), BitLocker on every fixed drive, per-user AppX "
    "packages, pending reboot, CD/DVD-ROM driver enabled (cdrom Start=1), no removable-storage deny policy",
    "clean up: answer files from every place Windows Setup looks (HKLM\\System\\Setup!UnattendFile, "
    "Panther\\Unattend, Panther, System32\\Sysprep, %SYSTEMDRIVE%), the Panther directory, an earlier "
    "Sysprep_succeeded.tag; each removal listed",
    "start Sysprep.exe /oobe /generalize /quiet /quit as the admin user, exactly once",
    "watch until sysprep has finished (IMAGE_STATE_GENERALIZE_RESEAL_TO_OOBE and Sysprep.exe gone or "
    "Sysprep_succeeded.tag written), reconnecting after drops and refused logons (bounded); fail fast with the "
    "Panther log tail if sysprep exits in any other state",
)
# hooks.pipeline.generalize_vm, Generalized definitions
VM_STEPS_GENERALIZED = (
    "wait until the VM has stopped if it is shutting down (bounded)",
    "deallocate (POST .../deallocate, polled to Succeeded, bounded)",
    "mark generalized (POST .../generalize)",
    "verify the instance view shows PowerState/deallocated and OSState/generalized",
)
# hooks.pipeline.generalize_vm, Specialized definitions (nothing generalizes the VM)
VM_STEPS_SPECIALIZED = (
    "wait until the VM has stopped if it is shutting down (bounded)",
    "deallocate (POST .../deallocate, polled to Succeeded, bounded) unless sourceVms.<key>.deallocate is false",
)

# The Marketplace's certification rules that the capture-time checks apply (hooks.preflight cites them too).
MARKETPLACE_VHD_SOURCE = (
    "https://learn.microsoft.com/partner-center/marketplace-offers/azure-vm-certification-faq#vhd-specifications"
)
MARKETPLACE_DATA_DISK_SOURCE = (
    "https://learn.microsoft.com/partner-center/marketplace-offers/azure-vm-plan-technical-configuration"
)
MARKETPLACE_MAX_DATA_DISKS = 16
MARKETPLACE_MAX_DATA_DISK_GB = 1023
"""MARKETPLACE_DATA_DISK_SOURCE's limits: here, where both the capture-time checks and the config (a declared
dataDiskLuns) read them without importing the checks."""

# hooks.preflight.run_checks, in the order it reports problems (`pulumi preview`, and the chain before any step).
CAPTURE_CHECKS: tuple[str, ...] = (
    "the source VM exists and the identity can read it (GET the VM with its instance view, and its OS disk)",
    "osType equals the VM's OS type",
    "hyperVGeneration equals the VM's Hyper-V generation",
    "securityType fits the VM: TrustedLaunch for a Trusted Launch VM, ConfidentialVM for a confidential VM, "
    "Standard for a standard VM; *Supported security types never take a VM source",
    "architecture equals the VM's (x64 or Arm64, from its OS disk)",
    "the VM's region is one of the version's targetRegions",
    "the VM's state allows the chain: running or already generalized (osState Generalized), "
    "not generalized (osState Specialized)",
    "the version does not already exist in Azure with another source (GET the version, once the gallery ID is known)",
    "with publisherTenantId: the gallery's subscription is in that tenant (GET the subscription)",
    "features: the VM fits what the definition claims (an NVMe-only definition needs an NVMe VM, an NVMe VM needs "
    "NVMe among diskControllerTypes; acceleratedNetwork and hibernate need an OS disk that supports them)",
    "marketplace (unless marketplace: false): the OS disk is 1-1023 GB (Linux) or 30-250 GB (Windows) "
    f"({MARKETPLACE_VHD_SOURCE})",
    f"marketplace: at most {MARKETPLACE_MAX_DATA_DISKS} data disks, each at most {MARKETPLACE_MAX_DATA_DISK_GB} GB "
    f"({MARKETPLACE_DATA_DISK_SOURCE}); a warning: every "
    "image of a plan needs the same number of data disks",
    "data disks: Azure captures every data disk of the VM with its LUN (listed in the preview's log); with "
    "dataDiskLuns, the VM's LUNs must be exactly those; a target region's diskEncryptionSetId needs dataDiskLuns "
    "when the VM has data disks (each LUN gets that region's disk encryption set)",
)

TEST_BOOT_TAG = "image-gallery-test-boot"
"""Tag on everything a test boot creates; its value names the version (TestBootRequest.tag_value)."""

# hooks.version_boot.boot_and_delete
TEST_BOOT_STEPS = (
    "remove leftovers of an earlier, interrupted test boot of this version (VMs, NICs and disks tagged "
    f"{TEST_BOOT_TAG})",
    "read the version (its data disk LUNs) and the subnet's virtual network (it must be in the first target region)",
    "create a NIC on validation.subnetId, without a public IP (tagged)",
    "create the throwaway VM from the version in the first target region (tagged; OS and data disks deleted with "
    "it; a Generalized image gets an administrator password generated for this run only, never stored or logged)",
    "wait (bounded by validation.timeoutMinutes) until provisioning succeeded and the guest agent reports Ready; "
    "a failed provisioning fails this step with Azure's error",
    "delete the VM, its disks and the NIC, whether the boot succeeded or not",
)


def safety_snapshot_plan(vm_id: object, plan: object) -> str:
    """What the guest half of one version will snapshot, for `make plan` (its `safety_snapshot` input)."""
    if not isinstance(plan, dict):
        return f"none: sourceVms.<key>.safetySnapshot is false; nothing can give {vm_id} its disks back"
    days = plan.get("retention_days")
    kept = "deleted with the version's chain" if days == 0 else f"kept {days} days, then deleted with the chain"
    return (
        f"an incremental snapshot of the OS disk and of each data disk of {vm_id}, named <disk>-safety-"
        f"{str(plan.get('version')).replace('/', '-')}, tagged stack {plan.get('stack')}, version "
        f"{plan.get('version')} and the source VM; {kept}"
    )
