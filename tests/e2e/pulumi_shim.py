"""`pulumi` for commands that run it themselves (`python -m commands.recover`), under the pinned CLI of the tests.

The pinned build has no Python language host (tools/engine/program.py says why): the harness serves the program
itself and passes `--client`. A command that runs `pulumi up` on its own cannot do that, so `install(workspace)`
puts this shim first on its PATH as `pulumi`: for the commands that run the program it serves it exactly as
`Workspace.pulumi(..., program=True)` does, and hands every command to the real CLI unchanged otherwise.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
from pathlib import Path

from tests.e2e.harness import PROGRAM_SERVER, PROGRAM_START_TIMEOUT, ROOT, Workspace

REAL = "IMAGE_GALLERY_E2E_PULUMI"
PROJECT = "IMAGE_GALLERY_E2E_PROJECT"
RUNS_PROGRAM = frozenset({"up", "preview", "refresh", "destroy"})


def install(ws: Workspace) -> dict[str, str]:
    """The environment under which `pulumi` is this shim for `ws`: its env, the shim first on PATH."""
    directory = ws.root / "shim"
    directory.mkdir(exist_ok=True)
    launcher = directory / "pulumi"
    launcher.write_text(f'#!/bin/sh\nexec "{ws.python}" -m tests.e2e.pulumi_shim "$@"\n')
    launcher.chmod(0o755)
    env = ws.env
    env.update(
        {
            REAL: str(ws.bin_dir / "pulumi"),
            PROJECT: str(ws.project),
            "PATH": f"{directory}{os.pathsep}{env['PATH']}",
            "PYTHONPATH": str(ROOT),
        }
    )
    return env


def main(argv: list[str]) -> int:
    real, project = os.environ[REAL], os.environ[PROJECT]
    if not argv or argv[0] not in RUNS_PROGRAM:
        os.execv(real, [real, *argv])
    server = subprocess.Popen(
        [sys.executable, "-u", str(PROGRAM_SERVER), project],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=(Path(project).parent / "logs" / "program.log").open("a"),
        text=True,
    )
    try:
        assert server.stdout is not None
        ready, _, _ = select.select([server.stdout], [], [], PROGRAM_START_TIMEOUT)
        port = server.stdout.readline().strip() if ready else ""
        if not port.isdigit():
            print(f"pulumi shim: the program server did not start (exit {server.poll()})", file=sys.stderr)
            return 1
        return subprocess.run([real, *argv, f"--client=127.0.0.1:{port}", "--exec-kind=inline"], check=False).returncode
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
