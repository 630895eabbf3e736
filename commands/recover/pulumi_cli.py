"""The Pulumi CLI as recovery drives it: `pulumi` commands on one stack, and its state exported and imported."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from commands.recover.errors import RecoverError

PULUMI_TIMEOUT = 3 * 3600.0
"""Bound of one `pulumi` command: the longest `pulumi up` the up workflow allows (360 minutes is its job's)."""


@dataclass(frozen=True)
class PulumiCli:
    """`pulumi` commands on one stack, in the project's directory."""

    stack: str
    cwd: Path
    executable: str = "pulumi"

    def run(
        self, *args: str, stream: bool = False, stack: bool = True, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        argv = [self.executable, *args, *(["--stack", self.stack] if stack else []), "--non-interactive"]
        try:
            done = subprocess.run(
                argv,
                cwd=self.cwd,
                capture_output=not stream,
                text=True,
                timeout=PULUMI_TIMEOUT,
                check=False,
            )
        except FileNotFoundError as exc:
            raise RecoverError(f"the Pulumi CLI ({self.executable}) is not on PATH: install it (v3.274.1)") from exc
        except subprocess.TimeoutExpired as exc:
            raise RecoverError(f"`pulumi {' '.join(args)}` did not end within {PULUMI_TIMEOUT / 3600:g} h") from exc
        if check and done.returncode != 0:
            tail = (done.stderr or done.stdout or "").strip()[-2000:]
            raise RecoverError(
                f"`pulumi {' '.join(args)}` failed (exit {done.returncode})" + (f": {tail}" if tail else "")
            )
        return done

    def export(self) -> dict[str, Any]:
        state: dict[str, Any] = json.loads(self.run("stack", "export").stdout)
        return state

    def backend_url(self) -> str:
        return str(json.loads(self.run("whoami", "--json", stack=False).stdout).get("url") or "")

    def import_state(self, state: Mapping[str, Any]) -> None:
        with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="recover-", delete=False) as f:
            json.dump(state, f)
        try:
            self.run("stack", "import", "--file", f.name)
        finally:
            os.unlink(f.name)
