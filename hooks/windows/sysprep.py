"""Generalize a Windows guest with sysprep over WinRM: fail fast, explain why, survive a dropped connection.

The step, in order, as `WindowsSysprep.run` reads (each failure before step 10 stops everything and changes
nothing irreversible):

0. read Windows Setup's ImageState: sysprep already finished (IMAGE_STATE_GENERALIZE_RESEAL_TO_OOBE and no
   Sysprep.exe running) → done, no second sysprep; a sysprep still running (an earlier, interrupted run of this
   step) → watch it instead of starting another, until its process is gone (a Sysprep_succeeded.tag found then may
   be the base image's); IMAGE_STATE_UNDEPLOYABLE → a setup phase failed and the image must be reinstalled: stop;
1. wait until the Azure guest agent services run (the agent takes part in sysprep: packer#5945);
2. - 8. pre-checks for what makes sysprep fail or leaves an image that cannot be deployed: unsupported server
   roles, BitLocker on any fixed drive, AppX packages installed for a user only, a pending reboot, a disabled
   CD/DVD-ROM driver, a removable-storage deny policy (each skippable by name);
9. clean up: leftover answer files from every place Windows Setup looks, the Panther directory, an earlier
   success tag; what was removed is listed in the output;
10. start Sysprep.exe /oobe /generalize /quiet /quit exactly once, detached from the WinRM shell;
11. watch until sysprep has really finished (the state, and the process gone or, only after step 9 removed any
   earlier one, the success tag written);
   failure as soon as sysprep is gone in any other state, with the tails of the Panther logs; a dropped
   connection, or logons refused while sysprep generalizes, only means reconnecting within the bound.

The guest side is plain PowerShell in hooks/scripts/windows/, sent unmodified behind a prelude of whitelisted
values. Each script prints one JSON line of facts; the decisions are made here.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hooks.errors import (
    ConfigError,
    GuestCommandFailed,
    GuestConnectionError,
    ImageGalleryError,
    PreCheckFailed,
    SysprepFailed,
    WaitTimeout,
)
from hooks.log import Log
from hooks.targets import (
    FIELD_NAMES,
    GuestResult,
    SysprepOptions,
    WinRmTarget,
    sysprep_problems,
    winrm_problems,
)
from hooks.waiting import Deadline, poll
from hooks.windows.scripts import (
    GuestScript,
    fact_bool,
    fact_dict_list,
    fact_int,
    fact_int_list,
    fact_str,
    fact_str_list,
    squash,
)
from hooks.windows.transport import CommandOutcomeUnknown, ConnectionLost, WinRmGuest

RESEAL_TO_OOBE = "IMAGE_STATE_GENERALIZE_RESEAL_TO_OOBE"
UNDEPLOYABLE = "IMAGE_STATE_UNDEPLOYABLE"
COMPLETE = "IMAGE_STATE_COMPLETE"

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
CD_DVD_CLASS = "{53f56308-b6bf-11d0-94f2-00a0c91efb8b}"
"""The CD and DVD device class's GUID: the key of its "Removable Storage Access" policies under
HKLM\\SOFTWARE\\Policies\\Microsoft\\Windows\\RemovableStorageDevices (Microsoft, "Policy CSP -
ADMX_RemovableStorage")."""
PROVISIONING_BREAKERS = (f"{CD_DVD_CLASS}!Deny_Read",)
"""The per-class deny policies that keep Azure from provisioning a VM from the image: it hands Windows its answer on
a virtual DVD, which must be readable ("CD and DVD: Deny read access"). Deny_Write and Deny_Execute on any class,
and any deny on other classes (the "Removable Disks: Deny write access" of hardening baselines), do not matter."""
CDROM_SYSTEM_START = 1
"""Start value of the cdrom driver service that Microsoft's "Generalize a Windows VM" requires (1: system)."""

COMMAND_LINE_MARGIN = 1024
"""Every guest script as sent stays this far below cmd.exe's limit (room for later edits of the scripts)."""

LOG_TAIL_LINES = 40

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
        if state.finished:
            self.log.info(f"sysprep already finished ({state.describe()}): not running it again")
            return GuestResult(self.method, f"already generalized ({RESEAL_TO_OOBE}); sysprep was not run again")
        removed: list[str] = []
        if state.running:
            self.log.warn(
                f"sysprep is already running (PID {_pids(state)}), probably from an interrupted earlier run: "
                "watching it instead of starting another"
            )
            # Nothing removed an earlier Sysprep_succeeded.tag (the base image's, say): only the process exit counts.
            launch = Launch(pid=state.sysprep_pids[0], certain=True, tag_is_this_runs=False)
        else:
            self.refuse_unusable_state(state)
            self.wait_for_guest_agent()
            self.check_server_roles()
            self.check_bitlocker()
            self.check_appx()
            self.check_pending_reboot()
            self.check_cdrom()
            self.check_removable_storage()
            removed = self.clean_up()
            launch = self.start_sysprep()
        started = time.monotonic()
        final = self.watch(launch)
        took = time.monotonic() - started
        how = "Sysprep.exe exited" if not final.running else "Sysprep_succeeded.tag written"
        self.log.info(f"generalized: ImageState {RESEAL_TO_OOBE}, {how}, after {took:.0f}s")
        cleaned = f"; removed before sysprep: {', '.join(removed)}" if removed else ""
        return GuestResult(
            self.method,
            f"sysprep generalized the VM in {took:.0f}s ({RESEAL_TO_OOBE}, {how}){cleaned}; deallocate it next "
            "and do not start it again before it is captured",
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

    def refuse_unusable_state(self, state: ImageState) -> None:
        """Only a machine that finished setup (IMAGE_STATE_COMPLETE) can be generalized."""
        if state.state == UNDEPLOYABLE:
            # Microsoft, "Windows Setup States": a setup phase failed; the image must be reinstalled. Another
            # sysprep on top of it would only bake the failed state into the image.
            raise PreCheckFailed(
                f"{self.host} is in Windows Setup state {UNDEPLOYABLE} and no sysprep is running: a setup phase "
                "failed on it (typically an earlier sysprep that failed during generalize). Per Microsoft's "
                '"Windows Setup States", such an image must be reinstalled; sysprep is not run again on it. Nothing '
                "was changed. Rebuild the source VM (or restore its OS disk from a snapshot taken before that "
                "sysprep), fix what made sysprep fail (its logs are in %WINDIR%\\System32\\Sysprep\\Panther), "
                "then run again."
            )
        if state.state != COMPLETE:
            raise PreCheckFailed(
                f"{self.host} is in Windows Setup state {state.state or '(no ImageState)'}, not {COMPLETE}: "
                "it has not finished setup. Nothing was changed. Let setup finish (or recreate the VM), then "
                "run again."
            )

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

    # -- steps 2 to 8 ---------------------------------------------------------------------------------------------

    def check_server_roles(self) -> None:
        if self._skipped("server-roles"):
            return
        facts = self.guest.run_reconnecting(GuestScript("check-server-roles"))
        errors = fact_str_list(facts, "errors")
        if errors:
            # An unanswered question is not "no roles": the machine may well run one sysprep does not support.
            raise self._precheck(
                "server-roles",
                "could not find out which server roles are installed: " + "; ".join(errors),
                "run Get-WindowsFeature | Where-Object Installed (and Get-VMSwitch) in the VM to see why the query "
                "fails, and fix that",
            )
        installed = set(fact_str_list(facts, "installed"))
        found = [f"{UNSUPPORTED_ROLES[name]} ({name})" for name in UNSUPPORTED_ROLES if name in installed]
        if WDS_FEATURE in installed and fact_bool(facts, "wds_initialized"):
            found.append(f"Windows Deployment Services ({WDS_FEATURE}), initialized")
        switches = fact_str_list(facts, "vm_switches")
        if switches:
            found.append("Hyper-V virtual switches: " + ", ".join(switches))
        if found:
            raise self._precheck(
                "server-roles",
                "sysprep does not support these server roles: " + "; ".join(found),
                "remove them (Uninstall-WindowsFeature -Name <name>; Remove-VMSwitch for the switches) and restart, "
                "or build the image without them and configure them after deployment",
            )
        if not fact_bool(facts, "feature_query"):
            self.log.info("pre-check server-roles: no Get-WindowsFeature (client edition): no server roles")
        else:
            self.log.info("pre-check server-roles: ok (no role sysprep does not support)")

    def check_bitlocker(self) -> None:
        if self._skipped("bitlocker"):
            return
        facts = self.guest.run_reconnecting(GuestScript("check-bitlocker"))
        source, error = fact_str(facts, "source"), fact_str(facts, "error")
        os_drive = fact_str(facts, "os_drive") or "the OS volume"
        volumes = fact_dict_list(facts, "volumes")

        def fix(drives: str) -> str:
            return (
                f"decrypt {drives} with Disable-BitLocker -MountPoint <drive>, then wait until (Get-BitLockerVolume "
                "<drive>).VolumeStatus is FullyDecrypted (with Azure Disk Encryption, disable it through Azure "
                "instead)"
            )

        if error:
            raise self._precheck(
                "bitlocker", f"could not read the BitLocker state of the fixed drives: {error}", fix("them")
            )
        if source == "none":
            self.log.info("pre-check bitlocker: ok (BitLocker is not installed)")
            return
        if not volumes:
            raise self._precheck("bitlocker", f"{source} reported no fixed drive, not even {os_drive}", fix("them"))
        encrypted: list[str] = []
        drives: list[str] = []
        seen: list[str] = []
        for volume in volumes:
            drive = fact_str(volume, "mount_point") or "?"
            protection, status = fact_str(volume, "protection_status"), fact_str(volume, "volume_status")
            if not status:
                raise self._precheck(
                    "bitlocker", f"could not understand the BitLocker state of {drive} (from {source})", fix(drive)
                )
            protected = squash(protection) in ("on", "protectionon")
            if protected or squash(status) != "fullydecrypted":
                role = "; the OS drive: sysprep fails with 0x80310039" if drive.lower() == os_drive.lower() else ""
                # The mount point arrives with its colon ("D:"): the details go in parentheses, not after a colon.
                encrypted.append(f"{drive} (protection {protection or 'unknown'}, volume {status}{role})")
                drives.append(drive)
            seen.append(f"{drive} {status}")
        if encrypted:
            raise self._precheck(
                "bitlocker",
                "BitLocker is active on fixed drives that must be fully decrypted before generalizing: "
                + "; ".join(encrypted),
                fix(", ".join(drives)),
            )
        self.log.info(f"pre-check bitlocker: ok ({', '.join(seen)})")

    def check_appx(self) -> None:
        if self._skipped("appx"):
            return
        facts = self.guest.run_reconnecting(GuestScript("check-appx"))
        if fact_str(facts, "error"):
            raise self._precheck(
                "appx",
                f"could not list the AppX packages: {fact_str(facts, 'error')}",
                "check Get-AppxPackage -AllUsers",
            )
        if not fact_bool(facts, "supported"):
            self.log.info("pre-check appx: ok (no AppX support on this edition)")
            return
        provisioned = {(fact_str(p, "name"), fact_str(p, "version")) for p in fact_dict_list(facts, "provisioned")}
        user_only = [
            p
            for p in fact_dict_list(facts, "packages")
            if (fact_str(p, "name"), fact_str(p, "version")) not in provisioned
        ]
        if user_only:
            listed = "; ".join(
                f"{fact_str(p, 'full_name') or fact_str(p, 'name')} "
                f"(for {', '.join(fact_str_list(p, 'users')) or 'a user'})"
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
        if fact_bool(facts, "cbs_reboot_pending"):
            reasons.append("component servicing (CBS RebootPending)")
        if fact_bool(facts, "wu_reboot_required"):
            reasons.append("Windows Update (RebootRequired)")
        renames = fact_int(facts, "file_rename_count")
        if renames:
            examples = ", ".join(fact_str_list(facts, "file_renames")[:4])
            reasons.append(f"{renames} pending file rename operation(s) ({examples})")
        if reasons:
            raise self._precheck(
                "pending-reboot",
                "a reboot is pending: " + "; ".join(reasons),
                "restart the VM (Restart-Computer, or restart it in Azure), let servicing finish, then run again",
            )
        self.log.info("pre-check pending-reboot: ok")

    def check_cdrom(self) -> None:
        if self._skipped("cdrom"):
            return
        facts = self.guest.run_reconnecting(GuestScript("check-cdrom"))
        start = fact_int(facts, "start") if fact_bool(facts, "present") else None
        if start != CDROM_SYSTEM_START:
            # Azure hands a new VM its provisioning answer on a virtual DVD: without the driver it waits at OOBE.
            found = "the cdrom driver service is missing" if start is None else f"cdrom Start is {start}"
            raise self._precheck(
                "cdrom",
                f"the CD/DVD-ROM driver is not enabled ({found}, HKLM\\SYSTEM\\CurrentControlSet\\Services\\"
                f"cdrom); a VM created from the image would be stuck at OOBE",
                "set-ItemProperty HKLM:\\SYSTEM\\CurrentControlSet\\Services\\cdrom -Name Start -Value 1, then "
                "restart the VM",
            )
        self.log.info("pre-check cdrom: ok (CD/DVD-ROM driver enabled)")

    def check_removable_storage(self) -> None:
        if self._skipped("removable-storage"):
            return
        facts = self.guest.run_reconnecting(GuestScript("check-removable-storage"))
        # Deny_All ("All Removable Storage classes: Deny all access") takes precedence over every class's policy
        # and denies reading the DVD too.
        denied = ["All Removable Storage classes: Deny all access (Deny_All)"] if fact_bool(facts, "deny_all") else []
        harmless: list[str] = []
        for value in fact_str_list(facts, "denied"):
            breaks = value.lower() in {b.lower() for b in PROVISIONING_BREAKERS}
            (denied if breaks else harmless).append(value)
        if harmless:
            self.log.info(
                "pre-check removable-storage: deny policies that do not affect provisioning (it only reads the "
                f"CD/DVD): {', '.join(harmless)}"
            )
        if denied:
            raise self._precheck(
                "removable-storage",
                "a group policy denies reading CD/DVD drives ("
                + "; ".join(denied)
                + "); Azure provisions a VM from the image through a virtual DVD, so it could not finish setup",
                'set "CD and DVD: Deny read access" and "All Removable Storage classes: Deny all access" under '
                "Computer Configuration > Administrative Templates > System > Removable Storage Access to Not "
                "Configured (registry: HKLM\\SOFTWARE\\Policies\\Microsoft\\Windows\\RemovableStorageDevices, "
                f"Deny_All and {CD_DVD_CLASS}!Deny_Read; deny-write policies may stay), run gpupdate /force, and make "
                "sure no domain policy sets them again",
            )
        self.log.info("pre-check removable-storage: ok (CD/DVD drives readable)")

    # -- step 9 ---------------------------------------------------------------------------------------------------

    def clean_up(self) -> list[str]:
        """Remove leftover answer files, the Panther directory and an earlier success tag; list what went."""
        facts = self.guest.run_reconnecting(GuestScript("clean-before-sysprep"))
        errors = fact_str_list(facts, "errors")
        if errors:
            raise GuestCommandFailed(
                f"could not clean up {self.host} before sysprep: " + "; ".join(errors) + ". Nothing irreversible "
                "was done; sysprep was not started. Remove these by hand (or find what holds them open), then run "
                "again."
            )
        removed = fact_str_list(facts, "removed")
        for item in removed:
            self.log.info(f"removed before sysprep: {item}")
        if not removed:
            self.log.info("clean-up: no leftover answer file, Panther directory or success tag")
        for item in fact_str_list(facts, "kept_aside"):
            self.log.info(f"kept the previous sysprep log aside as {item}")
        return removed

    # -- step 10 --------------------------------------------------------------------------------------------------

    def start_sysprep(self) -> Launch:
        # /quit, not /shutdown (Packer's azure-arm builder and Azure Image Builder do the same): with /quit the VM
        # stays up after generalize, so this step can see that sysprep has really finished (ImageState, the process,
        # Sysprep_succeeded.tag) or failed, and read the Panther logs. /shutdown gives no completion signal: a VM
        # that stopped looks the same whether sysprep succeeded or crashed. The price of /quit is a running,
        # generalized VM: if anything (Windows Update, a person) restarts it, it runs OOBE and the image is
        # spoiled (Microsoft, "Generalize a Windows VM": never start it again before capture). So success is only
        # declared once sysprep has finished, and the ARM half deallocates right after.
        script = GuestScript("start-sysprep", {"Mode": self.options.mode, "ExtraArgs": tuple(self.options.extra_args)})
        try:
            facts = self.guest.run_reconnecting(script, retry_after_command=False)
        except CommandOutcomeUnknown as lost:
            # The request that starts sysprep may or may not have reached the guest: never send it twice.
            self.log.warn(
                f"the connection dropped while starting sysprep ({lost.summary}); it may or may not have started. "
                "Not starting it again: watching ImageState instead"
            )
            return Launch(pid=None, certain=False, tag_is_this_runs=True)
        already = fact_int_list(facts, "already_running")
        if not fact_bool(facts, "started"):
            # Someone started sysprep between step 0 and now; watch that one.
            self.log.warn(f"sysprep was already running (PID {', '.join(map(str, already))}); watching it")
            # The clean-up just removed any earlier success tag: a tag seen from now on is that run's.
            return Launch(pid=already[0] if already else None, certain=True, tag_is_this_runs=True)
        pid = fact_int(facts, "pid")
        self.log.info(f"sysprep started (PID {pid}): {fact_str(facts, 'command_line')}")
        return Launch(pid=pid, certain=True, tag_is_this_runs=True)

    # -- step 11 --------------------------------------------------------------------------------------------------

    def watch(self, launch: Launch) -> ImageState:
        """Poll until sysprep has finished: ImageState RESEAL_TO_OOBE and the process gone or, for a run this step
        cleaned up before, its success tag written. The state alone is not enough: sysprep sets it before its last
        actions, and only a finished sysprep may be handed to the ARM half (which deallocates)."""
        deadline = Deadline(self.options.timeout, f"sysprep on {self.host} to finish ({RESEAL_TO_OOBE})")
        last: list[ImageState] = []

        def read() -> ImageState:
            try:
                return ImageState.parse(
                    self.guest.run(GuestScript("image-state", {"TailLines": 0}), **_WHILE_SYSPREP_RUNS)
                )
            except ConnectionLost as lost:
                return self._reconnect_during_watch(lost, deadline, last)

        def probe() -> tuple[bool, ImageState]:
            state = read()
            if not last or state.describe() != last[-1].describe():
                self.log.info(f"sysprep: {state.describe()}")
            last.append(state)
            if state.finished_by(launch):
                return True, state
            if not state.running:
                raise self._sysprep_failed(launch, state, deadline)
            return False, state

        final = poll(probe, deadline, self.options.poll_interval, ImageState.describe)
        with contextlib.suppress(ConnectionLost, GuestCommandFailed, GuestConnectionError, WaitTimeout):
            # Best effort: the end of setupact.log, for the record.
            final = ImageState.parse(
                self.guest.run(GuestScript("image-state", {"TailLines": 20}), **_WHILE_SYSPREP_RUNS)
            )
        return final

    def _reconnect_during_watch(self, lost: ConnectionLost, deadline: Deadline, last: list[ImageState]) -> ImageState:
        self.log.info(f"connection lost while sysprep runs ({lost.summary}); reconnecting (sysprep keeps running)")
        bound = min(self.guest.target.connect_timeout, deadline.remaining)
        started = time.monotonic()
        try:
            facts = self.guest.run_reconnecting(
                GuestScript("image-state", {"TailLines": 0}),
                deadline=Deadline(bound, f"WinRM at {self.host} to answer again"),
                **_WHILE_SYSPREP_RUNS,
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
        with contextlib.suppress(ConnectionLost, GuestCommandFailed, GuestConnectionError, WaitTimeout):
            tails = ImageState.parse(
                self.guest.run(GuestScript("image-state", {"TailLines": LOG_TAIL_LINES}), **_WHILE_SYSPREP_RUNS)
            )
        who = f"Sysprep.exe (PID {launch.pid})" if launch.pid else "Sysprep.exe"
        maybe = (
            ""
            if launch.certain
            else " The connection dropped while sysprep was being started, so it may never have started."
        )
        if (tails.state or state.state) == UNDEPLOYABLE:
            # Microsoft, "Windows Setup States": this image must be reinstalled; the next run refuses it.
            then = (
                f"The VM is left in {UNDEPLOYABLE} and cannot be sysprepped again (Microsoft: reinstall it): fix the "
                "cause shown below where the source VM is built, rebuild it (or restore its OS disk from a snapshot "
                "taken before), then run again."
            )
        else:
            then = "Fix the cause shown below in the VM, then run again."
        return SysprepFailed(
            f"sysprep failed on {self.host}: {who} is no longer running and ImageState is "
            f"{tails.state or '(not set)'}, not {RESEAL_TO_OOBE} (after {deadline.elapsed:.0f}s).{maybe} The VM "
            "was not captured and is still running. Common causes: AppX packages installed for a user only "
            "(0x80073cf2), BitLocker (0x80310039), unsupported server roles, a pending reboot. "
            f"{then} Full logs: %WINDIR%\\System32\\Sysprep\\Panther\\.\n"
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


_WHILE_SYSPREP_RUNS: dict[str, bool] = {"faults_are_drops": True, "refused_logons_are_drops": True}
"""While sysprep generalizes, WinRM may restart (faults) and Windows may refuse new logons (HTTP 401): both heal."""

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
    succeeded_tag: bool = False
    """%WINDIR%\\System32\\Sysprep\\Sysprep_succeeded.tag exists (written by sysprep at its very end)."""

    @classmethod
    def parse(cls, facts: Mapping[str, Any]) -> ImageState:
        return cls(
            fact_str(facts, "image_state"),
            tuple(fact_int_list(facts, "sysprep_pids")),
            fact_str(facts, "setuperr_tail"),
            fact_str(facts, "setupact_tail"),
            fact_bool(facts, "succeeded_tag"),
        )

    @property
    def finished(self) -> bool:
        """Sysprep has really finished generalizing, as far as can be told without knowing who wrote the success
        tag: the state, and no Sysprep.exe running."""
        return self.state == RESEAL_TO_OOBE and not self.running

    def finished_by(self, launch: Launch) -> bool:
        """The sysprep of `launch` has really finished: the state, and the process gone or, when any earlier tag
        was removed before it started, its success tag written (sysprep writes it at its very end). A tag that may
        predate the run (a base image's, next to a sysprep this step adopted) never counts while Sysprep.exe runs."""
        return self.finished or (self.state == RESEAL_TO_OOBE and launch.tag_is_this_runs and self.succeeded_tag)

    @property
    def running(self) -> bool:
        return bool(self.sysprep_pids)

    def describe(self) -> str:
        running = f"sysprep running (PID {_pids(self)})" if self.running else "sysprep not running"
        tag = ", Sysprep_succeeded.tag written" if self.succeeded_tag else ""
        return f"ImageState {self.state or '(not set)'}, {running}{tag}"


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
                ServiceStatus(
                    fact_str(s, "name"), fact_bool(s, "present"), fact_str(s, "status"), fact_str(s, "start_type")
                )
                for s in fact_dict_list(facts, "services")
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
    tag_is_this_runs: bool
    """Any earlier Sysprep_succeeded.tag was removed before this sysprep started (step 9), so a tag now is its own.
    False for a sysprep the step adopted at step 0: a tag then may be the base image's."""


# ----------------------------------------------------------------------------------------------------------------
# Validation
# ----------------------------------------------------------------------------------------------------------------


def sysprep_flags(options: SysprepOptions) -> tuple[str, ...]:
    mode = (f"/mode:{options.mode}",) if options.mode else ()
    return ("/oobe", "/generalize", "/quiet", "/quit", *mode, *options.extra_args)


def validate(target: WinRmTarget, options: SysprepOptions) -> None:
    """Every problem with the target and the options at once, as a ConfigError; nothing is contacted. The rules of
    the settings are hooks.targets' (the config reports the same ones with the stack file's key paths)."""
    problems = []
    if not target.host.strip():
        problems.append("host: must not be empty")
    if not target.username:
        problems.append("username: must not be empty")
    if target.scheme not in ("https", "http"):
        problems.append(f"scheme: {target.scheme!r} is not https or http")
    if not 0 < target.port < 65536:
        problems.append(f"port: {target.port} is not a TCP port")
    if target.connect_timeout <= 0:
        problems.append("connect_timeout: must be positive")
    broken = winrm_problems(
        target.transport,
        target.scheme != "http",
        target.ca_certificate or None,
        target.certificate_sha256 or None,
        target.insecure_skip_certificate_validation,
    ) + sysprep_problems(options.mode, options.extra_args, sorted(options.skip_checks))
    problems += [f"{p.where(FIELD_NAMES)}: {p.message}" for p in broken]
    for name in ("agent_timeout", "timeout", "poll_interval"):
        if getattr(options, name) <= 0:
            problems.append(f"{name}: must be positive")
    if problems:
        raise ConfigError(problems)


def _first_backoff(options: SysprepOptions) -> float:
    """Reconnect attempts start at the poll interval (within 0.05-2 s) and double up to MAX_BACKOFF."""
    return min(max(options.poll_interval, 0.05), 2.0)


def _pids(state: ImageState) -> str:
    return ", ".join(map(str, state.sysprep_pids))
