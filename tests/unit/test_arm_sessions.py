"""One login and one connection pool per process and endpoint (hooks/arm/session.py): a token is reused while it
has more than the refresh margin left and fetched anew within it, a closed login or session releases what it
holds, and the registry hands out one session per endpoint, audience and login.

A scripted credential stands in for azure-identity (the integration tests log in through the fake `az`): it
hands out tokens of a chosen lifetime and records what was asked of it."""

from __future__ import annotations

import importlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
import requests
from azure.core.credentials import AccessToken
from azure.core.exceptions import ClientAuthenticationError
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.resource.resources import ResourceManagementClient

from hooks import arm
from hooks import login as azure_login
from hooks.errors import ArmUnreachable
from tests.unit.arm_answers import SETTINGS

SCOPE = f"{SETTINGS.endpoint}/.default"
sessions = importlib.import_module("hooks.arm.session")  # `hooks.arm.session` is also the function


class Authority:
    """What the scripted credentials of one test were asked: credentials made, tokens handed out, closes."""

    def __init__(self, lifetime: float = 3600.0) -> None:
        self.lifetime = lifetime
        self.made = 0
        self.asked: list[dict[str, Any]] = []
        self.closed = 0
        self.refuse: str | None = None

    def credential(self) -> ScriptedCredential:
        self.made += 1
        return ScriptedCredential(self)


class ScriptedCredential:
    """A TokenCredential handing out numbered tokens that expire `lifetime` seconds after they are fetched."""

    def __init__(self, authority: Authority) -> None:
        self.authority = authority

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        if self.authority.refuse:
            raise ClientAuthenticationError(message=self.authority.refuse)
        self.authority.asked.append({"scopes": scopes, **kwargs})
        return AccessToken(f"token-{len(self.authority.asked)}", int(time.time() + self.authority.lifetime))

    def close(self) -> None:
        self.authority.closed += 1


@dataclass(frozen=True)
class ScriptedLogin(azure_login.LoginSettings):
    """Login settings whose credential is scripted."""

    scripted: Authority = field(default_factory=Authority, compare=False)

    def credential(self) -> Any:
        return self.scripted.credential()


@pytest.fixture
def authority() -> Authority:
    return Authority()


@pytest.fixture
def login(authority: Authority) -> Iterator[arm.SharedLogin]:
    with arm.SharedLogin(ScriptedLogin(scripted=authority)) as shared:
        yield shared


# --- tokens ----------------------------------------------------------------------------------------------------


def test_a_token_is_fetched_once_and_reused_while_fresh(login: arm.SharedLogin, authority: Authority) -> None:
    assert login.logins == 0
    first = login.get_token(SCOPE)
    assert login.get_token(SCOPE) == first
    assert (login.logins, len(authority.asked), authority.made) == (1, 1, 1)


@pytest.mark.parametrize(("lifetime", "fetches"), [(330.0, 1), (270.0, 2)])
def test_a_token_is_fetched_anew_once_less_than_five_minutes_are_left(lifetime: float, fetches: int) -> None:
    authority = Authority(lifetime)
    with arm.SharedLogin(ScriptedLogin(scripted=authority)) as login:
        first = login.get_token(SCOPE)
        second = login.get_token(SCOPE)
    assert len(authority.asked) == fetches
    assert (first == second) is (fetches == 1)
    assert arm.SharedLogin.REFRESH_MARGIN == 300.0


def test_a_claims_challenge_always_fetches_a_new_token(login: arm.SharedLogin, authority: Authority) -> None:
    login.get_token(SCOPE)
    challenged = login.get_token(SCOPE, claims='{"access_token":{"nbf":{"essential":true}}}')
    assert challenged.token == "token-2"
    assert authority.asked[1]["claims"] == '{"access_token":{"nbf":{"essential":true}}}'


def test_tokens_are_kept_per_scope_and_tenant(login: arm.SharedLogin, authority: Authority) -> None:
    home = login.get_token(SCOPE)
    other = arm.TenantLogin(login, "other-tenant").get_token(SCOPE)
    graph = login.get_token("https://graph.example/.default")
    assert len({home.token, other.token, graph.token}) == 3
    assert arm.TenantLogin(login, "other-tenant").get_token(SCOPE) == other
    assert [a["tenant_id"] for a in authority.asked] == [None, "other-tenant", None]
    assert authority.made == 1


def test_a_refused_login_names_the_login_used_never_its_secret(authority: Authority) -> None:
    authority.refuse = "AADSTS7000215: Invalid client secret provided: s3cret-value."
    settings = ScriptedLogin(
        (
            ("clientId", azure_login.Setting("app-id", "ARM_CLIENT_ID")),
            ("clientSecret", azure_login.Setting("s3cret-value", "ARM_CLIENT_SECRET", secret=True)),
            ("tenantId", azure_login.Setting("tenant-id", "ARM_TENANT_ID")),
        ),
        scripted=authority,
    )
    with arm.SharedLogin(settings) as login, pytest.raises(arm.LoginRefused) as caught:
        login.get_token(SCOPE)
    assert "s3cret-value" not in str(caught.value)
    assert "a client secret (ARM_CLIENT_SECRET)" in str(caught.value)
    assert caught.value.response is None
    assert login.logins == 0


def test_a_closed_login_closes_its_credential_and_logs_in_anew(login: arm.SharedLogin, authority: Authority) -> None:
    login.get_token(SCOPE)
    login.close()
    assert authority.closed == 1
    login.get_token("https://graph.example/.default")
    assert authority.made == 2


def test_leaving_a_login_closes_it(authority: Authority) -> None:
    with arm.SharedLogin(ScriptedLogin(scripted=authority)) as login:
        login.get_token(SCOPE)
    assert authority.closed == 1


# --- sessions --------------------------------------------------------------------------------------------------


@pytest.fixture
def closes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What closing a session closed: its clients, its connection pool."""
    closed: list[str] = []
    monkeypatch.setattr(ComputeManagementClient, "close", lambda self: closed.append("compute"))
    monkeypatch.setattr(ResourceManagementClient, "close", lambda self: closed.append("resources"))

    class Pool(requests.Session):
        def close(self) -> None:
            closed.append("pool")
            super().close()

    monkeypatch.setattr(sessions.requests, "Session", Pool)
    return closed


def test_a_session_makes_one_client_per_subscription_over_one_pool_and_login(authority: Authority) -> None:
    s = arm.ArmSession(SETTINGS.endpoint, SETTINGS.scope, login=ScriptedLogin(scripted=authority))
    try:
        assert s.compute("sub-a") is s.compute("sub-a")
        assert s.compute("sub-a") is not s.compute("sub-b")
        assert s.resources("sub-a") is s.resources("sub-a")
        assert s.resources("sub-a") is not s.resources("sub-b")
    finally:
        s.close()


def test_closing_a_session_closes_its_clients_pool_and_login(closes: list[str], authority: Authority) -> None:
    s = arm.ArmSession(SETTINGS.endpoint, SETTINGS.scope, login=ScriptedLogin(scripted=authority))
    compute, resources = s.compute("sub-a"), s.resources("sub-a")
    s.login.get_token(SCOPE)
    s.close()
    assert sorted(closes) == ["compute", "pool", "resources"]
    assert authority.closed == 1
    # a session closed and asked again never hands out a closed client
    assert s.compute("sub-a") is not compute
    assert s.resources("sub-a") is not resources


def test_a_session_with_the_callers_credential_never_closes_it(authority: Authority) -> None:
    theirs = Authority()
    s = arm.ArmSession(SETTINGS.endpoint, SETTINGS.scope, theirs.credential(), login=ScriptedLogin(scripted=authority))
    s.compute("sub-a")
    s.close()
    assert theirs.closed == 0


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[tuple[str, str, str], arm.ArmSession]]:
    """The process-wide registry, empty for the test and emptied after it."""
    monkeypatch.setattr(sessions, "_SESSIONS", {})
    yield sessions._SESSIONS
    arm.close_sessions()


def test_one_session_per_endpoint_audience_and_login(
    registry: dict[tuple[str, str, str], arm.ArmSession], authority: Authority
) -> None:
    settings = replace(SETTINGS, login=ScriptedLogin(scripted=authority))
    first = arm.session(settings)
    assert arm.session(replace(settings, endpoint=SETTINGS.endpoint.upper() + "/")) is first
    sandbox = arm.session(replace(settings, endpoint="https://arm.sandbox"))
    assert arm.session(replace(settings, endpoint="https://ARM.SANDBOX/")) is sandbox
    assert arm.session(replace(settings, endpoint="https://other.example")) is not first
    assert arm.session(replace(settings, audience="https://other-audience.example")) is not first
    other_login = ScriptedLogin((("clientId", azure_login.Setting("x", "ARM_CLIENT_ID")),), scripted=authority)
    assert arm.session(replace(settings, login=other_login)) is not first
    assert len(registry) == 5


def test_closing_the_sessions_closes_and_forgets_each(
    registry: dict[tuple[str, str, str], arm.ArmSession], closes: list[str], authority: Authority
) -> None:
    settings = replace(SETTINGS, login=ScriptedLogin(scripted=authority))
    first = arm.session(settings)
    arm.session(replace(settings, endpoint="https://other.example"))
    arm.close_sessions()
    assert closes.count("pool") == 2
    assert registry == {}
    assert arm.session(settings) is not first


def test_a_call_with_its_own_credential_gets_a_session_of_its_own_closed_at_its_end(
    registry: dict[tuple[str, str, str], arm.ArmSession], closes: list[str], authority: Authority
) -> None:
    settings = replace(SETTINGS, login=ScriptedLogin(scripted=authority))
    with sessions.compute_client(settings, "sub-a", Authority().credential()) as client:
        assert client is not arm.session(settings).compute("sub-a")
    assert closes == ["compute", "pool"]
    with sessions.resources_client(settings, "sub-a") as shared:
        assert shared is arm.session(settings).resources("sub-a")
    with sessions.compute_client(settings, "sub-a") as shared_compute:
        assert shared_compute is arm.session(settings).compute("sub-a")
    assert closes == ["compute", "pool"]


def test_the_access_token_is_the_sessions_for_the_audience(
    registry: dict[tuple[str, str, str], arm.ArmSession], authority: Authority
) -> None:
    settings = replace(SETTINGS, login=ScriptedLogin(scripted=authority))
    assert arm.access_token(settings, "the service principal") == "token-1"
    arm.ensure_login(settings, "the gallery")
    assert arm.access_token(settings, "the service principal") == "token-1"
    assert authority.asked == [{"scopes": (settings.scope,), "claims": None, "tenant_id": None, "enable_cae": False}]


def test_no_token_is_a_login_problem_naming_what_it_was_for(
    registry: dict[tuple[str, str, str], arm.ArmSession], authority: Authority
) -> None:
    authority.refuse = "no identity available"
    settings = replace(SETTINGS, login=ScriptedLogin(scripted=authority))
    with pytest.raises(ArmUnreachable, match=r"^could not read the gallery: no Azure access token could be obtained"):
        arm.ensure_login(settings, "the gallery")
    with pytest.raises(ArmUnreachable, match="This is a login problem"):
        arm.access_token(settings, "the service principal")


def test_calls_without_login_settings_use_the_environments(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARM_CLIENT_ID", "env-client")
    assert arm.login_of(SETTINGS).value("clientId") == "env-client"
    given = ScriptedLogin()
    assert arm.login_of(replace(SETTINGS, login=given)) is given
    assert arm.SharedLogin().settings.value("clientId") == "env-client"
