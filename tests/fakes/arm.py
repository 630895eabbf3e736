"""A local HTTPS fake of Azure Resource Manager, and a fake Azure CLI that logs in to it.

Shaped on real recorded traffic (azure-sdk-for-python `test_mgmt_compute_vm.test_compute_vm.yaml`, and the
azure-rest-api-specs compute examples): deallocate answers 202 with an empty body and absolute
`Azure-AsyncOperation` / `Location` URLs on the fake itself and no Retry-After; the operation document goes
InProgress → Succeeded; the monitor URL answers 200 empty; generalize answers 200 empty, or 409
OperationNotAllowed while the VM runs. An image version answers `$expand=ReplicationStatus` with
`properties.replicationStatus` (`aggregatedState`, `summary[]` of region/state/details/progress, as in the spec
example GalleryImageVersion_Get_WithReplicationStatus.json), following a per-region script. Like ARM, every
request needs an `api-version` of the form YYYY-MM-DD[-preview] (400 MissingApiVersionParameter /
InvalidApiVersionParameter otherwise; any such version is accepted), and an unknown route answers 404
InvalidResourceType in ARM's `{"error": {"code", "message"}}` shape. A version whose safety profile blocks deletion
before its end of life refuses DELETE (409) until that date, as Azure does.

State is an in-memory model that tests set up (`add_vm`, `add_gallery_image`, …) and inspect (`vms`, `requests`).
Faults are scriptable: throttling with Retry-After, transient 5xx, LROs that fail or never finish, 401/403, and
requests that hang. Every request is recorded.

The fake `az` is a shell script answering `az account get-access-token`; with `env` applied (PATH,
AZURE_TOKEN_CREDENTIALS=AzureCliCredential, REQUESTS_CA_BUNDLE) production code's real DefaultAzureCredential
logs in through it and trusts the fake's throwaway CA.

Use the fixtures: `fake_arm` (a started FakeArm) or `fake_arm_env` (the same, with its env applied through
monkeypatch). Test modules load them with `pytest_plugins = ["tests.fakes.arm"]`.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import os
import re
import shlex
import socket
import ssl
import struct
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias
from urllib.parse import parse_qsl, urlsplit

import pytest
import trustme

from hooks.targets import ArmSettings, VmRef
from tests.fakes.arm_snapshots import SnapshotRoutes

if TYPE_CHECKING:
    from tests.fakes.entra import FakeServicePrincipal

DEFAULT_SUBSCRIPTION = "00000000-0000-0000-0000-00000000aaaa"
DEFAULT_TENANT = "72f988bf-0000-0000-0000-00000000beef"

_COMPUTE = r"/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/Microsoft\.Compute"
_GALLERY = re.compile(rf"^{_COMPUTE}/galleries/(?P<gallery>[^/]+)$", re.I)
_IMAGE = re.compile(rf"^{_COMPUTE}/galleries/(?P<gallery>[^/]+)/images/(?P<image>[^/]+)$", re.I)
_VERSION = re.compile(
    rf"^{_COMPUTE}/galleries/(?P<gallery>[^/]+)/images/(?P<image>[^/]+)/versions/(?P<version>[^/]+)$", re.I
)
_ROLE_ASSIGNMENT = re.compile(
    r"^(?P<scope>/.*?)/providers/Microsoft\.Authorization/roleAssignments/(?P<name>[^/]+)$", re.I
)
_VM_ID = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/Microsoft\.Compute"
    r"/virtualMachines/(?P<name>[^/]+)$",
    re.I,
)
_CRUD = (("GET", ""), ("PUT", "put_"), ("DELETE", "delete_"))
_NETWORK = r"/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/Microsoft\.Network"
_NIC = re.compile(rf"^{_NETWORK}/networkInterfaces/(?P<name>[^/]+)$", re.I)
_SNAPSHOT = re.compile(rf"^{_COMPUTE}/snapshots/(?P<name>[^/]+)$", re.I)
_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)
_ROUTES: list[tuple[str, str, re.Pattern[str]]] = [
    ("GET", "subscription", re.compile(r"^/subscriptions/(?P<sub>[^/]+)$", re.I)),
    ("GET", "subscription_locations", re.compile(r"^/subscriptions/(?P<sub>[^/]+)/locations$", re.I)),
    ("GET", "vm", re.compile(rf"^{_COMPUTE}/virtualMachines/(?P<name>[^/]+)$", re.I)),
    ("GET", "instance_view", re.compile(rf"^{_COMPUTE}/virtualMachines/(?P<name>[^/]+)/instanceView$", re.I)),
    (
        "POST",
        "vm_action",
        re.compile(
            rf"^{_COMPUTE}/virtualMachines/(?P<name>[^/]+)/(?P<action>deallocate|powerOff|start|generalize)$", re.I
        ),
    ),
    ("DELETE", "delete_vm", re.compile(rf"^{_COMPUTE}/virtualMachines/(?P<name>[^/]+)$", re.I)),
    # A test boot (hooks/version_boot.py): VMs created from an image version, their NICs and disks, the subnet.
    ("GET", "vm_list", re.compile(rf"^{_COMPUTE}/virtualMachines$", re.I)),
    ("PUT", "put_vm", re.compile(rf"^{_COMPUTE}/virtualMachines/(?P<name>[^/]+)$", re.I)),
    ("GET", "disk_list", re.compile(rf"^{_COMPUTE}/disks$", re.I)),
    ("DELETE", "delete_disk", re.compile(rf"^{_COMPUTE}/disks/(?P<name>[^/]+)$", re.I)),
    # A safety snapshot's restore (tests/fakes/arm_snapshots.py): a disk from a snapshot, an OS disk swapped.
    ("PUT", "put_disk", re.compile(rf"^{_COMPUTE}/disks/(?P<name>[^/]+)$", re.I)),
    ("PATCH", "patch_vm", re.compile(rf"^{_COMPUTE}/virtualMachines/(?P<name>[^/]+)$", re.I)),
    ("GET", "nic_list", re.compile(rf"^{_NETWORK}/networkInterfaces$", re.I)),
    *((method, f"{prefix}nic", _NIC) for method, prefix in _CRUD),
    ("GET", "vnet", re.compile(rf"^{_NETWORK}/virtualNetworks/(?P<vnet>[^/]+)$", re.I)),
    ("GET", "subnet", re.compile(rf"^{_NETWORK}/virtualNetworks/(?P<vnet>[^/]+)/subnets/(?P<subnet>[^/]+)$", re.I)),
    ("GET", "disk", re.compile(rf"^{_COMPUTE}/disks/(?P<name>[^/]+)$", re.I)),
    # Safety snapshots (hooks/arm/snapshots.py; the routes in tests/fakes/arm_snapshots.py).
    *((method, f"{prefix}snapshot", _SNAPSHOT) for method, prefix in _CRUD),
    *((method, f"{prefix}gallery", _GALLERY) for method, prefix in _CRUD),
    *((method, f"{prefix}gallery_image", _IMAGE) for method, prefix in _CRUD),
    *((method, f"{prefix}image_version", _VERSION) for method, prefix in _CRUD),
    (
        "GET",
        "operation",
        re.compile(
            r"^/subscriptions/(?P<sub>[^/]+)/providers/Microsoft\.(?:Compute|Network)/locations/(?P<loc>[^/]+)"
            r"/(?:operations|capsOperations)/(?P<op>[^/]+)$",
            re.I,
        ),
    ),
    *((method, f"{prefix}role_assignment", _ROLE_ASSIGNMENT) for method, prefix in _CRUD),
    ("GET", "provider", re.compile(r"^/subscriptions/(?P<sub>[^/]+)/providers/(?P<ns>[A-Za-z0-9.]+)$", re.I)),
    (
        "POST",
        "provider_register",
        re.compile(r"^/subscriptions/(?P<sub>[^/]+)/providers/(?P<ns>[A-Za-z0-9.]+)/register$", re.I),
    ),
    # Microsoft Graph, served by the same fake (tests point graphEndpoint at it).
    ("GET", "graph_service_principals", re.compile(r"^/v1\.0/servicePrincipals(?:/(?P<id>[^/]+))?$", re.I)),
]


@functools.lru_cache(maxsize=1)
def _public_regions() -> list[tuple[str, str]]:
    """Azure's public regions as the repository lists them (hooks/azure_regions.json)."""
    data = json.loads((Path(__file__).resolve().parents[2] / "hooks" / "azure_regions.json").read_text())
    return [(r["name"], r["displayName"]) for r in data["regions"]]


_Answer: TypeAlias = tuple[int, dict[str, Any] | None, dict[str, str]]
"""status, JSON body (None: empty), extra headers."""
_Route: TypeAlias = Callable[[re.Match[str], dict[str, str]], _Answer]

# RBAC actions, so a scripted 403 reads like ARM's AuthorizationFailed.
_ACTIONS = {
    "subscription": "Microsoft.Resources/subscriptions/read",
    "vm": "Microsoft.Compute/virtualMachines/read",
    "instance_view": "Microsoft.Compute/virtualMachines/instanceView/read",
    "disk": "Microsoft.Compute/disks/read",
    "gallery_image": "Microsoft.Compute/galleries/images/read",
    "image_version": "Microsoft.Compute/galleries/images/versions/read",
    "operation": "Microsoft.Compute/locations/operations/read",
    "gallery": "Microsoft.Compute/galleries/read",
    "put_gallery": "Microsoft.Compute/galleries/write",
    "delete_gallery": "Microsoft.Compute/galleries/delete",
    "put_gallery_image": "Microsoft.Compute/galleries/images/write",
    "delete_gallery_image": "Microsoft.Compute/galleries/images/delete",
    "put_image_version": "Microsoft.Compute/galleries/images/versions/write",
    "delete_image_version": "Microsoft.Compute/galleries/images/versions/delete",
    "role_assignment": "Microsoft.Authorization/roleAssignments/read",
    "put_role_assignment": "Microsoft.Authorization/roleAssignments/write",
    "delete_role_assignment": "Microsoft.Authorization/roleAssignments/delete",
    "put_vm": "Microsoft.Compute/virtualMachines/write",
    "vm_list": "Microsoft.Compute/virtualMachines/read",
    "disk_list": "Microsoft.Compute/disks/read",
    "delete_disk": "Microsoft.Compute/disks/delete",
    "nic": "Microsoft.Network/networkInterfaces/read",
    "nic_list": "Microsoft.Network/networkInterfaces/read",
    "put_nic": "Microsoft.Network/networkInterfaces/write",
    "delete_nic": "Microsoft.Network/networkInterfaces/delete",
    "vnet": "Microsoft.Network/virtualNetworks/read",
    "subnet": "Microsoft.Network/virtualNetworks/subnets/read",
}

_POWER_DISPLAY = {
    "running": "VM running",
    "starting": "VM starting",
    "stopping": "VM stopping",
    "stopped": "VM stopped",
    "deallocating": "VM deallocating",
    "deallocated": "VM deallocated",
}


# --- the in-memory model -------------------------------------------------------------------------------------


@dataclass
class BootScript:
    """How a VM created by PUT (a test boot) comes up, read by read of the VM ($expand=instanceView): Creating for
    `creating_reads` reads, then Failed with `fail`, or Succeeded with a guest agent "Not Ready" for
    `agent_ready_after_reads` reads and "Ready" after (never, with `agent_never_ready`)."""

    creating_reads: int = 1
    fail: tuple[str, str] | None = None
    """(code, message) of a failed provisioning, e.g. ("OSProvisioningTimedOut", "OS Provisioning for VM ...")."""
    agent_ready_after_reads: int = 1
    agent_never_ready: bool = False


@dataclass
class FakeVm:
    """A VM as the fake knows it. Tests mutate fields freely (state is read on every request)."""

    subscription_id: str
    resource_group: str
    name: str
    location: str = "westeurope"
    os_type: str = "Linux"
    hyper_v_generation: str | None = "V2"
    """None: omitted from both the instance view and the OS disk."""
    hyper_v_in_instance_view: bool = True
    """False: only the OS disk reports hyperVGeneration (older API versions)."""
    security_type: str | None = "TrustedLaunch"
    """None: no securityProfile.securityType (a Standard VM)."""
    architecture: str | None = "x64"
    """None: the OS disk has no supportedCapabilities.architecture."""
    managed_os_disk: bool = True
    power_state: str = "running"
    generalized: bool = False
    provisioning_state: str = "succeeded"
    vm_size: str = "Standard_D2s_v5"
    vm_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    statuses_reversed: bool = False
    """Send the instance view statuses in reverse order (clients must not depend on order)."""
    settles_to: str | None = None
    """With a transitional power_state (stopping, deallocating): the state reached after settle_after_reads."""
    settle_after_reads: int = 0
    """Instance view reads before power_state becomes settles_to."""
    os_disk_size_gb: int | None = None
    """None: 30 GB for Linux, 127 GB for Windows (Azure's platform image sizes)."""
    data_disk_sizes_gb: list[int] = field(default_factory=list)
    """One data disk per entry, at LUN 0, 1, ... (storageProfile.dataDisks)."""
    disk_controller_type: str | None = "SCSI"
    """storageProfile.diskControllerType; None: omitted (older API versions)."""
    tags: dict[str, str] = field(default_factory=dict)
    boot: BootScript | None = None
    """Set on VMs created by PUT (a test boot): how provisioning and the guest agent go."""
    boot_reads: int = 0
    created: dict[str, Any] | None = None
    """The `properties` of the PUT that created it (answered back for created VMs)."""

    @property
    def ref(self) -> VmRef:
        return VmRef(self.subscription_id, self.resource_group, self.name)

    @property
    def id(self) -> str:
        return self.ref.id

    @property
    def os_disk_name(self) -> str:
        return f"{self.name}_OsDisk_1_{self.vm_id.replace('-', '')[:32]}"

    os_disk_swapped_to: str | None = None
    """The disk an OS disk swap (PATCH, tests/fakes/arm_snapshots.py) put in place of the original OS disk."""

    @property
    def os_disk_id(self) -> str:
        if self.os_disk_swapped_to:
            return self.os_disk_swapped_to
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.Compute/disks/{self.os_disk_name}"
        )

    def data_disk_id(self, lun: int) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.Compute/disks/{self.name}_DataDisk_{lun}"
        )


@dataclass
class FakeGallery:
    """An Azure Compute Gallery."""

    subscription_id: str
    resource_group: str
    name: str
    location: str = "westeurope"
    description: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    """Other `properties` of the last PUT (sharingProfile, softDeletePolicy, …), answered back as sent."""

    @property
    def id(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.Compute/galleries/{self.name}"
        )


@dataclass
class FakeGalleryImage:
    """An image definition."""

    subscription_id: str
    resource_group: str
    gallery: str
    name: str
    location: str = "westeurope"
    os_type: str = "Linux"
    os_state: str = "Generalized"
    hyper_v_generation: str | None = "V2"
    security_type: str | None = "TrustedLaunch"
    """The SecurityType feature; None: no features at all."""
    architecture: str | None = "x64"
    publisher: str = "contoso"
    offer: str = "webserver"
    sku: str = "2025"
    tags: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] | None = None
    """Other `properties` of the last PUT (description, recommended, eula, …); None: the fake's defaults."""

    @property
    def id(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.Compute/galleries/{self.gallery}/images/{self.name}"
        )


ReplicationStep: TypeAlias = tuple[str, int] | tuple[str, int, str]
"""(state, progress) or (state, progress, details) of one region, as one GET reports it."""


@dataclass
class FakeImageVersion:
    """An image version, and its replication to the target regions."""

    image: FakeGalleryImage
    name: str
    source_vm_id: str | None = None
    """Its source: a VM ID, or (with legacy_source_id, answered as `source.id`) a VM or image version ID."""
    provisioning_state: str = "Succeeded"
    legacy_source_id: bool = False
    """Put the VM id in storageProfile.source.id (older API versions) instead of virtualMachineId."""
    replication: dict[str, list[ReplicationStep]] = field(default_factory=dict)
    """Region, named as Azure reports it ("West Europe") → its script of steps. Each GET with
    `$expand=ReplicationStatus` moves every region one step on; the last step stays. A Creating version becomes
    Succeeded (or Failed) when the aggregate reaches Completed (or Failed), as the capture call ends then.
    Empty: one target region (the image's location), Completed at 100%."""
    absent_reads: int = 0
    """GETs answered 404 before the version appears (a `pulumi up` that has not reached the capture yet)."""
    replication_reads: int = 0
    """GETs with `$expand=ReplicationStatus` answered so far."""
    location: str | None = None
    """None: the image's location."""
    tags: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    """`publishingProfile` / `safetyProfile` / … of the last PUT, answered back (publishingProfile merged)."""
    data_disk_luns: list[int] = field(default_factory=list)
    """`storageProfile.dataDiskImages[].lun`: captured from the source VM's data disks."""

    @property
    def id(self) -> str:
        return f"{self.image.id}/versions/{self.name}"

    def replication_status(self) -> dict[str, Any]:
        """The current step of every region, shaped like ARM's `properties.replicationStatus`."""
        script = self.replication or {self.image.location: [("Completed", 100)]}
        summary = []
        for region, steps in script.items():
            step = steps[min(self.replication_reads, len(steps) - 1)]
            details = step[2] if len(step) == 3 else ""
            summary.append({"region": region, "state": step[0], "details": details, "progress": step[1]})
        states = {entry["state"] for entry in summary}
        if "Failed" in states:
            aggregated = "Failed"
        elif states == {"Completed"}:
            aggregated = "Completed"
        elif "Replicating" in states:
            aggregated = "InProgress"
        else:
            aggregated = "Unknown"
        return {"aggregatedState": aggregated, "summary": summary}


@dataclass
class FakeRoleAssignment:
    """A role assignment at some scope."""

    scope: str
    name: str
    role_definition_id: str
    principal_id: str
    principal_type: str | None = None
    description: str | None = None
    created_on: str = field(default_factory=lambda: _now())

    @property
    def id(self) -> str:
        return f"{self.scope}/providers/Microsoft.Authorization/roleAssignments/{self.name}"


@dataclass
class FakeOperation:
    """A long-running operation (deallocate, powerOff, start; an image version's create or delete) and its script."""

    id: str
    vm: FakeVm | None
    action: str
    final_state: str
    previous_state: str
    in_progress_polls: int
    """Polls of the operation URL that still answer InProgress; None-like -1 means forever (a hanging LRO)."""
    fail: tuple[str, str] | None = None
    """(code, message): end Failed with this error."""
    on_finish: Callable[[bool], None] | None = None
    """For operations on other resources than VMs: applies the outcome (called with True on success)."""
    polls: int = 0
    status: str = "InProgress"
    start_time: str = field(default_factory=lambda: _now())
    end_time: str | None = None


@dataclass
class Fault:
    """A scripted answer that replaces the normal one for matching requests."""

    status: int
    method: str | None = None
    path: str | None = None
    """Regex searched (case-insensitively) in the request path; None matches every path."""
    times: int | None = 1
    """How many requests it answers; None: every one until cleared."""
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] | None = None
    hang: float = 0.0
    """Seconds to hold the request without answering (then drop the connection); 0 answers at once."""
    reset: bool = False
    """Reset the connection (TCP RST) instead of answering."""
    lose_answer: bool = False
    """Act on the request as usual, then reset the connection instead of sending the answer: ARM did the work, the
    answer was lost on the way (a proxy or NAT dropping the connection). An operation started so still ends in
    Azure without being polled: its VM settles after `lro_polls` reads of the instance view."""
    delay: float = 0.0
    """Seconds to wait before answering as usual (a slow ARM, or a loaded machine); the answer is not replaced."""
    raw: str | None = None
    """Send this text as the body instead of `body` (plain text, an HTML page from a gateway)."""
    content_type: str = "text/plain; charset=utf-8"
    """The Content-Type of a `raw` body."""
    when: Callable[[], bool] | None = None
    """Match only while this holds (e.g. once another request was seen); None: always."""
    release: threading.Event | None = None
    """Hold matching requests until this is set (or the fake stops), then answer as usual: a point in a run that a
    test reaches for certain (`reached`), e.g. to kill the client there (`FakeArm.hold`)."""
    reached: threading.Event = field(default_factory=threading.Event)
    """Set when a request matches, before it is held or answered."""

    def matches(self, method: str, path: str) -> bool:
        if self.times is not None and self.times <= 0:
            return False
        if self.when is not None and not self.when():
            return False
        if self.method is not None and self.method.upper() != method:
            return False
        return self.path is None or re.search(self.path, path, re.I) is not None


@dataclass(frozen=True)
class RecordedRequest:
    """One request the fake received."""

    method: str
    path: str
    query: dict[str, str]
    status: int
    authorized: bool
    """True when it carried the expected bearer token."""
    body: Any = None
    """The JSON body it carried (None: none)."""


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "0+00:00")


API_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}(-preview)?$")
"""The form of every ARM api-version (e.g. 2024-07-01, 2023-07-03-preview); ARM refuses anything else."""


def _error(code: str, message: str, target: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if target is not None:
        error["target"] = target
    return {"error": error}


@functools.cache
def _authority() -> tuple[trustme.CA, trustme.LeafCert]:
    """One throwaway CA per test process: key generation is the slow part of starting a fake."""
    ca = trustme.CA()
    return ca, ca.issue_cert("127.0.0.1", "localhost")


def _jwt_part(obj: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")


def _fake_token(audience: str = "fake-arm", tenant: str = DEFAULT_TENANT, signature: str | None = None) -> str:
    """A JWT-shaped token (header.payload.signature), like the ones ARM receives: `aud` and `tid` claims, and, in
    place of a real signature, the fake's signing key (tokens of another fake are refused)."""
    payload = {"aud": audience, "tid": tenant, "nonce": uuid.uuid4().hex}
    return f"{_jwt_part({'typ': 'JWT', 'alg': 'none'})}.{_jwt_part(payload)}.{signature or uuid.uuid4().hex}"


def token_claims(token: str) -> dict[str, Any] | None:
    """The payload of a JWT-shaped token (no signature check), or None if it is not one."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except ValueError:
        return None
    return claims if isinstance(claims, dict) else None


def _bearer_tokens(header: str) -> list[str]:
    """The tokens of an `x-ms-authorization-auxiliary` header: `Bearer <t1>, Bearer <t2>` (up to three)."""
    return [p.strip().removeprefix("Bearer ").strip() for p in header.split(",") if p.strip().startswith("Bearer ")]


# --- the server ----------------------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as ARM; every answer carries Content-Length
    server: _Server

    def setup(self) -> None:
        # The TLS handshake runs here, in the connection's own thread, so a slow client cannot stall accept().
        self.request.settimeout(30)
        self.request.do_handshake()
        super().setup()

    def do_GET(self) -> None:
        self.server.fake._handle(self, "GET")

    def do_POST(self) -> None:
        self.server.fake._handle(self, "POST")

    def do_PUT(self) -> None:
        self.server.fake._handle(self, "PUT")

    def do_PATCH(self) -> None:
        self.server.fake._handle(self, "PATCH")

    def do_DELETE(self) -> None:
        self.server.fake._handle(self, "DELETE")

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, fake: FakeArm, context: ssl.SSLContext) -> None:
        self.fake = fake
        self.context = context
        super().__init__(("127.0.0.1", 0), _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = super().get_request()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # or every answer waits ~40 ms for an ACK
        tls = self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        self.fake._track(tls)
        return tls, addr

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that drop connections (timeouts, closed pools) are expected; record, do not print.
        self.fake.server_errors.append(repr(client_address))


class FakeArm(SnapshotRoutes):
    """A running fake ARM endpoint plus its fake `az`. Start with `start()`, or use the fixtures."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.signing_key = uuid.uuid4().hex
        """Stands in for the signature of every token the fake az mints (its third part): the server accepts only
        tokens carrying it (or from a trusted issuer), and checks their `aud`, `tid` and `exp` claims."""
        self.token = _fake_token(signature=self.signing_key)
        """The token the fake az hands out by default (for the fake's endpoint, in the home tenant) and the server
        accepts; minted again by `start()`, once the endpoint (its audience) is known."""
        self.tenants: set[str] = set()
        """Other tenants (lower-case) the signed-in identity belongs to (`add_tenant`): the fake az hands out tokens
        for them (`--tenant`), and a subscription in one of them, or in the home tenant `tenant_id`, accepts only a
        token of its own tenant (401 InvalidAuthenticationTokenTenant otherwise, as ARM). A subscription labelled
        with a tenant the fake does not model as a directory is not checked."""
        self.audiences: list[str] = []
        """Token audiences the server accepts besides its own endpoint (with or without the trailing slash);
        anything else is 401 InvalidAuthenticationTokenAudience, as ARM answers."""
        self.aux_tokens_accepted = 0
        """Cross-tenant requests authorized by a valid token in x-ms-authorization-auxiliary."""
        self.accepted_token: str | None = None
        """The token the server accepts; None: `token`. Set to something else to make every request 401."""
        self.tenant_id = DEFAULT_TENANT
        """The tenant of subscriptions registered without one."""
        self.subscription_id = DEFAULT_SUBSCRIPTION
        """The subscription add_vm and friends use by default."""
        self.lro_polls = 1
        """Default number of InProgress answers of an operation document before it finishes."""
        self.vms: dict[tuple[str, str, str], FakeVm] = {}
        self.galleries: dict[tuple[str, str, str], FakeGallery] = {}
        self.role_assignments: dict[tuple[str, str], FakeRoleAssignment] = {}
        self.registered_providers: dict[tuple[str, str], str] = {}
        """(subscription, namespace), lower-case → registrationState; absent: NotRegistered."""
        self.register_polls = 1
        """GETs of a provider answering Registering after its register POST, before it is Registered."""
        self.service_principals: list[FakeServicePrincipal] = []
        """Graph: the tenant's service principals (tests/fakes/entra.py answers for them)."""
        """(scope, name), both lower-case → the assignment."""
        self.request_log: Path | None = None
        """When set, every request is also appended to this file as one JSON line (for other processes)."""
        self.gallery_images: dict[tuple[str, str, str, str], FakeGalleryImage] = {}
        self.image_versions: dict[tuple[str, str, str, str, str], FakeImageVersion] = {}
        self.disks: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.snapshots: dict[tuple[str, str, str], dict[str, Any]] = {}
        """Microsoft.Compute/snapshots: (sub, rg, name), lower-case → the snapshot (tests/fakes/arm_snapshots.py)."""
        """Disks created with test-boot VMs (or added by tests as leftovers): (sub, rg, name) lower-case → ARM body."""
        self.nics: dict[tuple[str, str, str], dict[str, Any]] = {}
        """NICs: (sub, rg, name) lower-case → ARM body."""
        self.vnets: dict[str, tuple[str, list[str]]] = {}
        """Virtual network ID (lower-case) → (location, subnet names)."""
        self.boot_script = BootScript()
        """How the next VMs created by PUT come up (see BootScript)."""
        self.subscriptions: dict[str, str] = {}
        self.locations: list[tuple[str, str]] | None = None
        """(name, displayName) of every subscription's locations; None: Azure's public regions."""
        """subscription id → tenant id."""
        self.operations: dict[str, FakeOperation] = {}
        self.faults: list[Fault] = []
        self.requests: list[RecordedRequest] = []
        self.server_errors: list[str] = []
        self._lro_script: dict[str, tuple[str, str] | int] = {}
        self._body: dict[str, Any] = {}
        self._auxiliary: str | None = None
        """The x-ms-authorization-auxiliary header of the request being routed (set with `_body`)."""
        """The JSON body of the request being routed (set under the lock, for the PUT handlers)."""
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._sockets: set[socket.socket] = set()
        self.connections = 0
        """TLS connections accepted so far (each costs the client a handshake)."""
        self.token_lifetime: int | None = None
        """Seconds each token from the fake az lives; None: one token valid for an hour. Set it (before the code
        under test logs in) to hand out a new, short-lived token per `az` call: the server refuses expired ones
        (401 ExpiredAuthenticationToken), as ARM does."""
        self.expired_token_requests = 0
        """Requests refused because their token had expired."""
        self.token_issuers: list[Callable[[str], str | None]] = []
        """Token issuers the server also trusts (`trust`): each says "valid", "expired" or None (not its token)."""
        self.issuer_tokens_accepted = 0
        """Requests accepted with a token from a trusted issuer (e.g. the fake Entra)."""
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.ca_path = self.workdir / "fake-arm-ca.pem"
        self.bin_dir = self.workdir / "bin"

    # lifecycle

    def start(self) -> FakeArm:
        ca, cert = _authority()
        ca.cert_pem.write_to_path(str(self.ca_path))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        cert.configure_cert(context)
        self._server = _Server(self, context)
        self.token = _fake_token(self.endpoint, self.tenant_id, self.signing_key)
        # A short poll interval keeps stop() (shutdown waits for the serve loop to notice) fast.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-arm", daemon=True
        )
        self._thread.start()
        self._write_az()
        return self

    def stop(self) -> None:
        self._stopping.set()  # releases hanging requests
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        with self._lock:
            for sock in list(self._sockets):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            self._sockets.clear()
        if self._thread is not None:
            self._thread.join(timeout=5)
        # The code under test keeps one ARM session per endpoint for its process: forget this one's.
        from hooks import arm

        arm.close_sessions()

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.add(sock)
            self.connections += 1

    @property
    def port(self) -> int:
        assert self._server is not None, "start() the fake first"
        return int(self._server.server_address[1])

    @property
    def endpoint(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        """Environment for code under test: the fake az first on PATH, only the CLI credential, the fake's CA."""
        return {
            "PATH": f"{self.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            "AZURE_TOKEN_CREDENTIALS": "AzureCliCredential",
            "REQUESTS_CA_BUNDLE": str(self.ca_path),
        }

    def settings(self, **overrides: Any) -> ArmSettings:
        """ArmSettings for this fake with test-friendly bounds (fast polls, short timeouts)."""
        values: dict[str, Any] = {
            "endpoint": self.endpoint,
            "poll_interval": 0.05,
            "operation_timeout": 10.0,
            "request_timeout": 5.0,
        }
        values.update(overrides)
        return ArmSettings(**values)

    # the fake Azure CLI

    def trust(self, issuer: Any) -> None:
        """Also accept the access tokens `issuer` (tests/fakes/entra.py FakeEntra) hands out, until they expire."""
        self.token_issuers.append(issuer.verdict)

    def _write_az(self) -> None:
        self.bin_dir.mkdir(parents=True, exist_ok=True)
        expires = datetime.now() + timedelta(hours=1)  # az prints expiresOn in local time
        token = {
            "accessToken": self.token,
            "expiresOn": expires.strftime("%Y-%m-%d %H:%M:%S.%f"),
            "expires_on": int(expires.timestamp()),
            "subscription": DEFAULT_SUBSCRIPTION,
            "tenant": self.tenant_id,
            "tokenType": "Bearer",
        }
        (self.workdir / "az-token.json").write_text(json.dumps(token, indent=2) + "\n")
        (self.workdir / "az-signing-key").write_text(self.signing_key)
        (self.workdir / "az-default").write_text(f"{self.endpoint} {self.tenant_id}")
        self._write_az_tenants()
        state = shlex.quote(str(self.workdir))
        python = shlex.quote(sys.executable)
        restore = shlex.quote(str(Path(__file__).with_name("az_restore.py")))
        script = f"""#!/bin/sh
# Fake Azure CLI for tests: answers `az account get-access-token [--resource R] [--tenant T]`, like a logged-in
# az, unless logged out. Tokens are JWT-shaped, with the requested resource as `aud` and the tenant as `tid`.
state={state}
printf '%s\\n' "$*" >> "$state/az-calls.log"
if [ -e "$state/az-logged-out" ]; then
    echo "ERROR: Please run 'az login' to setup account." >&2
    exit 1
fi
if [ "$1" = "account" ] && [ "$2" = "get-access-token" ]; then
    shift 2
    resource="https://management.core.windows.net/"  # az's own default
    tenant=""
    while [ $# -gt 0 ]; do
        case "$1" in
            --resource) resource="$2"; shift ;;
            --scope) resource="${{2%/.default}}"; shift ;;
            --tenant) tenant="$2"; shift ;;
        esac
        shift
    done
    read -r default_resource home < "$state/az-default"
    if [ -n "$tenant" ] && ! grep -qix "$tenant" "$state/az-tenants"; then
        echo "ERROR: AADSTS50020: User account from identity provider does not exist in tenant '$tenant'." >&2
        exit 1
    fi
    if [ ! -e "$state/az-token-lifetime" ] && [ "$resource" = "$default_resource" ] \
            && {{ [ -z "$tenant" ] || [ "$tenant" = "$home" ]; }}; then
        cat "$state/az-token.json"
        exit 0
    fi
    # A new token: for the configured seconds when short-lived tokens are handed out, else an hour.
    lifetime=3600
    [ -e "$state/az-token-lifetime" ] && lifetime=$(cat "$state/az-token-lifetime")
    exp=$(( $(date +%s) + lifetime ))
    b64url() {{ base64 -w0 | tr '+/' '-_' | tr -d '='; }}
    claims=$(printf '{{"aud": "%s", "tid": "%s", "exp": %s, "nonce": "%s"}}' \
        "$resource" "${{tenant:-$home}}" "$exp" "$(cat /proc/sys/kernel/random/uuid)" | b64url)
    token="$(printf '%s' '{{"typ": "JWT", "alg": "none"}}' | b64url).$claims.$(cat "$state/az-signing-key")"
    printf '{{"accessToken": "%s", "expiresOn": "%s", "expires_on": %s, "tenant": "%s", "tokenType": "Bearer"}}\n' \
        "$token" "$(date -d "@$exp" '+%Y-%m-%d %H:%M:%S.000000')" "$exp" "${{tenant:-$home}}"
    exit 0
fi
case "$1 $2" in
    "disk create"|"vm deallocate"|"vm update"|"vm start")
        # A safety snapshot's restore commands (tests/fakes/az_restore.py), sent to this fake ARM.
        exec {python} {restore} "$state" "$@" ;;
esac
echo "ERROR: fake az does not implement: $*" >&2
exit 2
"""
        az = self.bin_dir / "az"
        az.write_text(script)
        az.chmod(0o755)

    def _write_az_tenants(self) -> None:
        tenants = sorted({self.tenant_id.lower(), *self.tenants})
        (self.workdir / "az-tenants").write_text("".join(f"{t}\n" for t in tenants))

    def add_tenant(self, tenant_id: str) -> None:
        """Model another tenant (directory) the signed-in identity belongs to (see `tenants`)."""
        with self._lock:
            self.tenants.add(tenant_id.lower())
        self._write_az_tenants()

    def mint_token(self, audience: str | None = None, tenant: str | None = None, expires_in: int = 3600) -> str:
        """A token as the fake az would hand it out (default: for this endpoint, in the home tenant)."""
        claims = {
            "aud": audience or self.endpoint,
            "tid": tenant or self.tenant_id,
            "exp": int(time.time()) + expires_in,
            "nonce": uuid.uuid4().hex,
        }
        return f"{_jwt_part({'typ': 'JWT', 'alg': 'none'})}.{_jwt_part(claims)}.{self.signing_key}"

    @property
    def az_logged_out(self) -> bool:
        """True: the fake az fails like a real one that was never logged in."""
        return (self.workdir / "az-logged-out").exists()

    @az_logged_out.setter
    def az_logged_out(self, value: bool) -> None:
        marker = self.workdir / "az-logged-out"
        if value:
            marker.touch()
        else:
            marker.unlink(missing_ok=True)

    def hand_out_short_lived_tokens(self, seconds: int) -> None:
        """From now on every `az` call hands out a new token that expires `seconds` later (see token_lifetime)."""
        self.token_lifetime = seconds
        (self.workdir / "az-token-lifetime").write_text(str(seconds))

    def logins(self) -> int:
        """Tokens handed out by the fake az so far (each `az account get-access-token` is one login)."""
        return sum(1 for call in self.az_calls() if call[:2] == ["account", "get-access-token"])

    def az_calls(self) -> list[list[str]]:
        """Arguments of every fake az invocation so far."""
        log = self.workdir / "az-calls.log"
        return [line.split() for line in log.read_text().splitlines()] if log.exists() else []

    # setting up state

    def add_subscription(self, subscription_id: str, tenant_id: str | None = None) -> None:
        with self._lock:
            self.subscriptions[subscription_id.lower()] = tenant_id or self.tenant_id

    def add_vm(
        self,
        name: str = "src-vm",
        resource_group: str = "rg-src",
        subscription_id: str = DEFAULT_SUBSCRIPTION,
        **kw: Any,
    ) -> FakeVm:
        """Add a VM (see FakeVm for the fields); its subscription is registered too."""
        vm = FakeVm(subscription_id, resource_group, name, **kw)
        with self._lock:
            self.vms[(subscription_id.lower(), resource_group.lower(), name.lower())] = vm
            self.subscriptions.setdefault(subscription_id.lower(), self.tenant_id)
        return vm

    def remove_vm(
        self, name: str = "src-vm", resource_group: str = "rg-src", subscription_id: str = DEFAULT_SUBSCRIPTION
    ) -> None:
        """Delete a VM (as if someone deleted it in the portal); missing is fine."""
        with self._lock:
            self.vms.pop((subscription_id.lower(), resource_group.lower(), name.lower()), None)

    def add_gallery(
        self,
        name: str = "gal",
        resource_group: str = "rg-gallery",
        subscription_id: str = DEFAULT_SUBSCRIPTION,
        **kw: Any,
    ) -> FakeGallery:
        """Add a gallery (see FakeGallery for the fields)."""
        gallery = FakeGallery(subscription_id, resource_group, name, **kw)
        with self._lock:
            self.galleries[(subscription_id.lower(), resource_group.lower(), name.lower())] = gallery
            self.subscriptions.setdefault(subscription_id.lower(), self.tenant_id)
        return gallery

    def add_gallery_image(
        self,
        gallery: str = "gal",
        name: str = "img",
        resource_group: str = "rg-gallery",
        subscription_id: str = DEFAULT_SUBSCRIPTION,
        **kw: Any,
    ) -> FakeGalleryImage:
        """Add an image definition; its gallery is added too when missing."""
        image = FakeGalleryImage(subscription_id, resource_group, gallery, name, **kw)
        with self._lock:
            if (subscription_id.lower(), resource_group.lower(), gallery.lower()) not in self.galleries:
                self.add_gallery(gallery, resource_group, subscription_id, location=image.location)
            self.gallery_images[(subscription_id.lower(), resource_group.lower(), gallery.lower(), name.lower())] = (
                image
            )
        return image

    def add_image_version(self, image: FakeGalleryImage, name: str = "1.0.0", **kw: Any) -> FakeImageVersion:
        version = FakeImageVersion(image, name, **kw)
        key = (
            image.subscription_id.lower(),
            image.resource_group.lower(),
            image.gallery.lower(),
            image.name.lower(),
            name.lower(),
        )
        with self._lock:
            self.image_versions[key] = version
        return version

    def reset(self) -> None:
        """Forget every resource, operation, fault and recorded request (to reuse one running fake across tests)."""
        with self._lock:
            for table in (
                self.vms,
                self.galleries,
                self.gallery_images,
                self.image_versions,
                self.role_assignments,
                self.operations,
                self._lro_script,
                self.disks,
                self.snapshots,
                self.nics,
                self.vnets,
            ):
                table.clear()
            self.faults.clear()
            self.requests.clear()
            self.connections = 0
            self.lro_polls = 1
            self.boot_script = BootScript()
            self.tenants.clear()
            self.audiences.clear()
            self.aux_tokens_accepted = 0
        self._write_az_tenants()

    # scripting faults

    def add_fault(self, status: int, **fields: Any) -> Fault:
        """Script an answer (see Fault for the fields: method, path, times, headers, body, hang)."""
        fault = Fault(status, **fields)
        with self._lock:
            self.faults.append(fault)
        return fault

    def throttle(
        self, times: int = 1, method: str | None = None, path: str | None = None, retry_after: int = 1
    ) -> Fault:
        """`times` x 429 with Retry-After, shaped like ARM's throttling answer."""
        return self.add_fault(
            429,
            method=method,
            path=path,
            times=times,
            headers={
                "Retry-After": str(retry_after),
                "x-ms-ratelimit-remaining-resource": (
                    "Microsoft.Compute/LowCostGet3Min;0,Microsoft.Compute/LowCostGet30Min;3990"
                ),
            },
            body=_error(
                "OperationNotAllowed",
                "The server rejected the request because too many requests have been received for this subscription.",
            ),
        )

    def fail_transient(
        self, times: int = 1, status: int = 500, method: str | None = None, path: str | None = None
    ) -> Fault:
        """`times` x a 5xx without Retry-After (azure-core retries these with its own backoff)."""
        return self.add_fault(
            status,
            method=method,
            path=path,
            times=times,
            body=_error("InternalServerError", "An unexpected error occured while processing the request."),
        )

    def deny(
        self, status: int = 403, method: str | None = None, path: str | None = None, times: int | None = None
    ) -> Fault:
        """401 or 403 for matching requests (every one until cleared, by default)."""
        if status == 401:
            body = _error("InvalidAuthenticationToken", "The access token is invalid.")
            headers = {
                "WWW-Authenticate": 'Bearer authorization_uri="https://login.windows.net/", error="invalid_token", '
                'error_description="The access token is invalid."'
            }
        else:
            body = {}  # filled per request with the action, see _fault_body
            headers = {}
        return self.add_fault(status, method=method, path=path, times=times, headers=headers, body=body)

    def fail_with_body(
        self,
        status: int,
        body: str | dict[str, Any],
        method: str | None = None,
        path: str | None = None,
        times: int | None = 1,
        content_type: str = "text/plain; charset=utf-8",
    ) -> Fault:
        """Answer with an error body in one of the shapes ARM and the gateways in front of it really send: a
        dict is sent as JSON (e.g. `{"Message": ...}` from older resource providers, which azure-core cannot parse
        into an ODataV4Format), a string as it is (plain text, an HTML page from a gateway)."""
        if isinstance(body, dict):
            return self.add_fault(status, method=method, path=path, times=times, body=body)
        return self.add_fault(status, method=method, path=path, times=times, raw=body, content_type=content_type)

    def reset_connection(self, method: str | None = None, path: str | None = None, times: int | None = 1) -> Fault:
        """Reset the connection (TCP RST) of matching requests instead of answering."""
        return self.add_fault(0, method=method, path=path, times=times, reset=True)

    def lose_answer(self, method: str | None = None, path: str | None = None, times: int | None = 1) -> Fault:
        """Act on matching requests, then reset the connection instead of answering (see Fault.lose_answer)."""
        return self.add_fault(0, method=method, path=path, times=times, lose_answer=True)

    def hang(
        self, method: str | None = None, path: str | None = None, seconds: float = 30.0, times: int | None = None
    ) -> Fault:
        """Hold matching requests without answering (until `seconds` pass or the fake stops)."""
        return self.add_fault(0, method=method, path=path, times=times, hang=seconds)

    def slow_down(
        self, method: str | None = None, path: str | None = None, seconds: float = 0.5, times: int | None = None
    ) -> Fault:
        """Answer matching requests as usual, but only after `seconds`."""
        return self.add_fault(0, method=method, path=path, times=times, delay=seconds)

    def hold(
        self,
        method: str | None = None,
        path: str | None = None,
        times: int | None = 1,
        when: Callable[[], bool] | None = None,
    ) -> Fault:
        """Hold matching requests until the fault's `release` is set, then answer them as usual (Azure acts on a
        request whose client is gone). `fault.reached` says one arrived."""
        return self.add_fault(0, method=method, path=path, times=times, when=when, release=threading.Event())

    def fail_next_lro(
        self, code: str = "InternalExecutionError", message: str = "An internal execution error occurred."
    ) -> None:
        """The next long-running operation ends Failed with this Azure error."""
        with self._lock:
            self._lro_script["next"] = (code, message)

    def hang_next_lro(self) -> None:
        """The next long-running operation answers InProgress forever."""
        with self._lock:
            self._lro_script["next"] = -1

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()
            self._lro_script.clear()

    # inspecting

    def count(self, method: str | None = None, path: str | None = None) -> int:
        """Requests seen with this method and a path matching this regex (case-insensitive)."""
        return sum(
            1
            for r in list(self.requests)
            if (method is None or r.method == method.upper()) and (path is None or re.search(path, r.path, re.I))
        )

    def non_get_requests(self) -> list[RecordedRequest]:
        return [r for r in list(self.requests) if r.method != "GET"]

    def bodies(self, method: str = "PUT", path: str | None = None) -> list[Any]:
        """JSON bodies of the requests seen with this method and a path matching this regex (case-insensitive)."""
        return [
            r.body
            for r in list(self.requests)
            if r.method == method.upper() and (path is None or re.search(path, r.path, re.I))
        ]

    # request handling

    def _handle(self, handler: _Handler, method: str) -> None:
        parts = urlsplit(handler.path)
        path = parts.path
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        try:
            request_body: Any = json.loads(raw) if raw else None
        except ValueError:
            request_body = raw.decode(errors="replace")
        presented = handler.headers.get("Authorization") or ""
        verdict, claims = self._verdict(presented.removeprefix("Bearer ") if presented.startswith("Bearer ") else "")
        authorized, expired = verdict == "valid", verdict == "expired"

        with self._lock:
            fault = next((f for f in self.faults if f.matches(method, path)), None)
            if fault is not None and fault.times is not None:
                fault.times -= 1
        if fault is not None:
            fault.reached.set()

        if fault is not None and fault.release is not None:
            while not fault.release.wait(0.05) and not self._stopping.is_set():
                pass
            fault = None
        if fault is not None and fault.delay:
            self._stopping.wait(fault.delay)
            fault = None
        if fault is not None and fault.lose_answer:
            with self._lock:
                _, _, headers = self._route(
                    method, path, query, request_body, handler.headers.get("x-ms-authorization-auxiliary")
                )
                self._settle_unpolled(headers)
        if fault is not None and (fault.reset or fault.lose_answer):
            self._record(method, path, query, 0, authorized, request_body)
            with contextlib.suppress(OSError):
                # SO_LINGER 0: close() sends a TCP RST, like a proxy or NAT dropping the connection.
                handler.request.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                handler.request.close()
            handler.close_connection = True
            return
        if fault is not None and fault.hang:
            self._record(method, path, query, 0, authorized, request_body)
            self._stopping.wait(fault.hang)
            handler.close_connection = True
            return
        if fault is not None and fault.raw is not None:
            self._record(method, path, query, fault.status, authorized, request_body)
            self._send_raw(handler, fault.status, fault.raw, fault.content_type, dict(fault.headers))
            return
        if fault is not None:
            status, body, headers = fault.status, self._fault_body(fault, method, path), dict(fault.headers)
        elif not query.get("api-version") and not path.startswith("/v1.0/"):  # Graph has no api-version
            status, body, headers = (
                400,
                _error(
                    "MissingApiVersionParameter",
                    "The api-version query parameter (?api-version=) is required for all requests.",
                ),
                {},
            )
        elif not path.startswith("/v1.0/") and not API_VERSION.match(query["api-version"]):
            status, body, headers = (
                400,
                _error(
                    "InvalidApiVersionParameter",
                    f"The api-version '{query['api-version']}' is invalid. The supported versions are "
                    "'2025-04-01,2024-11-01,2024-07-01,2024-03-01,2023-07-01,2022-12-01'.",
                ),
                {},
            )
        elif not authorized:
            status, headers = 401, {"WWW-Authenticate": 'Bearer authorization_uri="https://login.windows.net/"'}
            if expired:
                with self._lock:
                    self.expired_token_requests += 1
                body = _error(
                    "ExpiredAuthenticationToken",
                    "The access token expiry UTC time is earlier than current UTC time.",
                )
            elif handler.headers.get("Authorization"):
                body = _error("InvalidAuthenticationToken", "The access token is invalid.")
            else:
                body = _error("AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing.")
        elif (refused := self._token_refusal(claims, path)) is not None:
            status, body, headers = refused
            authorized = False
        elif method == "PUT" and not isinstance(request_body, dict):
            status, body, headers = (
                400,
                _error("InvalidRequestContent", "The request content was invalid and could not be deserialized."),
                {},
            )
        else:
            status, body, headers = self._route(
                method, path, query, request_body, handler.headers.get("x-ms-authorization-auxiliary")
            )
        self._record(method, path, query, status, authorized, request_body)
        self._send(handler, status, body, headers)

    def _verdict(self, token: str) -> tuple[str, dict[str, Any]]:
        """("valid" | "expired" | "invalid" | "missing", the token's claims) for a bearer token."""
        if not token:
            return "missing", {}
        if self.accepted_token is not None:
            return ("valid" if token == self.accepted_token else "invalid"), {}
        claims = token_claims(token) or {}
        if token == self.token or (claims and token.rsplit(".", 1)[-1] == self.signing_key):
            exp = claims.get("exp")
            return ("expired" if isinstance(exp, int) and exp <= time.time() else "valid"), claims
        verdicts = [issuer(token) for issuer in self.token_issuers]
        if "valid" in verdicts:
            with self._lock:
                self.issuer_tokens_accepted += 1
            return "valid", claims
        return ("expired" if "expired" in verdicts else "invalid"), {}

    def _audience_ok(self, claims: dict[str, Any]) -> bool:
        allowed = {a.rstrip("/").lower() for a in (self.endpoint, *self.audiences)}
        return str(claims.get("aud") or "").rstrip("/").lower() in allowed

    def _directory_of(self, path: str) -> str | None:
        """The tenant of the subscription a path is in, when the fake models that tenant as a directory."""
        m = re.match(r"^/subscriptions/([^/]+)", path, re.I)
        tenant = self.subscriptions.get(m[1].lower()) if m else None
        if tenant is None or tenant.lower() not in {self.tenant_id.lower(), *self.tenants}:
            return None
        return tenant

    def _token_refusal(self, claims: dict[str, Any], path: str) -> _Answer | None:
        """ARM's 401 for a valid token it still refuses: another audience, or another tenant than the
        subscription's. (A token without claims, e.g. `accepted_token`, is not checked.)"""
        if not claims:
            return None
        aud = str(claims.get("aud") or "")
        if not self._audience_ok(claims):
            allowed = ",".join(f"'{a}'" for e in (self.endpoint, *self.audiences) for a in (e.rstrip("/") + "/", e))
            message = (
                f"The access token has been obtained for wrong audience or resource '{aud}'. It should exactly match "
                f"with one of the allowed audiences {allowed}."
            )
            return (
                401,
                _error("InvalidAuthenticationTokenAudience", message),
                {
                    "WWW-Authenticate": f'Bearer authorization_uri="https://login.windows.net/{claims.get("tid")}", '
                    'error="invalid_token", error_description="The access token has been obtained for wrong '
                    'audience or resource."'
                },
            )
        tenant = self._directory_of(path)
        issued = str(claims.get("tid") or "")
        if tenant is not None and issued and issued.lower() != tenant.lower():
            message = (
                f"The access token is from the wrong issuer 'https://sts.windows.net/{issued}/'. It must match the "
                f"tenant 'https://sts.windows.net/{tenant}/' associated with this subscription. Please use the "
                f"authority (URL) 'https://login.windows.net/{tenant}' to get the token. Note, if the subscription "
                "is transferred to another tenant there is no impact to the services, but information about new "
                "tenant could take time to propagate (up to an hour). If you just transferred your subscription and "
                "see this error message, please try back later."
            )
            return (
                401,
                _error("InvalidAuthenticationTokenTenant", message),
                {
                    "WWW-Authenticate": f'Bearer authorization_uri="https://login.windows.net/{tenant}", '
                    'error="invalid_token", error_description="The access token is from the wrong issuer."'
                },
            )
        return None

    def _linked_authorization(self, target_id: str, source_id: str) -> _Answer | None:
        """ARM's 403 LinkedAuthorizationFailed for a write in one tenant that reads a resource of another tenant
        without a valid token of that tenant in x-ms-authorization-auxiliary (called under the lock)."""
        source_tenant, target_tenant = self._directory_of(source_id), self._directory_of(target_id)
        if source_tenant is None or target_tenant is None or source_tenant.lower() == target_tenant.lower():
            return None
        for token in _bearer_tokens(self._auxiliary or "")[:3]:
            verdict, claims = self._verdict(token)
            tenant = str(claims.get("tid") or "").lower()
            if verdict == "valid" and self._audience_ok(claims) and tenant == source_tenant.lower():
                self.aux_tokens_accepted += 1
                return None
        linked = source_id.split("/")[2]
        return (
            403,
            _error(
                "LinkedAuthorizationFailed",
                "The client has permission to perform action 'Microsoft.Compute/galleries/images/versions/read' on "
                f"scope '{target_id}', however the current tenant '{target_tenant}' is not authorized to access "
                f"linked subscription '{linked}'.",
            ),
            {"x-ms-failure-cause": "gateway"},
        )

    def _record(
        self, method: str, path: str, query: dict[str, str], status: int, authorized: bool, body: Any = None
    ) -> None:
        with self._lock:
            self.requests.append(RecordedRequest(method, path, query, status, authorized, body))
            if self.request_log is not None:
                line = {"method": method, "path": path, "query": query, "status": status, "body": body}
                with self.request_log.open("a") as log:
                    log.write(json.dumps(line) + "\n")

    def _fault_body(self, fault: Fault, method: str, path: str) -> dict[str, Any] | None:
        if fault.status == 403 and not fault.body:
            action = next((_ACTIONS.get(kind, "") for m, kind, rx in _ROUTES if m == method and rx.match(path)), "")
            if not action:
                m = re.search(r"/virtualMachines/[^/]+/(\w+)$", path)
                action = f"Microsoft.Compute/virtualMachines/{m[1]}/action" if m else f"{method} {path}"
            return _error(
                "AuthorizationFailed",
                f"The client 'fake-user@contoso.example' with object id '{uuid.UUID(int=7)}' does not have "
                f"authorization to perform action '{action}' over scope '{path}' or the scope is invalid. If access "
                "was recently granted, please refresh your credentials.",
            )
        return fault.body

    def _send(self, handler: _Handler, status: int, body: dict[str, Any] | None, headers: dict[str, str]) -> None:
        data = json.dumps(body).encode() if body is not None else b""
        handler.send_response(status)
        if body is not None:
            handler.send_header("Content-Type", "application/json; charset=utf-8")
        handler.send_header("Content-Length", str(len(data)))
        handler.send_header("Cache-Control", "no-cache")
        handler.send_header("x-ms-request-id", str(uuid.uuid4()))
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(data)
        handler.wfile.flush()

    def _send_raw(self, handler: _Handler, status: int, text: str, content_type: str, headers: dict[str, str]) -> None:
        data = text.encode()
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(data)
        handler.wfile.flush()

    def _route(
        self, method: str, path: str, query: dict[str, str], body: Any = None, auxiliary: str | None = None
    ) -> tuple[int, dict[str, Any] | None, dict[str, str]]:
        for route_method, kind, pattern in _ROUTES:
            m = pattern.match(path)
            if m and route_method == method:
                handler: _Route = getattr(self, f"_on_{kind}")
                with self._lock:
                    self._body = body if isinstance(body, dict) else {}
                    self._auxiliary = auxiliary
                    return handler(m, query)
        for _, _, pattern in _ROUTES:
            if pattern.match(path):
                return (
                    405,
                    _error("MethodNotAllowed", f"The requested resource does not support http method '{method}'."),
                    {},
                )
        return 404, _error("InvalidResourceType", f"The resource type could not be found for path '{path}'."), {}

    def _on_provider(self, m: re.Match[str], query: dict[str, str]) -> _Answer:
        key = (m["sub"].lower(), m["ns"].lower())
        state = self.registered_providers.get(key, "NotRegistered")
        if state.startswith("Registering:"):
            left = int(state.split(":")[1])
            self.registered_providers[key] = "Registered" if left <= 0 else f"Registering:{left - 1}"
            state = "Registering"
        body = {
            "id": f"/subscriptions/{m['sub']}/providers/{m['ns']}",
            "namespace": m["ns"],
            "registrationState": state,
        }
        return 200, body, {}

    def _on_provider_register(self, m: re.Match[str], query: dict[str, str]) -> _Answer:
        key = (m["sub"].lower(), m["ns"].lower())
        if self.registered_providers.get(key) != "Registered":
            self.registered_providers[key] = f"Registering:{self.register_polls}"
        return 200, {"namespace": m["ns"], "registrationState": "Registering"}, {}

    def _on_graph_service_principals(self, m: re.Match[str], query: dict[str, str]) -> _Answer:
        from tests.fakes.entra import graph_service_principals

        status, body = graph_service_principals(self.service_principals, m["id"], query)
        return status, body, {}

    def _vm(self, m: re.Match[str]) -> FakeVm | None:
        return self.vms.get((m["sub"].lower(), m["rg"].lower(), m["name"].lower()))

    @staticmethod
    def _not_found(kind: str, name: str, rg: str) -> tuple[int, dict[str, Any], dict[str, str]]:
        return (
            404,
            _error(
                "ResourceNotFound",
                f"The Resource '{kind}/{name}' under resource group '{rg}' was not found. For more details please go "
                "to https://aka.ms/ARMResourceNotFoundFix",
            ),
            {},
        )

    def _on_subscription_locations(self, m: re.Match[str], query: dict[str, str]) -> _Answer:
        sub = m["sub"].lower()
        if sub not in self.subscriptions:
            return 404, _error("SubscriptionNotFound", f"The subscription '{m['sub']}' could not be found."), {}
        regions = self.locations if self.locations is not None else _public_regions()
        value = [
            {
                "id": f"/subscriptions/{sub}/locations/{name}",
                "type": "Region",
                "name": name,
                "displayName": display,
                "regionalDisplayName": f"(Europe) {display}",
                "metadata": {"regionType": "Physical", "regionCategory": "Recommended"},
            }
            for name, display in regions
        ]
        return 200, {"value": value}, {}

    def _on_subscription(self, m: re.Match[str], query: dict[str, str]) -> tuple[int, dict[str, Any], dict[str, str]]:
        sub = m["sub"].lower()
        tenant = self.subscriptions.get(sub)
        if tenant is None:
            return 404, _error("SubscriptionNotFound", f"The subscription '{m['sub']}' could not be found."), {}
        body: dict[str, Any] = {
            "id": f"/subscriptions/{sub}",
            "authorizationSource": "RoleBased",
            "managedByTenants": [],
            "subscriptionId": sub,
            "tenantId": tenant,
            "displayName": "Fake Subscription",
            "state": "Enabled",
            "subscriptionPolicies": {
                "locationPlacementId": "Public_2014-09-01",
                "quotaId": "PayAsYouGo_2014-09-01",
                "spendingLimit": "Off",
            },
        }
        return 200, body, {}

    def _instance_view(self, vm: FakeVm) -> dict[str, Any]:
        if vm.settles_to is not None:
            if vm.settle_after_reads <= 0:
                vm.power_state, vm.settles_to = vm.settles_to, None
            else:
                vm.settle_after_reads -= 1
        transitional = vm.power_state in ("starting", "stopping", "deallocating")
        provisioning = "updating" if transitional else vm.provisioning_state
        statuses: list[dict[str, Any]] = [
            {
                "code": f"ProvisioningState/{provisioning}",
                "level": "Info",
                "displayStatus": "Updating" if transitional else f"Provisioning {provisioning}",
                "time": _now(),
            }
        ]
        if vm.generalized:
            statuses.append({"code": "OSState/generalized", "level": "Info", "displayStatus": "VM generalized"})
        statuses.append(
            {
                "code": f"PowerState/{vm.power_state}",
                "level": "Info",
                "displayStatus": _POWER_DISPLAY.get(vm.power_state, vm.power_state),
            }
        )
        if vm.statuses_reversed:
            statuses.reverse()
        view: dict[str, Any] = {
            "computerName": vm.name,
            "osName": "ubuntu" if vm.os_type == "Linux" else "Windows Server 2022 Datacenter",
            "osVersion": "22.04" if vm.os_type == "Linux" else "Microsoft Windows NT 10.0.20348.0",
            "disks": [
                {
                    "name": vm.os_disk_name,
                    "statuses": [
                        {
                            "code": "ProvisioningState/succeeded",
                            "level": "Info",
                            "displayStatus": "Provisioning succeeded",
                            "time": _now(),
                        }
                    ],
                }
            ],
            "statuses": statuses,
        }
        if vm.power_state == "running":
            view["vmAgent"] = {
                "vmAgentVersion": "2.13.1.1",
                "statuses": [
                    {
                        "code": "ProvisioningState/succeeded",
                        "level": "Info",
                        "displayStatus": "Ready",
                        "message": "GuestAgent is running and processing the extensions.",
                        "time": _now(),
                    }
                ],
            }
        if vm.hyper_v_generation and vm.hyper_v_in_instance_view:
            view["hyperVGeneration"] = vm.hyper_v_generation
        return view

    def _vm_model(self, vm: FakeVm, expand_instance_view: bool) -> dict[str, Any]:
        os_disk: dict[str, Any] = {
            "osType": vm.os_type,
            "name": vm.os_disk_name,
            "createOption": "FromImage",
            "caching": "ReadWrite",
            "deleteOption": "Delete",
            "diskSizeGB": vm.os_disk_size_gb or (30 if vm.os_type == "Linux" else 127),
        }
        if vm.managed_os_disk:
            os_disk["managedDisk"] = {"storageAccountType": "Premium_LRS", "id": vm.os_disk_id}
        else:
            os_disk["vhd"] = {"uri": f"https://fakestorage.blob.core.windows.net/vhds/{vm.name}.vhd"}
        props: dict[str, Any] = {
            "vmId": vm.vm_id,
            "hardwareProfile": {"vmSize": vm.vm_size},
            "storageProfile": {
                "imageReference": (
                    {
                        "publisher": "canonical",
                        "offer": "ubuntu-24_04-lts",
                        "sku": "server",
                        "version": "latest",
                        "exactVersion": "24.04.202501010",
                    }
                    if vm.os_type == "Linux"
                    else {
                        "publisher": "MicrosoftWindowsServer",
                        "offer": "WindowsServer",
                        "sku": "2022-datacenter-azure-edition",
                        "version": "latest",
                        "exactVersion": "20348.2966.241205",
                    }
                ),
                "osDisk": os_disk,
                "dataDisks": [
                    {
                        "lun": lun,
                        "name": f"{vm.name}_DataDisk_{lun}",
                        "createOption": "Empty",
                        "caching": "None",
                        "diskSizeGB": size,
                        "managedDisk": {"storageAccountType": "Premium_LRS", "id": vm.data_disk_id(lun)},
                    }
                    for lun, size in enumerate(vm.data_disk_sizes_gb)
                ],
                **({"diskControllerType": vm.disk_controller_type} if vm.disk_controller_type else {}),
            },
            "osProfile": {
                "computerName": vm.name,
                "adminUsername": "azureuser",
                "secrets": [],
                "allowExtensionOperations": True,
                "requireGuestProvisionSignal": True,
            },
            "networkProfile": {
                "networkInterfaces": [
                    {
                        "id": f"/subscriptions/{vm.subscription_id}/resourceGroups/{vm.resource_group}"
                        f"/providers/Microsoft.Network/networkInterfaces/{vm.name}-nic"
                    }
                ]
            },
            "diagnosticsProfile": {"bootDiagnostics": {"enabled": True}},
            "provisioningState": "Updating"
            if vm.power_state in ("starting", "stopping", "deallocating")
            else "Succeeded",
            "timeCreated": "2025-01-01T10:00:00.0000000+00:00",
        }
        if vm.security_type:
            profile: dict[str, Any] = {"securityType": vm.security_type}
            if vm.security_type == "TrustedLaunch":
                profile["uefiSettings"] = {"secureBootEnabled": True, "vTpmEnabled": True}
            props["securityProfile"] = profile
        if expand_instance_view:
            props["instanceView"] = self._instance_view(vm)
        return {
            "name": vm.name,
            "id": vm.id,
            "type": "Microsoft.Compute/virtualMachines",
            "location": vm.location,
            "properties": props,
            "etag": '"1"',
        }

    def _on_vm(self, m: re.Match[str], query: dict[str, str]) -> tuple[int, dict[str, Any], dict[str, str]]:
        vm = self._vm(m)
        if vm is None:
            return self._not_found("Microsoft.Compute/virtualMachines", m["name"], m["rg"])
        expand = query.get("$expand", "").lower() == "instanceview"
        if vm.created is not None:
            return 200, self._created_vm_model(vm, expand), {}
        return 200, self._vm_model(vm, expand), {}

    def _on_instance_view(self, m: re.Match[str], query: dict[str, str]) -> tuple[int, dict[str, Any], dict[str, str]]:
        vm = self._vm(m)
        if vm is None:
            return self._not_found("Microsoft.Compute/virtualMachines", m["name"], m["rg"])
        return 200, self._instance_view(vm), {}

    def _on_disk(self, m: re.Match[str], query: dict[str, str]) -> tuple[int, dict[str, Any], dict[str, str]]:
        created = self.disks.get((m["sub"].lower(), m["rg"].lower(), m["name"].lower()))
        if created is not None:
            return 200, created, {}
        vm = next((v for v in self.vms.values() if v.managed_os_disk and v.os_disk_id.lower() == m[0].lower()), None)
        if vm is None:
            return self._not_found("Microsoft.Compute/disks", m["name"], m["rg"])
        props: dict[str, Any] = {
            "osType": vm.os_type,
            "creationData": {
                "createOption": "FromImage",
                "imageReference": {
                    "id": f"/Subscriptions/{vm.subscription_id}/Providers/Microsoft.Compute/Locations/{vm.location}"
                    "/Publishers/canonical/ArtifactTypes/VMImage/Offers/ubuntu-24_04-lts/Skus/server"
                    "/Versions/24.04.202501010"
                },
            },
            "diskSizeGB": vm.os_disk_size_gb or (30 if vm.os_type == "Linux" else 127),
            "diskIOPSReadWrite": 120,
            "diskMBpsReadWrite": 25,
            "encryption": {"type": "EncryptionAtRestWithPlatformKey"},
            "networkAccessPolicy": "AllowAll",
            "publicNetworkAccess": "Enabled",
            "timeCreated": "2025-01-01T10:00:00.0000000+00:00",
            "provisioningState": "Succeeded",
            "diskState": "Reserved" if vm.power_state == "deallocated" else "Attached",
            "diskSizeBytes": 32213303296,
            "uniqueId": str(uuid.uuid5(uuid.NAMESPACE_URL, vm.os_disk_id)),
            "tier": "P4",
        }
        if vm.hyper_v_generation:
            props["hyperVGeneration"] = vm.hyper_v_generation
        if vm.architecture:
            props["supportedCapabilities"] = {"architecture": vm.architecture, "acceleratedNetwork": True}
        if vm.security_type and vm.security_type != "Standard":
            props["securityProfile"] = {"securityType": vm.security_type}
        body = {
            "name": vm.os_disk_name,
            "id": vm.os_disk_id,
            "type": "Microsoft.Compute/disks",
            "location": vm.location,
            "managedBy": vm.id,
            "sku": {"name": "Premium_LRS", "tier": "Premium"},
            "properties": props,
        }
        return 200, body, {}

    def disk_exists(self, disk_id: str) -> dict[str, Any] | None:
        """The managed disk with this ID (a created one, a VM's OS disk or one of its data disks), or None."""
        m = re.match(rf"^{_COMPUTE}/disks/(?P<name>[^/]+)$", disk_id.strip(), re.I)
        if m is None:
            return None
        status, body, _ = self._on_disk(m, {})
        if status == 200:
            return body
        for vm in self.vms.values():
            for lun, size in enumerate(vm.data_disk_sizes_gb):
                if vm.data_disk_id(lun).lower() == m[0].lower():
                    return {"id": vm.data_disk_id(lun), "managedBy": vm.id, "properties": {"diskSizeGB": size}}
        return None

    def _on_gallery_image(self, m: re.Match[str], query: dict[str, str]) -> tuple[int, dict[str, Any], dict[str, str]]:
        image = self.gallery_images.get((m["sub"].lower(), m["rg"].lower(), m["gallery"].lower(), m["image"].lower()))
        if image is None:
            return self._not_found("Microsoft.Compute/galleries/images", f"{m['gallery']}/{m['image']}", m["rg"])
        defaults = {"recommended": {"vCPUs": {"min": 1, "max": 16}, "memory": {"min": 1, "max": 32}}}
        props: dict[str, Any] = {
            **(defaults if image.extra is None else image.extra),
            "osType": image.os_type,
            "osState": image.os_state,
            "identifier": {"publisher": image.publisher, "offer": image.offer, "sku": image.sku},
            "provisioningState": "Succeeded",
        }
        if image.hyper_v_generation:
            props["hyperVGeneration"] = image.hyper_v_generation
        if image.architecture:
            props["architecture"] = image.architecture
        if image.security_type:
            props["features"] = [{"name": "SecurityType", "value": image.security_type}]
        body: dict[str, Any] = {
            "name": image.name,
            "id": image.id,
            "type": "Microsoft.Compute/galleries/images",
            "location": image.location,
            "properties": props,
        }
        if image.tags:
            body["tags"] = image.tags
        return 200, body, {}

    def _on_image_version(self, m: re.Match[str], query: dict[str, str]) -> tuple[int, dict[str, Any], dict[str, str]]:
        key = (m["sub"].lower(), m["rg"].lower(), m["gallery"].lower(), m["image"].lower(), m["version"].lower())
        version = self.image_versions.get(key)
        if version is not None and version.absent_reads > 0:
            version.absent_reads -= 1
            version = None
        if version is None:
            return self._not_found(
                "Microsoft.Compute/galleries/images/versions", f"{m['gallery']}/{m['image']}/{m['version']}", m["rg"]
            )
        replication = None
        if query.get("$expand", "").lower() == "replicationstatus":
            replication = version.replication_status()
            version.replication_reads += 1
            settled = {"Completed": "Succeeded", "Failed": "Failed"}.get(replication["aggregatedState"])
            if version.replication and version.provisioning_state == "Creating" and settled:
                version.provisioning_state = settled
        source: dict[str, Any] = {}
        if version.source_vm_id:
            source = (
                {"id": version.source_vm_id} if version.legacy_source_id else {"virtualMachineId": version.source_vm_id}
            )
        props: dict[str, Any] = {
            "publishingProfile": {
                "targetRegions": [
                    {"name": region, "regionalReplicaCount": 1, "storageAccountType": "Standard_LRS"}
                    for region in version.replication or [version.image.location]
                ],
                "replicaCount": 1,
                "excludeFromLatest": False,
                "publishedDate": "2025-01-01T12:00:00.0000000+00:00",
                "storageAccountType": "Standard_LRS",
            },
            "storageProfile": {
                "source": source,
                "osDiskImage": {"sizeInGB": 30, "hostCaching": "ReadWrite"},
                **(
                    {
                        "dataDiskImages": [
                            {"lun": lun, "sizeInGB": 128, "hostCaching": "None"} for lun in version.data_disk_luns
                        ]
                    }
                    if version.data_disk_luns
                    else {}
                ),
            },
            "provisioningState": version.provisioning_state,
        }
        for name, value in version.extra.items():
            # What the last PUT sent, answered back; the publishing profile keeps the service's own fields.
            props[name] = {**props[name], **value} if name == "publishingProfile" and isinstance(value, dict) else value
        if replication is not None:
            props["replicationStatus"] = replication
        body: dict[str, Any] = {
            "name": version.name,
            "id": version.id,
            "type": "Microsoft.Compute/galleries/images/versions",
            "location": version.location or version.image.location,
            "properties": props,
        }
        if version.tags:
            body["tags"] = version.tags
        return 200, body, {}

    # galleries, image definitions, image versions, role assignments (writes)

    def _gallery(self, m: re.Match[str]) -> FakeGallery | None:
        return self.galleries.get((m["sub"].lower(), m["rg"].lower(), m["gallery"].lower()))

    def _image(self, m: re.Match[str]) -> FakeGalleryImage | None:
        return self.gallery_images.get((m["sub"].lower(), m["rg"].lower(), m["gallery"].lower(), m["image"].lower()))

    @staticmethod
    def _parent_not_found(parent: str) -> tuple[int, dict[str, Any], dict[str, str]]:
        return (
            404,
            _error(
                "ParentResourceNotFound",
                f"Can not perform requested operation on nested resource. Parent resource '{parent}' not found.",
            ),
            {},
        )

    @staticmethod
    def _nested_exist() -> tuple[int, dict[str, Any], dict[str, str]]:
        return 409, _error("CannotDeleteResource", "Can not delete resource before nested resources are deleted."), {}

    @staticmethod
    def _change_not_allowed(prop: str) -> tuple[int, dict[str, Any], dict[str, str]]:
        return 409, _error("PropertyChangeNotAllowed", f"Changing property '{prop}' is not allowed.", prop), {}

    def _gallery_body(self, gallery: FakeGallery) -> dict[str, Any]:
        props: dict[str, Any] = {
            **gallery.extra,
            "identifier": {"uniqueName": f"{gallery.subscription_id}-{gallery.name.upper()}"},
            "provisioningState": "Succeeded",
        }
        if gallery.description is not None:
            props["description"] = gallery.description
        body: dict[str, Any] = {
            "name": gallery.name,
            "id": gallery.id,
            "type": "Microsoft.Compute/galleries",
            "location": gallery.location,
            "properties": props,
        }
        if gallery.tags:
            body["tags"] = gallery.tags
        return body

    def _on_gallery(self, m: re.Match[str], query: dict[str, str]) -> tuple[int, dict[str, Any], dict[str, str]]:
        gallery = self._gallery(m)
        if gallery is None:
            return self._not_found("Microsoft.Compute/galleries", m["gallery"], m["rg"])
        return 200, self._gallery_body(gallery), {}

    def _on_put_gallery(self, m: re.Match[str], query: dict[str, str]) -> tuple[int, dict[str, Any], dict[str, str]]:
        body = self._body
        props = dict(body.get("properties") or {})
        existing = self._gallery(m)
        location = str(body.get("location") or "")
        if not location:
            return 400, _error("LocationRequired", "The location property is required for this definition."), {}
        if existing is not None and existing.location.replace(" ", "").lower() != location.replace(" ", "").lower():
            return (
                400,
                _error(
                    "InvalidResourceLocation",
                    f"The resource '{existing.name}' already exists in location '{existing.location}' in resource "
                    f"group '{existing.resource_group}'. A resource with the same name cannot be created in location "
                    f"'{location}'. Please select a new resource name.",
                ),
                {},
            )
        description = props.pop("description", None)
        props.pop("identifier", None)
        props.pop("provisioningState", None)
        gallery = existing or self.add_gallery(m["gallery"], m["rg"], m["sub"], location=location)
        gallery.description = description
        gallery.tags = dict(body.get("tags") or {})
        gallery.extra = props
        return (200 if existing else 201), self._gallery_body(gallery), {}

    def _on_delete_gallery(
        self, m: re.Match[str], query: dict[str, str]
    ) -> tuple[int, dict[str, Any] | None, dict[str, str]]:
        gallery = self._gallery(m)
        if gallery is None:
            return 204, None, {}
        key = (m["sub"].lower(), m["rg"].lower(), m["gallery"].lower())
        if any(k[:3] == key for k in self.gallery_images):
            return self._nested_exist()
        del self.galleries[key]
        return 200, None, {}

    def _on_put_gallery_image(
        self, m: re.Match[str], query: dict[str, str]
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        if self._gallery(m) is None:
            return self._parent_not_found(m["gallery"])
        body = self._body
        props = dict(body.get("properties") or {})
        identifier = props.get("identifier") or {}
        features = {f.get("name"): f.get("value") for f in props.get("features") or [] if isinstance(f, dict)}
        wanted: dict[str, Any] = {
            "osType": props.get("osType"),
            "osState": props.get("osState"),
            "hyperVGeneration": props.get("hyperVGeneration") or "V1",  # Azure's default
            "architecture": props.get("architecture") or "x64",
            "identifier": (identifier.get("publisher"), identifier.get("offer"), identifier.get("sku")),
        }
        for name in ("osType", "osState"):
            if wanted[name] is None:
                return 400, _error("InvalidParameter", f"Required parameter '{name}' is missing (null).", name), {}
        if None in wanted["identifier"]:
            return (
                400,
                _error("InvalidParameter", "Required parameter 'identifier' is missing (null).", "identifier"),
                {},
            )
        existing = self._image(m)
        if existing is not None:
            current = {
                "osType": existing.os_type,
                "osState": existing.os_state,
                "hyperVGeneration": existing.hyper_v_generation or "V1",
                "architecture": existing.architecture or "x64",
                "identifier": (existing.publisher, existing.offer, existing.sku),
            }
            for name, value in wanted.items():
                same = (
                    value == current[name] if name == "identifier" else str(value).lower() == str(current[name]).lower()
                )
                if not same:
                    return self._change_not_allowed(name)
        else:
            for other in self.gallery_images.values():
                if (other.subscription_id.lower(), other.resource_group.lower(), other.gallery.lower()) == (
                    m["sub"].lower(),
                    m["rg"].lower(),
                    m["gallery"].lower(),
                ) and (other.publisher, other.offer, other.sku) == wanted["identifier"]:
                    return (
                        409,
                        _error(
                            "Conflict",
                            f"Gallery image '{other.name}' already uses the identifier (publisher, offer, sku) "
                            f"{wanted['identifier']} in gallery '{m['gallery']}'.",
                        ),
                        {},
                    )
        extra = {
            k: v
            for k, v in props.items()
            if k not in ("osType", "osState", "hyperVGeneration", "architecture", "identifier", "features")
            and k != "provisioningState"
        }
        image = existing or self.add_gallery_image(
            m["gallery"],
            m["image"],
            m["rg"],
            m["sub"],
            location=str(body.get("location") or "westeurope"),
            os_type=wanted["osType"],
            os_state=wanted["osState"],
            hyper_v_generation=wanted["hyperVGeneration"],
            architecture=wanted["architecture"],
            publisher=wanted["identifier"][0],
            offer=wanted["identifier"][1],
            sku=wanted["identifier"][2],
        )
        image.security_type = features.get("SecurityType")
        image.extra = extra
        image.tags = dict(body.get("tags") or {})
        _, answer, _ = self._on_gallery_image(m, query)
        return (200 if existing else 201), answer, {}

    def _on_delete_gallery_image(
        self, m: re.Match[str], query: dict[str, str]
    ) -> tuple[int, dict[str, Any] | None, dict[str, str]]:
        image = self._image(m)
        if image is None:
            return 204, None, {}
        key = (m["sub"].lower(), m["rg"].lower(), m["gallery"].lower(), m["image"].lower())
        if any(k[:4] == key for k in self.image_versions):
            return self._nested_exist()
        del self.gallery_images[key]
        return 200, None, {}

    def _capture_error(self, image: FakeGalleryImage, source_id: str, target: str) -> _Answer | None:
        """Azure's capture-time rules for a VM source (see azure-image-pipeline.md, section 3)."""
        vm_match = _VM_ID.match(source_id)
        vm = (
            self.vms.get((vm_match["sub"].lower(), vm_match["rg"].lower(), vm_match["name"].lower()))
            if vm_match
            else None
        )
        if vm is None:
            return (
                404,
                _error("NotFound", f"The source virtual machine '{source_id}' was not found.", target),
                {},
            )
        vm_state = "Generalized" if vm.generalized else "Specialized"
        if vm_state.lower() != image.os_state.lower():
            return (
                400,
                _error(
                    "InvalidParameter",
                    f"The source '{source_id}' has different OS state ['{vm_state}'] than the parent gallery image "
                    f"OS state ['{image.os_state}'].",
                    target,
                ),
                {},
            )
        if image.os_state.lower() == "generalized" and vm.power_state != "deallocated":
            return (
                409,
                _error(
                    "OperationNotAllowed",
                    f"Operation 'Create Gallery Image Version' is not allowed on VM '{vm.name}' since the VM is "
                    f"{vm.power_state}. Please deallocate the VM and retry the operation.",
                    target,
                ),
                {},
            )
        if vm.os_type.lower() != image.os_type.lower():
            return (
                400,
                _error(
                    "InvalidParameter",
                    f"The source '{source_id}' has different OS type ['{vm.os_type}'] than the parent gallery image "
                    f"OS type ['{image.os_type}'].",
                    target,
                ),
                {},
            )
        vm_generation, image_generation = vm.hyper_v_generation or "V1", image.hyper_v_generation or "V1"
        if vm_generation.lower() != image_generation.lower():
            return (
                400,
                _error(
                    "InvalidParameter",
                    f"The source '{source_id}' has different Hypervisor generation ['{vm_generation}'] than the "
                    f"parent gallery image ['{image_generation}'].",
                    target,
                ),
                {},
            )
        return None

    def _copy_error(self, image: FakeGalleryImage, source_id: str, target: str, location: str) -> _Answer | None:
        """Azure's rules for a version created from another image version (`storageProfile.source.id`): the source
        exists and has succeeded, its definition matches the target's, and its replica in the target's region has
        completed. (The error texts follow the capture errors' style; they are not recorded traffic.)"""
        m = _VERSION.match(source_id)
        assert m is not None
        key = (m["sub"].lower(), m["rg"].lower(), m["gallery"].lower(), m["image"].lower(), m["version"].lower())
        source = self.image_versions.get(key)
        if source is None or source.absent_reads > 0:
            return (
                404,
                _error("NotFound", f"The source gallery image version '{source_id}' was not found.", target),
                {},
            )
        if source.provisioning_state != "Succeeded":
            return (
                409,
                _error(
                    "OperationNotAllowed",
                    f"The source gallery image version '{source_id}' is in provisioning state "
                    f"'{source.provisioning_state}'; only a succeeded version can be the source of another.",
                    target,
                ),
                {},
            )
        theirs, ours = source.image, image
        for label, a, b in (
            ("OS type", theirs.os_type, ours.os_type),
            ("OS state", theirs.os_state, ours.os_state),
            ("Hypervisor generation", theirs.hyper_v_generation or "V1", ours.hyper_v_generation or "V1"),
            ("architecture", theirs.architecture or "x64", ours.architecture or "x64"),
            ("security type", theirs.security_type or "Standard", ours.security_type or "Standard"),
        ):
            if a.lower() != b.lower():
                return (
                    400,
                    _error(
                        "InvalidParameter",
                        f"The source '{source_id}' has different {label} ['{a}'] than the parent gallery image "
                        f"['{b}'].",
                        target,
                    ),
                    {},
                )
        wanted = location.replace(" ", "").lower()
        replicas = {
            str(entry["region"]).replace(" ", "").lower(): entry["state"]
            for entry in source.replication_status()["summary"]
        }
        if replicas.get(wanted) != "Completed":
            state = replicas.get(wanted, "not replicated")
            return (
                409,
                _error(
                    "OperationNotAllowed",
                    f"The source gallery image version '{source_id}' has no completed replica in region '{location}' "
                    f"(replication state: {state}). Wait for the replication to complete, or replicate the source to "
                    "this region.",
                    target,
                ),
                {},
            )
        return None

    def _on_put_image_version(
        self, m: re.Match[str], query: dict[str, str]
    ) -> tuple[int, dict[str, Any] | None, dict[str, str]]:
        image = self._image(m)
        if image is None:
            return self._parent_not_found(f"{m['gallery']}/{m['image']}")
        if not re.fullmatch(r"\d+\.\d+\.\d+", m["version"]):
            return (
                400,
                _error(
                    "InvalidParameter",
                    f"The gallery image version name '{m['version']}' is invalid. It must be of the form "
                    "Major(int32).Minor(int32).Patch(int32).",
                    "galleryImageVersionName",
                ),
                {},
            )
        body = self._body
        props = dict(body.get("properties") or {})
        source = (props.get("storageProfile") or {}).get("source") or {}
        field_name = "virtualMachineId" if "virtualMachineId" in source else "id"
        source_id = str(source.get(field_name) or "")
        target = f"galleryImageVersion.properties.storageProfile.source.{field_name}"
        key = (m["sub"].lower(), m["rg"].lower(), m["gallery"].lower(), m["image"].lower(), m["version"].lower())
        existing = self.image_versions.get(key)
        if existing is not None:
            if (existing.source_vm_id or "").lower() != source_id.lower():
                return self._change_not_allowed(f"storageProfile.source.{field_name}")
        else:
            if not source_id:
                return (
                    400,
                    _error("InvalidParameter", "Required parameter 'storageProfile.source' is missing (null).", target),
                    {},
                )
            location = str(body.get("location") or image.location)
            if _VERSION.match(source_id):
                target_id = f"/subscriptions/{m['sub']}/resourceGroups/{m['rg']}/providers/Microsoft.Compute"
                target_id += f"/galleries/{m['gallery']}/images/{m['image']}/versions/{m['version']}"
                error = self._linked_authorization(target_id, source_id) or self._copy_error(
                    image, source_id, target, location
                )
            else:
                error = self._capture_error(image, source_id, target)
            if error is not None:
                return error
        extra = {
            k: v for k, v in props.items() if k not in ("storageProfile", "provisioningState", "replicationStatus")
        }
        # A version's source is answered back where it was sent: `id` for an image version (or a legacy VM id).
        version = existing or self.add_image_version(
            image, m["version"], source_vm_id=source_id, legacy_source_id=field_name == "id"
        )
        version.location = str(body.get("location") or image.location)
        version.tags = dict(body.get("tags") or {})
        version.extra = extra
        source_vm = next((v for v in self.vms.values() if v.id.lower() == source_id.lower()), None)
        if source_vm is not None and existing is None:  # Azure captures every data disk of the VM, by LUN
            version.data_disk_luns = list(range(len(source_vm.data_disk_sizes_gb)))
        version.provisioning_state = "Creating" if existing is None else "Updating"

        def settle(ok: bool) -> None:
            version.provisioning_state = "Succeeded" if ok else "Failed"

        headers = self._start_operation(m["sub"], version.location, query, settle)
        _, answer, _ = self._on_image_version(m, {})
        return (200 if existing else 201), answer, headers

    def _on_delete_image_version(
        self, m: re.Match[str], query: dict[str, str]
    ) -> tuple[int, dict[str, Any] | None, dict[str, str]]:
        key = (m["sub"].lower(), m["rg"].lower(), m["gallery"].lower(), m["image"].lower(), m["version"].lower())
        version = self.image_versions.get(key)
        if version is None:
            return 204, None, {}
        blocked_until = self._deletion_blocked_until(version)
        if blocked_until is not None:
            # The exact code and text Azure answers are not in any public source found (azure-cli #30820/#32375
            # and PR #31013, azure-docs, azure-rest-api-specs examples have no refused DELETE). 409
            # OperationNotAllowed is what Compute answers for an operation the resource's state forbids (a running
            # VM's generalize, an attached disk's delete, "Operation 'Image Delete' is not allowed since …" in
            # coreos/fedora-coreos-tracker#1444); the message names the version, its end of life and the property.
            return (
                409,
                _error(
                    "OperationNotAllowed",
                    f"Gallery image version '{m['gallery']}/{m['image']}/{m['version']}' cannot be deleted before "
                    f"its end of life date '{blocked_until}', because its safetyProfile.blockDeletionBeforeEndOfLife "
                    "is true.",
                ),
                {},
            )
        version.provisioning_state = "Deleting"

        def remove(ok: bool) -> None:
            if ok:
                self.image_versions.pop(key, None)
            else:
                version.provisioning_state = "Failed"

        headers = self._start_operation(m["sub"], version.location or version.image.location, query, remove)
        return 202, None, headers

    @staticmethod
    def _deletion_blocked_until(version: FakeImageVersion) -> str | None:
        """The end-of-life date before which Azure refuses to delete the version (safetyProfile
        blockDeletionBeforeEndOfLife true, publishingProfile endOfLifeDate in the future), as last PUT; else None."""
        safety = version.extra.get("safetyProfile")
        publishing = version.extra.get("publishingProfile")
        if not isinstance(safety, dict) or safety.get("blockDeletionBeforeEndOfLife") is not True:
            return None
        eol = publishing.get("endOfLifeDate") if isinstance(publishing, dict) else None
        if not eol:
            return None
        when = datetime.fromisoformat(str(eol).replace("Z", "+00:00"))
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return str(eol) if when > datetime.now(UTC) else None

    def _start_operation(
        self, subscription_id: str, location: str, query: dict[str, str], on_finish: Callable[[bool], None]
    ) -> dict[str, str]:
        """An LRO on a gallery resource, polled at `capsOperations` like the recorded gallery traffic."""
        return self._new_operation(
            subscription_id, location, query, on_finish, "gallery", "Microsoft.Compute", "capsOperations"
        )

    def _on_delete_vm(self, m: re.Match[str], query: dict[str, str]) -> tuple[int, None, dict[str, str]]:
        vm = self._vm(m)
        if vm is None:
            return 204, None, {}
        if vm.created is None:
            self.remove_vm(m["name"], m["rg"], m["sub"])
            return 200, None, {}

        # A created VM: 202 and an operation (as recorded), then its disks and NIC marked deleteOption Delete go too.
        def remove(ok: bool) -> None:
            if ok:
                self.remove_vm(m["name"], m["rg"], m["sub"])
                self._delete_attached(vm)

        return 202, None, self._start_vm_operation(m["sub"], vm.location, query, remove)

    # test boots (hooks/version_boot.py): VMs created from an image version, their NICs and disks, the subnet

    def add_vnet(
        self,
        name: str = "vnet-test",
        resource_group: str = "rg-network",
        subscription_id: str = DEFAULT_SUBSCRIPTION,
        location: str = "westeurope",
        subnets: tuple[str, ...] = ("default",),
    ) -> str:
        """Add a virtual network with subnets; returns the ID of its first subnet."""
        vnet_id = (
            f"/subscriptions/{subscription_id}/resourceGroups/{resource_group}"
            f"/providers/Microsoft.Network/virtualNetworks/{name}"
        )
        with self._lock:
            self.vnets[vnet_id.lower()] = (location, list(subnets))
            self.subscriptions.setdefault(subscription_id.lower(), self.tenant_id)
        return f"{vnet_id}/subnets/{subnets[0]}"

    def add_disk(
        self,
        name: str,
        resource_group: str,
        subscription_id: str = DEFAULT_SUBSCRIPTION,
        location: str = "westeurope",
        tags: dict[str, str] | None = None,
        managed_by: str | None = None,
    ) -> dict[str, Any]:
        """Add a managed disk (e.g. a leftover of an interrupted test boot)."""
        disk: dict[str, Any] = {
            "name": name,
            "id": f"/subscriptions/{subscription_id}/resourceGroups/{resource_group}/providers/Microsoft.Compute"
            f"/disks/{name}",
            "type": "Microsoft.Compute/disks",
            "location": location,
            "tags": dict(tags or {}),
            "sku": {"name": "StandardSSD_LRS", "tier": "Standard"},
            "properties": {
                "diskSizeGB": 30,
                "provisioningState": "Succeeded",
                "diskState": "Attached" if managed_by else "Unattached",
                "timeCreated": _now(),
            },
        }
        if managed_by:
            disk["managedBy"] = managed_by
        with self._lock:
            self.disks[(subscription_id.lower(), resource_group.lower(), name.lower())] = disk
        return disk

    def add_nic(
        self,
        name: str,
        resource_group: str,
        subnet_id: str,
        subscription_id: str = DEFAULT_SUBSCRIPTION,
        location: str = "westeurope",
        tags: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Add a NIC (e.g. a leftover of an interrupted test boot)."""
        nic_id = (
            f"/subscriptions/{subscription_id}/resourceGroups/{resource_group}"
            f"/providers/Microsoft.Network/networkInterfaces/{name}"
        )
        nic = self._nic_body(nic_id, name, location, dict(tags or {}), [{"name": "ipconfig1"}], subnet_id)
        with self._lock:
            self.nics[(subscription_id.lower(), resource_group.lower(), name.lower())] = nic
        return nic

    def created_vms(self) -> list[FakeVm]:
        """VMs created by PUT (test boots) that still exist."""
        return [vm for vm in list(self.vms.values()) if vm.created is not None]

    @staticmethod
    def _nic_body(
        nic_id: str, name: str, location: str, tags: dict[str, str], configs: list[dict[str, Any]], subnet_id: str
    ) -> dict[str, Any]:
        return {
            "name": name,
            "id": nic_id,
            "type": "Microsoft.Network/networkInterfaces",
            "location": location,
            "tags": tags,
            "etag": f'W/"{uuid.uuid4()}"',
            "properties": {
                "provisioningState": "Succeeded",
                "resourceGuid": str(uuid.uuid4()),
                "ipConfigurations": [
                    {
                        "name": str(c.get("name") or "ipconfig1"),
                        "id": f"{nic_id}/ipConfigurations/{c.get('name') or 'ipconfig1'}",
                        "type": "Microsoft.Network/networkInterfaces/ipConfigurations",
                        "properties": {
                            "provisioningState": "Succeeded",
                            "privateIPAddress": f"10.0.0.{4 + i}",
                            "privateIPAllocationMethod": "Dynamic",
                            "subnet": {"id": subnet_id},
                            "primary": i == 0,
                            "privateIPAddressVersion": "IPv4",
                            **(
                                {"publicIPAddress": (c.get("properties") or {})["publicIPAddress"]}
                                if "publicIPAddress" in (c.get("properties") or {})
                                else {}
                            ),
                        },
                    }
                    for i, c in enumerate(configs)
                ],
                "enableAcceleratedNetworking": False,
                "nicType": "Standard",
            },
        }

    def _subnet_location(self, subnet_id: str) -> str | None:
        """The location of the subnet's virtual network; None if the subnet does not exist."""
        vnet_id, _, subnet = subnet_id.rstrip("/").rpartition("/subnets/")
        found = self.vnets.get(vnet_id.lower())
        if found is None or subnet.lower() not in [s.lower() for s in found[1]]:
            return None
        return found[0]

    def _on_vnet(self, m: re.Match[str], query: dict[str, str]) -> _Answer:
        found = self.vnets.get(m[0].lower())
        if found is None:
            return self._not_found("Microsoft.Network/virtualNetworks", m["vnet"], m["rg"])
        location, subnets = found
        body = {
            "name": m["vnet"],
            "id": m[0],
            "type": "Microsoft.Network/virtualNetworks",
            "location": location,
            "properties": {
                "provisioningState": "Succeeded",
                "addressSpace": {"addressPrefixes": ["10.0.0.0/16"]},
                "subnets": [
                    {
                        "name": name,
                        "id": f"{m[0]}/subnets/{name}",
                        "properties": {"addressPrefix": f"10.0.{i}.0/24", "provisioningState": "Succeeded"},
                    }
                    for i, name in enumerate(subnets)
                ],
            },
        }
        return 200, body, {}

    def _on_subnet(self, m: re.Match[str], query: dict[str, str]) -> _Answer:
        vnet_id = m[0].rpartition("/subnets/")[0]
        if vnet_id.lower() not in self.vnets:
            return self._not_found("Microsoft.Network/virtualNetworks", m["vnet"], m["rg"])
        if self._subnet_location(m[0]) is None:
            return 404, {"error": {"code": "NotFound", "message": f"Resource {m[0]} not found.", "details": []}}, {}
        body = {
            "name": m["subnet"],
            "id": m[0],
            "type": "Microsoft.Network/virtualNetworks/subnets",
            "etag": f'W/"{uuid.uuid4()}"',
            "properties": {"addressPrefix": "10.0.0.0/24", "provisioningState": "Succeeded"},
        }
        return 200, body, {}

    def _group_items(self, table: dict[tuple[str, str, str], Any], m: re.Match[str]) -> list[Any]:
        return [v for (sub, rg, _), v in list(table.items()) if (sub, rg) == (m["sub"].lower(), m["rg"].lower())]

    def _on_nic_list(self, m: re.Match[str], query: dict[str, str]) -> _Answer:
        return 200, {"value": self._group_items(self.nics, m)}, {}

    def _on_disk_list(self, m: re.Match[str], query: dict[str, str]) -> _Answer:
        return 200, {"value": self._group_items(self.disks, m)}, {}

    def _on_vm_list(self, m: re.Match[str], query: dict[str, str]) -> _Answer:
        vms = [
            vm
            for vm in self.vms.values()
            if (vm.subscription_id.lower(), vm.resource_group.lower()) == (m["sub"].lower(), m["rg"].lower())
        ]
        return (
            200,
            {"value": [self._created_vm_model(vm, False) if vm.created else self._vm_model(vm, False) for vm in vms]},
            {},
        )

    def _on_nic(self, m: re.Match[str], query: dict[str, str]) -> _Answer:
        nic = self.nics.get((m["sub"].lower(), m["rg"].lower(), m["name"].lower()))
        if nic is None:
            return self._not_found("Microsoft.Network/networkInterfaces", m["name"], m["rg"])
        return 200, nic, {}

    def _on_put_nic(self, m: re.Match[str], query: dict[str, str]) -> _Answer:
        body = self._body
        location = str(body.get("location") or "")
        configs = (body.get("properties") or {}).get("ipConfigurations") or []
        if not location or not configs:
            return (
                400,
                _error("InvalidRequestFormat", "Cannot parse the request: location and ipConfigurations are required."),
                {},
            )
        subnet_id = str((((configs[0].get("properties") or {}).get("subnet")) or {}).get("id") or "")
        vnet_location = self._subnet_location(subnet_id) if subnet_id else None
        if vnet_location is None or vnet_location.replace(" ", "").lower() != location.replace(" ", "").lower():
            return (
                400,
                _error(
                    "InvalidResourceReference",
                    f"Resource {subnet_id} referenced by resource {m[0]} was not found. Please make sure that the "
                    "referenced resource exists, and that both resources are in the same region.",
                ),
                {},
            )
        nic = self._nic_body(m[0], m["name"], location, dict(body.get("tags") or {}), configs, subnet_id)
        self.nics[(m["sub"].lower(), m["rg"].lower(), m["name"].lower())] = nic
        return 201, nic, self._start_vm_operation(m["sub"], location, query, None, "Microsoft.Network")

    def _on_delete_nic(self, m: re.Match[str], query: dict[str, str]) -> _Answer:
        key = (m["sub"].lower(), m["rg"].lower(), m["name"].lower())
        nic = self.nics.get(key)
        if nic is None:
            return 204, None, {}
        user = (nic["properties"].get("virtualMachine") or {}).get("id")
        if user:
            return (
                400,
                _error(
                    "NicInUse",
                    f"Network Interface {m[0]} is used by existing resource {user}. In order to delete the network "
                    "interface, it must be dissociated from the resource. To learn more, see aka.ms/deletenic.",
                ),
                {},
            )

        def remove(ok: bool) -> None:
            if ok:
                self.nics.pop(key, None)

        return 202, None, self._start_vm_operation(m["sub"], nic["location"], query, remove, "Microsoft.Network")

    def _on_delete_disk(self, m: re.Match[str], query: dict[str, str]) -> _Answer:
        key = (m["sub"].lower(), m["rg"].lower(), m["name"].lower())
        disk = self.disks.get(key)
        if disk is None:
            return 204, None, {}
        owner = disk.get("managedBy")
        if owner and any(vm.id.lower() == str(owner).lower() for vm in self.vms.values()):
            return (
                409,
                _error("OperationNotAllowed", f"Disk {m['name']} is attached to VM {owner}."),
                {},
            )

        def remove(ok: bool) -> None:
            if ok:
                self.disks.pop(key, None)

        return 202, None, self._start_vm_operation(m["sub"], disk["location"], query, remove)

    def _find_version(self, version_id: str) -> FakeImageVersion | None:
        return next((v for v in self.image_versions.values() if v.id.lower() == version_id.strip().lower()), None)

    @staticmethod
    def _version_regions(version: FakeImageVersion) -> set[str]:
        regions = {(version.location or version.image.location)}
        for region in (version.extra.get("publishingProfile") or {}).get("targetRegions") or []:
            regions.add(str(region.get("name") or ""))
        regions |= set(version.replication)
        return {r.replace(" ", "").lower() for r in regions}

    def _on_put_vm(self, m: re.Match[str], query: dict[str, str]) -> _Answer:
        existing = self._vm(m)
        if existing is not None:
            return (
                200,
                self._created_vm_model(existing, False) if existing.created else self._vm_model(existing, False),
                {},
            )
        body = self._body
        props = dict(body.get("properties") or {})
        location = str(body.get("location") or "")
        storage = props.get("storageProfile") or {}
        image_id = str((storage.get("imageReference") or {}).get("id") or "")
        version = self._find_version(image_id)
        if version is None or location.replace(" ", "").lower() not in self._version_regions(version):
            return (
                404,
                _error(
                    "GalleryImageNotFound",
                    f"The gallery image {image_id} is not available in {location} region. Please contact image owner "
                    "to replicate to this region, or change your requested region.",
                    "imageReference",
                ),
                {},
            )
        os_profile = props.get("osProfile")
        if version.image.os_state == "Generalized" and not (os_profile or {}).get("adminPassword"):
            return (
                400,
                _error("InvalidParameter", "Required parameter 'adminPassword' is missing (null).", "adminPassword"),
                {},
            )
        if version.image.os_state == "Specialized" and os_profile:
            return 400, _error("InvalidParameter", "Parameter 'osProfile' is not allowed.", "osProfile"), {}
        nic_refs = (props.get("networkProfile") or {}).get("networkInterfaces") or []
        for ref in nic_refs:
            nic_m = _NIC.match(str(ref.get("id") or ""))
            if nic_m is None or (nic_m["sub"].lower(), nic_m["rg"].lower(), nic_m["name"].lower()) not in self.nics:
                return (
                    400,
                    _error(
                        "InvalidResourceReference",
                        f"Resource {ref.get('id')} referenced by resource {m[0]} was not found.",
                    ),
                    {},
                )
        vm = FakeVm(
            m["sub"],
            m["rg"],
            m["name"],
            location=location,
            os_type=version.image.os_type,
            hyper_v_generation=version.image.hyper_v_generation,
            security_type=(props.get("securityProfile") or {}).get("securityType"),
            vm_size=str((props.get("hardwareProfile") or {}).get("vmSize") or ""),
            power_state="starting",
            provisioning_state="creating",
            tags=dict(body.get("tags") or {}),
            boot=BootScript(**vars(self.boot_script)),
            created=props,
        )
        self.vms[(m["sub"].lower(), m["rg"].lower(), m["name"].lower())] = vm
        # Disks created with the VM carry no tags (Azure does not copy the VM's): only their names tie them to it.
        os_disk = storage.get("osDisk") or {}
        named = {int(d["lun"]): str(d.get("name") or "") for d in storage.get("dataDisks") or [] if "lun" in d}
        disk_names = [str(os_disk.get("name") or vm.os_disk_name)]
        disk_names += [
            named.get(lun) or f"{vm.name}_lun_{lun}_{uuid.uuid4().hex[:8]}" for lun in version.data_disk_luns
        ]
        for disk_name in disk_names:
            self.add_disk(disk_name, m["rg"], m["sub"], location, managed_by=vm.id)
        for ref in nic_refs:
            nic_m = _NIC.match(str(ref["id"]))
            assert nic_m is not None
            self.nics[(nic_m["sub"].lower(), nic_m["rg"].lower(), nic_m["name"].lower())]["properties"][
                "virtualMachine"
            ] = {"id": vm.id}
        return 201, self._created_vm_model(vm, False), self._start_vm_operation(m["sub"], location, query, None)

    def _created_vm_model(self, vm: FakeVm, expand_instance_view: bool) -> dict[str, Any]:
        """A VM created by PUT, as ARM answers it: its request back (never the password), with its provisioning
        moved on by one step per read (BootScript)."""
        script = vm.boot or BootScript()
        props: dict[str, Any] = json.loads(json.dumps(vm.created or {}))
        (props.get("osProfile") or {}).pop("adminPassword", None)
        failed = vm.boot_reads >= script.creating_reads and script.fail is not None
        state = "Creating" if vm.boot_reads < script.creating_reads else "Failed" if failed else "Succeeded"
        props.update({"vmId": vm.vm_id, "provisioningState": state, "timeCreated": "2026-01-01T10:00:00.0000000+00:00"})
        if expand_instance_view:
            status: dict[str, Any] = {
                "code": f"ProvisioningState/{state.lower()}" + (f"/{script.fail[0]}" if failed and script.fail else ""),
                "level": "Error" if failed else "Info",
                "displayStatus": {"Creating": "Creating", "Failed": "Provisioning failed"}.get(
                    state, "Provisioning succeeded"
                ),
                "time": _now(),
            }
            if failed and script.fail:
                status["message"] = script.fail[1]
            view: dict[str, Any] = {
                "computerName": (props.get("osProfile") or {}).get("computerName", vm.name),
                "statuses": [status],
            }
            if state == "Succeeded":
                view["statuses"].append({"code": "PowerState/running", "level": "Info", "displayStatus": "VM running"})
                ready = (
                    not script.agent_never_ready
                    and vm.boot_reads - script.creating_reads >= script.agent_ready_after_reads
                )
                view["vmAgent"] = (
                    {
                        "vmAgentVersion": "2.13.1.1",
                        "statuses": [
                            {
                                "code": "ProvisioningState/succeeded",
                                "level": "Info",
                                "displayStatus": "Ready",
                                "message": "GuestAgent is running and processing the extensions.",
                                "time": _now(),
                            }
                        ],
                    }
                    if ready
                    else {
                        "vmAgentVersion": "Unknown",
                        "statuses": [
                            {
                                "code": "ProvisioningState/Unavailable",
                                "level": "Warning",
                                "displayStatus": "Not Ready",
                                "message": "VM status blob is found but not yet populated.",
                                "time": _now(),
                            }
                        ],
                    }
                )
            props["instanceView"] = view
            vm.boot_reads += 1
        return {
            "name": vm.name,
            "id": vm.id,
            "type": "Microsoft.Compute/virtualMachines",
            "location": vm.location,
            "tags": vm.tags,
            "properties": props,
        }

    def _delete_attached(self, vm: FakeVm) -> None:
        """What goes with a deleted VM: its disks and NICs marked deleteOption Delete; the others are detached."""
        storage = (vm.created or {}).get("storageProfile") or {}
        keep_disks = {
            str(d.get("name") or "").lower()
            for d in [storage.get("osDisk") or {}, *(storage.get("dataDisks") or [])]
            if d.get("deleteOption", "Detach") != "Delete" and d.get("name")
        }
        for key, disk in list(self.disks.items()):
            if str(disk.get("managedBy") or "").lower() == vm.id.lower():
                if key[2] in keep_disks:
                    disk.pop("managedBy", None)
                else:
                    self.disks.pop(key, None)
        for ref in ((vm.created or {}).get("networkProfile") or {}).get("networkInterfaces") or []:
            nic_m = _NIC.match(str(ref.get("id") or ""))
            if nic_m is None:
                continue
            key = (nic_m["sub"].lower(), nic_m["rg"].lower(), nic_m["name"].lower())
            if (ref.get("properties") or {}).get("deleteOption") == "Delete":
                self.nics.pop(key, None)
            elif key in self.nics:
                self.nics[key]["properties"].pop("virtualMachine", None)

    def _start_vm_operation(
        self,
        subscription_id: str,
        location: str,
        query: dict[str, str],
        on_finish: Callable[[bool], None] | None,
        provider: str = "Microsoft.Compute",
    ) -> dict[str, str]:
        """An LRO polled at `<provider>/locations/<loc>/operations/<id>` (VM and disk operations, Network's)."""
        return self._new_operation(subscription_id, location, query, on_finish, "resource", provider, "operations")

    def _new_operation(
        self,
        subscription_id: str,
        location: str,
        query: dict[str, str],
        on_finish: Callable[[bool], None] | None,
        action: str,
        provider: str,
        collection: str,
    ) -> dict[str, str]:
        """Start an LRO (failing or hanging when `fail_next_lro` or `hang_next_lro` said so); its polling headers."""
        script = self._lro_script.pop("next", None)
        op = FakeOperation(
            id=str(uuid.uuid4()),
            vm=None,
            action=action,
            final_state="",
            previous_state="",
            in_progress_polls=-1 if script == -1 else self.lro_polls,
            fail=script if isinstance(script, tuple) else None,
            on_finish=on_finish,
        )
        self.operations[op.id] = op
        base = (
            f"{self.endpoint}/subscriptions/{subscription_id}/providers/{provider}"
            f"/locations/{location.replace(' ', '').lower()}/{collection}/{op.id}"
        )
        api = query.get("api-version", "")
        return {
            "Azure-AsyncOperation": f"{base}?api-version={api}",
            "Location": f"{base}?monitor=true&api-version={api}",
        }

    # role assignments

    def _scope_exists(self, scope: str) -> bool:
        scope = scope.rstrip("/").lower()
        known = [g.id for g in self.galleries.values()]
        known += [i.id for i in self.gallery_images.values()]
        known += [v.id for v in self.image_versions.values()]
        known += [vm.id for vm in self.vms.values()]
        groups = {rid.lower().split("/providers/")[0] for rid in known}
        subscriptions = {f"/subscriptions/{sub}" for sub in self.subscriptions}
        return scope in {rid.lower() for rid in known} | groups | subscriptions

    def _role_assignment_body(self, ra: FakeRoleAssignment) -> dict[str, Any]:
        props: dict[str, Any] = {
            "roleDefinitionId": ra.role_definition_id,
            "principalId": ra.principal_id,
            "principalType": ra.principal_type or "User",
            "scope": ra.scope,
            "condition": None,
            "conditionVersion": None,
            "createdOn": ra.created_on,
            "updatedOn": ra.created_on,
            "createdBy": str(uuid.UUID(int=7)),
            "updatedBy": str(uuid.UUID(int=7)),
            "delegatedManagedIdentityResourceId": None,
            "description": ra.description,
        }
        return {"properties": props, "id": ra.id, "type": "Microsoft.Authorization/roleAssignments", "name": ra.name}

    def _on_role_assignment(
        self, m: re.Match[str], query: dict[str, str]
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        ra = self.role_assignments.get((m["scope"].lower(), m["name"].lower()))
        if ra is None:
            return 404, _error("RoleAssignmentNotFound", f"The role assignment '{m['name']}' is not found."), {}
        return 200, self._role_assignment_body(ra), {}

    def _on_put_role_assignment(
        self, m: re.Match[str], query: dict[str, str]
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        if not _GUID.match(m["name"]):
            return (
                400,
                _error(
                    "InvalidRoleAssignmentId",
                    f"The role assignment ID '{m['name']}' is not valid. The role assignment ID must be a GUID.",
                ),
                {},
            )
        scope = m["scope"]
        if not self._scope_exists(scope):
            return (
                404,
                _error(
                    "ResourceNotFound",
                    f"The Resource '{scope.rsplit('/providers/', 1)[-1]}' was not found (scope '{scope}'). For more "
                    "details please go to https://aka.ms/ARMResourceNotFoundFix",
                ),
                {},
            )
        props = self._body.get("properties") or {}
        role, principal = str(props.get("roleDefinitionId") or ""), str(props.get("principalId") or "")
        if not re.fullmatch(
            r"(/subscriptions/[^/]+)?/providers/Microsoft\.Authorization/roleDefinitions/[^/]+", role, re.I
        ):
            return 400, _error("InvalidRoleDefinitionId", f"The role definition ID '{role}' is not valid."), {}
        if not _GUID.match(principal):
            return 400, _error("InvalidPrincipalId", "A valid principal ID must be provided for role assignment."), {}
        key = (scope.lower(), m["name"].lower())
        existing = self.role_assignments.get(key)
        if existing is not None:
            if (
                existing.principal_id.lower() != principal.lower()
                or existing.role_definition_id.lower() != role.lower()
            ):
                return (
                    409,
                    _error(
                        "RoleAssignmentUpdateNotPermitted",
                        "Tenant ID, application ID, principal ID, and scope are not allowed to be updated.",
                    ),
                    {},
                )
        else:
            twin = self._same_assignment(scope, principal, role)
            if twin is not None:
                # A role assignment is unique by (scope, principal, role): a second one under another name is
                # refused with 409 RoleAssignmentExists (Microsoft Learn, "Create Azure RBAC resources by using
                # Bicep", azure-resource-manager/bicep/scenarios-rbac: the name should derive from those three, as
                # Azure allows one assignment of a role to a principal at a scope). The message names the existing
                # assignment by its name without dashes, as ARM's does.
                return (
                    409,
                    _error(
                        "RoleAssignmentExists",
                        "The role assignment already exists. The ID of the existing role assignment is "
                        f"{twin.name.replace('-', '')}.",
                    ),
                    {},
                )
        ra = existing or FakeRoleAssignment(scope, m["name"], role, principal)
        ra.principal_type = props.get("principalType")
        ra.description = props.get("description")
        self.role_assignments[key] = ra
        return (200 if existing else 201), self._role_assignment_body(ra), {}

    def _same_assignment(self, scope: str, principal: str, role: str) -> FakeRoleAssignment | None:
        """The assignment of `role` to `principal` at exactly `scope` (whatever its name), if there is one."""
        return next(
            (
                ra
                for (s, _), ra in self.role_assignments.items()
                if s == scope.lower()
                and ra.principal_id.lower() == principal.lower()
                and ra.role_definition_id.rsplit("/", 1)[-1].lower() == role.rsplit("/", 1)[-1].lower()
            ),
            None,
        )

    def _on_delete_role_assignment(
        self, m: re.Match[str], query: dict[str, str]
    ) -> tuple[int, dict[str, Any] | None, dict[str, str]]:
        ra = self.role_assignments.pop((m["scope"].lower(), m["name"].lower()), None)
        if ra is None:
            return 204, None, {}
        return 200, self._role_assignment_body(ra), {}

    # long-running operations

    def _on_vm_action(
        self, m: re.Match[str], query: dict[str, str]
    ) -> tuple[int, dict[str, Any] | None, dict[str, str]]:
        vm = self._vm(m)
        if vm is None:
            return self._not_found("Microsoft.Compute/virtualMachines", m["name"], m["rg"])
        action = m["action"].lower()
        if action == "generalize":
            if vm.power_state not in ("stopped", "deallocated"):
                return (
                    409,
                    _error(
                        "OperationNotAllowed",
                        f"Operation 'generalize' is not allowed on VM '{vm.name}' since the VM is {vm.power_state}. "
                        "Please stop/deallocate the VM and retry the operation.",
                    ),
                    {},
                )
            vm.generalized = True
            return 200, None, {}
        if action == "start" and vm.generalized:
            return (
                409,
                _error(
                    "OperationNotAllowed",
                    f"Operation 'start' is not allowed on VM '{vm.name}' since the VM is generalized.",
                ),
                {},
            )
        transitions = {
            "deallocate": ("deallocating", "deallocated"),
            "poweroff": ("stopping", "stopped"),
            "start": ("starting", "running"),
        }
        during, final = transitions[action]
        script = self._lro_script.pop("next", None)
        op = FakeOperation(
            id=str(uuid.uuid4()),
            vm=vm,
            action=action,
            final_state=final,
            previous_state=vm.power_state,
            in_progress_polls=-1 if script == -1 else self.lro_polls,
            fail=script if isinstance(script, tuple) else None,
        )
        self.operations[op.id] = op
        vm.power_state = during
        vm.settles_to = None
        api = query.get("api-version", "")
        base = (
            f"{self.endpoint}/subscriptions/{vm.subscription_id}/providers/Microsoft.Compute"
            f"/locations/{vm.location}/operations/{op.id}"
        )
        p = uuid.uuid5(uuid.NAMESPACE_URL, vm.id)
        headers = {
            "Azure-AsyncOperation": f"{base}?p={p}&api-version={api}",
            "Location": f"{base}?p={p}&monitor=true&api-version={api}",
            "x-ms-ratelimit-remaining-resource": (
                "Microsoft.Compute/UpdateVM3Min;239,Microsoft.Compute/UpdateVM30Min;1199"
            ),
        }
        return 202, None, headers

    def _on_operation(
        self, m: re.Match[str], query: dict[str, str]
    ) -> tuple[int, dict[str, Any] | None, dict[str, str]]:
        op = self.operations.get(m["op"].lower())
        if op is None:
            return 404, _error("NotFound", f"The entity '{m['op']}' was not found."), {}
        if query.get("monitor", "").lower() == "true":
            if op.status == "InProgress":
                return (
                    202,
                    None,
                    {
                        "Location": f"{self.endpoint}{m[0]}?p={query.get('p', '')}&monitor=true"
                        f"&api-version={query.get('api-version', '')}"
                    },
                )
            return 200, None, {}
        if op.status == "InProgress":
            op.polls += 1
            if op.in_progress_polls >= 0 and op.polls > op.in_progress_polls:
                self._finish(op)
        doc: dict[str, Any] = {"startTime": op.start_time, "status": op.status, "name": op.id}
        if op.end_time:
            doc["endTime"] = op.end_time
        if op.status == "Failed" and op.fail:
            doc["error"] = {"code": op.fail[0], "message": op.fail[1]}
        return 200, doc, {}

    def _settle_unpolled(self, headers: dict[str, str]) -> None:
        """An operation whose answer was lost (its URL never reached the caller) still ends in Azure: its VM
        settles after `lro_polls` reads of the instance view."""
        url = headers.get("Azure-AsyncOperation") or ""
        op = self.operations.get(urlsplit(url).path.rsplit("/", 1)[-1].lower()) if url else None
        if op is not None and op.vm is not None:
            op.vm.settles_to = op.previous_state if op.fail else op.final_state
            op.vm.settle_after_reads = max(op.in_progress_polls, 0)

    def _finish(self, op: FakeOperation) -> None:
        op.end_time = _now()
        op.status = "Failed" if op.fail else "Succeeded"
        if op.vm is not None:
            op.vm.power_state = op.previous_state if op.fail else op.final_state
        if op.on_finish is not None:
            op.on_finish(not op.fail)


# --- pytest fixtures -----------------------------------------------------------------------------------------


@pytest.fixture
def fake_arm(tmp_path: Path) -> Iterator[FakeArm]:
    """A started fake ARM (and fake az) for one test; stopped afterwards. Its env is NOT applied."""
    fake = FakeArm(tmp_path / "fake-arm").start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def fake_arm_env(fake_arm: FakeArm, monkeypatch: pytest.MonkeyPatch) -> FakeArm:
    """`fake_arm` with its env applied, and other credential sources cleared so only the fake az logs in."""
    for name in (
        "AZURE_CLIENT_ID",
        "AZURE_CLIENT_SECRET",
        "AZURE_TENANT_ID",
        "AZURE_USERNAME",
        "AZURE_FEDERATED_TOKEN_FILE",
        "IDENTITY_ENDPOINT",
        "MSI_ENDPOINT",
    ):
        monkeypatch.delenv(name, raising=False)
    for name, value in fake_arm.env.items():
        monkeypatch.setenv(name, value)
    return fake_arm


def wait_for(condition: Any, timeout: float = 5.0) -> bool:
    """Poll a callable until it returns truthy (for asserting on background effects in tests)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.01)
    return bool(condition())


# --- standalone mode -----------------------------------------------------------------------------------------


def serve(workdir: Path, seed: Path | None = None) -> None:
    """Run a fake until SIGTERM/SIGINT, for tests driving another process (e.g. the Pulumi CLI).

    Writes `workdir/fake-arm.json` ({endpoint, ca_path, bin_dir, token, subscription_id, pid}) once listening, and
    appends every request to `workdir/requests.jsonl`. `seed` is a JSON list of add_vm keyword arguments."""
    import signal

    fake = FakeArm(workdir)
    fake.request_log = workdir / "requests.jsonl"
    for vm in json.loads(seed.read_text()) if seed else []:
        fake.add_vm(**vm)
    fake.start()
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    info = {
        "endpoint": fake.endpoint,
        "ca_path": str(fake.ca_path),
        "bin_dir": str(fake.bin_dir),
        "token": fake.token,
        "subscription_id": fake.subscription_id,
        "pid": os.getpid(),
    }
    partial = workdir / "fake-arm.json.tmp"
    partial.write_text(json.dumps(info, indent=2) + "\n")
    partial.replace(workdir / "fake-arm.json")  # readers never see half a file
    try:
        while not stop.wait(0.2):
            pass
    finally:
        fake.stop()


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(prog="python -m tests.fakes.arm", description="Run the fake ARM endpoint.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve_cmd = commands.add_parser("serve", help="serve until SIGTERM/SIGINT")
    serve_cmd.add_argument("--workdir", type=Path, required=True)
    serve_cmd.add_argument("--seed", type=Path, help="JSON list of add_vm keyword arguments")
    arguments = parser.parse_args()
    serve(arguments.workdir.resolve(), arguments.seed)
