"""GeneralizationHosts: the dynamic provider host processes that run the generalization chains.

Layer 2, declarative. The engine serves every dynamic resource of the default `pulumi-python` provider from ONE
process (`python -m pulumi.dynamic`) whose gRPC pool runs 4 calls at once. A chain's guest step can run for
40 minutes (sysprep), so with one process a fifth chain waits, and so does every Check and Diff queued behind
running Creates. Each explicit `pulumi-python` provider resource is a process of its own; the chains are spread
over a few of them.

Policy: a chain makes one call at a time. Its steps depend on each other (guest step, ARM step, then the
version), and the SDK sends a step's registration, hence its Check, only once the previous step's outputs are
known, i.e. once that step's Create has returned and freed its worker. Checks and Diffs of a host's resources
all belong to its own chains, so a host serving at most CHAINS_PER_HOST = 4 chains (its 4 workers) never makes a
call wait for a worker: no Check or Diff queues behind a running Create. (A preview's Checks run in the preview's
own host processes, which run no Creates.) The default host count is the smallest that keeps that bound, and
chains fill hosts in config order, four at a time, so appending a version to the last definition never moves an
existing chain. `parallelHosts` sets the count explicitly; chains are then dealt round-robin. A chain that does
move to another host is harmless: the dynamic host answers DiffConfig with "unknown", and the engine records the
new provider without replacing or re-running anything (tested under the real CLI in tests/e2e/test_host_pool.py).

The hosts carry the stack's `azure-native:*` login settings as inputs (secrets secret): an explicit provider
receives only its own inputs in `configure()`. A changed setting updates the hosts in place and replaces no
chain (tests/e2e/test_login.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pulumi

from config import LoginInput

HOST_WORKERS = 4
"""Calls one `python -m pulumi.dynamic` process runs at once (its gRPC thread pool, fixed in the SDK)."""

CHAINS_PER_HOST = HOST_WORKERS
"""One worker per chain: a chain never has two calls in flight (see the module docstring)."""


def host_count(chains: int, configured: int = 0) -> int:
    """How many host processes serve `chains` chains: `configured` when set (never more than chains)."""
    if chains <= 0:
        return 0
    wanted = configured if configured > 0 else math.ceil(chains / CHAINS_PER_HOST)
    return min(wanted, chains)


def assignment(chains: int, configured: int = 0) -> list[int]:
    """The host index of each chain in config order: blocks of CHAINS_PER_HOST by default, round-robin over
    `configured` hosts when set."""
    hosts = host_count(chains, configured)
    if hosts == 0:
        return []
    if configured > 0:
        return [i % hosts for i in range(chains)]
    return [i // CHAINS_PER_HOST for i in range(chains)]


def login_inputs(login: Sequence[LoginInput]) -> dict[str, pulumi.Input[str]]:
    """A host's inputs: the stack's `azure-native:*` login settings under their own keys, secrets marked secret (so
    the state keeps them encrypted). An explicit provider's `configure()` receives only its inputs, never the stack
    config; the chains' providers read the same keys either way (hooks/login.py)."""
    return {i.key: pulumi.Output.secret(i.value) if i.secret else i.value for i in login}


class GeneralizationHost(pulumi.ProviderResource):
    """One dynamic provider host process (`pulumi-resource-pulumi-python`) for some of the chains."""

    def __init__(self, name: str, login: Sequence[LoginInput] = (), opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("pulumi-python", name, login_inputs(login), opts)


class GeneralizationHosts:
    """The host providers of a stack and which chain runs on which."""

    def __init__(
        self,
        chain_names: Sequence[str],
        configured: int = 0,
        prefix: str = "generalization-host",
        login: Sequence[LoginInput] = (),
    ) -> None:
        count = host_count(len(chain_names), configured)
        self.hosts = [GeneralizationHost(f"{prefix}-{i}", login) for i in range(count)]
        indexes = assignment(len(chain_names), configured)
        self._by_chain = {name: self.hosts[index] for name, index in zip(chain_names, indexes, strict=True)}

    def for_chain(self, name: str) -> pulumi.ProviderResource:
        return self._by_chain[name]
