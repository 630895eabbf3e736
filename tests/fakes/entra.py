"""Local stand-ins for Entra ID's token endpoint and GitHub Actions' OIDC request URL, over HTTPS with the fake
ARM's throwaway CA (REQUESTS_CA_BUNDLE from `FakeArm.env` trusts both).

FakeEntra answers what azure-identity and MSAL ask (read from their source): the OpenID configuration
(`GET /{tenant}/v2.0/.well-known/openid-configuration`, MSAL's tenant discovery; instance discovery is off for a
non-Microsoft authority) and the token endpoint (`POST /{tenant}/oauth2/v2.0/token`, client credentials with a
secret or a client assertion). Applications are registered with a secret or a federated credential trusting the
fake GitHub; each access token lives `token_lifetime` seconds, and the fake ARM accepts them
(`FakeArm.trust(entra)`) until they expire. Refusals are Entra's own codes: AADSTS700016 (unknown client ID),
AADSTS7000215 (wrong secret), AADSTS700024 (client assertion expired), AADSTS90002 (unknown tenant).

FakeServicePrincipal and `graph_service_principals` are the tenant's service principals as Microsoft Graph lists
them (the fake ARM serves Graph's routes with them): `GET /v1.0/servicePrincipals?$filter=displayName eq '…'`
returns every principal of that name, whoever owns its application (`appOwnerOrganizationId`), as Graph does; a
look-alike registered by another tenant under a first-party name is listed too, and the caller must refuse it.

FakeGitHubOidc answers `GET <url>?audience=…` with `Authorization: Bearer <request token>` by a fresh ID token
(`{"value": …}`) living `token_lifetime` seconds, as ACTIONS_ID_TOKEN_REQUEST_URL does.

Point azure-identity at FakeEntra with `AZURE_AUTHORITY_HOST=<entra.authority>` (`entra.env`).
"""

from __future__ import annotations

import base64
import json
import re
import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit

import pytest

from tests.fakes.arm import DEFAULT_TENANT, _authority

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def _jwt(payload: dict[str, Any]) -> str:
    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    return f"{part({'typ': 'JWT', 'alg': 'none'})}.{part(payload)}.{uuid.uuid4().hex}"


MICROSOFT_SERVICES_TENANT = "f8cdef31-a31e-4b4a-93e4-5f571e91255a"
"""The owner tenant of Microsoft's first-party applications, as Graph reports it."""
_DISPLAY_NAME_EQ = re.compile(r"^displayName eq '((?:[^']|'')*)'$")


@dataclass(frozen=True)
class FakeServicePrincipal:
    """A service principal in the tenant, with the tenant that owns its application."""

    object_id: str
    app_id: str
    display_name: str
    owner_tenant: str = MICROSOFT_SERVICES_TENANT

    def graph(self) -> dict[str, Any]:
        return {
            "id": self.object_id,
            "appId": self.app_id,
            "displayName": self.display_name,
            "appOwnerOrganizationId": self.owner_tenant,
        }


def graph_service_principals(
    principals: list[FakeServicePrincipal], object_id: str | None, query: dict[str, str]
) -> tuple[int, dict[str, Any]]:
    """Graph's answer to GET /v1.0/servicePrincipals[/{id}]: one principal by object ID, or the collection filtered
    by `$filter=displayName eq '…'` (the one filter the product sends; others are refused as Graph would)."""
    if object_id is not None:
        for p in principals:
            if p.object_id.lower() == object_id.lower():
                return 200, p.graph()
        message = (
            f"Resource '{object_id}' does not exist or one of its queried reference-property objects are not present."
        )
        return 404, {"error": {"code": "Request_ResourceNotFound", "message": message}}
    wanted = _DISPLAY_NAME_EQ.fullmatch(query.get("$filter", ""))
    if wanted is None:
        return 400, {"error": {"code": "Request_UnsupportedQuery", "message": "Unsupported query."}}
    name = wanted[1].replace("''", "'")
    # Graph compares displayName case-insensitively and lists every match, whoever owns the application.
    return 200, {"value": [p.graph() for p in principals if p.display_name.lower() == name.lower()]}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:
        self.server.owner.handle(self, "GET")

    def do_POST(self) -> None:
        self.server.owner.handle(self, "POST")

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, owner: _HttpsFake) -> None:
        self.owner = owner
        super().__init__(("127.0.0.1", 0), _Handler)


class _HttpsFake:
    """A small HTTPS server on 127.0.0.1 with the fake ARM's CA."""

    name = "fake"

    def __init__(self) -> None:
        self._server: _Server | None = None
        self._lock = threading.RLock()

    def start(self) -> Self:
        _, cert = _authority()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        cert.configure_cert(context)
        self._server = _Server(self)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name=self.name, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def base(self) -> str:
        assert self._server is not None, "start() first"
        return f"https://127.0.0.1:{self._server.server_address[1]}"

    def handle(self, handler: _Handler, method: str) -> None:
        parts = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length).decode() if length else ""
        status, answer = self.route(method, parts.path, dict(parse_qsl(parts.query)), body, handler.headers)
        raw = json.dumps(answer).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(raw)))
        handler.end_headers()
        handler.wfile.write(raw)

    def route(
        self, method: str, path: str, query: dict[str, str], body: str, headers: Any
    ) -> tuple[int, dict[str, Any]]:
        raise NotImplementedError


@dataclass
class FakeApp:
    """An app registration: a client secret, and/or a federated credential trusting an OIDC issuer."""

    client_id: str
    secret: str | None = None
    federated: FakeGitHubOidc | None = None


@dataclass
class TokenRequest:
    """One request to the token endpoint, as Entra saw it."""

    tenant: str
    client_id: str
    kind: str
    """secret | assertion | other"""
    status: int
    error: str | None = None
    at: float = field(default_factory=time.time)
    scope: str = ""
    """The scope asked for (`<resource>/.default`): the token's audience."""


class FakeEntra(_HttpsFake):
    """Entra ID's token endpoint for one tenant (see the module docstring)."""

    name = "fake-entra"

    def __init__(self, tenant_id: str = DEFAULT_TENANT, token_lifetime: int = 3600) -> None:
        super().__init__()
        self.tenant_id = tenant_id
        self.token_lifetime = token_lifetime
        """Seconds each access token lives."""
        self.apps: dict[str, FakeApp] = {}
        self.token_requests: list[TokenRequest] = []
        self.discovery_requests = 0
        self._issued: dict[str, tuple[str, float]] = {}
        """access token → (client ID, expiry)."""

    @property
    def authority(self) -> str:
        return self.base

    @property
    def env(self) -> dict[str, str]:
        """Point azure-identity at this fake (trust comes from FakeArm.env's REQUESTS_CA_BUNDLE)."""
        return {"AZURE_AUTHORITY_HOST": self.authority}

    def register(self, client_id: str, secret: str | None = None, federated: FakeGitHubOidc | None = None) -> FakeApp:
        app = FakeApp(client_id, secret, federated)
        self.apps[client_id.lower()] = app
        return app

    def verdict(self, token: str) -> str | None:
        """For the fake ARM: "valid", "expired", or None when this fake never issued the token."""
        with self._lock:
            found = self._issued.get(token)
        if found is None:
            return None
        return "valid" if found[1] > time.time() else "expired"

    def issued(self, client_id: str | None = None) -> int:
        """Access tokens issued so far (to one client)."""
        return sum(
            1
            for r in self.token_requests
            if r.status == 200 and (client_id is None or r.client_id.lower() == client_id.lower())
        )

    def errors(self) -> list[str]:
        return [r.error for r in self.token_requests if r.error]

    def route(
        self, method: str, path: str, query: dict[str, str], body: str, headers: Any
    ) -> tuple[int, dict[str, Any]]:
        segments = path.strip("/").split("/")
        tenant = segments[0] if segments else ""
        if method == "GET" and path.endswith("/v2.0/.well-known/openid-configuration"):
            with self._lock:
                self.discovery_requests += 1
            base = f"{self.base}/{tenant}"
            return 200, {
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "issuer": f"{base}/v2.0",
                "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt"],
                "tenant_region_scope": "EU",
            }
        if method == "POST" and path.endswith("/oauth2/v2.0/token"):
            return self._token(tenant, dict(parse_qsl(body)))
        return 404, {"error": "not_found", "error_description": f"no route for {method} {path}"}

    def _refuse(
        self, request: TokenRequest, status: int, error: str, code: str, text: str
    ) -> tuple[int, dict[str, Any]]:
        request.status, request.error = status, code
        with self._lock:
            self.token_requests.append(request)
        return status, {
            "error": error,
            "error_description": f"{code}: {text} Trace ID: {uuid.uuid4()} Timestamp: {time.strftime('%Y-%m-%d')}",
            "error_codes": [int(code.removeprefix("AADSTS"))],
        }

    def _token(self, tenant: str, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        client_id = form.get("client_id", "")
        kind = "secret" if "client_secret" in form else "assertion" if "client_assertion" in form else "other"
        request = TokenRequest(tenant, client_id, kind, 0, scope=form.get("scope", ""))
        if tenant.lower() != self.tenant_id.lower():
            return self._refuse(request, 400, "invalid_request", "AADSTS90002", f"Tenant '{tenant}' not found.")
        app = self.apps.get(client_id.lower())
        if app is None:
            return self._refuse(
                request,
                400,
                "unauthorized_client",
                "AADSTS700016",
                f"Application with identifier '{client_id}' was not found in the directory '{tenant}'.",
            )
        if kind == "secret":
            if app.secret is None or form["client_secret"] != app.secret:
                return self._refuse(request, 401, "invalid_client", "AADSTS7000215", "Invalid client secret provided.")
        elif kind == "assertion":
            verdict = app.federated.verdict(form["client_assertion"]) if app.federated is not None else None
            if form.get("client_assertion_type") != ASSERTION_TYPE or verdict is None:
                return self._refuse(
                    request,
                    400,
                    "invalid_client",
                    "AADSTS70021",
                    "No matching federated identity record found for presented assertion.",
                )
            if verdict == "expired":
                return self._refuse(
                    request,
                    400,
                    "invalid_client",
                    "AADSTS700024",
                    "Client assertion is not within its valid time range.",
                )
        else:
            return self._refuse(request, 401, "invalid_client", "AADSTS7000216", "No client credential was given.")
        # The audience is the resource of the requested scope (`<resource>/.default`), as Entra issues it.
        audience = form.get("scope", "").split(" ")[0].removesuffix("/.default")
        token = _jwt({"aud": audience, "tid": tenant, "appid": client_id, "n": uuid.uuid4().hex})
        with self._lock:
            self._issued[token] = (client_id, time.time() + self.token_lifetime)
            request.status = 200
            self.token_requests.append(request)
        return 200, {
            "token_type": "Bearer",
            "expires_in": self.token_lifetime,
            "ext_expires_in": self.token_lifetime,
            "access_token": token,
        }


class FakeGitHubOidc(_HttpsFake):
    """GitHub Actions' ID token request URL: a fresh ID token per request, for the bearer request token."""

    name = "fake-github-oidc"

    def __init__(self, token_lifetime: int = 300) -> None:
        super().__init__()
        self.token_lifetime = token_lifetime
        self.request_token = f"ghs_{uuid.uuid4().hex}"
        """The bearer token the job presents (ACTIONS_ID_TOKEN_REQUEST_TOKEN)."""
        self.requests: list[tuple[str, int]] = []
        """(audience, status) per request."""
        self._issued: dict[str, float] = {}

    @property
    def url(self) -> str:
        return f"{self.base}/_apis/pipelines/workflows/1/idtoken?api-version=2.0"

    def actions_env(self) -> dict[str, str]:
        """What `permissions: id-token: write` gives a job."""
        return {"ACTIONS_ID_TOKEN_REQUEST_URL": self.url, "ACTIONS_ID_TOKEN_REQUEST_TOKEN": self.request_token}

    def id_token(self) -> str:
        """One ID token, fetched as a job would (e.g. to write a federated token file)."""
        import requests

        answer = requests.get(
            self.url, headers={"Authorization": f"Bearer {self.request_token}"}, params={"audience": "x"}, timeout=10
        )
        return str(answer.json()["value"])

    @property
    def fetched(self) -> int:
        return sum(1 for _, status in self.requests if status == 200)

    def verdict(self, assertion: str) -> str | None:
        with self._lock:
            expiry = self._issued.get(assertion)
        if expiry is None:
            return None
        return "valid" if expiry > time.time() else "expired"

    def route(
        self, method: str, path: str, query: dict[str, str], body: str, headers: Any
    ) -> tuple[int, dict[str, Any]]:
        audience = query.get("audience", "")
        if headers.get("Authorization") != f"Bearer {self.request_token}":
            with self._lock:
                self.requests.append((audience, 401))
            return 401, {"message": "Bad credentials"}
        token = _jwt({"iss": self.base, "sub": "repo:contoso/images:environment:prod", "aud": audience})
        with self._lock:
            self._issued[token] = time.time() + self.token_lifetime
            self.requests.append((audience, 200))
        return 200, {"count": 1, "value": token}


@pytest.fixture
def fake_entra() -> Iterator[FakeEntra]:
    entra = FakeEntra().start()
    try:
        yield entra
    finally:
        entra.stop()


@pytest.fixture
def fake_github_oidc() -> Iterator[FakeGitHubOidc]:
    github = FakeGitHubOidc().start()
    try:
        yield github
    finally:
        github.stop()
