"""A throwaway Debian root with the real Azure Linux agent (waagent) and a real OpenSSH sshd, for testing the Linux
guest step end to end: paramiko → sshd in the root → sudo → deprovision.sh → waagent -deprovision+user.

Build the root once (needs root, debootstrap and the Debian package mirror; ~1-2 min), cached as a tarball under
`.cache/sandbox/` in the project:

    uv run python -m tests.fakes.sandbox build

Each test then gets a fresh copy extracted from the tarball (~2 s) with its own users, keys and host key, and an
sshd that runs inside `unshare --mount --uts --ipc --pid --fork` + `chroot`, listening on 127.0.0.1:<free port>.
The namespaces keep waagent's `hostname`, `userdel` and file deletions inside the sandbox; waagent is never
installed on the host (it would deprovision the host).

Test modules use the fixture by importing it: `from tests.fakes.sandbox import sandbox_fixture  # noqa: F401`,
then take a `sandbox: Sandbox` argument.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from hooks.errors import WaitTimeout
from hooks.targets import SshTarget
from hooks.waiting import Deadline, poll

PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CACHE_DIR = Path(os.environ.get("IMAGE_GALLERY_SANDBOX_CACHE") or PROJECT_ROOT / ".cache" / "sandbox")
"""Where the root tarball is cached; IMAGE_GALLERY_SANDBOX_CACHE moves it (e.g. to outlive a fresh CI clone)."""
INSTALL_PREREQS = Path(__file__).with_name("install-prereqs.sh")

SUITE = "bookworm"
PACKAGES = (
    "python3",
    "python3-distro",
    "python3-pkg-resources",
    "openssl",
    "ca-certificates",
    "sudo",
    "openssh-server",
    "passwd",
    "iproute2",
)
AGENT_PACKAGE = "waagent"
"""Debian's name for the Azure Linux agent (2.7.x in bookworm). Installed only inside the root."""

# Bump when the recipe changes in a way the inputs above do not show: the tarball name carries a hash of it.
_RECIPE_VERSION = "1"
_RECIPE = "|".join((_RECIPE_VERSION, SUITE, *PACKAGES, AGENT_PACKAGE))
TARBALL = CACHE_DIR / f"rootfs-{SUITE}-waagent-{hashlib.sha256(_RECIPE.encode()).hexdigest()[:12]}.tar"

# What the root does not need; removed so each test's copy is quicker to extract.
_PRUNE = (
    "var/cache/apt/archives",
    "var/lib/apt/lists",
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
)

SSHD_CONFIG = "/etc/ssh/sandbox_sshd_config"
HOSTNAME = "sandbox-vm"
HOST_KEY_DIR = "/etc/ssh"
HOST_KEY_KINDS = ("ed25519", "ecdsa", "rsa")

KEY_USER = "azureuser"
"""Key auth, passwordless sudo, named in ovf-env.xml: the user waagent deletes."""
PASSWORD_USER = "pwuser"
"""Password auth, passwordless sudo."""
SUDO_PASSWORD_USER = "askpass"
"""Key auth (the same key as KEY_USER), but sudo asks for a password."""

OVF_ENV = """<?xml version="1.0" encoding="utf-8"?>
<Environment xmlns="http://schemas.dmtf.org/ovf/environment/1" xmlns:oe="http://schemas.dmtf.org/ovf/environment/1"
             xmlns:wa="http://schemas.microsoft.com/windowsazure" xmlns:i="http://www.w3.org/2001/XMLSchema-instance">
  <wa:ProvisioningSection>
    <wa:Version>1.0</wa:Version>
    <LinuxProvisioningConfigurationSet xmlns="http://schemas.microsoft.com/windowsazure">
      <ConfigurationSetType>LinuxProvisioningConfiguration</ConfigurationSetType>
      <HostName>{hostname}</HostName>
      <UserName>{username}</UserName>
      <DisableSshPasswordAuthentication>false</DisableSshPasswordAuthentication>
    </LinuxProvisioningConfigurationSet>
  </wa:ProvisioningSection>
  <!-- Without PlatformSettings/ProvisionGuestAgent waagent cannot parse this file and skips deleting the user. -->
  <wa:PlatformSettingsSection>
    <wa:Version>1.0</wa:Version>
    <PlatformSettings xmlns="http://schemas.microsoft.com/windowsazure">
      <ProvisionGuestAgent>true</ProvisionGuestAgent>
    </PlatformSettings>
  </wa:PlatformSettingsSection>
</Environment>
"""


class SandboxUnavailable(Exception):
    """A real prerequisite is missing on this machine (not root, no debootstrap, namespaces not permitted...)."""


# --- building the root ----------------------------------------------------------------------------------------


def build(force: bool = False, say: Callable[[str], None] = print) -> Path:
    """Build the cached root tarball unless it exists (or `force`); returns its path. Needs root and the mirror."""
    _require_root("building the sandbox root")
    for tool in ("debootstrap", "apt-get", "chroot", "tar", "unshare"):
        if shutil.which(tool) is None:
            raise SandboxUnavailable(f"{tool} is not installed (run: sh {INSTALL_PREREQS.relative_to(PROJECT_ROOT)})")
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with _build_lock():
        if TARBALL.exists() and not force:
            say(f"sandbox root already built: {TARBALL}")
            return TARBALL
        work = Path(tempfile.mkdtemp(prefix="build-", dir=CACHE_DIR))
        try:
            _build_into(work, say)
        finally:
            _remove_tree(work)
    for old in CACHE_DIR.glob("rootfs-*.tar"):
        if old != TARBALL:
            old.unlink()
    return TARBALL


def _build_into(work: Path, say: Callable[[str], None]) -> None:
    root = work / "root"
    mirror = _debian_mirror()
    say(f"debootstrap {SUITE} into {root} (this takes a minute or two)")
    # In a private mount namespace: debootstrap mounts /proc and /sys in the target, and a failed run could
    # otherwise leave them mounted under a tree we are about to delete.
    _run(
        [
            "unshare",
            "--mount",
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(PACKAGES)}",
            SUITE,
            str(root),
            *([mirror] if mirror else []),
        ],
        timeout=1200,
    )

    # Downloaded with the host's apt (same suite as the root on these bookworm machines), never installed there.
    say(f"downloading {AGENT_PACKAGE} on the host (not installing it there)")
    debs = work / "debs"
    debs.mkdir()
    download = ["apt-get", "download", "-o", "APT::Sandbox::User=root", AGENT_PACKAGE]
    if _run(download, cwd=debs, timeout=300, check=False).returncode != 0:
        _run(["apt-get", "update", "-qq"], timeout=300)
        _run(download, cwd=debs, timeout=300)
    (deb,) = debs.glob(f"{AGENT_PACKAGE}_*.deb")

    say(f"installing {deb.name} inside the root")
    # Debian's convention for "do not start services": invoke-rc.d asks policy-rc.d, and 101 means "denied".
    policy = root / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\n# Never start services in the sandbox root.\nexit 101\n")
    policy.chmod(0o755)
    shutil.copy(deb, root / "tmp" / deb.name)
    _run(["unshare", "--mount", "chroot", str(root), "dpkg", "-i", f"/tmp/{deb.name}"], timeout=300)
    (root / "tmp" / deb.name).unlink()

    for relative in _PRUNE:
        for child in (root / relative).glob("*"):
            if child.is_dir() and not child.is_symlink():
                _remove_tree(child)
            else:
                child.unlink()
    for path in (root / "var/cache/apt").glob("*.bin"):
        path.unlink()
    # openssh-server's postinst generated host keys; every sandbox gets its own instead.
    for path in (root / "etc/ssh").glob("ssh_host_*"):
        path.unlink()
    (root / "run/sshd").mkdir(parents=True, exist_ok=True)

    say(f"packing {TARBALL.name}")
    partial = work / "rootfs.tar"
    _run(["tar", "--numeric-owner", "-C", str(root), "-cf", str(partial), "."], timeout=300)
    os.replace(partial, TARBALL)


def _debian_mirror() -> str | None:
    """The Debian archive the host's apt uses for SUITE, so the build follows any local mirror or proxy setting.
    None lets debootstrap use its default."""
    apt = Path("/etc/apt")
    for path in sorted(apt.glob("sources.list.d/*.sources")):
        for stanza in path.read_text().split("\n\n"):
            fields: dict[str, str] = {}
            for line in stanza.splitlines():
                if ":" in line and not line.startswith(("#", " ")):
                    key, _, value = line.partition(":")
                    fields[key.strip().lower()] = value.strip()
            if "deb" in fields.get("types", "").split() and SUITE in fields.get("suites", "").split():
                uris = fields.get("uris", "").split()
                if uris and fields.get("enabled", "yes").lower() != "no":
                    return uris[0]
    for path in [apt / "sources.list", *sorted(apt.glob("sources.list.d/*.list"))]:
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            words = re.sub(r"\[[^]]*\]", " ", line).split()  # drop "[arch=… signed-by=…]"
            if len(words) >= 3 and words[0] == "deb" and words[2] == SUITE:
                return words[1]
    return None


@contextlib.contextmanager
def _build_lock() -> Iterator[None]:
    """One build at a time (two pytest runs, or the Makefile and a test)."""
    with open(CACHE_DIR / "build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


# --- one sandbox ----------------------------------------------------------------------------------------------


@dataclass
class Sandbox:
    """A running sandbox: sshd on host:port, chrooted into `root`, in its own mount/UTS/IPC/PID namespaces."""

    root: Path
    """The sandbox's root directory on the host: inspect root / "etc/passwd" etc. after a test."""
    host: str
    port: int
    username: str
    """Key auth, passwordless sudo, named in /var/lib/waagent/ovf-env.xml (waagent deletes it)."""
    private_key: str
    """OpenSSH private key text (Ed25519) of `username` and `sudo_password_username`."""
    public_key: str
    """`ssh-ed25519 AAAA… sandbox-client`, in the users' authorized_keys."""
    host_public_keys: dict[str, str]
    """The sshd's host keys by type (ssh-ed25519, ecdsa-sha2-nistp256, ssh-rsa): `<type> AAAA…`."""
    password_username: str
    """Password auth, passwordless sudo."""
    password: str
    sudo_password_username: str
    """Key auth with `private_key`, but sudo asks for a password."""
    sshd_log: Path
    """sshd's own log (stderr, -e), for debugging a failing test."""

    @property
    def host_public_key(self) -> str:
        """The sshd's Ed25519 host key, `ssh-ed25519 AAAA…`."""
        return self.host_public_keys["ssh-ed25519"]

    @property
    def host_key(self) -> str:
        """known_hosts line for the sandbox's sshd: `[127.0.0.1]:<port> ssh-ed25519 AAAA…`."""
        return self.known_hosts_line("ssh-ed25519")

    def known_hosts_line(self, key_type: str) -> str:
        """known_hosts line for the host key of `key_type`."""
        return f"[{self.host}]:{self.port} {self.host_public_keys[key_type]}"

    def target(self, **changes: Any) -> SshTarget:
        """An SshTarget for `username` with the right host key and short test bounds; override any field."""
        base = SshTarget(
            host=self.host,
            port=self.port,
            username=self.username,
            private_key=self.private_key,
            host_key=self.host_key,
            connect_timeout=15.0,
            command_timeout=120.0,
        )
        return replace(base, **changes)

    def user_exists(self, name: str) -> bool:
        return any(line.split(":", 1)[0] == name for line in (self.root / "etc/passwd").read_text().splitlines())

    def chroot(self, *argv: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run a command inside the root (no namespaces: for quick setup such as useradd)."""
        return _run(["chroot", str(self.root), *argv], input=input, timeout=60)


@contextlib.contextmanager
def running_sandbox(workdir: Path, tarball: Path = TARBALL) -> Iterator[Sandbox]:
    """Extract a fresh root from `tarball` into `workdir`, set it up, run sshd in it; stop and delete it after."""
    with _fresh_root(workdir / "root", tarball) as root:
        sandbox = _prepare(root, workdir)
        server = _start_sshd(sandbox)
        try:
            yield sandbox
        finally:
            _stop(server)


@contextlib.contextmanager
def _fresh_root(root: Path, tarball: Path) -> Iterator[Path]:
    """A copy of the root on its own tmpfs: extracting 140 MB onto this kind of machine's disk takes 10-17 s,
    onto a tmpfs 0.4 s, and unmounting it is the clean-up. Falls back to the disk where mounting is not allowed."""
    root.mkdir(parents=True)
    mounted = (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=2g,mode=0755", "image-gallery-sandbox", str(root)],
            capture_output=True,
            check=False,
        ).returncode
        == 0
    )
    try:
        _run(["tar", "--numeric-owner", "-C", str(root), "-xf", str(tarball)], timeout=300)
        yield root
    finally:
        if mounted:
            # The namespace (and every process in it) is gone by now; --lazy only if something still holds a file.
            if _run(["umount", str(root)], timeout=60, check=False).returncode != 0:
                _run(["umount", "--lazy", str(root)], timeout=60)
            root.rmdir()
        else:
            _remove_tree(root)


def _prepare(root: Path, workdir: Path) -> Sandbox:
    """Users, keys, sudoers, ovf-env.xml, resolv.conf and the sshd config: what an Azure VM would have."""

    def chroot(*argv: str, input: str | None = None) -> None:
        _run(["chroot", str(root), *argv], input=input, timeout=60)

    client_key = ed25519.Ed25519PrivateKey.generate()
    private_key = client_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    ).decode()
    public_key = _public_line(client_key) + " sandbox-client"
    password = "pw-" + secrets.token_urlsafe(18)

    for user in (KEY_USER, PASSWORD_USER, SUDO_PASSWORD_USER):
        chroot("useradd", "--create-home", "--shell", "/bin/bash", "--user-group", user)
        # useradd leaves "!" in /etc/shadow, which sshd (UsePAM no) treats as a locked account even for keys.
        chroot("usermod", "-p", "*", user)
    chroot("chpasswd", input=f"{PASSWORD_USER}:{password}\n")
    for user in (KEY_USER, SUDO_PASSWORD_USER):
        ssh_dir = root / "home" / user / ".ssh"
        ssh_dir.mkdir(mode=0o700)
        (ssh_dir / "authorized_keys").write_text(public_key + "\n")
        chroot("chown", "-R", f"{user}:{user}", f"/home/{user}/.ssh")
    # A little history, so its removal can be seen.
    (root / "root/.bash_history").write_text("ls\n")

    sudoers = root / "etc/sudoers.d/90-sandbox"
    sudoers.write_text(
        f"{KEY_USER} ALL=(ALL) NOPASSWD: ALL\n"
        f"{PASSWORD_USER} ALL=(ALL) NOPASSWD: ALL\n"
        f"{SUDO_PASSWORD_USER} ALL=(ALL) ALL\n"
    )
    sudoers.chmod(0o440)

    waagent_dir = root / "var/lib/waagent"
    waagent_dir.mkdir(parents=True, exist_ok=True)
    (waagent_dir / "ovf-env.xml").write_text(OVF_ENV.format(username=KEY_USER, hostname=HOSTNAME))
    # A resolvable host name, as on a provisioned VM (sudo complains otherwise); the namespace is given this name.
    (root / "etc/hostname").write_text(f"{HOSTNAME}\n")
    with open(root / "etc/hosts", "a") as hosts:
        hosts.write(f"127.0.1.1 {HOSTNAME}\n")
    (root / "etc/resolv.conf").unlink(missing_ok=True)
    (root / "etc/resolv.conf").write_text("nameserver 127.0.0.53\n")

    # One host key of each kind an Azure image has, in the files waagent deletes: ssh_host_<type>_key(.pub).
    host_keys: dict[str, str] = {}
    for kind, private in _new_host_keys().items():
        key_file = root / HOST_KEY_DIR.lstrip("/") / f"ssh_host_{kind}_key"
        key_file.write_bytes(
            private.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
            )
        )
        key_file.chmod(0o600)
        public = _public_line(private)
        key_file.with_name(key_file.name + ".pub").write_text(public + " root@sandbox\n")
        host_keys[public.split()[0]] = public
    (root / "run/sshd").mkdir(parents=True, exist_ok=True)

    return Sandbox(
        root=root,
        host="127.0.0.1",
        port=0,
        username=KEY_USER,
        private_key=private_key,
        public_key=public_key,
        host_public_keys=host_keys,
        password_username=PASSWORD_USER,
        password=password,
        sudo_password_username=SUDO_PASSWORD_USER,
        sshd_log=workdir / "sshd.log",
    )


def _write_sshd_config(sandbox: Sandbox) -> None:
    (sandbox.root / SSHD_CONFIG.lstrip("/")).write_text(
        "\n".join(
            [
                "# The sandbox's own sshd config (the distribution's sshd_config is left as an image would have it).",
                f"ListenAddress {sandbox.host}:{sandbox.port}",
                *(f"HostKey {HOST_KEY_DIR}/ssh_host_{kind}_key" for kind in HOST_KEY_KINDS),
                "PidFile none",
                # No PAM in a chroot without a login stack; StrictModes would reject keys in a copied tree.
                "UsePAM no",
                "StrictModes no",
                "PubkeyAuthentication yes",
                "PasswordAuthentication yes",
                "KbdInteractiveAuthentication no",
                "PermitRootLogin no",
                "AuthorizedKeysFile .ssh/authorized_keys",
                "LogLevel VERBOSE",
                "",
            ]
        )
    )


@dataclass
class _Server:
    unshare: subprocess.Popen[bytes]
    log: Any


def _start_sshd(sandbox: Sandbox) -> _Server:
    """Start sshd on a free port; a port taken between choosing and binding just means another try."""
    last = ""
    for _ in range(3):
        sandbox.port = _free_port(sandbox.host)
        _write_sshd_config(sandbox)
        log = open(sandbox.sshd_log, "ab")  # noqa: SIM115 - closed in _stop
        script = 'mount -t proc proc "$1/proc" && hostname "$3" && exec chroot "$1" /usr/sbin/sshd -D -e -f "$2"'
        process = subprocess.Popen(
            [
                "unshare",
                "--mount",
                "--uts",
                "--ipc",
                "--pid",
                "--fork",
                "--kill-child",
                "sh",
                "-c",
                script,
                "sandbox-sshd",
                str(sandbox.root),
                SSHD_CONFIG,
                HOSTNAME,
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        server = _Server(process, log)
        try:
            _wait_listening(sandbox, process)
            return server
        except _SshdExited as exc:
            last = str(exc)
            _stop(server)
    raise SandboxUnavailable(f"sshd in the sandbox did not start: {last}")


class _SshdExited(Exception):
    pass


def _wait_listening(sandbox: Sandbox, process: subprocess.Popen[bytes]) -> None:
    def probe() -> tuple[bool, str]:
        if process.poll() is not None:
            raise _SshdExited(f"exited with {process.returncode}: {_tail(sandbox.sshd_log)}")
        try:
            with socket.create_connection((sandbox.host, sandbox.port), timeout=1) as conn:
                conn.settimeout(2)
                banner = conn.recv(64)
        except OSError as exc:
            return False, f"{type(exc).__name__}: {exc}"
        return banner.startswith(b"SSH-"), f"banner {banner!r}"

    deadline = Deadline(15.0, f"sshd in the sandbox to listen on {sandbox.host}:{sandbox.port}")
    try:
        poll(probe, deadline, interval=0.02, describe=str)
    except WaitTimeout as exc:
        raise SandboxUnavailable(f"{exc}; sshd log: {_tail(sandbox.sshd_log)}") from None


def _stop(server: _Server) -> None:
    """Kill the namespace's PID 1 (sshd): the kernel then kills everything else in the namespace."""
    process = server.unshare
    if process.poll() is None:
        children = Path(f"/proc/{process.pid}/task/{process.pid}/children")
        with contextlib.suppress(OSError):
            for pid in children.read_text().split():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()  # --kill-child takes the namespace down with it
            process.wait(timeout=10)
    server.log.close()


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def _new_host_keys() -> dict[str, PrivateKey]:
    return {
        "ed25519": ed25519.Ed25519PrivateKey.generate(),
        "ecdsa": ec.generate_private_key(ec.SECP256R1()),
        "rsa": rsa.generate_private_key(public_exponent=65537, key_size=2048),
    }


def _public_line(key: PrivateKey) -> str:
    raw = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return raw.decode()


# --- the pytest fixture ---------------------------------------------------------------------------------------


def ensure_rootfs() -> Path:
    """The built root tarball, building it first if needed. Raises SandboxUnavailable with the reason."""
    _require_root("the waagent sandbox")
    probe = subprocess.run(
        ["unshare", "--mount", "--uts", "--ipc", "--pid", "--fork", "true"], capture_output=True, text=True, check=False
    )
    if probe.returncode != 0:
        raise SandboxUnavailable(f"namespaces are not permitted here (unshare: {probe.stderr.strip()})")
    if TARBALL.exists():
        return TARBALL
    if shutil.which("debootstrap") is None:
        installed = subprocess.run(["sh", str(INSTALL_PREREQS)], capture_output=True, text=True, check=False)
        if installed.returncode != 0:
            raise SandboxUnavailable(f"debootstrap is missing and could not be installed: {installed.stderr[-500:]}")
    return build(say=lambda line: print(f"sandbox: {line}", file=sys.stderr))


@pytest.fixture(scope="session")
def sandbox_rootfs() -> Path:
    """The root tarball; skips (or, under CI, fails) with the reason when the sandbox cannot exist here."""
    try:
        return ensure_rootfs()
    except SandboxUnavailable as exc:
        # CI runs as root with the prerequisites installed: there a missing sandbox is a failure, not a skip.
        if os.environ.get("CI"):
            pytest.fail(f"waagent sandbox unavailable: {exc}")
        pytest.skip(f"waagent sandbox unavailable: {exc}")


@pytest.fixture(name="sandbox")
def sandbox_fixture(sandbox_rootfs: Path, tmp_path: Path) -> Iterator[Sandbox]:
    """A fresh, running sandbox per test."""
    with running_sandbox(tmp_path, sandbox_rootfs) as sandbox:
        yield sandbox


# --- helpers --------------------------------------------------------------------------------------------------


def _require_root(what: str) -> None:
    if os.geteuid() != 0:
        raise SandboxUnavailable(f"{what} needs root (chroot, namespaces, useradd inside the root)")


def _run(
    argv: list[str],
    *,
    cwd: Path | None = None,
    input: str | None = None,
    timeout: float,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, cwd=cwd, input=input, capture_output=True, text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        output = (result.stderr or result.stdout)[-2000:]
        raise SandboxUnavailable(f"{' '.join(argv[:4])}… failed with exit code {result.returncode}: {output}")
    return result


def _remove_tree(path: Path) -> None:
    """Delete a root tree, refusing if anything is still mounted below it (never delete through a mount)."""
    if not path.exists():
        return
    prefix = str(path.resolve()) + "/"
    mounts = Path("/proc/self/mounts").read_text().splitlines()
    mounted = [m.split()[1] for m in mounts if (m.split()[1] + "/").startswith(prefix)]
    if mounted:
        raise SandboxUnavailable(f"refusing to delete {path}: still mounted below it: {', '.join(mounted)}")
    shutil.rmtree(path)


def _tail(path: Path, lines: int = 10) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fakes.sandbox", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    build_cmd = sub.add_parser("build", help="build the cached root tarball (needs root and the package mirror)")
    build_cmd.add_argument("--force", action="store_true", help="rebuild even if the tarball exists")
    sub.add_parser("path", help="print where the tarball is (or would be)")
    args = parser.parse_args(argv)
    if args.command == "path":
        print(TARBALL)
        return 0
    started = time.monotonic()
    try:
        tarball = build(force=args.force, say=lambda line: print(f"sandbox: {line}", flush=True))
    except SandboxUnavailable as exc:
        print(f"sandbox: cannot build: {exc}", file=sys.stderr)
        return 1
    size = tarball.stat().st_size / 2**20
    print(f"sandbox: ready: {tarball} ({size:.0f} MiB) after {time.monotonic() - started:.0f}s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
