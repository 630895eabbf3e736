"""What the capture-time checks compare: the configured capture (`CaptureTarget`, from the chain's "capture"
input) and what a check found (`Mismatch`, with the config key to change)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hooks.errors import ArmError
from hooks.targets import GalleryRef

ON_ARM_UNREACHABLE = ("fail", "warn")

PUBLISHER_TENANT_PATH = "publisherTenantId"
ON_ARM_UNREACHABLE_PATH = "onArmUnreachable"


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
