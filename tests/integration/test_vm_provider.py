"""The ARM half (VmGeneralization) through the real dynamic provider host, against the HTTPS fake of ARM."""

from __future__ import annotations

from typing import Any

import pytest

from hooks.providers.chain import VmGeneralizationProvider
from tests.fakes.arm import FakeArm, fake_arm  # noqa: F401 (fixture)
from tests.fakes.dynamic_host import DynamicHost, HostError, host_factory, urn, with_provider  # noqa: F401

URN = urn("VmGeneralization", "img-1.0.0-vm")


def props(fake: FakeArm, vm_id: str, **overrides: Any) -> dict[str, Any]:
    p: dict[str, Any] = {
        "resource_name": "img-1.0.0-vm",
        "vm_id": vm_id,
        "arm": {"endpoint": fake.endpoint, "audience": None, "poll_interval": 0.05, "operation_timeout": 10.0},
        "generalize": True,
        "deallocate": True,
        "after_guest": "2026-11-22T10:00:00+00:00",
        "actions": None,
        "power_state": None,
        "generalized": None,
        "finished_at": None,
    }
    p.update(overrides)
    return with_provider(VmGeneralizationProvider(), p)


@pytest.fixture
def host(fake_arm: FakeArm, host_factory: Any) -> DynamicHost:  # noqa: F811
    h: DynamicHost = host_factory(fake_arm.env)
    h.configure({"image-gallery:gallery": "{}"})
    return h


def test_create_deallocates_generalizes_and_verifies(fake_arm: FakeArm, host: DynamicHost) -> None:  # noqa: F811
    vm = fake_arm.add_vm(power_state="running")
    id_, outs = host.create(URN, props(fake_arm, vm.id))
    assert id_ == f"{vm.id}/vmGeneralization"
    assert outs["actions"] == ["deallocated", "generalized"]
    assert outs["power_state"] == "deallocated" and outs["generalized"] is True
    assert vm.power_state == "deallocated" and vm.generalized
    assert fake_arm.count("POST", r"/deallocate$") == 1 and fake_arm.count("POST", r"/generalize$") == 1
    # The LRO was followed through its Azure-AsyncOperation document.
    assert fake_arm.count("GET", r"/operations/") >= 1
    # One login for the whole half (the Azure CLI credential starts `az` for every token it is asked for).
    assert len(fake_arm.az_calls()) == 1, fake_arm.az_calls()
    assert "verified" in host.close()


def test_rerun_on_generalized_vm_changes_nothing(fake_arm: FakeArm, host: DynamicHost) -> None:  # noqa: F811
    vm = fake_arm.add_vm(power_state="deallocated", generalized=True)
    _, outs = host.create(URN, props(fake_arm, vm.id))
    assert outs["actions"] == ["already deallocated", "already generalized"]
    assert fake_arm.non_get_requests() == []


def test_resumes_after_failure_between_deallocate_and_generalize(fake_arm: FakeArm, host: DynamicHost) -> None:  # noqa: F811
    vm = fake_arm.add_vm(power_state="running")
    fake_arm.add_fault_generalize = fake_arm.deny(403, method="POST", path=r"/generalize$", times=1)
    with pytest.raises(HostError) as first:
        host.create(URN, props(fake_arm, vm.id))
    assert "generalize" in first.value.details
    assert vm.power_state == "deallocated" and not vm.generalized
    _, outs = host.create(URN, props(fake_arm, vm.id))
    assert outs["actions"] == ["already deallocated", "generalized"]
    assert fake_arm.count("POST", r"/deallocate$") == 1, "deallocation must not be repeated"


def test_an_expected_failure_reaches_the_engine_as_its_message_alone(fake_arm: FakeArm, host: DynamicHost) -> None:  # noqa: F811
    """The host formats a failed call with `traceback.format_exc()`: the engine shows what it gets. An expected
    failure arrives as its message, under no traceback (hooks/step_failures.py)."""
    vm = fake_arm.add_vm(power_state="running")
    fake_arm.fail_next_lro("AllocationFailed", "Deallocation failed because of a platform problem 4711.")
    with pytest.raises(HostError) as err:
        host.create(URN, props(fake_arm, vm.id))
    assert err.value.details.startswith("hooks.step_failures.StepFailed: [img-1.0.0-vm] "), err.value.details
    assert "Traceback" not in err.value.details and 'File "' not in err.value.details


def test_a_bug_is_named_to_the_engine_and_logged_with_its_traceback(fake_arm: FakeArm, host: DynamicHost) -> None:  # noqa: F811
    vm = fake_arm.add_vm(power_state="running")
    broken = props(fake_arm, vm.id)
    del broken["arm"]  # what no program sends: the provider's own code fails (KeyError)
    with pytest.raises(HostError) as err:
        host.create(URN, broken)
    assert err.value.details.strip() == (
        "hooks.step_failures.StepFailed: VmGeneralizationProvider.create failed unexpectedly (KeyError: 'arm'); "
        "its traceback is logged above."
    )
    logged = host.close()
    assert "VmGeneralizationProvider.create failed unexpectedly, a bug in image-gallery" in logged
    assert "Traceback (most recent call last):" in logged and "hooks/providers/chain.py" in logged, logged
    assert fake_arm.non_get_requests() == [] and vm.power_state == "running"


def test_waits_for_a_stopping_vm(fake_arm: FakeArm, host: DynamicHost) -> None:  # noqa: F811
    vm = fake_arm.add_vm(power_state="stopping", settles_to="stopped", settle_after_reads=3)
    _, outs = host.create(URN, props(fake_arm, vm.id))
    assert outs["actions"] == ["deallocated", "generalized"]


def test_failed_lro_is_reported_with_azures_message(fake_arm: FakeArm, host: DynamicHost) -> None:  # noqa: F811
    vm = fake_arm.add_vm(power_state="running")
    fake_arm.fail_next_lro("AllocationFailed", "Deallocation failed because of a platform problem 4711.")
    with pytest.raises(HostError) as err:
        host.create(URN, props(fake_arm, vm.id))
    assert "4711" in err.value.details and "AllocationFailed" in err.value.details
    assert vm.name in err.value.details
    assert not vm.generalized, "nothing after the failed step may run"


def test_hanging_lro_is_bounded(fake_arm: FakeArm, host: DynamicHost) -> None:  # noqa: F811
    vm = fake_arm.add_vm(power_state="running")
    fake_arm.hang_next_lro()
    p = props(fake_arm, vm.id)
    p["arm"]["operation_timeout"] = 1.5
    with pytest.raises(HostError) as err:
        host.create(URN, p)
    # Ended by the configured bound (not by the 60 s per-request bound, nor by the test's timeout), saying so.
    assert "gave up after 1.5s waiting for Azure to deallocate" in err.value.details
    assert "operation status InProgress" in err.value.details


def test_a_bound_passing_during_a_slow_poll_is_reported_as_the_bound(
    fake_arm: FakeArm,  # noqa: F811
    host: DynamicHost,
) -> None:
    # Under CPU load the fake (like a slow ARM) takes a while to answer each poll; the request in flight when the
    # bound passes is cut off by it (its read timeout is capped by what is left of the bound). That is the bound
    # ending the wait, not ARM failing to answer: the same message as with fast polls.
    vm = fake_arm.add_vm(power_state="running")
    fake_arm.hang_next_lro()
    fake_arm.slow_down(method="GET", path=r"/operations/", seconds=0.4)
    p = props(fake_arm, vm.id)
    p["arm"]["operation_timeout"] = 1.5
    with pytest.raises(HostError) as err:
        host.create(URN, p)
    assert "gave up after 1.5s waiting for Azure to deallocate" in err.value.details
    assert "did not answer" not in err.value.details
    assert fake_arm.count("GET", r"/operations/") >= 2, "ARM answered polls before the bound passed"


def test_throttling_and_transient_errors_are_retried(fake_arm: FakeArm, host: DynamicHost) -> None:  # noqa: F811
    vm = fake_arm.add_vm(power_state="running")
    fake_arm.throttle(times=2, method="GET", retry_after=1)
    fake_arm.fail_transient(times=1, method="POST", path=r"/generalize$")
    _, outs = host.create(URN, props(fake_arm, vm.id))
    assert outs["generalized"] is True


def test_specialized_only_deallocates(fake_arm: FakeArm, host: DynamicHost) -> None:  # noqa: F811
    vm = fake_arm.add_vm(power_state="running")
    _, outs = host.create(URN, props(fake_arm, vm.id, generalize=False))
    assert outs["actions"] == ["deallocated"]
    assert not vm.generalized and fake_arm.count("POST", r"/generalize$") == 0


def test_check_diff_read_update_delete(fake_arm: FakeArm, host: DynamicHost) -> None:  # noqa: F811
    vm = fake_arm.add_vm(power_state="running")
    news = props(fake_arm, vm.id)
    check = host.check(URN, {}, news)
    assert check.failures == []
    bad = host.check(URN, {}, props(fake_arm, "/subscriptions/nope/virtualMachines/x"))
    assert bad.failures and bad.failures[0][0] == "vm_id"
    id_, outs = host.create(URN, news)
    same = host.diff(URN, id_, outs, news)
    assert not same.changes
    other = fake_arm.add_vm(name="other-vm")
    moved = host.diff(URN, id_, outs, props(fake_arm, other.id))
    assert moved.changes and moved.replaces == ["vm_id"]
    # The source VM is deleted after capture: a refresh keeps the resource and does not fail.
    del fake_arm.vms[next(k for k, v in fake_arm.vms.items() if v is vm)]
    read_id, read_outs = host.read(URN, id_, outs)
    assert read_id == id_ and read_outs["generalized"] is True
    updated = host.update(URN, id_, outs, props(fake_arm, vm.id, arm={**news["arm"], "poll_interval": 1.0}))
    assert updated["actions"] == outs["actions"]
    before = len(fake_arm.requests)
    host.delete(URN, id_, outs)
    assert len(fake_arm.requests) == before, "delete must not touch the VM"
    assert "left untouched" in host.close()


def test_unreachable_arm_is_clear_and_bounded(fake_arm: FakeArm, host_factory: Any) -> None:  # noqa: F811
    host = host_factory(fake_arm.env)
    p = props(fake_arm, fake_arm.add_vm().id)
    p["arm"]["endpoint"] = "https://127.0.0.1:9"  # nothing listens on the discard port
    with pytest.raises(HostError) as err:
        host.create(URN, p)
    assert "reach" in err.value.details.lower()


def test_logged_out_credentials_say_so(fake_arm: FakeArm, host_factory: Any) -> None:  # noqa: F811
    fake_arm.az_logged_out = True
    host = host_factory(fake_arm.env)
    with pytest.raises(HostError) as err:
        host.create(URN, props(fake_arm, fake_arm.add_vm().id))
    assert "az login" in err.value.details
    assert fake_arm.token not in err.value.details


def test_arm_half_costs_seven_requests_on_one_connection_and_one_login(fake_arm: FakeArm, host: DynamicHost) -> None:  # noqa: F811
    for i in range(3):
        vm = fake_arm.add_vm(name=f"vm-{i}", power_state="running")
        before = len(fake_arm.requests)
        host.create(URN, props(fake_arm, vm.id))
        assert len(fake_arm.requests) - before <= 7, [r.path for r in fake_arm.requests[before:]]
    # Instance view once at the start and once to verify: never twice in a row.
    assert fake_arm.count("GET", r"/instanceView$") == 6
    assert fake_arm.connections == 1, "one connection for the host process"
    assert fake_arm.logins() == 1, "one login for the host process"


def test_vm_id_differing_only_in_case_is_the_same_vm(fake_arm: FakeArm, host: DynamicHost) -> None:  # noqa: F811
    vm = fake_arm.add_vm(power_state="running")
    id_, outs = host.create(URN, props(fake_arm, vm.id))
    shouted = vm.id.replace("resourceGroups/rg-src", "resourcegroups/RG-SRC").replace("src-vm", "SRC-VM")
    assert not host.diff(URN, id_, outs, props(fake_arm, shouted)).changes


def test_a_change_of_generalize_reruns_the_arm_half_as_an_update(fake_arm: FakeArm, host: DynamicHost) -> None:  # noqa: F811
    vm = fake_arm.add_vm(power_state="running")
    id_, outs = host.create(URN, props(fake_arm, vm.id, generalize=False, deallocate=False))
    assert outs["actions"] == [] and not vm.generalized
    news = props(fake_arm, vm.id, generalize=True, deallocate=True)
    diff = host.diff(URN, id_, outs, news)
    assert diff.changes and diff.replaces == [], "the same VM: an update, not a replacement"
    updated = host.update(URN, id_, outs, news)
    assert updated["actions"] == ["deallocated", "generalized"] and updated["generalized"] is True
    assert vm.power_state == "deallocated" and vm.generalized
    # Only deallocate changed: the same, for an older state without the recorded flags too.
    legacy = {k: v for k, v in outs.items() if k not in ("generalize", "deallocate")}
    assert host.diff(URN, id_, legacy, props(fake_arm, vm.id, generalize=False, deallocate=True)).changes


def test_delete_logs_under_the_resources_own_name(fake_arm: FakeArm, host: DynamicHost) -> None:  # noqa: F811
    vm = fake_arm.add_vm(power_state="running")
    id_, outs = host.create(URN, props(fake_arm, vm.id, resource_name="web-2.1.0-vm"))
    host.delete(URN, id_, outs)
    stderr = host.close()
    assert "[web-2.1.0-vm] removed from the stack" in stderr
    assert "[vm] removed" not in stderr
