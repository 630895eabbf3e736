"""The capture-time rules: small pure functions over a VM's facts (read through ARM) and the configured capture,
each returning a `Mismatch` that names the config key to change and the fix, or None.

Azure enforces these rules only when the image version is created, which is after the guest was sysprepped or
deprovisioned and the VM marked generalized: by then the VM can never be started again (azure-image-pipeline.md,
section 3)."""

from __future__ import annotations

import difflib
from collections.abc import Callable

from hooks.arm import ImageVersionFacts, VmFacts, VmStatus
from hooks.pipeline import RUNNABLE_POWER_STATES
from hooks.preflight.target import PUBLISHER_TENANT_PATH, CaptureTarget, Mismatch
from hooks.steps import MARKETPLACE_DATA_DISK_SOURCE, MARKETPLACE_VHD_SOURCE
from hooks.steps import MARKETPLACE_MAX_DATA_DISK_GB as MARKETPLACE_MAX_DATA_DISK_GB  # re-exported (hooks.preflight)
from hooks.steps import MARKETPLACE_MAX_DATA_DISKS as MARKETPLACE_MAX_DATA_DISKS
from hooks.targets import GalleryRef, VmRef

# Marketplace certification rules (docs/partner-center.md).
MARKETPLACE_OS_DISK_GB = {"Linux": (1, 1023), "Windows": (30, 250)}
MARKETPLACE_PATH = "marketplace"

SUPPORTED_ONLY_SECURITY_TYPES = frozenset(
    {"TrustedLaunchSupported", "ConfidentialVmSupported", "TrustedLaunchAndConfidentialVmSupported"}
)
"""Definition security types that accept VHD, managed image and image version sources, never a VM."""


def check_os_type(vm: VmRef, facts: VmFacts, t: CaptureTarget) -> Mismatch | None:
    if facts.os_type.lower() == t.os_type.lower():
        return None
    return Mismatch(
        f"{t.definition_path}.osType",
        f"Azure reports that {vm} runs {facts.os_type}, but {t.definition_label} has osType {t.os_type}; Azure "
        f"would refuse the capture. Fix: point {t.version_path}.sourceVm at a {t.os_type} VM, or capture this VM "
        f"into a {facts.os_type} definition.",
    )


def check_hyper_v_generation(vm: VmRef, facts: VmFacts, t: CaptureTarget) -> Mismatch | None:
    if facts.hyper_v_generation.upper() == t.hyper_v_generation.upper():
        return None
    return Mismatch(
        f"{t.definition_path}.hyperVGeneration",
        f"Azure reports that {vm} is Hyper-V generation {facts.hyper_v_generation}, but {t.definition_label} has "
        f'hyperVGeneration {t.hyper_v_generation}; Azure would refuse the capture ("different Hypervisor '
        f'generation"). Fix: set {t.definition_path}.hyperVGeneration to {facts.hyper_v_generation} (Azure does '
        f"not change the generation of an existing definition: use a new definition name if it exists), or use a "
        f"generation {t.hyper_v_generation} source VM.",
    )


def security_type_problem(vm_security: str, definition_security: str) -> str | None:
    """Why a VM with this security type cannot be captured into a definition with that one; None if it can."""
    if definition_security in SUPPORTED_ONLY_SECURITY_TYPES:
        return (
            f"a {definition_security} definition accepts only VHD, managed image and image version sources, never a "
            'VM ("Currently only Vhd Blob, User Image and Gallery Image Version sources are supported")'
        )
    if vm_security.lower() == definition_security.lower():
        return None
    if vm_security == "TrustedLaunch":
        return "a Trusted Launch VM can only be captured into a TrustedLaunch definition"
    if vm_security == "ConfidentialVM":
        return "a confidential VM can only be captured into a ConfidentialVM definition"
    if definition_security == "TrustedLaunch":
        return "a TrustedLaunch definition refuses a standard (non-Trusted-Launch) VM"
    return f"a {definition_security} definition refuses a {vm_security} VM"


def check_security_type(vm: VmRef, facts: VmFacts, t: CaptureTarget) -> Mismatch | None:
    problem = security_type_problem(facts.security_type, t.security_type)
    if problem is None:
        return None
    fix = f"set {t.definition_path}.securityType to {facts.security_type}"
    if facts.security_type == "Standard" and t.security_type == "TrustedLaunch":
        fix += ", or upgrade the VM to Trusted Launch first (possible for generation V2 VMs)"
    return Mismatch(
        f"{t.definition_path}.securityType",
        f"Azure reports that {vm} has security type {facts.security_type}, but {t.definition_label} has "
        f"securityType {t.security_type}: {problem}. Fix: {fix}.",
    )


def check_architecture(vm: VmRef, facts: VmFacts, t: CaptureTarget) -> Mismatch | None:
    if facts.architecture.lower() == t.architecture.lower():
        return None
    return Mismatch(
        f"{t.definition_path}.architecture",
        f"Azure reports that the OS disk of {vm} is {facts.architecture}, but {t.definition_label} has architecture "
        f"{t.architecture}; Azure would refuse the capture. Fix: set {t.definition_path}.architecture to "
        f"{facts.architecture}, or use an {t.architecture} source VM.",
    )


def region_key(name: str) -> str:
    """Azure region names compare without case and spaces ("West Europe" is westeurope)."""
    return name.replace(" ", "").lower()


def check_region(vm: VmRef, facts: VmFacts, t: CaptureTarget) -> Mismatch | None:
    if region_key(facts.location) in {region_key(r) for r in t.target_regions}:
        return None
    listed = ", ".join(t.target_regions) or "none"
    return Mismatch(
        f"{t.version_path}.targetRegions",
        f"Azure reports that {vm} is in {facts.location}, which is not among the version's target regions "
        f"({listed}); Azure requires the source VM's region to be a target region. Fix: add "
        f"`- name: {region_key(facts.location)}` to {t.version_path}.targetRegions.",
    )


def check_regions_exist(subscription_id: str, locations: frozenset[str], t: CaptureTarget) -> list[Mismatch]:
    """Each target region is one the subscription can use (GET /subscriptions/{id}/locations); a misspelt or
    unavailable region is otherwise refused by Azure only when the version is created, after generalization."""
    problems: list[Mismatch] = []
    for index, region in enumerate(t.target_regions):
        if region_key(region) in locations:
            continue
        closest = difflib.get_close_matches(region_key(region), sorted(locations), n=1, cutoff=0.6)
        hint = f"did you mean {closest[0]}? " if closest else ""
        problems.append(
            Mismatch(
                f"{t.version_path}.targetRegions[{index}].name",
                f"{region!r} is not a location of subscription {subscription_id} as Azure lists them; {hint}"
                "Fix the region name, or set allowUnknownRegions: true if Azure accepts it all the same "
                "(a region not listed for this subscription yet).",
            )
        )
    return problems


def check_state(vm: VmRef, status: VmStatus, t: CaptureTarget) -> Mismatch | None:
    """Generalized: the guest step needs the VM running, unless Azure already reports it generalized.
    Specialized: any power state, but never a generalized VM."""
    if t.os_state == "Specialized":
        if not status.generalized:
            return None
        return Mismatch(
            f"{t.definition_path}.osState",
            f"Azure reports {vm} generalized (OSState/generalized), but {t.definition_label} has osState "
            f'Specialized; Azure would refuse the capture ("different OS state"), and a generalized VM cannot be '
            f"made specialized again. Fix: set {t.definition_path}.osState to Generalized (a new definition if "
            f"this one exists), or use a VM that was never generalized.",
        )
    if status.generalized or status.power_state in RUNNABLE_POWER_STATES:
        return None
    az = f"-g {vm.resource_group} -n {vm.name} --subscription {vm.subscription_id}"
    return Mismatch(
        t.source_vm_path,
        f"Azure reports {vm} {status.power_state or 'in no power state'} and not generalized, but the guest step "
        f"needs it running to run sysprep or waagent in it. Fix: if nothing has generalized it yet, start it "
        f"(`az vm start {az}`) and run again. If sysprep or waagent already ran in it, do NOT start it: mark it "
        f"generalized (`az vm deallocate {az}`, then `az vm generalize {az}`) and run again; the guest step is "
        "then skipped.",
        input="vm_id",
    )


def _same_vm(a: str, b: str) -> bool:
    try:
        ra, rb = VmRef.parse(a), VmRef.parse(b)
    except ValueError:
        return a.strip().rstrip("/").lower() == b.strip().rstrip("/").lower()
    return (ra.subscription_id, ra.resource_group.lower(), ra.name.lower()) == (
        rb.subscription_id,
        rb.resource_group.lower(),
        rb.name.lower(),
    )


def check_existing_version(vm: VmRef, existing: ImageVersionFacts | None, t: CaptureTarget) -> Mismatch | None:
    """A version that already exists must have been captured from this VM (a re-run); its source cannot change."""
    if existing is None or (existing.source_vm_id and _same_vm(existing.source_vm_id, vm.id)):
        return None
    source = existing.source_vm_id or "a source that is not a VM"
    return Mismatch(
        f"{t.version_path}.version",
        f"image version {t.version} of {t.definition_name} already exists in gallery {t.gallery_name} with source "
        f"{source}, not {vm}; a version's source cannot change (PropertyChangeNotAllowed). Fix: give this capture "
        f"a version number that does not exist yet in {t.version_path}.version, or point {t.version_path}.sourceVm "
        "back at the VM it was captured from.",
    )


def check_publisher_tenant(gallery: GalleryRef, tenant_id: str, t: CaptureTarget) -> Mismatch | None:
    if t.publisher_tenant_id is None or tenant_id.lower() == t.publisher_tenant_id.lower():
        return None
    return Mismatch(
        PUBLISHER_TENANT_PATH,
        f"the gallery {gallery.name} is in subscription {gallery.subscription_id}, which belongs to tenant "
        f"{tenant_id}, but {PUBLISHER_TENANT_PATH} is {t.publisher_tenant_id}; Partner Center requires the gallery's "
        f"subscription to be in the publisher account's tenant. Fix: put the gallery in a subscription of tenant "
        f"{t.publisher_tenant_id}, or correct {PUBLISHER_TENANT_PATH}.",
    )


def check_disk_controller(vm: VmRef, facts: VmFacts, t: CaptureTarget) -> Mismatch | None:
    """An NVMe-only definition needs an NVMe VM; an NVMe VM needs NVMe among the definition's controller types
    (a definition that declares none supports SCSI only)."""
    vm_controller = "NVMe" if (facts.disk_controller_type or "").lower() == "nvme" else "SCSI"
    declared = t.disk_controller_types or ("SCSI",)
    if vm_controller in declared:
        return None
    claims = ", ".join(declared) + (" (not declared: SCSI only)" if not t.disk_controller_types else "")
    return Mismatch(
        f"{t.definition_path}.features.diskControllerTypes",
        f"Azure reports that {vm} uses the {vm_controller} disk controller (storageProfile.diskControllerType), but "
        f"{t.definition_label} supports {claims}; VMs created from the image would not find their disks. Fix: add "
        f"{vm_controller} to {t.definition_path}.features.diskControllerTypes, or use a source VM with the "
        f"{' or '.join(declared)} controller.",
    )


def check_accelerated_network(vm: VmRef, facts: VmFacts, t: CaptureTarget) -> Mismatch | None:
    if not t.accelerated_network or facts.accelerated_network is not False:
        return None
    return Mismatch(
        f"{t.definition_path}.features.acceleratedNetwork",
        f"{t.definition_label} claims accelerated networking, but Azure reports that the OS disk of {vm} does not "
        f"support it (supportedCapabilities.acceleratedNetwork false). Fix: set "
        f"{t.definition_path}.features.acceleratedNetwork to false, or use a source VM whose OS supports it.",
    )


def check_hibernate(vm: VmRef, facts: VmFacts, t: CaptureTarget) -> Mismatch | None:
    if not t.hibernate or facts.supports_hibernation is not False:
        return None
    return Mismatch(
        f"{t.definition_path}.features.hibernate",
        f"{t.definition_label} claims hibernation support, but Azure reports that the OS disk of {vm} does not "
        f"support hibernation (supportsHibernation false). Fix: set {t.definition_path}.features.hibernate to "
        "false, or use a source VM created with hibernation enabled.",
    )


def check_marketplace_os_disk(vm: VmRef, facts: VmFacts, t: CaptureTarget) -> Mismatch | None:
    """Marketplace certification: the OS disk's size (MARKETPLACE_VHD_SOURCE)."""
    limits = MARKETPLACE_OS_DISK_GB.get(facts.os_type)
    if not t.marketplace or limits is None or facts.os_disk_size_gb is None:
        return None
    low, high = limits
    if low <= facts.os_disk_size_gb <= high:
        return None
    return Mismatch(
        t.source_vm_path,
        f"Azure reports that the OS disk of {vm} is {facts.os_disk_size_gb} GB, but Azure Marketplace certifies "
        f"{facts.os_type} OS disks of {low}-{high} GB only ({MARKETPLACE_VHD_SOURCE}). Fix: resize the OS disk "
        f"(a disk can grow, not shrink: else rebuild the VM), or set {MARKETPLACE_PATH}: false if this gallery is "
        "not published to the Marketplace.",
        input="vm_id",
    )


def check_marketplace_data_disks(vm: VmRef, facts: VmFacts, t: CaptureTarget) -> Mismatch | None:
    """Marketplace certification: at most 16 data disks of at most 1023 GB each (MARKETPLACE_DATA_DISK_SOURCE)."""
    if not t.marketplace:
        return None
    problems = []
    if len(facts.data_disks) > MARKETPLACE_MAX_DATA_DISKS:
        problems.append(f"has {len(facts.data_disks)} data disks (at most {MARKETPLACE_MAX_DATA_DISKS})")
    big = [d for d in facts.data_disks if d.size_gb is not None and d.size_gb > MARKETPLACE_MAX_DATA_DISK_GB]
    if big:
        listed = ", ".join(f"LUN {d.lun}: {d.size_gb} GB" for d in big)
        problems.append(f"has data disks larger than {MARKETPLACE_MAX_DATA_DISK_GB} GB ({listed})")
    if not problems:
        return None
    return Mismatch(
        t.source_vm_path,
        f"Azure reports that {vm} {' and '.join(problems)}; Azure Marketplace certification refuses that "
        f"({MARKETPLACE_DATA_DISK_SOURCE}). Fix: detach or shrink those data disks before the capture, or set "
        f"{MARKETPLACE_PATH}: false if this gallery is not published to the Marketplace.",
        input="vm_id",
    )


def check_data_disk_luns(vm: VmRef, facts: VmFacts, t: CaptureTarget) -> Mismatch | None:
    """The VM's data disks (Azure captures them all) against `dataDiskLuns`, and what encryption needs."""
    luns = tuple(sorted(d.lun for d in facts.data_disks))
    shown = ", ".join(str(lun) for lun in luns) or "none"
    if t.data_disk_luns is not None and luns != t.data_disk_luns:
        declared = ", ".join(str(lun) for lun in t.data_disk_luns) or "none"
        return Mismatch(
            f"{t.version_path}.dataDiskLuns",
            f"Azure reports that {vm} has data disks at LUN {shown}, but dataDiskLuns says {declared}; Azure "
            "captures every data disk of the VM, so the version would not have the data disks declared. Fix: "
            f"attach/detach data disks on the VM, or set dataDiskLuns to [{', '.join(str(lun) for lun in luns)}].",
        )
    if t.data_disk_luns is None and luns and t.encrypts_data_disks:
        return Mismatch(
            f"{t.version_path}.dataDiskLuns",
            f"Azure reports that {vm} has data disks at LUN {shown}, and a target region names a "
            "diskEncryptionSetId: each data disk needs its encryption entry by LUN. Fix: set dataDiskLuns to "
            f"[{', '.join(str(lun) for lun in luns)}].",
        )
    return None


def data_disks_line(vm: VmRef, facts: VmFacts, t: CaptureTarget) -> str:
    """What the preview shows of the data disks the version will capture."""
    if not facts.data_disks:
        return f"{t.version_path}: {vm} has no data disks: the version has an OS disk only"
    listed = ", ".join(
        f"LUN {d.lun}" + (f" ({d.size_gb} GB)" if d.size_gb is not None else "")
        for d in sorted(facts.data_disks, key=lambda d: d.lun)
    )
    return f"{t.version_path}: the version captures the data disks of {vm}: {listed}"


VM_RULES: tuple[Callable[[VmRef, VmFacts, CaptureTarget], Mismatch | None], ...] = (
    check_os_type,
    check_hyper_v_generation,
    check_security_type,
    check_architecture,
    check_region,
)
"""The rules over the VM's facts, in hooks.steps.CAPTURE_CHECKS order (the state rule follows them)."""

FEATURE_RULES: tuple[Callable[[VmRef, VmFacts, CaptureTarget], Mismatch | None], ...] = (
    check_disk_controller,
    check_accelerated_network,
    check_hibernate,
    check_marketplace_os_disk,
    check_marketplace_data_disks,
    check_data_disk_luns,
)
"""What the definition's features claim, and the Marketplace's certification rules (after the state rule)."""


def compare_vm(vm: VmRef, facts: VmFacts, t: CaptureTarget) -> list[Mismatch]:
    """Every rule over the VM's facts and state."""
    found = [m for m in (rule(vm, facts, t) for rule in VM_RULES) if m is not None]
    state = check_state(vm, facts.status or VmStatus(None, False, None, ()), t)
    features = [m for m in (rule(vm, facts, t) for rule in FEATURE_RULES) if m is not None]
    return [*found, *([state] if state is not None else []), *features]


def data_disk_note(vm: VmRef, facts: VmFacts, t: CaptureTarget) -> str | None:
    """The Marketplace's rule that cannot be checked from one VM: every image of a plan has the same data disks."""
    if not t.marketplace or not facts.data_disks:
        return None
    luns = ", ".join(str(d.lun) for d in facts.data_disks)
    return (
        f"{t.version_path}: {vm} has {len(facts.data_disks)} data disk(s) (LUN {luns}); every image of a Marketplace "
        f"plan must have the same number of data disks ({MARKETPLACE_DATA_DISK_SOURCE}): check the plan's other "
        "images"
    )
