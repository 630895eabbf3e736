"""Generalize a Windows guest with sysprep over WinRM: fail fast, explain why, survive a dropped connection.

The step, in order (each failure stops everything and changes nothing before sysprep starts):

0. read Windows Setup's ImageState: already IMAGE_STATE_GENERALIZE_RESEAL_TO_OOBE → done, no second sysprep;
   a sysprep already running (an earlier, interrupted run of this step) → watch it instead of starting another;
1. wait until the Azure guest agent services run (the agent takes part in sysprep: packer#5945);
2. - 5. pre-checks for the usual causes of a failed sysprep: unsupported server roles, BitLocker on the OS volume,
   AppX packages installed for a user only, a pending reboot (each skippable by name);
6. start Sysprep.exe /oobe /generalize /quiet /quit exactly once, detached from the WinRM shell;
7. watch ImageState: success at IMAGE_STATE_GENERALIZE_RESEAL_TO_OOBE; failure as soon as sysprep is gone and the
   state is anything else, with the tails of the Panther logs; a dropped connection only means reconnecting.

The guest side is plain PowerShell in hooks/scripts/windows/, sent unmodified behind a prelude of whitelisted
values. Each script prints one JSON line of facts; the decisions are made here.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
import socket
import ssl
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import urllib3
from requests.adapters import HTTPAdapter
from winrm.exceptions import (
    InvalidCredentialsError,
    WinRMError,
    WinRMOperationTimeoutError,
    WinRMTransportError,
    WSManFaultError,
)
from winrm.protocol import Protocol

from hooks.errors import (
    ConfigError,
    GuestCommandFailed,
    GuestConnectionError,
    HostKeyMismatch,
    ImageGalleryError,
    PreCheckFailed,
    SysprepFailed,
    WaitTimeout,
)
from hooks.log import Log
from hooks.targets import GuestResult, SysprepOptions, WinRmTarget
from hooks.waiting import Deadline, poll, retry

SCRIPTS = Path(__file__).parent / "scripts" / "windows"

RESEAL_TO_OOBE = "IMAGE_STATE_GENERALIZE_RESEAL_TO_OOBE"
UNDEPLOYABLE = "IMAGE_STATE_UNDEPLOYABLE"
COMPLETE = "IMAGE_STATE_COMPLETE"

CHECKS = ("guest-agent", "server-roles", "bitlocker", "appx", "pending-reboot")
"""Names accepted in SysprepOptions.skip_checks, in the order the checks run."""

AGENT_SERVICES = ("RdAgent", "WindowsAzureTelemetryService", "WindowsAzureGuestAgent")
REQUIRED_AGENT_SERVICE = "WindowsAzureGuestAgent"
"""Newer agents no longer install WindowsAzureTelemetryService; the guest agent itself must be there."""

UNSUPPORTED_ROLES: Mapping[str, str] = {
    # Microsoft, "Sysprep Support for Server Roles". Keys are Get-WindowsFeature names.
    "AD-Certificate": "Active Directory Certificate Services",
    "AD-Domain-Services": "Active Directory Domain Services",
    "ADFS-Federation": "Active Directory Federation Services",
    "ADLDS": "Active Directory Lightweight Directory Services",
    "ADRMS": "Active Directory Rights Management Services",
    "DHCP": "DHCP Server",
    "Fax": "Fax Server",
    "NPAS": "Network Policy and Access Services",
    "UpdateServices": "Windows Server Update Services",
}
WDS_FEATURE = "WDS"
"""Windows Deployment Services: unsupported only once initialized."""

SYSPREP_MODES = frozenset({"vm", ""})
EXTRA_ARG = re.compile(r"^/[A-Za-z]+(:[A-Za-z0-9]+)?$")
FIXED_SYSPREP_FLAGS = frozenset({"/oobe", "/generalize", "/quiet", "/quit", "/mode"})
CONFLICTING_FLAGS = frozenset({"/audit", "/reboot", "/shutdown"})
"""/audit contradicts /oobe; /reboot and /shutdown contradict /quit, which keeps the VM up so completion is seen."""

TRANSPORTS = frozenset({"ntlm", "kerberos", "credssp", "basic"})

CMD_LINE_LIMIT = 8191
"""WinRS runs the command through cmd.exe, whose command line is limited to 8191 characters."""
POWERSHELL = "powershell.exe -NoProfile -NonInteractive -EncodedCommand "

OPERATION_TIMEOUT = 20
"""Seconds WinRM holds one Receive open before answering "still running" (the client then asks again)."""
READ_TIMEOUT = 30
"""Seconds before one HTTP request to WinRM counts as lost; must exceed OPERATION_TIMEOUT."""
SCRIPT_TIMEOUT = 300.0
"""Bound for one guest script (Get-WindowsFeature and Get-AppxPackage -AllUsers can take minutes when cold)."""
LOG_TAIL_LINES = 40
MAX_BACKOFF = 15.0


# ----------------------------------------------------------------------------------------------------------------
# The step
# ----------------------------------------------------------------------------------------------------------------


def sysprep(target: WinRmTarget, options: SysprepOptions, log: Log) -> GuestResult:
    """Generalize the Windows guest at `target` with sysprep, as described in the module docstring.

    Raises ConfigError (bad target/options, nothing contacted), GuestConnectionError / HostKeyMismatch (could not
    connect or authenticate), PreCheckFailed (nothing changed), SysprepFailed (with the Panther log tails),
    WaitTimeout (a bound ran out; names what was last seen) or GuestCommandFailed (a guest script broke)."""
    validate(target, options)
    log = Log(log.resource, (*log.secrets, *target.secrets), log.sink, log.lines)
    try:
        with WinRmGuest.connect(target, log, backoff=_first_backoff(options)) as guest:
            return WindowsSysprep(guest, options, log).run()
    except ImageGalleryError as exc:
        # Last line of defence: guest output quoted in a message could carry the password.
        exc.args = tuple(log.redact(a) if isinstance(a, str) else a for a in exc.args)
        raise


class WindowsSysprep:
    """The ordered steps of generalizing one Windows guest; each step is one method."""

    def __init__(self, guest: WinRmGuest, options: SysprepOptions, log: Log) -> None:
        self.guest = guest
        self.options = options
        self.log = log
        self.host = guest.where

    def run(self) -> GuestResult:
        state = self.read_initial_state()
        if state.generalized:
            self.log.info(f"ImageState is already {RESEAL_TO_OOBE}: not running sysprep again")
            return GuestResult(
                self.method,
                f"already generalized ({RESEAL_TO_OOBE}); sysprep was not run again",
            )
        if state.running:
            self.log.warn(
                f"sysprep is already running (PID {_pids(state)}), probably from an interrupted earlier run: "
                "watching it instead of starting another"
            )
            launch = Launch(pid=state.sysprep_pids[0], certain=True)
        else:
            if state.state == UNDEPLOYABLE:
                self.log.warn(f"ImageState is {UNDEPLOYABLE}: an earlier sysprep failed or was interrupted; retrying")
            elif state.state != COMPLETE:
                raise PreCheckFailed(
                    f"{self.host} is in Windows Setup state {state.state or '(no ImageState)'}, not {COMPLETE}: "
                    "it has not finished setup. Nothing was changed. Let setup finish (or recreate the VM), then "
                    "run again."
                )
            self.wait_for_guest_agent()
            self.check_server_roles()
            self.check_bitlocker()
            self.check_appx()
            self.check_pending_reboot()
            launch = self.start_sysprep()
        started = time.monotonic()
        final = self.watch(launch)
        took = time.monotonic() - started
        self.log.info(f"generalized: ImageState {RESEAL_TO_OOBE} after {took:.0f}s")
        return GuestResult(
            self.method,
            f"sysprep generalized the VM in {took:.0f}s ({RESEAL_TO_OOBE}); stop and deallocate it next and do not "
            "start it again before it is captured",
            output_tail=final.setupact_tail,
        )

    @property
    def method(self) -> str:
        return " ".join(("sysprep", *sysprep_flags(self.options)))

    # -- step 0 ---------------------------------------------------------------------------------------------------

    def read_initial_state(self) -> ImageState:
        state = ImageState.parse(self.guest.run_reconnecting(GuestScript("image-state", {"TailLines": 0})))
        self.log.info(f"connected to {self.host}: {state.describe()}")
        return state

    # -- step 1 ---------------------------------------------------------------------------------------------------

    def wait_for_guest_agent(self) -> None:
        if self._skipped("guest-agent"):
            return
        self.log.info("waiting for the Azure guest agent services to run")
        deadline = Deadline(self.options.agent_timeout, f"the Azure guest agent services on {self.host} to run")
        seen: list[str] = []

        def probe() -> tuple[bool, AgentStatus]:
            status = AgentStatus.parse(self.guest.run_reconnecting(GuestScript("agent-status")))
            if status.describe() not in seen:
                seen.append(status.describe())
                self.log.info(f"guest agent: {status.describe()}")
            problem = status.hopeless()
            if problem:
                raise self._precheck("guest-agent", problem, _AGENT_FIX)
            return status.ready, status

        try:
            poll(probe, deadline, self.options.poll_interval, AgentStatus.describe)
        except WaitTimeout as exc:
            if not deadline.expired:
                raise  # a guest script ran out of time, not the agent
            raise self._precheck(
                "guest-agent",
                f"the Azure guest agent services did not all run within {self.options.agent_timeout:g}s "
                f"(last seen: {seen[-1] if seen else 'nothing'})",
                _AGENT_FIX,
            ) from exc

    # -- steps 2 to 5 ---------------------------------------------------------------------------------------------

    def check_server_roles(self) -> None:
        if self._skipped("server-roles"):
            return
        facts = self.guest.run_reconnecting(GuestScript("check-server-roles"))
        installed = set(_str_list(facts, "installed"))
        found = [f"{UNSUPPORTED_ROLES[name]} ({name})" for name in UNSUPPORTED_ROLES if name in installed]
        if WDS_FEATURE in installed and _bool(facts, "wds_initialized"):
            found.append(f"Windows Deployment Services ({WDS_FEATURE}), initialized")
        switches = _str_list(facts, "vm_switches")
        if switches:
            found.append("Hyper-V virtual switches: " + ", ".join(switches))
        if found:
            raise self._precheck(
                "server-roles",
                "sysprep does not support these server roles: " + "; ".join(found),
                "remove them (Uninstall-WindowsFeature -Name <name>; Remove-VMSwitch for the switches) and restart, "
                "or build the image without them and configure them after deployment",
            )
        if not _bool(facts, "feature_query"):
            self.log.info("pre-check server-roles: no Get-WindowsFeature (client edition): no server roles")
        else:
            self.log.info("pre-check server-roles: ok (no role sysprep does not support)")

    def check_bitlocker(self) -> None:
        if self._skipped("bitlocker"):
            return
        facts = self.guest.run_reconnecting(GuestScript("check-bitlocker"))
        drive = _str(facts, "mount_point") or "the OS volume"
        source, error = _str(facts, "source"), _str(facts, "error")
        protection, volume = _str(facts, "protection_status"), _str(facts, "volume_status")
        fix = (
            f"decrypt it: Disable-BitLocker -MountPoint {drive}, then wait until (Get-BitLockerVolume {drive})"
            ".VolumeStatus is FullyDecrypted (with Azure Disk Encryption, disable it through Azure instead)"
        )
        if error:
            raise self._precheck("bitlocker", f"could not read the BitLocker state of {drive}: {error}", fix)
        if source == "none":
            self.log.info("pre-check bitlocker: ok (BitLocker is not installed)")
            return
        decrypted = _squash(volume) == "fullydecrypted"
        protected = _squash(protection) in ("on", "protectionon")
        if not volume:
            raise self._precheck(
                "bitlocker", f"could not understand the BitLocker state of {drive} (from {source})", fix
            )
        if protected or not decrypted:
            raise self._precheck(
                "bitlocker",
                f"BitLocker is active on {drive} (protection {protection or 'unknown'}, volume {volume}); sysprep "
                "fails with 0x80310039",
                fix,
            )
        self.log.info(f"pre-check bitlocker: ok ({drive} {volume})")

    def check_appx(self) -> None:
        if self._skipped("appx"):
            return
        facts = self.guest.run_reconnecting(GuestScript("check-appx"))
        if _str(facts, "error"):
            raise self._precheck(
                "appx", f"could not list the AppX packages: {_str(facts, 'error')}", "check Get-AppxPackage -AllUsers"
            )
        if not _bool(facts, "supported"):
            self.log.info("pre-check appx: ok (no AppX support on this edition)")
            return
        provisioned = {(_str(p, "name"), _str(p, "version")) for p in _dict_list(facts, "provisioned")}
        user_only = [
            p for p in _dict_list(facts, "packages") if (_str(p, "name"), _str(p, "version")) not in provisioned
        ]
        if user_only:
            listed = "; ".join(
                f"{_str(p, 'full_name') or _str(p, 'name')} (for {', '.join(_str_list(p, 'users')) or 'a user'})"
                for p in user_only[:10]
            )
            more = f" and {len(user_only) - 10} more" if len(user_only) > 10 else ""
            raise self._precheck(
                "appx",
                f"AppX packages are installed for a user but not provisioned for all users: {listed}{more}; sysprep "
                "fails with 0x80073cf2",
                "remove them for those users (Remove-AppxPackage -Package <full name> -AllUsers) or provision them "
                "(Add-AppxProvisionedPackage), and keep the Microsoft Store from updating apps before capture",
            )
        self.log.info("pre-check appx: ok (every user package is provisioned)")

    def check_pending_reboot(self) -> None:
        if self._skipped("pending-reboot"):
            return
        facts = self.guest.run_reconnecting(GuestScript("check-pending-reboot"))
        reasons = []
        if _bool(facts, "cbs_reboot_pending"):
            reasons.append("component servicing (CBS RebootPending)")
        if _bool(facts, "wu_reboot_required"):
            reasons.append("Windows Update (RebootRequired)")
        renames = _int(facts, "file_rename_count")
        if renames:
            examples = ", ".join(_str_list(facts, "file_renames")[:4])
            reasons.append(f"{renames} pending file rename operation(s) ({examples})")
        if reasons:
            raise self._precheck(
                "pending-reboot",
                "a reboot is pending: " + "; ".join(reasons),
                "restart the VM (Restart-Computer, or restart it in Azure), let servicing finish, then run again",
            )
        self.log.info("pre-check pending-reboot: ok")

    # -- step 6 ---------------------------------------------------------------------------------------------------

    def start_sysprep(self) -> Launch:
        script = GuestScript("start-sysprep", {"Mode": self.options.mode, "ExtraArgs": tuple(self.options.extra_args)})
        try:
            facts = self.guest.run_reconnecting(script, retry_after_command=False)
        except _CommandOutcomeUnknown as lost:
            # The request that starts sysprep may or may not have reached the guest: never send it twice.
            self.log.warn(
                f"the connection dropped while starting sysprep ({lost.summary}); it may or may not have started. "
                "Not starting it again: watching ImageState instead"
            )
            return Launch(pid=None, certain=False)
        for removed in _str_list(facts, "removed"):
            self.log.info(f"removed leftover answer file {removed}")
        already = _int_list(facts, "already_running")
        if not _bool(facts, "started"):
            # Someone started sysprep between step 0 and now; watch that one.
            self.log.warn(f"sysprep was already running (PID {', '.join(map(str, already))}); watching it")
            return Launch(pid=already[0] if already else None, certain=True)
        pid = _int(facts, "pid")
        self.log.info(f"sysprep started (PID {pid}): {_str(facts, 'command_line')}")
        return Launch(pid=pid, certain=True)

    # -- step 7 ---------------------------------------------------------------------------------------------------

    def watch(self, launch: Launch) -> ImageState:
        deadline = Deadline(self.options.sysprep_timeout, f"sysprep on {self.host} to reach {RESEAL_TO_OOBE}")
        last: list[ImageState] = []

        def read() -> ImageState:
            try:
                return ImageState.parse(
                    self.guest.run(GuestScript("image-state", {"TailLines": 0}), faults_are_drops=True)
                )
            except _ConnectionLost as lost:
                return self._reconnect_during_watch(lost, deadline, last)

        def probe() -> tuple[bool, ImageState]:
            state = read()
            if not last or state.describe() != last[-1].describe():
                self.log.info(f"sysprep: {state.describe()}")
            last.append(state)
            if state.generalized:
                return True, state
            if not state.running:
                raise self._sysprep_failed(launch, state, deadline)
            return False, state

        final = poll(probe, deadline, self.options.poll_interval, ImageState.describe)
        with contextlib.suppress(_ConnectionLost, GuestCommandFailed, GuestConnectionError, WaitTimeout):
            # Best effort: the end of setupact.log, for the record.
            final = ImageState.parse(
                self.guest.run(GuestScript("image-state", {"TailLines": 20}), faults_are_drops=True)
            )
        return final

    def _reconnect_during_watch(self, lost: _ConnectionLost, deadline: Deadline, last: list[ImageState]) -> ImageState:
        self.log.info(f"connection lost while sysprep runs ({lost.summary}); reconnecting (sysprep keeps running)")
        bound = min(self.guest.target.connect_timeout, deadline.remaining)
        started = time.monotonic()
        try:
            facts = self.guest.run_reconnecting(
                GuestScript("image-state", {"TailLines": 0}),
                deadline=Deadline(bound, f"WinRM at {self.host} to answer again"),
                faults_are_drops=True,
            )
        except GuestConnectionError as exc:
            if not isinstance(exc.__cause__, WaitTimeout):
                raise  # e.g. the credentials are refused now: reconnecting cannot help
            seen = last[-1].describe() if last else "nothing yet"
            if deadline.expired:
                raise deadline.timeout(f"{seen}; the connection was lost: {lost.summary}") from exc
            raise GuestConnectionError(
                f"lost the WinRM connection to {self.host} while sysprep was running and could not reconnect "
                f"within {bound:g}s ({lost.summary}). Sysprep was started once and may still be running (last seen: "
                f"{seen}). Do not start the VM's sysprep again by hand: run this step again, it reconnects and "
                "keeps watching without starting another sysprep."
            ) from exc
        state = ImageState.parse(facts)
        self.log.info(f"reconnected after {time.monotonic() - started:.1f}s")
        return state

    def _sysprep_failed(self, launch: Launch, state: ImageState, deadline: Deadline) -> SysprepFailed:
        tails = state
        with contextlib.suppress(_ConnectionLost, GuestCommandFailed, GuestConnectionError, WaitTimeout):
            tails = ImageState.parse(
                self.guest.run(GuestScript("image-state", {"TailLines": LOG_TAIL_LINES}), faults_are_drops=True)
            )
        who = f"Sysprep.exe (PID {launch.pid})" if launch.pid else "Sysprep.exe"
        maybe = (
            ""
            if launch.certain
            else " The connection dropped while sysprep was being started, so it may never have started."
        )
        return SysprepFailed(
            f"sysprep failed on {self.host}: {who} is no longer running and ImageState is "
            f"{tails.state or '(not set)'}, not {RESEAL_TO_OOBE} (after {deadline.elapsed:.0f}s).{maybe} The VM "
            "was not captured and is still running. Common causes: AppX packages installed for a user only "
            "(0x80073cf2), BitLocker (0x80310039), unsupported server roles, a pending reboot. Fix the cause "
            "shown below in the VM, then run again. Full logs: %WINDIR%\\System32\\Sysprep\\Panther\\.\n"
            f"--- setuperr.log (last {LOG_TAIL_LINES} lines) ---\n{tails.setuperr_tail or '(empty)'}\n"
            f"--- setupact.log (last {LOG_TAIL_LINES} lines) ---\n{tails.setupact_tail or '(empty)'}"
        )

    # -- helpers --------------------------------------------------------------------------------------------------

    def _skipped(self, check: str) -> bool:
        if check in self.options.skip_checks:
            self.log.warn(f"pre-check {check} skipped (skip_checks)")
            return True
        return False

    def _precheck(self, check: str, cause: str, fix: str) -> PreCheckFailed:
        return PreCheckFailed(
            f"pre-check {check} failed on {self.host}: {cause}. Nothing was changed; sysprep was not started. "
            f"Fix: {fix}. To proceed anyway, add '{check}' to skip_checks."
        )


_AGENT_FIX = (
    "make sure the Azure VM agent is installed and its services run (Get-Service WindowsAzureGuestAgent, RdAgent; "
    "Set-Service -StartupType Automatic; Start-Service; logs in C:\\WindowsAzure\\Logs), or restart the VM"
)


# ----------------------------------------------------------------------------------------------------------------
# Facts reported by the guest scripts
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageState:
    """What image-state.ps1 saw: Windows Setup's ImageState, running sysprep processes, Panther log tails."""

    state: str
    sysprep_pids: tuple[int, ...]
    setuperr_tail: str = ""
    setupact_tail: str = ""

    @classmethod
    def parse(cls, facts: Mapping[str, Any]) -> ImageState:
        return cls(
            _str(facts, "image_state"),
            tuple(_int_list(facts, "sysprep_pids")),
            _str(facts, "setuperr_tail"),
            _str(facts, "setupact_tail"),
        )

    @property
    def generalized(self) -> bool:
        return self.state == RESEAL_TO_OOBE

    @property
    def running(self) -> bool:
        return bool(self.sysprep_pids)

    def describe(self) -> str:
        running = f"sysprep running (PID {_pids(self)})" if self.running else "sysprep not running"
        return f"ImageState {self.state or '(not set)'}, {running}"


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    present: bool
    status: str
    start_type: str


@dataclass(frozen=True)
class AgentStatus:
    """What agent-status.ps1 saw."""

    services: tuple[ServiceStatus, ...]

    @classmethod
    def parse(cls, facts: Mapping[str, Any]) -> AgentStatus:
        return cls(
            tuple(
                ServiceStatus(_str(s, "name"), _bool(s, "present"), _str(s, "status"), _str(s, "start_type"))
                for s in _dict_list(facts, "services")
            )
        )

    @property
    def ready(self) -> bool:
        return all(s.status == "Running" for s in self.services if s.present) and self._has_agent

    @property
    def _has_agent(self) -> bool:
        return any(s.name == REQUIRED_AGENT_SERVICE and s.present for s in self.services)

    def hopeless(self) -> str:
        """A reason waiting cannot help, or ""."""
        if not self._has_agent:
            return f"the Azure VM agent service {REQUIRED_AGENT_SERVICE} is not installed"
        disabled = [s.name for s in self.services if s.present and s.status != "Running" and s.start_type == "Disabled"]
        if disabled:
            return f"the service(s) {', '.join(disabled)} are disabled and will not start"
        return ""

    def describe(self) -> str:
        return ", ".join(f"{s.name} {s.status if s.present else 'absent'}" for s in self.services)


@dataclass(frozen=True)
class Launch:
    """How sysprep was started: its PID if known, and whether it certainly started."""

    pid: int | None
    certain: bool


# ----------------------------------------------------------------------------------------------------------------
# Guest scripts
# ----------------------------------------------------------------------------------------------------------------

ScriptValue = str | int | tuple[str, ...]
_SAFE_TEXT = re.compile(r"^[A-Za-z0-9/:._-]*$")
_PARAM_NAME = re.compile(r"^[A-Z][A-Za-z]+$")


@dataclass(frozen=True)
class GuestScript:
    """One of the .ps1 files in hooks/scripts/windows, with its parameters as a prelude of fixed assignments."""

    name: str
    params: Mapping[str, ScriptValue] | None = None

    @property
    def text(self) -> str:
        body = (SCRIPTS / f"{self.name}.ps1").read_text(encoding="ascii")
        return "".join(f"${key} = {_ps_literal(value)}\n" for key, value in self._params()) + body

    @property
    def command(self) -> str:
        """The command line that runs the script, as pywinrm's run_ps builds it (base64 of UTF-16LE)."""
        encoded = base64.b64encode(self.text.encode("utf-16-le")).decode("ascii")
        command = POWERSHELL + encoded
        if len(command) >= CMD_LINE_LIMIT:
            # A programming error (scripts are ours); the fake guest enforces the same limit.
            raise ValueError(f"{self.name}.ps1 is too long for one WinRS command line ({len(command)} characters)")
        return command

    def _params(self) -> list[tuple[str, ScriptValue]]:
        params = sorted((self.params or {}).items())
        for key, _ in params:
            if not _PARAM_NAME.match(key):
                raise ValueError(f"invalid script parameter name {key!r}")
        return params


def _ps_literal(value: ScriptValue) -> str:
    """A PowerShell literal for a value that was validated against a whitelist; refuses anything else."""
    if isinstance(value, bool):
        raise TypeError("booleans are not script parameters")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        if not _SAFE_TEXT.match(value):
            raise ValueError(f"refusing to pass {value!r} to a guest script")
        return f"'{value}'"
    return "@(" + ", ".join(_ps_literal(item) for item in value) + ")"


def parse_result_line(stdout: str) -> dict[str, Any] | None:
    """The JSON object a guest script printed as its last `{` line, or None."""
    for line in reversed(stdout.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except ValueError:
                return None
            return value if isinstance(value, dict) else None
    return None


def clean_clixml(stderr: str) -> str:
    """The error text of PowerShell's CLIXML stderr (progress records dropped), or the text as it came."""
    if not stderr.startswith("#< CLIXML"):
        return stderr.strip()
    lines = []
    for chunk in stderr.split("#< CLIXML")[1:]:
        try:
            root = ET.fromstring(chunk.strip())
        except ET.ParseError:
            return stderr.strip()
        for node in root.iter():
            if node.tag.endswith("}S") and node.get("S") == "Error" and node.text:
                lines.append(node.text.replace("_x000D__x000A_", "\n"))
    return "".join(lines).strip()


# ----------------------------------------------------------------------------------------------------------------
# WinRM transport
# ----------------------------------------------------------------------------------------------------------------


class _ConnectionLost(Exception):
    """The connection failed in a way that may heal (refused, reset, timed out, WinRM restarting)."""

    def __init__(self, summary: str, command_sent: bool) -> None:
        super().__init__(summary)
        self.summary = summary
        self.command_sent = command_sent


class _CommandOutcomeUnknown(Exception):
    """The connection failed after a non-repeatable command was sent: it may or may not have run.

    Deliberately not a _ConnectionLost, so that nothing retries it."""

    def __init__(self, summary: str) -> None:
        super().__init__(summary)
        self.summary = summary


class _PinnedFingerprintAdapter(HTTPAdapter):
    """Lets urllib3 check the server certificate's SHA-256 on every connection (so credentials only ever go to
    the pinned certificate, not just on the first probe)."""

    def __init__(self, fingerprint: str) -> None:
        self._fingerprint = fingerprint
        super().__init__()

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any) -> None:
        pool_kwargs["assert_fingerprint"] = self._fingerprint
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)


class WinRmGuest:
    """Runs the guest scripts on one Windows machine over WinRM; one WinRS shell per script.

    A fresh pywinrm Protocol (and HTTP session) per script means a dropped connection never poisons the next
    call: reconnecting is simply the next call."""

    def __init__(self, target: WinRmTarget, log: Log, backoff: float, ca_file: str | None) -> None:
        self.target = target
        self.log = log
        self.backoff = backoff
        self.ca_file = ca_file
        self.where = f"{target.host}:{target.port}"
        self.pin = normalize_fingerprint(target.cert_sha256) if target.cert_sha256 else None

    @classmethod
    @contextlib.contextmanager
    def connect(cls, target: WinRmTarget, log: Log, backoff: float) -> Iterator[WinRmGuest]:
        """A guest ready to run scripts: certificate pin checked (before any credentials are sent)."""
        ca_file = None
        try:
            if target.ca_bundle and not target.insecure_skip_cert_validation:
                with tempfile.NamedTemporaryFile("w", suffix=".pem", delete=False, encoding="ascii") as handle:
                    handle.write(target.ca_bundle)
                    ca_file = handle.name
            guest = cls(target, log, backoff, ca_file)
            guest._announce()
            if guest.pin and target.scheme == "https":
                guest._check_pin()
            yield guest
        finally:
            if ca_file:
                with contextlib.suppress(OSError):
                    os.unlink(ca_file)

    def _announce(self) -> None:
        t = self.target
        if t.scheme == "https" and t.insecure_skip_cert_validation:
            self.log.warn(
                f"the TLS certificate of {self.where} is NOT validated (insecure_skip_cert_validation): anyone on the "
                "path can impersonate the VM and read the password. Use only for throwaway test VMs; set ca_bundle or "
                "cert_sha256 instead."
            )
        how = (
            "not validated"
            if t.insecure_skip_cert_validation
            else "pinned SHA-256"
            if self.pin
            else ("validated against ca_bundle" if self.ca_file else "validated against the system trust store")
        )
        cert = f", certificate {how}" if t.scheme == "https" else ", message encryption by the auth protocol"
        self.log.info(f"connecting to WinRM at {t.scheme}://{self.where} as {t.username} ({t.transport}{cert})")

    # -- running scripts ------------------------------------------------------------------------------------------

    def run_reconnecting(
        self,
        script: GuestScript,
        deadline: Deadline | None = None,
        faults_are_drops: bool = False,
        retry_after_command: bool = True,
    ) -> dict[str, Any]:
        """Run `script`, retrying with backoff while the guest cannot be reached (VM booting, network reset), up
        to `deadline` (default: the target's connect_timeout). With retry_after_command=False, a connection lost
        after the command was sent raises _CommandOutcomeUnknown instead of sending it again."""
        deadline = deadline or Deadline(self.target.connect_timeout, f"WinRM at {self.where} to answer")

        def attempt() -> dict[str, Any]:
            try:
                return self.run(script, faults_are_drops)
            except _ConnectionLost as lost:
                if lost.command_sent and not retry_after_command:
                    raise _CommandOutcomeUnknown(lost.summary) from lost
                raise

        def on_retry(exc: BaseException, delay: float) -> None:
            summary = exc.summary if isinstance(exc, _ConnectionLost) else str(exc)
            self.log.info(f"WinRM at {self.where} not answering ({summary}); retrying in {delay:.1f}s")

        try:
            return retry(attempt, deadline, (_ConnectionLost,), self.backoff, MAX_BACKOFF, on_retry)
        except WaitTimeout as exc:
            cause = exc.__cause__
            if not isinstance(cause, _ConnectionLost):
                raise  # a script ran out of time: not a connection problem
            summary = cause.summary
            raise GuestConnectionError(
                f"could not reach WinRM at {self.target.scheme}://{self.where} within {deadline.seconds:g}s "
                f"(last error: {summary}). Check that the VM is running, that a network security group allows TCP "
                f"{self.target.port} from here, and that WinRM has an {self.target.scheme.upper()} listener "
                "(winrm enumerate winrm/config/listener)."
            ) from exc

    def run(self, script: GuestScript, faults_are_drops: bool = False) -> dict[str, Any]:
        """Run `script` once and return the JSON object it printed.

        Raises _ConnectionLost (may heal; `command_sent` tells whether the script may have run), GuestConnectionError
        (credentials), HostKeyMismatch (certificate), GuestCommandFailed (the script failed), WaitTimeout."""
        command = script.command
        sent = False
        try:
            protocol = self._protocol()
            try:
                shell_id = protocol.open_shell()
                try:
                    sent = True
                    command_id = protocol.run_command(shell_id, command)
                    try:
                        stdout, stderr, code = self._receive(protocol, shell_id, command_id, script.name)
                    finally:
                        _quietly(lambda: protocol.cleanup_command(shell_id, command_id))
                finally:
                    _quietly(lambda: protocol.close_shell(shell_id, close_session=False))
            finally:
                protocol.transport.close_session()
        except InvalidCredentialsError as exc:
            raise GuestConnectionError(
                f"WinRM at {self.where} rejected the credentials of {self.target.username!r} (HTTP 401, "
                f"{self.target.transport}). Check the user name and password (a local account may need the form "
                f"'.\\user' or 'HOST\\user'), and that the WinRM service allows {self.target.transport} "
                "authentication. Not retried: retrying a wrong password can lock the account."
            ) from exc
        except requests.exceptions.SSLError as exc:
            if _is_certificate_problem(exc):
                raise self._certificate_error(str(exc)) from exc
            raise _ConnectionLost(_summarize(exc), False) from exc  # the handshake failed: no request went out
        except requests.exceptions.RequestException as exc:
            raise _ConnectionLost(_summarize(exc), sent and not _never_sent(exc)) from exc
        except WinRMTransportError as exc:
            # An HTTP error without a WS-Management fault: typically WinRM restarting.
            raise _ConnectionLost(f"HTTP {exc.code} from WinRM", sent) from exc
        except WSManFaultError as exc:
            if faults_are_drops:
                raise _ConnectionLost(f"WS-Management fault: {exc.reason.strip()}", sent) from exc
            raise GuestCommandFailed(
                f"WinRM at {self.where} refused to run {script.name}.ps1: {exc.reason.strip()} "
                f"(WS-Management fault {exc.wsman_fault_code})"
            ) from exc
        except WinRMError as exc:
            raise GuestConnectionError(
                f"cannot talk WinRM to {self.where} with transport {self.target.transport}: {exc}. Kerberos and "
                "CredSSP need optional libraries: `uv sync --extra kerberos` or `uv sync --extra credssp` "
                "(Kerberos also needs the system's libkrb5 and a krb5.conf for the VM's realm)."
            ) from exc
        except AssertionError as exc:
            # pywinrm asserts that a response relates to its request.
            raise _ConnectionLost("a WinRM response did not match its request", sent) from exc

        text_out = stdout.decode("utf-8", errors="replace")
        text_err = clean_clixml(stderr.decode("utf-8", errors="replace"))
        result = parse_result_line(text_out) if code == 0 else None
        if result is None:
            raise GuestCommandFailed(
                f"guest script {script.name}.ps1 failed on {self.where} (exit code {code})"
                + (f": {_tail(text_err, 15)}" if text_err else "")
                + (f"\n--- output ---\n{_tail(text_out, 15)}" if text_out.strip() else "")
            )
        return result

    def _receive(self, protocol: Protocol, shell_id: str, command_id: str, name: str) -> tuple[bytes, bytes, int]:
        # pywinrm's get_command_output waits forever; this loop has a bound.
        deadline = Deadline(SCRIPT_TIMEOUT, f"guest script {name}.ps1 to finish on {self.where}")
        out: list[bytes] = []
        err: list[bytes] = []
        while True:
            try:
                stdout, stderr, code, done = protocol.get_command_output_raw(shell_id, command_id)
            except WinRMOperationTimeoutError:
                stdout, stderr, code, done = b"", b"", -1, False
            out.append(stdout)
            err.append(stderr)
            if done:
                return b"".join(out), b"".join(err), code
            deadline.check("still running")

    def _protocol(self) -> Protocol:
        t = self.target
        host = f"[{t.host}]" if ":" in t.host and not t.host.startswith("[") else t.host
        kwargs: dict[str, Any] = {
            "endpoint": f"{t.scheme}://{host}:{t.port}/wsman",
            "transport": t.transport,
            "username": t.username,
            "password": t.password,
            "read_timeout_sec": READ_TIMEOUT,
            "operation_timeout_sec": OPERATION_TIMEOUT,
            # WinRM goes straight to the VM; an HTTP(S)_PROXY from the environment would only get in the way.
            "proxy": None,
        }
        if t.scheme == "https":
            if t.insecure_skip_cert_validation or (self.pin and not self.ca_file):
                kwargs["server_cert_validation"] = "ignore"
            else:
                kwargs["server_cert_validation"] = "validate"
                # None: the default trust store, not REQUESTS_CA_BUNDLE from the environment.
                kwargs["ca_trust_path"] = self.ca_file
        protocol = Protocol(**kwargs)
        if self.pin and t.scheme == "https":
            session = protocol.transport.build_session()
            session.mount("https://", _PinnedFingerprintAdapter(self.pin))
        return protocol

    # -- certificates ---------------------------------------------------------------------------------------------

    def _check_pin(self) -> None:
        """Compare the presented certificate with the pinned fingerprint before any credentials are sent."""
        deadline = Deadline(self.target.connect_timeout, f"WinRM at {self.where} to accept TLS connections")

        def attempt() -> str:
            try:
                return presented_fingerprint(self.target.host, self.target.port, READ_TIMEOUT)
            except OSError as exc:
                raise _ConnectionLost(_summarize(exc), False) from exc

        def on_retry(exc: BaseException, delay: float) -> None:
            self.log.info(f"WinRM at {self.where} not answering ({exc}); retrying in {delay:.1f}s")

        try:
            presented = retry(attempt, deadline, (_ConnectionLost,), self.backoff, MAX_BACKOFF, on_retry)
        except WaitTimeout as exc:
            raise GuestConnectionError(
                f"could not reach WinRM at https://{self.where} within {deadline.seconds:g}s ({exc}). Check that "
                f"the VM is running and that TCP {self.target.port} is allowed from here."
            ) from exc
        if presented != self.pin:
            raise HostKeyMismatch(
                f"the TLS certificate of WinRM at {self.where} does not match the pinned fingerprint: expected "
                f"SHA-256 {_colons(self.pin or '')}, presented {_colons(presented)}. No credentials were sent. If the "
                "certificate was replaced on purpose, verify the new one out of band (in the VM: "
                "Get-ChildItem Cert:\\LocalMachine\\My) and update cert_sha256; otherwise someone may be "
                "intercepting the connection."
            )
        self.log.info(f"TLS certificate of {self.where} matches the pinned SHA-256")

    def _certificate_error(self, reason: str) -> HostKeyMismatch:
        try:
            presented = _colons(presented_fingerprint(self.target.host, self.target.port, 10))
        except OSError:
            presented = "(could not be read)"
        if self.pin and "fingerprints did not match" in reason.lower():
            expected = f"the pinned SHA-256 {_colons(self.pin)}"
        elif self.ca_file:
            expected = "a certificate issued by ca_bundle for this host name"
        else:
            expected = "a certificate trusted by the system trust store for this host name"
        return HostKeyMismatch(
            f"the TLS certificate of WinRM at {self.where} is not the one configured: expected {expected}, "
            f"presented SHA-256 {presented} ({_summarize_ssl(reason)}). No credentials were sent. Set ca_bundle to "
            "the CA (or self-signed certificate) of the VM's WinRM listener and connect by a name the certificate "
            "carries, or pin it with cert_sha256 after verifying it out of band."
        )


def presented_fingerprint(host: str, port: int, timeout: float) -> str:
    """SHA-256 (hex) of the certificate a TLS server presents; no verification, no data sent."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection((host, port), timeout=timeout) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    if not der:
        raise ssl.SSLError("the server presented no certificate")
    return hashlib.sha256(der).hexdigest()


def normalize_fingerprint(text: str) -> str:
    return re.sub(r"[\s:]", "", text).lower()


def _colons(hex_digest: str) -> str:
    return ":".join(hex_digest[i : i + 2] for i in range(0, len(hex_digest), 2)).upper()


def _is_certificate_problem(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "certificate verify failed" in text or "fingerprints did not match" in text


def _summarize_ssl(reason: str) -> str:
    match = re.search(r"certificate verify failed: ([^(\"')]+)", reason, re.IGNORECASE)
    if match:
        return "certificate verify failed: " + match.group(1).strip(" .,")
    if "fingerprints did not match" in reason.lower():
        return "fingerprint did not match"
    return reason[:200]


def _summarize(exc: BaseException) -> str:
    """A short reason for a transport error, instead of urllib3's nested reprs."""
    text = str(exc)
    lowered = text.lower()
    for needle, summary in (
        ("refused", "connection refused"),
        ("timed out", "timed out"),
        ("timeout", "timed out"),
        ("reset by peer", "connection reset"),
        ("remotedisconnected", "connection closed by the host"),
        ("connection aborted", "connection closed by the host"),
        ("eof occurred", "connection closed during the TLS handshake"),
        ("unexpected_eof", "connection closed during the TLS handshake"),
        ("name or service not known", "host name not found"),
        ("nodename nor servname", "host name not found"),
        ("no route to host", "no route to host"),
        ("network is unreachable", "network unreachable"),
    ):
        if needle in lowered:
            return summary
    return f"{type(exc).__name__}: {text[:200]}"


def _never_sent(exc: requests.exceptions.RequestException) -> bool:
    """Whether the request certainly never left (no TCP connection was made)."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    reason = exc.args[0] if exc.args else None
    reason = getattr(reason, "reason", reason)
    return isinstance(reason, urllib3.exceptions.NewConnectionError | urllib3.exceptions.ConnectTimeoutError)


def _quietly(action: Callable[[], object]) -> None:
    """Best-effort cleanup after a command: the shell times out on its own if this fails."""
    with contextlib.suppress(
        requests.exceptions.RequestException, WinRMError, WinRMTransportError, AssertionError, OSError, StopIteration
    ):
        action()


# ----------------------------------------------------------------------------------------------------------------
# Validation
# ----------------------------------------------------------------------------------------------------------------


def sysprep_flags(options: SysprepOptions) -> tuple[str, ...]:
    mode = (f"/mode:{options.mode}",) if options.mode else ()
    return ("/oobe", "/generalize", "/quiet", "/quit", *mode, *options.extra_args)


def validate(target: WinRmTarget, options: SysprepOptions) -> None:
    """Every problem with the target and the options at once, as a ConfigError; nothing is contacted."""
    problems = []
    if not target.host.strip():
        problems.append("host: must not be empty")
    if not target.username:
        problems.append("username: must not be empty")
    if target.transport not in TRANSPORTS:
        problems.append(f"transport: {target.transport!r} is not one of {', '.join(sorted(TRANSPORTS))}")
    if target.scheme not in ("https", "http"):
        problems.append(f"scheme: {target.scheme!r} is not https or http")
    elif target.scheme == "http" and target.transport == "basic":
        problems.append("scheme: basic authentication over http would send the password in clear text; use https")
    if target.scheme == "http" and (target.ca_bundle or target.cert_sha256 or target.insecure_skip_cert_validation):
        problems.append("scheme: ca_bundle, cert_sha256 and insecure_skip_cert_validation need https")
    if not 0 < target.port < 65536:
        problems.append(f"port: {target.port} is not a TCP port")
    if target.cert_sha256 and not re.fullmatch(r"[0-9a-f]{64}", normalize_fingerprint(target.cert_sha256)):
        problems.append("cert_sha256: must be a SHA-256 fingerprint (64 hex digits, colons allowed)")
    if target.ca_bundle and "-----BEGIN CERTIFICATE-----" not in target.ca_bundle:
        problems.append("ca_bundle: must be PEM text (-----BEGIN CERTIFICATE-----)")
    if target.insecure_skip_cert_validation and (target.ca_bundle or target.cert_sha256):
        problems.append("insecure_skip_cert_validation: contradicts ca_bundle / cert_sha256; choose one")
    if target.connect_timeout <= 0:
        problems.append("connect_timeout: must be positive")
    if options.mode not in SYSPREP_MODES:
        problems.append(f"mode: {options.mode!r} is not one of {sorted(SYSPREP_MODES)}")
    for i, arg in enumerate(options.extra_args):
        flag = arg.split(":", 1)[0].lower()
        if not EXTRA_ARG.match(arg):
            problems.append(f"extra_args[{i}]: {arg!r} does not match {EXTRA_ARG.pattern}")
        elif flag in FIXED_SYSPREP_FLAGS:
            problems.append(f"extra_args[{i}]: {arg} is always set by this step (or by mode)")
        elif flag in CONFLICTING_FLAGS:
            problems.append(f"extra_args[{i}]: {arg} conflicts with /oobe /quit")
    unknown = sorted(set(options.skip_checks) - set(CHECKS))
    if unknown:
        problems.append(f"skip_checks: unknown {', '.join(unknown)}; known: {', '.join(CHECKS)}")
    for name in ("agent_timeout", "sysprep_timeout", "poll_interval"):
        if getattr(options, name) <= 0:
            problems.append(f"{name}: must be positive")
    if problems:
        raise ConfigError(problems)


def _first_backoff(options: SysprepOptions) -> float:
    """Reconnect attempts start at the poll interval (within 0.05-2 s) and double up to MAX_BACKOFF."""
    return min(max(options.poll_interval, 0.05), 2.0)


# ----------------------------------------------------------------------------------------------------------------
# Reading the JSON facts defensively
# ----------------------------------------------------------------------------------------------------------------


def _str(facts: Mapping[str, Any], key: str) -> str:
    value = facts.get(key)
    return value if isinstance(value, str) else "" if value is None else str(value)


def _bool(facts: Mapping[str, Any], key: str) -> bool:
    return facts.get(key) is True


def _int(facts: Mapping[str, Any], key: str) -> int:
    value = facts.get(key)
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def _list(facts: Mapping[str, Any], key: str) -> list[Any]:
    value = facts.get(key)
    if value is None:
        return []
    # PowerShell 5.1 may unroll a one-element array into its element.
    return value if isinstance(value, list) else [value]


def _str_list(facts: Mapping[str, Any], key: str) -> list[str]:
    return [str(v) for v in _list(facts, key) if v is not None]


def _int_list(facts: Mapping[str, Any], key: str) -> list[int]:
    return [int(v) for v in _list(facts, key) if isinstance(v, int | float) and not isinstance(v, bool)]


def _dict_list(facts: Mapping[str, Any], key: str) -> list[dict[str, Any]]:
    return [v for v in _list(facts, key) if isinstance(v, dict)]


def _squash(text: str) -> str:
    return re.sub(r"[\s_-]", "", text).lower()


def _pids(state: ImageState) -> str:
    return ", ".join(map(str, state.sysprep_pids))


def _tail(text: str, lines: int) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])
