"""A stand-in for the azure-native resource plugin (`pulumi-resource-azure-native` 3.29.0), for tests only.

The real plugin cannot be had offline. This one speaks the same gRPC ResourceProvider protocol to the real Pulumi
engine and the same REST to ARM (in tests: the fake ARM of tests/fakes/arm.py), for the four resource types the
program declares. It behaves like azure-native where the program can tell: path parameters (and `location`, and a
role assignment's principal and role) force a replacement, other changes are a PUT again; creates follow
Azure-AsyncOperation polling to the end, bounded by the resource's customTimeouts; outputs are ARM's answer with
`properties` flattened to the top level, plus `azureApiVersion`; ARM errors read `Status=409 Code="…" Message="…"`.

As strict as azure-native (pulumi/pulumi-azure-native: `provider/pkg/provider/provider.go`, the crud client
`provider/pkg/provider/crud/crud.go` and the ARM client `provider/pkg/azure/client_azcore.go`), each behaviour
marked in the code where it is copied and named by a `Leniency` a test can turn off to show the difference:
- Create refuses a resource that exists (`cannot create already existing resource '<id>'`): a killed run's
  resource must be imported, never silently adopted by a PUT over it;
- Read of a resource that is gone answers an empty ID, so refresh drops it from the state;
- Update is a PUT of the whole body (the new inputs), never a merge with what Azure has;
- Delete waits for the operation to end, and a 404 (at once, or polling a 202's operation) counts as deleted;
- a replacement deletes the old resource first (Diff's deleteBeforeReplace), as the names are the IDs.

Not copied, and why:
- ARM retries (azcore's 20 s, 60 s, 120 s backoff) and azure-native's poll intervals (10 s for updates, 30 s for
  deletes): the tests would wait minutes; faults are injected into the project's own ARM client instead. Polling
  here follows Retry-After, else IMAGE_GALLERY_FAKE_PROVIDER_POLL_SECONDS.
- `readAfterWrite` reading through a GET that may fail with only a warning: the GET after a write is copied, a
  failure of it is an error here (the fake ARM never fails it unless a test injects that).
- Singleton and default-body resources (CanCreate's other branches), sub-resource maintenance, PATCH for
  merge-patch APIs, custom resources: none of the four types is one.
- Authentication: `az account get-access-token` only (azure-native also reads ARM_CLIENT_*, OIDC, MSI).

Started by the engine as `pulumi-resource-azure-native [flags] <engine address>`: it prints its port as the first
stdout line (and nothing else there), logs to stderr, and serves until killed.

Environment: `IMAGE_GALLERY_FAKE_ARM_ENDPOINT` (test-only: the ARM endpoint), `REQUESTS_CA_BUNDLE` (the CA to trust),
`ARM_SUBSCRIPTION_ID` (when the provider config has no subscriptionId); the token comes from
`az account get-access-token`, like the real provider's default Azure CLI authentication.
`IMAGE_GALLERY_FAKE_PROVIDER_POLL_SECONDS` (default 0.1) sets the LRO poll interval when ARM sends no Retry-After.
`IMAGE_GALLERY_FAKE_PROVIDER_LENIENT` (comma-separated `Leniency` values; only the tests that prove the strict
behaviours set it) turns strict behaviours off.

Use `install_plugin(pulumi_home, python)` to lay it out where `pulumi plugin install` would, or
`write_launcher(directory, python)` for an executable to put on PATH.
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import signal
import ssl
import subprocess
import sys
import threading
import time
import uuid
from concurrent import futures
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import quote, urlsplit

import grpc  # type: ignore[import-untyped]
from google.protobuf import empty_pb2, json_format, struct_pb2
from pulumi.runtime.proto import plugin_pb2, provider_pb2, provider_pb2_grpc

AZURE_NATIVE_VERSION = "3.29.0"
"""The version the installed pulumi-azure-native SDK asks the engine for (its pulumi-plugin.json)."""
PROJECT_ROOT = Path(__file__).resolve().parents[2]

UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
SIG = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
RESOURCE_SIG = "5cf8f73096256a8f31e491e813e4eb8e"
OUTPUT_SIG = "d0e6a833031e9bbcd3f4e8bde6ca49a4"

DEFAULT_TIMEOUT = 7200.0
"""Seconds to wait for an operation when the resource sets no customTimeouts: azure-native's two hours
(`azureContext` in provider/pkg/provider/provider.go)."""
REQUEST_TIMEOUT = 60.0


class Leniency(Enum):
    """A strict behaviour of azure-native this stand-in copies; listed in IMAGE_GALLERY_FAKE_PROVIDER_LENIENT, the
    stand-in behaves leniently instead. Only the tests that prove each strict behaviour set it (a test that passes
    against the lenient stand-in too would prove nothing)."""

    CREATE_OVER_EXISTING = "create-over-existing"
    """Create PUTs over a resource that already exists instead of refusing it."""
    READ_KEEPS_GONE = "read-keeps-gone"
    """Read of a deleted resource answers the old state instead of an empty ID."""
    UPDATE_MERGES = "update-merges"
    """Update sends the old inputs merged with the new ones (what a PATCH does) instead of the whole new body."""
    DELETE_NO_WAIT = "delete-no-wait"
    """Delete returns once ARM accepted it, without waiting for the operation."""
    DELETE_NOT_FOUND_FAILS = "delete-not-found-fails"
    """Delete fails on a 404 instead of counting it as deleted."""
    REPLACE_CREATES_FIRST = "replace-creates-first"
    """Diff leaves deleteBeforeReplace off: the engine creates the replacement before deleting the old one."""


LENIENT_ENV = "IMAGE_GALLERY_FAKE_PROVIDER_LENIENT"


def leniencies(text: str) -> frozenset[Leniency]:
    """The `Leniency` values of a comma-separated list (IMAGE_GALLERY_FAKE_PROVIDER_LENIENT)."""
    return frozenset(Leniency(item.strip()) for item in text.split(",") if item.strip())


def log(message: str) -> None:
    """Logs go to stderr: stdout carries the port and nothing else."""
    print(f"[fake azure-native] {message}", file=sys.stderr, flush=True)


# --- resource types ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResourceType:
    """What the plugin needs to know about one azure-native resource type."""

    token: str
    api_version: str
    path: str
    """ARM path with `{param}` placeholders; `{subscriptionId}` comes from the provider config."""
    path_params: tuple[str, ...]
    top_level: tuple[str, ...]
    """Inputs sent at the top level of the body; every other non-path input goes into `properties`."""
    replace_on: tuple[str, ...]
    """Inputs whose change forces a replacement (path parameters, location, immutable properties)."""
    required: tuple[str, ...]
    autoname: str | None = None
    """The name parameter filled in by Check when missing."""


_COMPUTE = "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Compute"
TYPES: dict[str, ResourceType] = {
    t.token: t
    for t in (
        ResourceType(
            token="azure-native:compute:Gallery",
            api_version="2024-03-03",
            path=f"{_COMPUTE}/galleries/{{galleryName}}",
            path_params=("resourceGroupName", "galleryName"),
            top_level=("location", "tags", "identity"),
            replace_on=("resourceGroupName", "galleryName", "location"),
            required=("resourceGroupName",),
            autoname="galleryName",
        ),
        ResourceType(
            token="azure-native:compute:GalleryImage",
            api_version="2024-03-03",
            path=f"{_COMPUTE}/galleries/{{galleryName}}/images/{{galleryImageName}}",
            path_params=("resourceGroupName", "galleryName", "galleryImageName"),
            top_level=("location", "tags"),
            replace_on=("resourceGroupName", "galleryName", "galleryImageName", "location"),
            required=("resourceGroupName", "galleryName", "identifier", "osState", "osType"),
            autoname="galleryImageName",
        ),
        ResourceType(
            token="azure-native:compute:GalleryImageVersion",
            api_version="2024-03-03",
            path=f"{_COMPUTE}/galleries/{{galleryName}}/images/{{galleryImageName}}/versions/{{galleryImageVersionName}}",
            path_params=("resourceGroupName", "galleryName", "galleryImageName", "galleryImageVersionName"),
            top_level=("location", "tags"),
            replace_on=(
                "resourceGroupName",
                "galleryName",
                "galleryImageName",
                "galleryImageVersionName",
                "location",
                "storageProfile",
            ),
            required=(
                "resourceGroupName",
                "galleryName",
                "galleryImageName",
                "galleryImageVersionName",
                "storageProfile",
            ),
        ),
        ResourceType(
            token="azure-native:authorization:RoleAssignment",
            api_version="2022-04-01",
            path="{scope}/providers/Microsoft.Authorization/roleAssignments/{roleAssignmentName}",
            path_params=("scope", "roleAssignmentName"),
            top_level=(),
            replace_on=("scope", "roleAssignmentName", "principalId", "roleDefinitionId"),
            required=("scope", "principalId", "roleDefinitionId"),
            autoname="roleAssignmentName",
        ),
    )
}


# --- values on the wire --------------------------------------------------------------------------------------


def to_python(struct: struct_pb2.Struct | None) -> dict[str, Any]:
    return json_format.MessageToDict(struct) if struct is not None else {}


def to_struct(values: dict[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(values)
    return struct


def is_secret(value: Any) -> bool:
    return isinstance(value, dict) and value.get(SIG) == SECRET_SIG


def contains(value: Any, predicate: Any) -> bool:
    if predicate(value):
        return True
    if isinstance(value, dict):
        return any(contains(v, predicate) for v in value.values())
    if isinstance(value, list):
        return any(contains(v, predicate) for v in value)
    return False


def plain(value: Any) -> Any:
    """Secrets unwrapped, resource references replaced by their id, whole floats made ints (ARM wants 1, not 1.0)."""
    if isinstance(value, dict):
        sig = value.get(SIG)
        if sig == SECRET_SIG:
            return plain(value.get("value"))
        if sig == RESOURCE_SIG:
            return plain(value.get("id", value.get("urn")))
        if sig == OUTPUT_SIG:
            return plain(value.get("value", UNKNOWN))
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def has_unknown(value: Any) -> bool:
    return contains(value, lambda v: v == UNKNOWN)


def secret(value: Any) -> dict[str, Any]:
    return {SIG: SECRET_SIG, "value": value}


# --- ARM -----------------------------------------------------------------------------------------------------


class ArmError(Exception):
    """ARM answered with an error (or an operation ended badly); reads like azure-native's errors."""

    def __init__(self, status: int | str, code: str, message: str, target: str | None = None) -> None:
        self.status, self.code, self.arm_message, self.target = status, code, message, target
        text = f'Status={status} Code="{code}" Message="{message}"'
        if target:
            text += f' Target="{target}"'
        super().__init__(text)


class Cancelled(Exception):
    """The engine asked the provider to stop (Cancel)."""


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: Any


class Arm:
    """Just enough of an ARM client: bearer token from az, TLS trusting REQUESTS_CA_BUNDLE, LRO polling."""

    def __init__(self, endpoint: str, cancelled: threading.Event) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.cancelled = cancelled
        bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("SSL_CERT_FILE")
        self.context = ssl.create_default_context(cafile=bundle) if bundle else ssl.create_default_context()
        self.poll_interval = float(os.environ.get("IMAGE_GALLERY_FAKE_PROVIDER_POLL_SECONDS", "0.1"))
        self._tokens: dict[str, tuple[str, float]] = {}
        """tenant ("" for the login's own) → (token, expiry)."""
        self._lock = threading.Lock()
        self.default_subscription: str | None = None
        self.auxiliary_tenants: list[str] = []
        """auxiliaryTenantIds: like azure-native since v3.20.0 (pulumi-azure-native#4726), a token of each is sent
        in x-ms-authorization-auxiliary on every request."""

    def token(self, tenant: str = "") -> str:
        """A token for this endpoint (`--resource`, its audience) from `az`, for the login's tenant or `tenant`."""
        with self._lock:
            found = self._tokens.get(tenant)
            if found is None or found[1] < time.time() + 60:
                command = ["az", "account", "get-access-token", "--output", "json", "--resource", self.endpoint]
                done = subprocess.run(
                    [*command, *(["--tenant", tenant] if tenant else [])],
                    capture_output=True,
                    text=True,
                    timeout=60,
                    check=False,
                )
                if done.returncode != 0:
                    what = f" for tenant {tenant} (auxiliaryTenantIds)" if tenant else ""
                    raise ArmError(
                        401,
                        "AzureCliLoginRequired",
                        f"az account get-access-token{what} failed: {done.stderr.strip()}",
                    )
                answer = json.loads(done.stdout)
                expires = float(answer.get("expires_on") or time.time() + 300)
                found = self._tokens[tenant] = (str(answer["accessToken"]), expires)
                if not tenant:
                    self.default_subscription = answer.get("subscription")
            return found[0]

    def request(self, method: str, url: str, body: Any = None, api_version: str | None = None) -> Response:
        if url.startswith("/"):
            url = self.endpoint + url
        if api_version is not None:
            url += ("&" if "?" in url else "?") + f"api-version={api_version}"
        parts = urlsplit(url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        headers = {"Authorization": f"Bearer {self.token()}", "Accept": "application/json"}
        if self.auxiliary_tenants:
            tokens = [f"Bearer {self.token(t)}" for t in self.auxiliary_tenants]
            headers["x-ms-authorization-auxiliary"] = ", ".join(tokens)
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        connection: http.client.HTTPConnection
        if parts.scheme == "https":
            connection = http.client.HTTPSConnection(
                parts.hostname or "", parts.port, timeout=REQUEST_TIMEOUT, context=self.context
            )
        else:
            connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=REQUEST_TIMEOUT)
        try:
            connection.request(method, target, body=data, headers=headers)
            raw = connection.getresponse()
            text = raw.read()
            answer_headers = {k.lower(): v for k, v in raw.getheaders()}
            status = raw.status
        finally:
            connection.close()
        try:
            parsed = json.loads(text) if text else None
        except ValueError:
            parsed = text.decode(errors="replace")
        return Response(status, answer_headers, parsed)

    @staticmethod
    def raise_for(response: Response) -> None:
        if response.status < 400:
            return
        error = response.body.get("error") if isinstance(response.body, dict) else None
        if isinstance(error, dict):
            raise ArmError(response.status, str(error.get("code")), str(error.get("message")), error.get("target"))
        raise ArmError(response.status, "UnexpectedResponse", str(response.body))

    def wait(self, response: Response, what: str, deadline: float, deleting: bool = False) -> None:
        """Follow a long-running operation (Azure-AsyncOperation, else Location) to its end. `deleting`: a 404
        ResourceNotFound while polling a 202's operation means the resource is gone, i.e. done."""
        operation = response.headers.get("azure-asyncoperation")
        monitor = response.headers.get("location")
        if response.status not in (201, 202) or not (operation or monitor):
            return
        accepted = response.status == 202
        url = str(operation or monitor)
        last = "InProgress"
        while True:
            delay = float(response.headers.get("retry-after") or self.poll_interval)
            if time.monotonic() + delay > deadline:
                raise TimeoutError(f"timed out waiting for {what} to finish (last status {last}; operation {url})")
            if self.cancelled.wait(delay):
                raise Cancelled(f"cancelled while waiting for {what}")
            response = self.request("GET", url)
            if deleting and accepted and response.status == 404 and "ResourceNotFound" in json.dumps(response.body):
                # azure-native's Delete: "Consider this specific error to be a success of deletion"
                # (pulumi/pulumi-azure-native, provider/pkg/azure/client_azcore.go, azCoreClient.Delete).
                return
            self.raise_for(response)
            if operation:
                doc = response.body if isinstance(response.body, dict) else {}
                last = str(doc.get("status", "InProgress"))
                if last.lower() == "succeeded":
                    return
                if last.lower() in ("failed", "canceled"):
                    error = doc.get("error") or {}
                    raise ArmError(last, str(error.get("code")), str(error.get("message")), error.get("target"))
            elif response.status != 202:
                return


# --- the provider --------------------------------------------------------------------------------------------


def _abort(context: grpc.ServicerContext, message: str, code: grpc.StatusCode = grpc.StatusCode.UNKNOWN) -> NoReturn:
    log(message)
    context.abort(code, message)
    raise AssertionError("unreachable")  # context.abort raises


class AzureNativeProvider(provider_pb2_grpc.ResourceProviderServicer):
    """The ResourceProvider service."""

    def __init__(self, engine_address: str | None, lenient: frozenset[Leniency] = frozenset()) -> None:
        self.engine_address = engine_address
        self.lenient = lenient
        """Strict behaviours turned off (only in the tests that prove them)."""
        self.config: dict[str, Any] = {}
        self.cancelled = threading.Event()
        self.arm = Arm(
            os.environ.get("IMAGE_GALLERY_FAKE_ARM_ENDPOINT", "https://management.azure.com"), self.cancelled
        )

    # plugin life cycle

    def Handshake(
        self, request: provider_pb2.ProviderHandshakeRequest, context: grpc.ServicerContext
    ) -> provider_pb2.ProviderHandshakeResponse:
        if request.engine_address:
            self.engine_address = request.engine_address
        return provider_pb2.ProviderHandshakeResponse(accept_secrets=True, accept_resources=True)

    def GetPluginInfo(self, request: empty_pb2.Empty, context: grpc.ServicerContext) -> plugin_pb2.PluginInfo:
        return plugin_pb2.PluginInfo(version=AZURE_NATIVE_VERSION)

    def GetSchema(
        self, request: provider_pb2.GetSchemaRequest, context: grpc.ServicerContext
    ) -> provider_pb2.GetSchemaResponse:
        return provider_pb2.GetSchemaResponse(
            schema=json.dumps({"name": "azure-native", "version": AZURE_NATIVE_VERSION})
        )

    def Attach(self, request: plugin_pb2.PluginAttach, context: grpc.ServicerContext) -> empty_pb2.Empty:
        self.engine_address = request.address
        return empty_pb2.Empty()

    def Cancel(self, request: empty_pb2.Empty, context: grpc.ServicerContext) -> empty_pb2.Empty:
        self.cancelled.set()
        return empty_pb2.Empty()

    def GetMapping(
        self, request: provider_pb2.GetMappingRequest, context: grpc.ServicerContext
    ) -> provider_pb2.GetMappingResponse:
        return provider_pb2.GetMappingResponse(provider="", data=b"")

    def GetMappings(
        self, request: provider_pb2.GetMappingsRequest, context: grpc.ServicerContext
    ) -> provider_pb2.GetMappingsResponse:
        return provider_pb2.GetMappingsResponse(providers=[])

    # provider configuration

    def CheckConfig(
        self, request: provider_pb2.CheckRequest, context: grpc.ServicerContext
    ) -> provider_pb2.CheckResponse:
        return provider_pb2.CheckResponse(inputs=request.news)

    def DiffConfig(self, request: provider_pb2.DiffRequest, context: grpc.ServicerContext) -> provider_pb2.DiffResponse:
        olds, news = plain(to_python(request.olds)), plain(to_python(request.news))
        changed = sorted(k for k in set(olds) | set(news) if k != "version" and olds.get(k) != news.get(k))
        return provider_pb2.DiffResponse(
            changes=provider_pb2.DiffResponse.DIFF_SOME if changed else provider_pb2.DiffResponse.DIFF_NONE,
            diffs=changed,
        )

    def Configure(
        self, request: provider_pb2.ConfigureRequest, context: grpc.ServicerContext
    ) -> provider_pb2.ConfigureResponse:
        config: dict[str, Any] = {}
        for key, value in request.variables.items():
            # Deprecated `variables` are keyed `azure-native:config:<key>`.
            config[key.rsplit(":", 1)[-1]] = value
        config.update(plain(to_python(request.args)) if request.HasField("args") else {})
        self.config = config
        # azure-native reads auxiliaryTenantIds (or ARM_AUXILIARY_TENANT_IDS) as a JSON array of tenant IDs.
        raw = config.get("auxiliaryTenantIds") or os.environ.get("ARM_AUXILIARY_TENANT_IDS") or ""
        try:
            tenants = json.loads(raw) if isinstance(raw, str) and raw else raw or []
        except ValueError:
            _abort(context, f"failed to unmarshal '{raw}' as Auxiliary Tenants", grpc.StatusCode.INVALID_ARGUMENT)
        self.arm.auxiliary_tenants = [str(t) for t in tenants]
        # A provider that implements Handshake must support preview (provider.proto): the engine then calls
        # Create/Update with preview=True during `pulumi preview`.
        return provider_pb2.ConfigureResponse(acceptSecrets=True, acceptResources=True, supportsPreview=True)

    def subscription_id(self) -> str:
        configured = self.config.get("subscriptionId") or os.environ.get("ARM_SUBSCRIPTION_ID")
        if configured:
            return str(configured)
        self.arm.token()  # az's answer names the default subscription, as `az account show` would
        if self.arm.default_subscription:
            return self.arm.default_subscription
        raise ArmError(
            400, "SubscriptionIdMissing", "no subscription: set azure-native:subscriptionId or ARM_SUBSCRIPTION_ID"
        )

    # resources

    def _type(self, token: str, context: grpc.ServicerContext) -> ResourceType:
        kind = TYPES.get(token)
        if kind is None:
            _abort(
                context, f"resource type {token} is not implemented by the test plugin", grpc.StatusCode.UNIMPLEMENTED
            )
        return kind

    def Check(self, request: provider_pb2.CheckRequest, context: grpc.ServicerContext) -> provider_pb2.CheckResponse:
        kind = self._type(request.type, context)
        olds, news = to_python(request.olds), to_python(request.news)
        failures = []
        if kind.autoname and kind.autoname not in news:
            if kind.autoname in olds:
                news[kind.autoname] = olds[kind.autoname]
            elif kind.autoname == "roleAssignmentName":
                news[kind.autoname] = str(uuid.uuid4())
            else:
                # Gallery names allow no '-': like azure-native, append random characters without one.
                news[kind.autoname] = f"{request.name}{secrets.token_hex(4)}"
        if "location" in kind.top_level and "location" not in news and self.config.get("location"):
            news["location"] = self.config["location"]
        for name in kind.required:
            if name not in news or news[name] is None:
                failures.append(provider_pb2.CheckFailure(property=name, reason=f"missing required property '{name}'"))
        version = news.get("galleryImageVersionName")
        if isinstance(version, str) and version != UNKNOWN:
            parts = version.split(".")
            if len(parts) != 3 or not all(p.isdigit() for p in parts):
                failures.append(
                    provider_pb2.CheckFailure(
                        property="galleryImageVersionName",
                        reason=f"'{version}' is not a version of the form Major.Minor.Patch",
                    )
                )
        return provider_pb2.CheckResponse(inputs=to_struct(news), failures=failures)

    def Diff(self, request: provider_pb2.DiffRequest, context: grpc.ServicerContext) -> provider_pb2.DiffResponse:
        kind = self._type(request.type, context)
        olds = plain(to_python(request.old_inputs if request.HasField("old_inputs") else request.olds))
        news = plain(to_python(request.news))
        ignored = set(request.ignoreChanges)
        changed = sorted(k for k in set(olds) | set(news) if k not in ignored and olds.get(k) != news.get(k))
        replaces = [k for k in changed if k in kind.replace_on]
        detailed = {
            k: provider_pb2.PropertyDiff(
                kind=(
                    (provider_pb2.PropertyDiff.ADD_REPLACE if k in replaces else provider_pb2.PropertyDiff.ADD)
                    if k not in olds
                    else (
                        provider_pb2.PropertyDiff.DELETE_REPLACE if k in replaces else provider_pb2.PropertyDiff.DELETE
                    )
                    if k not in news
                    else (
                        provider_pb2.PropertyDiff.UPDATE_REPLACE if k in replaces else provider_pb2.PropertyDiff.UPDATE
                    )
                ),
                inputDiff=True,
            )
            for k in changed
        }
        return provider_pb2.DiffResponse(
            changes=provider_pb2.DiffResponse.DIFF_SOME if changed else provider_pb2.DiffResponse.DIFF_NONE,
            replaces=replaces,
            diffs=changed,
            detailedDiff=detailed,
            hasDetailedDiff=True,
            # A replacement deletes the old resource first: `deleteBeforeReplace := len(replaces) > 0`
            # (pulumi/pulumi-azure-native, provider/pkg/provider/provider.go, Diff). A create first would meet the
            # old resource at the same ID (the names are the IDs) and be refused as already existing.
            deleteBeforeReplace=bool(replaces) and Leniency.REPLACE_CREATES_FIRST not in self.lenient,
        )

    def _path(self, kind: ResourceType, inputs: dict[str, Any]) -> str:
        values = {"subscriptionId": quote(self.subscription_id(), safe="")}
        for name in kind.path_params:
            value = str(inputs.get(name) or "")
            if not value:
                raise ArmError(400, "MissingPathParameter", f"missing required property '{name}'")
            values[name] = value.rstrip("/") if name == "scope" else quote(value, safe="")
        return kind.path.format(**values)

    def _body(self, kind: ResourceType, inputs: dict[str, Any]) -> dict[str, Any]:
        body: dict[str, Any] = {k: inputs[k] for k in kind.top_level if inputs.get(k) is not None}
        body["properties"] = {
            k: v for k, v in inputs.items() if k not in kind.top_level and k not in kind.path_params and v is not None
        }
        return body

    def _outputs(self, kind: ResourceType, raw_inputs: dict[str, Any], resource: dict[str, Any]) -> dict[str, Any]:
        """azure-native's shape: inputs, then ARM's top level, then `properties` flattened; secret in, secret out."""
        outputs: dict[str, Any] = dict(plain(raw_inputs))
        outputs.update({k: v for k, v in resource.items() if k != "properties"})
        outputs.update(resource.get("properties") or {})
        outputs["azureApiVersion"] = kind.api_version
        for key, value in raw_inputs.items():
            if key in outputs and contains(value, is_secret):
                outputs[key] = secret(outputs[key])
        return outputs

    def _deadline(self, timeout: float) -> float:
        return time.monotonic() + (timeout if timeout > 0 else DEFAULT_TIMEOUT)

    def _can_create(self, kind: ResourceType, path: str) -> None:
        """Refuse to create a resource that exists: azure-native GETs it first, and a 200 with a non-empty body is
        "cannot create already existing resource" (pulumi/pulumi-azure-native: `defaultCreate` calls
        `crudClient.CanCreate` before the PUT in provider/pkg/provider/provider.go; the check and its messages are
        `azCoreClient.CanCreate` in provider/pkg/azure/client_azcore.go). A 404 lets the create go on; any other
        answer is "cannot check existence"."""
        if Leniency.CREATE_OVER_EXISTING in self.lenient:
            return
        response = self.arm.request("GET", path, None, kind.api_version)
        if response.status == 404:
            return
        if response.status == 200:
            if isinstance(response.body, dict) and response.body:
                raise ProviderError(f"cannot create already existing resource '{path}'")
            return
        body = response.body if isinstance(response.body, str) else json.dumps(response.body)
        raise ProviderError(f"cannot check existence of resource '{path}': status code {response.status}, {body}")

    def _put(
        self,
        kind: ResourceType,
        raw_inputs: dict[str, Any],
        timeout: float,
        verb: str,
        urn: str,
        body: dict[str, Any] | None = None,
    ) -> tuple[str, dict[str, Any]]:
        """PUT the resource (`body`, else the whole body of its inputs), follow the operation, GET it back."""
        inputs = plain(raw_inputs)
        path = self._path(kind, inputs)
        what = f"{verb} {kind.token.rsplit(':', 1)[-1]} {path}"
        deadline = self._deadline(timeout)
        if verb == "creating":
            self._can_create(kind, path)
        sent = body if body is not None else self._body(kind, inputs)
        response = self.arm.request("PUT", path, sent, kind.api_version)
        self.arm.raise_for(response)
        try:
            self.arm.wait(response, what, deadline)
        except (ArmError, TimeoutError, Cancelled) as error:
            # The PUT was accepted: the resource exists in ARM. Like azure-native, report a partial failure so it
            # lands in the state (and the next `up` updates it) instead of being orphaned.
            current = self.arm.request("GET", path, None, kind.api_version)
            if current.status == 200 and isinstance(current.body, dict):
                raise PartialFailure(path, self._outputs(kind, raw_inputs, current.body), f"{what}: {error}") from error
            raise
        current = self.arm.request("GET", path, None, kind.api_version)
        self.arm.raise_for(current)
        answer = current.body if isinstance(current.body, dict) else {}
        log(f"{what}: done ({urn})")
        return str(answer.get("id") or path), self._outputs(kind, raw_inputs, answer)

    def _preview(self, kind: ResourceType, raw_inputs: dict[str, Any], olds: dict[str, Any]) -> dict[str, Any]:
        outputs = {**olds, **raw_inputs}
        for computed in ("id", "name", "type", "provisioningState"):
            outputs.setdefault(computed, UNKNOWN)
        outputs["azureApiVersion"] = kind.api_version
        return outputs

    def _run(self, context: grpc.ServicerContext, what: str, call: Any) -> Any:
        try:
            return call()
        except PartialFailure as partial:
            detail = provider_pb2.ErrorResourceInitFailed(
                id=partial.id, properties=to_struct(partial.outputs), reasons=[partial.reason]
            )
            from google.rpc import status_pb2  # type: ignore[import-untyped]

            status = status_pb2.Status(code=grpc.StatusCode.UNKNOWN.value[0], message=partial.reason)
            status.details.add().Pack(detail)
            context.set_trailing_metadata((("grpc-status-details-bin", status.SerializeToString()),))
            _abort(context, partial.reason)
        except ProviderError as error:
            _abort(context, str(error))  # azure-native returns these as they are, with nothing around them
        except (ArmError, TimeoutError, Cancelled, OSError) as error:
            _abort(context, f"{what}: {error}")

    def Create(self, request: provider_pb2.CreateRequest, context: grpc.ServicerContext) -> provider_pb2.CreateResponse:
        kind = self._type(request.type, context)
        raw = to_python(request.properties)
        if request.preview:
            return provider_pb2.CreateResponse(id="", properties=to_struct(self._preview(kind, raw, {})))
        rid, outputs = self._run(
            context,
            f"creating {request.urn}",
            lambda: self._put(kind, raw, request.timeout, "creating", request.urn),
        )
        return provider_pb2.CreateResponse(id=rid, properties=to_struct(outputs))

    def Update(self, request: provider_pb2.UpdateRequest, context: grpc.ServicerContext) -> provider_pb2.UpdateResponse:
        kind = self._type(request.type, context)
        raw = to_python(request.news)
        if request.preview:
            return provider_pb2.UpdateResponse(properties=to_struct(self._preview(kind, raw, to_python(request.olds))))
        # A PUT of the whole body built from the new inputs alone: what the program no longer sets is gone from
        # Azure afterwards (pulumi/pulumi-azure-native: `defaultUpdate` in provider/pkg/provider/provider.go
        # builds the body with `PrepareAzureRESTBody(id, inputs)` and sends it with `CreateOrUpdate`, a PUT for these
        # types: provider/pkg/provider/crud/crud.go).
        body = None
        if Leniency.UPDATE_MERGES in self.lenient:
            olds = to_python(request.old_inputs if request.HasField("old_inputs") else request.olds)
            body = self._body(kind, plain({**olds, **raw}))
        _, outputs = self._run(
            context,
            f"updating {request.urn}",
            lambda: self._put(kind, raw, request.timeout, "updating", request.urn, body),
        )
        return provider_pb2.UpdateResponse(properties=to_struct(outputs))

    def Read(self, request: provider_pb2.ReadRequest, context: grpc.ServicerContext) -> provider_pb2.ReadResponse:
        kind = self._type(request.type, context)
        inputs = to_python(request.inputs)

        def read() -> provider_pb2.ReadResponse:
            response = self.arm.request("GET", request.id, None, kind.api_version)
            if response.status == 404 and Leniency.READ_KEEPS_GONE in self.lenient:
                return provider_pb2.ReadResponse(id=request.id, properties=request.properties, inputs=request.inputs)
            if response.status == 404:
                # "404 means that the resource was deleted": an empty ID, and refresh drops it from the state
                # (pulumi/pulumi-azure-native, provider/pkg/provider/provider.go, Read).
                log(f"{request.urn}: {request.id} is gone")
                return provider_pb2.ReadResponse(id="")
            self.arm.raise_for(response)
            body = response.body if isinstance(response.body, dict) else {}
            known = inputs or to_python(request.properties)
            outputs = self._outputs(kind, known, body)
            answer = provider_pb2.ReadResponse(id=str(body.get("id") or request.id), properties=to_struct(outputs))
            if inputs:
                answer.inputs.CopyFrom(to_struct(inputs))
            return answer

        result: provider_pb2.ReadResponse = self._run(context, f"reading {request.urn}", read)
        return result

    def Delete(self, request: provider_pb2.DeleteRequest, context: grpc.ServicerContext) -> empty_pb2.Empty:
        kind = self._type(request.type, context)

        def delete() -> None:
            # Deleted means gone: a 404 is done, an accepted delete is followed to its end (and a 404 while
            # following it is done too), bounded like azure-native by the resource's delete timeout, else two
            # hours (pulumi/pulumi-azure-native: provider/pkg/provider/provider.go, Delete; the statuses and the
            # 404 rule are `azCoreClient.Delete` in provider/pkg/azure/client_azcore.go).
            what = f"deleting {request.id}"
            response = self.arm.request("DELETE", request.id, None, kind.api_version)
            if response.status == 404 and Leniency.DELETE_NOT_FOUND_FAILS not in self.lenient:
                return
            self.arm.raise_for(response)
            if Leniency.DELETE_NO_WAIT in self.lenient:
                return
            gone_is_done = Leniency.DELETE_NOT_FOUND_FAILS not in self.lenient
            self.arm.wait(response, what, self._deadline(request.timeout), deleting=gone_is_done)

        self._run(context, f"deleting {request.urn}", delete)
        return empty_pb2.Empty()

    def Invoke(self, request: provider_pb2.InvokeRequest, context: grpc.ServicerContext) -> provider_pb2.InvokeResponse:
        _abort(
            context,
            f"unknown function {request.tok} (not implemented by the test plugin)",
            grpc.StatusCode.UNIMPLEMENTED,
        )


class ProviderError(Exception):
    """An error of the provider itself (not ARM's answer), reported with its message alone, as azure-native does."""


class PartialFailure(Exception):
    """The resource exists in ARM, but its operation did not succeed."""

    def __init__(self, id: str, outputs: dict[str, Any], reason: str) -> None:
        super().__init__(reason)
        self.id, self.outputs, self.reason = id, outputs, reason


# --- process -------------------------------------------------------------------------------------------------


def main(argv: list[str]) -> None:
    # The engine passes flags (--logtostderr, -v=N, --tracing <endpoint>) and then its own address.
    args, engine_address = list(argv), None
    while args:
        arg = args.pop(0)
        if arg == "--tracing":
            args = args[1:]
        elif not arg.startswith("-"):
            engine_address = arg
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=16),
        options=[("grpc.max_receive_message_length", 400 * 1024 * 1024)],
    )
    lenient = leniencies(os.environ.get(LENIENT_ENV, ""))
    if lenient:
        log(f"lenient (only for the tests that prove the strict behaviours): {sorted(x.value for x in lenient)}")
    provider_pb2_grpc.add_ResourceProviderServicer_to_server(AzureNativeProvider(engine_address, lenient), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    sys.stdout.write(f"{port}\n")
    sys.stdout.flush()
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()
    server.stop(0)


# --- installing ----------------------------------------------------------------------------------------------


def write_launcher(directory: Path, python: str) -> Path:
    """An executable `pulumi-resource-azure-native` in `directory` that runs this module with `python`."""
    directory.mkdir(parents=True, exist_ok=True)
    launcher = directory / "pulumi-resource-azure-native"
    launcher.write_text(
        "#!/bin/sh\n"
        "# Test stand-in for the azure-native plugin (tests/fakes/azure_native_provider.py).\n"
        f"PYTHONPATH={_sh_quote(str(PROJECT_ROOT))}${{PYTHONPATH:+:$PYTHONPATH}}\n"
        "export PYTHONPATH\n"
        f'exec {_sh_quote(python)} -u -m tests.fakes.azure_native_provider "$@"\n'
    )
    launcher.chmod(0o755)
    return launcher


def install_plugin(pulumi_home: Path, python: str, version: str = AZURE_NATIVE_VERSION) -> Path:
    """Lay the plugin out as `pulumi plugin install resource azure-native <version>` would under PULUMI_HOME:
    `plugins/resource-azure-native-v<version>/pulumi-resource-azure-native`, with no `.partial` marker (its presence
    means "install not finished" to the engine). Returns the executable."""
    directory = pulumi_home / "plugins" / f"resource-azure-native-v{version}"
    (pulumi_home / "plugins" / f"resource-azure-native-v{version}.partial").unlink(missing_ok=True)
    return write_launcher(directory, python)


def _sh_quote(value: str) -> str:
    return "'" + value.replace("'", "'\"'\"'") + "'"


if __name__ == "__main__":
    main(sys.argv[1:])
