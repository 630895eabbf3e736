"""Spreading the chains over dynamic provider hosts: the policy, and what the program registers under mocks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from commands import plan
from components.generalization_hosts import HOST_WORKERS, assignment, host_count
from tests.unit import stack_configs as sc

PROVIDER_T = "pulumi:providers:pulumi-python"


@pytest.mark.parametrize(
    ("chains", "configured", "expected"),
    [(0, 0, 0), (1, 0, 1), (4, 0, 1), (5, 0, 2), (8, 0, 2), (9, 0, 3), (40, 0, 10), (8, 1, 1), (8, 8, 8), (2, 5, 2)],
)
def test_host_count(chains: int, configured: int, expected: int) -> None:
    assert host_count(chains, configured) == expected


@pytest.mark.parametrize("chains", range(1, 50))
def test_default_policy_gives_every_chain_a_worker(chains: int) -> None:
    per_host = [assignment(chains).count(h) for h in range(host_count(chains))]
    assert max(per_host) <= HOST_WORKERS, "a host runs 4 calls at once, a chain one at a time"
    assert min(per_host) >= 1


@pytest.mark.parametrize("chains", range(1, 30))
def test_appending_a_chain_moves_no_existing_chain(chains: int) -> None:
    assert assignment(chains + 1)[:chains] == assignment(chains)
    assert assignment(chains + 1, 4)[:chains] == assignment(chains, 4)


def test_configured_hosts_take_chains_round_robin() -> None:
    assert assignment(5, 2) == [0, 1, 0, 1, 0]


def _with_versions(n: int, parallel_hosts: int | None = None) -> dict[str, Any]:
    raw = sc.base()
    ubuntu = raw["images"][0]
    template = ubuntu["versions"][0]
    ubuntu["versions"] = [{**template, "version": f"1.0.{i}", "sourceVm": f"linux-{i}"} for i in range(n)]
    for i in range(n):
        raw["sourceVms"][f"linux-{i}"] = {**raw["sourceVms"]["linux-src"], "id": sc.vm_id(f"linux-{i}")}
    del raw["sourceVms"]["linux-src"]
    if parallel_hosts is not None:
        raw["parallelHosts"] = parallel_hosts
    return raw


def _providers_by_step(raw: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
    values, secrets = sc.as_engine_config(raw)
    resources = plan.run_program("image-gallery", "unit", values, secrets).resources
    hosts = [r.name for r in resources if r.type == PROVIDER_T]
    steps = {
        r.name: str(r.options["provider"]).split("::")[-2].split("::")[0] if r.options["provider"] else ""
        for r in resources
        if r.type.startswith("pulumi-python:dynamic/generalization:")
    }
    return hosts, steps


def test_the_program_spreads_chains_over_hosts() -> None:
    hosts, steps = _providers_by_step(_with_versions(8))  # 8 Linux chains + 1 Windows chain = 9 chains
    assert hosts == ["generalization-host-0", "generalization-host-1", "generalization-host-2"]
    assert all(steps.values()), "every step names an explicit host"
    assert [steps[f"ubuntu-1.0.{i}-guest"] for i in range(8)] == ["generalization-host-0"] * 4 + [
        "generalization-host-1"
    ] * 4
    # A chain's two steps share one host.
    for i in range(8):
        assert steps[f"ubuntu-1.0.{i}-guest"] == steps[f"ubuntu-1.0.{i}-vm"]


def test_parallel_hosts_sets_the_count() -> None:
    hosts, _ = _providers_by_step(_with_versions(7, parallel_hosts=1))
    assert hosts == ["generalization-host-0"]


def test_host_workers_is_the_dynamic_hosts_pool_size() -> None:
    # The policy relies on the SDK's fixed pool of 4 workers per `python -m pulumi.dynamic` process; if an SDK
    # upgrade changes it, this says so.
    import ast
    import importlib.util

    spec = importlib.util.find_spec("pulumi.dynamic.__main__")
    assert spec is not None and spec.origin is not None
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    pools = [
        kw.value.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "ThreadPoolExecutor"
        for kw in node.keywords
        if kw.arg == "max_workers" and isinstance(kw.value, ast.Constant)
    ]
    assert pools == [HOST_WORKERS]
