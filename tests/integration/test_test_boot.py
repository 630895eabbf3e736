"""The test boot of a new image version, through the real dynamic provider host against the HTTPS
fake of ARM: a throwaway VM from the version (no public IP), provisioning and the guest agent awaited, then the VM,
its disks and NIC deleted, whatever happened; leftovers of an interrupted run removed by tag first; preview touches
nothing; the administrator password never leaves the VM's PUT."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import pytest

from hooks.providers.version_test_boot import VersionTestBootProvider
from hooks.version_boot import TAG
from tests.fakes.dynamic_host import DynamicHost, HostError, host_factory, with_provider  # noqa: F401
from tests.integration.test_preflight import arm_props

if TYPE_CHECKING:
    from tests.fakes.arm import FakeArm, FakeImageVersion

pytest_plugins = ["tests.fakes.arm"]

URN = "urn:pulumi:test::image-gallery::pulumi-python:dynamic/validation:VersionTestBoot::img-1.0.0-test-boot"
GROUP = "rg-validate"


@pytest.fixture
def host(fake_arm: FakeArm, host_factory: Any) -> DynamicHost:  # noqa: F811
    h: DynamicHost = host_factory(fake_arm.env)
    h.configure({"image-gallery:gallery": "{}"})
    return h


def version(
    fake: FakeArm, os_type: str = "Linux", os_state: str = "Generalized", luns: tuple[int, ...] = ()
) -> FakeImageVersion:
    image = fake.add_gallery_image(os_type=os_type, os_state=os_state)
    return fake.add_image_version(image, "1.0.0", data_disk_luns=list(luns))


def props(fake: FakeArm, version_id: str, subnet_id: str, **boot: Any) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "os_type": "Linux",
        "os_state": "Generalized",
        "security_type": "TrustedLaunch",
        "location": "westeurope",
        "subscription_id": fake.subscription_id,
        "resource_group": GROUP,
        "subnet_id": subnet_id,
        "vm_size": "Standard_D2s_v5",
        "admin_username": "igvalidate",
        "timeout": 10.0,
        "tag_value": "gal/img/1.0.0",
        "disallowed_disk_types": [],
        "path": "images[0].validation",
    }
    settings.update(boot)
    return with_provider(
        VersionTestBootProvider(),
        {
            "resource_name": "img-1.0.0-test-boot",
            "version_id": version_id,
            "boot": settings,
            "arm": arm_props(fake),
            "log_urn": None,
        },
    )


def nothing_left(fake: FakeArm) -> bool:
    return not fake.created_vms() and not fake.nics and not fake.disks


def test_a_version_boots_and_nothing_is_left(fake_arm: FakeArm, host: DynamicHost) -> None:
    v = version(fake_arm, luns=(0, 1))
    subnet = fake_arm.add_vnet()
    fake_arm.boot_script.creating_reads, fake_arm.boot_script.agent_ready_after_reads = 2, 2
    _, outs = host.create(URN, props(fake_arm, v.id, subnet))
    assert (outs["provisioning_state"], outs["agent_status"]) == ("Succeeded", "Ready")
    assert nothing_left(fake_arm), "VM, OS and data disks and NIC are deleted"

    nic = fake_arm.bodies("PUT", "/networkInterfaces/")[0]
    assert "publicIPAddress" not in json.dumps(nic), "no public IP"
    assert nic["properties"]["ipConfigurations"][0]["properties"]["subnet"]["id"] == subnet
    vm = fake_arm.bodies("PUT", "/virtualMachines/")[0]
    assert vm["location"] == "westeurope" and vm["tags"][TAG] == "gal/img/1.0.0" and nic["tags"][TAG] == "gal/img/1.0.0"
    storage = vm["properties"]["storageProfile"]
    assert storage["imageReference"] == {"id": v.id}
    assert [d["lun"] for d in storage["dataDisks"]] == [0, 1], "the version's data disks, by LUN"
    assert {d["deleteOption"] for d in [storage["osDisk"], *storage["dataDisks"]]} == {"Delete"}
    assert vm["properties"]["securityProfile"]["securityType"] == "TrustedLaunch"
    password = vm["properties"]["osProfile"]["adminPassword"]
    assert len(password) >= 12
    # The password exists only in the VM's PUT: not in the outputs, not in the logs.
    assert password not in json.dumps(outs)
    stderr = host.close()
    assert password not in stderr
    assert "guest agent Ready" in stderr and "deleted VM" in stderr


def test_each_run_generates_its_own_password(fake_arm: FakeArm, host: DynamicHost) -> None:
    v = version(fake_arm)
    subnet = fake_arm.add_vnet()
    host.create(URN, props(fake_arm, v.id, subnet))
    host.create(URN, props(fake_arm, v.id, subnet))
    first, second = (b["properties"]["osProfile"]["adminPassword"] for b in fake_arm.bodies("PUT", "/virtualMachines/"))
    assert first != second


def test_a_failed_boot_fails_with_azures_error_and_cleans_up(fake_arm: FakeArm, host: DynamicHost) -> None:
    v = version(fake_arm, luns=(0,))
    subnet = fake_arm.add_vnet()
    message = (
        "OS Provisioning for VM 'igtb-vm' did not finish in the allotted time. The VM may still finish provisioning "
        "successfully."
    )
    fake_arm.boot_script.fail = ("OSProvisioningTimedOut", message)
    with pytest.raises(HostError) as raised:
        host.create(URN, props(fake_arm, v.id, subnet))
    assert "did not boot" in raised.value.details and "OSProvisioningTimedOut" in raised.value.details
    assert "did not finish in the allotted time" in raised.value.details
    assert nothing_left(fake_arm), "a failed boot leaves nothing behind"
    assert v.provisioning_state == "Succeeded", "the version itself is untouched"


def test_an_agent_that_never_gets_ready_times_out_bounded(fake_arm: FakeArm, host: DynamicHost) -> None:
    v = version(fake_arm)
    subnet = fake_arm.add_vnet()
    fake_arm.boot_script.agent_never_ready = True
    with pytest.raises(HostError) as raised:
        host.create(URN, props(fake_arm, v.id, subnet, timeout=0.5))
    assert "'Not Ready'" in raised.value.details and "images[0].validation.timeoutMinutes" in raised.value.details
    assert nothing_left(fake_arm)


def test_leftovers_of_an_interrupted_run_are_removed_first(fake_arm: FakeArm, host: DynamicHost) -> None:
    v = version(fake_arm)
    subnet = fake_arm.add_vnet()
    base = json.loads(json.dumps(props(fake_arm, v.id, subnet)["boot"]))
    from hooks.version_boot import TestBootRequest

    prefix = TestBootRequest(
        v.id, "Linux", "Generalized", "Standard", "westeurope", "", GROUP, subnet, "", "", 1, ""
    ).base_name
    fake_arm.add_nic("old-nic", GROUP, subnet, tags={TAG: base["tag_value"]})
    fake_arm.add_disk(f"{prefix}-osdisk", GROUP)  # untagged, as Azure creates a VM's disks: found by its name
    fake_arm.add_disk("someone-elses-disk", GROUP, tags={TAG: "gal/img/9.9.9"})
    _, outs = host.create(URN, props(fake_arm, v.id, subnet))
    assert sorted(outs["leftovers_removed"]) == [
        f"Microsoft.Compute/disks/{prefix}-osdisk",
        "Microsoft.Network/networkInterfaces/old-nic",
    ]
    assert [d["name"] for d in fake_arm.disks.values()] == ["someone-elses-disk"], "another version's is kept"


def test_a_subnet_in_another_region_is_refused_naming_the_key(fake_arm: FakeArm, host: DynamicHost) -> None:
    v = version(fake_arm)
    subnet = fake_arm.add_vnet(location="northeurope")
    with pytest.raises(HostError) as raised:
        host.create(URN, props(fake_arm, v.id, subnet))
    assert "images[0].validation.subnetId: the subnet's virtual network is in northeurope" in raised.value.details
    assert fake_arm.count("PUT") == 0, "nothing is created"


def test_a_missing_subnet_is_refused_naming_the_key(fake_arm: FakeArm, host: DynamicHost) -> None:
    v = version(fake_arm)
    subnet = fake_arm.add_vnet() + "-missing"
    with pytest.raises(HostError) as raised:
        host.create(URN, props(fake_arm, v.id, subnet))
    assert (
        "images[0].validation.subnetId: the subnet" in raised.value.details and "does not exist" in raised.value.details
    )


def test_a_specialized_image_boots_without_os_profile(fake_arm: FakeArm, host: DynamicHost) -> None:
    v = version(fake_arm, os_type="Windows", os_state="Specialized")
    subnet = fake_arm.add_vnet()
    host.create(URN, props(fake_arm, v.id, subnet, os_type="Windows", os_state="Specialized", security_type="Standard"))
    body = fake_arm.bodies("PUT", "/virtualMachines/")[0]["properties"]
    assert "osProfile" not in body and "securityProfile" not in body
    assert nothing_left(fake_arm)


def test_preview_never_calls_azure(fake_arm: FakeArm, host: DynamicHost) -> None:
    v = version(fake_arm)
    subnet = fake_arm.add_vnet()
    news = props(fake_arm, v.id, subnet)
    assert host.check(URN, {}, news).failures == []
    assert host.diff(URN, "id", news, news).changes is False
    other = props(fake_arm, v.id.replace("1.0.0", "1.0.1"), subnet)
    assert host.diff(URN, "id", news, other).replaces == ["version_id"], "a new version is booted anew"
    assert fake_arm.requests == []


def test_an_interrupted_clean_up_is_finished_by_the_next_run(fake_arm: FakeArm, host: DynamicHost) -> None:
    v = version(fake_arm, luns=(0,))
    subnet = fake_arm.add_vnet()
    conflict = {"error": {"code": "Conflict", "message": "Another operation is in progress on the VM."}}
    fake_arm.add_fault(409, method="DELETE", path="/virtualMachines/", times=None, body=conflict)
    with pytest.raises(HostError) as raised:
        host.create(URN, props(fake_arm, v.id, subnet))
    assert "the clean-up of the test boot failed" in raised.value.details
    assert f"tagged {TAG}=gal/img/1.0.0" in raised.value.details and "removed by the next run" in raised.value.details
    left = fake_arm.created_vms()
    assert len(left) == 1 and fake_arm.nics and len(fake_arm.disks) == 2, "VM, NIC, OS and data disk are left"

    fake_arm.clear_faults()
    _, outs = host.create(URN, props(fake_arm, v.id, subnet))
    assert f"Microsoft.Compute/virtualMachines/{left[0].name}" in outs["leftovers_removed"]
    assert nothing_left(fake_arm)


def test_a_failure_after_arm_accepted_a_request_says_it_may_still_run_and_what_the_next_run_does(
    fake_arm: FakeArm, host: DynamicHost
) -> None:
    # ARM accepted the NIC (201 with an operation), then resets every poll of it: each poll is bounded by what is
    # left of the boot's wait (validation.timeoutMinutes, here 1.5 s), not by the ARM bound of 10 s, and the error
    # says the NIC may still be being created and what happens to it.
    v = version(fake_arm)
    subnet = fake_arm.add_vnet()
    fake_arm.reset_connection(method="GET", path=r"/Microsoft\.Network/locations/[^/]+/operations/", times=2)
    started = time.monotonic()
    with pytest.raises(HostError) as raised:
        host.create(URN, props(fake_arm, v.id, subnet, timeout=1.5))
    details = raised.value.details
    assert "closed (reset) the connection" in details, details
    assert "within the 1.5s bound (images[0].validation.timeoutMinutes)" in details, details
    assert "ARM had accepted the request to create NIC igtb" in details, details
    assert "may still be running in Azure" in details and "The next run removes what a test boot" in details
    assert time.monotonic() - started < 8
    assert nothing_left(fake_arm), "the clean-up removed the NIC"


def test_a_read_the_end_of_the_boot_wait_cuts_short_is_reported_as_the_boot_timing_out(
    fake_arm: FakeArm, host: DynamicHost
) -> None:
    v = version(fake_arm)
    subnet = fake_arm.add_vnet()
    fake_arm.boot_script.agent_never_ready = True
    fake_arm.slow_down(method="GET", path=r"/virtualMachines/igtb[0-9a-f]+-vm$", seconds=1.0)
    with pytest.raises(HostError) as raised:
        host.create(URN, props(fake_arm, v.id, subnet, timeout=0.5))
    assert "did not boot within" in raised.value.details, raised.value.details
    assert "images[0].validation.timeoutMinutes" in raised.value.details
    assert nothing_left(fake_arm)
