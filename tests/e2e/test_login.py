"""One login, configured once, under the real CLI: the stack config sets `azure-native:clientId`, `tenantId` and
`clientSecret` (secret), and the VM steps, on an explicit dynamic provider host (components/generalization_hosts.py),
log in with them against the fake Entra ID; the fake ARM accepts only the tokens that Entra issued them (besides the
azure-native stand-in's `az` token). The secret never reaches the output, the logs or the state in plaintext, and
rotating it updates the hosts in place without replacing or re-running a chain."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.world import World, make_world, new_workspace
from tests.fakes.entra import FakeEntra

pytestmark = pytest.mark.e2e

CLIENT_ID = "0c7e3ad5-6a5e-4c61-9f4e-2b7f1c0e7a11"
SECRET = "e2e-client-secret-Zq8~not-in-any-output"
ROTATED = "e2e-rotated-secret-Kp3~not-in-any-output"
SIG = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
HOST_TYPE = "pulumi:providers:pulumi-python"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with make_world(tmp_path / "world") as w:
        yield w


@pytest.fixture
def entra(world: World) -> Iterator[FakeEntra]:
    fake = FakeEntra(tenant_id=world.arm.tenant_id, token_lifetime=3600).start()
    world.arm.trust(fake)
    try:
        yield fake
    finally:
        fake.stop()


def test_vm_steps_log_in_with_the_azure_native_stack_settings(
    tmp_path: Path, engine: Path, world: World, entra: FakeEntra
) -> None:
    entra.register(CLIENT_ID, secret=SECRET)
    ws = new_workspace(tmp_path / "ws", engine, world, linux=False)
    ws.env_extra = {**ws.env_extra, **entra.env}
    ws.pulumi("config", "set", "azure-native:clientId", CLIENT_ID, check=True)
    ws.pulumi("config", "set", "azure-native:tenantId", world.arm.tenant_id, check=True)
    ws.pulumi("config", "set", "--secret", "azure-native:clientSecret", input=SECRET, check=True)

    up = ws.pulumi("up", "--yes", "--skip-preview", program=True).expect_ok()
    assert world.windows_vm.generalized and world.windows_vm.power_state == "deallocated"
    # The VM steps asked the fake Entra for tokens with the stack's client ID and secret, and ARM took them.
    assert entra.issued(CLIENT_ID) >= 1 and entra.errors() == []
    assert {r.kind for r in entra.token_requests} == {"secret"}
    assert world.arm.issuer_tokens_accepted >= 3  # the checks' reads, deallocate, generalize, verify

    # An explicit provider receives only its own inputs: the login settings, the secret encrypted in the state.
    state_text = ws.state_file().read_text()
    resources = ws.export()["deployment"]["resources"]
    hosts = [r for r in resources if r["type"] == HOST_TYPE]
    assert hosts and all(h["inputs"]["azure-native:clientId"] == CLIENT_ID for h in hosts)
    for h in hosts:
        secret = h["inputs"]["azure-native:clientSecret"]
        assert secret.get(SIG) == SECRET_SIG and "ciphertext" in secret, secret
    for text in (up.output, state_text, *(p.read_text() for p in ws.logs.iterdir())):
        assert SECRET not in text, "the client secret appeared in plaintext"
    for r in resources:
        if r["type"].startswith("pulumi-python:dynamic/"):
            assert "azure-native:" not in str(r.get("inputs")), "login settings leaked into a resource's inputs"

    # Rotating the secret: the hosts are updated in place (the dynamic host answers DiffConfig "unknown"), no chain
    # is replaced or re-run, nothing is written to ARM, and the next login uses the new secret.
    entra.register(CLIENT_ID, secret=ROTATED)
    ws.pulumi("config", "set", "--secret", "azure-native:clientSecret", input=ROTATED, check=True)
    world.arm.requests.clear()
    again = ws.pulumi("up", "--yes", "--json", program=True).expect_ok()
    ops = {s["urn"].split("::")[-1]: s["op"] for s in again.events()}
    chain = {name: op for name, op in ops.items() if name.startswith("win2022-1.0.0")}
    assert set(chain.values()) == {"same"}, ops
    assert ops.get("generalization-host-0") == "update", ops
    assert world.non_get() == []
    assert ROTATED not in again.output and ROTATED not in ws.state_file().read_text()
    preview = ws.pulumi("preview", "--expect-no-changes", program=True)
    assert preview.returncode == 0, preview.output[-3000:]
