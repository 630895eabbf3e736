"""Raw ARM requests (`arm.request`) and the asynchronous operations they start (`arm.ArmRequests`), against the
HTTPS fake of ARM through the real azure-core pipeline: an operation is followed by its Azure-AsyncOperation,
else its Location, only on the ARM endpoint, at the interval ARM asks, never past its wait; every failure once
ARM accepted the request says it may still be running in Azure, and what the next run does."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

import pytest

from hooks import arm
from hooks.errors import ArmAccessDenied, ArmError, ArmUnreachable, WaitTimeout
from hooks.log import Log
from hooks.waiting import Deadline

if TYPE_CHECKING:
    from tests.fakes.arm import FakeArm, FakeVm

pytest_plugins = ["tests.fakes.arm"]

COMPUTE_API = "2024-07-01"
PERMISSION = "Microsoft.Compute/virtualMachines/deallocate/action"
NEXT_RUN = "The next run looks for it first."
OPERATIONS = r"/operations/[0-9a-f-]+$"


@pytest.fixture
def client(fake_arm_env: FakeArm) -> arm.ArmRequests:
    return arm.ArmRequests(
        fake_arm_env.settings(), fake_arm_env.subscription_id, Log("test", sink=lambda line: None), NEXT_RUN
    )


def start_deallocation(fake: FakeArm, client: arm.ArmRequests) -> tuple[FakeVm, dict[str, str]]:
    """POST deallocate to a running VM: ARM's 202 with the operation's URLs."""
    vm = fake.add_vm(power_state="running")
    status, body, headers = client.send(
        "POST", f"{vm.id}/deallocate?api-version={COMPUTE_API}", "deallocate", str(vm.ref), PERMISSION
    )
    assert (status, body) == (202, None)
    return vm, dict(headers)


# --- one raw request ---------------------------------------------------------------------------------------------


def test_a_raw_request_returns_arms_answer_and_raises_its_refusal(fake_arm_env: FakeArm) -> None:
    vm = fake_arm_env.add_vm()
    call = arm.Call(fake_arm_env.settings(), "read", str(vm.ref), "Microsoft.Compute/virtualMachines/read")
    found = arm.request(call, vm.ref.subscription_id, "GET", vm.id, params={"api-version": COMPUTE_API})
    assert found.status_code == 200
    assert found.json()["name"] == vm.name

    missing = f"{vm.id}-gone"
    with pytest.raises(ArmError, match=r"^Azure refused to read VM src-vm .*\(HTTP 404 ResourceNotFound\)"):
        arm.request(call, vm.ref.subscription_id, "GET", missing, params={"api-version": COMPUTE_API})
    answer = arm.request(
        call, vm.ref.subscription_id, "GET", missing, params={"api-version": COMPUTE_API}, accept=(404,)
    )
    assert answer.status_code == 404


def test_a_raw_request_refused_with_400_is_raised_not_returned(fake_arm_env: FakeArm) -> None:
    vm = fake_arm_env.add_vm()
    call = arm.Call(fake_arm_env.settings(), "read", str(vm.ref), "Microsoft.Compute/virtualMachines/read")
    with pytest.raises(ArmError, match=r"\(HTTP 400 MissingApiVersionParameter\)"):
        arm.request(call, vm.ref.subscription_id, "GET", vm.id)


def test_a_raw_request_sends_its_body(fake_arm_env: FakeArm) -> None:
    subnet = fake_arm_env.add_vnet()
    group = f"/subscriptions/{fake_arm_env.subscription_id}/resourceGroups/rg-x"
    nic = f"{group}/providers/Microsoft.Network/networkInterfaces/n1"
    body = {
        "location": "westeurope",
        "properties": {"ipConfigurations": [{"name": "ipconfig1", "properties": {"subnet": {"id": subnet}}}]},
    }
    call = arm.Call(fake_arm_env.settings(), "create", "NIC n1", "Microsoft.Network/networkInterfaces/write")
    answer = arm.request(
        call, fake_arm_env.subscription_id, "PUT", nic, params={"api-version": "2024-05-01"}, json=body
    )
    assert answer.status_code in (200, 201)
    assert fake_arm_env.bodies("PUT", r"/networkInterfaces/n1$") == [body]


# --- ArmRequests.send and get ------------------------------------------------------------------------------------


def test_get_returns_the_body_or_none_when_it_is_not_there(fake_arm_env: FakeArm, client: arm.ArmRequests) -> None:
    vm = fake_arm_env.add_vm(power_state="deallocated")
    body = client.get(vm.id, COMPUTE_API, str(vm.ref), PERMISSION, "&$expand=instanceView")
    assert body is not None
    assert body["name"] == vm.name
    codes = {s["code"] for s in body["properties"]["instanceView"]["statuses"]}
    assert "PowerState/deallocated" in codes
    assert client.get(f"{vm.id}-gone", COMPUTE_API, str(vm.ref), PERMISSION) is None


def test_an_answer_that_is_not_json_has_no_body(fake_arm_env: FakeArm, client: arm.ArmRequests) -> None:
    vm = fake_arm_env.add_vm()
    fake_arm_env.fail_with_body(200, "OK", method="GET", path=r"/virtualMachines/src-vm$")
    status, body, _ = client.send("GET", f"{vm.id}?api-version={COMPUTE_API}", "read", str(vm.ref), PERMISSION)
    assert (status, body) == (200, None)


def test_a_refusal_other_than_404_names_what_was_being_done(fake_arm_env: FakeArm, client: arm.ArmRequests) -> None:
    vm = fake_arm_env.add_vm()
    fake_arm_env.deny(403, method="GET", path=r"/virtualMachines/src-vm$")
    with pytest.raises(ArmAccessDenied) as caught:
        client.get(vm.id, COMPUTE_API, str(vm.ref), "Microsoft.Compute/virtualMachines/read")
    assert str(caught.value).startswith(f"Azure denied the request to read {vm.ref} (403 ")
    assert "Microsoft.Compute/virtualMachines/read" in str(caught.value)


# --- following an operation ------------------------------------------------------------------------------------


def test_an_operation_is_followed_by_its_azure_asyncoperation_until_it_succeeds(
    fake_arm_env: FakeArm, client: arm.ArmRequests
) -> None:
    vm, headers = start_deallocation(fake_arm_env, client)
    client.wait_operation(headers, "deallocate", str(vm.ref), Deadline(10.0, "the deallocation"))
    assert vm.power_state == "deallocated"
    polls = [r for r in fake_arm_env.requests if r.path.rsplit("/", 1)[-1] in fake_arm_env.operations]
    assert len(polls) == fake_arm_env.lro_polls + 1
    assert all(r.query.get("monitor") is None for r in polls)


def test_an_operation_with_only_a_location_is_followed_while_it_answers_202(
    fake_arm_env: FakeArm, client: arm.ArmRequests
) -> None:
    vm, headers = start_deallocation(fake_arm_env, client)
    operation = next(iter(fake_arm_env.operations.values()))
    ends = threading.Timer(0.4, lambda: setattr(operation, "status", "Succeeded"))
    ends.start()
    started = time.monotonic()
    client.wait_operation({"location": headers["Location"]}, "deallocate", str(vm.ref), Deadline(10.0, "it"))
    assert time.monotonic() - started >= 0.4
    monitors = [r for r in fake_arm_env.requests if r.query.get("monitor") == "true"]
    assert len(monitors) >= 2
    assert fake_arm_env.count("GET", OPERATIONS) == len(monitors)


def test_an_answer_without_an_operation_has_nothing_to_follow(fake_arm_env: FakeArm, client: arm.ArmRequests) -> None:
    before = len(fake_arm_env.requests)
    client.wait_operation({"Content-Type": "application/json"}, "delete", "disk d", Deadline(1.0, "it"))
    assert len(fake_arm_env.requests) == before


@pytest.mark.parametrize("where", ["https://elsewhere.example", "http://127.0.0.1"])
def test_an_operation_url_off_the_arm_endpoint_is_never_sent_the_token(
    fake_arm_env: FakeArm, client: arm.ArmRequests, where: str
) -> None:
    url = f"{where}:{fake_arm_env.port}/subscriptions/x/providers/Microsoft.Compute/locations/w/operations/1"
    for header in ("Azure-AsyncOperation", "Location"):
        before = len(fake_arm_env.requests)
        with pytest.raises(ArmError) as caught:
            client.wait_operation({header: url}, "delete", "disk d", Deadline(1.0, "it"))
        assert str(caught.value) == (
            f"ARM answered the request to delete disk d with an operation URL outside {fake_arm_env.endpoint} "
            f"({url.split('/')[2]}); it is not followed (the token is never sent elsewhere)."
        )
        assert len(fake_arm_env.requests) == before


def test_a_failed_operation_quotes_azures_error(fake_arm_env: FakeArm, client: arm.ArmRequests) -> None:
    fake_arm_env.fail_next_lro("AllocationFailed", "No capacity in the region.")
    vm, headers = start_deallocation(fake_arm_env, client)
    with pytest.raises(ArmError) as caught:
        client.wait_operation(headers, "deallocate", str(vm.ref), Deadline(10.0, "the deallocation"))
    assert str(caught.value) == (
        f"Azure could not deallocate {vm.ref}: the operation ended Failed with AllocationFailed: No capacity in the "
        "region"
    )


def test_a_canceled_operation_without_details_says_so(fake_arm_env: FakeArm, client: arm.ArmRequests) -> None:
    vm, headers = start_deallocation(fake_arm_env, client)
    fake_arm_env.add_fault(200, method="GET", path=OPERATIONS, body={"status": "Canceled"})
    with pytest.raises(ArmError) as caught:
        client.wait_operation(headers, "deallocate", str(vm.ref), Deadline(10.0, "the deallocation"))
    assert str(caught.value) == (
        f"Azure could not deallocate {vm.ref}: the operation ended Canceled with no code: no details"
    )


def test_an_operation_answering_no_status_is_still_in_progress(fake_arm_env: FakeArm, client: arm.ArmRequests) -> None:
    vm, headers = start_deallocation(fake_arm_env, client)
    fake_arm_env.add_fault(200, method="GET", path=OPERATIONS, times=2, body={})
    client.wait_operation(headers, "deallocate", str(vm.ref), Deadline(10.0, "the deallocation"))
    assert fake_arm_env.count("GET", OPERATIONS) == 2 + fake_arm_env.lro_polls + 1
    assert vm.power_state == "deallocated"


def test_an_operation_still_running_at_the_deadline_says_what_the_next_run_does(
    fake_arm_env: FakeArm, client: arm.ArmRequests
) -> None:
    fake_arm_env.hang_next_lro()
    vm, headers = start_deallocation(fake_arm_env, client)
    started = time.monotonic()
    with pytest.raises(WaitTimeout) as caught:
        client.wait_operation(headers, "deallocate", str(vm.ref), Deadline(0.5, "the VM to deallocate"))
    assert time.monotonic() - started < 5, "the wait ends at its deadline, not when the operation does"
    assert str(caught.value) == (
        f"gave up after 0.5s waiting for the VM to deallocate: the operation to deallocate {vm.ref} is still "
        f"running. {NEXT_RUN}"
    )


def test_a_poll_the_end_of_the_wait_cuts_short_is_the_operation_still_running(
    fake_arm_env: FakeArm, client: arm.ArmRequests
) -> None:
    vm, headers = start_deallocation(fake_arm_env, client)
    fake_arm_env.slow_down(method="GET", path=OPERATIONS, seconds=4.0)
    started = time.monotonic()
    with pytest.raises(WaitTimeout) as caught:
        client.wait_operation(headers, "deallocate", str(vm.ref), Deadline(0.5, "the VM to deallocate"))
    assert time.monotonic() - started < 3, "the poll in flight ends with the wait, not when ARM answers it"
    assert str(caught.value) == (
        f"gave up after 0.5s waiting for the VM to deallocate: the operation to deallocate {vm.ref} is still "
        f"running. {NEXT_RUN}"
    )


def test_a_poll_arm_refuses_after_accepting_says_the_operation_may_still_run(
    fake_arm_env: FakeArm, client: arm.ArmRequests
) -> None:
    vm, headers = start_deallocation(fake_arm_env, client)
    fake_arm_env.fail_with_body(409, {"error": {"code": "Conflict", "message": "Busy."}}, method="GET", path=OPERATIONS)
    with pytest.raises(ArmError) as caught:
        client.wait_operation(headers, "deallocate", str(vm.ref), Deadline(10.0, "the deallocation"))
    assert str(caught.value).startswith(
        f"Azure refused to follow the operation to deallocate {vm.ref} (HTTP 409 Conflict): Busy."
    )
    assert str(caught.value).endswith(
        f"ARM had accepted the request to deallocate {vm.ref}, so it may still be running in Azure. {NEXT_RUN}"
    )


def test_polls_reset_until_the_wait_ends_name_the_waits_bound_and_its_key(
    fake_arm_env: FakeArm, client: arm.ArmRequests
) -> None:
    vm, headers = start_deallocation(fake_arm_env, client)
    fake_arm_env.reset_connection(method="GET", path=OPERATIONS, times=None)
    with pytest.raises(ArmUnreachable) as caught:
        client.wait_operation(headers, "deallocate", str(vm.ref), Deadline(1.5, "it"), bound_source="bootKey")
    assert "closed (reset) the connection without answering, to follow the operation to deallocate" in str(caught.value)
    assert "within the 1.5s bound (bootKey)" in str(caught.value)
    assert "so it may still be running in Azure" in str(caught.value)


def test_a_retry_after_on_a_poll_is_the_interval_to_the_next(fake_arm_env: FakeArm, client: arm.ArmRequests) -> None:
    vm, headers = start_deallocation(fake_arm_env, client)
    fake_arm_env.add_fault(
        200, method="GET", path=OPERATIONS, body={"status": "InProgress"}, headers={"Retry-After": "1"}
    )
    started = time.monotonic()
    client.wait_operation(headers, "deallocate", str(vm.ref), Deadline(10.0, "the deallocation"))
    assert 1.0 <= time.monotonic() - started < 3.0


@pytest.mark.parametrize("retry_after", ["Wed, 21 Oct 2015 07:28:00 GMT", "-5"])
def test_a_retry_after_that_is_no_number_of_seconds_ahead_is_not_waited(
    fake_arm_env: FakeArm, client: arm.ArmRequests, retry_after: str
) -> None:
    vm, headers = start_deallocation(fake_arm_env, client)
    fake_arm_env.add_fault(
        200, method="GET", path=OPERATIONS, times=3, body={"status": "InProgress"}, headers={"Retry-After": retry_after}
    )
    started = time.monotonic()
    client.wait_operation(headers, "deallocate", str(vm.ref), Deadline(10.0, "the deallocation"))
    assert time.monotonic() - started < 1.5
    assert vm.power_state == "deallocated"


def test_a_retry_after_past_the_wait_ends_with_the_wait(fake_arm_env: FakeArm, client: arm.ArmRequests) -> None:
    vm, headers = start_deallocation(fake_arm_env, client)
    fake_arm_env.add_fault(
        200, method="GET", path=OPERATIONS, times=None, body={"status": "InProgress"}, headers={"Retry-After": "60"}
    )
    started = time.monotonic()
    with pytest.raises(WaitTimeout, match="is still running"):
        client.wait_operation(headers, "deallocate", str(vm.ref), Deadline(0.5, "the deallocation"))
    assert time.monotonic() - started < 3


# --- delete ------------------------------------------------------------------------------------------------------


def test_delete_waits_for_the_deletion_and_says_whether_there_was_anything(
    fake_arm_env: FakeArm, client: arm.ArmRequests
) -> None:
    disk = fake_arm_env.add_disk("leftover", "rg-x")
    deadline = Deadline(10.0, "the deletion")
    api = "2024-03-02"
    permission = "Microsoft.Compute/disks/delete"
    assert client.delete(disk["id"], api, "disk leftover", permission, deadline) is True
    assert fake_arm_env.disks == {}
    assert fake_arm_env.count("GET", OPERATIONS) >= 1
    assert client.delete(disk["id"], api, "disk leftover", permission, deadline) is False  # 204: nothing there
    gone = f"/subscriptions/{fake_arm_env.subscription_id}/resourceGroups/rg-x/providers/Microsoft.Compute/nothing/x"
    assert client.delete(gone, api, "thing x", permission, deadline) is False  # 404


def test_a_deletion_that_fails_in_azure_says_what_it_deleted(fake_arm_env: FakeArm, client: arm.ArmRequests) -> None:
    disk = fake_arm_env.add_disk("leftover", "rg-x")
    fake_arm_env.fail_next_lro("DiskInUse", "The disk is in use.")
    with pytest.raises(ArmError) as caught:
        client.delete(disk["id"], "2024-03-02", "disk leftover", "Microsoft.Compute/disks/delete", Deadline(5, "it"))
    assert str(caught.value) == (
        "Azure could not delete disk leftover: the operation ended Failed with DiskInUse: The disk is in use"
    )
    assert fake_arm_env.disks, "the disk is still there"


def test_a_refused_delete_names_what_it_deleted(fake_arm_env: FakeArm, client: arm.ArmRequests) -> None:
    disk = fake_arm_env.add_disk("leftover", "rg-x")
    fake_arm_env.deny(403, method="DELETE", path=r"/disks/leftover$")
    with pytest.raises(ArmAccessDenied) as caught:
        client.delete(disk["id"], "2024-03-02", "disk leftover", "Microsoft.Compute/disks/delete", Deadline(5, "it"))
    assert str(caught.value).startswith("Azure denied the request to delete disk leftover (403 ")
