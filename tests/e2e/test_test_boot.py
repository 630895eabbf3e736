"""The test boot under the real Pulumi CLI: a definition with `validate: true` gets a test boot of its new version after
the version exists (a throwaway VM in the first target region, on the configured subnet, no public IP, deleted
afterwards), served by the chain's host; the Azure CLI's end-of-life defaults are pinned at the first creation, so a
second `up` changes nothing; the generated administrator password is nowhere in the state."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import Workspace
from tests.e2e.world import World, make_world, new_workspace

pytestmark = pytest.mark.e2e

BOOT_TYPE = "pulumi-python:dynamic/validation:VersionTestBoot"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with make_world(tmp_path_factory.mktemp("world")) as w:
        yield w


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory, engine: Path, world: World) -> Workspace:
    subnet = world.arm.add_vnet("vnet-validate", "rg-network", location="westeurope")
    ws = new_workspace(tmp_path_factory.mktemp("ws"), engine, world, windows=False)

    def validate(config: dict[str, Any]) -> None:
        image = config["image-gallery:images"][0]
        image["validate"] = True
        image["validation"] = {"resourceGroup": "rg-validate", "subnetId": subnet, "timeoutMinutes": 1}

    ws.edit_config(validate)
    return ws


def test_up_boots_the_new_version_and_leaves_nothing(ws: Workspace, world: World) -> None:
    up = ws.pulumi("up", "--yes", "--json", program=True).expect_ok()
    creates = [s["urn"].split("::")[-1] for s in up.events() if s["op"] == "create"]
    assert "ubuntu-2204-1.0.0-test-boot" in creates
    assert creates.index("ubuntu-2204-1.0.0-test-boot") > creates.index("ubuntu-2204-1.0.0"), "after the version"
    vm_puts = world.arm.bodies("PUT", "/virtualMachines/")
    assert len(vm_puts) == 1 and vm_puts[0]["location"] == "westeurope"
    assert not world.arm.created_vms() and not world.arm.nics and not world.arm.disks, "nothing is left behind"

    state = json.dumps(ws.export())
    assert vm_puts[0]["properties"]["osProfile"]["adminPassword"] not in state, "the password is not in the state"
    boot = next(r for r in ws.export()["deployment"]["resources"] if r["type"] == BOOT_TYPE)
    assert boot["outputs"]["agent_status"] == "Ready"
    version = next(
        r for r in ws.export()["deployment"]["resources"] if r["type"] == "azure-native:compute:GalleryImageVersion"
    )
    assert version["inputs"]["safetyProfile"]["blockDeletionBeforeEndOfLife"] is True
    assert version["inputs"]["publishingProfile"]["endOfLifeDate"].endswith("T00:00:00Z")


def test_the_default_end_of_life_stays_as_first_created(ws: Workspace, world: World, tmp_path: Path) -> None:
    # As if the version had been created months ago: the program's default (today + 6 months) now differs from the
    # state's, and must not cause a diff (nor a second boot).
    exported = ws.export()
    for r in exported["deployment"]["resources"]:
        if r["type"] == "azure-native:compute:GalleryImageVersion":
            for side in ("inputs", "outputs"):
                r[side]["publishingProfile"]["endOfLifeDate"] = "2026-12-01T00:00:00Z"
    (tmp_path / "state.json").write_text(json.dumps(exported))
    ws.pulumi("stack", "import", "--file", str(tmp_path / "state.json"), check=True)
    world.arm.requests.clear()
    ws.pulumi("up", "--yes", "--expect-no-changes", program=True).expect_ok()
    assert world.non_get() == [], "no second boot, no diff from the end-of-life default"
    version = next(
        r for r in ws.export()["deployment"]["resources"] if r["type"] == "azure-native:compute:GalleryImageVersion"
    )
    assert version["inputs"]["publishingProfile"]["endOfLifeDate"] == "2026-12-01T00:00:00Z"
