"""A local HTTPS fake of Azure Resource Manager, and a fake Azure CLI that logs in to it.

Shaped on real recorded traffic (azure-sdk-for-python `test_mgmt_compute_vm.test_compute_vm.yaml`, and the
azure-rest-api-specs compute examples): deallocate answers 202 with an empty body and absolute
`Azure-AsyncOperation` / `Location` URLs on the fake itself and no Retry-After; the operation document goes
InProgress → Succeeded; the monitor URL answers 200 empty; generalize answers 200 empty, or 409
OperationNotAllowed while the VM runs. An image version answers `$expand=ReplicationStatus` with
`properties.replicationStatus` (`aggregatedState`, `summary[]` of region/state/details/progress, as in the spec
example GalleryImageVersion_Get_WithReplicationStatus.json), following a per-region script. Any api-version is
accepted.

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
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeAlias
from urllib.parse import parse_qsl, urlsplit

import pytest
import trustme

from hooks.targets import ArmSettings, VmRef

DEFAULT_SUBSCRIPTION = "00000000-0000-0000-0000-00000000aaaa"
DEFAULT_TENANT = "72f988bf-0000-0000-0000-00000000beef"

_COMPUTE = r"/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/Microsoft\.Compute"
_ROUTES: list[tuple[str, str, re.Pattern[str]]] = [
    ("GET", "subscription", re.compile(r"^/subscriptions/(?P<sub>[^/]+)$", re.I)),
    ("GET", "vm", re.compile(rf"^{_COMPUTE}/virtualMachines/(?P<name>[^/]+)$", re.I)),
    ("GET", "instance_view", re.compile(rf"^{_COMPUTE}/virtualMachines/(?P<name>[^/]+)/instanceView$", re.I)),
    (
        "POST",
        "vm_action",
        re.compile(
            rf"^{_COMPUTE}/virtualMachines/(?P<name>[^/]+)/(?P<action>deallocate|powerOff|start|generalize)$", re.I
        ),
    ),
    ("GET", "disk", re.compile(rf"^{_COMPUTE}/disks/(?P<name>[^/]+)$", re.I)),
    ("GET", "gallery_image", re.compile(rf"^{_COMPUTE}/galleries/(?P<gallery>[^/]+)/images/(?P<image>[^/]+)$", re.I)),
    (
        "GET",
        "image_version",
        re.compile(
            rf"^{_COMPUTE}/galleries/(?P<gallery>[^/]+)/images/(?P<image>[^/]+)/versions/(?P<version>[^/]+)$", re.I
        ),
    ),
    (
        "GET",
        "operation",
        re.compile(
            r"^/subscriptions/(?P<sub>[^/]+)/providers/Microsoft\.Compute/locations/(?P<loc>[^/]+)"
            r"/operations/(?P<op>[^/]+)$",
            re.I,
        ),
    ),
]

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

    @property
    def ref(self) -> VmRef:
        return VmRef(self.subscription_id, self.resource_group, self.name)

    @property
    def id(self) -> str:
        return self.ref.id

    @property
    def os_disk_name(self) -> str:
        return f"{self.name}_OsDisk_1_{self.vm_id.replace('-', '')[:32]}"

    @property
    def os_disk_id(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.Compute/disks/{self.os_disk_name}"
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
class FakeOperation:
    """A long-running operation (deallocate, powerOff, start) and its script."""

    id: str
    vm: FakeVm
    action: str
    final_state: str
    previous_state: str
    in_progress_polls: int
    """Polls of the operation URL that still answer InProgress; None-like -1 means forever (a hanging LRO)."""
    fail: tuple[str, str] | None = None
    """(code, message): end Failed with this error."""
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

    def matches(self, method: str, path: str) -> bool:
        if self.times is not None and self.times <= 0:
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


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "0+00:00")


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


@functools.cache
def _authority() -> tuple[trustme.CA, trustme.LeafCert]:
    """One throwaway CA per test process: key generation is the slow part of starting a fake."""
    ca = trustme.CA()
    return ca, ca.issue_cert("127.0.0.1", "localhost")


def _fake_token() -> str:
    """A JWT-shaped token (header.payload.signature), like the ones ARM receives, unique per fake."""

    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    payload = {"aud": "fake-arm", "tid": DEFAULT_TENANT, "nonce": uuid.uuid4().hex}
    return f"{part({'typ': 'JWT', 'alg': 'none'})}.{part(payload)}.{uuid.uuid4().hex}"


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


class FakeArm:
    """A running fake ARM endpoint plus its fake `az`. Start with `start()`, or use the fixtures."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.token = _fake_token()
        """The token the fake az hands out and the server accepts."""
        self.accepted_token: str | None = None
        """The token the server accepts; None: `token`. Set to something else to make every request 401."""
        self.tenant_id = DEFAULT_TENANT
        """The tenant of subscriptions registered without one."""
        self.subscription_id = DEFAULT_SUBSCRIPTION
        """The subscription add_vm and friends use by default."""
        self.lro_polls = 1
        """Default number of InProgress answers of an operation document before it finishes."""
        self.vms: dict[tuple[str, str, str], FakeVm] = {}
        self.gallery_images: dict[tuple[str, str, str, str], FakeGalleryImage] = {}
        self.image_versions: dict[tuple[str, str, str, str, str], FakeImageVersion] = {}
        self.subscriptions: dict[str, str] = {}
        """subscription id → tenant id."""
        self.operations: dict[str, FakeOperation] = {}
        self.faults: list[Fault] = []
        self.requests: list[RecordedRequest] = []
        self.server_errors: list[str] = []
        self._lro_script: dict[str, tuple[str, str] | int] = {}
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._sockets: set[socket.socket] = set()
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

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.add(sock)

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
        state = shlex.quote(str(self.workdir))
        script = f"""#!/bin/sh
# Fake Azure CLI for tests: answers `az account get-access-token`, like a logged-in az, unless logged out.
state={state}
printf '%s\\n' "$*" >> "$state/az-calls.log"
if [ -e "$state/az-logged-out" ]; then
    echo "ERROR: Please run 'az login' to setup account." >&2
    exit 1
fi
if [ "$1" = "account" ] && [ "$2" = "get-access-token" ]; then
    cat "$state/az-token.json"
    exit 0
fi
echo "ERROR: fake az does not implement: $*" >&2
exit 2
"""
        az = self.bin_dir / "az"
        az.write_text(script)
        az.chmod(0o755)

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

    def add_gallery_image(
        self,
        gallery: str = "gal",
        name: str = "img",
        resource_group: str = "rg-gallery",
        subscription_id: str = DEFAULT_SUBSCRIPTION,
        **kw: Any,
    ) -> FakeGalleryImage:
        image = FakeGalleryImage(subscription_id, resource_group, gallery, name, **kw)
        with self._lock:
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

    def hang(
        self, method: str | None = None, path: str | None = None, seconds: float = 30.0, times: int | None = None
    ) -> Fault:
        """Hold matching requests without answering (until `seconds` pass or the fake stops)."""
        return self.add_fault(0, method=method, path=path, times=times, hang=seconds)

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

    # request handling

    def _handle(self, handler: _Handler, method: str) -> None:
        parts = urlsplit(handler.path)
        path = parts.path
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        length = int(handler.headers.get("Content-Length") or 0)
        if length:
            handler.rfile.read(length)
        expected = f"Bearer {self.accepted_token or self.token}"
        authorized = handler.headers.get("Authorization") == expected

        with self._lock:
            fault = next((f for f in self.faults if f.matches(method, path)), None)
            if fault is not None and fault.times is not None:
                fault.times -= 1

        if fault is not None and fault.hang:
            self._record(method, path, query, 0, authorized)
            self._stopping.wait(fault.hang)
            handler.close_connection = True
            return
        if fault is not None:
            status, body, headers = fault.status, self._fault_body(fault, method, path), dict(fault.headers)
        elif "api-version" not in query:
            status, body, headers = (
                400,
                _error("MissingApiVersionParameter", "The api-version query parameter (?api-version=) is required."),
                {},
            )
        elif not authorized:
            status, headers = 401, {"WWW-Authenticate": 'Bearer authorization_uri="https://login.windows.net/"'}
            if handler.headers.get("Authorization"):
                body = _error("InvalidAuthenticationToken", "The access token is invalid.")
            else:
                body = _error("AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing.")
        else:
            status, body, headers = self._route(method, path, query)
        self._record(method, path, query, status, authorized)
        self._send(handler, status, body, headers)

    def _record(self, method: str, path: str, query: dict[str, str], status: int, authorized: bool) -> None:
        with self._lock:
            self.requests.append(RecordedRequest(method, path, query, status, authorized))

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

    def _route(
        self, method: str, path: str, query: dict[str, str]
    ) -> tuple[int, dict[str, Any] | None, dict[str, str]]:
        for route_method, kind, pattern in _ROUTES:
            m = pattern.match(path)
            if m and route_method == method:
                handler: _Route = getattr(self, f"_on_{kind}")
                with self._lock:
                    return handler(m, query)
        for _, _, pattern in _ROUTES:
            if pattern.match(path):
                return (
                    405,
                    _error("MethodNotAllowed", f"The requested resource does not support http method '{method}'."),
                    {},
                )
        return 404, _error("InvalidResourceType", f"The resource type could not be found for path '{path}'."), {}

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
            "diskSizeGB": 30 if vm.os_type == "Linux" else 127,
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
                "dataDisks": [],
                "diskControllerType": "SCSI",
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
        return 200, self._vm_model(vm, expand), {}

    def _on_instance_view(self, m: re.Match[str], query: dict[str, str]) -> tuple[int, dict[str, Any], dict[str, str]]:
        vm = self._vm(m)
        if vm is None:
            return self._not_found("Microsoft.Compute/virtualMachines", m["name"], m["rg"])
        return 200, self._instance_view(vm), {}

    def _on_disk(self, m: re.Match[str], query: dict[str, str]) -> tuple[int, dict[str, Any], dict[str, str]]:
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
            "diskSizeGB": 30,
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

    def _on_gallery_image(self, m: re.Match[str], query: dict[str, str]) -> tuple[int, dict[str, Any], dict[str, str]]:
        image = self.gallery_images.get((m["sub"].lower(), m["rg"].lower(), m["gallery"].lower(), m["image"].lower()))
        if image is None:
            return self._not_found("Microsoft.Compute/galleries/images", f"{m['gallery']}/{m['image']}", m["rg"])
        props: dict[str, Any] = {
            "osType": image.os_type,
            "osState": image.os_state,
            "identifier": {"publisher": image.publisher, "offer": image.offer, "sku": image.sku},
            "recommended": {"vCPUs": {"min": 1, "max": 16}, "memory": {"min": 1, "max": 32}},
            "provisioningState": "Succeeded",
        }
        if image.hyper_v_generation:
            props["hyperVGeneration"] = image.hyper_v_generation
        if image.architecture:
            props["architecture"] = image.architecture
        if image.security_type:
            props["features"] = [{"name": "SecurityType", "value": image.security_type}]
        body = {
            "name": image.name,
            "id": image.id,
            "type": "Microsoft.Compute/galleries/images",
            "location": image.location,
            "properties": props,
        }
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
        props = {
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
            "storageProfile": {"source": source, "osDiskImage": {"sizeInGB": 30, "hostCaching": "ReadWrite"}},
            "provisioningState": version.provisioning_state,
        }
        if replication is not None:
            props["replicationStatus"] = replication
        body = {
            "name": version.name,
            "id": version.id,
            "type": "Microsoft.Compute/galleries/images/versions",
            "location": version.image.location,
            "properties": props,
        }
        return 200, body, {}

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

    def _finish(self, op: FakeOperation) -> None:
        op.end_time = _now()
        if op.fail:
            op.status = "Failed"
            op.vm.power_state = op.previous_state
        else:
            op.status = "Succeeded"
            op.vm.power_state = op.final_state


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
