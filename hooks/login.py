"""The Azure login of the VM steps: the same settings, from the same sources and in the same precedence, as
azure-native's own login, so that one login configured once serves both.

Sources, per setting, first found wins (as azure-native's `getConfig(key, env)`):
1. the `azure-native:*` stack settings (`azure-native:clientId`, …), which reach the dynamic providers through
   `configure()`: the default provider receives the whole stack config there, an explicit provider host its own
   inputs (components/generalization_hosts.py passes the same keys, secrets marked secret);
2. the `ARM_*` environment variables (and GitHub's `ACTIONS_ID_TOKEN_REQUEST_URL`/`_TOKEN` for OIDC);
3. when neither selects a login method: azure-identity's `DefaultAzureCredential` (`AZURE_*`, workload identity,
   managed identity, `az login`), as before.

The method, in azure-native's order: `useDefaultAzureCredential`, a client certificate, a client secret, OIDC
(`useOidc`: a token, a token file read for every Azure token, or a fresh ID token from the request URL for every
Azure token), a managed identity (`useMsi`), else DefaultAzureCredential.

Nothing here is ever pickled into a provider: the stack part is kept on the configured provider object in the host
(`ConfiguredLogin`) and travels to ARM calls in `ArmSettings.login`; credentials are built by `hooks.arm` per
session. Secret values never appear in `repr`, `describe()` or any message.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from hooks.errors import ArmUnreachable

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

NAMESPACE = "azure-native"

OIDC_DEFAULT_AUDIENCE = "api://AzureADTokenExchange"
"""The audience GitHub's ID token is requested for (Entra's federated credentials expect it)."""

OIDC_REQUEST_TIMEOUT = 30.0
"""Seconds one request for a GitHub ID token may take."""

CLOUD_AUTHORITIES = {
    "public": "login.microsoftonline.com",
    "azurecloud": "login.microsoftonline.com",
    "usgovernment": "login.microsoftonline.us",
    "azureusgovernmentcloud": "login.microsoftonline.us",
    "china": "login.chinacloudapi.cn",
    "azurechinacloud": "login.chinacloudapi.cn",
}
"""azure-native's `environment` values (and the Azure CLI's cloud names) → Entra authority host."""

_KNOWN_AUTHORITY_HOSTS = frozenset(CLOUD_AUTHORITIES.values()) | {"login.windows.net", "login.microsoft.com"}


@dataclass(frozen=True)
class LoginKey:
    """One login setting: its azure-native stack key and the environment variables read after it, in order."""

    name: str
    env: tuple[str, ...]
    secret: bool = False


LOGIN_KEYS: tuple[LoginKey, ...] = (
    LoginKey("clientId", ("ARM_CLIENT_ID",)),
    LoginKey("tenantId", ("ARM_TENANT_ID",)),
    LoginKey("clientSecret", ("ARM_CLIENT_SECRET",), secret=True),
    LoginKey("clientCertificatePath", ("ARM_CLIENT_CERTIFICATE_PATH",)),
    LoginKey("clientCertificatePassword", ("ARM_CLIENT_CERTIFICATE_PASSWORD",), secret=True),
    LoginKey("useOidc", ("ARM_USE_OIDC",)),
    LoginKey("oidcToken", ("ARM_OIDC_TOKEN",), secret=True),
    LoginKey("oidcTokenFilePath", ("ARM_OIDC_TOKEN_FILE_PATH",)),
    LoginKey("oidcRequestUrl", ("ARM_OIDC_REQUEST_URL", "ACTIONS_ID_TOKEN_REQUEST_URL")),
    LoginKey("oidcRequestToken", ("ARM_OIDC_REQUEST_TOKEN", "ACTIONS_ID_TOKEN_REQUEST_TOKEN"), secret=True),
    LoginKey("oidcAudience", ("ARM_OIDC_AUDIENCE",)),
    LoginKey("useMsi", ("ARM_USE_MSI",)),
    LoginKey("useDefaultAzureCredential", ("ARM_USE_DEFAULT_AZURE_CREDENTIAL",)),
    LoginKey("environment", ("ARM_ENVIRONMENT", "AZURE_ENVIRONMENT")),
    LoginKey("disableInstanceDiscovery", ("ARM_DISABLE_INSTANCE_DISCOVERY",)),
    LoginKey("auxiliaryTenantIds", ("ARM_AUXILIARY_TENANT_IDS",)),
)
"""Every azure-native login setting the VM steps read (azure-native's provider configuration, auth part)."""

SECRET_KEYS = frozenset(k.name for k in LOGIN_KEYS if k.secret)

AUXILIARY_TENANTS = "auxiliaryTenantIds"
"""The setting naming the other tenants whose tokens ARM needs for a cross-tenant request (a promotion from a
gallery in another tenant): a JSON array, as azure-native reads both the stack setting and ARM_AUXILIARY_TENANT_IDS."""

MAX_AUXILIARY_TENANTS = 3
"""ARM takes at most three tokens in x-ms-authorization-auxiliary."""

_TENANT_ID = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.-]*$")


def stack_key(name: str) -> str:
    return f"{NAMESPACE}:{name}"


@dataclass(frozen=True)
class Setting:
    """One resolved setting and where it came from (for messages)."""

    value: str = field(repr=False)
    source: str
    """e.g. "stack setting azure-native:clientId" or "ARM_CLIENT_ID"."""
    secret: bool = False

    def shown(self) -> str:
        """The value as a message may show it: secrets never."""
        return "[secret]" if self.secret else repr(self.value)


@dataclass(frozen=True)
class LoginSettings:
    """The resolved login settings of one process: stack settings first, then the environment."""

    settings: tuple[tuple[str, Setting], ...] = ()

    @classmethod
    def resolve(cls, stack: Mapping[str, str], environ: Mapping[str, str]) -> LoginSettings:
        """`stack`: azure-native key (without namespace) → value, as the stack config or a host's inputs give it."""
        found: list[tuple[str, Setting]] = []
        for key in LOGIN_KEYS:
            value = stack.get(key.name)
            if isinstance(value, str) and value != "":
                found.append((key.name, Setting(value, f"stack setting {stack_key(key.name)}", key.secret)))
                continue
            for var in key.env:
                value = environ.get(var)
                if value:
                    found.append((key.name, Setting(value, var, key.secret)))
                    break
        return cls(tuple(found))

    def get(self, name: str) -> Setting | None:
        return next((s for n, s in self.settings if n == name), None)

    def value(self, name: str) -> str:
        s = self.get(name)
        return s.value if s is not None else ""

    def flag(self, name: str) -> bool:
        return self.value(name).strip().lower() == "true"

    @property
    def method(self) -> str:
        """The login method, chosen in azure-native's order."""
        if self.flag("useDefaultAzureCredential"):
            return "DefaultAzureCredential"
        if self.value("clientCertificatePath"):
            return "client certificate"
        if self.value("clientSecret"):
            return "client secret"
        if self.flag("useOidc"):
            return "OIDC"
        if self.flag("useMsi"):
            return "managed identity"
        return "DefaultAzureCredential"

    @property
    def auxiliary_source(self) -> str:
        """Where the auxiliary tenants come from, for messages, e.g. "stack setting azure-native:auxiliaryTenantIds";
        when unset, the keys to set."""
        s = self.get(AUXILIARY_TENANTS)
        return s.source if s is not None else f"{stack_key(AUXILIARY_TENANTS)} / ARM_AUXILIARY_TENANT_IDS, not set"

    def auxiliary_tenants(self) -> tuple[str, ...]:
        """The auxiliary tenant IDs (lower-case), in order; raises LoginSettingsError, naming where the value came
        from, when it is not what azure-native reads (a JSON array of at most three tenant IDs)."""
        s = self.get(AUXILIARY_TENANTS)
        if s is None:
            return ()
        try:
            value = json.loads(s.value)
        except ValueError:
            value = None
        if not isinstance(value, list) or not all(isinstance(t, str) and _TENANT_ID.match(t) for t in value):
            raise LoginSettingsError(
                f"{s.source} is {s.value!r}, not a JSON array of tenant IDs; azure-native reads it as one too. Fix: "
                f"""e.g. `pulumi config set --path '{stack_key(AUXILIARY_TENANTS)}[0]' <tenant ID>`, or """
                """ARM_AUXILIARY_TENANT_IDS='["<tenant ID>"]'."""
            )
        if len(value) > MAX_AUXILIARY_TENANTS:
            raise LoginSettingsError(
                f"{s.source} names {len(value)} tenants; ARM accepts at most {MAX_AUXILIARY_TENANTS} auxiliary "
                "tokens per request. Fix: keep only the tenants the promoted versions' sources are in."
            )
        return tuple(dict.fromkeys(t.lower() for t in value))

    def secrets(self) -> list[str]:
        return [s.value for _, s in self.settings if s.secret and s.value]

    def redact(self, text: str) -> str:
        for secret in sorted(self.secrets(), key=len, reverse=True):
            text = text.replace(secret, "[secret]")
        return text

    def fingerprint(self) -> str:
        """Tells two logins apart (session registry key) without keeping their values in plain sight."""
        digest = hashlib.sha256()
        for name, s in self.settings:
            digest.update(f"{name}\0{s.value}\0".encode())
        return digest.hexdigest()

    def describe(self) -> str:
        """The login as a message shows it, each value with its source, e.g. "a client secret (stack setting
        azure-native:clientSecret), client ID '…' (ARM_CLIENT_ID), tenant '…' (stack setting azure-native:tenantId)"."""
        method = self.method
        if method == "DefaultAzureCredential":
            origin = "useDefaultAzureCredential" if self.flag("useDefaultAzureCredential") else None
            why = f" ({self._source(origin)})" if origin else " (no azure-native login setting or ARM_* variable set)"
            return f"DefaultAzureCredential{why}: AZURE_* variables, workload identity, managed identity or `az login`"
        parts: list[str] = []
        what = {
            "client certificate": ("a client certificate", "clientCertificatePath"),
            "client secret": ("a client secret", "clientSecret"),
            "OIDC": ("OIDC", "useOidc"),
            "managed identity": ("a managed identity", "useMsi"),
        }[method]
        parts.append(f"{what[0]} ({self._source(what[1])})")
        if method == "client certificate":
            parts[0] = f"the client certificate {self.value('clientCertificatePath')!r} ({self._source(what[1])})"
        if method == "OIDC":
            parts.append(self._oidc_source())
        for name, label in (("clientId", "client ID"), ("tenantId", "tenant")):
            s = self.get(name)
            if s is not None:
                parts.append(f"{label} {s.shown()} ({s.source})")
        return ", ".join(parts)

    def _source(self, name: str | None) -> str:
        s = self.get(name) if name else None
        return s.source if s is not None else "not set"

    def _oidc_source(self) -> str:
        for name, label in (("oidcToken", "a fixed ID token"), ("oidcTokenFilePath", "the ID token file")):
            s = self.get(name)
            if s is not None:
                shown = "" if s.secret else f" {s.shown()}"
                return f"{label}{shown} ({s.source})"
        url = self.get("oidcRequestUrl")
        if url is not None:
            return f"a fresh ID token per Azure token from {_without_query(url.value)!r} ({url.source})"
        return "no ID token source"

    # --- the credential ----------------------------------------------------------------------------------------

    def authority(self) -> str | None:
        """The Entra authority host: azure-native's `environment`, else azure-identity's own default
        (AZURE_AUTHORITY_HOST, else the public cloud); None leaves it to azure-identity."""
        env = self.get("environment")
        if env is None:
            return None
        host = CLOUD_AUTHORITIES.get(env.value.strip().lower())
        if host is None:
            raise LoginSettingsError(
                f"{env.source} is {env.value!r}, not an Azure cloud the VM steps know "
                f"({', '.join(sorted(CLOUD_AUTHORITIES))}); fix it (for Azure Stack, leave it unset and set "
                "AZURE_AUTHORITY_HOST)."
            )
        return host

    def _identity_options(self) -> dict[str, Any]:
        authority = self.authority()
        host = authority or os.environ.get("AZURE_AUTHORITY_HOST") or "login.microsoftonline.com"
        host = urlsplit(host if "//" in host else f"https://{host}").netloc.lower()
        options: dict[str, Any] = {}
        if authority:
            options["authority"] = authority
        # Instance discovery asks the public cloud about the authority: pointless (and unreachable offline) for
        # one Microsoft does not run, e.g. Azure Stack's AD FS or a local stand-in.
        if self.flag("disableInstanceDiscovery") or host.split(":")[0] not in _KNOWN_AUTHORITY_HOSTS:
            options["disable_instance_discovery"] = True
        return options

    def credential(self) -> TokenCredential:
        """The azure-identity credential for the chosen method; raises LoginSettingsError naming what is missing."""
        from azure import identity

        options = self._identity_options()
        auxiliary = self.auxiliary_tenants()
        if auxiliary:
            # Tokens of these tenants are asked for with get_token(tenant_id=…) (promotion from another tenant).
            options["additionally_allowed_tenants"] = list(auxiliary)
        method = self.method
        if method == "DefaultAzureCredential":
            try:
                return identity.DefaultAzureCredential(**options)
            except ValueError as exc:  # e.g. an invalid AZURE_TOKEN_CREDENTIALS value
                raise LoginSettingsError(
                    f"cannot set up the Azure login: {exc}. Fix the AZURE_* environment variables "
                    "(AZURE_TOKEN_CREDENTIALS in particular), or unset them and run `az login`."
                ) from None
        if method == "managed identity":
            client_id = self.value("clientId") or None
            options.pop("disable_instance_discovery", None)
            options.pop("additionally_allowed_tenants", None)  # a managed identity lives in one tenant only
            return identity.ManagedIdentityCredential(client_id=client_id, **options)
        tenant, client = self._require("tenantId"), self._require("clientId")
        if method == "client certificate":
            path = self.value("clientCertificatePath")
            password = self.value("clientCertificatePassword") or None
            try:
                return identity.CertificateCredential(
                    tenant, client, certificate_path=path, password=password, **options
                )
            except (OSError, ValueError) as exc:
                raise LoginSettingsError(
                    f"the client certificate {path!r} ({self._source('clientCertificatePath')}) cannot be used: "
                    f"{self.redact(str(exc))}; give a PEM or PKCS12 file with its private key (and its password in "
                    "azure-native:clientCertificatePassword or ARM_CLIENT_CERTIFICATE_PASSWORD)."
                ) from None
        if method == "client secret":
            return identity.ClientSecretCredential(tenant, client, self.value("clientSecret"), **options)
        options.pop("disable_instance_discovery", None)  # the assertion credential makes no discovery request
        return identity.ClientAssertionCredential(tenant, client, self._assertion(), **options)

    def _require(self, name: str) -> str:
        value = self.value(name)
        if not value:
            key = next(k for k in LOGIN_KEYS if k.name == name)
            raise LoginSettingsError(
                f"the VM steps log in with {self.describe()}, which needs a {name.removesuffix('Id')} ID: set "
                f"{stack_key(name)} (stack) or {key.env[0]} (environment)."
            )
        return value

    def _assertion(self) -> Callable[[], str]:
        """The client assertion callback of OIDC, called by azure-identity for every new Azure token."""
        token = self.get("oidcToken")
        if token is not None:
            fixed = token.value
            return lambda: fixed
        path = self.get("oidcTokenFilePath")
        if path is not None:
            return _TokenFile(path.value, path.source)
        url, bearer = self.get("oidcRequestUrl"), self.get("oidcRequestToken")
        if url is None or bearer is None:
            missing = (
                "oidcRequestUrl (ARM_OIDC_REQUEST_URL)" if url is None else "oidcRequestToken (ARM_OIDC_REQUEST_TOKEN)"
            )
            raise LoginSettingsError(
                f"OIDC is selected ({self._source('useOidc')}) but there is no ID token to present: set "
                "azure-native:oidcToken / ARM_OIDC_TOKEN, azure-native:oidcTokenFilePath / ARM_OIDC_TOKEN_FILE_PATH, "
                f"or a request URL and token (missing: {missing}; in GitHub Actions, `permissions: id-token: write` "
                "provides ACTIONS_ID_TOKEN_REQUEST_URL and ACTIONS_ID_TOKEN_REQUEST_TOKEN)."
            )
        return IdTokenRequest(url.value, bearer.value, self.value("oidcAudience") or OIDC_DEFAULT_AUDIENCE, url.source)


class LoginSettingsError(ArmUnreachable):
    """The login settings cannot make a credential (a method selected without what it needs)."""


def _without_query(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


class _TokenFile:
    """Reads the federated token file for every Azure token (the file is rotated by whoever writes it)."""

    def __init__(self, path: str, source: str) -> None:
        self.path = path
        self.source = source

    def __call__(self) -> str:
        from azure.core.exceptions import ClientAuthenticationError

        try:
            with open(self.path, encoding="utf-8") as f:
                return f.read().strip()
        except OSError as exc:
            raise ClientAuthenticationError(
                message=f"cannot read the OIDC token file {self.path!r} ({self.source}): {exc.strerror}"
            ) from None


class IdTokenRequest:
    """Fetches a fresh ID token from the OIDC request URL (GitHub Actions' ACTIONS_ID_TOKEN_REQUEST_URL) each
    time it is called: azure-identity calls it for every new Azure token, so a run outlives any one ID token."""

    def __init__(self, url: str, bearer: str, audience: str, source: str) -> None:
        self.url = url
        self._bearer = bearer
        self.audience = audience
        self.source = source
        self.fetched = 0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"IdTokenRequest({_without_query(self.url)!r})"

    def __call__(self) -> str:
        import requests
        from azure.core.exceptions import ClientAuthenticationError

        parts = urlsplit(self.url)
        query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "audience"]
        query.append(("audience", self.audience))
        url = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))
        where = f"{_without_query(self.url)} ({self.source})"
        try:
            answer = requests.get(
                url,
                headers={"Authorization": f"Bearer {self._bearer}", "Accept": "application/json"},
                timeout=OIDC_REQUEST_TIMEOUT,
            )
        except requests.RequestException as exc:
            raise ClientAuthenticationError(
                message=f"could not get an OIDC ID token from {where}: {type(exc).__name__}"
            ) from None
        if answer.status_code != 200:
            raise ClientAuthenticationError(
                message=f"could not get an OIDC ID token from {where}: HTTP {answer.status_code}; in GitHub Actions "
                "the job needs `permissions: id-token: write`"
            )
        try:
            value = answer.json().get("value")
        except ValueError:
            value = None
        if not isinstance(value, str) or not value:
            raise ClientAuthenticationError(message=f"the OIDC request URL {where} answered without a token")
        with self._lock:
            self.fetched += 1
        return value


# --- where the settings come from ------------------------------------------------------------------------------


def stack_settings(get: Callable[[str], Any]) -> dict[str, str]:
    """The azure-native login settings among a provider's configuration, read with `get(full_key)` (a provider's
    `configure()`: `req.config.get`): azure-native key (without namespace) → value."""
    return {k.name: v for k in LOGIN_KEYS if isinstance(v := get(stack_key(k.name)), str) and v != ""}


class ConfiguredLogin:
    """Mixin for dynamic providers: keeps the azure-native login settings `configure()` receives on the provider.

    The provider host unpickles each provider once per process, configures it, and keeps that object for every
    call; it never pickles it again, so the settings (secrets among them) never reach the state. A provider
    passes `login_settings()` to the ARM calls in `ArmSettings.login` (`arm_settings(props, self.login_settings())`)
    and to `arm.SharedLogin(...)`. Nothing is kept anywhere else: two providers of one host keep their own."""

    _login_stack: Mapping[str, str] | None = None
    """Set by `configure()` in the host; None before (a provider never configured logs in from the environment)."""

    def configure(self, req: Any) -> None:
        self._login_stack = stack_settings(req.config.get)

    def login_settings(self, environ: Mapping[str, str] | None = None) -> LoginSettings:
        """The login settings now: this provider's stack settings, then the environment."""
        return LoginSettings.resolve(self._login_stack or {}, os.environ if environ is None else environ)


def from_environment(environ: Mapping[str, str] | None = None) -> LoginSettings:
    """The login settings of a caller that has no stack settings (a command such as `commands.replication`, or an
    ARM call that brings no `ArmSettings.login`): the ARM_* variables, else DefaultAzureCredential."""
    return LoginSettings.resolve({}, os.environ if environ is None else environ)
