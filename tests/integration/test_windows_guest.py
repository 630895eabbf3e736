"""The Windows guest step (hooks/windows.py) against a fake WinRM listener playing a scripted Windows guest.

Real pywinrm, real TLS, real HTTP; Basic authentication instead of NTLM (which cannot be faked honestly).
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
from hooks.targets import GuestResult, SysprepOptions, WinRmTarget
from tests.fakes.wsman import (  # noqa: F401  (fixtures)
    COMPLETE,
    RESEAL_TO_OOBE,
    UNDEPLOYABLE,
    AppxPackage,
    FakeWsman,
    GuestModel,
    SysprepBehaviour,
    guest,
    winrm_target,
    wsman_ca,
    wsman_server,
)

FAST = SysprepOptions(poll_interval=0.05, agent_timeout=5.0, sysprep_timeout=20.0)
PRECHECK_SCRIPTS = ("check-server-roles", "check-bitlocker", "check-appx", "check-pending-reboot")


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
    assert scripts_run(guest)[:7] == [
        "image-state",
        "agent-status",
        *PRECHECK_SCRIPTS,
        "start-sysprep",
    ]
    states = [line for line in outcome.log.lines if "sysprep: ImageState" in line]
    assert UNDEPLOYABLE in states[-2] and RESEAL_TO_OOBE in states[-1]
    assert guest.answer_files == []
    assert any("removed leftover answer file C:\\Windows\\Panther\\unattend.xml" in line for line in outcome.log.lines)
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


def test_after_an_earlier_failed_sysprep_it_warns_and_runs_again(guest: GuestModel, winrm_target: WinRmTarget) -> None:
    guest.image_state = UNDEPLOYABLE
    outcome = run(winrm_target)
    succeeded(outcome)
    assert guest.sysprep_launch_count == 1
    assert any("WARNING" in line and "earlier sysprep failed" in line for line in outcome.log.lines)


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
    options = dataclasses.replace(FAST, sysprep_timeout=10.0)

    outcome = run(winrm_target, options)
    message = expect(outcome, SysprepFailed)

    assert outcome.seconds < 3.0, "failure is seen as soon as sysprep is gone, not at the timeout"
    assert UNDEPLOYABLE in message and "PID 4000" in message
    assert "--- setuperr.log" in message and "--- setupact.log" in message
    assert "0x80073cf2" in message
    assert "Contoso.Notes_2.1.0.0_x64__8wekyb3d8bbwe was installed for a user" in message
    assert "stale error from last year" not in message, "logs of an earlier run were moved aside"
    assert guest.sysprep_launch_count == 1


def test_sysprep_that_fails_before_generalize_is_a_failure_too(guest: GuestModel, winrm_target: WinRmTarget) -> None:
    guest.sysprep = SysprepBehaviour(outcome="fail", undeployable_after=99.0, runtime=0.2, failed_state=COMPLETE)
    message = expect(run(winrm_target), SysprepFailed)
    assert COMPLETE in message


def test_hanging_sysprep_times_out_naming_the_last_image_state(guest: GuestModel, winrm_target: WinRmTarget) -> None:
    guest.sysprep = SysprepBehaviour(outcome="hang", undeployable_after=0.1)
    outcome = run(winrm_target, dataclasses.replace(FAST, sysprep_timeout=0.8))
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


def test_benign_guest_facts_pass(guest: GuestModel, winrm_target: WinRmTarget) -> None:
    guest.features.append("WDS")  # installed but not initialized: supported
    guest.bitlocker_source = "none"
    guest.services["WindowsAzureTelemetryService"].present = False  # newer agents have no telemetry service
    succeeded(run(winrm_target))
    assert guest.sysprep_launch_count == 1


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
    monkeypatch.setattr(windows, "OPERATION_TIMEOUT", 1)
    monkeypatch.setattr(windows, "READ_TIMEOUT", 3)
    guest.script_delays["check-appx"] = 1.3
    succeeded(run(winrm_target))
    assert guest.operation_timeouts >= 1, "WinRM said 'still running' and the client asked again"


def test_hanging_script_is_bounded(
    guest: GuestModel, winrm_target: WinRmTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    # pywinrm's own output loop would wait forever; ours stops at SCRIPT_TIMEOUT.
    monkeypatch.setattr(windows, "OPERATION_TIMEOUT", 1)
    monkeypatch.setattr(windows, "READ_TIMEOUT", 3)
    monkeypatch.setattr(windows, "SCRIPT_TIMEOUT", 0.5)
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
    outcome = run(winrm_target, ca_bundle=other, connect_timeout=30.0)
    message = expect(outcome, HostKeyMismatch)
    assert winrm_target.host in message and str(winrm_target.port) in message
    assert windows._colons(wsman_server.cert_sha256) in message, "the presented fingerprint is named"
    assert "certificate verify failed" in message and "No credentials were sent" in message
    assert "ca_bundle" in message and "cert_sha256" in message
    assert guest.requests == [] and guest.auth_failures == 0
    assert outcome.seconds < 2.0


def test_certificate_is_validated_by_default(guest: GuestModel, winrm_target: WinRmTarget) -> None:
    # No ca_bundle, no pin: the fake's private CA is not in the system trust store.
    expect(run(winrm_target, ca_bundle=None), HostKeyMismatch)
    assert guest.requests == []


def test_wrong_pinned_fingerprint_is_refused_before_credentials(
    guest: GuestModel, winrm_target: WinRmTarget, wsman_server: FakeWsman
) -> None:
    pin = "ab" * 32
    message = expect(run(winrm_target, ca_bundle=None, cert_sha256=pin), HostKeyMismatch)
    assert f"expected SHA-256 {windows._colons(pin)}" in message
    assert f"presented {windows._colons(wsman_server.cert_sha256)}" in message
    assert guest.requests == []


def test_pinned_fingerprint_connects_without_a_ca(
    guest: GuestModel, winrm_target: WinRmTarget, wsman_server: FakeWsman
) -> None:
    pin = windows._colons(wsman_server.cert_sha256).lower()  # colons and case do not matter
    outcome = run(winrm_target, ca_bundle=None, cert_sha256=pin)
    succeeded(outcome)
    assert any("matches the pinned SHA-256" in line for line in outcome.log.lines)


def test_insecure_opt_out_connects_and_warns_loudly(guest: GuestModel, winrm_target: WinRmTarget) -> None:
    outcome = run(winrm_target, ca_bundle=None, insecure_skip_cert_validation=True)
    succeeded(outcome)
    warnings = [line for line in outcome.log.lines if "WARNING" in line]
    assert any("NOT validated" in line and "insecure_skip_cert_validation" in line for line in warnings)


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
        pytest.param({"extra_args": ("/Generalize",)}, {}, "always set", id="duplicate"),
        pytest.param({"extra_args": ("/shutdown",)}, {}, "conflicts", id="shutdown"),
        pytest.param({"mode": "audit"}, {}, "mode:", id="mode"),
        pytest.param({"skip_checks": frozenset({"antivirus"})}, {}, "skip_checks", id="unknown-check"),
        pytest.param({}, {"transport": "digest"}, "transport", id="transport"),
        pytest.param({}, {"scheme": "http", "ca_bundle": None}, "clear text", id="basic-over-http"),
        pytest.param({}, {"scheme": "http", "transport": "ntlm"}, "need https", id="ca-over-http"),
        pytest.param({}, {"cert_sha256": "not-hex"}, "cert_sha256", id="pin-format"),
        pytest.param({}, {"insecure_skip_cert_validation": True}, "contradicts", id="insecure-and-ca"),
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


def test_scripts_are_ascii_marked_and_fit_one_winrs_command_line() -> None:
    scripts = sorted(Path(windows.SCRIPTS).glob("*.ps1"))
    assert {p.stem for p in scripts} == {
        "agent-status",
        "check-appx",
        "check-bitlocker",
        "check-pending-reboot",
        "check-server-roles",
        "image-state",
        "start-sysprep",
    }
    for path in scripts:
        text = path.read_text(encoding="ascii")
        assert text.splitlines()[0] == f"# image-gallery-script: {path.stem}"
        assert "ConvertTo-Json" in text and "-Compress" in text
        params: dict[str, windows.ScriptValue] = {}
        if path.stem == "start-sysprep":
            params = {"Mode": "vm", "ExtraArgs": ("/Abcdefgh:Abcdefgh1",) * 4}
        command = windows.GuestScript(path.stem, params).command
        assert len(command) < windows.CMD_LINE_LIMIT, path.name


def test_prelude_refuses_anything_but_whitelisted_text() -> None:
    with pytest.raises(ValueError):
        _ = windows.GuestScript("start-sysprep", {"Mode": "vm'; Remove-Item C:\\ -Recurse; '"}).text
    with pytest.raises(ValueError):
        _ = windows.GuestScript("image-state", {"tail; rm": 1}).text
    assert windows.GuestScript("image-state", {"TailLines": 5}).text.startswith(
        "$TailLines = 5\n# image-gallery-script: image-state\n"
    )
