"""`make demo` keeps working: the demo runs to the end with the scripted Linux guest (the sandbox path is what the
other e2e tests run), and says what stood in for what."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.harness import ROOT

pytestmark = pytest.mark.e2e


def test_demo_runs_pulumi_up_to_the_end(engine: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PULUMI_", "ARM_", "AZURE_"))}
    result = subprocess.run(
        [sys.executable, "-m", "tools.demo", "--linux-guest", "scripted"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    assert "scripted SSH stand-in" in output
    # Stack, ImageGallery, gallery, 2 definitions, role, 2 CapturedImageVersions, 2 x 2 steps, 2 versions, 1 host.
    assert re.search(r"^Resources:\n\s+\+ 15 created$", output, re.MULTILINE), output[-3000:]
    assert "ubuntu-build-01: power state deallocated, generalized True" in output
    assert "win-build-01: power state deallocated, generalized True" in output
    assert "gallery image versions created: 2" in output
