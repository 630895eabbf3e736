"""What a VM size's name says, for the test boot's `validation.vmSize`: the naming convention
(https://learn.microsoft.com/azure/virtual-machines/vm-naming-conventions) is
`[Family][Sub-family][# of vCPUs][-constrained vCPUs][additive features][_accelerator][_version]`, and its
additive features say, among others, `p` = an Arm-based processor, `a` = AMD, `e` = Intel TDX (confidential).

The rules each cite their documentation. What a name does not tell is not checked offline: whether the size is
offered in the version's first target region and to the subscription, and whether it supports Trusted Launch,
NVMe or hibernation (Microsoft.Compute/skus reports those capabilities per region; only ARM knows them). A name
that does not follow the convention (older or special sizes) is not judged at all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

NAMING_CONVENTIONS = "https://learn.microsoft.com/azure/virtual-machines/vm-naming-conventions"
CONFIDENTIAL_VM_SIZES = "https://learn.microsoft.com/azure/confidential-computing/virtual-machine-options"
GENERATION_2_SIZES = "https://learn.microsoft.com/azure/virtual-machines/generation-2#generation-2-vm-sizes"

_SIZE = re.compile(
    r"(?P<tier>Standard|Basic)_(?P<family>[A-Z]+)(?P<vcpus>[0-9]+)(?:-[0-9]+)?(?P<features>[a-z]*)"
    r"(?:_(?P<accelerator>[A-Z][A-Za-z0-9]*))?(?:_v(?P<version>[0-9]+))?"
)


@dataclass(frozen=True)
class VmSizeName:
    """A size name read by the naming convention."""

    name: str
    tier: str
    family: str
    vcpus: int
    features: str
    version: int

    @property
    def arm64(self) -> bool:
        """`p`: an Arm-based processor (Ampere Altra, Cobalt): runs Arm64 images only."""
        return "p" in self.features

    @property
    def confidential_vm(self) -> bool:
        """A size that runs confidential VMs: the DC and EC families with AMD SEV-SNP (`a`) or Intel TDX (`e`) from
        version 5, and the NCC family (CONFIDENTIAL_VM_SIZES)."""
        if self.family == "NCC":
            return True
        return self.family in ("DC", "EC") and self.version >= 5 and bool({"a", "e"} & set(self.features))

    @property
    def enclave(self) -> bool:
        """DCsv2, DCsv3, DCdsv3: Intel SGX enclaves, confidential computing that is not a confidential VM."""
        return self.family == "DC" and not self.confidential_vm

    @property
    def generation_1_only(self) -> bool:
        """The A-series (Basic_A, A v1, Av2) runs Generation 1 VMs only (GENERATION_2_SIZES lists no A size)."""
        return self.tier == "Basic" or self.family == "A"


def parse(name: str) -> VmSizeName | None:
    m = _SIZE.fullmatch(name)
    if m is None:
        return None
    version = int(m["version"]) if m["version"] else 1
    return VmSizeName(name, m["tier"], m["family"], int(m["vcpus"]), m["features"], version)


def boot_problems(name: str, architecture: str | None, security_type: str | None, generation: str | None) -> list[str]:
    """Why a test VM of this size cannot boot the definition's image, each with what to write instead."""
    size = parse(name)
    if size is None:
        return []
    problems: list[str] = []
    if architecture == "Arm64" and not size.arm64:
        problems.append(
            f"{name} is an x64 size, and the definition's architecture is Arm64: an Arm64 image boots only on an Arm64 "
            f"size, one with p among the lower-case letters of its name ({NAMING_CONVENTIONS}); e.g. Standard_D2ps_v5"
        )
    if architecture == "x64" and size.arm64:
        problems.append(
            f"{name} is an Arm64 size (p in its name, {NAMING_CONVENTIONS}), and the definition's architecture is "
            "x64: give an x64 size, e.g. Standard_D2s_v5"
        )
    if security_type == "ConfidentialVM" and not size.confidential_vm:
        what = "an SGX enclave size, not a confidential VM size" if size.enclave else "not a confidential VM size"
        problems.append(
            f"{name} is {what}, and a ConfidentialVM image boots only on one (DCasv5, DCadsv5, ECasv5, ECadsv5, "
            f"DCesv5, ECesv5 and their successors: {CONFIDENTIAL_VM_SIZES}); e.g. Standard_DC2as_v5"
        )
    if generation == "V2" and size.generation_1_only:
        problems.append(
            f"{name} runs Generation 1 VMs only, and the definition's hyperVGeneration is V2 ({GENERATION_2_SIZES}); "
            "e.g. Standard_D2s_v5"
        )
    return problems
