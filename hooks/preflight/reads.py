"""The reads of the capture-time checks: GET only, bounded to a few seconds, one login for all of a check's reads,
and VM and subscription reads shared between the checks that run at once (`SHARED_READS`)."""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TypeVar, cast

from hooks import arm
from hooks.arm import ImageVersionFacts, VmFacts
from hooks.errors import ArmError, ArmUnreachable
from hooks.log import Log
from hooks.preflight.target import CaptureTarget
from hooks.targets import ArmSettings, GalleryRef, VmRef

T = TypeVar("T")
E = TypeVar("E", bound=BaseException)

CACHE_TTL = 30.0
"""Seconds a VM or subscription read is shared with other checks: long enough for one preview, short enough that
a fix made in the portal shows up in the next run."""
CHECK_BUDGET = 15.0
"""Bound in seconds for all the reads of one check (waiting for a read shared with another check included)."""
CALL_TIMEOUT = 8.0
"""Bound in seconds for one read, retries included."""
REQUEST_TIMEOUT = 4.0
"""Bound in seconds for one HTTP request of a check (ARM answers a GET in well under a second). azure-core caps
only the connection phase of a retry by CALL_TIMEOUT, not the read: a hanging ARM costs (1 + MAX_RETRIES) x this
plus one backoff, about 9 s, after which the check's other reads are skipped."""
MAX_RETRIES = 1
"""Retries per request: one absorbs a blip; more would only make an unreachable ARM slow to report."""


def own_copy(error: E) -> E:
    """The same error as a new exception, for one more thread to raise. Raising an exception writes its traceback
    (and context) into it: one instance raised by several threads would carry their frames mixed, and each raise
    would grow the traceback another thread is reading. Message, type, attributes and cause are kept."""
    clone = copy.copy(error)
    clone.__cause__ = error.__cause__
    clone.__suppress_context__ = error.__suppress_context__
    notes = getattr(error, "__notes__", None)
    if notes is not None:
        clone.__notes__ = list(notes)
    return clone.with_traceback(None)


@dataclass(frozen=True)
class _Entry:
    at: float
    value: object
    error: ArmError | None


class ReadCache:
    """Reads shared between concurrent checks (the dynamic host runs 4 at once): one request per key however
    many checks ask, and its result (or its ARM error) reused for `ttl` seconds.

    Errors are shared too: otherwise, with ARM down, checks queued on the same key would each wait out their
    own timeout in turn; each caller raises a copy of its own (`own_copy`). Keys are (endpoint, resource id,
    what)."""

    def __init__(self, ttl: float = CACHE_TTL, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._key_locks: dict[tuple[str, ...], threading.Lock] = {}
        self._entries: dict[tuple[str, ...], _Entry] = {}

    def get(self, key: tuple[str, ...], fetch: Callable[[], T], max_age: float, wait: float) -> tuple[T, bool]:
        """The cached value if younger than `max_age` (and `ttl`), else `fetch()`; returns (value, fetched).

        Waits at most `wait` seconds for another caller fetching the same key (raises ArmUnreachable after)."""
        with self._lock:
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        if not key_lock.acquire(timeout=max(wait, 0.0)):
            raise ArmUnreachable(
                f"ARM did not answer within {wait:g}s the read another check started for {key[1]}. Check the network "
                "and run again."
            )
        try:
            with self._lock:
                entry = self._entries.get(key)
            if entry is not None and self._clock() - entry.at < min(max_age, self.ttl):
                if entry.error is not None:
                    raise own_copy(entry.error)  # each caller raises an exception of its own
                return cast(T, entry.value), False
            try:
                value = fetch()
            except ArmError as exc:
                self._store(key, _Entry(self._clock(), None, own_copy(exc)))
                raise
            self._store(key, _Entry(self._clock(), value, None))
            return value, True
        finally:
            key_lock.release()

    def _store(self, key: tuple[str, ...], entry: _Entry) -> None:
        with self._lock:
            now = self._clock()
            for old in [k for k, e in self._entries.items() if now - e.at > self.ttl]:
                del self._entries[old]
            self._entries[key] = entry

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


SHARED_READS = ReadCache()
"""The process-wide cache: one per dynamic provider host, which serves every resource of the stack."""


class CheckReader:
    """The reads of one check: bounded by its deadline, through the process-wide ARM session (one login, one
    connection pool), VM and tenant reads shared through the cache. Thread-safe: the reads run concurrently."""

    def __init__(self, settings: ArmSettings, log: Log, max_age: float, budget: float) -> None:
        self.settings = settings
        self.log = log
        self.max_age = max_age
        self.budget = budget
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self.login_failure: ArmUnreachable | None = None
        """Set when no token could be had before the reads: every read then reports it, none is tried."""
        self.done: list[str] = []
        """What was read, for the summary line: e.g. "VM and OS disk: GET", "VM and OS disk: shared"."""
        self.unreachable: ArmUnreachable | None = None
        """Set by the first read that could not reach ARM or log in: the other reads then fail at once with it
        instead of each waiting out its own timeout."""

    def _remaining(self) -> float:
        return self.budget - (time.monotonic() - self.started)

    def _may_read(self) -> None:
        """Raise instead of reading when this check already knows the read is futile. Called outside the shared
        cache: these reasons belong to this check and must not be served to another one."""
        if self.login_failure is not None:
            raise own_copy(self.login_failure)  # the concurrent reads of this check each raise their own
        if self.unreachable is not None:
            raise ArmUnreachable(
                "skipped, because an earlier read of this check could not reach ARM or log in (see above)."
            )
        if self._remaining() <= 0.05:
            raise ArmUnreachable(
                f"the capture-time checks ran out of their {self.budget:g}s bound before this read: ARM answers too "
                "slowly. Check the network and run again."
            )

    def _bounded(self) -> ArmSettings:
        remaining = max(self._remaining(), 0.05)
        return replace(
            self.settings,
            request_timeout=min(self.settings.request_timeout, REQUEST_TIMEOUT, remaining),
            operation_timeout=min(self.settings.operation_timeout, CALL_TIMEOUT, remaining),
            max_retries=MAX_RETRIES,
            bound_source=f"the capture-time checks' fixed bound ({CALL_TIMEOUT:g}s per read)",
        )

    def login(self) -> None:
        """Get the token before the concurrent reads: one login (or one login failure) for all of them."""
        try:
            arm.ensure_login(self._bounded(), f"what the capture-time checks of {self.log.resource} need")
        except ArmUnreachable as exc:
            self.login_failure = exc

    def _read(self, fetch: Callable[[], T]) -> T:
        self._may_read()
        try:
            return fetch()
        except ArmUnreachable as exc:
            self.unreachable = self.unreachable or exc
            raise

    def _shared(self, what: str, key: tuple[str, ...], fetch: Callable[[ArmSettings], T]) -> T:
        endpoint = self.settings.endpoint.rstrip("/").lower()
        value, fetched = self._read(
            lambda: SHARED_READS.get((endpoint, *key), lambda: fetch(self._bounded()), self.max_age, self._remaining())
        )
        with self._lock:
            self.done.append(f"{what}: {'GET' if fetched else 'shared'}")
        return value

    def vm_facts(self, vm: VmRef) -> VmFacts:
        return self._shared(
            "VM and OS disk",
            (vm.id.lower(), "facts"),
            lambda s: arm.get_facts(s, vm, self.log),
        )

    def subscription_tenant(self, subscription_id: str) -> str:
        return self._shared(
            "subscription",
            (f"/subscriptions/{subscription_id.lower()}", "tenant"),
            lambda s: arm.get_subscription_tenant(s, subscription_id),
        )

    def locations(self, subscription_id: str) -> frozenset[str]:
        return self._shared(
            "subscription locations",
            (f"/subscriptions/{subscription_id.lower()}", "locations"),
            lambda s: arm.list_locations(s, subscription_id),
        )

    def image_version(self, gallery: GalleryRef, t: CaptureTarget) -> ImageVersionFacts | None:
        # Not shared: each version is read by the one check that captures it.
        found = self._read(
            lambda: arm.get_image_version(
                self._bounded(),
                gallery.subscription_id,
                gallery.resource_group,
                gallery.name,
                t.definition_name,
                t.version,
            )
        )
        with self._lock:
            self.done.append("version: GET")
        return found
