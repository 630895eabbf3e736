"""A local WS-Management server playing a scripted Windows guest, for testing hooks/windows.py without Windows.

The wire protocol is the WinRS shell protocol as pywinrm speaks it, shaped on exchanges recorded against real
Windows hosts (jborean93/pypsrp tests/responses/test_winrs_*.yml, pywinrm's winrm/tests/conftest.py):
``transfer/Create`` → a ShellId selector; ``shell/Command`` → a CommandId; ``shell/Receive`` → base64 ``Stream``
elements, ``End="true"``, ``CommandState`` Running or Done with an ExitCode, or the operation-timeout fault
(2150858793) when nothing happened within OperationTimeout; ``shell/Signal``; ``transfer/Delete``. Every answer's
RelatesTo echoes the request's MessageID; faults come as HTTP 500 with a SOAP fault, as Windows sends them.

Also like Windows: WinRS runs commands through cmd.exe (8191-character command line), a bare ``powershell.exe``
with WINRS_SKIP_CMD_SHELL is "file not found", and PowerShell writes a CLIXML progress record to stderr.

Authentication is HTTP Basic over TLS only: NTLM (the Azure default) cannot be faked honestly, so the tests use
``transport='basic'``; everything above the HTTP authentication layer is the same for NTLM over HTTPS.

The guest: it recognises which of our scripts was sent by the marker line ``# image-gallery-script: <name>``,
checks that the script body is byte for byte the file in hooks/scripts/windows (only a prelude of plain
assignments may precede it), and answers from an in-memory GuestModel: agent services (which may start late),
installed roles, BitLocker, AppX packages, pending reboot, ImageState over time after sysprep was launched,
the sysprep process, the Panther logs. It counts sysprep launches, can drop connections for a while (as a
network reset mid-sysprep does), and records every request.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import re
import socket
import ssl
import struct
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from xml.etree import ElementTree as ET
from xml.sax.saxutils import escape

import pytest
import trustme

from hooks.targets import WinRmTarget
from hooks.windows import SCRIPTS

COMPLETE = "IMAGE_STATE_COMPLETE"
UNDEPLOYABLE = "IMAGE_STATE_UNDEPLOYABLE"
RESEAL_TO_OOBE = "IMAGE_STATE_GENERALIZE_RESEAL_TO_OOBE"

NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "a": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
    "w": "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd",
    "rsp": "http://schemas.microsoft.com/wbem/wsman/1/windows/shell",
}
SHELL = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell"
TRANSFER = "http://schemas.xmlsoap.org/ws/2004/09/transfer"
CMD_LINE_LIMIT = 8191
OPERATION_TIMEOUT_FAULT = 2150858793
UNKNOWN_SELECTOR_FAULT = 2150858843
WINDIR = "C:\\Windows"

PROGRESS_CLIXML = (
    '#< CLIXML\r\n<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">'
    '<Obj S="progress" RefId="0"><TN RefId="0"><T>System.Management.Automation.PSCustomObject</T>'
    '<T>System.Object</T></TN><MS><I64 N="SourceId">1</I64><PR N="Record"><AV>Preparing modules for first use.</AV>'
    "<AI>0</AI><Nil /><PI>-1</PI><PC>-1</PC><T>Completed</T><SR>-1</SR><SD> </SD></PR></MS></Obj></Objs>"
)

SYSPREP_FAILURE_LINES = [
    "2024-05-02 10:31:07, Error                 SYSPRP Package Contoso.Notes_2.1.0.0_x64__8wekyb3d8bbwe was "
    "installed for a user, but not provisioned for all users. This package will not function properly in the "
    "sysprep image.",
    "2024-05-02 10:31:07, Error                 SYSPRP Failed to remove apps for the current user: 0x80073cf2.",
    "2024-05-02 10:31:07, Error                 SYSPRP Exit code of RemoveAllApps thread was 0x3cf2.",
    "2024-05-02 10:31:07, Error      [0x0f0082] SYSPRP ActionPlatform::LaunchModule: Failure occurred while "
    "executing 'SysprepGeneralizeValidate' from C:\\Windows\\System32\\AppxSysprep.dll; dwRet = 0x3cf2",
    "2024-05-02 10:31:07, Error                 SYSPRP SysprepSession::Validate: Error in validating actions "
    "from C:\\Windows\\System32\\Sysprep\\ActionFiles\\Generalize.xml; dwRet = 0x3cf2",
    "2024-05-02 10:31:07, Error      [0x0f0070] SYSPRP RunExternalDlls:An error occurred while running registry "
    "sysprep DLLs, halting sysprep execution. dwRet = 0x3cf2",
]


# --------------------------------------------------------------------------------------------------------------
# The guest model
# --------------------------------------------------------------------------------------------------------------


@dataclass
class AgentService:
    """An Azure agent service; `stopped_for_polls` agent-status polls see it Stopped before it runs."""

    name: str
    present: bool = True
    stopped_for_polls: int = 0
    start_type: str = "Automatic"


@dataclass
class AppxPackage:
    name: str
    version: str
    users: tuple[str, ...] = ()
    """Users it is installed for (Get-AppxPackage -AllUsers)."""
    provisioned: bool = True
    """Provisioned for all users at this version (Get-AppxProvisionedPackage -Online)."""

    @property
    def full_name(self) -> str:
        return f"{self.name}_{self.version}_x64__8wekyb3d8bbwe"


@dataclass
class SysprepBehaviour:
    """What Sysprep.exe does once launched, in seconds after the launch."""

    outcome: Literal["success", "fail", "hang"] = "success"
    undeployable_after: float = 0.1
    """ImageState turns IMAGE_STATE_UNDEPLOYABLE when generalize begins."""
    runtime: float = 0.5
    """The process exits after this long (never, for "hang")."""
    failed_state: str = UNDEPLOYABLE
    """ImageState left behind by a failure."""
    error_lines: list[str] = field(default_factory=lambda: list(SYSPREP_FAILURE_LINES))


@dataclass
class SysprepLaunch:
    pid: int
    at: float
    command_line: str
    mode: str
    extra_args: tuple[str, ...]
    by_us: bool = True


@dataclass
class DropWindow:
    """Connections fail from `start` for `duration` seconds (monotonic clock)."""

    start: float
    duration: float
    mode: Literal["reset", "handshake"] = "reset"
    """reset: the request is read, then the TCP connection is reset without an answer;
    handshake: new connections are reset before the TLS handshake completes (and requests as with reset)."""

    def active(self, now: float) -> bool:
        return self.start <= now < self.start + self.duration


@dataclass
class RecordedRequest:
    at: float
    action: str
    user: str
    shell_id: str = ""
    script: str = ""
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class GuestModel:
    """The Windows guest the fake WinRM server plays. Tests set it up, then read what happened."""

    username: str = "azureadmin"
    password: str = "Corr3ct-Horse-Battery!"
    services: dict[str, AgentService] = field(
        default_factory=lambda: {
            n: AgentService(n) for n in ("RdAgent", "WindowsAzureTelemetryService", "WindowsAzureGuestAgent")
        }
    )
    feature_cmdlet: bool = True
    features: list[str] = field(
        default_factory=lambda: [
            "FileAndStorage-Services",
            "Storage-Services",
            "NET-Framework-45-Features",
            "NET-Framework-45-Core",
            "PowerShellRoot",
            "PowerShell",
            "Windows-Defender",
            "WoW64-Support",
        ]
    )
    vm_switches: list[str] = field(default_factory=list)
    wds_initialized: bool = False
    bitlocker_source: Literal["Get-BitLockerVolume", "manage-bde", "none"] = "Get-BitLockerVolume"
    bitlocker_protection: str = "Off"
    bitlocker_volume: str = "FullyDecrypted"
    bitlocker_percentage: float = 0.0
    appx: list[AppxPackage] = field(
        default_factory=lambda: [
            AppxPackage("Microsoft.WindowsCalculator", "11.2210.0.0", users=("VM\\azureadmin",)),
            AppxPackage("Microsoft.WindowsNotepad", "11.2302.16.0", users=("VM\\azureadmin",)),
            AppxPackage("Microsoft.MicrosoftEdge.Stable", "120.0.2210.91"),
        ]
    )
    cbs_reboot_pending: bool = False
    wu_reboot_required: bool = False
    pending_file_renames: list[str] = field(default_factory=list)
    image_state: str = COMPLETE
    answer_files: list[str] = field(default_factory=lambda: [f"{WINDIR}\\Panther\\unattend.xml"])
    setupact: list[str] = field(
        default_factory=lambda: ["2023-11-20 08:00:00, Info  SYSPRP (an earlier run) ========= sysprep starting"]
    )
    setuperr: list[str] = field(
        default_factory=lambda: ["2023-11-20 08:00:01, Error SYSPRP (an earlier run) stale error from last year"]
    )
    sysprep: SysprepBehaviour = field(default_factory=SysprepBehaviour)
    drops_after_launch: list[tuple[float, float, Literal["reset", "handshake"]]] = field(default_factory=list)
    """(delay after the sysprep launch, duration, mode): connection drops scheduled relative to the launch."""
    script_delays: dict[str, float] = field(default_factory=dict)
    """Script name → seconds it takes: Receive long-polls until then, or answers the operation-timeout fault."""
    script_errors: dict[str, str] = field(default_factory=dict)
    """Script name → error text: the script fails as a PowerShell terminating error would."""

    # What happened (read these in tests).
    launches: list[SysprepLaunch] = field(default_factory=list)
    requests: list[RecordedRequest] = field(default_factory=list)
    script_runs: Counter[str] = field(default_factory=Counter)
    auth_failures: int = 0
    dropped: int = 0
    handshake_failures: int = 0
    operation_timeouts: int = 0
    open_shells: set[str] = field(default_factory=set)
    command_lines: list[str] = field(default_factory=list)

    drops: list[DropWindow] = field(default_factory=list)
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    _agent_polls: int = 0
    _state_at_launch: str = COMPLETE
    _finished: bool = False

    # -- controls ------------------------------------------------------------------------------------------------

    def unreachable_for(self, seconds: float, mode: Literal["reset", "handshake"] = "handshake") -> None:
        """The VM is booting: every connection fails for `seconds` from now."""
        with self.lock:
            self.drops.append(DropWindow(time.monotonic(), seconds, mode))

    def sysprep_started_elsewhere(self) -> SysprepLaunch:
        """A sysprep is already running (started by an earlier, interrupted run): not counted as launched by us."""
        with self.lock:
            return self._launch("/mode:vm", "vm", (), by_us=False)

    @property
    def sysprep_launch_count(self) -> int:
        with self.lock:
            return sum(1 for launch in self.launches if launch.by_us)

    # -- behaviour -----------------------------------------------------------------------------------------------

    def drop_mode(self, now: float) -> str | None:
        with self.lock:
            for window in self.drops:
                if window.active(now):
                    return window.mode
        return None

    def _advance(self, now: float) -> None:
        """Move ImageState, the process and the logs on to `now`."""
        if not self.launches or self._finished:
            return
        behaviour, elapsed = self.sysprep, now - self.launches[-1].at
        if elapsed >= behaviour.undeployable_after:
            self.image_state = UNDEPLOYABLE
        if behaviour.outcome == "hang" or elapsed < behaviour.runtime:
            return
        self._finished = True
        if behaviour.outcome == "success":
            self.image_state = RESEAL_TO_OOBE
            self.setupact.append("2024-05-02 10:33:40, Info  SYSPRP Sysprep_Generalize_Complete: generalize done")
            self.setupact.append("2024-05-02 10:33:41, Info  [0x0f0052] SYSPRP Shutting down SysPrep log")
        else:
            self.image_state = behaviour.failed_state
            self.setuperr.extend(behaviour.error_lines)
            self.setupact.extend(behaviour.error_lines)
            self.setupact.append("2024-05-02 10:31:08, Info  [0x0f0052] SYSPRP Shutting down SysPrep log")

    def _running_pids(self) -> list[int]:
        if self.launches and not self._finished:
            return [self.launches[-1].pid]
        return []

    def _launch(self, command_line: str, mode: str, extra: tuple[str, ...], by_us: bool = True) -> SysprepLaunch:
        now = time.monotonic()
        launch = SysprepLaunch(4000 + 4 * len(self.launches), now, command_line, mode, extra, by_us)
        self.launches.append(launch)
        self._finished = False
        self._state_at_launch = self.image_state
        self.setupact.append("2024-05-02 10:30:00, Info  [0x0f004d] SYSPRP ========= sysprep.exe starting =========")
        for delay, duration, drop_mode in self.drops_after_launch:
            self.drops.append(DropWindow(now + delay, duration, drop_mode))
        return launch

    def run_script(self, name: str, params: dict[str, Any]) -> tuple[int, str, str]:
        """Run one of our scripts: (exit code, stdout, stderr) as PowerShell would produce them."""
        with self.lock:
            self.script_runs[name] += 1
            if name in self.script_errors:
                return 1, "", _clixml_error(self.script_errors[name])
            now = time.monotonic()
            self._advance(now)
            answer = getattr(self, "_script_" + name.replace("-", "_"), None)
            if answer is None:
                return 1, "", _clixml_error(f"fake guest: no model for script {name}")
            result: dict[str, Any] = answer(params)
            # ConvertTo-Json -Compress, then our ASCII escaping: one ASCII line.
            return 0, json.dumps(result, separators=(",", ":"), ensure_ascii=True) + "\r\n", PROGRESS_CLIXML

    def _script_agent_status(self, params: dict[str, Any]) -> dict[str, Any]:
        self._agent_polls += 1
        services = []
        for name in ("RdAgent", "WindowsAzureTelemetryService", "WindowsAzureGuestAgent"):
            svc = self.services.get(name)
            if svc is None or not svc.present:
                services.append({"name": name, "present": False, "status": "", "start_type": ""})
                continue
            running = svc.start_type != "Disabled" and self._agent_polls > svc.stopped_for_polls
            status = "Running" if running else "Stopped"
            services.append({"name": name, "present": True, "status": status, "start_type": svc.start_type})
        return {"services": services}

    def _script_check_server_roles(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "feature_query": self.feature_cmdlet,
            "installed": list(self.features) if self.feature_cmdlet else [],
            "vm_switches": list(self.vm_switches),
            "wds_initialized": self.wds_initialized,
            "errors": [],
        }

    def _script_check_bitlocker(self, params: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = {
            "mount_point": "C:",
            "source": self.bitlocker_source,
            "protection_status": "",
            "volume_status": "",
            "encryption_percentage": -1,
            "error": "",
        }
        if self.bitlocker_source == "Get-BitLockerVolume":
            result.update(
                protection_status=self.bitlocker_protection,
                volume_status=self.bitlocker_volume,
                encryption_percentage=self.bitlocker_percentage,
            )
        elif self.bitlocker_source == "manage-bde":
            # manage-bde -status prints words, e.g. "Protection On", "Fully Encrypted".
            words = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", self.bitlocker_volume)
            result.update(
                protection_status=f"Protection {self.bitlocker_protection}",
                volume_status=words,
                encryption_percentage=self.bitlocker_percentage,
            )
        return result

    def _script_check_appx(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "supported": True,
            "provisioned": [{"name": p.name, "version": p.version} for p in self.appx if p.provisioned],
            "packages": [
                {"name": p.name, "version": p.version, "full_name": p.full_name, "users": list(p.users)}
                for p in self.appx
                if p.users
            ],
            "error": "",
        }

    def _script_check_pending_reboot(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "cbs_reboot_pending": self.cbs_reboot_pending,
            "wu_reboot_required": self.wu_reboot_required,
            "file_rename_count": len(self.pending_file_renames),
            "file_renames": self.pending_file_renames[:10],
        }

    def _script_image_state(self, params: dict[str, Any]) -> dict[str, Any]:
        tail = int(params.get("TailLines", 40))
        return {
            "image_state": self.image_state,
            "sysprep_pids": self._running_pids(),
            "succeeded_tag": self.image_state == RESEAL_TO_OOBE,
            "setuperr_tail": "\n".join(self.setuperr[-tail:]) if tail > 0 else "",
            "setupact_tail": "\n".join(self.setupact[-tail:]) if tail > 0 else "",
        }

    def _script_start_sysprep(self, params: dict[str, Any]) -> dict[str, Any]:
        running = self._running_pids()
        result: dict[str, Any] = {
            "started": False,
            "pid": 0,
            "already_running": running,
            "removed": [],
            "command_line": "",
        }
        if running:
            return result
        mode = str(params.get("Mode", "vm"))
        extra = tuple(params.get("ExtraArgs", ()))
        flags = ["/oobe", "/generalize", "/quiet", "/quit", *([f"/mode:{mode}"] if mode else []), *extra]
        command_line = f'"{WINDIR}\\System32\\Sysprep\\Sysprep.exe" ' + " ".join(flags)
        result["removed"], self.answer_files = self.answer_files, []
        self.setuperr, self.setupact = [], []  # moved aside to *.previous
        launch = self._launch(command_line, mode, extra)
        result.update(started=True, pid=launch.pid, command_line=command_line)
        return result


def _clixml_error(message: str) -> str:
    text = escape(message).replace("\n", "_x000D__x000A_")
    return (
        '#< CLIXML\r\n<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">'
        f'<S S="Error">{text}_x000D__x000A_</S></Objs>'
    )


# --------------------------------------------------------------------------------------------------------------
# Recognising our scripts
# --------------------------------------------------------------------------------------------------------------

_MARKER = re.compile(r"^# image-gallery-script: (?P<name>[a-z-]+)$", re.MULTILINE)
_PRELUDE_LINE = re.compile(r"^\$(?P<name>[A-Za-z]+) = (?P<value>'[^']*'|-?\d+|@\((?:'[^']*'(?:, '[^']*')*)?\))$")


def decode_script(command_line: str) -> str | None:
    """The PowerShell text of `powershell[.exe] [-options] -EncodedCommand <base64 UTF-16LE>`, or None."""
    tokens = command_line.split()
    if not tokens or tokens[0].lower() not in ("powershell", "powershell.exe"):
        return None
    for i, token in enumerate(tokens[1:-1], start=1):
        flag = token.lower().lstrip("-")
        if token.startswith("-") and (flag == "ec" or (len(flag) >= 1 and "encodedcommand".startswith(flag))):
            return base64.b64decode(tokens[i + 1]).decode("utf-16-le")
    return None


def identify(text: str) -> tuple[str, dict[str, Any]] | str:
    """(script name, prelude parameters) if `text` is one of our scripts sent unmodified, else why not."""
    marker = _MARKER.search(text)
    if not marker:
        return "not one of the image-gallery scripts (no marker line)"
    name = marker["name"]
    path = SCRIPTS / f"{name}.ps1"
    if not path.exists():
        return f"no script {name}.ps1"
    prelude, body = text[: marker.start()], text[marker.start() :]
    if body != path.read_text(encoding="ascii"):
        return f"the body of {name}.ps1 differs from hooks/scripts/windows/{name}.ps1"
    params: dict[str, Any] = {}
    for line in prelude.splitlines():
        match = _PRELUDE_LINE.match(line)
        if not match:
            return f"prelude line is not a plain assignment: {line!r}"
        value = match["value"]
        if value.startswith("'"):
            params[match["name"]] = value[1:-1]
        elif value.startswith("@("):
            params[match["name"]] = tuple(re.findall(r"'([^']*)'", value))
        else:
            params[match["name"]] = int(value)
    return name, params


# --------------------------------------------------------------------------------------------------------------
# WS-Management over HTTPS
# --------------------------------------------------------------------------------------------------------------


@dataclass
class _Command:
    exit_code: int
    stdout: bytes
    stderr: bytes
    ready_at: float
    stderr_sent: bool = False
    done: bool = False


@dataclass
class _Shell:
    commands: dict[str, _Command] = field(default_factory=dict)


def _envelope(action: str, relates_to: str, body: str) -> bytes:
    return (
        f'<s:Envelope xml:lang="en-US" xmlns:s="{NS["s"]}" xmlns:a="{NS["a"]}" xmlns:x="{TRANSFER}" '
        f'xmlns:w="{NS["w"]}" xmlns:rsp="{SHELL}" xmlns:p="http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd">'
        f"<s:Header><a:Action>{action}</a:Action><a:MessageID>uuid:{str(uuid.uuid4()).upper()}</a:MessageID>"
        "<a:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:To>"
        f"<a:RelatesTo>{relates_to}</a:RelatesTo></s:Header><s:Body>{body}</s:Body></s:Envelope>"
    ).encode()


def _fault(relates_to: str, code: str, subcode: str, reason: str, wsman_code: int, message: str = "") -> bytes:
    return _envelope(
        "http://schemas.dmtf.org/wbem/wsman/1/wsman/fault",
        relates_to,
        f"<s:Fault><s:Code><s:Value>{code}</s:Value><s:Subcode><s:Value>{subcode}</s:Value></s:Subcode></s:Code>"
        f'<s:Reason><s:Text xml:lang="en-US">{escape(reason)} </s:Text></s:Reason><s:Detail>'
        f'<f:WSManFault xmlns:f="http://schemas.microsoft.com/wbem/wsman/1/wsmanfault" Code="{wsman_code}" '
        f'Machine="fake-guest"><f:Message>{escape(message or reason)} </f:Message></f:WSManFault></s:Detail>'
        "</s:Fault>",
    )


def _reset(sock: socket.socket) -> None:
    """Close with a TCP reset, as a dropped network path looks to the client."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], context: ssl.SSLContext, model: GuestModel) -> None:
        super().__init__(address, _Handler)
        self.context = context
        self.model = model
        self.shells: dict[str, _Shell] = {}

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = self.socket.accept()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # else every request costs ~40 ms
        return sock, address

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # failed handshakes and dropped connections are part of the play


class _Dropped(Exception):
    pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        model = self.server.model
        raw: socket.socket = self.request
        if model.drop_mode(time.monotonic()) == "handshake":
            with model.lock:
                model.dropped += 1
            _reset(raw)
            raise _Dropped
        raw.settimeout(10)
        try:
            self.request = self.server.context.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError):
            with model.lock:
                model.handshake_failures += 1
            raise
        super().setup()

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.request.close()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes, headers: tuple[tuple[str, str], ...] = ()) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/soap+xml;charset=UTF-8")
        self.send_header("Content-Length", str(len(body)))
        for key, value in headers:
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        model = self.server.model
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if model.drop_mode(time.monotonic()):
            with model.lock:
                model.dropped += 1
            self.close_connection = True
            _reset(self.request)
            return
        if self.path.rstrip("/") != "/wsman":
            self._send(404, b"")
            return
        user = self._authenticated_user()
        if user is None:
            with model.lock:
                model.auth_failures += 1
            # As WinRM answers with Basic enabled: both schemes offered, no body.
            self._send(401, b"", (("WWW-Authenticate", "Negotiate"), ("WWW-Authenticate", 'Basic realm="WSMAN"')))
            return
        status, answer = self._dispatch(ET.fromstring(body), user)
        self._send(status, answer)

    def _authenticated_user(self) -> str | None:
        header = self.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return None
        user, _, password = base64.b64decode(header[6:]).decode("utf-8").partition(":")
        model = self.server.model
        return user if (user, password) == (model.username, model.password) else None

    def _dispatch(self, root: ET.Element, user: str) -> tuple[int, bytes]:
        header = root.find("s:Header", NS)
        assert header is not None
        action = (header.findtext("a:Action", "", NS) or "").strip()
        message_id = (header.findtext("a:MessageID", "", NS) or "").strip()
        selector = header.find("w:SelectorSet/w:Selector[@Name='ShellId']", NS)
        shell_id = (selector.text or "") if selector is not None else ""
        timeout = re.fullmatch(r"PT([0-9.]+)S", (header.findtext("w:OperationTimeout", "", NS) or "").strip())
        op_timeout = float(timeout.group(1)) if timeout else 60.0
        options = {o.get("Name", ""): (o.text or "") for o in header.findall("w:OptionSet/w:Option", NS)}
        record = RecordedRequest(time.monotonic(), action, user, shell_id)
        model = self.server.model
        with model.lock:
            model.requests.append(record)

        shells = self.server.shells
        if action == f"{TRANSFER}/Create":
            new_id = str(uuid.uuid4()).upper()
            with model.lock:
                shells[new_id] = _Shell()
                model.open_shells.add(new_id)
            return 200, _envelope(
                f"{TRANSFER}/CreateResponse",
                message_id,
                "<x:ResourceCreated><a:Address>https://fake-guest:5986/wsman</a:Address><a:ReferenceParameters>"
                f'<w:ResourceURI>{SHELL}/cmd</w:ResourceURI><w:SelectorSet><w:Selector Name="ShellId">{new_id}'
                f"</w:Selector></w:SelectorSet></a:ReferenceParameters></x:ResourceCreated><rsp:Shell>"
                f"<rsp:ShellId>{new_id}</rsp:ShellId><rsp:ResourceUri>{SHELL}/cmd</rsp:ResourceUri>"
                f"<rsp:Owner>{escape(user)}</rsp:Owner><rsp:IdleTimeOut>PT7200.000S</rsp:IdleTimeOut>"
                "<rsp:InputStreams>stdin</rsp:InputStreams><rsp:OutputStreams>stdout stderr</rsp:OutputStreams>"
                "</rsp:Shell>",
            )
        shell = shells.get(shell_id)
        if shell is None:
            return 500, _fault(
                message_id,
                "s:Sender",
                "w:InvalidSelectors",
                "The WS-Management service cannot process the request because the request contained invalid "
                "selectors for the resource.",
                UNKNOWN_SELECTOR_FAULT,
            )
        if action == f"{SHELL}/Command":
            return self._command(root, shell, message_id, options, record)
        if action == f"{SHELL}/Receive":
            stream = root.find("s:Body/rsp:Receive/rsp:DesiredStream", NS)
            command_id = stream.get("CommandId", "") if stream is not None else ""
            return self._receive(shell, command_id, message_id, op_timeout)
        if action == f"{SHELL}/Signal":
            signal = root.find("s:Body/rsp:Signal", NS)
            command_id = signal.get("CommandId", "") if signal is not None else ""
            shell.commands.pop(command_id, None)
            return 200, _envelope(f"{SHELL}/SignalResponse", message_id, "<rsp:SignalResponse/>")
        if action == f"{TRANSFER}/Delete":
            with model.lock:
                shells.pop(shell_id, None)
                model.open_shells.discard(shell_id)
            return 200, _envelope(f"{TRANSFER}/DeleteResponse", message_id, "")
        return 500, _fault(
            message_id, "s:Sender", "a:ActionNotSupported", f"The action {action} is not supported.", 2150858753
        )

    def _command(
        self, root: ET.Element, shell: _Shell, message_id: str, options: dict[str, str], record: RecordedRequest
    ) -> tuple[int, bytes]:
        model = self.server.model
        command = (root.findtext("s:Body/rsp:CommandLine/rsp:Command", "", NS) or "").strip()
        arguments = [a.text or "" for a in root.findall("s:Body/rsp:CommandLine/rsp:Arguments", NS)]
        command_line = " ".join([command, *arguments])
        skip_cmd = options.get("WINRS_SKIP_CMD_SHELL", "FALSE").upper() == "TRUE"
        with model.lock:
            model.command_lines.append(command_line)
        if skip_cmd and command.lower() == "powershell.exe":
            # Recorded on Windows: without cmd.exe there is no PATH search.
            return 500, _fault(
                message_id,
                "s:Receiver",
                "w:InternalError",
                "The system cannot find the file specified.",
                2147942402,
            )
        exit_code, stdout, stderr, delay = 1, "", "", 0.0
        if not skip_cmd and len(command_line) > CMD_LINE_LIMIT:
            stderr = "The command line is too long.\r\n"
        else:
            text = decode_script(command_line)
            if text is None:
                program = command.split()[0] if command else ""
                stderr = f"'{program}' is not recognized as an internal or external command\r\n"
            else:
                found = identify(text)
                if isinstance(found, str):
                    stderr = _clixml_error(f"fake guest: {found}")
                else:
                    record.script, record.params = found
                    exit_code, stdout, stderr = model.run_script(*found)
                    delay = model.script_delays.get(found[0], 0.0)
        command_id = str(uuid.uuid4()).upper()
        shell.commands[command_id] = _Command(exit_code, stdout.encode(), stderr.encode(), time.monotonic() + delay)
        return 200, _envelope(
            f"{SHELL}/CommandResponse",
            message_id,
            f"<rsp:CommandResponse><rsp:CommandId>{command_id}</rsp:CommandId></rsp:CommandResponse>",
        )

    def _receive(self, shell: _Shell, command_id: str, message_id: str, op_timeout: float) -> tuple[int, bytes]:
        command = shell.commands.get(command_id)
        if command is None:
            return 500, _fault(
                message_id,
                "s:Sender",
                "w:InvalidSelectors",
                "The WS-Management service cannot process the request because the request contained invalid "
                "selectors for the resource.",
                UNKNOWN_SELECTOR_FAULT,
                "The Windows Remote Shell received a request to perform an operation on a command identifier "
                "that does not exist.",
            )
        state_running = f'<rsp:CommandState CommandId="{command_id}" State="{SHELL}/CommandState/Running"/>'
        if command.stderr and not command.stderr_sent:
            # PowerShell's first words: a CLIXML progress record on stderr, the command still running.
            command.stderr_sent = True
            chunk = base64.b64encode(command.stderr).decode()
            return 200, _envelope(
                f"{SHELL}/ReceiveResponse",
                message_id,
                f'<rsp:ReceiveResponse><rsp:Stream Name="stderr" CommandId="{command_id}">{chunk}</rsp:Stream>'
                f"{state_running}</rsp:ReceiveResponse>",
            )
        wait = command.ready_at - time.monotonic()
        if wait > 0:
            # A Receive is a long poll: held until there is output or the operation timeout passes.
            time.sleep(min(wait, op_timeout))
            if time.monotonic() < command.ready_at:
                with self.server.model.lock:
                    self.server.model.operation_timeouts += 1
                return 500, _fault(
                    message_id,
                    "s:Receiver",
                    "w:TimedOut",
                    "The WS-Management service cannot complete the operation within the time specified in "
                    "OperationTimeout.",
                    OPERATION_TIMEOUT_FAULT,
                )
        streams = ""
        if command.stdout:
            streams += (
                f'<rsp:Stream Name="stdout" CommandId="{command_id}">'
                f"{base64.b64encode(command.stdout).decode()}</rsp:Stream>"
            )
        command.done = True
        return 200, _envelope(
            f"{SHELL}/ReceiveResponse",
            message_id,
            f"<rsp:ReceiveResponse>{streams}"
            f'<rsp:Stream Name="stdout" CommandId="{command_id}" End="true"></rsp:Stream>'
            f'<rsp:Stream Name="stderr" CommandId="{command_id}" End="true"></rsp:Stream>'
            f'<rsp:CommandState CommandId="{command_id}" State="{SHELL}/CommandState/Done">'
            f"<rsp:ExitCode>{command.exit_code}</rsp:ExitCode></rsp:CommandState></rsp:ReceiveResponse>",
        )


class FakeWsman:
    """The fake WinRM HTTPS listener for one GuestModel, on 127.0.0.1 with a certificate from `ca`."""

    def __init__(self, model: GuestModel, ca: trustme.CA) -> None:
        self.model = model
        self.ca = ca
        leaf = ca.issue_cert("localhost", "127.0.0.1")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        leaf.configure_cert(context)
        der = ssl.PEM_cert_to_DER_cert(leaf.cert_chain_pems[0].bytes().decode())
        self.cert_sha256 = hashlib.sha256(der).hexdigest()
        self.ca_pem = ca.cert_pem.bytes().decode()
        self._server = _Server(("127.0.0.1", 0), context, model)
        self.host = "127.0.0.1"
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def start(self) -> FakeWsman:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


# --------------------------------------------------------------------------------------------------------------
# Fixtures (import them into a test module)
# --------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def wsman_ca() -> trustme.CA:
    """The CA that issued the fake guest's WinRM certificate."""
    return trustme.CA()


@pytest.fixture
def guest() -> GuestModel:
    """A healthy Windows Server guest, ready for sysprep; tests change it before running the step."""
    return GuestModel()


@pytest.fixture
def wsman_server(guest: GuestModel, wsman_ca: trustme.CA) -> Iterator[FakeWsman]:
    """The fake WinRM listener playing `guest`: .host, .port, .ca_pem, .cert_sha256."""
    server = FakeWsman(guest, wsman_ca).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def winrm_target(wsman_server: FakeWsman, guest: GuestModel) -> WinRmTarget:
    """A WinRmTarget for the fake guest: Basic over HTTPS (NTLM cannot be faked), CA-validated, short bounds."""
    return WinRmTarget(
        host=wsman_server.host,
        port=wsman_server.port,
        username=guest.username,
        password=guest.password,
        transport="basic",
        ca_bundle=wsman_server.ca_pem,
        connect_timeout=5.0,
    )
