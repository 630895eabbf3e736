"""Every ARM wait within its bound, and said truly (issue 19 item 6): hooks.arm against the HTTPS fake of ARM with
faults injected, through the real azure-core pipeline.

- every wait between attempts (azure-core's exponential backoff too, not only Retry-After) is cut to what is left
  of the bound, so a deallocation whose every poll is reset ends at its bound;
- a Retry-After on an operation poll is ARM's poll interval, never called throttling (only a 429 or a 5xx with
  Retry-After is);
- a failure after ARM accepted the deallocation (202) says it may still be running in Azure, and what the next run
  does about it;
- a POST whose answer was lost is sent again only after reading the VM showed ARM did not act on it, and an error
  says the request was retried only when it was.
"""

from __future__ import annotations

import functools
import time
from typing import TYPE_CHECKING

import pytest

from hooks import arm, partner_center
from hooks.errors import ArmAccessDenied, ArmError, ArmUnreachable, WaitTimeout
from hooks.log import Log
from tests.integration.test_arm import OPERATION_PATH, expect_error

if TYPE_CHECKING:
    from tests.fakes.arm import FakeArm

pytest_plugins = ["tests.fakes.arm"]

DEALLOCATE = r"/deallocate$"
GENERALIZE = r"/generalize$"
ACCEPTED = "may still be running in Azure"
NEXT_RUN = "The next run reads the VM's state first"


@pytest.fixture
def log() -> Log:
    return Log("test", sink=lambda line: None)


# --- within the bound ----------------------------------------------------------------------------------------


def test_a_deallocation_whose_every_poll_is_reset_ends_at_its_bound_not_a_backoff_later(
    fake_arm_env: FakeArm, log: Log
) -> None:
    # Each poll is retried with azure-core's backoff (0, 1.6, 3.2 s, ...): uncapped, the third wait alone ends
    # 1.8 s past a 3 s bound (in production: 101 s for a 60 s bound).
    vm = fake_arm_env.add_vm()
    fake_arm_env.reset_connection(method="GET", path=OPERATION_PATH, times=None)
    started = time.monotonic()
    message = expect_error(
        fake_arm_env, ArmUnreachable, arm.deallocate, fake_arm_env.settings(operation_timeout=3.0), vm.ref, log
    )
    elapsed = time.monotonic() - started
    assert 2.5 < elapsed < 3.8, f"the 3 s bound ended the call after {elapsed:.1f}s"
    assert fake_arm_env.count("GET", OPERATION_PATH) >= 3, "the poll was retried within the bound"
    assert "closed (reset) the connection" in message
    assert "kept doing so on every retry within the 3s bound (armOperationTimeoutMinutes)" in message
    assert ACCEPTED in message and NEXT_RUN in message


def test_a_retry_after_on_an_operation_poll_is_its_poll_interval_not_throttling(
    fake_arm_env: FakeArm, log: Log
) -> None:
    vm = fake_arm_env.add_vm()
    fake_arm_env.add_fault(
        200,
        method="GET",
        path=OPERATION_PATH,
        times=None,
        headers={"Retry-After": "3600"},
        body={"status": "InProgress", "name": "op"},
    )
    started = time.monotonic()
    message = expect_error(
        fake_arm_env, WaitTimeout, arm.deallocate, fake_arm_env.settings(operation_timeout=3.0), vm.ref, log
    )
    assert time.monotonic() - started < 2, "nothing new comes before the next poll: the wait ends at once"
    assert "throttl" not in message.lower(), "a 200 with Retry-After is no throttling"
    assert "next poll 3600s away (Retry-After" in message and "still InProgress" in message
    assert "may still be deallocating" in message and "raise armOperationTimeoutMinutes" in message
    assert NEXT_RUN in message


def test_a_short_retry_after_on_an_operation_poll_is_waited_without_talk_of_throttling(fake_arm_env: FakeArm) -> None:
    vm = fake_arm_env.add_vm()
    lines: list[str] = []
    fake_arm_env.add_fault(
        200,
        method="GET",
        path=OPERATION_PATH,
        times=1,
        headers={"Retry-After": "1"},
        body={"status": "InProgress", "name": "op"},
    )
    started = time.monotonic()
    arm.deallocate(fake_arm_env.settings(), vm.ref, Log("test", sink=lines.append))
    assert time.monotonic() - started >= 0.9, "ARM's poll interval was honoured"
    assert vm.power_state == "deallocated"
    assert not [line for line in lines if "throttl" in line.lower()], lines


def test_a_429_on_an_operation_poll_is_throttling(fake_arm_env: FakeArm, log: Log) -> None:
    vm = fake_arm_env.add_vm()
    fake_arm_env.throttle(100, method="GET", path=OPERATION_PATH, retry_after=5)
    message = expect_error(
        fake_arm_env, ArmUnreachable, arm.deallocate, fake_arm_env.settings(operation_timeout=3.0), vm.ref, log
    )
    assert "is throttling requests" in message and "asked to wait 5s more" in message
    assert ACCEPTED in message


# --- after ARM accepted the operation --------------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["reset", "no answer", "refused"])
def test_a_failure_after_arm_accepted_the_deallocation_says_it_may_still_run(
    fake_arm_env: FakeArm, log: Log, fault: str
) -> None:
    vm = fake_arm_env.add_vm()
    if fault == "reset":
        fake_arm_env.reset_connection(method="GET", path=OPERATION_PATH, times=None)
    elif fault == "no answer":
        fake_arm_env.hang(method="GET", path=OPERATION_PATH, seconds=30)
    else:
        fake_arm_env.fail_with_body(
            400,
            {"error": {"code": "InvalidRequest", "message": "The operation ID is not valid."}},
            "GET",
            OPERATION_PATH,
        )
    settings = fake_arm_env.settings(request_timeout=0.5, operation_timeout=1.5)
    message = expect_error(fake_arm_env, ArmError, arm.deallocate, settings, vm.ref, log)
    assert "ARM had accepted the deallocation (202)" in message and ACCEPTED in message, message
    assert "waits for a deallocation still under way instead of starting another" in message
    assert fake_arm_env.count("POST", DEALLOCATE) == 1


def test_a_refusal_before_arm_accepted_the_deallocation_does_not_say_it_may_run(
    fake_arm_env: FakeArm, log: Log
) -> None:
    vm = fake_arm_env.add_vm()
    fake_arm_env.deny(403, method="POST", path=DEALLOCATE)
    message = expect_error(fake_arm_env, ArmAccessDenied, arm.deallocate, fake_arm_env.settings(), vm.ref, log)
    assert "accepted" not in message and ACCEPTED not in message


# --- a POST whose answer was lost -------------------------------------------------------------------------------


def test_a_lost_deallocate_that_arm_did_not_act_on_is_sent_again_after_reading_the_vm(fake_arm_env: FakeArm) -> None:
    vm = fake_arm_env.add_vm()
    lines: list[str] = []
    fake_arm_env.reset_connection(method="POST", path=DEALLOCATE, times=1)
    status = arm.deallocate(fake_arm_env.settings(), vm.ref, Log("test", sink=lines.append))
    assert status.power_state == "deallocated" and vm.power_state == "deallocated"
    assert fake_arm_env.count("POST", DEALLOCATE) == 2
    assert any("reading the VM's state before sending it again" in line for line in lines), lines


def test_a_lost_deallocate_that_arm_acted_on_is_not_sent_again(fake_arm_env: FakeArm) -> None:
    vm = fake_arm_env.add_vm()
    lines: list[str] = []
    fake_arm_env.lose_answer(method="POST", path=DEALLOCATE)
    status = arm.deallocate(fake_arm_env.settings(), vm.ref, Log("test", sink=lines.append))
    assert status.power_state == "deallocated" and vm.power_state == "deallocated"
    assert fake_arm_env.count("POST", DEALLOCATE) == 1, "ARM was deallocating: no second deallocate"
    assert any("the request ARM did not answer went through" in line for line in lines), lines


def test_a_lost_generalize_that_arm_did_not_act_on_is_sent_again(fake_arm_env: FakeArm, log: Log) -> None:
    vm = fake_arm_env.add_vm(power_state="deallocated")
    fake_arm_env.reset_connection(method="POST", path=GENERALIZE, times=1)
    arm.generalize(fake_arm_env.settings(), vm.ref, log)
    assert vm.generalized and fake_arm_env.count("POST", GENERALIZE) == 2


def test_a_lost_generalize_that_arm_acted_on_is_not_sent_again(fake_arm_env: FakeArm) -> None:
    vm = fake_arm_env.add_vm(power_state="deallocated")
    lines: list[str] = []
    fake_arm_env.lose_answer(method="POST", path=GENERALIZE)
    arm.generalize(fake_arm_env.settings(), vm.ref, Log("test", sink=lines.append))
    assert vm.generalized and fake_arm_env.count("POST", GENERALIZE) == 1
    assert any("generalized: the request ARM did not answer went through" in line for line in lines), lines


def test_a_deallocate_never_answered_is_sent_three_times_and_said_so(fake_arm_env: FakeArm, log: Log) -> None:
    vm = fake_arm_env.add_vm()
    fake_arm_env.reset_connection(method="POST", path=DEALLOCATE, times=None)
    message = expect_error(fake_arm_env, ArmUnreachable, arm.deallocate, fake_arm_env.settings(), vm.ref, log)
    assert fake_arm_env.count("POST", DEALLOCATE) == arm.POST_SENDS == 3
    assert "kept doing so on every retry" in message and "closed (reset) the connection" in message
    assert ACCEPTED not in message, "ARM never accepted it"
    assert vm.power_state == "running"


def test_a_post_that_is_not_sent_again_is_not_said_to_be_retried(fake_arm_env: FakeArm, log: Log) -> None:
    # Registering a resource provider: azure-core does not send an unanswered POST again, and neither does the step.
    fake_arm_env.reset_connection(method="POST", path=r"/register$", times=None)
    message = expect_error(
        fake_arm_env,
        ArmUnreachable,
        partner_center.register,
        fake_arm_env.settings(),
        fake_arm_env.subscription_id,
        "Microsoft.PartnerCenterIngestion",
        log,
    )
    assert fake_arm_env.count("POST", r"/register$") == 1
    assert "the request was not sent again" in message and "retr" not in message, message


def test_a_provider_registration_that_takes_long_ends_at_its_bound_not_a_poll_interval_later(
    fake_arm_env: FakeArm, log: Log
) -> None:
    fake_arm_env.register_polls = 1000  # Azure keeps registering
    started = time.monotonic()
    message = expect_error(
        fake_arm_env,
        WaitTimeout,
        partner_center.register,
        fake_arm_env.settings(operation_timeout=1.0, poll_interval=5.0),
        fake_arm_env.subscription_id,
        "Microsoft.PartnerCenterIngestion",
        log,
    )
    assert time.monotonic() - started < 2.5, "the 5 s poll interval was cut to the 1 s bound"
    assert "is still Registering after 1s" in message


def test_a_read_the_end_of_a_wait_cuts_short_reports_the_wait_and_what_was_seen_last(
    fake_arm_env: FakeArm, log: Log
) -> None:
    # Each read within a wait is bounded by what is left of it; the read the wait's end cuts off is not ARM's
    # silence: the wait's own timeout is reported, with the state seen last.
    vm = fake_arm_env.add_vm(power_state="deallocating", settles_to="deallocated", settle_after_reads=10_000)
    fake_arm_env.slow_down(method="GET", path=r"/instanceView$", seconds=1.0)
    seen = arm.VmStatus("deallocating", False, "updating", ("ProvisioningState/updating", "PowerState/deallocating"))
    wait = functools.partial(arm.wait_until_stopped, current=seen)
    started = time.monotonic()
    message = expect_error(fake_arm_env, WaitTimeout, wait, fake_arm_env.settings(operation_timeout=0.5), vm.ref, log)
    assert time.monotonic() - started < 1.5
    assert "gave up after 0.5s" in message and "PowerState/deallocating" in message
    assert "did not answer" not in message


def test_a_first_read_the_bound_cuts_short_is_arm_not_answering(fake_arm_env: FakeArm, log: Log) -> None:
    # Only the polls of a wait end as the wait's timeout; a read before anything was seen is ARM not answering.
    vm = fake_arm_env.add_vm(power_state="deallocating", settles_to="deallocated", settle_after_reads=10_000)
    fake_arm_env.slow_down(method="GET", path=r"/instanceView$", seconds=1.0)
    settings = fake_arm_env.settings(operation_timeout=0.5)
    message = expect_error(fake_arm_env, ArmUnreachable, arm.wait_until_stopped, settings, vm.ref, log)
    assert "did not answer in time" in message


def test_a_registration_read_the_end_of_the_wait_cuts_short_is_the_wait_timing_out(
    fake_arm_env: FakeArm, log: Log
) -> None:
    fake_arm_env.register_polls = 1000
    fake_arm_env.slow_down(method="GET", path=r"/providers/Microsoft\.PartnerCenterIngestion$", seconds=1.0)
    message = expect_error(
        fake_arm_env,
        WaitTimeout,
        partner_center.register,
        fake_arm_env.settings(operation_timeout=1.5, poll_interval=0.1),
        fake_arm_env.subscription_id,
        "Microsoft.PartnerCenterIngestion",
        log,
    )
    assert "is still Registering after 1.5s" in message
