"""How a failed provider call reaches the user through the dynamic provider host.

The host (`python -m pulumi.dynamic`) turns any exception from a provider call into the gRPC error
`traceback.format_exc()`, so an expected failure, already explained in one message written for the user, would
arrive under a Python traceback of the host's and the provider's frames (pulumi/pulumi#10416). Every provider here
mixes in `ReportsFailures`:

- in the host, tracebacks carry no frames (`sys.tracebacklimit = 0`), so a `StepFailed` reads as its message
  alone: `hooks.step_failures.StepFailed: [resource] what happened and what to do`;
- an unexpected exception (a bug) is first logged with its whole traceback (an explicit frame limit is not
  affected by `sys.tracebacklimit`), then re-raised as a `StepFailed` that names it and points at that log.

Outside the host (tests calling a provider in process) nothing global is changed.
"""

from __future__ import annotations

import functools
import sys
import traceback
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from hooks.log import Log

ENTRY_POINTS = ("check", "diff", "create", "read", "update", "delete")
"""The provider calls the host makes (pulumi.dynamic.ResourceProvider)."""

_FRAMES = 40
"""Frames of an unexpected exception's traceback that are logged (the innermost ones)."""

_SECRET_KEYS = ("credentials", "password", "private_key", "passphrase", "client_secret", "token")


class StepFailed(Exception):
    """Raised to the dynamic provider host: the message is the whole explanation, written for the user."""


def in_provider_host() -> bool:
    """Whether this process is Pulumi's dynamic provider host (`python -m pulumi.dynamic`)."""
    main = sys.modules.get("__main__")
    return getattr(getattr(main, "__spec__", None), "name", None) == "pulumi.dynamic.__main__"


def _secret_strings(values: Iterable[Any]) -> list[str]:
    """Secret values among a call's arguments (the props' credentials), longest first (a secret containing another
    is redacted whole), for a bug's report."""
    found: set[str] = set()

    def walk(value: Any, secret: bool) -> None:
        if isinstance(value, Mapping):
            for key, item in value.items():
                walk(item, secret or str(key).lower() in _SECRET_KEYS)
        elif isinstance(value, list | tuple):
            for item in value:
                walk(item, secret)
        elif secret and isinstance(value, str) and len(value) >= 4:
            found.add(value)

    for value in values:
        walk(value, False)
    return sorted(found, key=len, reverse=True)


def reporting(name: str, call: Callable[..., Any]) -> Callable[..., Any]:
    """`call` (a provider's entry point `name`), with its failures reported as the module docstring says."""

    @functools.wraps(call)
    def reported(self: Any, *args: Any) -> Any:
        if in_provider_host():
            sys.tracebacklimit = 0
        try:
            return call(self, *args)
        except StepFailed:
            raise
        except Exception as exc:
            import pulumi  # the program process never gets here; keep this module free of imports it avoids

            what = f"{type(self).__name__}.{name}"
            redact = Log(what, secrets=_secret_strings(args)).redact
            detail = redact("".join(traceback.format_exception(exc, limit=-_FRAMES)))
            pulumi.log.error(f"{what} failed unexpectedly, a bug in image-gallery; please report it with:\n{detail}")
            summary = redact(f"{type(exc).__name__}: {exc}")
            raise StepFailed(f"{what} failed unexpectedly ({summary}); its traceback is logged above.") from None

    reported.__dict__["reports_failures"] = True
    return reported


class ReportsFailures:
    """Mixin for dynamic providers: every entry point a subclass defines reports its failures as the module
    docstring says."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in ENTRY_POINTS:
            call = cls.__dict__.get(name)
            if callable(call) and not getattr(call, "reports_failures", False):
                setattr(cls, name, reporting(name, call))
