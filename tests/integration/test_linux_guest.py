"""The Linux guest step against the most real peer we can run offline: OpenSSH's sshd and Debian's waagent in a
throwaway root (tests/fakes/sandbox.py), reached with paramiko over 127.0.0.1."""

from __future__ import annotations

import base64
import contextlib
import io
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import paramiko
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from hooks.errors import GuestCommandFailed, GuestConnectionError, HostKeyMismatch, PreCheckFailed, WaitTimeout
from hooks.linux import (
    COMPLETE_MARKER,
    EXIT_NO_HOST_KEY_GENERATOR,
    EXIT_NO_WAAGENT,
    DeprovisionFailed,
    NoHostKeyGenerator,
    deprovision,
)
from hooks.log import Log
from hooks.targets import SshTarget
from tests.fakes.sandbox import Sandbox, sandbox_fixture, sandbox_rootfs  # noqa: F401  (pytest fixtures)
from tests.fakes.ssh_guest import ScriptedLinuxGuest


class Recorder:
    """A Log whose lines are kept for assertions; it knows no secrets, so nothing is redacted for us."""

    def __init__(self) -> None:
        self.log = Log("vm-under-test", secrets=(), sink=lambda line: None)

    @property
    def lines(self) -> list[str]:
        return self.log.lines

    @property
    def warnings(self) -> list[str]:
        return [line for line in self.lines if "WARNING:" in line]


def secret_pieces(*secrets: str | None) -> list[str]:
    """Each secret and every substantial line of it (a leaked key line is a leak too), minus PEM armour."""
    pieces: list[str] = []
    for secret in secrets:
        if not secret:
            continue
        pieces.append(secret)
        pieces += [line for line in secret.splitlines() if len(line) >= 8 and not line.startswith("-----")]
    return pieces


def assert_no_secrets(secrets: list[str], recorder: Recorder, error: BaseException | None = None, *more: str) -> None:
    texts = [*recorder.lines, *more]
    if error is not None:
        texts += [str(error), repr(error), *(str(a) for a in error.args)]
        if isinstance(error, DeprovisionFailed):
            texts.append(error.output_tail)
    for text in texts:
        for piece in secrets:
            assert piece not in text, f"a secret leaked into: {text[:200]!r}"


def new_private_key(passphrase: str | None = None) -> str:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase.encode()) if passphrase else serialization.NoEncryption()
    )
    key = ed25519.Ed25519PrivateKey.generate()
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, encryption).decode()


def new_key_pair(kind: str, passphrase: str) -> tuple[str, str]:
    """(private key text, public key line) of `kind`: rsa and ecdsa as traditional PEM, ed25519 as OpenSSH."""
    private: ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
    if kind == "rsa":
        private, fmt = rsa.generate_private_key(65537, 2048), serialization.PrivateFormat.TraditionalOpenSSL
    elif kind == "ecdsa":
        private, fmt = ec.generate_private_key(ec.SECP384R1()), serialization.PrivateFormat.TraditionalOpenSSL
    else:
        private, fmt = ed25519.Ed25519PrivateKey.generate(), serialization.PrivateFormat.OpenSSH
    text = private.private_bytes(
        serialization.Encoding.PEM, fmt, serialization.BestAvailableEncryption(passphrase.encode())
    ).decode()
    public = private.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return text, public.decode()


def host_files(sandbox: Sandbox) -> list[Path]:
    return sorted((sandbox.root / "etc/ssh").glob("ssh_host_*key*"))


MACHINE_ID = "5c1f0a3e9d8b4f6a8e2b7c4d1a0f9e3b\n"


def give_identity(sandbox: Sandbox, regenerate_host_keys: str | None = None) -> None:
    """What a running VM has: a machine ID (and a D-Bus copy of it as a separate file, as on older images); with
    `regenerate_host_keys`, waagent.conf's Provisioning.RegenerateSshHostKeyPair set to it."""
    (sandbox.root / "etc/machine-id").write_text(MACHINE_ID)
    dbus = sandbox.root / "var/lib/dbus"
    dbus.mkdir(parents=True, exist_ok=True)
    (dbus / "machine-id").write_text(MACHINE_ID)
    if regenerate_host_keys is not None:
        conf = sandbox.root / "etc/waagent.conf"
        lines = [line for line in conf.read_text().splitlines() if "RegenerateSshHostKeyPair" not in line]
        conf.write_text("\n".join([*lines, f"Provisioning.RegenerateSshHostKeyPair={regenerate_host_keys}"]) + "\n")


def install_cloud_init_stand_in(sandbox: Sandbox) -> Path:
    """The sandbox has no cloud-init: a stand-in that records how it is called (the real one's clean needs its
    state). Returns the file its calls go to."""
    calls = sandbox.root / "var/log/cloud-init-calls"
    stand_in = sandbox.root / "usr/local/bin/cloud-init"
    stand_in.write_text(f'#!/bin/sh\necho "$*" >>/{calls.relative_to(sandbox.root)}\n')
    stand_in.chmod(0o755)
    return calls


SSHD_KEYGEN_UNIT = "usr/lib/systemd/system/sshd-keygen@.service"
"""Where RHEL, Fedora and Azure Linux install the unit that makes missing host keys before sshd starts."""


def install_sshd_keygen_unit(sandbox: Sandbox) -> None:
    """RHEL's sshd-keygen@.service (openssh-server), as far as the pre-check looks: the file."""
    (sandbox.root / SSHD_KEYGEN_UNIT).write_text(
        "[Unit]\nDescription=OpenSSH %i Server Key Generation\nConditionFileNotEmpty=|!/etc/ssh/ssh_host_%i_key\n\n"
        "[Service]\nType=oneshot\nEnvironmentFile=-/etc/sysconfig/sshd\nExecStart=/usr/libexec/openssh/sshd-keygen %i\n"
    )


def replace_waagent(sandbox: Sandbox, script: str) -> None:
    agent = sandbox.root / "usr/sbin/waagent"
    agent.unlink()
    agent.write_text(script)
    agent.chmod(0o755)


# --- success --------------------------------------------------------------------------------------------------


@pytest.mark.sandbox
def test_deprovisions_with_the_real_waagent(sandbox: Sandbox) -> None:
    recorder = Recorder()
    give_identity(sandbox)
    assert sandbox.user_exists(sandbox.username)
    assert host_files(sandbox)

    started = time.monotonic()
    result = deprovision(sandbox.target(), recorder.log)

    assert time.monotonic() - started < 30
    assert result.method == "waagent -force -deprovision+user"
    assert result.output_tail.splitlines()[-1] == COMPLETE_MARKER
    assert "azureuser account and entire home directory will be deleted" in result.output_tail
    # What waagent -deprovision+user does, seen from outside the sandbox:
    assert not sandbox.user_exists(sandbox.username)
    assert not (sandbox.root / "home" / sandbox.username).exists()
    assert host_files(sandbox) == []
    assert not (sandbox.root / "etc/resolv.conf").exists()
    assert (sandbox.root / "etc/hostname").read_text().strip() == "localhost.localdomain"
    assert (sandbox.root / "etc/shadow").read_text().startswith("root:*LOCK*")
    # ...and what deprovision.sh adds.
    assert not (sandbox.root / "root/.bash_history").exists()
    assert list((sandbox.root / "tmp").iterdir()) == []  # the script came on stdin: nothing of ours is left
    # machine-id(5): emptied, not deleted, so systemd makes a new one at first boot; no D-Bus copy to fall back on.
    assert (sandbox.root / "etc/machine-id").read_text() == ""
    assert not (sandbox.root / "var/lib/dbus/machine-id").exists()

    assert any("host key ssh-ed25519 SHA256:" in line and "verified" in line for line in recorder.lines)
    steps = [line for line in recorder.lines if "image-gallery: step" in line]
    assert len(steps) == 4
    assert recorder.warnings == []
    assert_no_secrets(secret_pieces(sandbox.private_key), recorder, None, result.detail, result.output_tail)


@pytest.mark.sandbox
def test_host_keys_are_deleted_even_when_waagent_is_told_not_to(sandbox: Sandbox) -> None:
    # WALinuxAgent deletes them only with Provisioning.RegenerateSshHostKeyPair=y (its default is n). With n, the
    # pre-check needs something else to make new ones at first boot: here RHEL's sshd-keygen unit.
    give_identity(sandbox, regenerate_host_keys="n")
    install_sshd_keygen_unit(sandbox)
    (sandbox.root / "etc/ssh/ssh_host_ed25519_key-cert.pub").write_text("ssh-ed25519-cert-v01@openssh.com AAAA\n")
    result = deprovision(sandbox.target(), Recorder().log)
    assert "All SSH host key pairs will be deleted" not in result.output_tail, "waagent really left them"
    assert sorted((sandbox.root / "etc/ssh").glob("ssh_host_*")) == []
    assert (sandbox.root / "etc/machine-id").read_text() == ""


@pytest.mark.sandbox
def test_keep_machine_id_keeps_it_and_still_deletes_the_host_keys(sandbox: Sandbox) -> None:
    give_identity(sandbox, regenerate_host_keys="n")
    install_sshd_keygen_unit(sandbox)
    recorder = Recorder()
    result = deprovision(sandbox.target(keep_machine_id=True), recorder.log)
    assert result.output_tail.splitlines()[-1] == COMPLETE_MARKER
    assert "keeping /etc/machine-id (keepMachineId)" in result.output_tail
    assert (sandbox.root / "etc/machine-id").read_text() == MACHINE_ID
    assert (sandbox.root / "var/lib/dbus/machine-id").read_text() == MACHINE_ID
    assert sorted((sandbox.root / "etc/ssh").glob("ssh_host_*")) == []
    assert any("--keep-machine-id" in line for line in recorder.lines)


@pytest.mark.sandbox
def test_cloud_init_is_cleaned_where_it_is_installed(sandbox: Sandbox) -> None:
    calls = install_cloud_init_stand_in(sandbox)
    (sandbox.root / "var/lib/cloud/instance").mkdir(parents=True)
    give_identity(sandbox)
    deprovision(sandbox.target(), Recorder().log)
    assert calls.read_text().splitlines() == ["clean --logs --seed"]
    assert not (sandbox.root / "var/lib/cloud").exists()
    assert (sandbox.root / "etc/machine-id").read_text() == ""


@pytest.mark.sandbox
def test_password_authentication_and_a_bare_host_key(sandbox: Sandbox) -> None:
    recorder = Recorder()
    target = sandbox.target(
        username=sandbox.password_username,
        private_key=None,
        password=sandbox.password,
        host_key=sandbox.host_public_key,  # `ssh-ed25519 AAAA…` without the known_hosts host field
    )

    result = deprovision(target, recorder.log)

    assert result.output_tail.endswith(COMPLETE_MARKER)
    # waagent deletes the user named in ovf-env.xml, whoever runs it.
    assert not sandbox.user_exists(sandbox.username)
    assert_no_secrets(secret_pieces(sandbox.password), recorder, None, result.output_tail)


@pytest.mark.sandbox
def test_a_session_that_closes_without_exit_status_after_the_marker_is_success(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What a dying session looks like to paramiko: the channel closes and no exit-status ever arrives.
    monkeypatch.setattr(paramiko.Channel, "recv_exit_status", lambda self: -1)
    recorder = Recorder()

    result = deprovision(sandbox.target(), recorder.log)

    assert result.output_tail.endswith(COMPLETE_MARKER)
    assert any("no exit status" in line and "as expected" in line for line in recorder.lines)


@pytest.mark.sandbox
@pytest.mark.parametrize(
    ("client_key", "host_key_type"),
    [
        ("rsa", "ssh-rsa"),
        ("ecdsa", "ecdsa-sha2-nistp256"),
        ("ed25519", "ssh-ed25519"),
    ],
)
def test_key_types_with_a_passphrase(sandbox: Sandbox, client_key: str, host_key_type: str) -> None:
    """RSA and ECDSA keys in the traditional PEM format, Ed25519 in OpenSSH's; each host key type verified."""
    recorder = Recorder()
    passphrase = "pass phrase " + client_key
    key_text, public_line = new_key_pair(client_key, passphrase)
    with open(sandbox.root / "home" / sandbox.username / ".ssh/authorized_keys", "a") as authorized:
        authorized.write(public_line + "\n")

    result = deprovision(
        sandbox.target(private_key=key_text, passphrase=passphrase, host_key=sandbox.known_hosts_line(host_key_type)),
        recorder.log,
    )

    assert result.output_tail.endswith(COMPLETE_MARKER)
    assert any(f"host key {host_key_type} SHA256:" in line for line in recorder.lines)
    assert_no_secrets(secret_pieces(key_text, passphrase), recorder, None, result.output_tail)


# --- what creates host keys at first boot ---------------------------------------------------------------------


@pytest.mark.sandbox
def test_refused_with_nothing_changed_when_nothing_would_create_host_keys(sandbox: Sandbox) -> None:
    """No cloud-init (the sandbox has none), waagent told not to, no sshd-keygen unit: every VM made from the
    image would boot without host keys, so the step refuses before it changes anything."""
    give_identity(sandbox, regenerate_host_keys="n")
    # A commented-out y does not count, as for waagent, nor does an ssh unit without `ssh-keygen -A`.
    with open(sandbox.root / "etc/waagent.conf", "a") as conf:
        conf.write("#Provisioning.RegenerateSshHostKeyPair=y\n")
    keys_before = {path.name: path.read_bytes() for path in host_files(sandbox)}
    assert keys_before
    recorder = Recorder()

    with pytest.raises(NoHostKeyGenerator) as caught:
        deprovision(sandbox.target(), recorder.log)

    error = caught.value
    assert isinstance(error, PreCheckFailed) and isinstance(error, DeprovisionFailed)
    assert error.exit_code == EXIT_NO_HOST_KEY_GENERATOR
    message = str(error)
    assert "nothing on this VM would create SSH host keys at first boot" in message
    assert "install cloud-init, or set Provisioning.RegenerateSshHostKeyPair=y in /etc/waagent.conf" in message
    assert "Nothing was changed" in message
    assert "image-gallery: error: nothing on this VM would create SSH host keys" in error.output_tail
    assert "step 2/4" not in error.output_tail
    # Nothing was changed: the host keys, the user, the machine ID and waagent's targets are all still there.
    assert {path.name: path.read_bytes() for path in host_files(sandbox)} == keys_before
    assert sandbox.user_exists(sandbox.username)
    assert (sandbox.root / "home" / sandbox.username).is_dir()
    assert (sandbox.root / "etc/machine-id").read_text() == MACHINE_ID
    assert (sandbox.root / "var/lib/dbus/machine-id").read_text() == MACHINE_ID
    assert (sandbox.root / "etc/resolv.conf").exists()
    assert (sandbox.root / "root/.bash_history").exists()
    assert_no_secrets(secret_pieces(sandbox.private_key), recorder, error)


@pytest.mark.sandbox
@pytest.mark.parametrize(
    ("generator", "named"),
    [
        ("cloud-init", "cloud-init"),
        ("waagent", "waagent (Provisioning.RegenerateSshHostKeyPair=y in /etc/waagent.conf)"),
        ("sshd-keygen", "sshd-keygen@.service (/usr/lib/systemd/system)"),
        ("ssh-keygen -A", "ssh-keygen -A in /etc/systemd/system/ssh.service.d/host-keys.conf"),
    ],
)
def test_passes_with_each_thing_that_creates_host_keys_at_first_boot(
    sandbox: Sandbox, generator: str, named: str
) -> None:
    give_identity(sandbox, regenerate_host_keys="n")
    if generator == "cloud-init":
        install_cloud_init_stand_in(sandbox)
    elif generator == "waagent":
        # Read as waagent reads it: the last line wins, the value's case and a trailing comment do not matter.
        with open(sandbox.root / "etc/waagent.conf", "a") as conf:
            conf.write("Provisioning.RegenerateSshHostKeyPair = Y  # new host keys at provisioning\n")
    elif generator == "sshd-keygen":
        install_sshd_keygen_unit(sandbox)
    else:
        drop_in = sandbox.root / "etc/systemd/system/ssh.service.d"
        drop_in.mkdir(parents=True)
        (drop_in / "host-keys.conf").write_text("[Service]\nExecStartPre=/usr/bin/ssh-keygen -A\n")

    result = deprovision(sandbox.target(), Recorder().log)

    assert result.output_tail.splitlines()[-1] == COMPLETE_MARKER
    assert f"image-gallery: SSH host keys will be created at first boot by {named}" in result.output_tail
    assert sorted((sandbox.root / "etc/ssh").glob("ssh_host_*")) == []
    assert not sandbox.user_exists(sandbox.username)


@pytest.mark.sandbox
def test_the_scripted_guest_refuses_and_passes_as_the_sandbox_does(sandbox: Sandbox) -> None:
    """tests/fakes/ssh_guest.py plays the pre-check for tests that cannot run the sandbox: its refusal must be the
    sandbox's word for word, and it must pass with the same generators."""
    give_identity(sandbox, regenerate_host_keys="n")
    with pytest.raises(NoHostKeyGenerator) as real:
        deprovision(sandbox.target(), Recorder().log)
    with ScriptedLinuxGuest(cloud_init_installed=False) as guest, pytest.raises(NoHostKeyGenerator) as scripted:
        deprovision(guest.target(), Recorder().log)
    assert scripted.value.output_tail == real.value.output_tail
    assert scripted.value.exit_code == real.value.exit_code == EXIT_NO_HOST_KEY_GENERATOR
    assert not guest.deprovisioned

    install_sshd_keygen_unit(sandbox)
    real_result = deprovision(sandbox.target(), Recorder().log)
    with ScriptedLinuxGuest(cloud_init_installed=False, sshd_keygen_unit=True) as guest:
        scripted_result = deprovision(guest.target(), Recorder().log)
    said = "image-gallery: SSH host keys will be created at first boot by sshd-keygen@.service"
    assert said in real_result.output_tail and said in scripted_result.output_tail
    # The Ubuntu default has cloud-init; Debian's waagent.conf (y) alone is enough too.
    for default_guest in (
        ScriptedLinuxGuest(),
        ScriptedLinuxGuest(cloud_init_installed=False, regenerate_ssh_host_key_pair=True),
    ):
        with default_guest as guest:
            assert deprovision(guest.target(), Recorder().log).output_tail.endswith(COMPLETE_MARKER)


# --- host keys ------------------------------------------------------------------------------------------------


@pytest.mark.sandbox
def test_host_key_mismatch_runs_nothing(sandbox: Sandbox) -> None:
    recorder = Recorder()
    impostor = paramiko.Ed25519Key.from_private_key(io.StringIO(new_private_key()))
    expected_line = f"[{sandbox.host}]:{sandbox.port} ssh-ed25519 {impostor.get_base64()}"
    presented = paramiko.PKey.from_type_string("ssh-ed25519", _blob(sandbox.host_public_key))

    with pytest.raises(HostKeyMismatch) as caught:
        deprovision(sandbox.target(host_key=expected_line, connect_timeout=30), recorder.log)

    message = str(caught.value)
    assert f"{sandbox.host}:{sandbox.port}" in message
    assert impostor.fingerprint in message
    assert presented.fingerprint in message
    assert "update host_key" in message
    assert "Nothing was run" in message
    # No command ran: the user, its home and the host keys are all still there, and sshd saw no login.
    assert sandbox.user_exists(sandbox.username)
    assert host_files(sandbox)
    assert "Accepted publickey" not in sandbox.sshd_log.read_text()
    assert_no_secrets(secret_pieces(sandbox.private_key), recorder, caught.value)


@pytest.mark.sandbox
def test_insecure_opt_out_warns_loudly_and_proceeds(sandbox: Sandbox) -> None:
    recorder = Recorder()
    presented = paramiko.PKey.from_type_string("ssh-ed25519", _blob(sandbox.host_public_key))

    result = deprovision(sandbox.target(host_key=None, insecure_ignore_host_key=True), recorder.log)

    assert result.output_tail.endswith(COMPLETE_MARKER)
    assert any("host key checking is OFF" in line for line in recorder.warnings)
    assert any(presented.fingerprint in line and "UNVERIFIED" in line for line in recorder.warnings)


# --- authentication -------------------------------------------------------------------------------------------


@pytest.mark.sandbox
def test_wrong_key_fails_fast_with_a_clear_message(sandbox: Sandbox) -> None:
    recorder = Recorder()
    passphrase = "correct horse battery staple"
    wrong_key = new_private_key(passphrase)

    started = time.monotonic()
    with pytest.raises(GuestConnectionError) as caught:
        deprovision(sandbox.target(private_key=wrong_key, passphrase=passphrase, connect_timeout=60), recorder.log)

    assert time.monotonic() - started < 10, "an authentication failure must not be retried until connect_timeout"
    assert not isinstance(caught.value, HostKeyMismatch)
    message = str(caught.value)
    assert "refused the private key" in message
    assert sandbox.username in message
    assert sandbox.user_exists(sandbox.username)
    assert_no_secrets(secret_pieces(wrong_key, passphrase, sandbox.private_key), recorder, caught.value)


@pytest.mark.sandbox
def test_wrong_password_fails_fast_and_never_shows_it(sandbox: Sandbox) -> None:
    recorder = Recorder()
    wrong = "not-the-password-" + sandbox.password[-6:]

    started = time.monotonic()
    with pytest.raises(GuestConnectionError) as caught:
        deprovision(
            sandbox.target(username=sandbox.password_username, private_key=None, password=wrong, connect_timeout=60),
            recorder.log,
        )

    assert time.monotonic() - started < 10
    assert "refused the password" in str(caught.value)
    assert_no_secrets(secret_pieces(wrong, sandbox.password), recorder, caught.value)


@pytest.mark.sandbox
def test_sudo_asking_for_a_password_is_explained(sandbox: Sandbox) -> None:
    recorder = Recorder()

    with pytest.raises(GuestCommandFailed) as caught:
        deprovision(sandbox.target(username=sandbox.sudo_password_username), recorder.log)

    message = str(caught.value)
    assert "asks user askpass for a password" in message
    assert "NOPASSWD" in message
    assert isinstance(caught.value, DeprovisionFailed)
    assert caught.value.exit_code == 1
    assert sandbox.user_exists(sandbox.username)
    assert host_files(sandbox)


# --- reachability ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def closed_port() -> Iterator[int]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    yield port


@contextlib.contextmanager
def silent_listener() -> Iterator[int]:
    """Accepts TCP connections (in the kernel's backlog) but never says a word, like a VM half-way booted."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        yield int(server.getsockname()[1])


def unreachable_target(port: int) -> SshTarget:
    return SshTarget(
        host="127.0.0.1",
        port=port,
        username="azureuser",
        password="never-sent-anywhere-s3cret",
        host_key="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPwcBnvgR57Bt8nWA3tcLvUfBcwXZDqNnzBCZMUC1Dmy",
        connect_timeout=3.0,
    )


def test_closed_port_gives_a_bounded_error_naming_host_and_last_error() -> None:
    recorder = Recorder()
    with closed_port() as port:
        started = time.monotonic()
        with pytest.raises(GuestConnectionError) as caught:
            deprovision(unreachable_target(port), recorder.log)
        elapsed = time.monotonic() - started

    assert 2.5 <= elapsed < 6, elapsed
    message = str(caught.value)
    assert f"127.0.0.1:{port}" in message
    assert "within 3s" in message
    assert "refused" in message
    assert any("retrying" in line for line in recorder.lines)
    assert_no_secrets(["never-sent-anywhere-s3cret"], recorder, caught.value)


def test_silent_server_is_bounded_by_connect_timeout_too() -> None:
    recorder = Recorder()
    with silent_listener() as port:
        started = time.monotonic()
        with pytest.raises(GuestConnectionError) as caught:
            deprovision(unreachable_target(port), recorder.log)
        elapsed = time.monotonic() - started

    assert 2.5 <= elapsed < 7, elapsed
    assert f"127.0.0.1:{port}" in str(caught.value)


# --- failures in the guest ------------------------------------------------------------------------------------


@pytest.mark.sandbox
def test_missing_waagent_is_reported_and_nothing_is_changed(sandbox: Sandbox) -> None:
    recorder = Recorder()
    (sandbox.root / "usr/sbin/waagent").unlink()

    with pytest.raises(DeprovisionFailed) as caught:
        deprovision(sandbox.target(), recorder.log)

    error = caught.value
    assert error.exit_code == EXIT_NO_WAAGENT
    assert "waagent is not installed" in str(error)
    assert f"exit code: {EXIT_NO_WAAGENT}" in str(error)
    assert "image-gallery: error: waagent is not installed" in error.output_tail
    assert "Nothing was changed" in str(error)
    assert sandbox.user_exists(sandbox.username)
    assert host_files(sandbox)
    assert (sandbox.root / "etc/resolv.conf").exists()
    assert_no_secrets(secret_pieces(sandbox.private_key), recorder, error)


@pytest.mark.sandbox
def test_failing_waagent_gives_exit_code_and_tail(sandbox: Sandbox) -> None:
    recorder = Recorder()
    replace_waagent(
        sandbox,
        "#!/bin/sh\n"
        "echo 'agent: starting deprovision'\n"
        "echo 'agent: cannot stop walinuxagent: unit busy' >&2\n"
        "exit 3\n",
    )

    with pytest.raises(DeprovisionFailed) as caught:
        deprovision(sandbox.target(), recorder.log)

    error = caught.value
    assert error.exit_code == 3
    message = str(error)
    assert "exit code 3" in message
    assert "agent: cannot stop walinuxagent: unit busy" in message
    assert "waagent -force -deprovision+user failed with exit code 3" in message
    assert len(error.output_tail.splitlines()) <= 20
    assert any("cannot stop walinuxagent" in line for line in recorder.lines)


@pytest.mark.sandbox
def test_session_dying_before_the_marker_is_a_failure_with_advice(sandbox: Sandbox) -> None:
    recorder = Recorder()
    # The agent kills the SSH session it runs under (the first sshd among its ancestors), as a dropped network would.
    replace_waagent(
        sandbox,
        "#!/bin/sh\n"
        "pid=$$\n"
        'while [ "$pid" -gt 1 ]; do\n'
        '  if [ "$(cat /proc/$pid/comm)" = sshd ]; then kill -9 "$pid"; exit 0; fi\n'
        "  pid=$(sed -n 's/^PPid:[[:space:]]*//p' /proc/$pid/status)\n"
        "done\n"
        "exit 1\n",
    )

    with pytest.raises(DeprovisionFailed) as caught:
        deprovision(sandbox.target(), recorder.log)

    assert caught.value.exit_code is None
    assert "ended before deprovision.sh finished" in str(caught.value)
    assert "step 3/4" in caught.value.output_tail


@pytest.mark.sandbox
def test_a_hanging_script_is_bounded_by_command_timeout(sandbox: Sandbox) -> None:
    recorder = Recorder()
    replace_waagent(sandbox, "#!/bin/sh\necho 'agent: thinking'\nsleep 60\n")

    started = time.monotonic()
    with pytest.raises(WaitTimeout) as caught:
        deprovision(sandbox.target(command_timeout=2.0), recorder.log)

    assert time.monotonic() - started < 6
    assert "deprovision.sh" in str(caught.value)
    assert "agent: thinking" in str(caught.value)


def _blob(public_line: str) -> bytes:
    return base64.b64decode(public_line.split()[1])
