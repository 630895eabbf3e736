"""`sourceVms.<key>.safetySnapshot` and `safetySnapshotRetentionDays` (config.source_vms): on by default, kept 7
days, their bounds, and what the chain's guest half receives for them (components.captured_image_version)."""

from __future__ import annotations

import pytest

from hooks.safety_snapshots import DEFAULT_RETENTION_DAYS
from tests.unit.config.one_change import assert_rule, config_with, load

KEY = "sourceVms.linux-build"


def test_on_by_default_and_kept_a_week() -> None:
    source = load(config_with({})).source_vms["linux-build"]
    assert source.safety_snapshot is True
    assert source.safety_snapshot_retention_days == DEFAULT_RETENTION_DAYS == 7


def test_turned_off_and_retention_set() -> None:
    spec = load(config_with({f"{KEY}.safetySnapshot": False, f"{KEY}.safetySnapshotRetentionDays": 0}))
    source = spec.source_vms["linux-build"]
    assert source.safety_snapshot is False and source.safety_snapshot_retention_days == 0


@pytest.mark.parametrize(
    ("changes", "path", "fragment"),
    [
        ({f"{KEY}.safetySnapshot": "off"}, f"{KEY}.safetySnapshot", "must be true or false"),
        ({f"{KEY}.safetySnapshotRetentionDays": -1}, f"{KEY}.safetySnapshotRetentionDays", "out of range 0-3650"),
        ({f"{KEY}.safetySnapshotRetentionDays": 3651}, f"{KEY}.safetySnapshotRetentionDays", "out of range 0-3650"),
        ({f"{KEY}.safetySnapshotRetentionDays": "week"}, f"{KEY}.safetySnapshotRetentionDays", "must be an integer"),
    ],
)
def test_bad_values_are_reported_at_their_key(changes: dict[str, object], path: str, fragment: str) -> None:
    assert_rule(changes, path, fragment)


def test_the_guest_half_receives_the_plan_and_make_plan_shows_it() -> None:
    from commands import plan
    from tests.unit import stack_configs as sc
    from tests.unit.test_components import GUEST_T, one, run

    raw = sc.base()
    raw["sourceVms"]["win-src"]["safetySnapshot"] = False
    raw["sourceVms"]["linux-src"]["safetySnapshotRetentionDays"] = 0
    resources = run(raw)
    linux = one(resources, GUEST_T, "ubuntu-1.2.3-guest")
    assert linux.inputs["safety_snapshot"] == {"stack": "unit", "version": "ubuntu/1.2.3", "retention_days": 0}
    windows = one(resources, GUEST_T, "win2022-0.0.1-guest")
    assert windows.inputs.get("safety_snapshot") is None
    described = {e["name"]: e for e in plan.describe(resources)}
    shown = described["ubuntu-1.2.3-guest"]["safetySnapshot"]
    assert sc.vm_id("linux-src") in shown and "named <disk>-safety-ubuntu-1.2.3" in shown
    assert "deleted with the version's chain" in shown
    assert described["win2022-0.0.1-guest"]["safetySnapshot"].startswith(
        "none: sourceVms.<key>.safetySnapshot is false"
    )
    assert any("safety snapshot" in step for step in described["ubuntu-1.2.3-guest"]["steps"])
