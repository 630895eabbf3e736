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

from tests.e2e.fleet import fleet_workspace, windows_fleet
from tests.e2e.world import World, make_world, new_workspace

pytestmark = pytest.mark.e2e

BEFORE_HOST_POOLS = "e123e8f6e31ab29c689e990b5b189121849b960f"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with make_world(tmp_path / "world") as w:
        yield w


def test_upgrading_a_stack_to_host_pools_replaces_nothing(tmp_path: Path, engine: Path, world: World) -> None:
    # The old release runs against today's fakes: its guest scripts differ from today's, so its VMs are already
    # generalized (Azure says so) and no guest is contacted; the ARM half and the versions run as they did.
    for vm in (world.linux_vm, world.windows_vm):
        vm.power_state, vm.generalized = "deallocated", True
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
    assert world.guest.requests == []
    resources = ws.export()["deployment"]["resources"]
    chain = [r for r in resources if r["type"].startswith("pulumi-python:dynamic/generalization:")]
    assert len(chain) == 4
    assert all("::generalization-host-0::" in r["provider"] for r in chain), [r["provider"] for r in chain]
    assert ws.pulumi("preview", "--expect-no-changes", program=True).returncode == 0


def most_at_once(intervals: list[tuple[float, float]]) -> int:
    """The largest number of intervals that overlap at one instant."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = best = 0
    for _, step in events:
        running += step
        best = max(best, running)
    return best


def test_eight_chains_run_side_by_side(tmp_path: Path, engine: Path) -> None:
    sysprep_seconds = 6.0
    with windows_fleet(tmp_path / "fleet", size=8, sysprep_seconds=sysprep_seconds, deallocate_polls=2) as fleet:
        ws = fleet_workspace(tmp_path / "ws", engine, fleet)
        ws.pulumi("up", "--yes", "--skip-preview", program=True).expect_ok()
        assert all(g.sysprep_launch_count == 1 for g in fleet.guests)
        running = [(g.launches[0].at, g.launches[0].at + sysprep_seconds) for g in fleet.guests]
        # One dynamic provider host runs at most 4 calls at once: more syspreps than that running together means
        # the chains really were spread over several hosts (a statement about overlap, not about time).
        assert most_at_once(running) > 4, sorted(start - min(s for s, _ in running) for start, _ in running)
        assert all(vm.generalized and vm.power_state == "deallocated" for vm in fleet.vms)
        hosts = {
            r["urn"] for r in ws.export()["deployment"]["resources"] if r["type"] == "pulumi:providers:pulumi-python"
        }
        assert len(hosts) == 2
