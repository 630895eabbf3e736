"""The program process stays light: running `__main__.py` (config, components) must not import the step code's
heavy dependencies, which only the dynamic provider host needs; nor must the offline plan. Checked in a fresh
interpreter."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("azure.mgmt", "azure.identity", "azure.core", "paramiko", "winrm", "cryptography", "requests")

SCRIPT = """
import json, sys
from commands import plan
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
from commands import plan
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


PLAN_SCRIPT = """
import json, sys
from pathlib import Path
from commands import plan
code = plan.main([sys.argv[1], "--format", "json"], root=Path(sys.argv[2]))
print(json.dumps({"code": code, "loaded": sorted(m for m in sys.modules if m.startswith(tuple(sys.argv[3:])))}))
"""
SUBNET = (
    "/subscriptions/81bfe33b-d336-4213-9088-9360410b0807/resourceGroups/rg-net/providers/Microsoft.Network"
    "/virtualNetworks/vnet-build/subnets/validate"
)


def every_kind_of_resource() -> dict[str, Any]:
    """The dev stack file, plus every resource kind the plan describes: a test boot, a Specialized definition
    (the ARM half runs the checks), a version promoted from another stack, Partner Center's service principals."""
    doc = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())
    cfg = doc["config"]
    cfg["image-gallery:publisherAccess"] = "partnerCenterServicePrincipals"
    linux, windows = cfg["image-gallery:images"]
    specialized = copy.deepcopy(windows)
    specialized.update(name="win2022-specialized", osState="Specialized")
    specialized["identifier"] = {**windows["identifier"], "sku": "2022-specialized"}
    specialized["versions"] = [{**windows["versions"][0], "sourceVm": "win2022-specialized-build"}]
    promoted = copy.deepcopy(linux)
    promoted.update(name="ubuntu-promoted")
    promoted["identifier"] = {**linux["identifier"], "sku": "22_04-promoted"}
    promoted["versions"] = [
        {
            "version": "1.0.0",
            "sourceVersion": {"stack": "dev", "version": "ubuntu-2204-hardened/1.0.0"},
            "targetRegions": [{"name": "westeurope"}],
        }
    ]
    linux.update(validate=True, validation={"resourceGroup": "rg-validate", "subnetId": SUBNET})
    cfg["image-gallery:images"] += [specialized, promoted]
    vms = cfg["image-gallery:sourceVms"]
    source = copy.deepcopy(vms["win2022-build"])
    source["id"] = source["id"].replace("win2022-build-01", "win2022-specialized-01")
    source["winrm"]["host"] = "10.20.0.6"
    vms["win2022-specialized-build"] = source
    return doc


def test_the_offline_plan_imports_no_azure_sdk_and_no_guest_transport(tmp_path: Path) -> None:
    """`make plan` needs the step texts, not the code that runs the steps: a cold plan of a stack with every
    resource kind imports no Azure SDK, no SSH and no WinRM library (they cost a second of a cold `make plan`)."""
    (tmp_path / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
    (tmp_path / "Pulumi.every.yaml").write_text(yaml.safe_dump(every_kind_of_resource(), sort_keys=False))
    out = subprocess.run(
        [sys.executable, "-c", PLAN_SCRIPT, "every", str(tmp_path), *HEAVY],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    lines = out.stdout.strip().splitlines()
    result = json.loads(lines[-1])
    assert result["code"] == 0, out.stderr
    described = json.loads("\n".join(lines[:-1]))["resources"]
    kinds = {e["type"].rsplit(":", 1)[-1] for e in described if e.get("steps") or e.get("previewChecks")}
    expected = {"GuestGeneralization", "VmGeneralization", "VersionTestBoot", "VersionPromotion"}
    assert expected | {"PartnerCenterServicePrincipal", "ProviderRegistration"} <= kinds, kinds
    assert result["loaded"] == [], f"the offline plan imported {result['loaded']}"
