"""Kill a `pulumi up` the way a cancelled CI job does, and recover it with the one documented command."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable

from tests.e2e import pulumi_shim
from tests.e2e.harness import ROOT, Result, Workspace

KILL_WAIT = 180.0
RECOVER_TIMEOUT = 600.0


def kill_up_when(ws: Workspace, ready: Callable[[], bool], what: str) -> list[str]:
    """Start `pulumi up --yes --skip-preview`, and once `ready()` holds, SIGKILL the CLI and every plugin it started
    (each runs in a process group of its own): what a cancelled CI job does to its tree. Returns the command lines
    of the strays killed."""
    proc, cleanup = ws.start("up", "--yes", "--skip-preview")
    with cleanup:
        deadline = time.monotonic() + KILL_WAIT
        while not ready() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert ready(), f"{what} did not happen within {KILL_WAIT:.0f}s (pulumi up exit {proc.poll()})"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        return ws.kill_strays()


def recover(ws: Workspace, *args: str) -> Result:
    """`python -m commands.recover STACK` (what `make recover STACK=…` runs) in the workspace's project, with `pulumi`
    on PATH as a user has it (tests/e2e/pulumi_shim.py)."""
    argv = [ws.python, "-m", "commands.recover", ws.stack, "--cwd", str(ws.project), *args]
    started = time.monotonic()
    done = subprocess.run(
        argv, cwd=ROOT, env=pulumi_shim.install(ws), capture_output=True, text=True, timeout=RECOVER_TIMEOUT
    )
    result = Result(["recover", *args], done.returncode, done.stdout, done.stderr, time.monotonic() - started)
    n = len(list(ws.logs.glob("recover-*.log")))
    (ws.logs / f"recover-{n:02d}.log").write_text(
        f"$ {' '.join(argv)}\n# exit {done.returncode}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}\n"
    )
    return result


def lock_files(ws: Workspace) -> list[str]:
    """The stack's lock files in the workspace's file backend."""
    return sorted(p.name for p in (ws.backend / ".pulumi" / "locks").glob(f"**/{ws.stack}/*.json"))
