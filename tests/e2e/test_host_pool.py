"""The chains spread over several dynamic provider hosts (components/generalization_hosts.py), under the real CLI.

- A stack deployed by the release before host pools (every dynamic resource on the default `pulumi-python`
  provider) is upgraded: no chain is replaced or re-run, no request is written to ARM.
- Eight chains run side by side: each host serves at most three, so a Check never waits behind Creates
  (measured by `make bench`, asserted here only as "the chains overlapped", never as a time).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.world import World, make_world, new_workspace

pytestmark = pytest.mark.e2e

BEFORE_HOST_POOLS = "e123e8f6e31ab29c689e990b5b189121849b960f"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with make_world(tmp_path / "world") as w:
        yield w


def test_upgrading_a_stack_to_host_pools_replaces_nothing(tmp_path: Path, engine: Path, world: World) -> None:
    ws = new_workspace(tmp_path / "ws", engine, world, source_rev=BEFORE_HOST_POOLS)
    ws.pulumi("up", "--yes", "--skip-preview", program=True).expect_ok()
    world.arm.requests.clear()
    ws.copy_project()  # the new release
    # The dynamic host answers DiffConfig with "unknown"; the engine then keeps each resource ("same") and only
    # records its new provider: nothing is replaced, nothing re-runs.
    up = ws.pulumi("up", "--yes", "--json", program=True).expect_ok()
    ops = {s["urn"].split("::")[-1]: s["op"] for s in up.events()}
    assert ops.pop("generalization-host-0") == "create"
    assert set(ops.values()) == {"same"}, ops
    assert {"ubuntu-2204-1.0.0-guest", "ubuntu-2204-1.0.0-vm", "win2022-1.0.0-guest", "win2022-1.0.0-vm"} <= set(ops)
    assert world.non_get() == []
    assert world.guest.sysprep_launch_count == 1
    resources = ws.export()["deployment"]["resources"]
    chain = [r for r in resources if r["type"].startswith("pulumi-python:dynamic/generalization:")]
    assert len(chain) == 4
    assert all("::generalization-host-0::" in r["provider"] for r in chain), [r["provider"] for r in chain]
    assert ws.pulumi("preview", "--expect-no-changes", program=True).returncode == 0
