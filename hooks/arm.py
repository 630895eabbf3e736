"""The ARM side of the pipeline: read a VM's state and facts, deallocate it, mark it generalized, and read the
gallery resources a capture depends on. Plain functions over azure-mgmt-compute, usable without Pulumi.

Clients and credentials are built inside each call and closed at its end: dynamic providers are pickled, and a
credential or an HTTP session must never travel with them. Every call is bounded: one HTTP request by
`ArmSettings.request_timeout`, one operation (retries and long-running operations included) by
`ArmSettings.operation_timeout`. Every expected failure leaves as one of the `hooks.errors` types, with a
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
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, TypeVar

from azure.core.credentials import AccessToken, TokenCredential
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.core.pipeline.policies import RetryPolicy
from azure.core.rest import HttpRequest, HttpResponse
from azure.identity import DefaultAzureCredential
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.compute.models import ReplicationStatusTypes, VirtualMachineInstanceView
from azure.mgmt.resource.resources import ResourceManagementClient

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


class _Throttled(Exception):
    """ARM answered 429/503 with a Retry-After longer than the call may wait.

    Deliberately not an AzureError: azure-core's retry loop would catch that and retry until its timeout."""

    def __init__(self, retry_after: float, bound: float) -> None:
        super().__init__(f"ARM asked to retry after {retry_after:g}s, longer than this call's {bound:g}s bound")
        self.retry_after = retry_after
        self.bound = bound


class _BoundedRetryPolicy(RetryPolicy[HttpRequest, HttpResponse]):
    """azure-core's retries, except that a Retry-After longer than the call's bound ends the call at once.

    azure-core sleeps the whole Retry-After of a 429/503 before checking its timeout, so ARM asking for 60 s would
    hold a 15 s preview check for a minute, and then fail as a plain timeout. Ending it here keeps the bound and
    lets the error say that ARM is throttling."""

    def __init__(self, cap: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._cap = cap

    def get_retry_after(self, response: Any) -> float | None:
        value = super().get_retry_after(response)
        if value is not None and value > self._cap:
            raise _Throttled(value, self._cap)
        return value


def _client_options(settings: ArmSettings) -> dict[str, Any]:
    """Keyword arguments shared by every ARM client.

    azure-core's RetryPolicy stays on (it honours Retry-After on 408/429/5xx); its `timeout` is the total time one
    call may spend across retries, so a throttled or flaky ARM cannot stretch a call past the operation bound.
    TLS trust is left to requests, which reads REQUESTS_CA_BUNDLE; HTTPS is never relaxed."""
    options: dict[str, Any] = {
        "base_url": settings.endpoint,
        "credential_scopes": [settings.scope],
        "polling_interval": settings.poll_interval,
        "connection_timeout": settings.request_timeout,
        "read_timeout": settings.request_timeout,
        "timeout": settings.operation_timeout,
    }
    retry: dict[str, Any] = {"timeout": settings.operation_timeout}
    if settings.max_retries is not None:
        retry["retry_total"] = settings.max_retries
    options["retry_policy"] = _BoundedRetryPolicy(settings.operation_timeout, **retry)
    return options


def _credential() -> DefaultAzureCredential:
    try:
        return DefaultAzureCredential()
    except ValueError as exc:  # e.g. an invalid AZURE_TOKEN_CREDENTIALS value
        raise ArmUnreachable(
            f"cannot set up the Azure login: {_quote(str(exc))}. Fix the AZURE_* environment variables "
            "(AZURE_TOKEN_CREDENTIALS in particular), or unset them and run `az login`."
        ) from exc


def compute_client(
    settings: ArmSettings, subscription_id: str, credential: TokenCredential | None = None
) -> ComputeManagementClient:
    """A ComputeManagementClient for one call: DefaultAzureCredential unless a credential is given, the
    settings' endpoint, token audience, LRO polling interval and request/operation bounds. Close it after use."""
    return ComputeManagementClient(
        credential if credential is not None else _credential(), subscription_id, **_client_options(settings)
    )


def resource_client(
    settings: ArmSettings, subscription_id: str, credential: TokenCredential | None = None
) -> ResourceManagementClient:
    """A ResourceManagementClient configured like `compute_client`.

    azure-mgmt-resource 26 moved SubscriptionClient into the separate azure-mgmt-resource-subscriptions package,
    which this project does not depend on; subscription reads go through this client's `send_request`, which
    runs the same pipeline (auth, retries, bounds)."""
    return ResourceManagementClient(
        credential if credential is not None else _credential(), subscription_id, **_client_options(settings)
    )


class SharedLogin:
    """One Azure login for several ARM calls: a TokenCredential to pass as `credential=` to the read functions.

    DefaultAzureCredential is built on first use, and each token is fetched once and reused until shortly before
    it expires. Without this every call logs in again: the Azure CLI credential caches nothing and starts `az`
    (about a second) per token, and a new DefaultAzureCredential probes the managed identity endpoint again.
    Thread-safe: concurrent callers wait for the one login in progress instead of each starting their own.
    Build it inside a method and close it there (`with SharedLogin() as login:`), never keep it on a provider."""

    REFRESH_MARGIN = 300.0
    """Seconds before expiry at which a cached token is fetched anew."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._credential: DefaultAzureCredential | None = None
        self._tokens: dict[tuple[tuple[str, ...], str | None, bool], AccessToken] = {}

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
                    self._credential = _credential()
                token = self._credential.get_token(
                    *scopes, claims=claims, tenant_id=tenant_id, enable_cae=enable_cae, **kwargs
                )
                self._tokens[key] = token
            return token

    def close(self) -> None:
        with self._lock:
            if self._credential is not None:
                self._credential.close()
            self._credential = None
            self._tokens.clear()

    def __enter__(self) -> SharedLogin:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_Client = TypeVar("_Client", ComputeManagementClient, ResourceManagementClient)


@contextmanager
def _client(
    factory: Callable[[ArmSettings, str, TokenCredential | None], _Client],
    settings: ArmSettings,
    subscription_id: str,
    credential: TokenCredential | None,
) -> Iterator[_Client]:
    # Closing the client also stops an abandoned LRO poller thread: its next poll finds the transport closed.
    # A credential passed in belongs to the caller, who closes it.
    own = _credential() if credential is None else None
    client = factory(settings, subscription_id, own or credential)
    try:
        yield client
    finally:
        client.close()
        if own is not None:
            own.close()


def _compute(
    settings: ArmSettings, subscription_id: str, credential: TokenCredential | None = None
) -> contextlib.AbstractContextManager[ComputeManagementClient]:
    return _client(compute_client, settings, subscription_id, credential)


def _resources(
    settings: ArmSettings, subscription_id: str, credential: TokenCredential | None = None
) -> contextlib.AbstractContextManager[ResourceManagementClient]:
    return _client(resource_client, settings, subscription_id, credential)


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
        try:
            body = json.loads(exc.response.text()) if exc.response is not None else None
        except ValueError:  # a non-JSON body just means there is no Azure error to quote
            body = None
        inner = body.get("error") if isinstance(body, dict) else None
        if isinstance(inner, dict):
            code = code or inner.get("code")
            message = message or inner.get("message")
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
        return ArmUnreachable(
            f"could not {call.doing} {call.target}: no Azure access token could be obtained for {s.scope} "
            f"({_quote(exc.message)}). This is a login problem, not a network one: run `az login` (and "
            "`az account set` if needed), or set AZURE_CLIENT_ID/AZURE_TENANT_ID/AZURE_CLIENT_SECRET "
            "or a managed identity for DefaultAzureCredential."
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
    if isinstance(exc, ServiceResponseError):
        return ArmUnreachable(
            f"ARM at {s.endpoint} did not answer in time to {call.doing} {call.target} (per-request bound "
            f"{s.request_timeout:g}s, operation bound {s.operation_timeout:g}s): {_quote(str(exc))}. Check the "
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
        raise ArmUnreachable(
            f"ARM at {call.settings.endpoint} is throttling requests: to {call.doing} {call.target} it asked to "
            f"wait {exc.retry_after:g}s, longer than the {exc.bound:g}s this call may wait; the throttled request "
            "was not carried out. Wait a few minutes and run again, or raise armOperationTimeoutMinutes."
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


def _status_value(codes: tuple[str, ...], kind: str) -> str | None:
    prefix = kind.lower() + "/"
    for code in codes:
        if code.lower().startswith(prefix):
            return code[len(prefix) :].split("/", 1)[0].lower()
    return None


def _read_status(client: ComputeManagementClient, vm: VmRef, settings: ArmSettings) -> VmStatus:
    call = _Call(settings, "read the instance view of", str(vm), PERMISSION_VM_INSTANCE_VIEW, vm)
    with _arm_errors(call):
        return VmStatus.from_instance_view(client.virtual_machines.instance_view(vm.resource_group, vm.name))


def _settled_probe(
    client: ComputeManagementClient, vm: VmRef, settings: ArmSettings
) -> Callable[[], tuple[bool, VmStatus]]:
    """A `poll` probe that is done once the VM is no longer stopping or deallocating."""

    def probe() -> tuple[bool, VmStatus]:
        status = _read_status(client, vm, settings)
        return status.power_state not in _TRANSITIONAL_POWER_STATES, status

    return probe


def get_status(settings: ArmSettings, vm: VmRef, log: Log, credential: TokenCredential | None = None) -> VmStatus:
    """Read the VM's instance view (read-only)."""
    with _compute(settings, vm.subscription_id, credential) as client:
        status = _read_status(client, vm, settings)
    log.info(f"{vm}: {status}")
    return status


def wait_until_stopped(
    settings: ArmSettings, vm: VmRef, log: Log, credential: TokenCredential | None = None
) -> VmStatus:
    """If the VM is stopping or deallocating, wait (bounded) until it is stopped or deallocated.

    Any other state is returned as is: the caller decides what a running VM means."""
    deadline = Deadline(settings.operation_timeout, f"{vm} to finish stopping (PowerState stopped or deallocated)")
    # One client for the whole wait: one login, one connection pool.
    with _compute(settings, vm.subscription_id, credential) as client:
        first = _read_status(client, vm, settings)
        if first.power_state not in _TRANSITIONAL_POWER_STATES:
            return first
        log.info(f"{vm} is {first.power_state}; waiting for it to stop")
        try:
            status = poll(_settled_probe(client, vm, settings), deadline, settings.poll_interval, describe=str)
        except WaitTimeout as exc:
            raise WaitTimeout(f"{exc}. Check the VM in the Azure portal, then run again.") from exc
    log.info(f"{vm} is {status.power_state}")
    return status


def deallocate(settings: ArmSettings, vm: VmRef, log: Log, credential: TokenCredential | None = None) -> VmStatus:
    """Deallocate the VM and wait (bounded) for the long-running operation to succeed; returns the new status.

    A VM that is already deallocated is left alone, so the step is safe to repeat."""
    what = f"Azure to deallocate {vm} (the deallocate operation to reach Succeeded)"
    deadline = Deadline(settings.operation_timeout, what)
    call = _Call(settings, "deallocate", str(vm), PERMISSION_VM_DEALLOCATE, vm)
    with _compute(settings, vm.subscription_id, credential) as client:
        status = _read_status(client, vm, settings)
        if status.power_state in _TRANSITIONAL_POWER_STATES:
            # A stop or deallocation from an earlier, interrupted run is still going: let it finish, not race it.
            log.info(f"{vm} is {status.power_state}; waiting for that to finish first")
            try:
                status = poll(_settled_probe(client, vm, settings), deadline, settings.poll_interval, describe=str)
            except WaitTimeout as exc:
                raise WaitTimeout(f"{exc}. Check the VM in the Azure portal, then run again.") from exc
        if status.power_state == "deallocated":
            log.info(f"{vm} is already deallocated")
            return status
        log.info(f"deallocating {vm} (currently {status.power_state or 'unknown'})")
        with _arm_errors(call):
            poller = client.virtual_machines.begin_deallocate(vm.resource_group, vm.name)
            try:
                # result(timeout) returns quietly when the time is up; done() tells the two apart.
                poller.result(timeout=deadline.remaining)
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
            raise WaitTimeout(
                f"{deadline.timeout(f'operation status {poller.status()}')}. The VM may still be deallocating: "
                "check it in the Azure portal and run again (deallocate is safe to repeat), or raise "
                "operation_timeout."
            )
        status = _read_status(client, vm, settings)
    log.info(f"{vm} deallocated ({status})")
    return status


def generalize(settings: ArmSettings, vm: VmRef, log: Log, credential: TokenCredential | None = None) -> None:
    """Mark the VM generalized in ARM (synchronous). Irreversible: the VM can never be started again.

    Azure refuses (409 OperationNotAllowed) unless the VM is stopped; deallocate first."""
    call = _Call(settings, "generalize", str(vm), PERMISSION_VM_GENERALIZE, vm)
    log.info(f"marking {vm} as generalized")
    with _compute(settings, vm.subscription_id, credential) as client, _arm_errors(call):
        try:
            client.virtual_machines.generalize(vm.resource_group, vm.name)
        except HttpResponseError as exc:
            if exc.status_code == 409:
                code, message = azure_error_detail(exc)
                raise ArmError(
                    f"Azure refused to generalize {vm} (409 {code}): {message}. A VM can only be marked "
                    "generalized when it is not running: deallocate it first (after sysprep / waagent deprovision "
                    "finished in the guest), then generalize again."
                ) from exc
            raise
    log.info(f"{vm} is marked generalized")


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
            model = client.virtual_machines.get(vm.resource_group, vm.name, expand="instanceView")
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
                disk_props = client.disks.get(match["rg"], match["name"]).properties

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
    )
    log.info(
        f"{vm}: {facts.os_type}, {facts.hyper_v_generation}, {facts.security_type}, {facts.architecture}, "
        f"in {facts.location}"
    )
    return facts


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
    target = f"image version {version} of {image} in gallery {gallery} (resource group {resource_group})"
    call = _Call(settings, "read", target, PERMISSION_IMAGE_VERSION_READ)
    with _compute(settings, subscription_id, credential) as client, _arm_errors(call):
        try:
            found = client.gallery_image_versions.get(resource_group, gallery, image, version)
        except HttpResponseError as exc:
            if exc.status_code == 404:
                return None
            raise
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
    call = _Call(settings, "read the replication status of", target, PERMISSION_IMAGE_VERSION_READ)
    with _compute(settings, subscription_id, credential) as client, _arm_errors(call):
        try:
            found = client.gallery_image_versions.get(
                resource_group, gallery, image, version, expand=ReplicationStatusTypes.REPLICATION_STATUS
            )
        except HttpResponseError as exc:
            if exc.status_code == 404:
                return None
            raise
    props = found.properties
    replication = props.replication_status if props else None
    status = ReplicationStatus(
        provisioning_state=_canonical(props.provisioning_state) if props else None,
        aggregated_state=_canonical(replication.aggregated_state) if replication else None,
        regions=tuple(
            RegionReplication(
                region=entry.region or "",
                state=_canonical(entry.state) or "Unknown",
                progress=entry.progress,
                details=" ".join((entry.details or "").split()),
            )
            for entry in ((replication.summary or []) if replication else [])
        ),
    )
    if log is not None:
        regions = ", ".join(f"{r.region} {r.state} {r.progress or 0}%" for r in status.regions)
        log.info(f"{target}: {status.provisioning_state}, replication {status.aggregated_state} ({regions})")
    return status


def get_subscription_tenant(
    settings: ArmSettings, subscription_id: str, credential: TokenCredential | None = None
) -> str:
    """The tenant (directory) id a subscription belongs to."""
    target = f"subscription {subscription_id}"
    call = _Call(settings, "read", target, PERMISSION_SUBSCRIPTION_READ)
    request = HttpRequest("GET", f"/subscriptions/{subscription_id}", params={"api-version": SUBSCRIPTIONS_API_VERSION})
    with _resources(settings, subscription_id, credential) as client, _arm_errors(call):
        response = client.send_request(request)
        if response.status_code == 404:
            code, message = azure_error_detail(HttpResponseError(response=response))
            raise ArmError(
                f"{target} was not found ({code}): it does not exist or the identity has no role in it. "
                f"Check the subscription id and the login (`az account list`). Azure said: {message}."
            )
        response.raise_for_status()
        body = response.json()
    tenant = body.get("tenantId") if isinstance(body, dict) else None
    if not isinstance(tenant, str) or not tenant:
        raise ArmError(f"ARM returned {target} without a tenantId. Run again.")
    return tenant
