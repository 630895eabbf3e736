"""A VM's power state in ARM (hooks/arm/vm.py), against the HTTPS fake of ARM: what deallocate and
wait_until_stopped hand back (the pipeline decides its next step on it), how many reads that costs, how a
deallocation's wait ends when ARM's next poll or the bound comes first, and the advice a refused generalize gives when
the VM's state cannot be read."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest

from hooks import arm
from hooks.errors import ArmError, WaitTimeout
from hooks.log import Log

if TYPE_CHECKING:
    from tests.fakes.arm import FakeArm

pytest_plugins = ["tests.fakes.arm"]

INSTANCE_VIEW = r"/instanceView$"
OPERATION_PATH = r"/operations/[0-9a-f-]+$"


@pytest.fixture
def log() -> Log:
    return Log("test", sink=lambda line: None)


def test_deallocate_hands_back_the_status_it_read_now_deallocated(fake_arm_env: FakeArm, log: Log) -> None:
    vm = fake_arm_env.add_vm(generalized=False)
    status = arm.deallocate(fake_arm_env.settings(), vm.ref, log)
    assert status.power_state == "deallocated"
    assert status.codes == ("ProvisioningState/succeeded", "PowerState/deallocated")
    assert str(status) == "ProvisioningState/succeeded, PowerState/deallocated"
    assert fake_arm_env.count("GET", INSTANCE_VIEW) == 1, "read once before, not again after"


def test_deallocate_given_the_status_just_read_reads_nothing_more(fake_arm_env: FakeArm, log: Log) -> None:
    vm = fake_arm_env.add_vm()
    settings = fake_arm_env.settings()
    current = arm.get_status(settings, vm.ref, log)
    status = arm.deallocate(settings, vm.ref, log, current=current)
    assert fake_arm_env.count("GET", INSTANCE_VIEW) == 1
    assert status.power_state == "deallocated"
    assert vm.power_state == "deallocated"


def test_deallocate_logs_whether_the_vm_was_already_deallocated(fake_arm_env: FakeArm) -> None:
    lines: list[str] = []
    vm = fake_arm_env.add_vm(power_state="deallocated")
    arm.deallocate(fake_arm_env.settings(), vm.ref, Log("test", sink=lines.append))
    assert f"[test] {vm.ref} is already deallocated" in lines


def test_a_vm_that_is_not_stopping_is_handed_back_as_read(fake_arm_env: FakeArm, log: Log) -> None:
    vm = fake_arm_env.add_vm(power_state="running")
    settings = fake_arm_env.settings()
    status = arm.wait_until_stopped(settings, vm.ref, log)
    assert (status.power_state, status.provisioning_state) == ("running", "succeeded")
    assert fake_arm_env.count("GET", INSTANCE_VIEW) == 1
    assert arm.wait_until_stopped(settings, vm.ref, log, current=status) is status
    assert fake_arm_env.count("GET", INSTANCE_VIEW) == 1


def test_a_stopping_vm_given_as_just_read_is_waited_for(fake_arm_env: FakeArm, log: Log) -> None:
    vm = fake_arm_env.add_vm(power_state="stopping", settles_to="stopped", settle_after_reads=1)
    settings = fake_arm_env.settings()
    seen = arm.get_status(settings, vm.ref, log)
    status = arm.wait_until_stopped(settings, vm.ref, log, current=seen)
    assert status.power_state == "stopped"
    assert fake_arm_env.count("GET", INSTANCE_VIEW) == 2, "the one read by the caller, then one poll"


def test_a_refused_generalize_whose_vm_cannot_be_read_says_to_check_the_portal(fake_arm_env: FakeArm, log: Log) -> None:
    vm = fake_arm_env.add_vm(power_state="running")
    fake_arm_env.deny(403, method="GET", path=INSTANCE_VIEW)
    with pytest.raises(ArmError) as caught:
        arm.generalize(fake_arm_env.settings(), vm.ref, log)
    message = str(caught.value)
    assert message.startswith(f"Azure refused to generalize {vm.ref} (409 OperationNotAllowed): ")
    assert message.endswith(". Check the VM's state in the Azure portal and run again.")
    assert vm.generalized is False


def test_a_refused_generalize_of_a_vm_seen_in_no_power_state_says_so(fake_arm_env: FakeArm, log: Log) -> None:
    vm = fake_arm_env.add_vm(power_state="deallocated")
    fake_arm_env.fail_with_body(409, {"error": {"code": "Conflict", "message": "Busy."}}, method="POST")
    seen = arm.VmStatus(power_state=None, generalized=False, provisioning_state="updating", codes=("X/y",))
    with pytest.raises(ArmError) as caught:
        arm.generalize(fake_arm_env.settings(), vm.ref, log, current=seen)
    assert "The VM was seen in no power state (X/y), which allows it: another operation may be running" in str(
        caught.value
    )


@pytest.mark.parametrize(("header", "value"), [("retry-after-ms", "600000"), ("x-ms-retry-after-ms", "600000")])
def test_a_poll_interval_in_milliseconds_past_the_bound_ends_the_deallocation_wait_at_once(
    fake_arm_env: FakeArm, log: Log, header: str, value: str
) -> None:
    vm = fake_arm_env.add_vm()
    body = {"status": "InProgress", "name": "op"}
    fake_arm_env.add_fault(200, method="GET", path=OPERATION_PATH, times=None, headers={header: value}, body=body)
    started = time.monotonic()
    with pytest.raises(WaitTimeout) as caught:
        arm.deallocate(fake_arm_env.settings(operation_timeout=3.0), vm.ref, log)
    assert time.monotonic() - started < 2, "nothing new comes before the next poll: the wait ends at once"
    assert "ARM set its next poll 600s away" in str(caught.value)


def test_a_deallocation_still_running_when_the_bound_passes_between_polls_says_what_was_seen(
    fake_arm_env: FakeArm, log: Log
) -> None:
    vm = fake_arm_env.add_vm()
    fake_arm_env.hang_next_lro()
    started = time.monotonic()
    with pytest.raises(WaitTimeout) as caught:
        arm.deallocate(fake_arm_env.settings(operation_timeout=1.0, poll_interval=30.0), vm.ref, log)
    assert 0.9 <= time.monotonic() - started < 3, "the wait lasts its bound, not a poll interval"
    assert "(last seen: operation status InProgress)" in str(caught.value)
    assert "next poll" not in str(caught.value)


def test_a_bound_passing_while_a_slow_poll_is_on_its_way_is_the_wait_ending_not_arms_silence(
    fake_arm_env: FakeArm, log: Log
) -> None:
    # ARM answers every poll, slowly (a loaded ARM, or a loaded machine): the poll in flight when the bound passes
    # is cut off by it. That is the deallocation still running at the bound, never a deallocation done.
    vm = fake_arm_env.add_vm()
    fake_arm_env.hang_next_lro()
    fake_arm_env.slow_down(method="GET", path=OPERATION_PATH, seconds=0.4)
    with pytest.raises(WaitTimeout) as caught:
        arm.deallocate(fake_arm_env.settings(operation_timeout=1.5), vm.ref, log)
    assert str(caught.value).startswith(f"gave up after 1.5s waiting for Azure to deallocate {vm.ref}")
    assert "The VM may still be deallocating in Azure" in str(caught.value)
    assert "did not answer" not in str(caught.value)
    assert fake_arm_env.count("GET", OPERATION_PATH) >= 2, "ARM answered polls before the bound passed"
