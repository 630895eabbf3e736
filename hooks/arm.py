"""The ARM side of the pipeline: read a VM's state and facts, deallocate it, mark it generalized, and read the
gallery resources a capture depends on. Plain functions over azure-mgmt-compute, usable without Pulumi.

One session per process and ARM endpoint (`ArmSession`: one login, one HTTP connection pool, shared by every
call and thread), kept in this module, never on a provider: dynamic providers are pickled, and a credential or
an HTTP session must never travel with them. Every call is bounded: one HTTP request by
`ArmSettings.request_timeout`, one operation (retries, throttling and long-running operations included) by
`ArmSettings.operation_timeout` (`armOperationTimeoutMinutes`).
Every expected failure leaves as one of the `hooks.errors` types, with a
message that names the VM, says what happened and what to do, and never carries a token.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

import requests
from azure.core.credentials import AccessToken, TokenCredential
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.core.pipeline.policies import RequestHistory, RetryPolicy
from azure.core.pipeline.transport import RequestsTransport
from azure.core.rest import HttpRequest, HttpResponse
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.compute import models as compute_models
from azure.mgmt.compute.models import ReplicationStatusTypes, VirtualMachineInstanceView
from azure.mgmt.core.polling.arm_polling import ARMPolling
from azure.mgmt.resource.resources import ResourceManagementClient

from hooks import login as azure_login
from hooks.errors import ArmAccessDenied, ArmError, ArmUnreachable, VmNotFound, WaitTimeout
from hooks.log import Log
from hooks.targets import ArmSettings, VmRef
from hooks.waiting import Deadline, poll

SUBSCRIPTIONS_API_VERSION = "2022-12-01"
"""api-version for GET /subscriptions/{id} (the Microsoft.Resources subscriptions API)."""

# Permissions named in ArmAccessDenied messages, so the user knows exactly which action to grant.
PERMISSION_VM_READ = "Microsoft.Compute/virtualMachines/read"
PERMISSION_VM_INSTANCE_VIEW = "Microsoft.Compute/virtualMachines/instanceView/read"
PERMISSION_VM_DEALLOCATE = "Microsoft.Compute/virtualMachines/deallocate/action"
PERMISSION_VM_GENERALIZE = "Microsoft.Compute/virtualMachines/generalize/action"
PERMISSION_DISK_READ = "Microsoft.Compute/disks/read"
PERMISSION_IMAGE_VERSION_READ = "Microsoft.Compute/galleries/images/versions/read"
PERMISSION_SUBSCRIPTION_READ = "Microsoft.Resources/subscriptions/read"

_TRANSITIONAL_POWER_STATES = frozenset({"stopping", "deallocating"})

_DISK_ID = re.compile(
    r"^/subscriptions/[^/]+/resourceGroups/(?P<rg>[^/]+)/providers/Microsoft\.Compute/disks/(?P<name>[^/]+)$",
    re.IGNORECASE,
)


# --- clients -------------------------------------------------------------------------------------------------

_CALL_OPTION = "image_gallery_call"
"""Per-call option carrying the operation's `_Budget` through the azure-core pipeline to `_BoundedRetryPolicy`
(which pops it: the transport never sees it)."""


@dataclass
class _Budget:
    """One operation's bound, shared by every request it makes (first request, retries, LRO polls)."""

    settings: ArmSettings
    what: str
    """e.g. "deallocate VM x (resource group y)", for log lines and errors."""
    log: Log | None = None
    started: float = field(default_factory=time.monotonic)
    throttled: int = 0
    """Throttled answers (429, or 503 with Retry-After) received so far."""
    unanswered: int = 0
    """Requests that got no answer within the per-request bound so far."""
    last_error: AzureError | None = None
    """The last transport error (no answer, reset): what the call ends with when its bound runs out."""

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def remaining(self) -> float:
        return self.settings.operation_timeout - self.elapsed

    def options(self) -> dict[str, Any]:
        """Keyword arguments for one azure-mgmt call (and its poller): this budget and the per-request bounds."""
        s = self.settings
        options: dict[str, Any] = {
            _CALL_OPTION: self,
            "connection_timeout": s.request_timeout,
            "read_timeout": s.request_timeout,
            "timeout": s.operation_timeout,
        }
        if s.max_retries is not None:
            options["retry_total"] = s.max_retries
        return options


_CUT_BY_THE_BOUND = 0.1
"""Seconds: a request left unanswered with less than this left of its operation's bound was cut off by the bound
(its read timeout is capped by what is left), not by ARM's silence; it is neither logged nor counted as silence."""


class _Throttled(Exception):
    """ARM kept throttling (429/503 with Retry-After) until the operation's bound could not cover the next wait.

    Deliberately not an AzureError: azure-core's retry loop would catch that and retry until its timeout."""

    def __init__(self, retry_after: float, budget: _Budget, on_poll: bool = False) -> None:
        super().__init__(f"ARM asked to retry after {retry_after:g}s with {budget.remaining:.0f}s of the bound left")
        self.retry_after = retry_after
        self.budget = budget
        self.on_poll = on_poll


class _OperationBound(Exception):
    """The operation's bound passed while its long-running operation was still being polled."""

    def __init__(self, status: str) -> None:
        super().__init__(f"operation status {status}")
        self.status = status


class _BoundedRetryPolicy(RetryPolicy[HttpRequest, HttpResponse]):
    """azure-core's retries, bounded by the operation instead of by counts for what only time cures.

    - Throttling (429, or any answer with Retry-After) is retried, honouring Retry-After, for as long as the
      operation's bound allows; it does not use up `max_retries` (azure-core's default of 3 status retries would
      end a throttled deallocate after a few seconds). When the bound cannot cover the next wait, the call ends
      at once with `_Throttled`, so the error says ARM throttles rather than "timed out".
    - A request that gets no answer (read timeout) or a reset connection is retried within the same bound, and
      each retry is logged, so a silent ARM is reported after one per-request bound, not after all retries.
    - Each request's read timeout is capped by what is left of the operation's bound."""

    def __init__(self, **kwargs: Any) -> None:
        # Counts stay generous: the bound in time is what ends a call.
        kwargs.setdefault("retry_status", 10)
        kwargs.setdefault("retry_read", 10)
        kwargs.setdefault("retry_connect", 3)
        super().__init__(**kwargs)

    def configure_retries(self, options: dict[str, Any]) -> dict[str, Any]:
        budget = options.pop(_CALL_OPTION, None)
        settings = super().configure_retries(options)
        settings["budget"] = budget
        if isinstance(budget, _Budget):
            settings["timeout"] = max(min(settings["timeout"], budget.remaining), 0.001)
        return settings

    def send(self, request: Any) -> Any:
        request.context[_CALL_OPTION] = request.context.options.get(_CALL_OPTION)
        return super().send(request)

    def _configure_timeout(self, request: Any, absolute_timeout: float, is_response_error: bool) -> None:
        budget = request.context.get(_CALL_OPTION)
        if absolute_timeout <= 0 and isinstance(budget, _Budget) and budget.last_error is not None:
            # The bound ran out between retries: end with what actually happened (a reset, no answer), not with
            # azure-core's bare "Response timeout".
            raise budget.last_error
        super()._configure_timeout(request, absolute_timeout, is_response_error)
        options = request.context.options
        if "read_timeout" in options:
            options["read_timeout"] = max(min(options["read_timeout"], absolute_timeout), 0.001)

    def increment(self, settings: dict[str, Any], response: Any = None, error: Exception | None = None) -> bool:
        budget = settings.get("budget")
        http = getattr(response, "http_response", None)
        if error is None and http is not None and _is_throttle(http):
            # Throttling does not use up the retries: only the bound ends it (checked in `sleep`).
            if isinstance(budget, _Budget):
                budget.throttled += 1
            settings["history"].append(RequestHistory(response.http_request, http_response=http))
            return True
        if isinstance(error, AzureError) and isinstance(budget, _Budget):
            budget.last_error = error
        if (
            error is not None
            and isinstance(budget, _Budget)
            and budget.log is not None
            and budget.remaining > _CUT_BY_THE_BOUND
        ):
            budget.unanswered += 1
            budget.log.info(
                f"ARM at {budget.settings.endpoint} {_no_answer(error, budget.settings)} to {budget.what}; retrying "
                f"({budget.remaining:.0f}s left of the {_bound(budget.settings)})"
            )
        return bool(super().increment(settings, response=response, error=error))

    def sleep(self, settings: dict[str, Any], transport: Any, response: Any = None) -> None:
        budget = settings.get("budget")
        if response is not None and isinstance(budget, _Budget):
            retry_after = self.get_retry_after(response)
            if retry_after is not None and retry_after >= budget.remaining:
                raise _Throttled(retry_after, budget)
            if retry_after is not None and budget.log is not None and budget.throttled in (1, 10, 100):
                budget.log.info(
                    f"ARM is throttling requests to {budget.what} (HTTP {response.http_response.status_code}, "
                    f"Retry-After {retry_after:g}s); waiting as asked ({budget.remaining:.0f}s left of the "
                    f"{_bound(budget.settings)})"
                )
        super().sleep(settings, transport, response=response)


def _is_throttle(response: Any) -> bool:
    return bool(response.status_code == 429 or (response.status_code >= 500 and response.headers.get("Retry-After")))


def _bound(s: ArmSettings) -> str:
    """The operation bound, as the user sets it."""
    return f"{s.operation_timeout:g}s bound ({s.bound_source})"


def _is_reset(exc: BaseException) -> bool:
    """True when the peer closed or reset the connection (as opposed to not answering in time)."""
    text = f"{exc} {exc.__cause__ or ''} {getattr(exc, 'inner_exception', '') or ''}".lower()
    return any(m in text for m in ("connection reset", "connection aborted", "remotedisconnected", "broken pipe"))


def _no_answer(exc: BaseException, s: ArmSettings) -> str:
    if _is_reset(exc):
        return "closed (reset) the connection without an answer"
    if isinstance(exc, ServiceRequestError):
        return "could not be reached"
    return f"did not answer within the per-request bound of {s.request_timeout:g}s"


class _BoundedPolling(ARMPolling):
    """ARM's LRO polling, ended by the operation's bound: the poller thread stops by itself when the bound
    passes (nothing is left polling in the background), and a Retry-After longer than what is left of the bound
    ends the call at once with `_Throttled` instead of sleeping past it."""

    def __init__(self, budget: _Budget, **kwargs: Any) -> None:
        super().__init__(budget.settings.poll_interval, **kwargs)
        self._budget = budget

    def _delay(self) -> None:
        delay = self._extract_delay()
        if delay >= self._budget.remaining:
            headers = self._pipeline_response.http_response.headers
            if any(headers.get(h) for h in ("Retry-After", "retry-after-ms", "x-ms-retry-after-ms")):
                raise _Throttled(delay, self._budget, on_poll=True)
            self._sleep(max(self._budget.remaining, 0.0))
            raise _OperationBound(self.status())
        self._sleep(delay)


class SharedLogin:
    """One Azure login for several ARM calls: a TokenCredential (pass it as `credential=`, or let the process-wide
    session use its own).

    The credential (hooks/login.py: azure-native's settings, then ARM_*, then DefaultAzureCredential) is built
    on first use, and each token is fetched once and reused until shortly before
    it expires (the token's `refresh_on` when the credential gives one, else 5 minutes before expiry; a token
    that lives less than that is fetched for every request, never used expired). Without this every client logs
    in on its own: the Azure CLI credential caches nothing and starts `az` (about a second) per token.
    Thread-safe: concurrent callers wait for the one login in progress instead of each starting their own."""

    REFRESH_MARGIN = 300.0
    """Seconds before expiry at which a cached token is fetched anew (azure-core's own refresh window)."""

    def __init__(self, settings: azure_login.LoginSettings | None = None) -> None:
        self._lock = threading.Lock()
        self.settings = settings if settings is not None else azure_login.current()
        """The login settings this login uses (resolved when the session was made)."""
        self._credential: TokenCredential | None = None
        self._tokens: dict[tuple[tuple[str, ...], str | None, bool], AccessToken] = {}
        self.logins = 0
        """Tokens fetched from the credential so far."""

    def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        key = (scopes, tenant_id, enable_cae)
        with self._lock:
            token = self._tokens.get(key)
            if claims or token is None or token.expires_on - time.time() < self.REFRESH_MARGIN:
                if self._credential is None:
                    self._credential = self.settings.credential()
                try:
                    token = self._credential.get_token(
                        *scopes, claims=claims, tenant_id=tenant_id, enable_cae=enable_cae, **kwargs
                    )
                except ClientAuthenticationError as exc:
                    # Entra's (or the ID token source's) refusal: a login problem, told apart from ARM's own 401 by
                    # carrying no HTTP response; the message names where each login setting came from.
                    raise _LoginRefused(self.settings, exc.message) from None
                self.logins += 1
                self._tokens[key] = token
            return token

    def close(self) -> None:
        with self._lock:
            close = getattr(self._credential, "close", None)
            if callable(close):
                close()
            self._credential = None
            self._tokens.clear()

    def __enter__(self) -> SharedLogin:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class TenantLogin:
    """The tokens of a SharedLogin for one other tenant (`get_token(..., tenant_id=…)`): an auxiliary tenant, whose
    resources ARM serves only to a token of their own tenant (e.g. the source of a promotion across tenants). The
    credential must allow the tenant (hooks/login.py: auxiliaryTenantIds → additionally_allowed_tenants)."""

    def __init__(self, login: SharedLogin, tenant_id: str) -> None:
        self.login = login
        self.tenant_id = tenant_id

    def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        return self.login.get_token(*scopes, claims=claims, tenant_id=self.tenant_id, enable_cae=enable_cae, **kwargs)


_AUTHORITY_TENANT = re.compile(r"authorization_uri=\"?https://[^/\"]+/([0-9A-Za-z.-]+)", re.I)
_ISSUER_TENANT = re.compile(r"must match the tenant 'https://sts\.windows\.net/([0-9A-Za-z.-]+)/'", re.I)


def tenant_of_refusal(response: Any) -> str | None:
    """The tenant ARM names when it refuses a token of another tenant (401 InvalidAuthenticationTokenTenant): its
    WWW-Authenticate `authorization_uri`, else its message. This is how Azure's own tools find a subscription's
    tenant; None for any other answer."""
    if response is None or response.status_code != 401:
        return None
    code, message = azure_error_detail(HttpResponseError(response=response))
    if code != "InvalidAuthenticationTokenTenant":
        return None
    found = _AUTHORITY_TENANT.search(response.headers.get("WWW-Authenticate") or "") or _ISSUER_TENANT.search(message)
    return found[1] if found else None


# --- azure-mgmt-compute models: one thread at a time works out a class ------------------------------------

_GUARDED = "_image_gallery_guarded"


def guard_compute_models() -> bool:
    """Make azure-mgmt-compute work out its model classes one thread at a time. True when the guard is in place.

    Its typespec-generated models (azure-mgmt-compute 39, the locked version) work out a class's fields the first
    time the class is instantiated, without a lock: one thread iterates the class's `__dict__` while another,
    done first, stores its result there. The loser's `RuntimeError` is swallowed by the SDK's deserializer, which
    then hands back the raw JSON dict: a VM whose `storage_profile` is a dict (seen with 8 chains in the
    benchmark: `'dict' object has no attribute 'os_disk'`). Known upstream as Azure/azure-sdk-for-python#47426,
    fixed in the generator (microsoft/typespec#11236) but not yet in a released azure-mgmt-compute.

    The guard wraps the models' common `__new__` in a lock; building an instance is otherwise unchanged, and the
    lock is held only for the moment `__new__` takes (answers are read into models after the HTTP call, never
    during it). Working every class out in advance instead would cost 0.3 s of CPU per process (168 classes
    reachable from a VM answer), about half a second on the first chain's path."""
    base = next(
        (k for k in compute_models.VirtualMachine.__mro__ if k.__name__ == "Model" and "__new__" in vars(k)), None
    )
    if base is None:
        return False  # not the typespec models (msrest-based SDKs build no such table)
    if getattr(base, _GUARDED, False):
        return True
    setup = base.__new__
    lock = threading.RLock()

    def guarded_new(cls: type[Any], *args: Any, **kwargs: Any) -> Any:
        with lock:
            return setup(cls, *args, **kwargs)

    base.__new__ = staticmethod(guarded_new)  # type: ignore[method-assign, assignment]
    setattr(base, _GUARDED, True)
    return True


guard_compute_models()


class _LoginRefused(ClientAuthenticationError):
    """No token: the credential, Entra or the ID token source refused. Carries no HTTP response (ARM's own 401
    does), and says which login was used, each setting with where it came from; never a secret."""

    def __init__(self, settings: azure_login.LoginSettings, message: str) -> None:
        super().__init__(message=f"{settings.redact(message)} [login: {settings.describe()}]")
        self.settings = settings


class ArmSession:
    """Everything one process needs to talk to one ARM endpoint: one login (one credential per endpoint and
    token audience) and one HTTP connection pool, shared by every client, call and thread.

    The dynamic provider host serves every resource of a stack from one process and several threads: with a
    session per call, the ARM half opened four TLS connections and each check started its own `az`. Clients are
    made per subscription (azure-mgmt binds one to a client) over the same pool and login. Nothing here may be
    pickled into a provider: sessions live in this module's registry (`session()`), never on a provider."""

    def __init__(
        self,
        endpoint: str,
        scope: str,
        credential: TokenCredential | None = None,
        login: azure_login.LoginSettings | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.scope = scope
        self.login = SharedLogin(login)
        self._credential: TokenCredential = credential if credential is not None else self.login
        self._http = requests.Session()
        self._lock = threading.Lock()
        self._compute: dict[str, ComputeManagementClient] = {}
        self._resources: dict[str, ResourceManagementClient] = {}

    def _options(self) -> dict[str, Any]:
        # Per-call bounds (`_Budget.options`) override these defaults; TLS trust is left to requests, which reads
        # REQUESTS_CA_BUNDLE; HTTPS is never relaxed.
        defaults = ArmSettings()
        return {
            "base_url": self.endpoint,
            "credential_scopes": [self.scope],
            "transport": RequestsTransport(
                session=self._http,
                session_owner=False,
                connection_timeout=defaults.request_timeout,
                read_timeout=defaults.request_timeout,
            ),
            "retry_policy": _BoundedRetryPolicy(timeout=defaults.operation_timeout),
        }

    def compute(self, subscription_id: str) -> ComputeManagementClient:
        with self._lock:
            client = self._compute.get(subscription_id)
            if client is None:
                client = ComputeManagementClient(self._credential, subscription_id, **self._options())
                self._compute[subscription_id] = client
            return client

    def resources(self, subscription_id: str) -> ResourceManagementClient:
        """A ResourceManagementClient on the same pool and login.

        azure-mgmt-resource 26 moved SubscriptionClient into the separate azure-mgmt-resource-subscriptions
        package, which this project does not depend on; subscription reads go through this client's
        `send_request`, which runs the same pipeline (auth, retries, bounds)."""
        with self._lock:
            client = self._resources.get(subscription_id)
            if client is None:
                client = ResourceManagementClient(self._credential, subscription_id, **self._options())
                self._resources[subscription_id] = client
            return client

    def close(self) -> None:
        with self._lock:
            for compute in self._compute.values():
                compute.close()
            for resources in self._resources.values():
                resources.close()
            self._compute.clear()
            self._resources.clear()
            self._http.close()
        self.login.close()


_SESSIONS: dict[tuple[str, str, str], ArmSession] = {}
_SESSIONS_LOCK = threading.Lock()


def session(settings: ArmSettings) -> ArmSession:
    """The process-wide session for the settings' endpoint and token audience, and the process's login settings
    (made on first use)."""
    login = azure_login.current()
    key = (settings.endpoint.rstrip("/").lower(), settings.scope.lower(), login.fingerprint())
    with _SESSIONS_LOCK:
        found = _SESSIONS.get(key)
        if found is None:
            found = _SESSIONS[key] = ArmSession(settings.endpoint, settings.scope, login=login)
        return found


def close_sessions() -> None:
    """Close and forget every process-wide session (tests; a process that ends needs not call it)."""
    with _SESSIONS_LOCK:
        sessions = list(_SESSIONS.values())
        _SESSIONS.clear()
    for s in sessions:
        s.close()


def ensure_login(settings: ArmSettings, target: str) -> None:
    """Get (or reuse) the process-wide session's token for the settings' audience; raises ArmUnreachable (a login
    problem, said so) when no token can be had. Lets concurrent reads share one login, or one login failure."""
    with _arm_errors(_Call(settings, "read", target, "")):
        session(settings).login.get_token(settings.scope)


@contextmanager
def _session_for(settings: ArmSettings, credential: TokenCredential | None) -> Iterator[ArmSession]:
    """The process-wide session, or, for a caller that brings its own credential, a session of its own for this
    call (closed at its end; the credential stays the caller's)."""
    if credential is None:
        yield session(settings)
        return
    own = ArmSession(settings.endpoint, settings.scope, credential)
    try:
        yield own
    finally:
        own.close()


@contextmanager
def _compute(
    settings: ArmSettings, subscription_id: str, credential: TokenCredential | None = None
) -> Iterator[ComputeManagementClient]:
    with _session_for(settings, credential) as s:
        yield s.compute(subscription_id)


@contextmanager
def _resources(
    settings: ArmSettings, subscription_id: str, credential: TokenCredential | None = None
) -> Iterator[ResourceManagementClient]:
    with _session_for(settings, credential) as s:
        yield s.resources(subscription_id)


# --- error translation ---------------------------------------------------------------------------------------

_SECRET_PATTERNS = (
    (re.compile(r"(?i)\bbearer\s+[A-Za-z0-9\-._~+/=]+"), "Bearer [redacted]"),
    (re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), "[redacted token]"),
    (re.compile(r"(?i)(\"?access_?token\"?\s*[:=]\s*\"?)[^\s\",}]+"), r"\1[redacted]"),
)


def _scrub(text: str) -> str:
    """Remove anything that looks like a token; Azure's own messages should carry none, but we never gamble."""
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _quote(text: str) -> str:
    """Azure's or azure-identity's text, made fit to embed in one of our sentences: no token, one line, no final
    period (our sentence continues)."""
    return " ".join(_scrub(text).split()).rstrip(". ")


def azure_error_detail(exc: HttpResponseError) -> tuple[str, str]:
    """Azure's error (code, message) from an ARM error body, or the HTTP status and reason when there is none."""
    error = exc.error
    code = getattr(error, "code", None) if error is not None else None
    message = getattr(error, "message", None) if error is not None else None
    if not code or not message:
        # Error bodies that azure-core could not parse as OData (or plain `send_request` responses).
        text = exc.response.text() if exc.response is not None else ""
        try:
            body = json.loads(text) if text else None
        except ValueError:  # plain text, or an HTML page from a gateway: quote its title or its text
            body = None
            title = re.search(r"<title>(.*?)</title>", text, re.I | re.S)
            message = message or (title[1] if title else re.sub(r"<[^>]+>", " ", text))[:300].strip() or None
        inner = body.get("error") if isinstance(body, dict) else None
        # ARM's {"error": {...}}, or the top-level {"code", "message"} / {"Message"} of older resource providers
        for shape in (inner, body):
            if isinstance(shape, dict):
                code = code or shape.get("code") or shape.get("Code")
                message = message or shape.get("message") or shape.get("Message")
    status = f"HTTP {exc.status_code}" if exc.status_code else "no HTTP status"
    return _quote(str(code or status)), _quote(str(message or exc.reason or exc.message or "no details"))


@dataclass(frozen=True)
class _Call:
    """What a single ARM call was doing, for error messages."""

    settings: ArmSettings
    doing: str
    """e.g. "deallocate": completes "could not <doing> <target>"."""
    target: str
    permission: str
    vm: VmRef | None = None


def _translate(exc: AzureError, call: _Call) -> ArmError:
    """Map an azure-core/azure-identity exception to the error type the user must act on."""
    s = call.settings
    if isinstance(exc, ClientAuthenticationError) and exc.response is None:
        # No HTTP response: the credential chain itself failed (not logged in, no identity available).
        settings = exc.settings if isinstance(exc, _LoginRefused) else None
        if settings is not None and settings.method != "DefaultAzureCredential":
            advice = (
                "check the login settings named there (client ID, tenant, secret or certificate, or the federated "
                "credential's subject), in the stack's azure-native:* settings or the ARM_* variables"
            )
        else:
            advice = (
                "run `az login` (and `az account set` if needed), or set AZURE_CLIENT_ID/AZURE_TENANT_ID/"
                "AZURE_CLIENT_SECRET or a managed identity for DefaultAzureCredential, or the azure-native:* "
                "login settings / ARM_* variables azure-native uses"
            )
        return ArmUnreachable(
            f"could not {call.doing} {call.target}: no Azure access token could be obtained for {s.scope} "
            f"({_quote(exc.message)}). This is a login problem, not a network one: {advice}."
        )
    if isinstance(exc, HttpResponseError) and exc.status_code is not None:
        code, message = azure_error_detail(exc)
        if exc.status_code == 404 and call.vm is not None:
            return VmNotFound(
                f"{call.vm} was not found in subscription {call.vm.subscription_id} ({code}): it was deleted or the "
                f"identity cannot see it. Check the VM resource ID {call.vm.id} and that the identity has at least "
                f"Reader on it. Azure said: {message}."
            )
        if exc.status_code == 401:
            return ArmAccessDenied(
                f"ARM at {s.endpoint} rejected the access token while trying to {call.doing} {call.target} "
                f"(401 {code}). Check that the token audience {s.scope} belongs to this endpoint and the login is "
                f"for the right tenant; run `az login` again if the session expired. Azure said: {message}."
            )
        if exc.status_code == 403:
            return ArmAccessDenied(
                f"Azure denied the request to {call.doing} {call.target} (403 {code}): the identity needs the "
                f"permission {call.permission} on it (grant a role that includes it, then run again). "
                f"Azure said: {message}."
            )
        return ArmError(
            f"Azure refused to {call.doing} {call.target} (HTTP {exc.status_code} {code}): {message}. "
            "Check the resource in the Azure portal and run again."
        )
    if isinstance(exc, ServiceRequestError):
        # The request never reached ARM: DNS, connection refused, proxy, or TLS trust.
        return ArmUnreachable(
            f"could not reach ARM at {s.endpoint} to {call.doing} {call.target}: {_quote(str(exc))}. This is a "
            "network problem, not a login one: check the endpoint, network and proxy settings, and TLS trust "
            "(REQUESTS_CA_BUNDLE)."
        )
    if isinstance(exc, ServiceResponseError) and _is_reset(exc):
        return ArmUnreachable(
            f"ARM at {s.endpoint} closed (reset) the connection without answering, to {call.doing} {call.target}, "
            f"and kept doing so on every retry within the {_bound(s)}: {_quote(str(exc))}. Something between "
            "here and ARM (proxy, firewall, NAT) drops the connection: check the network and run again; the "
            "operation is safe to repeat."
        )
    if isinstance(exc, ServiceResponseError):
        return ArmUnreachable(
            f"ARM at {s.endpoint} did not answer in time to {call.doing} {call.target} (per-request bound "
            f"{s.request_timeout:g}s, retried within the {_bound(s)}): {_quote(str(exc))}. Check the "
            "network and run again; the operation is safe to repeat."
        )
    return ArmError(f"could not {call.doing} {call.target}: {_quote(str(exc))}. Run again; if it persists, check ARM.")


@contextmanager
def _arm_errors(call: _Call) -> Iterator[None]:
    try:
        yield
    except AzureError as exc:
        raise _translate(exc, call) from exc
    except _Throttled as exc:
        # Throttling is ARM refusing work for now: the same category as unreachable (preview may only warn).
        b = exc.budget
        asked = (
            f"asked to wait {exc.retry_after:g}s before polling the operation again"
            if exc.on_poll
            else f"answered {b.throttled} throttled request(s) and asked to wait {exc.retry_after:g}s more"
        )
        raise ArmUnreachable(
            f"ARM at {call.settings.endpoint} is throttling requests: to {call.doing} {call.target} this run waited "
            f"{b.elapsed:.0f}s, honouring Retry-After; ARM {asked}, longer than the {max(b.remaining, 0):.0f}s left "
            f"of the {_bound(call.settings)}. Wait a few minutes and run again (the step is safe to repeat), "
            f"or raise {call.settings.bound_source}."
        ) from None


# --- VM state ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VmStatus:
    """A VM's instance view, reduced to what the pipeline decides on. Built from status codes, never their order."""

    power_state: str | None
    """running | starting | stopping | stopped | deallocating | deallocated, or None when Azure reports none."""
    generalized: bool
    """True when the instance view carries OSState/generalized (set by the generalize call)."""
    provisioning_state: str | None
    """e.g. succeeded, updating, failed (the second segment of ProvisioningState/...)."""
    codes: tuple[str, ...]
    """All status codes as Azure sent them."""

    @classmethod
    def from_instance_view(cls, view: VirtualMachineInstanceView | None) -> VmStatus:
        codes = tuple(s.code for s in (view.statuses if view and view.statuses else []) if s.code)
        return cls(
            power_state=_status_value(codes, "PowerState"),
            generalized=any(c.lower() == "osstate/generalized" for c in codes),
            provisioning_state=_status_value(codes, "ProvisioningState"),
            codes=codes,
        )

    def __str__(self) -> str:
        return ", ".join(self.codes) if self.codes else "no statuses"

    def after_deallocation(self) -> VmStatus:
        """This status once a deallocate operation has Succeeded (Azure's PowerState/deallocated), without reading
        the instance view again: the ARM half verifies with one read at its end."""
        codes = tuple(c for c in self.codes if not c.lower().startswith("powerstate/"))
        return replace(self, power_state="deallocated", codes=(*codes, "PowerState/deallocated"))


def _status_value(codes: tuple[str, ...], kind: str) -> str | None:
    prefix = kind.lower() + "/"
    for code in codes:
        if code.lower().startswith(prefix):
            return code[len(prefix) :].split("/", 1)[0].lower()
    return None


def _read_status(client: ComputeManagementClient, vm: VmRef, settings: ArmSettings, log: Log | None) -> VmStatus:
    call = _Call(settings, "read the instance view of", str(vm), PERMISSION_VM_INSTANCE_VIEW, vm)
    budget = _Budget(settings, f"read the instance view of {vm}", log)
    with _arm_errors(call):
        view = client.virtual_machines.instance_view(vm.resource_group, vm.name, **budget.options())
        return VmStatus.from_instance_view(view)


def _settled_probe(
    client: ComputeManagementClient, vm: VmRef, settings: ArmSettings, log: Log
) -> Callable[[], tuple[bool, VmStatus]]:
    """A `poll` probe that is done once the VM is no longer stopping or deallocating."""

    def probe() -> tuple[bool, VmStatus]:
        status = _read_status(client, vm, settings, log)
        return status.power_state not in _TRANSITIONAL_POWER_STATES, status

    return probe


def get_status(settings: ArmSettings, vm: VmRef, log: Log, credential: TokenCredential | None = None) -> VmStatus:
    """Read the VM's instance view (read-only)."""
    with _compute(settings, vm.subscription_id, credential) as client:
        status = _read_status(client, vm, settings, log)
    log.info(f"{vm}: {status}")
    return status


def _wait_settled(
    client: ComputeManagementClient, settings: ArmSettings, vm: VmRef, log: Log, deadline: Deadline
) -> VmStatus:
    try:
        return poll(_settled_probe(client, vm, settings, log), deadline, settings.poll_interval, describe=str)
    except WaitTimeout as exc:
        raise WaitTimeout(
            f"{exc}. Check the VM in the Azure portal, then run again (or raise {settings.bound_source})."
        ) from exc


def wait_until_stopped(
    settings: ArmSettings,
    vm: VmRef,
    log: Log,
    credential: TokenCredential | None = None,
    *,
    current: VmStatus | None = None,
) -> VmStatus:
    """If the VM is stopping or deallocating, wait (bounded) until it is stopped or deallocated.

    Any other state is returned as is: the caller decides what a running VM means. `current`: the status the
    caller just read (saves reading it again)."""
    deadline = Deadline(settings.operation_timeout, f"{vm} to finish stopping (PowerState stopped or deallocated)")
    with _compute(settings, vm.subscription_id, credential) as client:
        first = current if current is not None else _read_status(client, vm, settings, log)
        if first.power_state not in _TRANSITIONAL_POWER_STATES:
            return first
        log.info(f"{vm} is {first.power_state}; waiting for it to stop")
        status = _wait_settled(client, settings, vm, log, deadline)
    log.info(f"{vm} is {status.power_state}")
    return status


def deallocate(
    settings: ArmSettings,
    vm: VmRef,
    log: Log,
    credential: TokenCredential | None = None,
    *,
    current: VmStatus | None = None,
) -> VmStatus:
    """Deallocate the VM and wait (bounded) for the long-running operation to succeed; returns the new status.

    A VM that is already deallocated is left alone, so the step is safe to repeat. `current`: the status the
    caller just read (saves reading it again); the status returned is that one, deallocated (not read again)."""
    what = f"Azure to deallocate {vm} (the deallocate operation to reach Succeeded)"
    deadline = Deadline(settings.operation_timeout, what)
    call = _Call(settings, "deallocate", str(vm), PERMISSION_VM_DEALLOCATE, vm)
    with _compute(settings, vm.subscription_id, credential) as client:
        status = current if current is not None else _read_status(client, vm, settings, log)
        if status.power_state in _TRANSITIONAL_POWER_STATES:
            # A stop or deallocation from an earlier, interrupted run is still going: let it finish, not race it.
            log.info(f"{vm} is {status.power_state}; waiting for that to finish first")
            status = _wait_settled(client, settings, vm, log, deadline)
        if status.power_state == "deallocated":
            log.info(f"{vm} is already deallocated")
            return status
        log.info(f"deallocating {vm} (currently {status.power_state or 'unknown'})")
        budget = _Budget(replace(settings, operation_timeout=deadline.remaining), f"deallocate {vm}", log)
        options = budget.options()
        # ARMPolling's own `timeout` is its poll interval; the retry policy bounds each poll by the budget.
        poll_options = {k: v for k, v in options.items() if k != "timeout"}
        polling = _BoundedPolling(budget, path_format_arguments={"endpoint": settings.endpoint}, **poll_options)
        with _arm_errors(call):
            poller = client.virtual_machines.begin_deallocate(vm.resource_group, vm.name, polling=polling, **options)
            try:
                # The poller's thread ends by itself at the bound (_BoundedPolling); the timeout is a safety net.
                poller.result(timeout=deadline.remaining + settings.request_timeout + 1.0)
            except _OperationBound as exc:
                raise _still_deallocating(deadline, exc.status, settings) from None
            except ServiceResponseError as exc:
                if _is_reset(exc) or budget.remaining > _CUT_BY_THE_BOUND or budget.unanswered:
                    raise
                # ARM answered every poll, and the bound passed while the last one was on its way (each request's
                # read timeout is capped by what is left of the bound, so a slow answer is cut off there): the
                # bound ended the wait, not a silent ARM.
                raise _still_deallocating(deadline, poller.status(), settings) from None
            except HttpResponseError as exc:
                if exc.status_code is not None and exc.status_code < 400:
                    # The operation document itself said Failed/Canceled: quote Azure's reason.
                    code, message = azure_error_detail(exc)
                    raise ArmError(
                        f"Azure could not deallocate {vm}: the operation ended {poller.status()} with {code}: "
                        f"{message}. Check the VM's activity log in the Azure portal, fix the cause and run again "
                        "(deallocate is safe to repeat)."
                    ) from exc
                raise
        if not poller.done():
            raise _still_deallocating(deadline, poller.status(), settings)
    status = status.after_deallocation()
    log.info(f"{vm} deallocated (the operation Succeeded)")
    return status


def _still_deallocating(deadline: Deadline, status: str, settings: ArmSettings) -> WaitTimeout:
    """The deallocation's bound passed while Azure still reported the operation `status`."""
    return WaitTimeout(
        f"{deadline.timeout(f'operation status {status}')}. The VM may still be deallocating: check it in the "
        f"Azure portal and run again (deallocate is safe to repeat), or raise {settings.bound_source}."
    )


def generalize(
    settings: ArmSettings,
    vm: VmRef,
    log: Log,
    credential: TokenCredential | None = None,
    *,
    current: VmStatus | None = None,
) -> None:
    """Mark the VM generalized in ARM (synchronous). Irreversible: the VM can never be started again.

    Azure refuses (409 OperationNotAllowed) unless the VM is stopped; deallocate first. `current`: the status
    the caller read last, so that a refusal is explained by the state it fits."""
    call = _Call(settings, "generalize", str(vm), PERMISSION_VM_GENERALIZE, vm)
    log.info(f"marking {vm} as generalized")
    with _compute(settings, vm.subscription_id, credential) as client:
        with _arm_errors(call):
            try:
                budget = _Budget(settings, f"generalize {vm}", log)
                client.virtual_machines.generalize(vm.resource_group, vm.name, **budget.options())
                refused = None
            except HttpResponseError as exc:
                if exc.status_code != 409:
                    raise
                refused = exc
        if refused is not None:
            code, message = azure_error_detail(refused)
            if current is None:
                # Read the state now (best effort), so the advice fits it.
                with contextlib.suppress(ArmError):
                    current = _read_status(client, vm, settings, log)
            raise ArmError(
                f"Azure refused to generalize {vm} (409 {code}): {message}. {_generalize_advice(current)}"
            ) from refused
    log.info(f"{vm} is marked generalized")


def _generalize_advice(status: VmStatus | None) -> str:
    """What to do after a refused generalize, for the state the VM was seen in."""
    if status is None:
        return "Check the VM's state in the Azure portal and run again."
    if status.power_state in ("running", "starting"):
        return (
            f"The VM is {status.power_state}: it can only be marked generalized when it is not running. "
            "Deallocate it (after sysprep / waagent deprovision finished in the guest), then run again."
        )
    if status.power_state in _TRANSITIONAL_POWER_STATES:
        return f"The VM is still {status.power_state}: wait until it has stopped, then run again."
    return (
        f"The VM was seen {status.power_state or 'in no power state'} ({status}), which allows it: another "
        "operation may be running on it. Check its activity log in the Azure portal and run again (the step is "
        "safe to repeat)."
    )


def verify_generalized(
    settings: ArmSettings, vm: VmRef, log: Log, credential: TokenCredential | None = None
) -> VmStatus:
    """Check that the VM is ready to be captured: PowerState/deallocated and OSState/generalized."""
    status = get_status(settings, vm, log, credential)
    problems = []
    if status.power_state != "deallocated":
        problems.append(f"PowerState is {status.power_state or 'missing'} (needs deallocated: run deallocate)")
    if not status.generalized:
        problems.append(
            "OSState/generalized is missing (run generalize, after the guest was sysprepped or deprovisioned)"
        )
    if problems:
        raise ArmError(f"{vm} is not ready to be captured: {'; '.join(problems)}. Statuses: {status}.")
    return status


# --- VM facts ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VmFacts:
    """What Azure checks only at capture time, read up front from the VM model and its OS disk (read-only)."""

    location: str
    os_type: str
    """Linux | Windows (storageProfile.osDisk.osType)."""
    hyper_v_generation: str
    """V1 | V2: the instance view's hyperVGeneration; if absent, the OS disk's; if both are absent, V1 (Azure's
    default for disks created before the property existed)."""
    security_type: str
    """Standard | TrustedLaunch | ConfidentialVM: securityProfile.securityType; absent means Standard."""
    architecture: str
    """x64 | Arm64: the OS disk's supportedCapabilities.architecture (the image reference does not carry it);
    absent, or an unmanaged OS disk, means x64 (Azure's default)."""
    vm_id: str
    """The VM's unique id (properties.vmId): tells this VM apart from a later one created under the same name."""
    status: VmStatus | None = field(default=None, compare=False)
    """The instance view read with the model (power state, OSState/generalized); None only when built by hand."""
    os_disk_size_gb: int | None = field(default=None, compare=False)
    """storageProfile.osDisk.diskSizeGB, else the OS disk's diskSizeGB; None when neither reports it."""
    data_disks: tuple[DataDiskFacts, ...] = field(default=(), compare=False)
    """storageProfile.dataDisks, in LUN order."""
    disk_controller_type: str | None = field(default=None, compare=False)
    """SCSI | NVMe: storageProfile.diskControllerType; None when Azure reports none (SCSI, its default)."""
    accelerated_network: bool | None = field(default=None, compare=False)
    """The OS disk's supportedCapabilities.acceleratedNetwork; None when not reported."""
    supports_hibernation: bool | None = field(default=None, compare=False)
    """The OS disk's supportsHibernation; None when not reported."""


@dataclass(frozen=True)
class DataDiskFacts:
    """A data disk of the VM, as the Marketplace rules look at it (read-only)."""

    lun: int
    size_gb: int | None
    """diskSizeGB of the VM model's entry; None when not reported."""


_CANONICAL = {
    v.lower(): v
    for v in ("Linux", "Windows", "V1", "V2", "Standard", "TrustedLaunch", "ConfidentialVM", "x64", "Arm64")
}


def _canonical(value: object) -> str | None:
    """Azure's spelling of a known value (APIs differ in case); unknown values are passed through unchanged."""
    if value is None or value == "":
        return None
    text = str(value.value if isinstance(value, Enum) else value)
    return _CANONICAL.get(text.lower(), text)


def get_facts(settings: ArmSettings, vm: VmRef, log: Log, credential: TokenCredential | None = None) -> VmFacts:
    """Read the VM model (with its instance view) and, for a managed OS disk, the disk (read-only)."""
    call = _Call(settings, "read", str(vm), PERMISSION_VM_READ, vm)
    with _compute(settings, vm.subscription_id, credential) as client:
        with _arm_errors(call):
            model = client.virtual_machines.get(
                vm.resource_group, vm.name, expand="instanceView", **_Budget(settings, f"read {vm}", log).options()
            )
        props = model.properties
        os_disk = props.storage_profile.os_disk if props and props.storage_profile else None
        if props is None or os_disk is None:
            raise ArmError(f"ARM returned {vm} without a storage profile; cannot tell its OS. Run again.")

        disk_props = None
        disk_id = os_disk.managed_disk.id if os_disk.managed_disk else None
        match = _DISK_ID.match(disk_id or "")
        if disk_id and match:
            disk_call = _Call(settings, "read the OS disk of", f"{vm} ({disk_id})", PERMISSION_DISK_READ)
            with _arm_errors(disk_call):
                budget = _Budget(settings, f"read the OS disk of {vm}", log)
                disk_props = client.disks.get(match["rg"], match["name"], **budget.options()).properties

    os_type = _canonical(os_disk.os_type) or (_canonical(disk_props.os_type) if disk_props else None)
    if os_type is None:
        raise ArmError(f"ARM reports no osType for the OS disk of {vm}; cannot match it to an image definition.")

    hyper_v = _canonical(props.instance_view.hyper_v_generation) if props.instance_view else None
    if hyper_v is None and disk_props is not None:
        hyper_v = _canonical(disk_props.hyper_v_generation)
    if hyper_v is None:
        log.info(f"{vm}: no hyperVGeneration reported; assuming V1 (Azure's default)")
        hyper_v = "V1"

    security = _canonical(props.security_profile.security_type) if props.security_profile else None

    arch = None
    if disk_props is not None and disk_props.supported_capabilities is not None:
        arch = _canonical(disk_props.supported_capabilities.architecture)
    if arch is None:
        log.info(f"{vm}: the OS disk reports no architecture; assuming x64 (Azure's default)")

    facts = VmFacts(
        location=model.location,
        os_type=os_type,
        hyper_v_generation=hyper_v,
        security_type=security or "Standard",
        architecture=arch or "x64",
        vm_id=props.vm_id or "",
        status=VmStatus.from_instance_view(props.instance_view),
        **_disk_facts(props.storage_profile, disk_props),
    )
    log.info(
        f"{vm}: {facts.os_type}, {facts.hyper_v_generation}, {facts.security_type}, {facts.architecture}, "
        f"in {facts.location}"
    )
    return facts


def _disk_facts(storage: Any, disk_props: Any) -> dict[str, Any]:
    """The disk layout the Marketplace rules and the definition's features are checked against (hooks/preflight)."""
    os_size = storage.os_disk.disk_size_gb or (disk_props.disk_size_gb if disk_props is not None else None)
    caps = disk_props.supported_capabilities if disk_props is not None else None
    controller = getattr(storage, "disk_controller_type", None)
    return {
        "os_disk_size_gb": os_size,
        "data_disks": tuple(
            sorted((DataDiskFacts(d.lun, d.disk_size_gb) for d in storage.data_disks or ()), key=lambda d: d.lun)
        ),
        "disk_controller_type": _canonical(controller),
        "accelerated_network": getattr(caps, "accelerated_network", None) if caps is not None else None,
        "supports_hibernation": getattr(disk_props, "supports_hibernation", None) if disk_props is not None else None,
    }


# --- gallery and subscription reads --------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageVersionFacts:
    """An existing gallery image version (read-only)."""

    id: str
    provisioning_state: str | None
    """Succeeded | Creating | Updating | Failed | Deleting | Migrating."""
    source_vm_id: str | None
    """The VM it was captured from (storageProfile.source.virtualMachineId, or a VM id in source.id)."""


def get_image_version(
    settings: ArmSettings,
    subscription_id: str,
    resource_group: str,
    gallery: str,
    image: str,
    version: str,
    credential: TokenCredential | None = None,
) -> ImageVersionFacts | None:
    """Read an image version; None if it (or its definition, gallery or resource group) does not exist."""
    found = _read_version(settings, subscription_id, (resource_group, gallery, image, version), credential)
    if found is None:
        return None
    props = found.properties
    source = props.storage_profile.source if props and props.storage_profile else None
    source_vm_id = None
    if source is not None:
        source_vm_id = source.virtual_machine_id
        if not source_vm_id and source.id and "/providers/microsoft.compute/virtualmachines/" in source.id.lower():
            source_vm_id = source.id
    return ImageVersionFacts(
        id=found.id or "",
        provisioning_state=_canonical(props.provisioning_state) if props else None,
        source_vm_id=source_vm_id,
    )


@dataclass(frozen=True)
class RegionReplication:
    """One target region's replication of an image version, as Azure reports it."""

    region: str
    """As Azure names it: usually the display name ("West Europe"), not the config's `westeurope`."""
    state: str
    """Unknown | Replicating | Completed | Failed."""
    progress: int | None
    """Percent done (0-100); None when Azure reports none."""
    details: str
    """Azure's explanation, mostly of a failure, on one line; "" when none."""


def _read_version(
    settings: ArmSettings,
    subscription_id: str,
    where: tuple[str, str, str, str],
    credential: TokenCredential | None,
    *,
    verb: str = "read",
    with_replication: bool = False,
    log: Log | None = None,
) -> Any | None:
    """GET one image version (resource group, gallery, image, version), bounded like every ARM call; None if it,
    or its definition, gallery or resource group, does not exist."""
    resource_group, gallery, image, version = where
    target = f"image version {version} of {image} in gallery {gallery} (resource group {resource_group})"
    call = _Call(settings, verb, target, PERMISSION_IMAGE_VERSION_READ)
    expand = {"expand": ReplicationStatusTypes.REPLICATION_STATUS} if with_replication else {}
    with _compute(settings, subscription_id, credential) as client, _arm_errors(call):
        try:
            return client.gallery_image_versions.get(
                resource_group, gallery, image, version, **expand, **_Budget(settings, f"read {target}", log).options()
            )
        except HttpResponseError as exc:
            if exc.status_code == 404:
                return None
            raise


def _replication_of(props: Any) -> tuple[RegionReplication, ...]:
    replication = props.replication_status if props else None
    return tuple(
        RegionReplication(
            region=entry.region or "",
            state=_canonical(entry.state) or "Unknown",
            progress=entry.progress,
            details=" ".join((entry.details or "").split()),
        )
        for entry in ((replication.summary or []) if replication else [])
    )


@dataclass(frozen=True)
class ReplicationStatus:
    """An image version's replication to its target regions (`$expand=ReplicationStatus`, read-only)."""

    provisioning_state: str | None
    """Creating (while the capture call replicates) | Succeeded | Failed | Updating | Deleting | Migrating."""
    aggregated_state: str | None
    """Unknown | InProgress | Completed | Failed over all regions; None when Azure reports no replication status."""
    regions: tuple[RegionReplication, ...]
    """One entry per region in Azure's summary, in Azure's order."""


def get_replication_status(
    settings: ArmSettings,
    subscription_id: str,
    resource_group: str,
    gallery: str,
    image: str,
    version: str,
    log: Log | None = None,
    credential: TokenCredential | None = None,
) -> ReplicationStatus | None:
    """Read an image version's replication status (GET only); None if the version does not exist (yet)."""
    target = f"image version {version} of {image} in gallery {gallery} (resource group {resource_group})"
    found = _read_version(
        settings,
        subscription_id,
        (resource_group, gallery, image, version),
        credential,
        verb="read the replication status of",
        with_replication=True,
        log=log,
    )
    if found is None:
        return None
    props = found.properties
    replication = props.replication_status if props else None
    status = ReplicationStatus(
        provisioning_state=_canonical(props.provisioning_state) if props else None,
        aggregated_state=_canonical(replication.aggregated_state) if replication else None,
        regions=_replication_of(props),
    )
    if log is not None:
        regions = ", ".join(f"{r.region} {r.state} {r.progress or 0}%" for r in status.regions)
        log.info(f"{target}: {status.provisioning_state}, replication {status.aggregated_state} ({regions})")
    return status


def get_subscription_tenant(
    settings: ArmSettings, subscription_id: str, credential: TokenCredential | None = None
) -> str:
    """The tenant (directory) id a subscription belongs to."""
    return read_subscription_tenant(settings, subscription_id, credential)[0]


def read_subscription_tenant(
    settings: ArmSettings, subscription_id: str, credential: TokenCredential | None = None
) -> tuple[str, bool]:
    """(the tenant id a subscription belongs to, True when ARM refused the login's token for it because the
    subscription is in another tenant than the token's, naming that tenant)."""
    target = f"subscription {subscription_id}"
    call = _Call(settings, "read", target, PERMISSION_SUBSCRIPTION_READ)
    request = HttpRequest("GET", f"/subscriptions/{subscription_id}", params={"api-version": SUBSCRIPTIONS_API_VERSION})
    with _resources(settings, subscription_id, credential) as client, _arm_errors(call):
        response = client.send_request(request, **_Budget(settings, f"read {target}").options())
        if response.status_code == 404:
            code, message = azure_error_detail(HttpResponseError(response=response))
            raise ArmError(
                f"{target} was not found ({code}): it does not exist or the identity has no role in it. "
                f"Check the subscription id and the login (`az account list`). Azure said: {message}."
            )
        other = tenant_of_refusal(response)
        if other is not None:
            return other, True  # a subscription of another tenant: ARM refuses our token, and names its tenant
        response.raise_for_status()
        body = response.json()
    tenant = body.get("tenantId") if isinstance(body, dict) else None
    if not isinstance(tenant, str) or not tenant:
        raise ArmError(f"ARM returned {target} without a tenantId. Run again.")
    return tenant, False


LOCATIONS_API_VERSION = "2022-12-01"
"""api-version for GET /subscriptions/{id}/locations (Microsoft.Resources)."""


def list_locations(
    settings: ArmSettings, subscription_id: str, credential: TokenCredential | None = None
) -> frozenset[str]:
    """The locations a subscription can use, as region keys: short names, and display names without spaces,
    lowercased (`westeurope`), so both forms of a configured region compare."""
    target = f"the locations of subscription {subscription_id}"
    call = _Call(settings, "read", target, PERMISSION_SUBSCRIPTION_READ)
    request = HttpRequest(
        "GET", f"/subscriptions/{subscription_id}/locations", params={"api-version": LOCATIONS_API_VERSION}
    )
    with _resources(settings, subscription_id, credential) as client, _arm_errors(call):
        response = client.send_request(request, **_Budget(settings, f"read {target}").options())
        response.raise_for_status()
        body = response.json()
    entries = body.get("value") if isinstance(body, dict) else None
    if not isinstance(entries, list) or not entries:
        raise ArmError(f"ARM returned no locations for subscription {subscription_id}. Run again.")
    keys: set[str] = set()
    for entry in entries:
        if isinstance(entry, dict):
            for field_name in ("name", "displayName"):
                value = entry.get(field_name)
                if isinstance(value, str) and value:
                    keys.add(value.replace(" ", "").lower())
    return frozenset(keys)


# --- promotion reads (hooks/promotion.py) --------------------------------------------------------------------

PERMISSION_IMAGE_DEFINITION_READ = "Microsoft.Compute/galleries/images/read"


@dataclass(frozen=True)
class ImageDefinitionFacts:
    """An existing image definition, as the promotion checks compare it (read-only)."""

    id: str
    os_type: str
    os_state: str
    hyper_v_generation: str
    """V1 when Azure reports none (its default)."""
    architecture: str
    """x64 when Azure reports none (its default)."""
    security_type: str
    """The SecurityType feature; Standard when there is none."""
    end_of_life_date: str | None
    """ISO 8601, or None."""


def get_image_definition(
    settings: ArmSettings,
    subscription_id: str,
    resource_group: str,
    gallery: str,
    image: str,
    credential: TokenCredential | None = None,
) -> ImageDefinitionFacts | None:
    """Read an image definition; None if it (or its gallery or resource group) does not exist."""
    target = f"image definition {image} in gallery {gallery} (resource group {resource_group})"
    call = _Call(settings, "read", target, PERMISSION_IMAGE_DEFINITION_READ)
    with _compute(settings, subscription_id, credential) as client, _arm_errors(call):
        try:
            found = client.gallery_images.get(resource_group, gallery, image)
        except HttpResponseError as exc:
            if exc.status_code == 404:
                return None
            raise
    props = found.properties
    if props is None:
        raise ArmError(f"ARM returned {target} without properties; cannot compare it. Run again.")
    features = {str(f.name).lower(): str(f.value) for f in (props.features or []) if f.name}
    eol = props.end_of_life_date
    return ImageDefinitionFacts(
        id=found.id or "",
        os_type=_canonical(props.os_type) or "",
        os_state=str(_canonical(props.os_state) or "").capitalize(),
        hyper_v_generation=_canonical(props.hyper_v_generation) or "V1",
        architecture=_canonical(props.architecture) or "x64",
        security_type=features.get("securitytype") or "Standard",
        end_of_life_date=eol.isoformat() if eol is not None else None,
    )


@dataclass(frozen=True)
class VersionSourceFacts:
    """An existing image version with what a promotion needs: its source, end of life and replication."""

    id: str
    location: str
    provisioning_state: str | None
    source_id: str | None
    """storageProfile.source.id (a version promoted from another version, or a legacy VM source) or
    storageProfile.source.virtualMachineId."""
    end_of_life_date: str | None
    """publishingProfile.endOfLifeDate (ISO 8601), or None."""
    replication: tuple[RegionReplication, ...]


def get_version_source(
    settings: ArmSettings,
    subscription_id: str,
    resource_group: str,
    gallery: str,
    image: str,
    version: str,
    credential: TokenCredential | None = None,
) -> VersionSourceFacts | None:
    """Read an image version with its replication status (GET only, bounded); None if it does not exist."""
    where = (resource_group, gallery, image, version)
    found = _read_version(settings, subscription_id, where, credential, with_replication=True)
    if found is None:
        return None
    props = found.properties
    source = props.storage_profile.source if props and props.storage_profile else None
    publishing = props.publishing_profile if props else None
    eol = getattr(publishing, "end_of_life_date", None)
    return VersionSourceFacts(
        id=found.id or "",
        location=found.location or "",
        provisioning_state=_canonical(props.provisioning_state) if props else None,
        source_id=(source.id or source.virtual_machine_id) if source is not None else None,
        end_of_life_date=eol.isoformat() if eol is not None else None,
        replication=_replication_of(props),
    )
