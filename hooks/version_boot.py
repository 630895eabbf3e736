"""The test boot of a new image version: boot a throwaway VM from it, wait until Azure reports it provisioned and
its guest agent Ready, then delete everything that was created. Plain functions over ARM, usable without Pulumi.

The steps, in order (hooks.steps.TEST_BOOT_STEPS, which `make plan` prints):

1. remove leftovers of an earlier, interrupted boot of the same version: every VM, NIC and disk in the resource
   group carrying this version's tag (disks created with the VM also by their name, which derives from the
   version), so an interrupted run never leaves anything behind for long;
2. read the version (its data disk LUNs) and the subnet's virtual network (it must be in the first target region);
3. create a NIC on the subnet, without a public IP;
4. create the VM from the version, its OS and data disks deleted with it; a Generalized image gets an
   administrator password generated for this run only (never logged, never in the state);
5. wait (bounded) until the VM's provisioning succeeded and the guest agent reports Ready; a failed provisioning
   ends the wait at once, quoting Azure's error;
6. delete the VM, its disks and the NIC, whether the boot succeeded or not.

Every request goes through the process-wide ARM session of hooks.arm (one login, bounded requests, errors
translated), as raw requests whose long-running operations are followed by `arm.ArmRequests` (hooks/arm/operations.py),
only at URLs on the ARM endpoint itself.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hooks import arm
from hooks.errors import ArmError, TestBootFailed, WaitTimeout
from hooks.log import Log
from hooks.steps import TEST_BOOT_TAG as TAG
from hooks.targets import ArmSettings
from hooks.waiting import Deadline

COMPUTE_API_VERSION = "2024-07-01"
"""Microsoft.Compute virtualMachines (and their list)."""
DISKS_API_VERSION = "2024-03-02"
"""Microsoft.Compute disks."""
GALLERY_API_VERSION = "2023-07-03"
"""Microsoft.Compute galleries/images/versions."""
NETWORK_API_VERSION = "2024-05-01"
"""Microsoft.Network networkInterfaces and virtualNetworks."""
PURPOSE_TAG = "image-gallery-purpose"
NEXT_RUN = (
    f"The next run removes what a test boot of this version left behind (tagged {TAG}) before booting again, or "
    "delete it by hand."
)
DISK_TYPES = ("StandardSSD_LRS", "Premium_LRS", "Standard_LRS")
"""Disk types for the throwaway VM, in order of preference; the first the definition does not disallow is used."""


@dataclass(frozen=True)
class TestBootRequest:
    """What to boot, where, and how long to wait."""

    __test__ = False  # not a pytest test class

    version_id: str
    """The image version's resource ID."""
    os_type: str
    os_state: str
    """Generalized: the VM gets an osProfile (computer name, administrator); Specialized: none."""
    security_type: str
    location: str
    """The version's first target region (short name)."""
    subscription_id: str
    resource_group: str
    subnet_id: str
    vm_size: str
    admin_username: str
    timeout: float
    """Seconds for provisioning and the agent to be Ready."""
    tag_value: str
    """This version's value of TAG: `<gallery>/<definition>/<version>`."""
    confidential_vm_encryption_type: str | None = None
    confidential_disk_encryption_set_id: str | None = None
    disallowed_disk_types: tuple[str, ...] = ()
    path: str = "images[?].validation"
    """Config key path of the validation block, for messages."""

    @property
    def base_name(self) -> str:
        """Names of what the boot creates derive from the version, so a re-run finds an interrupted run's."""
        digest = hashlib.sha256(self.version_id.strip().rstrip("/").lower().encode()).hexdigest()[:10]
        return f"igtb{digest}"

    @property
    def group_path(self) -> str:
        return f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"

    @property
    def vm_path(self) -> str:
        return f"{self.group_path}/providers/Microsoft.Compute/virtualMachines/{self.base_name}-vm"

    @property
    def nic_path(self) -> str:
        return f"{self.group_path}/providers/Microsoft.Network/networkInterfaces/{self.base_name}-nic"

    @property
    def tags(self) -> dict[str, str]:
        return {TAG: self.tag_value, PURPOSE_TAG: "throwaway test boot of an image version; safe to delete"}

    @property
    def disk_type(self) -> str:
        return next((t for t in DISK_TYPES if t not in self.disallowed_disk_types), DISK_TYPES[0])


@dataclass(frozen=True)
class TestBootOutcome:
    """What the boot saw."""

    __test__ = False  # not a pytest test class

    vm_name: str
    provisioning_state: str
    agent_status: str
    seconds: float
    leftovers_removed: tuple[str, ...]


# --- the steps -----------------------------------------------------------------------------------------------


def remove_leftovers(client: arm.ArmRequests, r: TestBootRequest, deadline: Deadline) -> list[str]:
    """Step 1: delete what an interrupted boot of this version left in the resource group (VMs first, then disks
    and NICs, which a VM holds)."""
    removed: list[str] = []
    kinds = (
        ("Microsoft.Compute/virtualMachines", COMPUTE_API_VERSION, "Microsoft.Compute/virtualMachines/delete"),
        ("Microsoft.Compute/disks", DISKS_API_VERSION, "Microsoft.Compute/disks/delete"),
        ("Microsoft.Network/networkInterfaces", NETWORK_API_VERSION, "Microsoft.Network/networkInterfaces/delete"),
    )
    for kind, api, permission in kinds:
        listed = client.get(
            f"{r.group_path}/providers/{kind}", api, f"the {kind} of resource group {r.resource_group}", permission
        )
        for item in (listed or {}).get("value") or []:
            name, tags = str(item.get("name") or ""), item.get("tags") or {}
            if tags.get(TAG) != r.tag_value and not name.lower().startswith(r.base_name):
                continue
            path = f"{r.group_path}/providers/{kind}/{name}"
            if client.delete(path, api, f"leftover {kind} {name}", permission, deadline):
                removed.append(f"{kind}/{name}")
    if removed:
        client.log.info(f"removed leftovers of an earlier, interrupted test boot: {', '.join(removed)}")
    return removed


def read_version_luns(client: arm.ArmRequests, r: TestBootRequest) -> tuple[int, ...]:
    """Step 2a: the version exists; its data disk LUNs (the VM gets one data disk per LUN)."""
    body = client.get(
        r.version_id, GALLERY_API_VERSION, f"image version {r.version_id}", arm.PERMISSION_IMAGE_VERSION_READ
    )
    if body is None:
        raise TestBootFailed(f"the image version {r.version_id} to test-boot does not exist (deleted meanwhile?)")
    images = ((body.get("properties") or {}).get("storageProfile") or {}).get("dataDiskImages") or []
    return tuple(sorted(int(d["lun"]) for d in images if isinstance(d, dict) and "lun" in d))


def check_subnet(client: arm.ArmRequests, r: TestBootRequest) -> None:
    """Step 2b: the subnet exists and its virtual network is in the region the VM is created in."""
    vnet_path = r.subnet_id.rsplit("/subnets/", 1)[0]
    subnet = client.get(
        r.subnet_id, NETWORK_API_VERSION, f"subnet {r.subnet_id}", "Microsoft.Network/virtualNetworks/subnets/read"
    )
    vnet = client.get(
        vnet_path, NETWORK_API_VERSION, f"virtual network {vnet_path}", "Microsoft.Network/virtualNetworks/read"
    )
    if subnet is None or vnet is None:
        raise TestBootFailed(
            f"{r.path}.subnetId: the subnet {r.subnet_id} does not exist (or the identity cannot read it). Fix: name "
            "an existing subnet of a virtual network in the version's first target region."
        )
    location = str(vnet.get("location") or "").replace(" ", "").lower()
    if location and location != r.location.replace(" ", "").lower():
        raise TestBootFailed(
            f"{r.path}.subnetId: the subnet's virtual network is in {location}, but the test boot runs in the "
            f"version's first target region {r.location}; a NIC must be in its virtual network's region. Fix: name "
            f"a subnet in {r.location}, or list {location} first in targetRegions."
        )


def create_nic(client: arm.ArmRequests, r: TestBootRequest, deadline: Deadline) -> str:
    """Step 3: a NIC on the subnet, with a private IP only."""
    body = {
        "location": r.location,
        "tags": r.tags,
        "properties": {
            "ipConfigurations": [
                {
                    "name": "ipconfig1",
                    "properties": {"subnet": {"id": r.subnet_id}, "privateIPAllocationMethod": "Dynamic"},
                }
            ]
        },
    }
    _, _, headers = client.send(
        "PUT",
        f"{r.nic_path}?api-version={NETWORK_API_VERSION}",
        "create",
        f"NIC {r.base_name}-nic",
        "Microsoft.Network/networkInterfaces/write (and Microsoft.Network/virtualNetworks/subnets/join/action)",
        body,
    )
    client.wait_operation(headers, "create", f"NIC {r.base_name}-nic", deadline, f"{r.path}.timeoutMinutes")
    return r.nic_path


def generate_password() -> str:
    """A password meeting Azure's complexity rules (Linux and Windows): 28 characters, all four classes."""
    return "Aa1!" + secrets.token_urlsafe(18)


def vm_body(r: TestBootRequest, luns: tuple[int, ...], password: str | None) -> dict[str, Any]:
    """Step 4's request body (Microsoft.Compute/virtualMachines, COMPUTE_API_VERSION)."""
    managed: dict[str, Any] = {"storageAccountType": r.disk_type}
    if r.security_type == "ConfidentialVM":
        confidential: dict[str, Any] = {
            "securityEncryptionType": "VMGuestStateOnly"
            if r.confidential_vm_encryption_type in (None, "EncryptedVMGuestStateOnlyWithPmk")
            else "DiskWithVMGuestState"
        }
        if r.confidential_disk_encryption_set_id:
            confidential["diskEncryptionSet"] = {"id": r.confidential_disk_encryption_set_id}
        managed["securityProfile"] = confidential
    props: dict[str, Any] = {
        "hardwareProfile": {"vmSize": r.vm_size},
        "storageProfile": {
            "imageReference": {"id": r.version_id},
            "osDisk": {
                "name": f"{r.base_name}-osdisk",
                "createOption": "FromImage",
                "deleteOption": "Delete",
                "managedDisk": managed,
            },
            "dataDisks": [
                {
                    "lun": lun,
                    "name": f"{r.base_name}-data{lun}",
                    "createOption": "FromImage",
                    "deleteOption": "Delete",
                    "managedDisk": {"storageAccountType": r.disk_type},
                }
                for lun in luns
            ],
        },
        "networkProfile": {
            "networkInterfaces": [{"id": r.nic_path, "properties": {"primary": True, "deleteOption": "Delete"}}]
        },
        "diagnosticsProfile": {"bootDiagnostics": {"enabled": True}},
    }
    if r.security_type in ("TrustedLaunch", "ConfidentialVM"):
        props["securityProfile"] = {
            "securityType": r.security_type,
            "uefiSettings": {"secureBootEnabled": True, "vTpmEnabled": True},
        }
    if r.os_state == "Generalized":
        os_profile: dict[str, Any] = {
            "computerName": r.base_name,
            "adminUsername": r.admin_username,
            "adminPassword": password,
        }
        if r.os_type == "Linux":
            os_profile["linuxConfiguration"] = {"disablePasswordAuthentication": False, "provisionVMAgent": True}
        else:
            os_profile["windowsConfiguration"] = {"provisionVMAgent": True}
        props["osProfile"] = os_profile
    return {"location": r.location, "tags": r.tags, "properties": props}


def create_vm(client: arm.ArmRequests, r: TestBootRequest, luns: tuple[int, ...], password: str | None) -> None:
    """Step 4: PUT the VM; its provisioning is awaited by `wait_ready` (the VM's own state says more than the
    operation: the instance view carries the provisioning error and the agent's status)."""
    client.send(
        "PUT",
        f"{r.vm_path}?api-version={COMPUTE_API_VERSION}",
        "create",
        f"the throwaway VM {r.base_name}-vm from {r.version_id}",
        "Microsoft.Compute/virtualMachines/write",
        vm_body(r, luns, password),
    )


def _errors(view: Mapping[str, Any]) -> list[str]:
    """Azure's provisioning errors from an instance view (statuses of level Error, the VM's and its disks')."""
    found = []
    for status in [
        *(view.get("statuses") or []),
        *(s for d in view.get("disks") or [] for s in d.get("statuses") or []),
    ]:
        if str(status.get("level") or "").lower() == "error" or str(status.get("code") or "").lower().endswith(
            "/failed"
        ):
            found.append(
                f"{status.get('code')}: {status.get('message') or status.get('displayStatus') or 'no message'}"
            )
    return found


def wait_ready(client: arm.ArmRequests, r: TestBootRequest, log: Log, deadline: Deadline) -> tuple[str, str]:
    """Step 5: poll the VM with its instance view until provisioning Succeeded and the agent is Ready."""
    last = ("not created yet", "no agent status")
    interval = min(max(client.settings.poll_interval, 0.05), 15.0)
    while True:
        try:
            body = client.get(
                r.vm_path,
                COMPUTE_API_VERSION,
                f"the throwaway VM {r.base_name}-vm",
                "Microsoft.Compute/virtualMachines/read",
                "&$expand=instanceView",
                within=deadline,
                bound_source=f"{r.path}.timeoutMinutes",
            )
        except arm.WaitEnded:
            body = None  # the end of the wait cut this read short: the timeout below says what was seen last
        if body is not None:
            props = body.get("properties") or {}
            view = props.get("instanceView") or {}
            provisioning = str(props.get("provisioningState") or "unknown")
            agent = ((view.get("vmAgent") or {}).get("statuses") or [{}])[0]
            agent_status = str(agent.get("displayStatus") or "no agent status")
            if (provisioning, agent_status) != last:
                log.info(f"test VM {r.base_name}-vm: provisioning {provisioning}, guest agent {agent_status}")
            last = (provisioning, agent_status)
            if provisioning.lower() == "failed":
                errors = "; ".join(_errors(view)) or "Azure gave no error details"
                raise TestBootFailed(
                    f"the image version {r.version_id} did not boot: the throwaway VM's provisioning failed: "
                    f"{arm.quote_azure(errors)}"
                )
            if provisioning.lower() == "succeeded" and agent_status.lower() == "ready":
                return provisioning, agent_status
        if deadline.expired:
            raise TestBootFailed(
                f"the image version {r.version_id} did not boot within {r.timeout / 60:g} minutes: the throwaway VM "
                f"reported provisioning {last[0]} and guest agent {last[1]!r} (Ready expected). Check the VM's boot "
                f"diagnostics (screenshot, serial log) in the next run, or raise {r.path}.timeoutMinutes."
            )
        deadline.sleep(interval)


def delete_all(client: arm.ArmRequests, r: TestBootRequest, deadline: Deadline, luns: tuple[int, ...]) -> list[str]:
    """Step 6: the VM (with it, Azure deletes the disks and NIC marked deleteOption Delete), then whatever is left."""
    gone = []
    compute = f"{r.group_path}/providers/Microsoft.Compute"
    if client.delete(
        r.vm_path,
        COMPUTE_API_VERSION,
        f"the throwaway VM {r.base_name}-vm",
        "Microsoft.Compute/virtualMachines/delete",
        deadline,
    ):
        gone.append(f"VM {r.base_name}-vm")
    for disk in (f"{r.base_name}-osdisk", *(f"{r.base_name}-data{lun}" for lun in luns)):
        if client.delete(
            f"{compute}/disks/{disk}", DISKS_API_VERSION, f"disk {disk}", "Microsoft.Compute/disks/delete", deadline
        ):
            gone.append(f"disk {disk}")
    if client.delete(
        r.nic_path,
        NETWORK_API_VERSION,
        f"NIC {r.base_name}-nic",
        "Microsoft.Network/networkInterfaces/delete",
        deadline,
    ):
        gone.append(f"NIC {r.base_name}-nic")
    return gone


def boot_and_delete(settings: ArmSettings, r: TestBootRequest, log: Log) -> TestBootOutcome:
    """Run the steps; the clean-up (step 6) runs whatever happened after step 3 started. A failed boot raises
    TestBootFailed; a clean-up that fails raises ArmError saying what is left (the next run removes it)."""
    started = time.monotonic()
    client = arm.ArmRequests(settings, r.subscription_id, log, NEXT_RUN)
    cleanup = Deadline(settings.operation_timeout, f"the clean-up of test boot {r.base_name}")
    leftovers = remove_leftovers(client, r, cleanup)
    luns = read_version_luns(client, r)
    check_subnet(client, r)
    password = generate_password() if r.os_state == "Generalized" else None
    if password is not None:
        log.secrets = [*log.secrets, password]
    outcome: tuple[str, str] | None = None
    failure: BaseException | None = None
    try:
        deadline = Deadline(r.timeout, f"the throwaway VM {r.base_name}-vm to provision with a Ready agent")
        create_nic(client, r, deadline)
        log.info(
            f"booting {r.base_name}-vm ({r.vm_size}, {r.location}, no public IP) from {r.version_id}"
            + (f" with data disks at LUN {', '.join(map(str, luns))}" if luns else "")
        )
        create_vm(client, r, luns, password)
        outcome = wait_ready(client, r, log, deadline)
    except BaseException as exc:
        failure = exc
        raise
    finally:
        password = None
        try:
            gone = delete_all(client, r, Deadline(settings.operation_timeout, f"the clean-up of {r.base_name}"), luns)
            log.info(f"deleted {', '.join(gone) or 'nothing (nothing was created)'}")
        except (ArmError, WaitTimeout) as exc:
            message = (
                f"the clean-up of the test boot failed: {exc}. What is left is tagged {TAG}={r.tag_value} and is "
                "removed by the next run (or delete it by hand)"
            )
            if failure is None:
                raise ArmError(message) from exc
            log.warn(message)
    assert outcome is not None
    return TestBootOutcome(f"{r.base_name}-vm", outcome[0], outcome[1], time.monotonic() - started, tuple(leftovers))
