"""What every dynamic provider of image-gallery shares: the base class `DynamicProvider`, and the helpers its
subclasses use on their props.

A provider holds no state of its own: the pickled blob in the state's `__provider` input is a reference to its class
(~100 bytes, no secret, no client). Azure clients and SSH/WinRM sessions are built inside each method, so the program
process (`__main__.py` → components → these modules) never imports azure-mgmt-*, azure-identity, paramiko or
pywinrm (over a second of CPU per `pulumi preview`); the step code is imported inside the methods, which run only in
the dynamic provider host. One provider object serves every resource of its class from the host's 4 worker threads.

The one thing a provider keeps is the Azure login `configure()` receives in the host (hooks/login.py
`ConfiguredLogin`); each call passes it down explicitly, in `ArmSettings.login` (`arm_settings`).

Failures reach the user as hooks/step_failures.py says: an expected failure (`ImageGalleryError`) as one message
(`user_facing`, `fail`); anything else (a bug) is logged with its whole traceback, secrets redacted, and named to
the engine (`ReportsFailures`).
"""

from __future__ import annotations

import functools
import traceback
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar, NoReturn, TypeVar

import pulumi
from pulumi.dynamic import ResourceProvider
from pulumi.output import Unknown
from pulumi.runtime import rpc

from hooks.errors import ImageGalleryError
from hooks.log import Log
from hooks.login import ConfiguredLogin, LoginSettings
from hooks.providers.engine_log import sink_for
from hooks.providers.host import in_provider_host
from hooks.step_failures import StepFailed, drop_step_failure_frames
from hooks.targets import ArmSettings

T = TypeVar("T")

ENTRY_POINTS = ("check", "diff", "create", "read", "update", "delete")
"""The provider calls the host makes (pulumi.dynamic.ResourceProvider)."""

_FRAMES = 40
"""Frames of an unexpected exception's traceback that are logged (the innermost ones)."""

_SECRET_KEYS = ("credentials", "password", "private_key", "passphrase", "client_secret", "token")


# --- props -----------------------------------------------------------------------------------------------------


def known(value: Any) -> bool:
    """False for values Pulumi does not know yet (preview of a new stack, a stack reference not read yet)."""
    if value is None:
        return True
    if isinstance(value, Unknown):
        return False
    if isinstance(value, str):
        return value != rpc.UNKNOWN
    if isinstance(value, Mapping):
        return all(known(v) for v in value.values())
    if isinstance(value, list | tuple):
        return all(known(v) for v in value)
    return True


def same_input(key: str, old: Any, new: Any) -> bool:
    """Whether an input is unchanged. ARM resource IDs (`vm_id`) compare without case (Azure treats them so), and
    without a trailing slash."""
    if key == "vm_id" and isinstance(old, str) and isinstance(new, str):
        return old.strip().rstrip("/").lower() == new.strip().rstrip("/").lower()
    return bool(old == new)


def declared_inputs(name: str, props: Mapping[str, Any], outputs: tuple[str, ...]) -> dict[str, Any]:
    """Every output declared up front (as None) so Pulumi knows it exists, the resource's name for log lines."""
    inputs: dict[str, Any] = dict.fromkeys(outputs)
    inputs.update(props)
    inputs["resource_name"] = name
    return inputs


def arm_settings(props: Mapping[str, Any], login: LoginSettings | None) -> ArmSettings:
    """The `arm` input, with the login the calls use (a provider's `login_settings()`)."""
    a = props["arm"]
    return ArmSettings(
        endpoint=a["endpoint"],
        audience=a.get("audience"),
        poll_interval=float(a["poll_interval"]),
        operation_timeout=float(a["operation_timeout"]),
        request_timeout=float(a.get("request_timeout", 60.0)),
        login=login,
    )


def log_urn(props: Mapping[str, Any]) -> str | None:
    """The resource's URN for progress lines (the host does not pass it to the provider); None when unknown."""
    urn = props.get("log_urn")
    return urn if isinstance(urn, str) and known(urn) else None


def log_for(props: Mapping[str, Any], default: str, secrets: Iterable[str] = ()) -> Log:
    """The resource's Log: named by its `resource_name` input (else `default`), its lines sent to the engine under
    its URN when the props carry one (hooks/providers/engine_log.py)."""
    return Log(str(props.get("resource_name") or default), secrets=list(secrets), sink=sink_for(log_urn(props)))


# --- failures --------------------------------------------------------------------------------------------------


def fail(log: Log, message: str) -> NoReturn:
    """Fail the call with `message`, written for the user, for the resource of `log` (no traceback)."""
    text = f"[{log.resource}] {message}"
    pulumi.log.error(text)
    raise StepFailed(text) from None


def user_facing(log: Log, fn: Callable[[], T]) -> T:
    """Run `fn`; turn expected failures into one clear message (no traceback). The message goes through the
    step's Log redaction: the last line of defence for the step's secrets."""
    try:
        return fn()
    except ImageGalleryError as exc:
        fail(log, log.redact(str(exc)))


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
    """`call` (a provider's entry point `name`), with its failures reported: a `StepFailed` passes as it is (in the
    host, formatted without frames: hooks/step_failures.py); any other exception (a bug) is first logged with its
    whole traceback, then re-raised as a `StepFailed` that names it and points at that log."""

    @functools.wraps(call)
    def reported(self: Any, *args: Any) -> Any:
        try:
            return call(self, *args)
        except StepFailed:
            if in_provider_host():
                drop_step_failure_frames()
            raise
        except Exception as exc:
            what = f"{type(self).__name__}.{name}"
            redact = Log(what, secrets=_secret_strings(args)).redact
            # An explicit limit: the whole traceback of a bug, whatever the process's traceback limit.
            detail = redact("".join(traceback.format_exception(exc, limit=-_FRAMES)))
            pulumi.log.error(f"{what} failed unexpectedly, a bug in image-gallery; please report it with:\n{detail}")
            summary = redact(f"{type(exc).__name__}: {exc}")
            if in_provider_host():
                drop_step_failure_frames()
            raise StepFailed(f"{what} failed unexpectedly ({summary}); its traceback is logged above.") from None

    reported.__dict__["reports_failures"] = True
    return reported


class ReportsFailures:
    """Mixin for dynamic providers: every entry point a subclass defines reports its failures (`reporting`)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in ENTRY_POINTS:
            call = cls.__dict__.get(name)
            if callable(call) and not getattr(call, "reports_failures", False):
                setattr(cls, name, reporting(name, call))


class DynamicProvider(ReportsFailures, ConfiguredLogin, ResourceProvider):
    """Base class of every dynamic provider here: failures reported as hooks/step_failures.py says, and the Azure
    login from `configure()` kept on the provider object (`login_settings()`), never in an input of the resource.

    Subclasses define no `__init__` and set no attribute outside `configure()`: the object is pickled into the
    state by reference, and anything set on it before would be pickled along."""


class DynamicResource(pulumi.dynamic.Resource):
    """Base class of every dynamic resource here: run by a new `PROVIDER` object, every one of its `OUTPUTS`
    declared up front, its name among the inputs for log lines (`declared_inputs`). Subclasses pass the type's
    `module` and `name` as class keywords (pulumi.dynamic.Resource); `TYPE` is the type token they make."""

    PROVIDER: ClassVar[type[DynamicProvider]]
    OUTPUTS: ClassVar[tuple[str, ...]]
    TYPE: ClassVar[str]
    """e.g. "pulumi-python:dynamic/generalization:GuestGeneralization" (the URN of a child step is made with it)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.TYPE = f"pulumi-python:{cls._resource_type_name}"

    def __init__(self, name: str, props: Mapping[str, Any], opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(self.PROVIDER(), name, declared_inputs(name, props, self.OUTPUTS), opts)
