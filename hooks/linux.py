"""Generalize a Linux guest over SSH: run hooks/scripts/deprovision.sh (a pre-check that something creates SSH host
keys at first boot, cloud-init clean, `waagent -force -deprovision+user`, SSH host keys deleted whatever waagent's
settings, /etc/machine-id emptied unless
`SshTarget.keep_machine_id`, history clean-up, sync) with passwordless sudo.

The host key is always verified against the configured one unless the target explicitly opts out. Connecting is
retried with backoff while the VM boots, within `SshTarget.connect_timeout`; authentication failures are not
retried. The script is fed to `sudo -n sh -s` on standard input, so nothing of ours is left on the disk that
becomes the image. The SSH session may die once waagent has deleted the user it belongs to: the script's final
marker line, not the exit status, is what says the work is done.

Secrets (private key text, passphrase, password) are never put into a message: paramiko and cryptography errors
are translated, and every message is redacted once more before it leaves this module.
"""

from __future__ import annotations

import codecs
import logging
import socket
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import paramiko

from hooks.errors import (
    ConfigError,
    GuestCommandFailed,
    GuestConnectionError,
    HostKeyMismatch,
    PreCheckFailed,
    WaitTimeout,
)
from hooks.log import Log
from hooks.ssh_keys import describe_key, parse_host_key, parse_private_key
from hooks.targets import GuestResult, SshTarget
from hooks.waiting import Deadline, poll, retry

SCRIPT = Path(__file__).parent / "scripts" / "deprovision.sh"
"""The guest script; its output contract is described at its top."""

METHOD = "waagent -force -deprovision+user"
COMPLETE_MARKER = "image-gallery: deprovision complete"
ERROR_PREFIX = "image-gallery: error: "
EXIT_NOT_ROOT = 90
"""Exit code of deprovision.sh when it does not run as root."""
EXIT_NO_WAAGENT = 91
"""Exit code of deprovision.sh when waagent is missing (nothing was changed)."""
EXIT_USAGE = 92
"""Exit code of deprovision.sh given an option it does not know (nothing was changed)."""
EXIT_NO_HOST_KEY_GENERATOR = 93
"""Exit code of deprovision.sh when nothing on the VM would create SSH host keys at first boot (no cloud-init, no
Provisioning.RegenerateSshHostKeyPair=y, no sshd-keygen unit or `ssh-keygen -A`): deleting them would leave every
VM made from the image without a working sshd, so it refuses before changing anything."""
KEEP_MACHINE_ID = "--keep-machine-id"
"""deprovision.sh's option that leaves /etc/machine-id as it is (SshTarget.keep_machine_id)."""

TAIL_LINES = 20
"""How many of the script's last output lines go into errors and the result."""

_MAX_ATTEMPT_SECONDS = 20.0
"""Upper bound for one TCP connect / banner / authentication attempt, so retries keep happening while a VM boots."""
_READ_SLICE = 0.5
"""Seconds one read of the script's output blocks; the overall bound is SshTarget.command_timeout."""
_EXIT_STATUS_GRACE = 5.0
"""Seconds to wait for the exit status once the output has ended."""
_PARAMIKO_LOG = "hooks.linux.paramiko"
"""paramiko's own log channel: its transport thread logs tracebacks for things we handle (a banner that never
came while the VM boots). Kept quiet unless the application configures logging (the library convention)."""
logging.getLogger(_PARAMIKO_LOG).addHandler(logging.NullHandler())


class DeprovisionFailed(GuestCommandFailed):
    """deprovision.sh (or sudo before it) failed, or the session ended before it finished."""

    def __init__(self, message: str, exit_code: int | None, output_tail: str) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        """The script's exit code; None when the session ended without one."""
        self.output_tail = output_tail
        """The last lines of output (secrets redacted)."""


class NoHostKeyGenerator(DeprovisionFailed, PreCheckFailed):
    """deprovision.sh refused (exit code EXIT_NO_HOST_KEY_GENERATOR): nothing on the VM would create SSH host keys
    at first boot, and the step deletes them. Nothing was changed; the VM needs cloud-init or waagent's
    Provisioning.RegenerateSshHostKeyPair=y first."""


def deprovision(target: SshTarget, log: Log) -> GuestResult:
    """Connect to `target`, run deprovision.sh with sudo and return what happened.

    Authenticates with the private key (plus passphrase) and/or the password, key first. The host key must match
    target.host_key unless target.insecure_ignore_host_key (then a warning is logged).

    Raises ConfigError (no usable credentials or host key), HostKeyMismatch, GuestConnectionError (unreachable
    within connect_timeout, or authentication refused), DeprovisionFailed (a GuestCommandFailed: the script or
    sudo failed; carries exit code and output tail; NoHostKeyGenerator, also a PreCheckFailed, when nothing would
    create host keys at first boot) or WaitTimeout (the script ran longer than command_timeout)."""
    guard = _Redactor(target.secrets)
    try:
        client = _connect(target, log, guard)
        try:
            return _run_script(client, target, log, guard)
        finally:
            client.close()
    except (GuestConnectionError, GuestCommandFailed, ConfigError, WaitTimeout) as exc:
        # Last line of defence: these messages were written here, but make sure no secret slipped into one.
        exc.args = tuple(guard(a) if isinstance(a, str) else a for a in exc.args)
        raise


# --- connecting -----------------------------------------------------------------------------------------------


class _Unreachable(Exception):
    """A connection attempt failed in a way that may go away while the VM boots; the message is safe to show."""


class _AcceptAnyHostKey(paramiko.MissingHostKeyPolicy):
    """insecure_ignore_host_key: accept whatever key the server presents, loudly."""

    def __init__(self, log: Log, where: str) -> None:
        self._log = log
        self._where = where

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        self._log.warn(
            f"accepted the UNVERIFIED SSH host key {describe_key(key)} of {self._where}; if that is the VM's key, "
            f"set host_key to '{key.get_name()} {key.get_base64()}'"
        )


def _connect(target: SshTarget, log: Log, guard: _Redactor) -> paramiko.SSHClient:
    where = f"{target.host}:{target.port}"
    pkey = _credentials(target)
    expected: paramiko.PKey | None = None
    if target.insecure_ignore_host_key:
        log.warn(
            f"SSH host key checking is OFF for {where} (insecure_ignore_host_key): anyone able to intercept the "
            "connection can impersonate the VM and receive the credentials; configure host_key instead"
        )
    elif target.host_key is None:
        raise ConfigError(
            [f"SSH target {where}: host_key is required (or set insecure_ignore_host_key, which is unsafe)"]
        )
    else:
        try:
            expected = parse_host_key(target.host_key)
        except ValueError as exc:
            raise ConfigError([f"SSH target {where}: {exc}"]) from None

    deadline = Deadline(target.connect_timeout, f"SSH on {where}")
    last_error = "no attempt made"

    def attempt() -> paramiko.SSHClient:
        nonlocal last_error
        try:
            return _connect_once(target, pkey, expected, log, deadline)
        except _Unreachable as exc:
            last_error = str(exc)
            raise

    def on_retry(exc: BaseException, delay: float) -> None:
        log.info(f"SSH on {where} not reachable yet ({guard(str(exc))}); retrying in {delay:.0f}s")

    log.info(f"connecting to {target.username}@{where} (up to {target.connect_timeout:g}s)")
    try:
        client = retry(attempt, deadline, retry_on=(_Unreachable,), on_retry=on_retry)
    except WaitTimeout:
        raise GuestConnectionError(
            f"could not reach SSH on {where} within {target.connect_timeout:g}s; last error: {guard(last_error)}. "
            "Check that the VM is running, that the address and port are right and that a network security group "
            "or firewall lets TCP through from here."
        ) from None
    transport = client.get_transport()
    presented = transport.get_remote_server_key() if transport is not None else None
    verified = "verified" if expected is not None else "NOT verified"
    shown = describe_key(presented) if presented is not None else "unknown"
    log.info(f"connected to {where} as {target.username}; host key {shown} {verified}")
    return client


def _credentials(target: SshTarget) -> paramiko.PKey | None:
    where = f"{target.host}:{target.port}"
    if target.private_key:
        try:
            return parse_private_key(target.private_key, target.passphrase)
        except ValueError as exc:
            raise ConfigError([f"SSH target {where}: {exc}"]) from None
    if target.password:
        return None
    raise ConfigError([f"SSH target {where}: set private_key or password for user {target.username}"])


def _connect_once(
    target: SshTarget, pkey: paramiko.PKey | None, expected: paramiko.PKey | None, log: Log, deadline: Deadline
) -> paramiko.SSHClient:
    where = f"{target.host}:{target.port}"
    client = paramiko.SSHClient()
    client.set_log_channel(_PARAMIKO_LOG)
    # Only the configured key counts: never ~/.ssh/known_hosts of whoever runs `pulumi up`.
    if expected is None:
        client.set_missing_host_key_policy(_AcceptAnyHostKey(log, where))
    else:
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        client.get_host_keys().add(_known_hosts_name(target.host, target.port), expected.get_name(), expected)
    seconds = max(1.0, min(_MAX_ATTEMPT_SECONDS, deadline.remaining))
    try:
        client.connect(
            target.host,
            port=target.port,
            username=target.username,
            pkey=pkey,
            password=target.password,  # tried after the key, if both are set
            timeout=seconds,
            banner_timeout=seconds,
            auth_timeout=seconds,
            channel_timeout=seconds,
            # Only the configured credentials: no agent, no ~/.ssh/id_* of the machine running this.
            allow_agent=False,
            look_for_keys=False,
        )
        return client
    except paramiko.BadHostKeyException as exc:
        client.close()
        raise HostKeyMismatch(
            f"the SSH host key of {where} does not match: expected {describe_key(exc.expected_key)}, the server "
            f"presented {describe_key(exc.key)}. Nothing was run. If the VM was re-created or its host keys "
            "regenerated, update host_key (read the key from the VM's boot diagnostics or with ssh-keyscan over a "
            "network you trust); otherwise someone may be intercepting the connection."
        ) from None
    except paramiko.BadAuthenticationType as exc:
        client.close()
        offered = "a private key" if pkey is not None else "a password"
        raise GuestConnectionError(
            f"SSH on {where} does not accept {offered} for {target.username}; it allows only "
            f"{', '.join(exc.allowed_types) or 'nothing'}. Configure credentials of an allowed kind."
        ) from None
    except paramiko.AuthenticationException:
        client.close()
        what = " and ".join(w for w, given in (("private key", pkey), ("password", target.password)) if given)
        raise GuestConnectionError(
            f"SSH on {where} refused the {what} for user {target.username}: check the user name and that the "
            f"{what} belong{'s' if ' and ' not in what else ''} to it. If the VM was already deprovisioned, that "
            "user no longer exists. Not retried."
        ) from None
    except socket.gaierror as exc:
        client.close()
        raise GuestConnectionError(f"cannot resolve the SSH host {target.host!r}: {exc.strerror}") from None
    except (OSError, EOFError, paramiko.SSHException) as exc:
        # Refused, timed out, no route, reset, or the banner never came: all normal while a VM boots.
        client.close()
        raise _Unreachable(_describe_network_error(exc)) from None
    except BaseException:
        client.close()
        raise


def _known_hosts_name(host: str, port: int) -> str:
    """The name paramiko looks the host key up by (the same as OpenSSH's known_hosts)."""
    return host if port == 22 else f"[{host}]:{port}"


def _describe_network_error(exc: BaseException) -> str:
    if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError):
        # One error per address tried (IPv4 and IPv6); usually the same one.
        return "; ".join(sorted({_describe_network_error(e) for e in exc.errors.values()}))
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return f"{type(exc).__name__}: {exc.strerror}"
    return f"{type(exc).__name__}: {exc}"


# --- running the script ---------------------------------------------------------------------------------------


@dataclass
class _Output:
    """The script's combined stdout/stderr, split into lines as it arrives."""

    log: Log
    guard: _Redactor
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=TAIL_LINES))
    complete: bool = False
    ended: bool = False
    _partial: str = ""
    _decoder: codecs.IncrementalDecoder = field(
        default_factory=lambda: codecs.getincrementaldecoder("utf-8")("replace")
    )

    def feed(self, data: bytes) -> None:
        text = self._partial + self._decoder.decode(data, final=not data)
        *lines, self._partial = text.split("\n")
        if not data and self._partial:
            lines.append(self._partial)
            self._partial = ""
        for raw in lines:
            line = self.guard(raw.rstrip("\r"))
            self.tail.append(line)
            self.log.info(f"guest: {line}")
            if line.strip() == COMPLETE_MARKER:
                self.complete = True

    def text(self) -> str:
        return "\n".join(self.tail)

    def last(self) -> str:
        return self.tail[-1] if self.tail else "no output yet"


def _run_script(client: paramiko.SSHClient, target: SshTarget, log: Log, guard: _Redactor) -> GuestResult:
    where = f"{target.host}:{target.port}"
    transport = client.get_transport()
    if transport is None:  # pragma: no cover - connect() guarantees one
        raise GuestConnectionError(f"the SSH connection to {where} closed right after it was made")
    # root needs no sudo (and may not have it); anyone else needs it without a password prompt.
    command = "sh -s" if target.username == "root" else "sudo -n sh -s"
    if target.keep_machine_id:
        command += f" -- {KEEP_MACHINE_ID}"
    started = time.monotonic()
    log.info(f"running deprovision.sh on {where} as {command!r} (up to {target.command_timeout:g}s)")
    try:
        channel = transport.open_session(timeout=max(1.0, min(_MAX_ATTEMPT_SECONDS, target.command_timeout)))
        channel.set_combine_stderr(True)
        # One of four fixed strings, no user input: the script itself travels on stdin, never in the command line.
        channel.exec_command(command)  # nosec B601
    except (OSError, EOFError, paramiko.SSHException) as exc:
        raise GuestConnectionError(
            f"SSH on {where} would not start a command for {target.username} ({_describe_network_error(exc)}); "
            "nothing was run. Check that the account may run commands (no ForceCommand, a valid shell)."
        ) from None
    try:
        # The script goes in on stdin (not SFTP) so nothing of ours stays on the disk that becomes the image; the
        # script runs only once it has been read whole (see its main).
        try:
            channel.sendall(SCRIPT.read_bytes())
            channel.shutdown_write()
        except (OSError, EOFError, paramiko.SSHException) as exc:
            # The session broke while the script was sent; whatever the guest said until then is read below.
            log.warn(f"sending deprovision.sh to {where} failed ({_describe_network_error(exc)})")
        output = _Output(log, guard)
        deadline = Deadline(target.command_timeout, f"deprovision.sh on {where}")
        poll(lambda: _read(channel, output), deadline, interval=0, describe=lambda out: out.last())
        exit_code = _exit_code(channel, deadline)
    except WaitTimeout as exc:
        raise WaitTimeout(
            f"{exc}. The script may still be running on the VM; look at its console before starting over."
        ) from None
    finally:
        channel.close()

    tail = output.text()
    if output.complete:
        # The marker is printed after everything (sync included) is done; a session that died after it is fine.
        note = "" if exit_code == 0 else f" (the session then ended with {_show_exit(exit_code)}, as expected)"
        log.info(f"deprovision complete on {where} after {time.monotonic() - started:.1f}s{note}")
        return GuestResult(
            method=METHOD,
            detail=f"{where}: generalized with {METHOD} (cloud-init state and shell history removed); deallocate "
            "the VM next and do not start it again before it is captured",
            output_tail=tail,
        )
    raise deprovision_failure(where, target.username, exit_code, tail)


def _read(channel: paramiko.Channel, output: _Output) -> tuple[bool, _Output]:
    """One bounded read; done once the output has ended (EOF, or the session closed under us)."""
    channel.settimeout(_READ_SLICE)
    try:
        data = channel.recv(65536)
    except TimeoutError:
        return False, output
    except (OSError, EOFError, paramiko.SSHException):
        data = b""  # the session died, e.g. because waagent removed its user
    output.feed(data)
    output.ended = not data
    return output.ended, output


def _exit_code(channel: paramiko.Channel, deadline: Deadline) -> int | None:
    """The exit status, if the server sends one soon after the output ended; None if the session just ended."""
    grace = Deadline(min(_EXIT_STATUS_GRACE, max(deadline.remaining, 0.1)), "the exit status")
    try:
        poll(lambda: (channel.exit_status_ready() or channel.closed, None), grace, interval=0.05)
    except WaitTimeout:
        return None
    if not channel.exit_status_ready():
        return None
    status = channel.recv_exit_status()
    return None if status < 0 else status


def deprovision_failure(where: str, username: str, exit_code: int | None, tail: str) -> DeprovisionFailed:
    """The error for a run of deprovision.sh on `where` (as `username`) that ended without its final marker, by
    exit code (None: the session ended without one): NoHostKeyGenerator for EXIT_NO_HOST_KEY_GENERATOR, otherwise
    DeprovisionFailed with advice for the cause."""
    failure = NoHostKeyGenerator if exit_code == EXIT_NO_HOST_KEY_GENERATOR else DeprovisionFailed
    return failure(_failure_message(where, username, exit_code, tail), exit_code, tail)


def _show_exit(exit_code: int | None) -> str:
    return "no exit status" if exit_code is None else f"exit code {exit_code}"


def _failure_message(where: str, username: str, exit_code: int | None, tail: str) -> str:
    lowered = tail.lower()
    if "a password is required" in lowered or "a terminal is required" in lowered:
        advice = (
            f"sudo on {where} asks user {username} for a password. Deprovisioning needs passwordless sudo: "
            f"add '{username} ALL=(ALL) NOPASSWD: ALL' under /etc/sudoers.d/ or use a user that has it. "
            "Nothing was changed."
        )
    elif "must have a tty" in lowered:
        advice = (
            f"sudo on {where} insists on a terminal ('Defaults requiretty'): exempt user {username} from it "
            f"(e.g. 'Defaults:{username} !requiretty' under /etc/sudoers.d/). Nothing was changed."
        )
    elif exit_code == 127 and "sudo" in lowered:
        advice = f"sudo is not installed on {where}; install it or connect as a user that has it. Nothing was changed."
    elif exit_code == EXIT_NO_WAAGENT:
        advice = (
            f"waagent is not installed on {where}. Install the Azure Linux agent (package walinuxagent or waagent) "
            "and run again. Nothing was changed."
        )
    elif exit_code == EXIT_NO_HOST_KEY_GENERATOR:
        advice = (
            f"pre-check failed on {where}: nothing on this VM would create SSH host keys at first boot (no "
            "cloud-init, Provisioning.RegenerateSshHostKeyPair is not y in /etc/waagent.conf, no sshd-keygen unit or "
            "'ssh-keygen -A' in the ssh/sshd service), and deprovisioning deletes them: no VM made from the image "
            "could start sshd. Nothing was changed. Install cloud-init, or set "
            "Provisioning.RegenerateSshHostKeyPair=y in /etc/waagent.conf, then run again."
        )
    elif exit_code == EXIT_NOT_ROOT:
        advice = f"deprovision.sh did not run as root on {where} (sudo did not switch user). Nothing was changed."
    elif exit_code is None:
        advice = (
            f"the SSH session to {where} ended before deprovision.sh finished. The VM may be partly deprovisioned "
            "(its user may be gone): look at its serial console; if waagent ran, finish with "
            "'sudo waagent -force -deprovision+user' there, otherwise run again."
        )
    else:
        errors = [line[len(ERROR_PREFIX) :] for line in tail.splitlines() if line.startswith(ERROR_PREFIX)]
        reason = errors[-1] if errors else "see the output below"
        advice = (
            f"deprovision.sh failed on {where} with exit code {exit_code}: {reason}. The VM may be partly "
            "deprovisioned; fix the cause and run again, or re-create the VM."
        )
    shown = "none (the session ended without one)" if exit_code is None else str(exit_code)
    return f"{advice}\nexit code: {shown}\nlast output:\n{tail or '(none)'}"


# --- secrets --------------------------------------------------------------------------------------------------


class _Redactor:
    """Replaces secret values (and every line of a multi-line key) in text meant for people."""

    def __init__(self, secrets: tuple[str, ...]) -> None:
        pieces: set[str] = set()
        for secret in secrets:
            pieces.add(secret)
            pieces.update(line.strip() for line in secret.splitlines() if len(line.strip()) >= 8)
        # Longest first, so a whole key is replaced before its lines are.
        self._pieces = sorted((p for p in pieces if p), key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for piece in self._pieces:
            text = text.replace(piece, "[secret]")
        return text
