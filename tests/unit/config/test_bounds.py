"""Documented defaults and bounds of the stack config, pinned at their edges (README, Pulumi.yaml)."""

from __future__ import annotations

from typing import Any

import pytest

from hooks.targets import SshTarget, WinRmTarget
from tests.unit.config.test_loader import SSH, WINRM, assert_reported, base_config, config_with, load, problems_of


def test_connect_timeouts_default_to_ten_minutes() -> None:
    stack = load(base_config())
    linux, win = stack.source_vms["linux-build"], stack.source_vms["win-build"]
    assert linux.ssh is not None and win.winrm is not None
    assert linux.ssh.connect_timeout == 600.0
    assert win.winrm.connect_timeout == 600.0


@pytest.mark.parametrize("key", ["minMemoryGb", "maxMemoryGb"])
@pytest.mark.parametrize("value", [1, 16384])
def test_memory_bounds_are_accepted_at_their_edges(key: str, value: int) -> None:
    stack = load(config_with({"images[0].recommended": {key: value}}))
    attribute = {"minMemoryGb": "min_memory_gb", "maxMemoryGb": "max_memory_gb"}[key]
    assert getattr(stack.images[0], attribute) == value


@pytest.mark.parametrize("key", ["minMemoryGb", "maxMemoryGb"])
@pytest.mark.parametrize("value", [0, 16385])
def test_memory_bounds_are_refused_past_their_edges(key: str, value: int) -> None:
    found = problems_of(config_with({"images[0].recommended": {key: value}}))
    assert_reported(found, f"images[0].recommended.{key}", f"{value} is out of range 1-16384")


@pytest.mark.parametrize(("key", "value", "ok"), [("minVCpus", 1024, True), ("maxVCpus", 1025, False)])
def test_vcpu_bounds(key: str, value: int, ok: bool) -> None:
    raw = config_with({"images[0].recommended": {key: value}})
    if ok:
        load(raw)
    else:
        assert_reported(problems_of(raw), f"images[0].recommended.{key}", f"{value} is out of range 1-1024")


@pytest.mark.parametrize(("section", "value"), [(SSH, 0), (SSH, -1), (WINRM, 0)])
def test_connect_timeouts_must_be_positive(section: str, value: Any) -> None:
    found = problems_of(config_with({f"{section}.connectTimeoutMinutes": value}))
    assert any(p.startswith(f"{section}.connectTimeoutMinutes: ") for p in found), found


def test_equal_minimum_and_maximum_memory_is_accepted() -> None:
    stack = load(config_with({"images[0].recommended": {"minMemoryGb": 8, "maxMemoryGb": 8}}))
    assert (stack.images[0].min_memory_gb, stack.images[0].max_memory_gb) == (8, 8)
    assert SshTarget.connect_timeout == WinRmTarget.connect_timeout == 600.0
