"""A local WS-Management server playing a scripted Windows guest, for testing hooks/windows/ without Windows.

The wire protocol is the WinRS shell protocol as pywinrm speaks it, shaped on exchanges recorded against real
Windows hosts (jborean93/pypsrp tests/responses/test_winrs_*.yml, pywinrm's winrm/tests/conftest.py):
``transfer/Create`` → a ShellId selector; ``shell/Command`` → a CommandId; ``shell/Receive`` → base64 ``Stream``
elements, ``End="true"``, ``CommandState`` Running or Done with an ExitCode, or the operation-timeout fault
(2150858793) when nothing happened within OperationTimeout; ``shell/Signal``; ``transfer/Delete``. Every answer's
RelatesTo echoes the request's MessageID; faults come as HTTP 500 with a SOAP fault, as Windows sends them.

Also like Windows: WinRS runs commands through cmd.exe (8191-character command line), a bare ``powershell.exe``
with WINRS_SKIP_CMD_SHELL is "file not found", and PowerShell writes a CLIXML progress record to stderr.

Authentication: HTTP Basic over TLS (most tests), or real NTLM through pyspnego's acceptor (credentials from
NTLM_USER_FILE) behind a default listener that offers only ``Negotiate``: over https the client's channel binding
(tls-server-end-point) is checked and recorded; over http every SOAP message must come MS-WSMV encrypted
(``multipart/encrypted``, NTLM sealing) and is answered the same way, as Windows does without AllowUnencrypted.

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
import spnego
import spnego.exceptions
import trustme
from spnego.channel_bindings import GssChannelBindings

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
    reseal_after: float | None = None
    """Success: ImageState turns IMAGE_STATE_GENERALIZE_RESEAL_TO_OOBE this long after the launch, while the process
    still runs (as real sysprep sets it before its last actions); None: when the process exits."""
    tag_after: float | None = None
    """Success: Sysprep_succeeded.tag appears this long after the launch; None: when the process exits."""
    writes_tag: bool = True
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
    mode: Literal["reset", "handshake", "unauthorized"] = "reset"
    """reset: the request is read, then the TCP connection is reset without an answer;
    handshake: new connections are reset before the TLS handshake completes (and requests as with reset);
    unauthorized: every request is answered 401, as Windows refuses new logons while generalize runs."""

    def active(self, now: float) -> bool:
        return self.start <= now < self.start + self.duration


@dataclass
class NtlmLogon:
    """One NTLM authentication the fake accepted."""

    principal: str
    channel_binding: bool
    """The client's NTLMv2 response carried a (non-zero) channel binding hash."""


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
    bitlocker_error: str = ""
    """Set: Get-BitLockerVolume throws this (check-bitlocker.ps1 reports it with no volumes)."""
    data_drives: dict[str, tuple[str, str]] = field(default_factory=lambda: {"D:": ("Off", "FullyDecrypted")})
    """Other fixed drives: mount point → (protection status, volume status)."""
    role_query_error: str = ""
    """Get-WindowsFeature fails with this message."""
    cdrom_start: int | None = 1
    """HKLM\\SYSTEM\\CurrentControlSet\\Services\\cdrom Start (None: no such service)."""
    removable_deny_all: bool = False
    removable_denied: list[str] = field(default_factory=list)
    """Per-class removable-storage deny values, e.g. "{53f56308-...}!Deny_Read"."""
    appx_supported: bool = True
    """False: an edition without Get-AppxPackage (Server Core): check-appx.ps1 reports supported=false, no lists."""
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
    answer_files: list[str] = field(default_factory=lambda: [f"{WINDIR}\\Panther\\Unattend.xml"])
    unattend_registry: str | None = None
    """HKLM\\System\\Setup!UnattendFile, if set."""
    panther_dir: bool = True
    """%WINDIR%\\Panther exists (logs of earlier setup runs)."""
    succeeded_tag: bool = False
    """Sysprep_succeeded.tag exists (a stale one from an earlier sysprep, or this run's)."""
    locked_files: dict[str, str] = field(default_factory=dict)
    """Path → error: the clean-up cannot remove it."""
    setupact: list[str] = field(
        default_factory=lambda: ["2023-11-20 08:00:00, Info  SYSPRP (an earlier run) ========= sysprep starting"]
    )
    setuperr: list[str] = field(
        default_factory=lambda: ["2023-11-20 08:00:01, Error SYSPRP (an earlier run) stale error from last year"]
    )
    sysprep: SysprepBehaviour = field(default_factory=SysprepBehaviour)
    drops_after_launch: list[tuple[float, float, Literal["reset", "handshake", "unauthorized"]]] = field(
        default_factory=list
    )
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
    ntlm_logons: list[NtlmLogon] = field(default_factory=list)
    sealed_requests: int = 0
    """Requests that came WS-Man encrypted (NTLM sealing over http)."""
    unencrypted_refused: int = 0
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
        """How connections fail at `now`, if they do."""
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
        if behaviour.outcome == "success":
            if behaviour.reseal_after is not None and elapsed >= behaviour.reseal_after:
                self.image_state = RESEAL_TO_OOBE
            if behaviour.writes_tag and behaviour.tag_after is not None and elapsed >= behaviour.tag_after:
                self.succeeded_tag = True
        if behaviour.outcome == "hang" or elapsed < behaviour.runtime:
            return
        self._finished = True
        if behaviour.outcome == "success":
            self.image_state = RESEAL_TO_OOBE
            self.succeeded_tag = self.succeeded_tag or behaviour.writes_tag
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
        failed = self.feature_cmdlet and bool(self.role_query_error)
        return {
            "feature_query": self.feature_cmdlet and not failed,
            "installed": list(self.features) if self.feature_cmdlet and not failed else [],
            "vm_switches": list(self.vm_switches),
            "wds_initialized": self.wds_initialized,
            "errors": [f"Get-WindowsFeature: {self.role_query_error}"] if failed else [],
        }

    def _script_check_bitlocker(self, params: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = {"source": self.bitlocker_source, "os_drive": "C:", "volumes": [], "error": ""}
        if self.bitlocker_error:
            result["error"] = self.bitlocker_error
            return result
        drives = {"C:": (self.bitlocker_protection, self.bitlocker_volume), **self.data_drives}
        for drive, (protection, volume) in drives.items():
            if self.bitlocker_source == "Get-BitLockerVolume":
                result["volumes"].append(
                    {
                        "mount_point": drive,
                        "protection_status": protection,
                        "volume_status": volume,
                        "encryption_percentage": self.bitlocker_percentage,
                    }
                )
            elif self.bitlocker_source == "manage-bde":
                # manage-bde -status prints words, e.g. "Protection On", "Fully Encrypted".
                result["volumes"].append(
                    {
                        "mount_point": drive,
                        "protection_status": f"Protection {protection}",
                        "volume_status": re.sub(r"(?<=[a-z])(?=[A-Z])", " ", volume),
                        "encryption_percentage": self.bitlocker_percentage,
                    }
                )
        return result

    def _script_check_cdrom(self, params: dict[str, Any]) -> dict[str, Any]:
        present = self.cdrom_start is not None
        return {"present": present, "start": self.cdrom_start if present else -1}

    def _script_check_removable_storage(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"deny_all": self.removable_deny_all, "denied": list(self.removable_denied)}

    def _script_clean_before_sysprep(self, params: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = {
            "sysprep_running": self._running_pids(),
            "removed": [],
            "kept_aside": [],
            "errors": [],
        }
        if result["sysprep_running"]:
            return result

        def remove(path: str) -> bool:
            if path in self.locked_files:
                result["errors"].append(f"{path}: {self.locked_files[path]}")
                return False
            result["removed"].append(path)
            return True

        if self.unattend_registry is not None:
            result["removed"].append(f"HKLM\\SYSTEM\\Setup!UnattendFile (was {self.unattend_registry})")
            self.unattend_registry = None
        self.answer_files = [f for f in self.answer_files if not remove(f)]
        if self.panther_dir and remove(f"{WINDIR}\\Panther"):
            self.panther_dir = False
        if self.succeeded_tag and remove(f"{WINDIR}\\System32\\Sysprep\\Sysprep_succeeded.tag"):
            self.succeeded_tag = False
        if self.setuperr or self.setupact:
            result["kept_aside"] = [
                f"{WINDIR}\\System32\\Sysprep\\Panther\\{name}.previous" for name in ("setuperr.log", "setupact.log")
            ]
            self.setuperr, self.setupact = [], []
        return result

    def _script_check_appx(self, params: dict[str, Any]) -> dict[str, Any]:
        if not self.appx_supported:
            return {"supported": False, "packages": [], "provisioned": [], "error": ""}
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
            "succeeded_tag": self.succeeded_tag,
            "setuperr_tail": "\n".join(self.setuperr[-tail:]) if tail > 0 else "",
            "setupact_tail": "\n".join(self.setupact[-tail:]) if tail > 0 else "",
        }

    def _script_start_sysprep(self, params: dict[str, Any]) -> dict[str, Any]:
        running = self._running_pids()
        result: dict[str, Any] = {
            "started": False,
            "pid": 0,
            "already_running": running,
            "command_line": "",
        }
        if running:
            return result
        mode = str(params.get("Mode", "vm"))
        extra = tuple(params.get("ExtraArgs", ()))
        flags = ["/oobe", "/generalize", "/quiet", "/quit", *([f"/mode:{mode}"] if mode else []), *extra]
        command_line = f'"{WINDIR}\\System32\\Sysprep\\Sysprep.exe" ' + " ".join(flags)
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


SPNEGO_ENCRYPTED = "application/HTTP-SPNEGO-session-encrypted"
_BOUNDARY = b"--Encrypted Boundary"


def _unseal(context: Any, body: bytes) -> bytes:
    """The SOAP text of an MS-WSMV encrypted request (one part; pywinrm sends NTLM messages in one piece)."""
    _, _, rest = body.partition(b"\tContent-Type: application/octet-stream\r\n")
    if rest.endswith(_BOUNDARY + b"--\r\n"):
        rest = rest[: -len(_BOUNDARY + b"--\r\n")]
    length = struct.unpack("<i", rest[:4])[0]
    plain: bytes = context.unwrap_winrm(rest[4 : 4 + length], rest[4 + length :])
    return plain


def _seal(context: Any, plain: bytes) -> bytes:
    wrapped = context.wrap_winrm(plain)
    return (
        _BOUNDARY + b"\r\n\tContent-Type: " + SPNEGO_ENCRYPTED.encode() + b"\r\n"
        b"\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length="
        + str(len(plain)).encode()
        + b"\r\n"
        + _BOUNDARY
        + b"\r\n\tContent-Type: application/octet-stream\r\n"
        + struct.pack("<i", len(wrapped.header))
        + wrapped.header
        + wrapped.data
        + _BOUNDARY
        + b"--\r\n"
    )


def _channel_binding_sent(authenticate: bytes) -> bool:
    """Whether an NTLM AUTHENTICATE message carries a channel binding hash (MsvAvChannelBindings, not zeros)."""
    from spnego._ntlm_raw.messages import Authenticate, AvId, NTClientChallengeV2

    message = Authenticate.unpack(authenticate)
    response = message.nt_challenge_response or b""
    if len(response) <= 24:
        return False  # NTLMv1: no AV pairs at all
    target_info = NTClientChallengeV2.unpack(response[16:]).av_pairs
    return target_info.get(AvId.channel_bindings, b"\x00" * 16) != b"\x00" * 16


def _reset(sock: socket.socket) -> None:
    """Close with a TCP reset, as a dropped network path looks to the client."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        context: ssl.SSLContext | None,
        model: GuestModel,
        auth: Literal["basic", "ntlm"],
        cert_hash: bytes,
    ) -> None:
        super().__init__(address, _Handler)
        self.context = context
        """None: plain http (NTLM then requires WS-Man message encryption)."""
        self.model = model
        self.auth = auth
        self.cert_hash = cert_hash
        """SHA-256 of the certificate: the tls-server-end-point channel binding NTLM over https must carry."""
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
        self.ntlm: Any = None  # this connection's NTLM acceptor (NTLM authenticates a connection, not a request)
        self.sealed = False  # the last request came WS-Man encrypted: so must its answer
        if self.server.context is None:
            super().setup()
            return
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
        content_type = "application/soap+xml;charset=UTF-8"
        if self.sealed and body:
            body, content_type = (
                _seal(self.ntlm, body),
                f'multipart/encrypted;protocol="{SPNEGO_ENCRYPTED}";boundary="Encrypted Boundary"',
            )
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in headers:
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        model = self.server.model
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        dropping = model.drop_mode(time.monotonic())
        self.sealed = False
        if dropping == "unauthorized":
            with model.lock:
                model.auth_failures += 1
            self.ntlm = None
            self._send(401, b"", self._challenge_headers())
            return
        if dropping:
            with model.lock:
                model.dropped += 1
            self.close_connection = True
            _reset(self.request)
            return
        if self.path.rstrip("/") != "/wsman":
            self._send(404, b"")
            return
        if self.server.auth == "ntlm":
            authenticated = self._ntlm_user(body)
            if authenticated is None:
                return  # answered already (a challenge or a refusal)
            user, body = authenticated
            if not body:
                self._send(200, b"")  # pywinrm's empty POST that sets up the context for message encryption
                return
        else:
            found = self._authenticated_user()
            if found is None:
                with model.lock:
                    model.auth_failures += 1
                # As WinRM answers with Basic enabled: both schemes offered, no body.
                self._send(401, b"", self._challenge_headers())
                return
            user = found
        status, answer = self._dispatch(ET.fromstring(body), user)
        self._send(status, answer)

    def _challenge_headers(self) -> tuple[tuple[str, str], ...]:
        if self.server.auth == "ntlm":
            return (("WWW-Authenticate", "Negotiate"),)  # a default listener: Negotiate (and Kerberos) only
        return (("WWW-Authenticate", "Negotiate"), ("WWW-Authenticate", 'Basic realm="WSMAN"'))

    def _ntlm_user(self, body: bytes) -> tuple[str, bytes] | None:
        """NTLM as Windows' WinRM does it, through pyspnego's acceptor: (user, plain body), or None once answered."""
        model = self.server.model
        header = self.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() in ("negotiate", "ntlm") and token:
            if self.ntlm is None or self.ntlm.complete:
                bindings = (
                    GssChannelBindings(application_data=b"tls-server-end-point:" + self.server.cert_hash)
                    if self.server.context is not None
                    else None
                )
                self.ntlm = spnego.server(protocol="ntlm", channel_bindings=bindings)
            raw = base64.b64decode(token)
            try:
                answer = self.ntlm.step(raw)
            except spnego.exceptions.SpnegoError:
                with model.lock:
                    model.auth_failures += 1
                self.ntlm = None
                self._send(401, b"", self._challenge_headers())
                return None
            if not self.ntlm.complete:
                self._send(401, b"", (("WWW-Authenticate", f"{scheme} {base64.b64encode(answer or b'').decode()}"),))
                return None
            with model.lock:
                model.ntlm_logons.append(NtlmLogon(self.ntlm.client_principal or "", _channel_binding_sent(raw)))
        elif self.ntlm is None or not self.ntlm.complete:
            # The client's first request, without credentials: the listener names its scheme (not a failure).
            self._send(401, b"", self._challenge_headers())
            return None
        content_type = self.headers.get("Content-Type", "")
        if content_type.startswith("multipart/encrypted"):
            self.sealed = True
            body = _unseal(self.ntlm, body)
        elif body and self.server.context is None:
            # Windows refuses unencrypted SOAP over http unless AllowUnencrypted is set (it is not by default).
            with model.lock:
                model.unencrypted_refused += 1
            self._send(401, b"", self._challenge_headers())
            return None
        with model.lock:
            model.sealed_requests += int(self.sealed)
        user = (self.ntlm.client_principal or "").split("\\")[-1]
        return user, body

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
    """The fake WinRM listener for one GuestModel, on 127.0.0.1: HTTPS with a certificate from `ca` (or plain
    http), Basic or NTLM authentication (NTLM needs NTLM_USER_FILE, see the `ntlm_user_file` fixture)."""

    def __init__(
        self, model: GuestModel, ca: trustme.CA, auth: Literal["basic", "ntlm"] = "basic", https: bool = True
    ) -> None:
        self.model = model
        self.ca = ca
        leaf = ca.issue_cert("localhost", "127.0.0.1")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        leaf.configure_cert(context)
        der = ssl.PEM_cert_to_DER_cert(leaf.cert_chain_pems[0].bytes().decode())
        self.cert_sha256 = hashlib.sha256(der).hexdigest()
        self.ca_pem = ca.cert_pem.bytes().decode()
        self._server = _Server(("127.0.0.1", 0), context if https else None, model, auth, hashlib.sha256(der).digest())
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
    """A WinRmTarget for the fake guest: Basic over HTTPS (NTLM: `ntlm_guest`), CA-validated, short bounds."""
    return WinRmTarget(
        host=wsman_server.host,
        port=wsman_server.port,
        username=guest.username,
        password=guest.password,
        transport="basic",
        ca_certificate=wsman_server.ca_pem,
        connect_timeout=5.0,
    )


@pytest.fixture
def ntlm_user_file(guest: GuestModel, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    """The local account the NTLM acceptor checks logons against (pyspnego reads NTLM_USER_FILE)."""
    path = tmp_path / "ntlm-users"
    path.write_text(f":{guest.username}:{guest.password}\n")
    monkeypatch.setenv("NTLM_USER_FILE", str(path))
    return str(path)


@pytest.fixture(params=["https", "http"])
def ntlm_guest(
    request: pytest.FixtureRequest, guest: GuestModel, wsman_ca: trustme.CA, ntlm_user_file: str
) -> Iterator[tuple[FakeWsman, WinRmTarget]]:
    """The fake guest behind a default listener doing real NTLM: over https with channel binding (CA-validated), or
    over http with WS-Man message encryption. Yields the server and a target with the product's default transport."""
    https = request.param == "https"
    server = FakeWsman(guest, wsman_ca, auth="ntlm", https=https).start()
    try:
        yield (
            server,
            WinRmTarget(
                host=server.host,
                port=server.port,
                username=guest.username,
                password=guest.password,
                scheme=request.param,
                ca_certificate=server.ca_pem if https else None,
                connect_timeout=5.0,
            ),
        )
    finally:
        server.stop()
