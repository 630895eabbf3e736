"""The `azure-native:*` settings of the stack file (the login azure-native and the VM steps share, hooks/login.py),
held to the same rules as the project's own keys:

- a secret (`clientSecret`, `clientCertificatePassword`, `oidcToken`, `oidcRequestToken`) written in plaintext is
  refused, with the command that encrypts it;
- each setting's value is checked for its kind (a boolean, an application ID, a tenant, a region, a list of at most
  three tenants, a cloud name, a URL, a path, an audience), with what was probably meant when it is a value of
  another kind (a tenant ID as the client ID, the certificate itself instead of its path, a scope as an audience);
- a key that nothing reads (`azure-native:clientSceret`, `azure-native:client_id`, `azure:clientId`,
  `azure-nativ:clientId`) is warned about, with the key that was probably meant.

A setting stored encrypted is not checked beyond this: `make plan` never decrypts, and `pulumi preview` must come
to the same verdict.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from config.constants import AZURE_NATIVE, AZURE_NATIVE_SETTINGS, HOST_NAME
from config.reader import Node, Shared, read_region
from hooks.login import CLOUD_AUTHORITIES, LOGIN_KEYS, SECRET_KEYS, LoginSettings, LoginSettingsError

_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$", re.IGNORECASE)
_ENV_NAMES = {var.lower(): key.name for key in LOGIN_KEYS for var in key.env}
_ENV_NAMES["arm_subscription_id"] = "subscriptionId"
_SCOPE = re.compile(r"(.+)/\.default/?")
"""An audience written as a scope: what precedes `/.default` is the audience."""
_NAMESPACE_NEAR_MISSES = ("azure", "azurenative", "azure_native", "azure.native", "azurerm", "azure-native-")


@dataclass(frozen=True)
class LoginValues:
    """The azure-native settings whose values the config could read (plaintext, or given as Python data), by name;
    for the rules across settings (a publisher's object ID that is the login's application ID)."""

    values: Mapping[str, str]

    def get(self, name: str) -> str | None:
        value = self.values.get(name)
        return value if value else None


def read_login(foreign: Mapping[str, object], shared: Shared, problems: list[str], secret: set[str]) -> LoginValues:
    """Check the stack's keys of other namespaces (full keys -> the values the engine hands over) that are, or
    were probably meant as, azure-native settings. `secret`: the full keys the engine holds encrypted."""
    node = Node({k: v for k, v in foreign.items()}, "", problems, secret_ok=True, shared=shared)
    readable: dict[str, str] = {}
    for full in sorted(foreign):
        namespace, _, name = full.partition(":")
        value = foreign[full]
        if namespace != AZURE_NATIVE:
            _warn_near_miss_namespace(shared, full, namespace, name)
            continue
        encrypted = _encrypted(full, shared, secret)
        known = name if name in AZURE_NATIVE_SETTINGS else None
        if known is None:
            meant = _meant(name)
            shared.warnings.append(
                f"{full} is not an azure-native setting, so neither azure-native nor the VM steps read it"
                + (f"; did you mean {AZURE_NATIVE}:{meant}?" if meant else "; remove it")
            )
            if meant in SECRET_KEYS and not encrypted:
                problems.append(f"{full}: {_plaintext(full, meant)}")
            continue
        if name in SECRET_KEYS:
            if not encrypted and value not in ("", None):
                problems.append(f"{full}: {_plaintext(full, name)}")
            continue
        if encrypted or not isinstance(value, str) or value == "":
            continue  # encrypted: not readable offline, and preview must agree with the plan
        found = len(problems)
        _check(node, full, name, value)
        if len(problems) == found:
            readable[name] = value
    return LoginValues(readable)


def _encrypted(full: str, shared: Shared, secret: set[str]) -> bool:
    """Whether the engine holds the key encrypted: the stack file, when it was read, tells each key (a key it does
    not hold, e.g. from an ESC environment, counts as encrypted: not checked); otherwise the engine's list of secret
    keys does."""
    plain = shared.plain_paths
    if plain is None:
        return full in secret
    return not any(p == full or p.startswith((f"{full}[", f"{full}.")) for p in plain)


def _plaintext(full: str, name: str) -> str:
    env = next(k.env[0] for k in LOGIN_KEYS if k.name == name)
    return (
        f"is stored in plaintext in the stack file; store it encrypted with `pulumi config set --secret {full}` "
        f"(or give it in the environment as {env})"
    )


def _meant(name: str) -> str | None:
    """The azure-native setting a misspelt name probably means: a case or snake_case variant (`ClientId`,
    `client_id`), an environment variable's name (`ARM_CLIENT_ID`), or a close spelling (`clientSceret`)."""
    squashed = name.replace("_", "").replace("-", "").lower()
    for known in AZURE_NATIVE_SETTINGS:
        if known.lower() == squashed:
            return known
    if name.lower() in _ENV_NAMES:
        return _ENV_NAMES[name.lower()]
    close = difflib.get_close_matches(name, list(AZURE_NATIVE_SETTINGS), n=1, cutoff=0.75)
    return close[0] if close else None


def _warn_near_miss_namespace(shared: Shared, full: str, namespace: str, name: str) -> None:
    """`azure:clientId`, `azure-nativ:clientId`: a namespace nothing of this project reads."""
    lowered = namespace.lower()
    near = lowered in _NAMESPACE_NEAR_MISSES or difflib.SequenceMatcher(None, lowered, AZURE_NATIVE).ratio() >= 0.85
    meant = name if name in AZURE_NATIVE_SETTINGS else _meant(name)
    if not near or meant is None or lowered == AZURE_NATIVE:
        return
    what = (
        "configures the classic azure provider, which this project does not use"
        if lowered == "azure"
        else f"is set in namespace {namespace!r}, which nothing reads"
    )
    shared.warnings.append(f"{full} {what}; did you mean {AZURE_NATIVE}:{meant}?")


def _check(node: Node, full: str, name: str, value: str) -> None:
    """One setting's value against its kind; a problem is recorded on `node`."""
    kind = AZURE_NATIVE_SETTINGS[name]
    problem: str | None = None
    if len(value) > 1 and value[0] == value[-1] == '"':
        # A value handed over as JSON text ("\"<GUID>\""): azure-native and the VM steps read the text inside.
        with contextlib.suppress(ValueError):
            inner = json.loads(value)
            value = inner if isinstance(inner, str) else value
    if kind != "tenants" and value[:1] in "[{" and _json_structure(value):
        problem = f"must be one value, not {'a list' if value.startswith('[') else 'a mapping'}"
    elif kind == "boolean":
        # Only true or false (any case): azure-native and the VM steps would read anything else differently (the VM
        # steps take only "true" as true); Node.boolean reports it, with what yes/no/on/off are to the CLI.
        node.boolean(full, False)
    elif kind in ("application", "subscription", "guid"):
        problem = _guid_problem(kind, value)
    elif kind == "tenant":
        if not _is_guid(value) and not _DOMAIN.fullmatch(value):
            problem = (
                f"{value!r} is not a tenant: give the tenant ID (a GUID, `az account show --query tenantId -o tsv`) "
                "or its domain (contoso.onmicrosoft.com)"
            )
    elif kind == "tenants":
        try:
            LoginSettings.resolve({name: value}, {}).auxiliary_tenants()
        except LoginSettingsError as exc:  # hooks.login's rule, worded for the stack setting
            problem = str(exc).replace(f"stack setting {full} ", "", 1)
    elif kind == "cloud":
        if value.strip().lower() not in CLOUD_AUTHORITIES:
            problem = (
                f"{value!r} is not an Azure cloud azure-native knows: write public, usgovernment or china (for Azure "
                "Stack, leave it unset)"
            )
    elif kind == "region":
        read_region(node, full)
    elif kind == "path":
        if value.lstrip().startswith("-----BEGIN"):
            problem = "is the certificate itself; give the path of the file that holds it (PEM or PKCS12)"
        elif "\n" in value:
            problem = "must be a file path on one line"
    elif kind == "url":
        url = urlsplit(value)
        if url.scheme not in ("http", "https") or not url.hostname:
            problem = f"{value!r} is not an http(s) URL"
    elif kind == "host":
        if "://" in value or not HOST_NAME.fullmatch(value):
            problem = f"{value!r} is not a host name: give the host alone, e.g. management.azure.com"
    elif kind == "audience":
        problem = scope_problem(value)
    if problem:
        node.problems.append(f"{full}: {problem}")


def scope_problem(audience: str) -> str | None:
    """An audience written as a scope (`…/.default`): the token is asked for `<audience>/.default` by whoever
    requests it, so the suffix would be doubled."""
    scope = _SCOPE.fullmatch(audience)
    if scope is not None:
        meant = scope[1]
        return (
            f"{audience!r} is a scope, not an audience: the token is requested for <audience>/.default; write {meant!r}"
        )
    return None


def _json_structure(value: str) -> bool:
    try:
        return isinstance(json.loads(value), list | dict)
    except ValueError:
        return False


def _is_guid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return len(value.strip("{}")) == 36


def _guid_problem(kind: str, value: str) -> str | None:
    if _is_guid(value):
        return None
    what = {
        "application": "an application (client) ID: the GUID of the app registration (`az ad app list "
        "--display-name <name> --query [].appId -o tsv`)",
        "subscription": "a subscription ID (a GUID, `az account show --query id -o tsv`)",
        "guid": "a GUID",
    }[kind]
    hint = " (a name is not enough: use its ID)" if not re.search(r"[0-9a-fA-F]{8}", value) else ""
    return f"{value!r} is not {what}{hint}"


def principal_id_confusion(
    principal_id: str,
    login: LoginValues,
    tenants: Iterable[tuple[str, str]],
    subscriptions: Iterable[tuple[str, str]],
    known: Iterable[tuple[str, str]],
) -> str | None:
    """What `principal_id` is when it is not an object ID (the publisher's role needs an object ID): the login's
    application (client) ID, a tenant ID, a subscription ID, or a well-known GUID (`known`: GUID -> what it is)."""
    guid = principal_id.lower()
    client = login.get("clientId")
    if client and client.lower() == guid:
        return f"the application (client) ID the login uses ({AZURE_NATIVE}:clientId)"
    for value, where in tenants:
        if value.lower() == guid:
            return f"a tenant ID ({where})"
    for value, where in subscriptions:
        if value.lower() == guid:
            return f"a subscription ID ({where})"
    for value, what in known:
        if value.lower() == guid:
            return what
    return None
