"""Capture-time checks: compare a source VM with the image definition and version it is captured into, in
`pulumi preview` and again right before anything irreversible.

Azure enforces these rules only when the image version is created, which is after the guest was sysprepped or
deprovisioned and the VM marked generalized: by then the VM can never be started again (azure-image-pipeline.md,
section 3). Each rule here is a small pure function over facts read through ARM; `run_checks` reads what they
need (GET only, bounded to a few seconds, shared between versions that use the same VM) and returns every
mismatch with the config key to change. No Pulumi imports: the providers turn the results into CheckFailures
(preview) or a CaptureMismatch (create).
"""

from __future__ import annotations

import difflib
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, TypeVar, cast

from hooks import arm
from hooks.arm import ImageVersionFacts, VmFacts, VmStatus
from hooks.errors import ArmError, ArmUnreachable, CaptureMismatch, VmNotFound
from hooks.log import Log
from hooks.pipeline import RUNNABLE_POWER_STATES
from hooks.steps import MARKETPLACE_DATA_DISK_SOURCE, MARKETPLACE_VHD_SOURCE
from hooks.targets import ArmSettings, GalleryRef, VmRef

T = TypeVar("T")

# Marketplace certification rules (README "Publishing to Partner Center").
MARKETPLACE_OS_DISK_GB = {"Linux": (1, 1023), "Windows": (30, 250)}
MARKETPLACE_MAX_DATA_DISKS = 16
MARKETPLACE_MAX_DATA_DISK_GB = 1023
MARKETPLACE_PATH = "marketplace"

ON_ARM_UNREACHABLE = ("fail", "warn")


CACHE_TTL = 30.0
"""Seconds a VM or subscription read is shared with other checks: long enough for one preview, short enough that
a fix made in the portal shows up in the next run."""
CHECK_BUDGET = 15.0
"""Bound in seconds for all the reads of one check (waiting for a read shared with another check included)."""
CALL_TIMEOUT = 8.0
"""Bound in seconds for one read, retries included."""
REQUEST_TIMEOUT = 4.0
"""Bound in seconds for one HTTP request of a check (ARM answers a GET in well under a second). azure-core caps
only the connection phase of a retry by CALL_TIMEOUT, not the read: a hanging ARM costs (1 + MAX_RETRIES) x this
plus one backoff, about 9 s, after which the check's other reads are skipped."""
MAX_RETRIES = 1
"""Retries per request: one absorbs a blip; more would only make an unreachable ARM slow to report."""

PUBLISHER_TENANT_PATH = "publisherTenantId"
ON_ARM_UNREACHABLE_PATH = "onArmUnreachable"

SUPPORTED_ONLY_SECURITY_TYPES = frozenset(
    {"TrustedLaunchSupported", "ConfidentialVmSupported", "TrustedLaunchAndConfidentialVmSupported"}
)
"""Definition security types that accept VHD, managed image and image version sources, never a VM."""

# --- what is checked against what ----------------------------------------------------------------------------


@dataclass(frozen=True)
class CaptureTarget:
    """What the source VM is captured into, as configured, and the config key paths to name in messages.

    Built from the "capture" input of the chain's dynamic resources (components.captured_image_version.capture_props).
    """

    definition_name: str
    os_type: str
    """Linux | Windows."""
    os_state: str
    """Generalized (the chain generalizes the VM) | Specialized (captured as it is)."""
    hyper_v_generation: str
    """V1 | V2."""
    architecture: str
    """x64 | Arm64."""
    security_type: str
    """Standard | TrustedLaunch | ConfidentialVM | one of SUPPORTED_ONLY_SECURITY_TYPES."""
    version: str
    """Major.Minor.Patch."""
    target_regions: tuple[str, ...]
    gallery: GalleryRef | None
    """None until the gallery's ID is known (first preview of a new stack): the version and tenant checks then
    wait for `pulumi up`, where it is known."""
    gallery_resource_group: str
    gallery_name: str
    publisher_tenant_id: str | None
    """When set, the gallery's subscription must be in this tenant (Partner Center)."""
    on_arm_unreachable: str = "fail"
    """fail | warn: what a check that could not reach ARM (or was denied) does."""
    marketplace: bool = True
    """Check the Marketplace certification rules too (config `marketplace`)."""
    allow_unknown_regions: bool = False
    """Config `allowUnknownRegions`: target regions are not checked against the subscription's locations."""
    disk_controller_types: tuple[str, ...] = ()
    """The definition's DiskControllerTypes feature; empty: not declared (SCSI only)."""
    accelerated_network: bool | None = None
    """The definition's IsAcceleratedNetworkSupported feature; None: not declared."""
    hibernate: bool | None = None
    """The definition's IsHibernateSupported feature; None: not declared."""
    data_disk_luns: tuple[int, ...] | None = None
    """`dataDiskLuns`: the LUNs the VM's data disks must have; None: not declared."""
    encrypts_data_disks: bool = False
    """A target region names a disk encryption set: each data disk LUN needs an entry, so dataDiskLuns is needed."""
    definition_path: str = "images[?]"
    version_path: str = "images[?].versions[?]"
    source_vm_path: str = "sourceVms.?"

    @classmethod
    def from_props(cls, capture: Mapping[str, Any]) -> CaptureTarget:
        """Parse the "capture" input; `gallery_id` None means not known yet. Raises ValueError if malformed."""
        try:
            d = capture["definition"]
            paths = capture.get("paths") or {}
            gallery_id = capture.get("gallery_id")
            on_unreachable = str(capture.get("on_arm_unreachable") or "fail")
            if on_unreachable not in ON_ARM_UNREACHABLE:
                raise ValueError(f"on_arm_unreachable must be one of {', '.join(ON_ARM_UNREACHABLE)}")
            return cls(
                definition_name=str(d["name"]),
                os_type=str(d["os_type"]),
                os_state=str(d["os_state"]),
                hyper_v_generation=str(d["hyper_v_generation"]),
                architecture=str(d["architecture"]),
                security_type=str(d["security_type"]),
                version=str(capture["version"]),
                target_regions=tuple(str(r) for r in capture.get("target_regions") or ()),
                gallery=GalleryRef.parse(str(gallery_id)) if gallery_id else None,
                gallery_resource_group=str(capture.get("gallery_resource_group") or ""),
                gallery_name=str(capture.get("gallery_name") or ""),
                publisher_tenant_id=str(capture["publisher_tenant_id"]) if capture.get("publisher_tenant_id") else None,
                on_arm_unreachable=on_unreachable,
                marketplace=bool(capture.get("marketplace", True)),
                allow_unknown_regions=bool(capture.get("allow_unknown_regions", False)),
                disk_controller_types=tuple(str(c) for c in d.get("disk_controller_types") or ()),
                accelerated_network=_optional_bool(d.get("accelerated_network")),
                hibernate=_optional_bool(d.get("hibernate")),
                data_disk_luns=(
                    tuple(int(lun) for lun in capture["data_disk_luns"])
                    if capture.get("data_disk_luns") is not None
                    else None
                ),
                encrypts_data_disks=bool(capture.get("encrypts_data_disks", False)),
                definition_path=str(paths.get("definition") or cls.definition_path),
                version_path=str(paths.get("version") or cls.version_path),
                source_vm_path=str(paths.get("source_vm") or cls.source_vm_path),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"the capture input is incomplete ({exc!r} missing or malformed)") from exc

    @property
    def definition_label(self) -> str:
        return f"image definition {self.definition_name} ({self.definition_path})"


def _optional_bool(value: Any) -> bool | None:
    return None if value is None else bool(value)


@dataclass(frozen=True)
class Mismatch:
    """One problem a check found, for one config key. `str()` gives `<path>: <message>`."""

    path: str
    """The config key to change, e.g. `images[0].hyperVGeneration`."""
    message: str
    """What Azure reports, what the configuration says, and the fix."""
    input: str = "capture"
    """The input of the dynamic resource it concerns ("capture" or "vm_id"), for Pulumi's CheckFailure."""
    cause: ArmError | None = None
    """Set when the check could not run (ARM unreachable, login failed, access denied): not a mismatch."""

    @property
    def unverified(self) -> bool:
        return self.cause is not None

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


# --- the rules (pure) ----------------------------------------------------------------------------------------


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


# --- shared, bounded reads -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Entry:
    at: float
    value: object
    error: ArmError | None


class ReadCache:
    """Reads shared between concurrent checks (the dynamic host runs 4 at once): one request per key however
    many checks ask, and its result (or its ARM error) reused for `ttl` seconds.

    Errors are shared too: otherwise, with ARM down, checks queued on the same key would each wait out their
    own timeout in turn. Keys are (endpoint, resource id, what)."""

    def __init__(self, ttl: float = CACHE_TTL, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._key_locks: dict[tuple[str, ...], threading.Lock] = {}
        self._entries: dict[tuple[str, ...], _Entry] = {}

    def get(self, key: tuple[str, ...], fetch: Callable[[], T], max_age: float, wait: float) -> tuple[T, bool]:
        """The cached value if younger than `max_age` (and `ttl`), else `fetch()`; returns (value, fetched).

        Waits at most `wait` seconds for another caller fetching the same key (raises ArmUnreachable after)."""
        with self._lock:
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        if not key_lock.acquire(timeout=max(wait, 0.0)):
            raise ArmUnreachable(
                f"ARM did not answer within {wait:g}s the read another check started for {key[1]}. Check the network "
                "and run again."
            )
        try:
            with self._lock:
                entry = self._entries.get(key)
            if entry is not None and self._clock() - entry.at < min(max_age, self.ttl):
                if entry.error is not None:
                    raise entry.error
                return cast(T, entry.value), False
            try:
                value = fetch()
            except ArmError as exc:
                self._store(key, _Entry(self._clock(), None, exc))
                raise
            self._store(key, _Entry(self._clock(), value, None))
            return value, True
        finally:
            key_lock.release()

    def _store(self, key: tuple[str, ...], entry: _Entry) -> None:
        with self._lock:
            now = self._clock()
            for old in [k for k, e in self._entries.items() if now - e.at > self.ttl]:
                del self._entries[old]
            self._entries[key] = entry

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


SHARED_READS = ReadCache()
"""The process-wide cache: one per dynamic provider host, which serves every resource of the stack."""


class _Reader:
    """The reads of one check: bounded by its deadline, through the process-wide ARM session (one login, one
    connection pool), VM and tenant reads shared through the cache. Thread-safe: the reads run concurrently."""

    def __init__(self, settings: ArmSettings, log: Log, max_age: float, budget: float) -> None:
        self.settings = settings
        self.log = log
        self.max_age = max_age
        self.budget = budget
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self.login_failure: ArmUnreachable | None = None
        """Set when no token could be had before the reads: every read then reports it, none is tried."""
        self.done: list[str] = []
        """What was read, for the summary line: e.g. "VM and OS disk: GET", "VM and OS disk: shared"."""
        self.unreachable: ArmUnreachable | None = None
        """Set by the first read that could not reach ARM or log in: the other reads then fail at once with it
        instead of each waiting out its own timeout."""

    def _remaining(self) -> float:
        return self.budget - (time.monotonic() - self.started)

    def _may_read(self) -> None:
        """Raise instead of reading when this check already knows the read is futile. Called outside the shared
        cache: these reasons belong to this check and must not be served to another one."""
        if self.login_failure is not None:
            raise self.login_failure
        if self.unreachable is not None:
            raise ArmUnreachable(
                "skipped, because an earlier read of this check could not reach ARM or log in (see above)."
            )
        if self._remaining() <= 0.05:
            raise ArmUnreachable(
                f"the capture-time checks ran out of their {self.budget:g}s bound before this read: ARM answers too "
                "slowly. Check the network and run again."
            )

    def _bounded(self) -> ArmSettings:
        remaining = max(self._remaining(), 0.05)
        return replace(
            self.settings,
            request_timeout=min(self.settings.request_timeout, REQUEST_TIMEOUT, remaining),
            operation_timeout=min(self.settings.operation_timeout, CALL_TIMEOUT, remaining),
            max_retries=MAX_RETRIES,
            bound_source=f"the capture-time checks' fixed bound ({CALL_TIMEOUT:g}s per read)",
        )

    def login(self) -> None:
        """Get the token before the concurrent reads: one login (or one login failure) for all of them."""
        try:
            arm.ensure_login(self._bounded(), f"what the capture-time checks of {self.log.resource} need")
        except ArmUnreachable as exc:
            self.login_failure = exc

    def _read(self, fetch: Callable[[], T]) -> T:
        self._may_read()
        try:
            return fetch()
        except ArmUnreachable as exc:
            self.unreachable = self.unreachable or exc
            raise

    def _shared(self, what: str, key: tuple[str, ...], fetch: Callable[[ArmSettings], T]) -> T:
        endpoint = self.settings.endpoint.rstrip("/").lower()
        value, fetched = self._read(
            lambda: SHARED_READS.get((endpoint, *key), lambda: fetch(self._bounded()), self.max_age, self._remaining())
        )
        with self._lock:
            self.done.append(f"{what}: {'GET' if fetched else 'shared'}")
        return value

    def vm_facts(self, vm: VmRef) -> VmFacts:
        return self._shared(
            "VM and OS disk",
            (vm.id.lower(), "facts"),
            lambda s: arm.get_facts(s, vm, self.log),
        )

    def subscription_tenant(self, subscription_id: str) -> str:
        return self._shared(
            "subscription",
            (f"/subscriptions/{subscription_id.lower()}", "tenant"),
            lambda s: arm.get_subscription_tenant(s, subscription_id),
        )

    def locations(self, subscription_id: str) -> frozenset[str]:
        return self._shared(
            "subscription locations",
            (f"/subscriptions/{subscription_id.lower()}", "locations"),
            lambda s: arm.list_locations(s, subscription_id),
        )

    def image_version(self, gallery: GalleryRef, t: CaptureTarget) -> ImageVersionFacts | None:
        # Not shared: each version is read by the one check that captures it.
        found = self._read(
            lambda: arm.get_image_version(
                self._bounded(),
                gallery.subscription_id,
                gallery.resource_group,
                gallery.name,
                t.definition_name,
                t.version,
            )
        )
        with self._lock:
            self.done.append("version: GET")
        return found


def _not_checked(path: str, what: str, exc: ArmError, input: str = "capture") -> Mismatch:
    """A check that could not run, said so distinctly from a mismatch. hooks.arm's message already tells a
    network failure, a login failure, a rejected token (401) and a missing permission (403, named) apart."""
    return Mismatch(path, f"not checked ({what}): {exc}", input, cause=exc)


# --- running them --------------------------------------------------------------------------------------------


def run_checks(
    settings: ArmSettings,
    vm: VmRef,
    target: CaptureTarget,
    log: Log,
    *,
    max_age: float = CACHE_TTL,
    budget: float = CHECK_BUDGET,
) -> list[Mismatch]:
    """Every capture-time check of one version: reads through ARM (GET only) and returns the problems.

    A check that could not run (ARM unreachable, login failed, access denied) is a problem with `cause` set under
    `on_arm_unreachable: fail`, and only a warning in `log` under `warn`. `max_age` 0 reads everything afresh
    (the create path); the default shares VM and subscription reads made by other checks moments ago."""
    return _run_checks(settings, vm, target, log, max_age, budget)[0]


def _run_checks(
    settings: ArmSettings, vm: VmRef, target: CaptureTarget, log: Log, max_age: float, budget: float
) -> tuple[list[Mismatch], VmFacts | None]:
    """`run_checks`, also returning the VM's facts when they could be read.

    The VM, the existing version and the gallery's subscription are read concurrently (each bounded), after one
    login: a check costs the slowest read, not the sum."""
    t = target
    started = time.monotonic()
    reader = _Reader(settings, log, max_age, budget)
    reader.login()
    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="capture-check") as pool:
        vm_read = pool.submit(_vm_checks, reader, vm, t)
        gallery_read = pool.submit(_gallery_checks, reader, vm, t.gallery, t) if t.gallery is not None else None
        region_read = pool.submit(_region_checks, reader, vm, t) if not t.allow_unknown_regions else None
        vm_problems, facts = vm_read.result()
        problems = [*vm_problems, *(gallery_read.result() if gallery_read is not None else [])]
        region_problems = region_read.result() if region_read is not None else []
        # One unreachable ARM is reported by the reads above already; its locations read adds nothing to say.
        if not (any(p.unverified for p in problems) and all(p.unverified for p in region_problems)):
            problems.extend(region_problems)
    if t.gallery is None:
        log.info(
            f"{t.version_path}: the gallery's ID is not known yet (new stack); whether version {t.version} "
            "exists already, and the gallery's tenant, are checked once it is"
        )

    kept = apply_unreachable_policy(
        problems, t.on_arm_unreachable, log, "continuing without this check; Azure may still refuse the capture later."
    )
    mismatches = sum(1 for p in problems if not p.unverified)
    unverified = len(problems) - mismatches
    verdict = f"{mismatches} mismatch(es)" if mismatches else "no mismatch"
    if unverified:
        verdict += f", {unverified} not checked"
    log.info(
        f"capture-time checks of {t.version_path} ({vm}): {verdict} in {time.monotonic() - started:.2f}s "
        f"({'; '.join(sorted(reader.done)) or 'no reads'})"
    )
    return kept, facts


def apply_unreachable_policy(
    problems: Sequence[Mismatch], on_arm_unreachable: str, log: Log, warning: str
) -> list[Mismatch]:
    """The problems that fail the check. A read that could not reach ARM (or was denied) is a warning with
    `onArmUnreachable: warn`; otherwise it fails, saying how to turn it into a warning. Real mismatches always fail."""
    kept: list[Mismatch] = []
    for problem in problems:
        if problem.unverified and on_arm_unreachable == "warn":
            log.warn(f"{problem} {ON_ARM_UNREACHABLE_PATH} is warn: {warning}")
        elif problem.unverified:
            kept.append(
                replace(
                    problem,
                    message=f"{problem.message} To continue without these checks (a warning instead of a failure), "
                    f"set {ON_ARM_UNREACHABLE_PATH} to warn.",
                )
            )
        else:
            kept.append(problem)
    return kept


def _vm_checks(reader: _Reader, vm: VmRef, t: CaptureTarget) -> tuple[list[Mismatch], VmFacts | None]:
    try:
        facts = reader.vm_facts(vm)
    except VmNotFound as exc:
        return [Mismatch(f"{t.source_vm_path}.id", str(exc), input="vm_id")], None
    except ArmError as exc:
        return [_not_checked(f"{t.source_vm_path}.id", f"{vm} against {t.definition_path}", exc, "vm_id")], None
    reader.log.info(data_disks_line(vm, facts, t))
    note = data_disk_note(vm, facts, t)
    if note is not None:
        reader.log.warn(note)
    return compare_vm(vm, facts, t), facts


def _region_checks(reader: _Reader, vm: VmRef, t: CaptureTarget) -> list[Mismatch]:
    # The version lives in the gallery's subscription; before its ID is known, the VM's stands in (usually the same).
    subscription_id = t.gallery.subscription_id if t.gallery is not None else vm.subscription_id
    try:
        locations = reader.locations(subscription_id)
    except ArmError as exc:
        return [
            _not_checked(f"{t.version_path}.targetRegions", f"the locations of subscription {subscription_id}", exc)
        ]
    return check_regions_exist(subscription_id, locations, t)


def _gallery_checks(reader: _Reader, vm: VmRef, gallery: GalleryRef, t: CaptureTarget) -> list[Mismatch]:
    problems: list[Mismatch] = []
    try:
        existing = reader.image_version(gallery, t)
    except ArmError as exc:
        problems.append(_not_checked(f"{t.version_path}.version", f"whether version {t.version} exists", exc))
    else:
        found = check_existing_version(vm, existing, t)
        if found is not None:
            problems.append(found)
    if t.publisher_tenant_id is not None:
        try:
            tenant = reader.subscription_tenant(gallery.subscription_id)
        except ArmError as exc:
            problems.append(_not_checked(PUBLISHER_TENANT_PATH, "the tenant of the gallery's subscription", exc))
        else:
            found = check_publisher_tenant(gallery, tenant, t)
            if found is not None:
                problems.append(found)
    return problems


def describe(problems: Sequence[Mismatch]) -> str:
    return "\n".join(f"  - {p}" for p in problems)


def require_match(settings: ArmSettings, vm: VmRef, target: CaptureTarget, log: Log) -> VmStatus | None:
    """The create path: the same checks with fresh reads; raises CaptureMismatch listing every mismatch, or the
    ARM error type when checks could only not run. When everything matches, returns the VM's status from the
    same read (None when it could not be read and `onArmUnreachable` is warn), so the caller need not read the
    VM again."""
    problems, facts = _run_checks(settings, vm, target, log, 0.0, CHECK_BUDGET)
    if not problems:
        return facts.status if facts is not None else None
    if any(not p.unverified for p in problems):
        raise CaptureMismatch(
            f"{vm} cannot be captured into {target.definition_label}, version {target.version} "
            f"({target.version_path}); nothing was changed:\n{describe(problems)}"
        )
    cause = problems[0].cause
    assert cause is not None
    raise type(cause)(
        f"the capture-time checks of {target.version_path} could not run, so nothing was changed:\n{describe(problems)}"
    ) from cause
