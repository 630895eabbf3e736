"""The Linux step, unchanged, against ScriptedLinuxGuest (tests/fakes/ssh_guest.py): the stand-in `make demo` uses
where the real sandbox (sshd + waagent, needs root) cannot run. Mirrors test_linux_guest.py where both apply."""

from __future__ import annotations

import base64
import io
import socket
import threading
import time
from collections.abc import Iterator

import paramiko
import pytest

from hooks.errors import ConfigError, GuestCommandFailed, GuestConnectionError, HostKeyMismatch
from hooks.linux import COMPLETE_MARKER, METHOD, SCRIPT, DeprovisionFailed, deprovision
from tests.fakes.ssh_guest import ROOT_SCRIPT_COMMAND, SCRIPT_COMMAND, ScriptedLinuxGuest
from tests.integration.test_linux_guest import Recorder, assert_no_secrets, new_private_key, secret_pieces


@pytest.fixture
def guest() -> Iterator[ScriptedLinuxGuest]:
    with ScriptedLinuxGuest() as running:
        yield running


def test_deprovisions_through_the_real_linux_step(guest: ScriptedLinuxGuest) -> None:
    recorder = Recorder()

    result = deprovision(guest.target(), recorder.log)

    assert guest.deprovisioned
    assert guest.commands == [SCRIPT_COMMAND], "hooks/linux.py sends exactly one command"
    assert result.method == METHOD
    lines = result.output_tail.splitlines()
    assert lines[-1] == COMPLETE_MARKER
    assert "image-gallery: found /usr/sbin/waagent" in lines
    assert f"{guest.username} account and entire home directory will be deleted" in result.output_tail
    assert "SSH host key pairs will be deleted" not in result.output_tail, "Ubuntu's waagent.conf keeps them"
    steps = [line for line in recorder.lines if "image-gallery: step" in line]
    assert len(steps) == SCRIPT.read_text().count('say "step ')
    assert any("host key ssh-ed25519 SHA256:" in line and "verified" in line for line in recorder.lines)
    assert recorder.warnings == []
    assert not any("session then ended" in line for line in recorder.lines), "exit status 0 arrived: no note"
    assert_no_secrets(secret_pieces(guest.private_key), recorder, None, result.detail, result.output_tail)


def test_a_bare_host_key_is_verified_too(guest: ScriptedLinuxGuest) -> None:
    result = deprovision(guest.target(host_key=guest.host_public_key), Recorder().log)

    assert result.output_tail.endswith(COMPLETE_MARKER)


def test_wrong_host_key_is_refused_and_nothing_runs(guest: ScriptedLinuxGuest) -> None:
    recorder = Recorder()
    impostor = paramiko.Ed25519Key.from_private_key(io.StringIO(new_private_key()))
    presented = paramiko.PKey.from_type_string("ssh-ed25519", _blob(guest.host_public_key))

    with pytest.raises(HostKeyMismatch) as caught:
        deprovision(guest.target(host_key=f"ssh-ed25519 {impostor.get_base64()}"), recorder.log)

    message = str(caught.value)
    assert impostor.fingerprint in message
    assert presented.fingerprint in message
    assert "Nothing was run" in message
    assert guest.commands == []
    assert not guest.deprovisioned
    assert_no_secrets(secret_pieces(guest.private_key), recorder, caught.value)
    assert _closed_soon(guest), "the connection to a host that failed verification is closed, not left open"


def _closed_soon(guest: ScriptedLinuxGuest) -> bool:
    deadline = time.monotonic() + 3.0
    while guest.open_connections() and time.monotonic() < deadline:
        time.sleep(0.05)
    return guest.open_connections() == 0


def test_an_image_without_sudo_is_explained_and_nothing_ran() -> None:
    with ScriptedLinuxGuest(sudo_installed=False) as guest, pytest.raises(DeprovisionFailed) as caught:
        deprovision(guest.target(), Recorder().log)
    assert caught.value.exit_code == 127
    assert f"sudo is not installed on 127.0.0.1:{guest.port}" in str(caught.value)
    assert "Nothing was changed" in str(caught.value) and not guest.deprovisioned


def test_the_host_key_is_verified_on_the_default_port_22_too() -> None:
    # OpenSSH and paramiko name a host on port 22 without the [host]:port brackets.
    try:
        guest = ScriptedLinuxGuest(port=22).start()
    except OSError as exc:  # not root, or an sshd already listens there
        pytest.skip(f"cannot listen on 127.0.0.1:22 ({exc})")
    try:
        result = deprovision(guest.target(host_key=guest.host_public_key, connect_timeout=3.0), Recorder().log)
    finally:
        guest.stop()
    assert guest.deprovisioned and result.output_tail.endswith(COMPLETE_MARKER)


def test_a_session_cut_while_waagent_runs_is_reported_at_once_with_advice() -> None:
    with ScriptedLinuxGuest(session_dies_in_waagent=True) as guest:
        started = time.monotonic()
        with pytest.raises(DeprovisionFailed) as caught:
            deprovision(guest.target(), Recorder().log)
        elapsed = time.monotonic() - started
    assert caught.value.exit_code is None
    assert "ended before deprovision.sh finished" in str(caught.value)
    assert "-deprovision+user" in caught.value.output_tail
    assert elapsed < 3.0, "a closed session has no exit status to wait for"


def test_root_runs_the_script_without_sudo() -> None:
    # An image whose only login is root (sudo may not even be installed): `sh -s`, not `sudo -n sh -s`.
    with ScriptedLinuxGuest(username="root") as guest:
        result = deprovision(guest.target(), Recorder().log)
    assert guest.commands == [ROOT_SCRIPT_COMMAND] and guest.deprovisioned
    assert result.output_tail.endswith(COMPLETE_MARKER)


def test_an_unusable_private_key_is_a_config_error_naming_the_target_and_nothing_connects(
    guest: ScriptedLinuxGuest,
) -> None:
    with pytest.raises(ConfigError) as caught:
        deprovision(guest.target(private_key="not a key at all"), Recorder().log)
    assert f"SSH target 127.0.0.1:{guest.port}: the SSH private key could not be read" in str(caught.value)
    assert guest.commands == [] and guest.open_connections() == 0


def test_second_run_is_refused_because_waagent_deleted_the_user(guest: ScriptedLinuxGuest) -> None:
    deprovision(guest.target(), Recorder().log)
    recorder = Recorder()

    started = time.monotonic()
    with pytest.raises(GuestConnectionError) as caught:
        deprovision(guest.target(connect_timeout=60), recorder.log)

    # As test_linux_guest.py's refused key: fails fast, names the user, is not a host key problem.
    assert time.monotonic() - started < 5, "an authentication failure must not be retried until connect_timeout"
    assert not isinstance(caught.value, HostKeyMismatch)
    message = str(caught.value)
    assert "refused the private key" in message
    assert guest.username in message
    assert "that user no longer exists" in message
    assert guest.commands == [SCRIPT_COMMAND], "nothing ran the second time"
    assert_no_secrets(secret_pieces(guest.private_key), recorder, caught.value)


def test_with_host_keys_deleted_like_debian_the_second_run_cannot_connect() -> None:
    """Debian's waagent.conf (the sandbox's) deletes the host keys; sshd then resets every new connection."""
    with ScriptedLinuxGuest(regenerate_ssh_host_key_pair=True) as guest:
        result = deprovision(guest.target(), Recorder().log)
        assert "WARNING! All SSH host key pairs will be deleted." in result.output_tail
        recorder = Recorder()

        started = time.monotonic()
        with pytest.raises(GuestConnectionError) as caught:
            deprovision(guest.target(connect_timeout=1.5), recorder.log)

    assert time.monotonic() - started < 5
    message = str(caught.value)
    assert f"could not reach SSH on {guest.host}:{guest.port} within 1.5s" in message
    # Word for word what the sandbox's sshd 9.2 gives once waagent has deleted its host keys.
    assert "last error: SSHException: Error reading SSH protocol banner[Errno 104] Connection reset by peer" in message
    assert any("retrying" in line for line in recorder.lines)
    assert guest.commands == [SCRIPT_COMMAND]


def test_passwords_are_refused(guest: ScriptedLinuxGuest) -> None:
    with pytest.raises(GuestConnectionError) as caught:
        deprovision(guest.target(private_key=None, password="not-used-s3cret"), Recorder().log)

    assert "does not accept a password" in str(caught.value)
    assert "publickey" in str(caught.value)
    assert guest.commands == []


def test_unknown_commands_exit_127_naming_the_command(guest: ScriptedLinuxGuest) -> None:
    client = _client(guest)
    try:
        _, stdout, stderr = client.exec_command("cat /etc/os-release", timeout=5)
        assert stdout.channel.recv_exit_status() == 127
        assert stdout.read() == b""
        assert "cat /etc/os-release: command not found" in stderr.read().decode()
    finally:
        client.close()
    assert guest.commands == ["cat /etc/os-release"]
    assert not guest.deprovisioned


def test_a_different_script_is_not_run(guest: ScriptedLinuxGuest) -> None:
    client = _client(guest)
    try:
        stdin, stdout, stderr = client.exec_command(SCRIPT_COMMAND, timeout=5)
        stdin.write(b"echo hello\n")
        stdin.channel.shutdown_write()
        assert stdout.channel.recv_exit_status() == 2
        assert "not hooks/scripts/deprovision.sh" in stderr.read().decode()
    finally:
        client.close()
    assert not guest.deprovisioned


def test_stop_is_bounded_with_a_session_open() -> None:
    guest = ScriptedLinuxGuest().start()
    client = _client(guest)
    stdin, _, _ = client.exec_command(SCRIPT_COMMAND, timeout=5)  # waits for a script that never comes
    stdin.write(b"#!/bin/sh\n")
    assert any(t.name == f"ssh-guest:{guest.port}:exec" for t in threading.enumerate())

    started = time.monotonic()
    guest.stop()

    assert time.monotonic() - started < 2.5
    assert not [t.name for t in threading.enumerate() if t.name.startswith(f"ssh-guest:{guest.port}")]
    with pytest.raises(OSError), socket.create_connection((guest.host, guest.port), timeout=1):
        pass
    client.close()


def _client(guest: ScriptedLinuxGuest) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.get_host_keys().add(f"[{guest.host}]:{guest.port}", "ssh-ed25519", _host_key(guest))
    client.connect(
        guest.host,
        port=guest.port,
        username=guest.username,
        pkey=paramiko.Ed25519Key.from_private_key(io.StringIO(guest.private_key)),
        allow_agent=False,
        look_for_keys=False,
        timeout=5,
    )
    return client


def _host_key(guest: ScriptedLinuxGuest) -> paramiko.PKey:
    return paramiko.PKey.from_type_string("ssh-ed25519", _blob(guest.host_public_key))


def _blob(public_line: str) -> bytes:
    return base64.b64decode(public_line.split()[1])


def test_an_unexpected_error_while_connecting_surfaces_as_itself_at_once(
    guest: ScriptedLinuxGuest, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Only network trouble is retried (a booting VM); anything else is a bug to see, not "unreachable" for minutes.
    def broken(self: paramiko.SSHClient, *args: object, **kwargs: object) -> None:
        raise RuntimeError("paramiko broke")

    monkeypatch.setattr(paramiko.SSHClient, "connect", broken)
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="paramiko broke"):
        deprovision(guest.target(), Recorder().log)
    assert time.monotonic() - started < 2.0
    assert guest.commands == []


def test_an_error_from_deeper_down_is_redacted_before_it_leaves_the_step(
    guest: ScriptedLinuxGuest, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The last line of defence: whatever a failure below says, the step's secrets leave it redacted.
    import hooks.linux

    def leaky(*_args: object) -> None:
        raise GuestCommandFailed(f"the script failed while handling {guest.private_key}")

    monkeypatch.setattr(hooks.linux, "_run_script", leaky)
    recorder = Recorder()
    with pytest.raises(GuestCommandFailed) as caught:
        deprovision(guest.target(), recorder.log)
    assert "the script failed while handling" in str(caught.value)
    assert_no_secrets(secret_pieces(guest.private_key), recorder, caught.value)
