"""How long an ARM call may take: one operation's bound in time (`Budget`), shared by every request it makes, and
the azure-core policies that keep retries, throttling and long-running-operation polls within it.

Every call is bounded: one HTTP request by `ArmSettings.request_timeout`, one operation (retries, throttling and
long-running operations included) by `ArmSettings.operation_timeout` (`armOperationTimeoutMinutes`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from azure.core.exceptions import AzureError, ServiceRequestError, ServiceResponseError
from azure.core.pipeline.policies import RequestHistory, RetryPolicy
from azure.core.rest import HttpRequest, HttpResponse
from azure.mgmt.core.polling.arm_polling import ARMPolling

from hooks.log import Log
from hooks.targets import ArmSettings
from hooks.waiting import Deadline

CALL_OPTION = "image_gallery_call"
"""Per-call option carrying the operation's `Budget` through the azure-core pipeline to `BoundedRetryPolicy`
(which pops it: the transport never sees it)."""


@dataclass
class Budget:
    """One operation's bound, shared by every request it makes (first request, retries, LRO polls)."""

    settings: ArmSettings
    what: str
    """e.g. "deallocate VM x (resource group y)", for log lines and errors."""
    log: Log | None = None
    within: Deadline | None = None
    """The longer wait this call is part of (e.g. a deallocation's, for its first read and its POST): the call
    ends at the bound or with that wait, whichever comes first; messages name the bound of `settings`."""
    started: float = field(default_factory=time.monotonic)
    throttled: int = 0
    """Throttled answers (429, or 503 with Retry-After) received so far."""
    unanswered: int = 0
    """Requests that got no answer within the per-request bound so far."""
    repeated: int = 0
    """Times the request sent last was sent again (azure-core's retries; a POST, by hooks/arm/vm.py after reading
    the VM): an error says the request was retried only when it was."""
    last_error: AzureError | None = None
    """The last transport error (no answer, reset): what the call ends with when its bound runs out."""

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def remaining(self) -> float:
        left = self.settings.operation_timeout - self.elapsed
        return left if self.within is None else min(left, self.within.remaining)

    def options(self) -> dict[str, Any]:
        """Keyword arguments for one azure-mgmt call (and its poller): this budget and the per-request bounds."""
        s = self.settings
        options: dict[str, Any] = {
            CALL_OPTION: self,
            "connection_timeout": s.request_timeout,
            "read_timeout": s.request_timeout,
            "timeout": max(self.remaining, 0.001),
        }
        if s.max_retries is not None:
            options["retry_total"] = s.max_retries
        return options


_SENT = "image_gallery_sent"
"""Request context key: the request went out once already (the next attempt is a retry)."""

CUT_BY_THE_BOUND = 0.1
"""Seconds: a request left unanswered with less than this left of its operation's bound was cut off by the bound
(its read timeout is capped by what is left), not by ARM's silence; it is neither logged nor counted as silence."""


class Throttled(Exception):
    """ARM kept throttling (429, or a 5xx with Retry-After) until the operation's bound could not cover the next
    wait.

    Deliberately not an AzureError: azure-core's retry loop would catch that and retry until its timeout."""

    def __init__(self, retry_after: float, budget: Budget) -> None:
        super().__init__(f"ARM asked to retry after {retry_after:g}s with {budget.remaining:.0f}s of the bound left")
        self.retry_after = retry_after
        self.budget = budget


class OperationBound(Exception):
    """The operation's bound ends the wait while its long-running operation still runs: it passed, or ARM set the
    next poll (Retry-After, its poll interval) beyond it."""

    def __init__(self, status: str, next_poll: float | None = None) -> None:
        super().__init__(f"operation status {status}")
        self.status = status
        self.next_poll = next_poll
        """Seconds ARM asked to wait before the next poll, when that is what ended the wait early."""


class WaitEnded(Exception):
    """A request within a longer wait (`Budget.within`) got no answer before that wait ended: the wait's end cut it
    short, ARM did not fail. Not an AzureError, so it is not translated: the wait reports its own timeout, with
    what it saw last. A reset, or a request that failed before the end, is ARM's failure and stays one."""


def raise_if_wait_ended(exc: AzureError, budget: Budget) -> None:
    """Raise WaitEnded when `exc` is a request left unanswered because the longer wait it is part of ended."""
    if (
        budget.within is not None
        and isinstance(exc, ServiceResponseError)
        and not is_reset(exc)
        and budget.within.remaining <= CUT_BY_THE_BOUND
    ):
        raise WaitEnded(f"{budget.what}: the wait for {budget.within.what} ended") from exc


class BoundedRetryPolicy(RetryPolicy[HttpRequest, HttpResponse]):
    """azure-core's retries, bounded by the operation instead of by counts for what only time cures.

    - Throttling (429, or any answer with Retry-After) is retried, honouring Retry-After, for as long as the
      operation's bound allows; it does not use up `max_retries` (azure-core's default of 3 status retries would
      end a throttled deallocate after a few seconds). When the bound cannot cover the next wait, the call ends
      at once with `Throttled`, so the error says ARM throttles rather than "timed out".
    - A request that gets no answer (read timeout) or a reset connection is retried within the same bound, and
      each retry is logged, so a silent ARM is reported after one per-request bound, not after all retries.
      azure-core repeats no POST that went unanswered (ARM may have acted on it); hooks/arm/vm.py reads the VM
      before sending deallocate or generalize again.
    - Each request's read timeout, and every wait between attempts (Retry-After or azure-core's exponential backoff,
      up to 120 s), is capped by what is left of the operation's bound: a call ends at its bound, not a backoff
      later."""

    def __init__(self, **kwargs: Any) -> None:
        # Counts stay generous: the bound in time is what ends a call.
        kwargs.setdefault("retry_status", 10)
        kwargs.setdefault("retry_read", 10)
        kwargs.setdefault("retry_connect", 3)
        super().__init__(**kwargs)

    def configure_retries(self, options: dict[str, Any]) -> dict[str, Any]:
        budget = options.pop(CALL_OPTION, None)
        settings = super().configure_retries(options)
        settings["budget"] = budget
        if isinstance(budget, Budget):
            settings["timeout"] = max(min(settings["timeout"], budget.remaining), 0.001)
        return settings

    def send(self, request: Any) -> Any:
        request.context[CALL_OPTION] = request.context.options.get(CALL_OPTION)
        return super().send(request)

    def _configure_timeout(self, request: Any, absolute_timeout: float, is_response_error: bool) -> None:
        budget = request.context.get(CALL_OPTION)
        if absolute_timeout <= 0 and isinstance(budget, Budget) and budget.last_error is not None:
            # The bound ran out between retries: end with what actually happened (a reset, no answer), not with
            # azure-core's bare "Response timeout".
            raise budget.last_error
        super()._configure_timeout(request, absolute_timeout, is_response_error)
        if isinstance(budget, Budget):
            # This attempt goes out: the first of its request, or the request sent again.
            budget.repeated = budget.repeated + 1 if request.context.get(_SENT) else 0
            request.context[_SENT] = True
        options = request.context.options
        if "read_timeout" in options:
            options["read_timeout"] = max(min(options["read_timeout"], absolute_timeout), 0.001)

    def increment(self, settings: dict[str, Any], response: Any = None, error: Exception | None = None) -> bool:
        budget = settings.get("budget")
        http = getattr(response, "http_response", None)
        if error is None and http is not None and is_throttle(http):
            # Throttling does not use up the retries: only the bound ends it (checked in `sleep`).
            if isinstance(budget, Budget):
                budget.throttled += 1
            settings["history"].append(RequestHistory(response.http_request, http_response=http))
            return True
        if isinstance(error, AzureError) and isinstance(budget, Budget):
            budget.last_error = error
        if (
            error is not None
            and isinstance(budget, Budget)
            and budget.log is not None
            and budget.remaining > CUT_BY_THE_BOUND
        ):
            budget.unanswered += 1
            budget.log.info(
                f"ARM at {budget.settings.endpoint} {no_answer(error, budget.settings)} to {budget.what}; retrying "
                f"({budget.remaining:.0f}s left of the {bound_text(budget.settings)})"
            )
        return bool(super().increment(settings, response=response, error=error))

    def sleep(self, settings: dict[str, Any], transport: Any, response: Any = None) -> None:
        budget = settings.get("budget")
        if not isinstance(budget, Budget):
            super().sleep(settings, transport, response=response)
            return
        retry_after = self.get_retry_after(response) if response is not None else None
        if retry_after is not None and is_throttle(response.http_response):
            if retry_after >= budget.remaining:
                raise Throttled(retry_after, budget)
            if budget.log is not None and budget.throttled in (1, 10, 100):
                budget.log.info(
                    f"ARM is throttling requests to {budget.what} (HTTP {response.http_response.status_code}, "
                    f"Retry-After {retry_after:g}s); waiting as asked ({budget.remaining:.0f}s left of the "
                    f"{bound_text(budget.settings)})"
                )
        # As azure-core does (Retry-After when given and not 0, else its exponential backoff), never past the bound:
        # the next attempt then finds the bound used up and ends the call with what happened last.
        wait = retry_after if retry_after else self.get_backoff_time(settings)
        wait = min(wait, max(budget.remaining, 0.0))
        if wait > 0:
            transport.sleep(wait)


def is_throttle(response: Any) -> bool:
    """ARM throttles: a 429, or a 5xx carrying Retry-After."""
    return bool(response.status_code == 429 or (response.status_code >= 500 and response.headers.get("Retry-After")))


def bound_text(s: ArmSettings) -> str:
    """The operation bound, as the user sets it."""
    return f"{s.operation_timeout:g}s bound ({s.bound_source})"


def is_reset(exc: BaseException) -> bool:
    """True when the peer closed or reset the connection (as opposed to not answering in time)."""
    text = f"{exc} {exc.__cause__ or ''} {getattr(exc, 'inner_exception', '') or ''}".lower()
    return any(m in text for m in ("connection reset", "connection aborted", "remotedisconnected", "broken pipe"))


def no_answer(exc: BaseException, s: ArmSettings) -> str:
    """What ARM did instead of answering, completing "ARM at <endpoint> …"."""
    if is_reset(exc):
        return "closed (reset) the connection without an answer"
    if isinstance(exc, ServiceRequestError):
        return "could not be reached"
    return f"did not answer within the per-request bound of {s.request_timeout:g}s"


class BoundedPolling(ARMPolling):
    """ARM's LRO polling, ended by the operation's bound: the poller thread stops by itself when the bound
    passes (nothing is left polling in the background).

    A Retry-After on an operation's answer is ARM's poll interval (when to ask again), not throttling: one longer
    than what is left of the bound ends the wait at once with `OperationBound` (the operation still runs; ARM
    will have nothing new before the bound), instead of sleeping past the bound or calling it throttling."""

    def __init__(self, budget: Budget, **kwargs: Any) -> None:
        super().__init__(budget.settings.poll_interval, **kwargs)
        self._budget = budget

    def _delay(self) -> None:
        delay = self._extract_delay()
        if delay >= self._budget.remaining:
            headers = self._pipeline_response.http_response.headers
            if any(headers.get(h) for h in ("Retry-After", "retry-after-ms", "x-ms-retry-after-ms")):
                raise OperationBound(self.status(), next_poll=delay)
            self._sleep(max(self._budget.remaining, 0.0))
            raise OperationBound(self.status())
        self._sleep(delay)
