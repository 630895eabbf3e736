"""A scripted Linux guest behind a paramiko SSH server, for running the Linux step where the real sandbox
(tests/fakes/sandbox.py: OpenSSH sshd + Debian's waagent in a chroot) cannot run because there is no root.

It answers exactly what hooks/linux.py sends, and nothing else:

- SSH on 127.0.0.1:<free port> with a fresh Ed25519 host key; public-key authentication only, for one user and
  one Ed25519 client key (passwords are refused, as on an Azure image with PasswordAuthentication no);
- one exec request, ``sudo -n sh -s`` (``sh -s`` when the user is root), with deprovision.sh on standard input.
  The script must be byte for byte hooks/scripts/deprovision.sh; once it has been read to the end (the shell
  runs nothing before that), the guest answers with what the script prints on an Ubuntu VM whose
  ``waagent -force -deprovision+user`` succeeds: its own ``say`` lines (read from the script, so they follow
  it), with waagent's warnings after step 3, then exit status 0. Like the script, it first looks for what creates
  SSH host keys at first boot (cloud-init, which Ubuntu has; waagent with RegenerateSshHostKeyPair=y; an
  sshd-keygen unit) and, with none of them, refuses with the script's own error and exit code, changing nothing;
- ``ps -eo args=`` (what `make recover` lists to see whether a deprovision still runs, commands/recover/
  killed_deprovision.py): a few system processes, and ``sudo -n sh -s`` while a script runs;
- anything else: exit status 127 and a message on stderr naming the command, so a change in hooks/linux.py
  fails loudly here instead of passing against a stand-in that does not know the new command.

After the deprovisioning the user is gone (waagent runs ``userdel -r`` on the user named in ovf-env.xml), so
its logins are refused. What happens to the host keys depends on waagent.conf's
``Provisioning.RegenerateSshHostKeyPair``: Ubuntu ships ``n`` and keeps them (the default here); Debian's
default ``y`` (the sandbox) deletes them, and then OpenSSH 9.2's sshd, which re-reads its host keys for every
connection, resets new connections before its banner ("no hostkeys available -- exiting").
``regenerate_ssh_host_key_pair=True`` plays that, and with ``cloud_init_installed=False`` (the sandbox has no
cloud-init) its output and the second run's error are word for word those of the sandbox.

Never secure: the keys are throwaway and everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import socket
import struct
import threading
import time
from dataclasses import replace
from types import TracebackType
from typing import Any

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from paramiko.common import AUTH_FAILED, AUTH_SUCCESSFUL, OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED, OPEN_SUCCEEDED

from hooks.linux import EXIT_NO_HOST_KEY_GENERATOR, EXIT_NOT_ROOT, SCRIPT
from hooks.targets import SshTarget

WAAGENT = "/usr/sbin/waagent"
"""Where Ubuntu's walinuxagent package installs the agent (on sudo's secure_path)."""
SCRIPT_COMMAND = "sudo -n sh -s"
"""How hooks/linux.py runs deprovision.sh for a user other than root."""
ROOT_SCRIPT_COMMAND = "sh -s"
"""How hooks/linux.py runs it when it logs in as root."""
PS_COMMAND = "ps -eo args="
"""How `make recover` lists the guest's processes (commands/recover/killed_deprovision.py)."""

_MAX_SCRIPT_BYTES = 1 << 20
_POLL = 0.1
"""Seconds between checks of the stop flag in the background loops (bounds stop())."""
_REPLY_GRACE = 0.02
"""paramiko sends the reply to an exec request only after our callback returns; answering a command that reads
no input is delayed this long so that its output never overtakes the reply."""
_PARAMIKO_LOG = "tests.fakes.ssh_guest.paramiko"
logging.getLogger(_PARAMIKO_LOG).addHandler(logging.NullHandler())
logging.getLogger(_PARAMIKO_LOG).propagate = False

_SAY = re.compile(r'^\s*say "([^"]*)"', re.MULTILINE)
_NO_GENERATOR = re.compile(r'^\s*fail "\$EXIT_NO_HOST_KEY_GENERATOR" "([^"]*)"', re.MULTILINE)


class ScriptedLinuxGuest:
    """An Ubuntu VM as hooks/linux.py sees it over SSH, until and after waagent deprovisions it."""

    def __init__(
        self,
        username: str = "azureuser",
        *,
        regenerate_ssh_host_key_pair: bool = False,
        cloud_init_installed: bool = True,
        sshd_keygen_unit: bool = False,
        sudo_installed: bool = True,
        port: int = 0,
        session_dies_in_waagent: bool = False,
    ) -> None:
        self.host = "127.0.0.1"
        self.port = port
        """0: a free port, set by start()."""
        self.username = username
        """The admin user named in ovf-env.xml: the only login, with passwordless sudo; waagent deletes it."""
        client_key = ed25519.Ed25519PrivateKey.generate()
        self.private_key = client_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
        ).decode()
        """OpenSSH private key text (Ed25519) that the guest accepts for `username`."""
        self._client_key = _paramiko_key(self.private_key)
        self.public_key = f"ssh-ed25519 {self._client_key.get_base64()} scripted-guest-client"
        """The client key's public line, as in the user's authorized_keys."""
        self._host_key = _paramiko_key(
            ed25519.Ed25519PrivateKey.generate()
            .private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
            )
            .decode()
        )
        self.host_public_key = f"ssh-ed25519 {self._host_key.get_base64()}"
        """The guest's own host key, `ssh-ed25519 AAAA…`."""
        self.regenerate_ssh_host_key_pair = regenerate_ssh_host_key_pair
        """waagent.conf's Provisioning.RegenerateSshHostKeyPair: y deletes the host keys while deprovisioning (and
        makes new ones at provisioning)."""
        self.cloud_init_installed = cloud_init_installed
        """True (Ubuntu): cloud-init cleans its state, and its ssh module makes new host keys at first boot."""
        self.sshd_keygen_unit = sshd_keygen_unit
        """True: /usr/lib/systemd/system/sshd-keygen@.service exists (RHEL, Fedora, Azure Linux)."""
        self.session_dies_in_waagent = session_dies_in_waagent
        """True: the SSH session is cut while waagent runs (as a dropped network would): output up to then, no exit
        status. What the sandbox plays by killing sshd."""
        self.sudo_installed = sudo_installed
        """False: a minimal image without sudo, where the login shell cannot find it (exit status 127)."""
        self.commands: list[str] = []
        """Every exec request received, in order."""
        self.deprovisioned = False
        """True once waagent -force -deprovision+user has "run"."""
        self.scripts_running = 0
        """deprovision.sh sessions under way (being read or answered): `ps` shows their command."""
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._listener: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None
        self._transports: list[paramiko.Transport] = []
        self._workers: list[threading.Thread] = []

    # --- lifecycle ------------------------------------------------------------------------------------------

    def start(self) -> ScriptedLinuxGuest:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self.port))
        listener.listen(16)
        listener.settimeout(_POLL)
        self.port = int(listener.getsockname()[1])
        self._listener = listener
        self._accept_thread = threading.Thread(target=self._accept_loop, name=f"ssh-guest:{self.port}", daemon=True)
        self._accept_thread.start()
        return self

    def stop(self) -> None:
        """Close the listener and every connection; returns within about two seconds."""
        self._stopping.set()
        if self._listener is not None:
            self._listener.close()
        with self._lock:
            transports, workers = list(self._transports), list(self._workers)
        for transport in transports:
            transport.close()
        deadline = time.monotonic() + 2.0
        for thread in [*([self._accept_thread] if self._accept_thread else []), *workers]:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))

    def __enter__(self) -> ScriptedLinuxGuest:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- for tests and the demo -----------------------------------------------------------------------------

    @property
    def host_key(self) -> str:
        """known_hosts line for the guest: `[127.0.0.1]:<port> ssh-ed25519 AAAA…`."""
        return f"[{self.host}]:{self.port} {self.host_public_key}"

    def target(self, **changes: Any) -> SshTarget:
        """An SshTarget for `username` with the guest's host key and short bounds; override any field."""
        base = SshTarget(
            host=self.host,
            port=self.port,
            username=self.username,
            private_key=self.private_key,
            host_key=self.host_key,
            connect_timeout=15.0,
            command_timeout=60.0,
        )
        return replace(base, **changes)

    def open_connections(self) -> int:
        """SSH connections the client has not closed yet."""
        with self._lock:
            return sum(1 for t in self._transports if t.is_active())

    # --- the SSH side ---------------------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # the listener was closed by stop()
            if self.deprovisioned and self.regenerate_ssh_host_key_pair:
                # sshd's per-connection process finds no host key and exits with the client's banner unread: the
                # client sees a reset. Wait (briefly) for that banner as sshd's start-up time does.
                sock.settimeout(0.5)
                with contextlib.suppress(OSError):
                    sock.recv(1, socket.MSG_PEEK)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.close()
                continue
            sock.settimeout(None)
            transport = paramiko.Transport(sock)  # its own daemon thread
            transport.set_log_channel(_PARAMIKO_LOG)
            transport.add_server_key(self._host_key)
            with self._lock:
                self._transports = [t for t in self._transports if t.is_active()]
                self._transports.append(transport)
            try:
                # With an event the negotiation runs in the transport's thread; this loop goes on accepting.
                transport.start_server(event=threading.Event(), server=_Server(self))
            except (OSError, EOFError, paramiko.SSHException):
                transport.close()

    def _authorized(self, username: str, key: paramiko.PKey) -> bool:
        with self._lock:
            user_exists = not self.deprovisioned
        return user_exists and username == self.username and key == self._client_key

    def _exec(self, channel: paramiko.Channel, command: str) -> None:
        """Record the command and answer it in a worker thread (the caller is the transport's own thread)."""
        worker = threading.Thread(
            target=self._answer, args=(channel, command), name=f"ssh-guest:{self.port}:exec", daemon=True
        )
        with self._lock:
            self.commands.append(command)
            self._workers = [w for w in self._workers if w.is_alive()]
            self._workers.append(worker)
        worker.start()

    def _answer(self, channel: paramiko.Channel, command: str) -> None:
        try:
            if command == SCRIPT_COMMAND and not self.sudo_installed:
                time.sleep(_REPLY_GRACE)
                _finish(channel, 127, stderr="bash: line 1: sudo: command not found\n")
            elif command in (SCRIPT_COMMAND, ROOT_SCRIPT_COMMAND):
                with self._lock:
                    self.scripts_running += 1
                try:
                    self._run_script(channel, as_root=command == SCRIPT_COMMAND or self.username == "root")
                finally:
                    with self._lock:
                        self.scripts_running -= 1
            elif command == PS_COMMAND:
                time.sleep(_REPLY_GRACE)
                with self._lock:
                    running = [SCRIPT_COMMAND] * self.scripts_running
                processes = ["/sbin/init", "sshd: /usr/sbin/sshd -D [listener] 0 of 10-100 startups", *running]
                _finish(channel, 0, stdout="".join(p + "\n" for p in processes))
            else:
                time.sleep(_REPLY_GRACE)
                _finish(
                    channel,
                    127,
                    stderr=f"bash: line 1: {command}: command not found (ScriptedLinuxGuest has no answer for this "
                    "command; if hooks/linux.py changed, teach tests/fakes/ssh_guest.py)\n",
                )
        except (OSError, EOFError, paramiko.SSHException):
            pass  # the client went away (or stop() closed the connection) mid-answer
        finally:
            channel.close()

    def _run_script(self, channel: paramiko.Channel, *, as_root: bool) -> None:
        script = self._read_stdin(channel)
        if script is None:
            return  # the session ended before the script arrived whole: the shell ran nothing
        if script != SCRIPT.read_bytes():
            _finish(
                channel,
                2,
                stderr="ScriptedLinuxGuest: the script on standard input is not hooks/scripts/deprovision.sh as "
                "this stand-in knows it; teach tests/fakes/ssh_guest.py what the new script prints\n",
            )
            return
        if not as_root:
            _finish(channel, EXIT_NOT_ROOT, stderr="image-gallery: error: must run as root (run it with sudo)\n")
            return
        lines: list[str] = []
        generator = self._host_key_generator()
        for said in _SAY.findall(script.decode()):
            if "cloud-init is not installed" in said and self.cloud_init_installed:
                continue  # Ubuntu has cloud-init: that branch prints nothing
            if "$generator" in said and generator is None:
                # deprovision.sh's pre-check: nothing would create host keys at first boot, so it stops here.
                refusal = _NO_GENERATOR.search(script.decode())
                assert refusal is not None, "deprovision.sh no longer refuses a VM without a host key generator"
                _finish(
                    channel,
                    EXIT_NO_HOST_KEY_GENERATOR,
                    stdout="".join(line + "\n" for line in lines),
                    stderr=f"image-gallery: error: {refusal.group(1)}\n",
                )
                return
            said = said.replace("$generator", generator or "")
            lines.append(f"image-gallery: {said.replace('$waagent', WAAGENT)}")
            if "-deprovision+user" in said and self.session_dies_in_waagent:
                channel.sendall("".join(line + "\n" for line in lines).encode())
                transport = channel.get_transport()
                if transport is not None:
                    transport.close()
                return
            if "-deprovision+user" in said:
                lines += self._waagent_deprovision_user()
        _finish(channel, 0, stdout="".join(line + "\n" for line in lines))

    def _host_key_generator(self) -> str | None:
        """What deprovision.sh's host_key_generator prints on this guest, in its order; None for nothing."""
        if self.cloud_init_installed:
            return "cloud-init"
        if self.regenerate_ssh_host_key_pair:
            return "waagent (Provisioning.RegenerateSshHostKeyPair=y in /etc/waagent.conf)"
        if self.sshd_keygen_unit:
            return "sshd-keygen@.service (/usr/lib/systemd/system)"
        return None

    def _waagent_deprovision_user(self) -> list[str]:
        """What `waagent -force -deprovision+user` prints (WALinuxAgent's DeprovisionHandler), and its effect."""
        warnings = ["WARNING! The waagent service will be stopped."]
        if self.regenerate_ssh_host_key_pair:
            warnings.append("WARNING! All SSH host key pairs will be deleted.")
        warnings += [
            "WARNING! Cached DHCP leases will be deleted.",
            "WARNING! root password will be disabled. You will not be able to login as root.",
            "WARNING! /etc/resolv.conf will be deleted.",
            f"WARNING! {self.username} account and entire home directory will be deleted.",
        ]
        with self._lock:
            self.deprovisioned = True
        return warnings

    def _read_stdin(self, channel: paramiko.Channel) -> bytes | None:
        """Standard input up to its end, or None if the session closed (or stop() came) before that."""
        channel.settimeout(_POLL)
        data = bytearray()
        while not self._stopping.is_set():
            try:
                chunk = channel.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                return bytes(data) if channel.eof_received and not channel.closed else None
            data += chunk
            if len(data) > _MAX_SCRIPT_BYTES:
                return None
        return None


class _Server(paramiko.ServerInterface):
    """One connection's view of the guest: what sshd decides before a command runs."""

    def __init__(self, guest: ScriptedLinuxGuest) -> None:
        self._guest = guest

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_none(self, username: str) -> int:
        return AUTH_FAILED

    def check_auth_password(self, username: str, password: str) -> int:
        return AUTH_FAILED

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        return AUTH_SUCCESSFUL if self._guest._authorized(username, key) else AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        if kind == "session":
            return OPEN_SUCCEEDED
        return OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_exec_request(self, channel: paramiko.Channel, command: bytes) -> bool:
        self._guest._exec(channel, command.decode("utf-8", "replace"))
        return True


def _finish(channel: paramiko.Channel, status: int, *, stdout: str = "", stderr: str = "") -> None:
    """Send the output, then EOF and the exit status, in the order OpenSSH's sshd does."""
    if stdout:
        channel.sendall(stdout.encode())
    if stderr:
        channel.sendall_stderr(stderr.encode())
    channel.shutdown_write()
    channel.send_exit_status(status)


def _paramiko_key(private_key: str) -> paramiko.Ed25519Key:
    return paramiko.Ed25519Key.from_private_key(io.StringIO(private_key))
