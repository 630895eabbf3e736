"""How long an ARM call may take (hooks/arm/budget.py): throttling waited out as ARM asks and only the bound ends
it, silence and resets retried and counted, every wait capped by what is left of the bound.

The real azure-core pipeline with `BoundedRetryPolicy`, over a scripted transport (each answer, or failure, in
turn) that records what each attempt was sent with and every wait: the integration tests show the same against
the fake ARM, in seconds rather than milliseconds."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from azure.core.exceptions import AzureError, ServiceRequestError, ServiceResponseError
from azure.core.pipeline import Pipeline
from azure.core.pipeline.transport import HttpRequest, HttpTransport

from hooks.arm.budget import (
    CALL_OPTION,
    BoundedRetryPolicy,
    Budget,
    Throttled,
    WaitEnded,
    bound_text,
    is_reset,
    is_throttle,
    no_answer,
    raise_if_wait_ended,
)
from hooks.log import Log
from hooks.waiting import Deadline
from tests.unit.arm_answers import SETTINGS, answer

Step = tuple[int, dict[str, str]] | Callable[[], Exception]
"""One attempt's outcome: (status, headers) answered, or the failure raised."""


def reset() -> ServiceResponseError:
    return ServiceResponseError("Connection aborted.", error=ConnectionResetError(104, "Connection reset by peer"))


def silence() -> ServiceResponseError:
    return ServiceResponseError("Read timed out. (read timeout=20)")


def throttle(status: int = 429, seconds: str = "0.01") -> Step:
    return (status, {"Retry-After": seconds})


OK: Step = (200, {})


class ScriptedArm(HttpTransport):  # type: ignore[type-arg]
    """Answers each attempt with the next step (the last one repeats); records what each was sent with."""

    def __init__(self, *script: Step) -> None:
        self.script = list(script)
        self.sent: list[dict[str, Any]] = []
        self.sleeps: list[float] = []

    def send(self, request: Any, **kwargs: Any) -> Any:
        self.sent.append(dict(kwargs))
        step = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if callable(step):
            raise step()
        status, headers = step
        return answer(status, {}, headers=headers, method=request.method)

    def sleep(self, duration: float) -> None:
        self.sleeps.append(duration)
        time.sleep(duration)  # the budget runs on the real clock

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> ScriptedArm:
        return self

    def __exit__(self, *args: object) -> None:
        pass


def run(budget: Budget, arm: ScriptedArm, method: str = "GET") -> int:
    """One call through azure-core's pipeline with the budget's options, as hooks.arm makes every call."""
    pipeline = Pipeline(transport=arm, policies=[BoundedRetryPolicy()])
    request = HttpRequest(method, f"{SETTINGS.endpoint}/subscriptions/x/resourceGroups/rg?api-version=2024-07-01")
    return int(pipeline.run(request, **budget.options()).http_response.status_code)


def logged() -> tuple[Log, list[str]]:
    lines: list[str] = []
    return Log("test", sink=lines.append), lines


# --- what is throttling ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "headers", "throttling"),
    [
        (429, {}, True),
        (429, {"Retry-After": "5"}, True),
        (503, {"Retry-After": "5"}, True),
        (500, {"Retry-After": "1"}, True),
        (503, {}, False),
        (500, {}, False),
        (409, {"Retry-After": "5"}, False),
        (202, {"Retry-After": "5"}, False),
        (200, {}, False),
    ],
)
def test_throttling_is_a_429_or_a_5xx_with_retry_after(status: int, headers: dict[str, str], throttling: bool) -> None:
    assert is_throttle(answer(status, headers=headers)) is throttling


def test_a_5xx_with_retry_after_is_waited_out_as_asked_without_using_up_the_retries() -> None:
    arm = ScriptedArm(*[throttle(503)] * 5, OK)
    budget = Budget(replace(SETTINGS, max_retries=1), "read the VM")
    assert run(budget, arm) == 200
    assert arm.sleeps == [0.01] * 5
    assert budget.throttled == 5


def test_a_5xx_without_retry_after_uses_up_the_retries() -> None:
    arm = ScriptedArm((503, {}), (503, {}), OK)
    budget = Budget(replace(SETTINGS, max_retries=1), "read the VM")
    assert run(budget, arm) == 503
    assert len(arm.sent) == 2
    assert budget.throttled == 0


def test_ten_5xx_answers_are_retried_when_no_retry_count_is_set() -> None:
    arm = ScriptedArm(*[(500, {})] * 9, OK)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(BoundedRetryPolicy, "get_backoff_time", lambda self, settings: 0.0)
        assert run(Budget(SETTINGS, "read the VM"), arm) == 200
    assert len(arm.sent) == 10


def test_ten_unanswered_reads_are_retried_within_the_bound() -> None:
    arm = ScriptedArm(*[silence] * 9, OK)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(BoundedRetryPolicy, "get_backoff_time", lambda self, settings: 0.0)
        assert run(Budget(SETTINGS, "read the VM"), arm) == 200
    assert len(arm.sent) == 10


def test_throttling_is_logged_at_the_first_tenth_and_hundredth_answer_only() -> None:
    log, lines = logged()
    arm = ScriptedArm(*[throttle(429)] * 11, OK)
    assert run(Budget(SETTINGS, "read the VM", log), arm) == 200
    assert len(lines) == 2
    assert lines[0].startswith("[test] ARM is throttling requests to read the VM (HTTP 429, Retry-After 0.01s);")
    assert "left of the 120s bound (armKey))" in lines[0]


def test_a_retry_after_the_bound_cannot_cover_ends_the_call_at_once_as_throttling() -> None:
    arm = ScriptedArm(throttle(503, "30"), OK)
    budget = Budget(replace(SETTINGS, operation_timeout=5.0), "read the VM")
    with pytest.raises(Throttled) as caught:
        run(budget, arm)
    assert caught.value.retry_after == 30
    assert caught.value.budget is budget
    assert budget.throttled == 1
    assert arm.sleeps == []


def test_no_wait_between_attempts_goes_past_the_bound() -> None:
    # azure-core's backoff after the second 500 is 1.6 s, after the third 3.2 s; the bound leaves 0.6 s in all.
    arm = ScriptedArm((500, {}), (500, {}), (500, {}), OK)
    budget = Budget(replace(SETTINGS, operation_timeout=0.6), "read the VM")
    started = time.monotonic()
    with pytest.raises(ServiceResponseError):
        run(budget, arm)
    assert time.monotonic() - started < 1.5
    assert max(arm.sleeps) <= 0.6


# --- no answer, or a reset -------------------------------------------------------------------------------------


def test_a_request_left_unanswered_is_counted_logged_and_sent_again() -> None:
    log, lines = logged()
    arm = ScriptedArm(silence, OK)
    budget = Budget(SETTINGS, "read the VM", log)
    assert run(budget, arm) == 200
    assert budget.unanswered == 1
    assert budget.repeated == 1
    assert isinstance(budget.last_error, ServiceResponseError)
    assert len(lines) == 1
    assert lines[0].startswith(
        f"[test] ARM at {SETTINGS.endpoint} did not answer within the per-request bound of 20s to read the VM; "
        "retrying ("
    )
    assert lines[0].endswith("s left of the 120s bound (armKey))")


def test_a_request_answered_at_once_is_not_said_to_be_sent_again() -> None:
    budget = Budget(SETTINGS, "read the VM")
    assert run(budget, ScriptedArm(OK)) == 200
    assert (budget.repeated, budget.unanswered, budget.throttled) == (0, 0, 0)


def test_each_retry_counts_as_the_request_sent_again() -> None:
    budget = Budget(SETTINGS, "read the VM")
    assert run(budget, ScriptedArm(reset, reset, OK)) == 200
    assert budget.repeated == 2


def test_a_bound_used_up_between_retries_ends_with_what_happened_not_a_bare_timeout() -> None:
    budget = Budget(replace(SETTINGS, operation_timeout=0.3), "read the VM")
    with pytest.raises(ServiceResponseError) as caught:
        run(budget, ScriptedArm(reset))
    assert is_reset(caught.value)


def test_each_attempt_waits_for_its_answer_only_as_long_as_the_bound_has_left() -> None:
    arm = ScriptedArm(OK)
    run(Budget(replace(SETTINGS, operation_timeout=3.0), "read the VM"), arm)
    assert 0 < arm.sent[0]["read_timeout"] <= 3.0
    arm = ScriptedArm(OK)
    run(Budget(SETTINGS, "read the VM"), arm)
    assert arm.sent[0]["read_timeout"] == 20.0
    assert CALL_OPTION not in arm.sent[0]


def test_a_call_whose_bound_is_used_up_still_goes_out_once_with_a_token_timeout() -> None:
    budget = Budget(replace(SETTINGS, operation_timeout=0.0), "read the VM")
    assert 0 < budget.options()["timeout"] <= 0.01
    arm = ScriptedArm(OK)
    assert run(budget, arm) == 200
    assert 0 < arm.sent[0]["read_timeout"] <= 0.01


# --- a budget --------------------------------------------------------------------------------------------------


def test_a_budget_within_a_longer_wait_ends_with_whichever_ends_first() -> None:
    assert Budget(SETTINGS, "x").remaining == pytest.approx(120.0, abs=0.5)
    assert Budget(SETTINGS, "x", within=Deadline(10.0, "the wait")).remaining == pytest.approx(10.0, abs=0.5)
    assert Budget(SETTINGS, "x", within=Deadline(500.0, "the wait")).remaining == pytest.approx(120.0, abs=0.5)
    started = Budget(SETTINGS, "x", started=time.monotonic() - 20.0)
    assert started.elapsed == pytest.approx(20.0, abs=0.5)
    assert started.remaining == pytest.approx(100.0, abs=0.5)


def test_a_calls_options_carry_its_budget_and_per_request_bounds() -> None:
    budget = Budget(SETTINGS, "x")
    options = budget.options()
    assert options[CALL_OPTION] is budget
    assert options["connection_timeout"] == options["read_timeout"] == 20.0
    assert options["timeout"] == pytest.approx(120.0, abs=0.5)
    assert "retry_total" not in options
    assert Budget(replace(SETTINGS, max_retries=2), "x").options()["retry_total"] == 2


def test_the_bound_is_named_as_the_user_sets_it() -> None:
    assert bound_text(SETTINGS) == "120s bound (armKey)"


# --- a wait's end, a reset, silence ------------------------------------------------------------------------------


def test_a_request_the_end_of_its_wait_left_unanswered_is_the_wait_ending() -> None:
    ended = Deadline(0.0, "the VM to stop")
    with pytest.raises(WaitEnded, match="read the VM: the wait for the VM to stop ended"):
        raise_if_wait_ended(silence(), Budget(SETTINGS, "read the VM", within=ended))


@pytest.mark.parametrize(
    ("exc", "seconds"),
    [
        (reset(), 0.0),
        (ServiceRequestError("refused"), 0.0),
        (silence(), 60.0),
        (silence(), None),
    ],
    ids=["reset", "not reached", "wait not over", "no wait"],
)
def test_anything_else_is_arms_failure(exc: AzureError, seconds: float | None) -> None:
    # The deadline starts in the test, not when the module is collected: the suite can run for many minutes first.
    within = Deadline(seconds, "w") if seconds is not None else None
    raise_if_wait_ended(exc, Budget(SETTINGS, "read the VM", within=within))


@pytest.mark.parametrize(
    "exc",
    [
        ServiceResponseError("('Connection aborted.', RemoteDisconnected('closed'))"),
        ServiceResponseError("failed", error=BrokenPipeError(32, "Broken pipe")),
        reset(),
    ],
)
def test_a_closed_connection_is_a_reset(exc: Exception) -> None:
    assert is_reset(exc)
    assert no_answer(exc, SETTINGS) == "closed (reset) the connection without an answer"


def test_a_reset_found_only_in_the_cause_is_a_reset() -> None:
    try:
        try:
            raise ConnectionResetError(104, "Connection reset by peer")
        except ConnectionResetError as cause:
            raise ServiceResponseError("request failed") from cause
    except ServiceResponseError as exc:
        assert is_reset(exc)


def test_silence_and_an_unreachable_arm_are_told_apart() -> None:
    assert not is_reset(silence())
    assert no_answer(silence(), SETTINGS) == "did not answer within the per-request bound of 20s"
    assert no_answer(ServiceRequestError("Name or service not known"), SETTINGS) == "could not be reached"
