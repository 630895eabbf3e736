"""Azure's spelling of the values the checks compare (hooks/arm/spelling.py): its APIs differ in case, so every
value read is spelt one way before a check compares it with the stack file's."""

from __future__ import annotations

import pytest
from azure.mgmt.compute.models import ArchitectureTypes, OperatingSystemTypes

from hooks.arm.spelling import canonical


@pytest.mark.parametrize(
    ("read", "spelt"),
    [
        ("linux", "Linux"),
        ("WINDOWS", "Windows"),
        ("v1", "V1"),
        ("v2", "V2"),
        ("standard", "Standard"),
        ("trustedlaunch", "TrustedLaunch"),
        ("CONFIDENTIALVM", "ConfidentialVM"),
        ("X64", "x64"),
        ("arm64", "Arm64"),
        # azure-mgmt-compute's enums, whose str() is their name ("OperatingSystemTypes.LINUX"), not their value
        (OperatingSystemTypes.LINUX, "Linux"),
        (ArchitectureTypes.X64, "x64"),
    ],
)
def test_known_values_are_spelt_as_azure_documents_them(read: object, spelt: str) -> None:
    assert canonical(read) == spelt


@pytest.mark.parametrize("read", ["Succeeded", "westeurope", "NVMe"])
def test_unknown_values_pass_through_unchanged(read: str) -> None:
    assert canonical(read) == read


@pytest.mark.parametrize("read", [None, ""])
def test_nothing_reported_is_none(read: object) -> None:
    assert canonical(read) is None
