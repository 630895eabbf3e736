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


GC_SCRIPT = """
import gc, json
import plan
from tests.unit import stack_configs as sc
values, secrets = sc.as_engine_config(sc.base())
seen = {"before": gc.isenabled()}
plan.run_program("image-gallery", "unit", values, secrets)
seen["restored"] = gc.isenabled()
plan.run_program("image-gallery", "unit", values, secrets, restore_gc=False)
seen["one_shot"] = gc.isenabled()
print(json.dumps(seen))
"""


def test_the_program_turns_the_cyclic_gc_off_and_run_program_gives_it_back() -> None:
    """The program process keeps nearly all it allocates, so __main__.py turns the cyclic GC off (make bench has
    the figures). `plan.run_program` runs the program in its caller's process: the caller gets its GC back,
    unless it is a one-shot process that exits after the plan (`restore_gc=False`)."""
    out = subprocess.run(
        [sys.executable, "-c", GC_SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"before": True, "restored": True, "one_shot": False}
