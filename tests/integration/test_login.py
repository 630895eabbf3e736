"""The VM steps' Azure login (hooks/login.py) against local stand-ins: a fake Entra ID token endpoint, a fake GitHub
OIDC request URL, and the fake ARM accepting the fake Entra's tokens. Tokens expire after seconds.

Also through the real dynamic provider host: the default provider's `configure()` receives the stack config, an
explicit host's `configure()` only its inputs; both log in with the `azure-native:*` settings."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import pytest

from hooks import arm, login
from hooks.errors import ArmUnreachable
from hooks.log import Log

if TYPE_CHECKING:
    from tests.fakes.arm import FakeArm
    from tests.fakes.entra import FakeEntra, FakeGitHubOidc

pytest_plugins = ["tests.fakes.arm", "tests.fakes.entra", "tests.fakes.dynamic_host"]

SIG = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
"""How a secret travels on the wire (pulumi.runtime.rpc)."""

TENANT = "72f988bf-0000-0000-0000-00000000beef"
"""The fake Entra's tenant (tests/fakes/arm.py DEFAULT_TENANT)."""
LOGIN_ENV = tuple(sorted({var for key in login.LOGIN_KEYS for var in key.env}))


@pytest.fixture
def world(
    fake_arm_env: FakeArm, fake_entra: FakeEntra, fake_github_oidc: FakeGitHubOidc, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[FakeArm, FakeEntra, FakeGitHubOidc]]:
    for var in LOGIN_ENV:
        monkeypatch.delenv(var, raising=False)
    for name, value in fake_entra.env.items():
        monkeypatch.setenv(name, value)
    fake_arm_env.trust(fake_entra)
    yield fake_arm_env, fake_entra, fake_github_oidc
    arm.close_sessions()


def stack(**settings: str) -> login.LoginSettings:
    """The login a provider passes to ARM calls once its configure() received these azure-native:* keys of the
    stack config (resolved against the environment of now)."""
    provider = login.ConfiguredLogin()
    provider.configure(SimpleNamespace(config={login.stack_key(k): v for k, v in settings.items()}))
    return provider.login_settings()


def read_vm(fake: FakeArm, settings: login.LoginSettings | None = None) -> None:
    """Read a VM with the given login (default: no stack setting, the environment only), as a new host process
    would: a new session, made with that login."""
    arm.close_sessions()
    vm = fake.vms.get((fake.subscription_id.lower(), "rg-src", "src-vm")) or fake.add_vm()
    chosen = settings if settings is not None else stack()
    arm.get_status(replace(fake.settings(), login=chosen), vm.ref, Log("login-test"))


def test_each_source_is_picked_in_azure_natives_order(
    world: tuple[FakeArm, FakeEntra, FakeGitHubOidc], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, entra, _ = world
    entra.register("stack-app", secret="stack-secret")
    entra.register("arm-app", secret="arm-secret")
    entra.register("azure-app", secret="azure-secret")
    for name, value in {
        "ARM_CLIENT_ID": "arm-app",
        "ARM_CLIENT_SECRET": "arm-secret",
        "ARM_TENANT_ID": TENANT,
        "AZURE_CLIENT_ID": "azure-app",
        "AZURE_CLIENT_SECRET": "azure-secret",
        "AZURE_TENANT_ID": TENANT,
        "AZURE_TOKEN_CREDENTIALS": "EnvironmentCredential",
    }.items():
        monkeypatch.setenv(name, value)

    # 1. the azure-native:* stack settings, each one before its ARM_* variable (the tenant still comes from ARM_*)
    configured = stack(clientId="stack-app", clientSecret="stack-secret")
    read_vm(fake, configured)
    assert [r.client_id for r in entra.token_requests] == ["stack-app"]
    described = configured.describe()
    assert "client ID 'stack-app' (stack setting azure-native:clientId)" in described
    assert "(ARM_TENANT_ID)" in described and "stack-secret" not in described

    # 2. without stack settings: the ARM_* variables
    read_vm(fake)
    assert entra.token_requests[-1].client_id == "arm-app"

    # 3. neither: DefaultAzureCredential, i.e. the AZURE_* variables (EnvironmentCredential)
    for name in ("ARM_CLIENT_ID", "ARM_CLIENT_SECRET", "ARM_TENANT_ID"):
        monkeypatch.delenv(name)
    read_vm(fake)
    assert entra.token_requests[-1].client_id == "azure-app"
    assert fake.az_calls() == []  # the fake az was never asked
    assert fake.issuer_tokens_accepted == 3 and all(r.authorized for r in fake.requests)


@pytest.mark.parametrize("source", ["stack", "ARM_CLIENT_ID"])
def test_a_wrong_client_id_names_where_it_came_from(
    world: tuple[FakeArm, FakeEntra, FakeGitHubOidc], monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    fake, entra, _ = world
    entra.register("right-app", secret="the-secret-value")
    monkeypatch.setenv("ARM_TENANT_ID", TENANT)
    monkeypatch.setenv("ARM_CLIENT_SECRET", "the-secret-value")
    if source == "stack":
        configured = stack(clientId="wrong-app")
    else:
        monkeypatch.setenv("ARM_CLIENT_ID", "wrong-app")
        configured = stack()
    with pytest.raises(ArmUnreachable) as caught:
        read_vm(fake, configured)
    message = str(caught.value)
    origin = "stack setting azure-native:clientId" if source == "stack" else "ARM_CLIENT_ID"
    assert f"client ID 'wrong-app' ({origin})" in message, message
    assert "AADSTS700016" in message and "login problem" in message
    assert "the-secret-value" not in message
    assert entra.errors() == ["AADSTS700016"]


def test_a_long_step_refetches_the_assertion_and_the_access_token(
    world: tuple[FakeArm, FakeEntra, FakeGitHubOidc], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GitHub's ID token and Entra's access token each live 2 s; the deallocation takes about 5 s, then a pause
    # outlives both, then the generalize call. Entra refuses an expired assertion (AADSTS700024), ARM an expired
    # token: the step only passes if a fresh ID token is fetched for every new Azure token.
    fake, entra, github = world
    entra.token_lifetime = 2
    github.token_lifetime = 2
    entra.register("ci-app", federated=github)
    for name, value in {
        "ARM_USE_OIDC": "true",
        "ARM_CLIENT_ID": "ci-app",
        "ARM_TENANT_ID": TENANT,
        **github.actions_env(),
    }.items():
        monkeypatch.setenv(name, value)
    fake.lro_polls = 4
    vm = fake.add_vm()
    settings = fake.settings(poll_interval=1.0, operation_timeout=30.0)
    log = Log("long-step")
    arm.deallocate(settings, vm.ref, log)
    time.sleep(2.2)  # the last ID token and the last access token have both expired
    arm.generalize(settings, vm.ref, log)
    assert vm.generalized and vm.power_state == "deallocated"
    assert github.fetched >= 3 and entra.issued("ci-app") >= 3
    assert github.fetched == entra.issued("ci-app")  # one fresh assertion per Azure token
    assert {audience for audience, _ in github.requests} == {login.OIDC_DEFAULT_AUDIENCE}
    assert entra.errors() == [] and fake.expired_token_requests == 0
    assert all(r.authorized for r in fake.requests)


def test_oidc_from_a_stack_token_file_is_read_for_every_token(
    world: tuple[FakeArm, FakeEntra, FakeGitHubOidc], tmp_path: Path
) -> None:
    fake, entra, github = world
    entra.register("wi-app", federated=github)
    token_file = tmp_path / "token"
    token_file.write_text(github.id_token())
    configured = stack(useOidc="true", clientId="wi-app", tenantId=TENANT, oidcTokenFilePath=str(token_file))
    read_vm(fake, configured)
    assert entra.issued("wi-app") == 1
    assert "the ID token file" in configured.describe()


def test_oidc_without_a_token_source_says_what_to_set(
    world: tuple[FakeArm, FakeEntra, FakeGitHubOidc], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, _, _ = world
    monkeypatch.setenv("ARM_USE_OIDC", "true")
    with pytest.raises(ArmUnreachable, match="id-token: write") as caught:
        read_vm(fake, stack(clientId="ci-app", tenantId=TENANT))
    assert "OIDC is selected (ARM_USE_OIDC)" in str(caught.value)


def test_a_secret_never_appears_in_a_refusal(
    world: tuple[FakeArm, FakeEntra, FakeGitHubOidc], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, entra, github = world
    entra.register("ci-app", federated=github)
    configured = stack(
        useOidc="true",
        clientId="ci-app",
        tenantId=TENANT,
        oidcRequestUrl=github.url,
        oidcRequestToken="not-the-request-token-" + "x" * 20,
    )
    with pytest.raises(ArmUnreachable) as caught:
        read_vm(fake, configured)
    message = str(caught.value)
    assert "HTTP 401" in message and "stack setting azure-native:oidcRequestUrl" in message
    assert "not-the-request-token" not in message and "api-version" not in message
    assert "not-the-request-token" not in repr(configured)


def test_the_login_a_call_brings_is_the_one_used(
    world: tuple[FakeArm, FakeEntra, FakeGitHubOidc], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two providers of one host, configured with different logins, each call with its own: nothing written by one
    # provider's configure() is read by another's calls, and sessions are kept apart by login.
    fake, entra, _ = world
    entra.register("first-app", secret="first-secret")
    entra.register("second-app", secret="second-secret")
    monkeypatch.setenv("ARM_TENANT_ID", TENANT)
    first = stack(clientId="first-app", clientSecret="first-secret")
    second = stack(clientId="second-app", clientSecret="second-secret")  # configured last
    vm = fake.add_vm()
    arm.get_status(replace(fake.settings(), login=first), vm.ref, Log("login-test"))
    arm.get_status(replace(fake.settings(), login=second), vm.ref, Log("login-test"))
    arm.get_status(replace(fake.settings(), login=first), vm.ref, Log("login-test"))
    assert [r.client_id for r in entra.token_requests] == ["first-app", "second-app"]


@pytest.mark.parametrize("provider", ["default", "explicit"])
def test_the_dynamic_host_logs_in_with_what_configure_received(
    world: tuple[FakeArm, FakeEntra, FakeGitHubOidc], host_factory: Any, provider: str
) -> None:
    # The default provider's configure() receives the whole stack config (namespaced keys, secrets decrypted); an
    # explicit host's only its inputs, which the program makes the same keys, the secret marked secret.
    from hooks.providers import VmGeneralizationProvider
    from tests.fakes.dynamic_host import urn, with_provider

    fake, entra, _ = world
    entra.register("host-app", secret="host-secret-value")
    login_settings: dict[str, Any] = {
        "azure-native:clientId": "host-app",
        "azure-native:tenantId": TENANT,
    }
    if provider == "default":
        config = {
            **login_settings,
            "azure-native:clientSecret": "host-secret-value",
            "azure-native:subscriptionId": fake.subscription_id,
            "image-gallery:galleryName": "g",
        }
    else:
        config = {**login_settings, "azure-native:clientSecret": {SIG: SECRET_SIG, "value": "host-secret-value"}}
    host = host_factory()
    host.configure(config)
    vm = fake.add_vm(power_state="running")
    props = {
        "resource_name": "img-1.0.0-vm",
        "vm_id": vm.id,
        "arm": {"endpoint": fake.endpoint, "audience": None, "poll_interval": 0.05, "operation_timeout": 10.0},
        "generalize": True,
        "deallocate": True,
    }
    _, outs = host.create(urn("VmGeneralization", "img-1.0.0-vm"), with_provider(VmGeneralizationProvider(), props))
    assert outs["generalized"] is True and "azure-native:clientSecret" not in outs
    assert [r.client_id for r in entra.token_requests] == ["host-app"]
    assert fake.az_calls() == [] and all(r.authorized for r in fake.requests)
    assert "host-secret-value" not in host.close()
