"""The program process stays light: running `__main__.py` (config, components) must not import the step code's
heavy dependencies, which only the dynamic provider host needs. Checked in a fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("azure.mgmt", "azure.identity", "azure.core", "paramiko", "winrm", "cryptography", "requests")

SCRIPT = """
import json, sys
import plan
from tests.unit import stack_configs as sc
values, secrets = sc.as_engine_config(sc.base())
result = plan.run_program("image-gallery", "unit", values, secrets)
assert result.resources, "the program registered nothing"
print(json.dumps(sorted(m for m in sys.modules if m.startswith(tuple(sys.argv[1:])))))
"""


def test_the_program_imports_no_step_dependencies() -> None:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, *HEAVY], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True
    )
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert loaded == [], f"the program process imported {loaded}"
