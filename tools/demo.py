"""`make demo`: a real `pulumi up` of a demo stack against local stand-ins of Azure, to the end, in a few minutes.

What runs for real: the Pulumi CLI (the one on PATH when its version fits, else the pinned build), the project's
program, the dynamic provider host and the product's SSH/WinRM/ARM code. What stands in for Azure: the fake ARM
(also behind an azure-native test plugin), the Linux guest (the real sshd + the real waagent in a throwaway
root as root; without root a scripted SSH stand-in, and the demo says so) and a fake Windows guest over WinRM.
Nothing leaves this machine; the workspace (stack file, state, logs) is kept for a look afterwards.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import trustme

from tests.e2e.harness import ROOT, EngineUnavailable, Workspace, engine_bin
from tests.e2e.world import World, stack_config
from tests.fakes.arm import FakeArm
from tests.fakes.azure_native_provider import AZURE_NATIVE_VERSION, install_plugin
from tests.fakes.sandbox import SandboxUnavailable, ensure_rootfs, running_sandbox
from tests.fakes.ssh_guest import ScriptedLinuxGuest
from tests.fakes.wsman import FakeWsman, GuestModel, SysprepBehaviour

PINNED = re.search(r"github.com/pulumi/pulumi/pkg/v3 v(\S+)", (ROOT / "tools/engine/go.mod").read_text())
PINNED_VERSION = tuple(int(p) for p in PINNED.group(1).split(".")) if PINNED else (0, 0, 0)


def say(line: str) -> None:
    print(f"demo: {line}", flush=True)


def cli_on_path() -> Path | None:
    """The bin directory of a `pulumi` on PATH whose version is the pinned one or newer (same major)."""
    found = shutil.which("pulumi")
    if not found:
        return None
    try:
        out = subprocess.run([found, "version"], capture_output=True, text=True, timeout=30, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.match(r"v?(\d+)\.(\d+)\.(\d+)", out.strip())
    if not m:
        return None
    version = tuple(int(p) for p in m.groups())
    if version[0] != PINNED_VERSION[0] or version < PINNED_VERSION:
        say(f"the pulumi on PATH is {out.strip()}, older than the tested {PINNED.group(1) if PINNED else '?'}")
        return None
    bin_dir = Path(found).resolve().parent
    if not (bin_dir / "pulumi-resource-pulumi-python").exists():
        return None
    return bin_dir


@contextlib.contextmanager
def linux_guest(tmp: Path, scripted: bool) -> Iterator[object]:
    if scripted:
        say("Linux guest: the scripted SSH stand-in (asked for), not the real waagent")
    elif os.geteuid() == 0:
        try:
            tarball = ensure_rootfs()
        except SandboxUnavailable as exc:
            say(f"the waagent sandbox is unavailable ({exc}); using the scripted SSH stand-in")
        else:
            say("Linux guest: the real OpenSSH sshd and the real Debian waagent in a throwaway root")
            with running_sandbox(tmp / "sandbox", tarball) as sandbox:
                yield sandbox
            return
    else:
        say("not root: the Linux guest is a scripted SSH stand-in, not the real waagent (run as root for that)")
    with ScriptedLinuxGuest() as guest:
        yield guest


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--linux-guest",
        choices=("auto", "sandbox", "scripted"),
        default=os.environ.get("LINUX_GUEST") or "auto",
        help="auto: the waagent sandbox as root, else the scripted stand-in (env LINUX_GUEST)",
    )
    args = parser.parse_args(argv)
    if args.linux_guest == "sandbox" and os.geteuid() != 0:
        say("--linux-guest sandbox needs root (chroot and namespaces)")
        return 2
    started = time.monotonic()
    bin_dir = cli_on_path()
    if bin_dir is not None:
        say(f"using the Pulumi CLI on PATH ({bin_dir})")
    else:
        say("building (or reusing) the pinned Pulumi CLI")
        try:
            bin_dir = engine_bin()
        except EngineUnavailable as exc:
            say(f"cannot build the Pulumi CLI: {exc}")
            return 1
    own_host = not (bin_dir / "pulumi-language-python").exists()
    work = Path(tempfile.mkdtemp(prefix="image-gallery-demo-"))
    arm = FakeArm(work / "arm").start()
    guest = GuestModel()
    guest.sysprep = SysprepBehaviour(undeployable_after=1.0, runtime=4.0)
    wsman = FakeWsman(guest, trustme.CA()).start()
    try:
        with linux_guest(work, scripted=args.linux_guest == "scripted") as linux:
            world = World(
                arm,
                linux,  # type: ignore[arg-type]
                wsman,
                guest,
                arm.add_vm("ubuntu-build-01", "rg-build", os_type="Linux", power_state="running"),
                arm.add_vm("win-build-01", "rg-build", os_type="Windows", power_state="running"),
            )
            ws = Workspace(work / "workspace", bin_dir, env_extra=world.plugin_env(), stack="demo")
            ws.own_language_host = own_host
            install_plugin(ws.home, ws.python, AZURE_NATIVE_VERSION)
            ws.login()
            ws.init_stack(stack_config(world))
            ws.set_secret("sourceVms.ubuntu-build.ssh.privateKey", linux.private_key)  # type: ignore[attr-defined]
            ws.set_secret("sourceVms.win-build.winrm.password", guest.password)
            say(f"stack 'demo' in {ws.project} (state in {ws.backend}); running: pulumi up --yes")
            code = ws.pulumi("up", "--yes", program=True, stream=True).returncode
            if code != 0:
                say(f"pulumi up failed with exit code {code}; logs in {ws.logs}")
                return code
            for vm in (world.linux_vm, world.windows_vm):
                say(f"{vm.name}: power state {vm.power_state}, generalized {vm.generalized}")
            versions = [p for m, p in world.non_get() if m == "PUT" and "/versions/" in p]
            say(f"gallery image versions created: {len(versions)}")
            say(f"done in {time.monotonic() - started:.0f}s; look around in {work}")
            return 0
    finally:
        wsman.stop()
        arm.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
