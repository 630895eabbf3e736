"""Kill a `pulumi up` the way a cancelled CI job does, at a point the fakes hold it at, and recover it with the one
documented command.

A kill point is a `Hold`: the fakes stop the run there (a request the fake ARM holds, a sysprep that does not end,
waagent waiting in the sandbox) and say when it has arrived, so the kill lands there for certain, never after a
guessed sleep; `release` lets the guest or Azure go on, as they do after the client is gone.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from tests.e2e import pulumi_shim
from tests.e2e.harness import ROOT, Result, Workspace
from tests.fakes.arm import Fault
from tests.fakes.wsman import GuestModel, SysprepBehaviour

KILL_WAIT = 180.0
RECOVER_TIMEOUT = 600.0


class Hold(Protocol):
    """A point of a run the fakes hold it at."""

    @property
    def what(self) -> str: ...

    def reached(self) -> bool: ...

    def release(self) -> None: ...


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


def kill_up_at(ws: Workspace, hold: Hold, release: bool = True) -> list[str]:
    """Kill `pulumi up` once the fakes hold it at `hold`, then (`release`) let the guest and Azure go on; the
    strays killed."""
    try:
        return kill_up_when(ws, hold.reached, hold.what)
    finally:
        if release:
            hold.release()


def recover(ws: Workspace, *args: str, on_line: Callable[[str], None] | None = None) -> Result:
    """`python -m commands.recover STACK` (what `make recover STACK=…` runs) in the workspace's project, with `pulumi`
    on PATH as a user has it (tests/e2e/pulumi_shim.py). `on_line` sees each line of its output as it comes."""
    argv = [ws.python, "-m", "commands.recover", ws.stack, "--cwd", str(ws.project), *args]
    started = time.monotonic()
    with subprocess.Popen(
        argv,
        cwd=ROOT,
        env=pulumi_shim.install(ws),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        watchdog = threading.Timer(RECOVER_TIMEOUT, proc.kill)
        watchdog.start()
        errors: list[str] = []
        reader = threading.Thread(target=lambda: errors.append(proc.stderr.read() if proc.stderr else ""))
        reader.start()
        lines: list[str] = []
        try:
            for line in proc.stdout:
                lines.append(line)
                if on_line is not None:
                    on_line(line)
        finally:
            returncode = proc.wait()
            reader.join()
            watchdog.cancel()
    stdout, stderr = "".join(lines), "".join(errors)
    result = Result(["recover", *args], returncode, stdout, stderr, time.monotonic() - started)
    n = len(list(ws.logs.glob("recover-*.log")))
    (ws.logs / f"recover-{n:02d}.log").write_text(
        f"$ {' '.join(argv)}\n# exit {returncode} after {result.seconds:.1f}s\n--- stdout\n{stdout}\n"
        f"--- stderr\n{stderr}\n"
    )
    assert result.seconds < RECOVER_TIMEOUT, f"recover did not end within {RECOVER_TIMEOUT:.0f}s:\n{result.output}"
    return result


def lock_files(ws: Workspace) -> list[str]:
    """The stack's lock files in the workspace's file backend."""
    return sorted(p.name for p in (ws.backend / ".pulumi" / "locks").glob(f"**/{ws.stack}/*.json"))


# --- holds ----------------------------------------------------------------------------------------------------


@dataclass
class ArmHold:
    """A request the fake ARM holds (FakeArm.hold): released, ARM answers it as usual, to a client long gone."""

    fault: Fault
    what: str
    then: Callable[[], None] = lambda: None
    """What Azure does on its own once released (e.g. finish an operation nobody polls any more)."""

    def reached(self) -> bool:
        return self.fault.reached.is_set()

    def release(self) -> None:
        assert self.fault.release is not None, "not a holding fault (FakeArm.hold)"
        self.fault.release.set()
        self.then()


@dataclass
class SysprepHold:
    """Sysprep launched in the fake WinRM guest and still running until released (then it ends at the guest's next
    look, its runtime being over)."""

    guest: GuestModel
    what: str = "sysprep"

    def __post_init__(self) -> None:
        self.guest.sysprep = SysprepBehaviour(outcome="hang", undeployable_after=0.5, runtime=1.0)

    def reached(self) -> bool:
        return self.guest.sysprep_launch_count > 0

    def release(self) -> None:
        with self.guest.lock:
            self.guest.sysprep.outcome = "success"


WAAGENT = "usr/sbin/waagent"
WAAGENT_HOLD = """#!/bin/sh
# tests/e2e/killing.py: the deprovision has reached waagent; it waits here until the test lets it go (bounded).
echo "$$ $*" >> {dir}/launches
touch {dir}/reached
i=0
while [ ! -e {dir}/release ] && [ "$i" -lt {ticks} ]; do sleep 0.1; i=$((i + 1)); done
exec /{real} "$@"
"""


@dataclass
class WaagentHold:
    """waagent in the sandbox guest, wrapped: deprovision.sh reaches it, then it waits to be released before it
    deprovisions. Every launch is logged in the guest (`launches`)."""

    root: Path
    """The sandbox's root directory."""
    what: str = "the Linux deprovision (waagent)"

    def __post_init__(self) -> None:
        self.dir = self.root / "opt" / "kill-point"
        self.dir.mkdir(parents=True)
        real = f"{WAAGENT}.real"
        (self.root / WAAGENT).rename(self.root / real)
        script = self.root / WAAGENT
        script.write_text(WAAGENT_HOLD.format(dir="/opt/kill-point", ticks=int(KILL_WAIT * 10), real=real))
        script.chmod(0o755)

    def reached(self) -> bool:
        return (self.dir / "reached").exists()

    def release(self) -> None:
        (self.dir / "release").touch()

    def launches(self) -> list[str]:
        """`<pid> <arguments>` of each waagent started in the guest."""
        log = self.dir / "launches"
        return log.read_text().splitlines() if log.exists() else []
