"""The test boot's throwaway VM as hooks.version_boot asks ARM for it: a confidential VM's body, a disallowed disk
type avoided, and names derived from the version."""

from __future__ import annotations

import copy
from typing import Any

from hooks.version_boot import TestBootRequest, vm_body
from tests.unit import stack_configs as sc

DES = f"/subscriptions/{sc.SUBSCRIPTION}/resourceGroups/rg-keys/providers/Microsoft.Compute/diskEncryptionSets/des-{{}}"
SUBNET = (
    f"/subscriptions/{sc.SUBSCRIPTION}/resourceGroups/rg-net/providers/Microsoft.Network/virtualNetworks/vnet-build"
    "/subnets/validate"
)


def request(**fields: Any) -> TestBootRequest:
    base: dict[str, Any] = dict(
        version_id="/subscriptions/x/resourceGroups/g/providers/Microsoft.Compute/galleries/g/images/i/versions/1.0.0",
        os_type="Windows",
        os_state="Generalized",
        security_type="ConfidentialVM",
        location="westeurope",
        subscription_id=sc.SUBSCRIPTION,
        resource_group="rg-validate",
        subnet_id=SUBNET,
        vm_size="Standard_DC2as_v5",
        admin_username="igvalidate",
        timeout=60.0,
        tag_value="g/i/1.0.0",
    )
    base.update(fields)
    return TestBootRequest(**base)


def test_a_confidential_vm_body() -> None:
    r = request(confidential_vm_encryption_type="EncryptedWithCmk", confidential_disk_encryption_set_id=DES.format("w"))
    body = vm_body(r, (), "Aa1!secret")
    props = body["properties"]
    assert props["securityProfile"]["securityType"] == "ConfidentialVM"
    assert props["storageProfile"]["osDisk"]["managedDisk"]["securityProfile"] == {
        "securityEncryptionType": "DiskWithVMGuestState",
        "diskEncryptionSet": {"id": DES.format("w")},
    }
    assert props["osProfile"]["windowsConfiguration"] == {"provisionVMAgent": True}
    assert len(props["osProfile"]["computerName"]) <= 15, "Windows computer names are at most 15 characters"
    assert "publicIPAddress" not in str(body)


def test_a_disallowed_disk_type_is_not_used() -> None:
    r = request(disallowed_disk_types=("StandardSSD_LRS",), security_type="Standard")
    assert vm_body(r, (0,), "x")["properties"]["storageProfile"]["dataDisks"][0]["managedDisk"] == {
        "storageAccountType": "Premium_LRS"
    }


def test_the_names_derive_from_the_version() -> None:
    assert request().base_name == request(version_id=request().version_id.upper()).base_name
    assert request().base_name != request(version_id=request().version_id.replace("1.0.0", "1.0.1")).base_name
    copy.deepcopy(request())
