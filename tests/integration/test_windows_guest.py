"""The Windows guest step (hooks/windows/) against a fake WinRM listener playing a scripted Windows guest.

Real pywinrm, real TLS, real HTTP; Basic authentication for most scenarios, real NTLM (pyspnego's acceptor, channel
binding over https, message encryption over http) for the default transport at the end.
Bounds are small so every scenario runs in about a second; `--durations=0` reports each scenario's time."""

# The fixtures of tests/fakes/wsman.py are imported by name, and test parameters named like them are the point.
# ruff: noqa: F811

from __future__ import annotations

import dataclasses
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import pytest
import trustme

import hooks.windows as windows
from hooks.errors import (
    ConfigError,
    GuestCommandFailed,
    GuestConnectionError,
    HostKeyMismatch,
    PreCheckFailed,
    SysprepFailed,
    WaitTimeout,
)
from hooks.log import Log
from hooks.targets import SYSPREP_EXTRA_ARGS_MAX_LENGTH, GuestResult, SysprepOptions, WinRmTarget
from hooks.windows import scripts, transport
from hooks.windows.sysprep import AGENT_SERVICES, COMMAND_LINE_MARGIN
from tests.fakes.wsman import (  # noqa: F401  (fixtures)
    COMPLETE,
    RESEAL_TO_OOBE,
    UNDEPLOYABLE,
    AppxPackage,
    FakeWsman,
    GuestModel,
    SysprepBehaviour,
    guest,
    ntlm_guest,
    ntlm_user_file,
    winrm_target,
    wsman_ca,
    wsman_server,
)

FAST = SysprepOptions(poll_interval=0.05, agent_timeout=5.0, timeout=20.0)
PRECHECK_SCRIPTS = (
    "check-server-roles",
    "check-bitlocker",
    "check-appx",
    "check-pending-reboot",
    "check-cdrom",
    "check-removable-storage",
)


@dataclasses.dataclass
class Outcome:
    result: GuestResult | None
    error: BaseException | None
    log: Log
    seconds: float


def run(target: WinRmTarget, options: SysprepOptions = FAST, **changes: Any) -> Outcome:
    """Run the step; whatever happens, the password must appear in no log line and no exception."""
    if changes:
        target = dataclasses.replace(target, **changes)
    log = Log("vm-src", sink=lambda line: None)
    started = time.monotonic()
    result: GuestResult | None = None
    error: BaseException | None = None
    try:
        result = windows.sysprep(target, options, log)
    except Exception as exc:  # the tests look at it
        error = exc
    outcome = Outcome(result, error, log, time.monotonic() - started)
    assert_no_secret(target.password, outcome)
    return outcome


def assert_no_secret(secret: str, outcome: Outcome) -> None:
    for line in outcome.log.lines:
        assert secret not in line
    seen = 0
    exc = outcome.error
    while exc is not None and seen < 20:
        assert secret not in str(exc) and secret not in repr(exc)
        assert all(secret not in str(arg) for arg in exc.args)
        exc = exc.__cause__ or exc.__context__
        seen += 1


def expect(outcome: Outcome, kind: type[BaseException]) -> str:
    assert isinstance(outcome.error, kind), f"expected {kind.__name__}, got {outcome.error!r}"
    return str(outcome.error)


def succeeded(outcome: Outcome) -> GuestResult:
    assert outcome.error is None, f"unexpected {outcome.error!r}"
    assert outcome.result is not None
    return outcome.result


def scripts_run(guest: GuestModel) -> list[str]:
    """The guest scripts in the order they ran, consecutive repeats folded."""
    order: list[str] = []
    for request in guest.requests:
        if request.script and (not order or order[-1] != request.script):
            order.append(request.script)
    return order


# --------------------------------------------------------------------------------------------------------------
# The happy paths
# --------------------------------------------------------------------------------------------------------------


def test_success_waits_for_late_agent_and_follows_image_state(guest: GuestModel, winrm_target: WinRmTarget) -> None:
    guest.services["RdAgent"].stopped_for_polls = 3
    guest.services["WindowsAzureGuestAgent"].stopped_for_polls = 2
    guest.sysprep = SysprepBehaviour(undeployable_after=0.15, runtime=0.6)

    outcome = run(winrm_target)
    result = succeeded(outcome)

    assert guest.sysprep_launch_count == 1
    assert guest.launches[0].command_line.endswith('Sysprep.exe" /oobe /generalize /quiet /quit /mode:vm')
    assert guest.script_runs["agent-status"] == 4  # three polls saw a stopped service
    assert scripts_run(guest)[:10] == [
        "image-state",
        "agent-status",
        *PRECHECK_SCRIPTS,
        "clean-before-sysprep",
        "start-sysprep",
    ]
    states = [line for line in outcome.log.lines if "sysprep: ImageState" in line]
    assert UNDEPLOYABLE in states[-2] and RESEAL_TO_OOBE in states[-1]
    assert guest.answer_files == [] and not guest.panther_dir
    assert any("removed before sysprep: C:\\Windows\\Panther\\Unattend.xml" in line for line in outcome.log.lines)
    assert "removed before sysprep: C:\\Windows\\Panther\\Unattend.xml, C:\\Windows\\Panther" in result.detail
    assert result.method == "sysprep /oobe /generalize /quiet /quit /mode:vm"
    assert "generalize done" in result.output_tail
    assert not guest.open_shells, "every WinRS shell is deleted"
    assert {r.user for r in guest.requests} == {guest.username}


def test_mode_and_extra_args_reach_sysprep_as_whitelisted_values(guest: GuestModel, winrm_target: WinRmTarget) -> None:
    options = dataclasses.replace(FAST, mode="", extra_args=("/Foo:Bar1",))
    succeeded(run(winrm_target, options))
    assert guest.launches[0].extra_args == ("/Foo:Bar1",)
    assert guest.launches[0].command_line.endswith("/oobe /generalize /quiet /quit /Foo:Bar1")
    start = next(r for r in guest.requests if r.script == "start-sysprep")
    assert start.params == {"Mode": "", "ExtraArgs": ("/Foo:Bar1",)}


@pytest.mark.parametrize("mode", ["reset", "handshake"])
def test_connection_drop_mid_sysprep_reconnects_and_never_relaunches(
    guest: GuestModel, winrm_target: WinRmTarget, mode: Literal["reset", "handshake"]
) -> None:
    guest.sysprep = SysprepBehaviour(undeployable_after=0.1, runtime=1.6)
    guest.drops_after_launch = [(0.25, 1.0, mode)]

    outcome = run(winrm_target)
    succeeded(outcome)

    assert guest.dropped > 0, "the fake really dropped connections"
    assert guest.sysprep_launch_count == 1
    assert guest.script_runs["start-sysprep"] == 1
    assert any("connection lost while sysprep runs" in line for line in outcome.log.lines)
    assert any("reconnected after" in line for line in outcome.log.lines)


def test_connection_drop_while_starting_sysprep_does_not_send_it_twice(
    guest: GuestModel, winrm_target: WinRmTarget
) -> None:
    # The drop begins the moment sysprep is launched: the answer of start-sysprep is lost.
    guest.sysprep = SysprepBehaviour(runtime=1.0)
    guest.drops_after_launch = [(0.0, 0.5, "reset")]

    outcome = run(winrm_target)
    succeeded(outcome)

    assert guest.script_runs["start-sysprep"] == 1
    assert guest.sysprep_launch_count == 1
    assert any("may or may not have started" in line for line in outcome.log.lines)


def test_vm_still_booting_is_retried_until_winrm_answers(guest: GuestModel, winrm_target: WinRmTarget) -> None:
    guest.unreachable_for(0.7)
    outcome = run(winrm_target)
    succeeded(outcome)
    assert guest.dropped > 0
    assert any("not answering" in line for line in outcome.log.lines)


def test_already_generalized_is_not_sysprepped_again(guest: GuestModel, winrm_target: WinRmTarget) -> None:
    guest.image_state = RESEAL_TO_OOBE
    result = succeeded(run(winrm_target))
    assert "already generalized" in result.detail
    assert guest.sysprep_launch_count == 0
    assert scripts_run(guest) == ["image-state"]


def test_sysprep_already_running_is_watched_not_started_again(guest: GuestModel, winrm_target: WinRmTarget) -> None:
    guest.sysprep = SysprepBehaviour(runtime=0.5)
    guest.sysprep_started_elsewhere()
    outcome = run(winrm_target)
    succeeded(outcome)
    assert guest.sysprep_launch_count == 0
    assert guest.script_runs["start-sysprep"] == 0
    assert set(scripts_run(guest)) == {"image-state"}, "no pre-check while sysprep runs (it stops the agent)"


def test_undeployable_at_the_start_stops_and_never_runs_sysprep_again(
    guest: GuestModel, winrm_target: WinRmTarget
) -> None:
    # Windows Setup States: a setup phase failed; the image must be reinstalled, not sysprepped once more.
    guest.image_state = UNDEPLOYABLE
    outcome = run(winrm_target)
    message = expect(outcome, PreCheckFailed)
    assert UNDEPLOYABLE in message and "must be reinstalled" in message and "Nothing was changed" in message
    assert guest.sysprep_launch_count == 0
    assert scripts_run(guest) == ["image-state"], "no pre-check, no clean-up on an image that must be reinstalled"


def test_a_machine_in_the_middle_of_setup_is_refused(guest: GuestModel, winrm_target: WinRmTarget) -> None:
    guest.image_state = "IMAGE_STATE_SPECIALIZE_RESEAL_TO_OOBE"
    message = expect(run(winrm_target), PreCheckFailed)
    assert "IMAGE_STATE_SPECIALIZE_RESEAL_TO_OOBE" in message
    assert guest.sysprep_launch_count == 0


# --------------------------------------------------------------------------------------------------------------
# Sysprep fails or hangs
# --------------------------------------------------------------------------------------------------------------


def test_failed_sysprep_is_reported_within_seconds_with_the_panther_log_tail(
    guest: GuestModel, winrm_target: WinRmTarget
) -> None:
    guest.sysprep = SysprepBehaviour(outcome="fail", undeployable_after=0.1, runtime=0.3)
    options = dataclasses.replace(FAST, timeout=10.0)

    outcome = run(winrm_target, options)
    message = expect(outcome, SysprepFailed)

    assert outcome.seconds < 3.0, "failure is seen as soon as sysprep is gone, not at the timeout"
    assert UNDEPLOYABLE in message and "PID 4000" in message
    assert "--- setuperr.log" in message and "--- setupact.log" in message
    assert "0x80073cf2" in message
    assert "Contoso.Notes_2.1.0.0_x64__8wekyb3d8bbwe was installed for a user" in message
    assert "stale error from last year" not in message, "logs of an earlier run were moved aside"
    assert "cannot be sysprepped again" in message, "an UNDEPLOYABLE VM is not to be retried as it is"
    assert guest.sysprep_launch_count == 1


def test_sysprep_that_fails_before_generalize_is_a_failure_too(guest: GuestModel, winrm_target: WinRmTarget) -> None:
    guest.sysprep = SysprepBehaviour(outcome="fail", undeployable_after=99.0, runtime=0.2, failed_state=COMPLETE)
    message = expect(run(winrm_target), SysprepFailed)
    assert COMPLETE in message
    assert "Fix the cause shown below in the VM, then run again" in message


def test_reseal_state_while_sysprep_still_runs_is_not_yet_success(guest: GuestModel, winrm_target: WinRmTarget) -> None:
    # Sysprep sets ImageState before its last actions: success only once the process is gone (or the tag is there).
    guest.sysprep = SysprepBehaviour(undeployable_after=0.05, reseal_after=0.2, runtime=1.2, writes_tag=False)
    outcome = run(winrm_target)
    succeeded(outcome)
    launched = guest.launches[0].at
    last_read = max(r.at for r in guest.requests if r.script == "image-state")
    assert last_read >= launched + 1.2, "the watch went on until Sysprep.exe had exited"
    states = [line for line in outcome.log.lines if "sysprep: ImageState" in line]
    assert any(RESEAL_TO_OOBE in line and "sysprep running" in line for line in states)
    assert RESEAL_TO_OOBE in states[-1] and "sysprep not running" in states[-1]


def test_success_tag_while_sysprep_exits_is_success(guest: GuestModel, winrm_target: WinRmTarget) -> None:
    guest.sysprep = SysprepBehaviour(reseal_after=0.2, tag_after=0.3, runtime=30.0)
    outcome = run(winrm_target)
    result = succeeded(outcome)
    assert outcome.seconds < 5.0, "the tag with the state is enough; the process need not be gone"
    assert "Sysprep_succeeded.tag written" in result.detail


def test_stale_success_tag_of_an_earlier_run_is_removed_first(guest: GuestModel, winrm_target: WinRmTarget) -> None:
    guest.succeeded_tag = True  # left by an earlier sysprep
    guest.sysprep = SysprepBehaviour(reseal_after=0.1, runtime=1.0, writes_tag=False)
    outcome = run(winrm_target)
    succeeded(outcome)
    assert any("Sysprep_succeeded.tag" in line and "removed before sysprep" in line for line in outcome.log.lines)
    assert guest.requests[-1].at >= guest.launches[0].at + 1.0, "the stale tag was not taken for this run's"


def test_reseal_state_with_sysprep_still_running_at_the_start_is_watched(
    guest: GuestModel, winrm_target: WinRmTarget
) -> None:
    guest.sysprep = SysprepBehaviour(reseal_after=0.0, runtime=0.8, writes_tag=False)
    guest.sysprep_started_elsewhere()
    guest.image_state = RESEAL_TO_OOBE
    outcome = run(winrm_target)
    result = succeeded(outcome)
    assert "already generalized" not in result.detail
    assert guest.sysprep_launch_count == 0
    assert guest.requests[-1].at >= guest.launches[0].at + 0.8


def test_base_images_success_tag_next_to_an_adopted_running_sysprep_is_not_success(
    guest: GuestModel, winrm_target: WinRmTarget
) -> None:
    # The base image left Sysprep_succeeded.tag; a sysprep this step did not start (and so cleaned nothing before)
    # runs, ImageState already RESEAL_TO_OOBE: only the process exit says it is done.
    guest.succeeded_tag = True
    guest.sysprep = SysprepBehaviour(reseal_after=0.0, runtime=1.0, writes_tag=False)
    guest.sysprep_started_elsewhere()
    guest.image_state = RESEAL_TO_OOBE
    outcome = run(winrm_target)
    result = succeeded(outcome)
    assert "already generalized" not in result.detail
    assert "Sysprep.exe exited" in result.detail
    assert guest.sysprep_launch_count == 0
    assert guest.requests[-1].at >= guest.launches[0].at + 1.0, "watched until Sysprep.exe had exited"


def test_base_images_success_tag_next_to_a_hanging_adopted_sysprep_keeps_watching(
    guest: GuestModel, winrm_target: WinRmTarget
) -> None:
    guest.succeeded_tag = True
    guest.sysprep = SysprepBehaviour(outcome="hang", reseal_after=0.0)
    guest.sysprep_started_elsewhere()
    guest.image_state = RESEAL_TO_OOBE
    outcome = run(winrm_target, dataclasses.replace(FAST, timeout=1.0))
    message = expect(outcome, WaitTimeout)
    assert "sysprep running" in message and "Sysprep_succeeded.tag written" in message
    assert guest.script_runs["image-state"] > 3, "it kept watching"
    assert guest.sysprep_launch_count == 0


def test_base_images_success_tag_while_an_adopted_sysprep_reseals_is_not_success(
    guest: GuestModel, winrm_target: WinRmTarget
) -> None:
    # Adopted while still generalizing (UNDEPLOYABLE); the state turns RESEAL_TO_OOBE before the process exits.
    guest.succeeded_tag = True
    guest.sysprep = SysprepBehaviour(undeployable_after=0.0, reseal_after=0.4, runtime=1.2, writes_tag=False)
    guest.sysprep_started_elsewhere()
    outcome = run(winrm_target)
    succeeded(outcome)
    assert guest.requests[-1].at >= guest.launches[0].at + 1.2, "the stale tag did not end the watch early"
    states = [line for line in outcome.log.lines if "sysprep: ImageState" in line]
    assert any(RESEAL_TO_OOBE in line and "sysprep running" in line and "tag written" in line for line in states)


def test_logons_refused_while_sysprep_runs_are_a_drop_not_bad_credentials(
    guest: GuestModel, winrm_target: WinRmTarget
) -> None:
    guest.sysprep = SysprepBehaviour(undeployable_after=0.1, runtime=1.5)
    guest.drops_after_launch = [(0.2, 0.8, "unauthorized")]
    outcome = run(winrm_target)
    succeeded(outcome)
    assert guest.auth_failures > 0, "the fake really refused logons"
    assert guest.sysprep_launch_count == 1
    assert any("refused the logon (HTTP 401) while sysprep runs" in line for line in outcome.log.lines)


def test_logons_refused_for_good_while_sysprep_runs_are_bounded(guest: GuestModel, winrm_target: WinRmTarget) -> None:
    guest.sysprep = SysprepBehaviour(outcome="hang")
    guest.drops_after_launch = [(0.2, 60.0, "unauthorized")]
    outcome = run(winrm_target, connect_timeout=0.8)
    message = expect(outcome, GuestConnectionError)
    assert "could not reconnect within 0.8s" in message and "HTTP 401" in message
    assert "Check the user name and password" not in message
    assert guest.sysprep_launch_count == 1
    assert outcome.seconds < 3.0


def test_hanging_sysprep_times_out_naming_the_last_image_state(guest: GuestModel, winrm_target: WinRmTarget) -> None:
    guest.sysprep = SysprepBehaviour(outcome="hang", undeployable_after=0.1)
    outcome = run(winrm_target, dataclasses.replace(FAST, timeout=0.8))
    message = expect(outcome, WaitTimeout)
    assert "gave up after 0.8s" in message
    assert f"ImageState {UNDEPLOYABLE}, sysprep running" in message
    assert outcome.seconds < 3.0


# --------------------------------------------------------------------------------------------------------------
# Pre-checks: each stops everything before sysprep; each can be skipped by name
# --------------------------------------------------------------------------------------------------------------


def _role(name: str) -> Callable[[GuestModel], None]:
    return lambda g: g.features.append(name)


def _bitlocker(protection: str, volume: str, source: str = "Get-BitLockerVolume") -> Callable[[GuestModel], None]:
    def change(g: GuestModel) -> None:
        g.bitlocker_protection, g.bitlocker_volume = protection, volume
        g.bitlocker_source = source  # type: ignore[assignment]

    return change


def _user_only_app(g: GuestModel) -> None:
    g.appx.append(AppxPackage("Contoso.Notes", "2.1.0.0", users=("VM\\alice",), provisioned=False))


def _store_updated_app(g: GuestModel) -> None:
    # Provisioned at one version, updated by the Store for a user: also 0x80073cf2.
    g.appx.append(AppxPackage("Microsoft.WindowsCalculator", "11.2311.0.0", users=("VM\\bob",), provisioned=False))


def _agent(**changes: Any) -> Callable[[GuestModel], None]:
    def change(g: GuestModel) -> None:
        for key, value in changes.items():
            setattr(g.services["WindowsAzureGuestAgent"], key, value)

    return change


def _set(**changes: Any) -> Callable[[GuestModel], None]:
    def change(g: GuestModel) -> None:
        for key, value in changes.items():
            setattr(g, key, value)

    return change


def _wds(g: GuestModel) -> None:
    g.features.append("WDS")
    g.wds_initialized = True


PRECHECK_FAILURES = [
    pytest.param("server-roles", _role("AD-Domain-Services"), "Active Directory Domain Services", id="adds"),
    pytest.param("server-roles", _role("DHCP"), "DHCP Server (DHCP)", id="dhcp"),
    pytest.param("server-roles", _wds, "Windows Deployment Services (WDS), initialized", id="wds-initialized"),
    pytest.param("server-roles", _set(vm_switches=["External"]), "Hyper-V virtual switches: External", id="vswitch"),
    pytest.param("bitlocker", _bitlocker("On", "FullyEncrypted"), "0x80310039", id="bitlocker-on"),
    pytest.param("bitlocker", _bitlocker("Off", "FullyEncrypted"), "volume FullyEncrypted", id="bitlocker-suspended"),
    pytest.param("bitlocker", _bitlocker("On", "EncryptionInProgress", "manage-bde"), "Protection On", id="manage-bde"),
    pytest.param("appx", _user_only_app, "Contoso.Notes_2.1.0.0_x64__8wekyb3d8bbwe (for VM\\alice)", id="appx"),
    pytest.param("appx", _store_updated_app, "Microsoft.WindowsCalculator_11.2311.0.0", id="appx-updated"),
    pytest.param("pending-reboot", _set(cbs_reboot_pending=True), "CBS RebootPending", id="cbs"),
    pytest.param("pending-reboot", _set(wu_reboot_required=True), "Windows Update", id="windows-update"),
    pytest.param(
        "pending-reboot",
        _set(pending_file_renames=["\\??\\C:\\Windows\\Temp\\x.dll"]),
        "1 pending file rename",
        id="file-renames",
    ),
    pytest.param(
        "server-roles",
        _set(role_query_error="Access is denied"),
        "could not find out which server roles are installed: Get-WindowsFeature: Access is denied",
        id="role-query-fails",
    ),
    pytest.param(
        "bitlocker",
        _set(data_drives={"D:": ("Off", "FullyDecrypted"), "F:": ("On", "FullyEncrypted")}),
        "F: (protection On, volume FullyEncrypted)",
        id="bitlocker-data-drive",
    ),
    pytest.param(
        "bitlocker",
        _set(bitlocker_error="Access is denied. (0x80070005)"),
        "could not read the BitLocker state of the fixed drives: Access is denied",
        id="bitlocker-query-fails",
    ),
    pytest.param("cdrom", _set(cdrom_start=4), "cdrom Start is 4", id="cdrom-disabled"),
    pytest.param("cdrom", _set(cdrom_start=None), "cdrom driver service is missing", id="cdrom-missing"),
    pytest.param("removable-storage", _set(removable_deny_all=True), "Deny all access (Deny_All)", id="deny-all"),
    pytest.param(
        "removable-storage",
        _set(removable_denied=["{53f56308-b6bf-11d0-94f2-00a0c91efb8b}!Deny_Read"]),
        "{53f56308-b6bf-11d0-94f2-00a0c91efb8b}!Deny_Read",
        id="deny-cd-read",
    ),
    pytest.param(
        "removable-storage",
        _set(removable_denied=["{53F56308-B6BF-11D0-94F2-00A0C91EFB8B}!Deny_Read"]),
        "denies reading CD/DVD drives",
        id="deny-cd-read-upper-case",
    ),
    pytest.param("guest-agent", _agent(start_type="Disabled"), "disabled and will not start", id="agent-disabled"),
    pytest.param("guest-agent", _agent(present=False), "WindowsAzureGuestAgent is not installed", id="agent-absent"),
]


@pytest.mark.parametrize(("check", "break_it", "cause"), PRECHECK_FAILURES)
def test_failing_precheck_stops_before_sysprep(
    guest: GuestModel,
    winrm_target: WinRmTarget,
    check: str,
    break_it: Callable[[GuestModel], None],
    cause: str,
) -> None:
    break_it(guest)
    # A long agent bound: a hopeless agent must fail at once, not after waiting.
    outcome = run(winrm_target, dataclasses.replace(FAST, agent_timeout=60.0))
    message = expect(outcome, PreCheckFailed)

    assert f"pre-check {check} failed" in message
    assert cause in message
    assert "Fix:" in message and f"add '{check}' to skip_checks" in message
    assert "Nothing was changed" in message
    assert guest.sysprep_launch_count == 0
    assert guest.script_runs["start-sysprep"] == 0
    assert guest.script_runs["clean-before-sysprep"] == 0, "nothing is removed before every check passed"
    assert outcome.seconds < 3.0


@pytest.mark.parametrize(("check", "break_it", "cause"), PRECHECK_FAILURES)
def test_skipping_a_precheck_by_name_lets_sysprep_run(
    guest: GuestModel,
    winrm_target: WinRmTarget,
    check: str,
    break_it: Callable[[GuestModel], None],
    cause: str,
) -> None:
    break_it(guest)
    outcome = run(winrm_target, dataclasses.replace(FAST, skip_checks=frozenset({check})))
    succeeded(outcome)
    script = "agent-status" if check == "guest-agent" else f"check-{check}"
    assert guest.script_runs[script] == 0
    assert guest.sysprep_launch_count == 1
    assert any(f"pre-check {check} skipped" in line for line in outcome.log.lines)


def test_agent_that_never_starts_fails_after_agent_timeout(guest: GuestModel, winrm_target: WinRmTarget) -> None:
    guest.services["RdAgent"].stopped_for_polls = 10**6
    outcome = run(winrm_target, dataclasses.replace(FAST, agent_timeout=0.5))
    message = expect(outcome, PreCheckFailed)
    assert "did not all run within 0.5s" in message and "RdAgent Stopped" in message
    assert 0.5 <= outcome.seconds < 3.0
    assert guest.sysprep_launch_count == 0


def test_clean_up_removes_answer_files_from_every_place_setup_looks_and_lists_them(
    guest: GuestModel, winrm_target: WinRmTarget
) -> None:
    guest.unattend_registry = "D:\\build\\unattend.xml"
    guest.answer_files = [
        "C:\\Windows\\Panther\\Unattend\\Unattend.xml",
        "C:\\Windows\\Panther\\Unattend\\Autounattend.xml",
        "C:\\Windows\\Panther\\Unattend.xml",
        "C:\\Windows\\System32\\Sysprep\\Unattend.xml",
        "C:\\Autounattend.xml",
    ]
    outcome = run(winrm_target)
    result = succeeded(outcome)
    removed = [line.split("removed before sysprep: ", 1)[1] for line in outcome.log.lines if "removed before" in line]
    assert removed == [
        "HKLM\\SYSTEM\\Setup!UnattendFile (was D:\\build\\unattend.xml)",
        *guest_answer_files_before(outcome),
        "C:\\Windows\\Panther",
    ]
    assert guest.answer_files == [] and guest.unattend_registry is None and not guest.panther_dir
    for item in removed:
        assert item in result.detail, "the step's output lists what was removed"
    assert scripts_run(guest).index("clean-before-sysprep") < scripts_run(guest).index("start-sysprep")


def guest_answer_files_before(outcome: Outcome) -> list[str]:
    return [
        "C:\\Windows\\Panther\\Unattend\\Unattend.xml",
        "C:\\Windows\\Panther\\Unattend\\Autounattend.xml",
        "C:\\Windows\\Panther\\Unattend.xml",
        "C:\\Windows\\System32\\Sysprep\\Unattend.xml",
        "C:\\Autounattend.xml",
    ]


def test_clean_up_that_cannot_remove_something_stops_before_sysprep(
    guest: GuestModel, winrm_target: WinRmTarget
) -> None:
    guest.locked_files = {"C:\\Windows\\Panther": "The process cannot access the file because it is being used"}
    message = expect(run(winrm_target), GuestCommandFailed)
    assert "could not clean up" in message and "C:\\Windows\\Panther: The process cannot access" in message
    assert "sysprep was not started" in message
    assert guest.sysprep_launch_count == 0


def test_benign_guest_facts_pass(guest: GuestModel, winrm_target: WinRmTarget) -> None:
    guest.features.append("WDS")  # installed but not initialized: supported
    guest.bitlocker_source = "none"
    guest.services["WindowsAzureTelemetryService"].present = False  # newer agents have no telemetry service
    succeeded(run(winrm_target))
    assert guest.sysprep_launch_count == 1


def test_a_client_edition_without_server_roles_passes_and_says_why(
    guest: GuestModel, winrm_target: WinRmTarget
) -> None:
    guest.feature_cmdlet = False  # Windows 10/11: no Get-WindowsFeature
    outcome = run(winrm_target)
    succeeded(outcome)
    assert any("no Get-WindowsFeature (client edition)" in line for line in outcome.log.lines)


def test_deny_write_policies_of_hardening_baselines_pass_the_removable_storage_check(
    guest: GuestModel, winrm_target: WinRmTarget
) -> None:
    # Removable Disks {53f5630d-...}: Deny write access, and even CD and DVD: Deny write / execute access: Azure only
    # reads the provisioning DVD.
    guest.removable_denied = [
        "{53f5630d-b6bf-11d0-94f2-00a0c91efb8b}!Deny_Write",
        "{53f56308-b6bf-11d0-94f2-00a0c91efb8b}!Deny_Write",
        "{53f56308-b6bf-11d0-94f2-00a0c91efb8b}!Deny_Execute",
        "{53f5630d-b6bf-11d0-94f2-00a0c91efb8b}!Deny_Read",
    ]
    outcome = run(winrm_target)
    succeeded(outcome)
    assert guest.sysprep_launch_count == 1
    said = [line for line in outcome.log.lines if "pre-check removable-storage" in line]
    assert any(
        "do not affect provisioning" in line and "{53f5630d-b6bf-11d0-94f2-00a0c91efb8b}!Deny_Write" in line
        for line in said
    )
    assert any("ok (CD/DVD drives readable)" in line for line in said)


def test_an_edition_without_appx_passes_and_says_why(guest: GuestModel, winrm_target: WinRmTarget) -> None:
    guest.appx_supported = False
    outcome = run(winrm_target)
    succeeded(outcome)
    said = [line for line in outcome.log.lines if "pre-check appx:" in line]
    assert len(said) == 1 and "ok (no AppX support on this edition)" in said[0]


def test_bitlocker_protection_on_is_refused_whatever_the_volume_says_and_the_fix_names_each_drive(
    guest: GuestModel, winrm_target: WinRmTarget
) -> None:
    guest.data_drives = {"D:": ("On", "FullyDecrypted"), "E:": ("Off", "FullyDecrypted"), "F:": ("Off", "Encrypting")}
    message = expect(run(winrm_target), PreCheckFailed)
    assert "D: (protection On, volume FullyDecrypted)" in message and "F: (protection Off" in message
    assert "E:" not in message.split("Fix:")[0]
    assert "Fix: decrypt D:, F: with Disable-BitLocker" in message
    assert "::" not in message, "a drive letter arrives with its colon: never printed as D::"
    assert guest.sysprep_launch_count == 0


def test_polls_while_sysprep_runs_ask_for_no_log_tails(guest: GuestModel, winrm_target: WinRmTarget) -> None:
    # A poll every second must stay one small answer; the log tails are read once, at the end (or on failure).
    guest.sysprep = SysprepBehaviour(runtime=0.4)
    succeeded(run(winrm_target))
    tails = [r.params.get("TailLines") for r in guest.requests if r.script == "image-state"]
    assert len(tails) >= 3 and set(tails[:-1]) == {0} and tails[-1] == 20


def test_failing_guest_script_reports_its_error(guest: GuestModel, winrm_target: WinRmTarget) -> None:
    guest.script_errors["check-appx"] = "Get-AppxPackage : Access is denied. (0x80070005)"
    message = expect(run(winrm_target), GuestCommandFailed)
    assert "check-appx.ps1 failed" in message and "Access is denied" in message
    assert "Preparing modules" not in message, "progress records are not errors"
    assert guest.sysprep_launch_count == 0


def test_guest_output_quoting_the_password_is_redacted(guest: GuestModel, winrm_target: WinRmTarget) -> None:
    guest.script_errors["check-bitlocker"] = f"logon failure for {guest.password}"
    message = expect(run(winrm_target), GuestCommandFailed)  # run() asserts the password is nowhere
    assert "logon failure for [secret]" in message


def test_slow_script_is_long_polled(
    guest: GuestModel, winrm_target: WinRmTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transport, "OPERATION_TIMEOUT", 1)
    monkeypatch.setattr(transport, "READ_TIMEOUT", 3)
    guest.script_delays["check-appx"] = 1.3
    succeeded(run(winrm_target))
    assert guest.operation_timeouts >= 1, "WinRM said 'still running' and the client asked again"


def test_hanging_script_is_bounded(
    guest: GuestModel, winrm_target: WinRmTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    # pywinrm's own output loop would wait forever; ours stops at SCRIPT_TIMEOUT.
    monkeypatch.setattr(transport, "OPERATION_TIMEOUT", 1)
    monkeypatch.setattr(transport, "READ_TIMEOUT", 3)
    monkeypatch.setattr(transport, "SCRIPT_TIMEOUT", 0.5)
    guest.script_delays["check-appx"] = 30.0
    outcome = run(winrm_target)
    assert "guest script check-appx.ps1 to finish" in expect(outcome, WaitTimeout)
    assert outcome.seconds < 4.0
    assert guest.sysprep_launch_count == 0


# --------------------------------------------------------------------------------------------------------------
# Connecting: credentials, certificates, reachability
# --------------------------------------------------------------------------------------------------------------


def test_wrong_password_fails_fast_without_retrying(guest: GuestModel, winrm_target: WinRmTarget) -> None:
    outcome = run(winrm_target, password="Not-The-Right-0ne!", connect_timeout=30.0)
    message = expect(outcome, GuestConnectionError)
    assert "rejected the credentials of 'azureadmin'" in message
    assert guest.auth_failures == 1, "a wrong password is not retried (account lockout)"
    assert outcome.seconds < 2.0


def test_certificate_from_another_ca_is_refused_before_credentials(
    guest: GuestModel, winrm_target: WinRmTarget, wsman_server: FakeWsman
) -> None:
    other = trustme.CA().cert_pem.bytes().decode()
    outcome = run(winrm_target, ca_certificate=other, connect_timeout=30.0)
    message = expect(outcome, HostKeyMismatch)
    assert winrm_target.host in message and str(winrm_target.port) in message
    assert transport.colons(wsman_server.cert_sha256) in message, "the presented fingerprint is named"
    assert "certificate verify failed" in message and "No credentials were sent" in message
    assert "ca_certificate" in message and "certificate_sha256" in message
    assert guest.requests == [] and guest.auth_failures == 0
    assert outcome.seconds < 2.0


def test_certificate_is_validated_by_default(guest: GuestModel, winrm_target: WinRmTarget) -> None:
    # No ca_certificate, no pin: the fake's private CA is not in the system trust store.
    expect(run(winrm_target, ca_certificate=None), HostKeyMismatch)
    assert guest.requests == []


def test_wrong_pinned_fingerprint_is_refused_before_credentials(
    guest: GuestModel, winrm_target: WinRmTarget, wsman_server: FakeWsman
) -> None:
    pin = "ab" * 32
    message = expect(run(winrm_target, ca_certificate=None, certificate_sha256=pin), HostKeyMismatch)
    assert f"expected SHA-256 {transport.colons(pin)}" in message
    assert f"presented {transport.colons(wsman_server.cert_sha256)}" in message
    assert guest.requests == []


def test_pinned_fingerprint_connects_without_a_ca(
    guest: GuestModel, winrm_target: WinRmTarget, wsman_server: FakeWsman
) -> None:
    pin = transport.colons(wsman_server.cert_sha256).lower()  # colons and case do not matter
    outcome = run(winrm_target, ca_certificate=None, certificate_sha256=pin)
    succeeded(outcome)
    assert any("matches the pinned SHA-256" in line for line in outcome.log.lines)


def test_insecure_opt_out_connects_and_warns_loudly(guest: GuestModel, winrm_target: WinRmTarget) -> None:
    outcome = run(winrm_target, ca_certificate=None, insecure_skip_certificate_validation=True)
    succeeded(outcome)
    warnings = [line for line in outcome.log.lines if "WARNING" in line]
    assert any("NOT validated" in line and "insecure_skip_certificate_validation" in line for line in warnings)


def test_unreachable_host_gives_up_within_connect_timeout(guest: GuestModel, winrm_target: WinRmTarget) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    outcome = run(winrm_target, port=closed_port, connect_timeout=1.0)
    message = expect(outcome, GuestConnectionError)
    assert f"could not reach WinRM at https://127.0.0.1:{closed_port} within 1s" in message
    assert "connection refused" in message
    assert 1.0 <= outcome.seconds < 2.5


def test_connection_lost_for_good_during_sysprep_is_bounded(guest: GuestModel, winrm_target: WinRmTarget) -> None:
    guest.sysprep = SysprepBehaviour(outcome="hang")
    guest.drops_after_launch = [(0.2, 60.0, "reset")]
    outcome = run(winrm_target, connect_timeout=0.8)
    message = expect(outcome, GuestConnectionError)
    assert "could not reconnect within 0.8s" in message
    assert "Sysprep was started once" in message
    assert guest.sysprep_launch_count == 1
    assert outcome.seconds < 3.0


# --------------------------------------------------------------------------------------------------------------
# Validation and the scripts themselves
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "target_changes", "problem"),
    [
        pytest.param({"extra_args": ("/unattend:C:\\x.xml",)}, {}, "extra_args[0]", id="path-in-arg"),
        pytest.param({"extra_args": ("/quiet'; calc; '",)}, {}, "extra_args[0]", id="injection"),
        pytest.param({"extra_args": ("/Generalize",)}, {}, "is set by image-gallery itself", id="duplicate"),
        pytest.param({"extra_args": ("/shutdown",)}, {}, "is set by image-gallery itself", id="shutdown"),
        pytest.param({"extra_args": ("/unattend:answer",)}, {}, "is set by image-gallery itself", id="unattend"),
        pytest.param({"mode": "audit"}, {}, "mode:", id="mode"),
        pytest.param({"skip_checks": frozenset({"antivirus"})}, {}, "skip_checks", id="unknown-check"),
        pytest.param({"extra_args": ("/Abcdefghij:Abcdefghij",) * 10}, {}, "extra_args: 229 characters", id="too-long"),
        pytest.param({}, {"transport": "digest"}, "transport", id="transport"),
        pytest.param(
            {}, {"scheme": "http", "ca_certificate": None}, "send the password in clear", id="basic-over-http"
        ),
        pytest.param(
            {}, {"scheme": "http", "transport": "ntlm"}, "no certificate to verify over http", id="ca-over-http"
        ),
        pytest.param({}, {"certificate_sha256": "not-hex"}, "certificate_sha256", id="pin-format"),
        pytest.param({}, {"insecure_skip_certificate_validation": True}, "contradicts", id="insecure-and-ca"),
        pytest.param({}, {"connect_timeout": 0.0}, "connect_timeout: must be positive", id="no-connect-time"),
        pytest.param({"timeout": 0.0}, {}, "- timeout: must be positive", id="no-sysprep-time"),
        pytest.param({"poll_interval": -1.0}, {}, "poll_interval: must be positive", id="negative-poll"),
    ],
)
def test_invalid_settings_are_refused_before_contacting_the_guest(
    guest: GuestModel,
    winrm_target: WinRmTarget,
    options: dict[str, Any],
    target_changes: dict[str, Any],
    problem: str,
) -> None:
    outcome = run(winrm_target, dataclasses.replace(FAST, **options), **target_changes)
    assert problem in expect(outcome, ConfigError)
    assert guest.requests == []


def test_scripts_are_ascii_marked_and_fit_one_winrs_command_line_with_margin() -> None:
    paths = sorted(Path(scripts.SCRIPTS).glob("*.ps1"))
    assert {p.stem for p in paths} == {
        "agent-status",
        "check-appx",
        "check-bitlocker",
        "check-cdrom",
        "check-pending-reboot",
        "check-removable-storage",
        "check-server-roles",
        "clean-before-sysprep",
        "image-state",
        "start-sysprep",
    }
    for path in paths:
        text = path.read_text(encoding="ascii")
        assert text.splitlines()[0] == f"# image-gallery-script: {path.stem}"
        assert "ConvertTo-Json" in text and "-Compress" in text
        command = scripts.GuestScript(path.stem, largest_params(path.stem)).command
        limit = scripts.CMD_LINE_LIMIT - COMMAND_LINE_MARGIN
        assert len(command) <= limit, f"{path.name}: {len(command)} characters as sent, more than {limit}"


def largest_params(name: str) -> dict[str, scripts.ScriptValue]:
    """The largest prelude the step can send to a script: extra_args at the validated bound."""
    if name == "start-sysprep":
        bound = SYSPREP_EXTRA_ARGS_MAX_LENGTH
        word = "/Abcdefghij:Abcdefghi1"
        extra = (word,) * ((bound + 1) // (len(word) + 1))
        assert len(" ".join(extra)) <= bound
        return {"Mode": "vm", "ExtraArgs": extra}
    if name == "image-state":
        return {"TailLines": 200}
    return {}


def test_agent_services_lists_what_agent_status_reads() -> None:
    text = scripts.GuestScript("agent-status").text
    assert "foreach ($name in " + ", ".join(f"'{name}'" for name in AGENT_SERVICES) + ")" in text


def test_prelude_refuses_anything_but_whitelisted_text() -> None:
    with pytest.raises(ValueError):
        _ = scripts.GuestScript("start-sysprep", {"Mode": "vm'; Remove-Item C:\\ -Recurse; '"}).text
    with pytest.raises(ValueError):
        _ = scripts.GuestScript("image-state", {"tail; rm": 1}).text
    assert scripts.GuestScript("image-state", {"TailLines": 5}).text.startswith(
        "$TailLines = 5\n# image-gallery-script: image-state\n"
    )


# PowerShell 7 syntax that Windows PowerShell 5.1 (what WinRS starts as powershell.exe) cannot parse or run.
PS7_ONLY_NODES = {"pipeline_chain_tail"}  # `a && b`, `a || b`
PS7_ONLY_WORDS = ("-Parallel", "-AsHashtable", "-EscapeHandling", "-AsArray", "Get-Error", "$PSStyle", "Join-String")


@pytest.mark.parametrize("name", sorted(p.stem for p in Path(scripts.SCRIPTS).glob("*.ps1")))
def test_every_script_as_sent_parses_as_windows_powershell(name: str) -> None:
    tree_sitter = pytest.importorskip("tree_sitter")
    grammar = pytest.importorskip("tree_sitter_powershell")
    text = scripts.GuestScript(name, largest_params(name)).text
    tree = tree_sitter.Parser(tree_sitter.Language(grammar.language())).parse(text.encode("ascii"))
    problems: list[str] = []
    stack = [tree.root_node]
    while stack:
        node = stack.pop()
        if node.is_error or node.is_missing or node.type in PS7_ONLY_NODES:
            line = text.splitlines()[node.start_point[0]]
            problems.append(f"{node.type} at line {node.start_point[0] + 1}: {line.strip()}")
        stack.extend(node.children)
    # `??`, `?.` and the ternary operator have no node of their own in this grammar: they parse as errors above.
    problems += [f"PowerShell 7 only: {word}" for word in PS7_ONLY_WORDS if word.lower() in text.lower()]
    assert not problems, f"{name}.ps1 as sent:\n" + "\n".join(problems)


def test_the_grammar_check_catches_what_it_is_meant_to() -> None:
    tree_sitter = pytest.importorskip("tree_sitter")
    grammar = pytest.importorskip("tree_sitter_powershell")
    parser = tree_sitter.Parser(tree_sitter.Language(grammar.language()))
    for bad in ("$a = $b ?? 1", "$a = $b ? 1 : 2", "Get-Item x && Get-Item y", "if ($a { 1 }"):
        root = parser.parse(bad.encode()).root_node
        found = []
        stack = [root]
        while stack:
            node = stack.pop()
            found.append(node.is_error or node.is_missing or node.type in PS7_ONLY_NODES)
            stack.extend(node.children)
        assert any(found), bad


# --------------------------------------------------------------------------------------------------------------
# NTLM, the default transport, against a real NTLM acceptor (pyspnego)
# --------------------------------------------------------------------------------------------------------------


def test_default_transport_ntlm_generalizes(guest: GuestModel, ntlm_guest: tuple[FakeWsman, WinRmTarget]) -> None:
    _, target = ntlm_guest
    assert target.transport == "ntlm", "the product's default"
    guest.sysprep = SysprepBehaviour(runtime=0.3)
    succeeded(run(target))
    assert guest.sysprep_launch_count == 1
    assert guest.ntlm_logons and all(logon.principal.endswith(guest.username) for logon in guest.ntlm_logons)
    if target.scheme == "https":
        assert all(logon.channel_binding for logon in guest.ntlm_logons), "channel binding on every logon"
        assert guest.sealed_requests == 0
    else:
        assert guest.sealed_requests >= len(guest.requests) > 0, "every SOAP message went encrypted"
        assert guest.unencrypted_refused == 0


def test_ntlm_wrong_password_fails_at_once(guest: GuestModel, ntlm_guest: tuple[FakeWsman, WinRmTarget]) -> None:
    _, target = ntlm_guest
    outcome = run(target, password="Not-The-Right-0ne!", connect_timeout=30.0)
    assert "rejected the credentials of 'azureadmin'" in expect(outcome, GuestConnectionError)
    assert guest.auth_failures == 1 and guest.requests == []
    assert outcome.seconds < 2.0


def test_ntlm_logons_refused_during_sysprep_are_reconnected(
    guest: GuestModel, ntlm_guest: tuple[FakeWsman, WinRmTarget]
) -> None:
    _, target = ntlm_guest
    guest.sysprep = SysprepBehaviour(undeployable_after=0.1, runtime=1.2)
    guest.drops_after_launch = [(0.2, 0.6, "unauthorized")]
    succeeded(run(target))
    assert guest.auth_failures > 0 and guest.sysprep_launch_count == 1


def test_plan_lists_the_clean_up_the_new_checks_and_what_finished_means() -> None:
    from hooks.steps import WINDOWS_GUEST_STEPS

    steps = "\n".join(WINDOWS_GUEST_STEPS)
    for phrase in (
        "cdrom Start=1",
        "removable-storage",
        "every fixed drive",
        "a failing role query",
        "Panther",
        "Setup!UnattendFile",
        "Sysprep_succeeded.tag",
        "UNDEPLOYABLE",
        "refused logons",
    ):
        assert phrase in steps, phrase


def test_winrm_requests_never_write_the_process_environment(
    monkeypatch: pytest.MonkeyPatch, guest: GuestModel, winrm_target: WinRmTarget
) -> None:
    # One provider host runs several guests at once (components/generalization_hosts.py). requests applied the
    # session's no_proxy by writing it into os.environ around each request, which broke a reader in another
    # thread with KeyError('no_proxy') in the middle of sysprep (seen with eight chains under the real CLI).
    import os

    writes: list[str] = []
    set_item, del_item = os._Environ.__setitem__, os._Environ.__delitem__

    def record_set(self: Any, key: str, value: str) -> None:
        writes.append(f"set {key}")
        set_item(self, key, value)

    def record_del(self: Any, key: str) -> None:
        writes.append(f"del {key}")
        del_item(self, key)

    monkeypatch.setattr(os._Environ, "__setitem__", record_set)
    monkeypatch.setattr(os._Environ, "__delitem__", record_del)
    guest.sysprep = SysprepBehaviour(undeployable_after=0.05, runtime=0.2)
    succeeded(run(winrm_target))
    assert writes == [], f"the WinRM step wrote the environment: {writes[:5]}"


def test_a_proxy_in_the_environment_is_not_used_for_winrm(
    monkeypatch: pytest.MonkeyPatch, guest: GuestModel, winrm_target: WinRmTarget
) -> None:
    # Port 9 (discard) on loopback: nothing listens, a request through this "proxy" would fail at once.
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    guest.sysprep = SysprepBehaviour(undeployable_after=0.05, runtime=0.2)
    succeeded(run(winrm_target))
