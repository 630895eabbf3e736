"""The data disks a version captures from its VM, as the capture-time checks read them (through
the real dynamic provider host against the HTTPS fake of ARM): listed with their LUNs in the preview's log, held
to `dataDiskLuns` when declared, and required to be declared when a target region encrypts with a disk
encryption set (each LUN gets its own encryption entry)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from tests.fakes.dynamic_host import DynamicHost, host_factory  # noqa: F401
from tests.integration.test_preflight import capture, check, guest_props, only_failure

if TYPE_CHECKING:
    from tests.fakes.arm import FakeArm

pytest_plugins = ["tests.fakes.arm"]


@pytest.fixture
def host(fake_arm: FakeArm, host_factory: Any) -> DynamicHost:  # noqa: F811
    h: DynamicHost = host_factory(fake_arm.env)
    h.configure({"image-gallery:gallery": "{}"})
    return h


def test_the_preview_lists_the_data_disks_with_their_luns(fake_arm: FakeArm, host: DynamicHost) -> None:
    vm = fake_arm.add_vm(data_disk_sizes_gb=[64, 128])
    assert check(fake_arm, host, guest_props(fake_arm, vm.id, capture(fake_arm, data_disk_luns=[0, 1]))).failures == []
    stderr = host.close()
    assert (
        "the version captures the data disks of VM src-vm (resource group rg-src): LUN 0 (64 GB), LUN 1 (128 GB)"
        in (stderr)
    )


def test_declared_luns_must_be_the_vms(fake_arm: FakeArm, host: DynamicHost) -> None:
    vm = fake_arm.add_vm(data_disk_sizes_gb=[64])
    prop, reason = only_failure(
        check(fake_arm, host, guest_props(fake_arm, vm.id, capture(fake_arm, data_disk_luns=[0, 1])))
    )
    assert prop == "capture"
    assert reason.startswith("images[0].versions[0].dataDiskLuns: Azure reports that VM src-vm")
    assert "data disks at LUN 0, but dataDiskLuns says 0, 1" in reason and "set dataDiskLuns to [0]" in reason


def test_encryption_needs_declared_luns_when_the_vm_has_data_disks(fake_arm: FakeArm, host: DynamicHost) -> None:
    vm = fake_arm.add_vm(data_disk_sizes_gb=[64, 64])
    cap = capture(fake_arm, encrypts_data_disks=True)
    _, reason = only_failure(check(fake_arm, host, guest_props(fake_arm, vm.id, cap)))
    assert reason.startswith("images[0].versions[0].dataDiskLuns: ") and "diskEncryptionSetId" in reason
    no_disks = fake_arm.add_vm("plain-vm")
    assert check(fake_arm, host, guest_props(fake_arm, no_disks.id, cap)).failures == []
