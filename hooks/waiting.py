"""Bounded waiting: every wait in this project goes through here, so every wait has a bound and says what it
waited for when it gives up."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from hooks.errors import WaitTimeout

T = TypeVar("T")


@dataclass
class Deadline:
    """A point in time after which a wait gives up. `what` names the thing awaited, for the error message."""

    seconds: float
    what: str
    clock: Callable[[], float] = time.monotonic
    _start: float = field(init=False)

    def __post_init__(self) -> None:
        self._start = self.clock()

    @property
    def elapsed(self) -> float:
        return self.clock() - self._start

    @property
    def remaining(self) -> float:
        return max(0.0, self.seconds - self.elapsed)

    @property
    def expired(self) -> bool:
        return self.elapsed >= self.seconds

    def check(self, detail: str = "") -> None:
        """Raise WaitTimeout if the deadline has passed."""
        if self.expired:
            raise self.timeout(detail)

    def timeout(self, detail: str = "") -> WaitTimeout:
        suffix = f" (last seen: {detail})" if detail else ""
        return WaitTimeout(f"gave up after {self.seconds:g}s waiting for {self.what}{suffix}")

    def sleep(self, seconds: float) -> None:
        """Sleep, but never past the deadline."""
        time.sleep(min(seconds, self.remaining))


def poll(
    probe: Callable[[], tuple[bool, T]],
    deadline: Deadline,
    interval: float,
    describe: Callable[[T], str] = repr,
) -> T:
    """Call `probe` until it returns (True, value) or the deadline passes.

    `probe` returns (done, value); the last value is described in the timeout message."""
    while True:
        done, value = probe()
        if done:
            return value
        if deadline.expired:
            raise deadline.timeout(describe(value))
        deadline.sleep(interval)


def retry(
    attempt: Callable[[], T],
    deadline: Deadline,
    retry_on: tuple[type[BaseException], ...],
    first_delay: float = 1.0,
    max_delay: float = 15.0,
    on_retry: Callable[[BaseException, float], None] | None = None,
) -> T:
    """Call `attempt` until it succeeds, retrying on `retry_on` with exponential backoff within `deadline`.

    When the deadline passes, raises WaitTimeout naming the last error."""
    delay = first_delay
    while True:
        try:
            return attempt()
        except retry_on as exc:
            if deadline.remaining <= 0:
                raise deadline.timeout(f"{type(exc).__name__}: {exc}") from exc
            if on_retry is not None:
                on_retry(exc, min(delay, deadline.remaining))
            deadline.sleep(delay)
            delay = min(delay * 2, max_delay)
