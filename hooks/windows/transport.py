"""WinRM transport to one Windows guest: run a GuestScript in a fresh WinRS shell, tell a dropped connection
(may heal: retry) from refused credentials, a wrong certificate or a failing script (will not heal: stop).

Certificates are checked before any credentials are sent: a CA bundle, or a pinned SHA-256 compared on every
connection. A fresh pywinrm Protocol per script, so a dropped connection never poisons the next call."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import socket
import ssl
import tempfile
from collections.abc import Callable, Iterator
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

from hooks.errors import GuestCommandFailed, GuestConnectionError, HostKeyMismatch, WaitTimeout
from hooks.log import Log
from hooks.targets import WinRmTarget
from hooks.waiting import Deadline, retry
from hooks.windows.scripts import GuestScript, clean_clixml, parse_result_line, tail

OPERATION_TIMEOUT = 20
"""Seconds WinRM holds one Receive open before answering "still running" (the client then asks again)."""
READ_TIMEOUT = 30
"""Seconds before one HTTP request to WinRM counts as lost; must exceed OPERATION_TIMEOUT."""
SCRIPT_TIMEOUT = 300.0
"""Bound for one guest script (Get-WindowsFeature and Get-AppxPackage -AllUsers can take minutes when cold)."""
MAX_BACKOFF = 15.0


# ----------------------------------------------------------------------------------------------------------------
# WinRM transport
# ----------------------------------------------------------------------------------------------------------------


class ConnectionLost(Exception):
    """The connection failed in a way that may heal (refused, reset, timed out, WinRM restarting)."""

    def __init__(self, summary: str, command_sent: bool) -> None:
        super().__init__(summary)
        self.summary = summary
        self.command_sent = command_sent


class CommandOutcomeUnknown(Exception):
    """The connection failed after a non-repeatable command was sent: it may or may not have run.

    Deliberately not a ConnectionLost, so that nothing retries it."""

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
        self.pin = normalize_fingerprint(target.certificate_sha256) if target.certificate_sha256 else None

    @classmethod
    @contextlib.contextmanager
    def connect(cls, target: WinRmTarget, log: Log, backoff: float) -> Iterator[WinRmGuest]:
        """A guest ready to run scripts: certificate pin checked (before any credentials are sent)."""
        ca_file = None
        try:
            if target.ca_certificate and not target.insecure_skip_certificate_validation:
                with tempfile.NamedTemporaryFile("w", suffix=".pem", delete=False, encoding="ascii") as handle:
                    handle.write(target.ca_certificate)
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
        if t.scheme == "https" and t.insecure_skip_certificate_validation:
            self.log.warn(
                f"the TLS certificate of {self.where} is NOT validated (insecure_skip_certificate_validation): anyone "
                "on the path can impersonate the VM and read the password. Use only for throwaway test VMs; set "
                "ca_certificate or certificate_sha256 instead."
            )
        how = (
            "not validated"
            if t.insecure_skip_certificate_validation
            else "pinned SHA-256"
            if self.pin
            else ("validated against ca_certificate" if self.ca_file else "validated against the system trust store")
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
        refused_logons_are_drops: bool = False,
    ) -> dict[str, Any]:
        """Run `script`, retrying with backoff while the guest cannot be reached (VM booting, network reset), up
        to `deadline` (default: the target's connect_timeout). With retry_after_command=False, a connection lost
        after the command was sent raises CommandOutcomeUnknown instead of sending it again."""
        deadline = deadline or Deadline(self.target.connect_timeout, f"WinRM at {self.where} to answer")

        def attempt() -> dict[str, Any]:
            try:
                return self.run(script, faults_are_drops, refused_logons_are_drops)
            except ConnectionLost as lost:
                if lost.command_sent and not retry_after_command:
                    raise CommandOutcomeUnknown(lost.summary) from lost
                raise

        def on_retry(exc: BaseException, delay: float) -> None:
            summary = exc.summary if isinstance(exc, ConnectionLost) else str(exc)
            self.log.info(f"WinRM at {self.where} not answering ({summary}); retrying in {delay:.1f}s")

        try:
            return retry(attempt, deadline, (ConnectionLost,), self.backoff, MAX_BACKOFF, on_retry)
        except WaitTimeout as exc:
            cause = exc.__cause__
            if not isinstance(cause, ConnectionLost):
                raise  # a script ran out of time: not a connection problem
            summary = cause.summary
            raise GuestConnectionError(
                f"could not reach WinRM at {self.target.scheme}://{self.where} within {deadline.seconds:g}s "
                f"(last error: {summary}). Check that the VM is running, that a network security group allows TCP "
                f"{self.target.port} from here, and that WinRM has an {self.target.scheme.upper()} listener "
                "(winrm enumerate winrm/config/listener)."
            ) from exc

    def run(
        self, script: GuestScript, faults_are_drops: bool = False, refused_logons_are_drops: bool = False
    ) -> dict[str, Any]:
        """Run `script` once and return the JSON object it printed. With refused_logons_are_drops (only while
        sysprep runs: the credentials were accepted before it started), an HTTP 401 counts as a dropped connection.

        Raises ConnectionLost (may heal; `command_sent` tells whether the script may have run), GuestConnectionError
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
        except (InvalidCredentialsError, PermissionError) as exc:
            # requests_ntlm raises PermissionError when the listener answers the NTLM negotiate with a bare 401.
            if refused_logons_are_drops:
                # Generalize stops services and resets the security state: Windows refuses new logons for a while.
                raise ConnectionLost("WinRM refused the logon (HTTP 401) while sysprep runs", sent) from exc
            raise GuestConnectionError(
                f"WinRM at {self.where} rejected the credentials of {self.target.username!r} (HTTP 401, "
                f"{self.target.transport}). Check the user name and password (a local account may need the form "
                f"'.\\user' or 'HOST\\user'), and that the WinRM service allows {self.target.transport} "
                "authentication. Not retried: retrying a wrong password can lock the account."
            ) from exc
        except requests.exceptions.SSLError as exc:
            if _is_certificate_problem(exc):
                raise self._certificate_error(str(exc)) from exc
            raise ConnectionLost(_summarize(exc), False) from exc  # the handshake failed: no request went out
        except requests.exceptions.RequestException as exc:
            raise ConnectionLost(_summarize(exc), sent and not _never_sent(exc)) from exc
        except WinRMTransportError as exc:
            # An HTTP error without a WS-Management fault: typically WinRM restarting.
            raise ConnectionLost(f"HTTP {exc.code} from WinRM", sent) from exc
        except WSManFaultError as exc:
            if faults_are_drops:
                raise ConnectionLost(f"WS-Management fault: {exc.reason.strip()}", sent) from exc
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
            raise ConnectionLost("a WinRM response did not match its request", sent) from exc

        text_out = stdout.decode("utf-8", errors="replace")
        text_err = clean_clixml(stderr.decode("utf-8", errors="replace"))
        result = parse_result_line(text_out) if code == 0 else None
        if result is None:
            raise GuestCommandFailed(
                f"guest script {script.name}.ps1 failed on {self.where} (exit code {code})"
                + (f": {tail(text_err, 15)}" if text_err else "")
                + (f"\n--- output ---\n{tail(text_out, 15)}" if text_out.strip() else "")
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
            # WinRM goes straight to the VM; an HTTP(S)_PROXY from the environment would only get in the way. Not
            # proxy=None: pywinrm turns that into the session proxy "no_proxy: *", which requests applies by writing
            # it into os.environ around each request (requests.utils.set_environ), racing with every other thread
            # that reads the environment; with several guests in one provider host that ended in
            # KeyError('no_proxy') mid-sysprep. An empty proxy per scheme means "direct" and writes nothing.
            "proxy": "",
        }
        if t.scheme == "https":
            if t.insecure_skip_certificate_validation or (self.pin and not self.ca_file):
                kwargs["server_cert_validation"] = "ignore"
            else:
                kwargs["server_cert_validation"] = "validate"
                # None: the default trust store, not REQUESTS_CA_BUNDLE from the environment.
                kwargs["ca_trust_path"] = self.ca_file
        else:
            kwargs["ca_trust_path"] = None  # plain HTTP: no CA at all (pywinrm would read REQUESTS_CA_BUNDLE and warn)
        protocol = Protocol(**kwargs)
        session = protocol.transport.build_session()
        # Nothing of a WinRM request comes from the environment (proxy, CA bundle, .netrc): with trust_env, requests
        # would also rescan os.environ (twice) and look for ~/.netrc on every one of the ~50 requests of a sysprep,
        # the largest CPU cost of the guest half with several guests per host.
        session.trust_env = False
        if self.pin and t.scheme == "https":
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
                raise ConnectionLost(_summarize(exc), False) from exc

        def on_retry(exc: BaseException, delay: float) -> None:
            self.log.info(f"WinRM at {self.where} not answering ({exc}); retrying in {delay:.1f}s")

        try:
            presented = retry(attempt, deadline, (ConnectionLost,), self.backoff, MAX_BACKOFF, on_retry)
        except WaitTimeout as exc:
            raise GuestConnectionError(
                f"could not reach WinRM at https://{self.where} within {deadline.seconds:g}s ({exc}). Check that "
                f"the VM is running and that TCP {self.target.port} is allowed from here."
            ) from exc
        if presented != self.pin:
            raise HostKeyMismatch(
                f"the TLS certificate of WinRM at {self.where} does not match the pinned fingerprint: expected "
                f"SHA-256 {colons(self.pin or '')}, presented {colons(presented)}. No credentials were sent. If the "
                "certificate was replaced on purpose, verify the new one out of band (in the VM: "
                "Get-ChildItem Cert:\\LocalMachine\\My) and update certificate_sha256; otherwise someone may be "
                "intercepting the connection."
            )
        self.log.info(f"TLS certificate of {self.where} matches the pinned SHA-256")

    def _certificate_error(self, reason: str) -> HostKeyMismatch:
        try:
            presented = colons(presented_fingerprint(self.target.host, self.target.port, 10))
        except OSError:
            presented = "(could not be read)"
        if self.pin and "fingerprints did not match" in reason.lower():
            expected = f"the pinned SHA-256 {colons(self.pin)}"
        elif self.ca_file:
            expected = "a certificate issued by ca_certificate for this host name"
        else:
            expected = "a certificate trusted by the system trust store for this host name"
        return HostKeyMismatch(
            f"the TLS certificate of WinRM at {self.where} is not the one configured: expected {expected}, "
            f"presented SHA-256 {presented} ({_summarize_ssl(reason)}). No credentials were sent. Set ca_certificate "
            "to the CA (or self-signed certificate) of the VM's WinRM listener and connect by a name the certificate "
            "carries, or pin it with certificate_sha256 after verifying it out of band."
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


def colons(hex_digest: str) -> str:
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
