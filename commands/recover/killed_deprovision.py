"""What a killed `pulumi up` left in a Linux guest it was deprovisioning, looked at from outside and read-only, for
`make recover` (guest_step.py).

deprovision.sh ignores the hang-up of its SSH session, so a deprovision the killed run started runs to its end in
the guest: waagent deletes the SSH host keys (unless its configuration keeps them, as Ubuntu's does), then the
user the guest step logs in as. After that the guest cannot be reached with the stack's settings again: running
the guest step again would fail, and, started while the first one still runs, would deprovision twice. So before
recovery clears the step's pending create, `find_out` looks:

- sshd offers the stack's host key: the keys are still there. Log in and list the processes: while a deprovision
  runs (`waagent … -deprovision…`, or the step's own `sudo -n sh -s`), wait for it to end, bounded by the step's
  command timeout; once none runs, nothing was deprovisioned, and `pulumi up` runs the step once.
- sshd takes the connection and closes it without offering a host key (it has none left: "no hostkeys
  available"), on each of a few tries: the deprovision went through. Recovery then marks the VM generalized in
  Azure as the step's ARM half would have, so `pulumi up` skips the guest.
- sshd offers the stack's host key but refuses the login: after a deprovision seen running, that is the user it
  deleted last; otherwise (an image whose agent keeps the host keys, such as Ubuntu's, or credentials that never
  worked) only the user can tell (`LoginRefused`).
- anything else (no TCP connection, another host key): recovery cannot tell, and says so (`CannotTell`).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

import paramiko

from hooks.ssh_keys import describe_key, parse_host_key, parse_private_key
from hooks.targets import SshTarget
from hooks.waiting import Deadline

CONNECT_SECONDS = 10.0
"""Bound of one TCP connect, banner or key exchange."""
NO_KEY_TRIES = 3
"""Connections in a row that must end without a host key before the guest counts as deprovisioned: one may be an
sshd refusing a connection for another reason (MaxStartups, a restart)."""
RUNNING_MARKS = ("-deprovision", "sudo -n sh -s")
"""What the processes of a deprovision under way show in `ps`: waagent's flag, or the step's command (its
script arrives on stdin, so the command line is all `ps` sees of it)."""
PS_COMMAND = "ps -eo args="
_PARAMIKO_LOG = f"{__name__}.paramiko"
"""paramiko's log channel for these connections: its transport thread logs a traceback for every connection closed
before the banner, which is the very answer looked for here. Quiet unless the application configures logging."""
logging.getLogger(_PARAMIKO_LOG).addHandler(logging.NullHandler())


class CannotTell(Exception):
    """The guest cannot be looked at (unreachable, another host key): what the killed run did there is unknown."""


class LoginRefused(CannotTell):
    """The guest has its host key but refuses the login: its user deleted (a deprovision on an image whose agent
    keeps the host keys), or credentials that never worked. Only the user can tell which."""


@dataclass(frozen=True)
class Finding:
    """What the killed run's guest step left in the guest."""

    deprovisioned: bool
    """True: the deprovision went through (the host keys are gone); False: nothing runs and nothing was done."""
    detail: str
    """What was seen, for the user."""


def find_out(target: SshTarget, say: Callable[[str], None], interval: float = 2.0) -> Finding:
    """Look at the guest (see the module's docstring). CannotTell when it cannot be looked at, LoginRefused when
    it still has its host key but refuses the login (the user deleted, or credentials that never worked), and
    WaitTimeout when a deprovision still runs after the target's command timeout."""
    where = f"{target.host}:{target.port}"
    expected = parse_host_key(target.host_key) if target.host_key and not target.insecure_ignore_host_key else None
    deadline = Deadline(target.command_timeout, f"the deprovision the killed run started on {where} to end")
    closed = refused = 0
    # A deprovision seen running: once it ends, a refused login is its doing (waagent deletes the user last).
    watched: str | None = None
    while True:
        transport = _handshake(target, where)
        if transport is None:
            closed, refused = closed + 1, 0
            if closed == NO_KEY_TRIES:
                return Finding(
                    True,
                    f"sshd on {where} takes connections but offers no host key any more: waagent deleted them, so "
                    "the killed run's deprovision went through",
                )
            deadline.check(f"sshd on {where} closed a connection without offering a host key")
            deadline.sleep(0.5)
            continue
        closed = 0
        try:
            offered = transport.get_remote_server_key()
            if expected is not None and offered != expected:
                raise CannotTell(
                    f"sshd on {where} offers the host key {describe_key(offered)}, not the configured "
                    f"{describe_key(expected)}: another machine, or a guest whose keys were made anew"
                )
            running = _deprovision_running(transport, target, where)
        finally:
            transport.close()
        if running is None:
            refused += 1
            if refused < NO_KEY_TRIES:
                deadline.sleep(0.5)
                continue
            if watched is not None:
                return Finding(
                    True,
                    f"the deprovision seen running on {where} ({watched}) ended, and {target.username} is gone "
                    "(the login is refused): it went through",
                )
            raise LoginRefused(
                f"sshd on {where} still offers the stack's host key, but refuses the login of {target.username} "
                "with the credentials the killed run used: either its deprovision went through (waagent deleted "
                "the user; an image whose agent keeps the host keys, such as Ubuntu's), or those credentials "
                "never worked"
            )
        refused = 0
        if not running:
            return Finding(False, f"sshd on {where} still offers the stack's host key and no deprovision runs there")
        if watched is None:
            watched = running[0]
            say(
                f"  a deprovision is still running on {where} ({watched}): waiting for it to end "
                f"(up to {target.command_timeout:g}s)"
            )
        deadline.check(running[0])
        deadline.sleep(interval)


def _handshake(target: SshTarget, where: str) -> paramiko.Transport | None:
    """An SSH transport whose key exchange is done (the server's host key known, nobody logged in); None when the
    server closes the connection before offering a host key (sshd without host keys exits at once). CannotTell
    when it cannot be connected to, or says nothing within CONNECT_SECONDS."""
    try:
        sock = socket.create_connection((target.host, target.port), timeout=CONNECT_SECONDS)
    except OSError as exc:
        raise CannotTell(f"cannot connect to {where} ({exc.strerror or type(exc).__name__})") from exc
    transport = paramiko.Transport(sock)
    transport.set_log_channel(_PARAMIKO_LOG)
    transport.banner_timeout = CONNECT_SECONDS
    started = time.monotonic()
    try:
        transport.start_client(timeout=CONNECT_SECONDS)
    except (OSError, EOFError, paramiko.SSHException) as exc:
        transport.close()
        if time.monotonic() - started >= CONNECT_SECONDS * 0.9:
            raise CannotTell(f"sshd on {where} did not finish a handshake within {CONNECT_SECONDS:g}s") from exc
        return None
    return transport


def _deprovision_running(transport: paramiko.Transport, target: SshTarget, where: str) -> list[str] | None:
    """The processes of a deprovision under way, as `ps` shows them; None when the login is refused. Secrets never
    reach a message: a key that cannot be loaded counts as a refused login."""
    try:
        if target.private_key:
            key = parse_private_key(target.private_key, target.passphrase)
            with contextlib.suppress(paramiko.AuthenticationException):  # a password may still do
                transport.auth_publickey(target.username, key)
        if not transport.is_authenticated() and target.password:
            transport.auth_password(target.username, target.password)
    except (ValueError, paramiko.SSHException):
        return None
    if not transport.is_authenticated():
        return None
    out = b""
    try:
        channel = transport.open_session(timeout=CONNECT_SECONDS)
        try:
            channel.settimeout(CONNECT_SECONDS)
            # A fixed string, no input of anyone's.
            channel.exec_command(PS_COMMAND)  # nosec B601
            while chunk := channel.recv(65536):
                out += chunk
            status = channel.recv_exit_status()
        finally:
            channel.close()
    except (OSError, EOFError, paramiko.SSHException) as exc:
        raise CannotTell(f"listing the processes on {where} failed ({type(exc).__name__})") from exc
    if status != 0:
        # Nothing listed is not "nothing runs".
        raise CannotTell(f"`{PS_COMMAND}` on {where} failed (exit status {status})")
    lines = [line.strip() for line in out.decode(errors="replace").splitlines()]
    own = ("sh -s",) if target.username == "root" else ()
    return [line for line in lines if any(mark in line for mark in RUNNING_MARKS) or line in own]
