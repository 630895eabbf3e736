"""One login and one HTTP connection pool per process and ARM endpoint, and the raw `request()` for calls
azure-mgmt has no method for.

One session per process, ARM endpoint and login (`ArmSession`: one login, one HTTP connection pool, shared by every
call and thread), kept in this module's registry, never on a provider: dynamic providers are pickled, and a
credential or an HTTP session must never travel with them. The login settings travel in `ArmSettings.login`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import requests
from azure.core.credentials import AccessToken, TokenCredential
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ServiceResponseError
from azure.core.pipeline.transport import RequestsTransport
from azure.core.rest import HttpRequest, HttpResponse
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.resource.resources import ResourceManagementClient

from hooks import login as azure_login
from hooks.arm.budget import BoundedRetryPolicy, Budget, raise_if_wait_ended
from hooks.arm.errors import Call, LoginRefused, arm_errors
from hooks.arm.sdk_guard import guard_compute_models
from hooks.log import Log
from hooks.targets import ArmSettings
from hooks.waiting import Deadline


def login_of(settings: ArmSettings) -> azure_login.LoginSettings:
    """The login settings ARM calls with these settings use: `settings.login` (a provider's, from its
    `configure()`); when the caller passes none, the environment's (hooks/login.py `from_environment`)."""
    return settings.login if settings.login is not None else azure_login.from_environment()


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
        self.settings = settings if settings is not None else azure_login.from_environment()
        """The login settings this login uses (None: the environment's, resolved now)."""
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
                    raise LoginRefused(self.settings, exc.message) from None
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


class ArmSession:
    """Everything one process needs to talk to one ARM endpoint: one login (one credential per endpoint and
    token audience) and one HTTP connection pool, shared by every client, call and thread.

    The dynamic provider host serves every resource of a stack from one process and several threads: with a
    session per call, the ARM half opened four TLS connections and each check started its own `az`. Clients are
    made per subscription (azure-mgmt binds one to a client) over the same pool and login. Nothing here may be
    pickled into a provider: sessions live in this module's registry (`session()`), never on a provider.

    Making one puts the azure-mgmt-compute guard in place (hooks/arm/sdk_guard.py): every answer is read through
    a session's clients, so no model is worked out before."""

    def __init__(
        self,
        endpoint: str,
        scope: str,
        credential: TokenCredential | None = None,
        login: azure_login.LoginSettings | None = None,
    ) -> None:
        guard_compute_models()
        self.endpoint = endpoint
        self.scope = scope
        self.login = SharedLogin(login)
        self._credential: TokenCredential = credential if credential is not None else self.login
        self._http = requests.Session()
        self._lock = threading.Lock()
        self._compute: dict[str, ComputeManagementClient] = {}
        self._resources: dict[str, ResourceManagementClient] = {}

    def _options(self) -> dict[str, Any]:
        # Per-call bounds (`Budget.options`) override these defaults; TLS trust is left to requests, which reads
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
            "retry_policy": BoundedRetryPolicy(timeout=defaults.operation_timeout),
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
        package, which this project does not depend on; subscription reads and raw requests go through this
        client's `send_request`, which runs the same pipeline (auth, retries, bounds)."""
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
    """The process-wide session for the settings' endpoint, token audience and login (made on first use)."""
    login = login_of(settings)
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


def access_token(settings: ArmSettings, target: str) -> str:
    """The process-wide session's token for the settings' audience (fetched, or reused while fresh), e.g. for
    Microsoft Graph; raises ArmUnreachable (a login problem, said so) when no token can be had. `target`: what the
    token is for, completing "could not read …"."""
    with arm_errors(Call(settings, "read", target, "")):
        return session(settings).login.get_token(settings.scope).token


def ensure_login(settings: ArmSettings, target: str) -> None:
    """Get (or reuse) the process-wide session's token for the settings' audience; raises ArmUnreachable (a login
    problem, said so) when no token can be had. Lets concurrent reads share one login, or one login failure."""
    access_token(settings, target)


@contextmanager
def session_for(settings: ArmSettings, credential: TokenCredential | None) -> Iterator[ArmSession]:
    """The process-wide session, or, for a caller that brings its own credential, a session of its own for this
    call (closed at its end; the credential stays the caller's)."""
    if credential is None:
        yield session(settings)
        return
    own = ArmSession(settings.endpoint, settings.scope, credential, login=settings.login)
    try:
        yield own
    finally:
        own.close()


@contextmanager
def compute_client(
    settings: ArmSettings, subscription_id: str, credential: TokenCredential | None = None
) -> Iterator[ComputeManagementClient]:
    """A ComputeManagementClient for the subscription, on the session `session_for` gives."""
    with session_for(settings, credential) as s:
        yield s.compute(subscription_id)


@contextmanager
def resources_client(
    settings: ArmSettings, subscription_id: str, credential: TokenCredential | None = None
) -> Iterator[ResourceManagementClient]:
    """A ResourceManagementClient for the subscription, on the session `session_for` gives."""
    with session_for(settings, credential) as s:
        yield s.resources(subscription_id)


def request(
    call: Call,
    subscription_id: str,
    method: str,
    url: str,
    *,
    params: Mapping[str, str] | None = None,
    json: Any = None,
    accept: Collection[int] = (),
    log: Log | None = None,
    credential: TokenCredential | None = None,
    within: Deadline | None = None,
) -> HttpResponse:
    """One raw ARM request, for what azure-mgmt has no method for: through the same pipeline as every other call
    (the session's login and connection pool, retries, throttling and bounds of `call.settings`), its errors
    translated for `call` (hooks/arm/errors.py).

    `url`: a path on the ARM endpoint (`/subscriptions/…?api-version=…`), or an absolute URL on it (an operation
    to follow). An answer of 400 or more raises the `hooks.errors` type for it, unless its status is in `accept`:
    then it is returned for the caller to decide (e.g. 404: not there). `within`: the longer wait the request is
    part of (an operation followed until it ends): the request is bounded by what is left of it too, and raises
    WaitEnded when the end of that wait cut it short (the caller reports its wait's timeout)."""
    body: dict[str, Any] = {"json": json} if json is not None else {}
    raw = HttpRequest(method, url, params=dict(params) if params else None, **body)
    budget = Budget(call.settings, f"{call.doing} {call.target}", log, within)
    with resources_client(call.settings, subscription_id, credential) as client, arm_errors(call, budget):
        try:
            response: HttpResponse = client.send_request(raw, **budget.options())
        except ServiceResponseError as exc:
            raise_if_wait_ended(exc, budget)
            raise
        if response.status_code >= 400 and response.status_code not in accept:
            raise HttpResponseError(response=response)
        return response
