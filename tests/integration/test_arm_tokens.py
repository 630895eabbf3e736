"""The fake ARM checks bearer tokens as ARM does, and the product asks for the tokens ARM wants.

Tokens are JWT-shaped: ARM reads their `aud` (the resource they were requested for: `<endpoint>/.default`), their
`tid` (the tenant that issued them) and their expiry. A token for another audience is 401
InvalidAuthenticationTokenAudience; a token of another tenant than the subscription's is 401
InvalidAuthenticationTokenTenant, naming the right tenant (Azure's tools find a subscription's tenant that way); a
write in one tenant that reads a resource of another (a gallery image version copied from another tenant's
version) needs a token of that tenant in x-ms-authorization-auxiliary, else 403 LinkedAuthorizationFailed."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
import requests

from hooks import arm
from hooks.errors import ArmAccessDenied
from hooks.log import Log

if TYPE_CHECKING:
    from tests.fakes.arm import FakeArm
    from tests.fakes.entra import FakeEntra

pytest_plugins = ["tests.fakes.arm", "tests.fakes.entra"]

SUB = "00000000-0000-0000-0000-00000000aaaa"
"""tests.fakes.arm.DEFAULT_SUBSCRIPTION, in the home tenant."""
OTHER_SUB = "00000000-0000-0000-0000-00000000bbbb"
OTHER_TENANT = "99999999-8888-7777-6666-555555555555"
PUBLIC_ARM = "https://management.azure.com"


def call(fake: FakeArm, method: str, path: str, token: str, body: Any = None, **headers: str) -> requests.Response:
    return requests.request(
        method,
        f"{fake.endpoint}{path}",
        params={"api-version": "2024-03-03"},
        json=body,
        headers={"Authorization": f"Bearer {token}", **headers},
        verify=str(fake.ca_path),
        timeout=5,
    )


def error_code(response: requests.Response) -> str:
    return str(response.json()["error"]["code"])


# --- audience ------------------------------------------------------------------------------------------------


def test_a_token_for_another_audience_is_refused_as_arm_does(fake_arm: FakeArm) -> None:
    vm = fake_arm.add_vm()
    assert call(fake_arm, "GET", vm.id, fake_arm.mint_token()).status_code == 200
    assert call(fake_arm, "GET", vm.id, fake_arm.mint_token(audience=f"{fake_arm.endpoint}/")).status_code == 200
    wrong = call(fake_arm, "GET", vm.id, fake_arm.mint_token(audience=PUBLIC_ARM))
    assert wrong.status_code == 401 and error_code(wrong) == "InvalidAuthenticationTokenAudience"
    assert f"wrong audience or resource '{PUBLIC_ARM}'" in wrong.json()["error"]["message"]
    assert 'error="invalid_token"' in wrong.headers["WWW-Authenticate"]
    assert not fake_arm.requests[-1].authorized
    # Another resource altogether (e.g. Graph, or Key Vault): refused the same way.
    vault = call(fake_arm, "GET", vm.id, fake_arm.mint_token(audience="https://vault.azure.net"))
    assert vault.status_code == 401 and error_code(vault) == "InvalidAuthenticationTokenAudience"


def test_a_token_signed_by_another_fake_or_expired_is_refused(fake_arm: FakeArm) -> None:
    vm = fake_arm.add_vm()
    forged = fake_arm.mint_token().rsplit(".", 1)[0] + ".not-the-signing-key"
    answer = call(fake_arm, "GET", vm.id, forged)
    assert answer.status_code == 401 and error_code(answer) == "InvalidAuthenticationToken"
    expired = call(fake_arm, "GET", vm.id, fake_arm.mint_token(expires_in=-1))
    assert expired.status_code == 401 and error_code(expired) == "ExpiredAuthenticationToken"


def test_the_product_asks_az_for_the_endpoints_scope(fake_arm_env: FakeArm) -> None:
    vm = fake_arm_env.add_vm()
    arm.get_status(fake_arm_env.settings(), vm.ref, Log("t", sink=lambda _: None))
    [call_args] = fake_arm_env.az_calls()
    assert (
        call_args[call_args.index("--resource") + 1] == fake_arm_env.endpoint
    )  # `<endpoint>/.default`, as az takes it
    assert "--tenant" not in call_args
    assert all(r.authorized for r in fake_arm_env.requests)


def test_the_product_asks_entra_for_the_endpoints_scope(
    fake_arm_env: FakeArm, fake_entra: FakeEntra, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_arm_env.trust(fake_entra)
    fake_entra.register("app", secret="s3cret-value")
    for name, value in {**fake_entra.env, "ARM_CLIENT_ID": "app", "ARM_CLIENT_SECRET": "s3cret-value"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("ARM_TENANT_ID", fake_entra.tenant_id)
    vm = fake_arm_env.add_vm()
    arm.get_status(fake_arm_env.settings(), vm.ref, Log("t", sink=lambda _: None))
    assert [r.scope for r in fake_entra.token_requests] == [f"{fake_arm_env.endpoint}/.default"]
    assert fake_arm_env.issuer_tokens_accepted >= 1 and all(r.authorized for r in fake_arm_env.requests)


def test_a_configured_audience_of_another_endpoint_is_refused_and_named(fake_arm_env: FakeArm) -> None:
    vm = fake_arm_env.add_vm()
    settings = fake_arm_env.settings(audience=PUBLIC_ARM)
    with pytest.raises(ArmAccessDenied) as refused:
        arm.get_status(settings, vm.ref, Log("t", sink=lambda _: None))
    message = str(refused.value)
    assert "401 InvalidAuthenticationTokenAudience" in message and f"{PUBLIC_ARM}/.default" in message
    assert fake_arm_env.signing_key not in message and "Bearer ey" not in message


def test_an_extra_audience_can_be_accepted(fake_arm_env: FakeArm) -> None:
    """Azure Stack Hub style: the token audience is not the endpoint (armAudience)."""
    fake_arm_env.audiences.append("https://management.adfs.azurestack.local/1234")
    vm = fake_arm_env.add_vm()
    settings = fake_arm_env.settings(audience="https://management.adfs.azurestack.local/1234")
    arm.get_status(settings, vm.ref, Log("t", sink=lambda _: None))
    assert all(r.authorized for r in fake_arm_env.requests)


# --- tenants -------------------------------------------------------------------------------------------------


def test_a_subscription_of_another_tenant_refuses_the_home_token_and_names_its_tenant(fake_arm_env: FakeArm) -> None:
    fake_arm_env.add_tenant(OTHER_TENANT)
    fake_arm_env.add_subscription(OTHER_SUB, OTHER_TENANT)
    answer = call(fake_arm_env, "GET", f"/subscriptions/{OTHER_SUB}", fake_arm_env.token)
    assert answer.status_code == 401 and error_code(answer) == "InvalidAuthenticationTokenTenant"
    assert f'authorization_uri="https://login.windows.net/{OTHER_TENANT}"' in answer.headers["WWW-Authenticate"]
    own = call(fake_arm_env, "GET", f"/subscriptions/{OTHER_SUB}", fake_arm_env.mint_token(tenant=OTHER_TENANT))
    assert own.status_code == 200 and own.json()["tenantId"] == OTHER_TENANT
    # The product learns the tenant from ARM's refusal, as Azure's tools do, and from a token of that tenant.
    assert arm.get_subscription_tenant(fake_arm_env.settings(), OTHER_SUB) == OTHER_TENANT
    login = arm.SharedLogin()
    tenant_login = arm.TenantLogin(login, OTHER_TENANT)
    assert arm.get_subscription_tenant(fake_arm_env.settings(), OTHER_SUB, credential=tenant_login) == OTHER_TENANT
    assert fake_arm_env.az_calls()[-1][-2:] == ["--tenant", OTHER_TENANT]


def test_az_refuses_a_tenant_the_identity_is_not_in(fake_arm_env: FakeArm) -> None:
    fake_arm_env.add_subscription(OTHER_SUB, OTHER_TENANT)  # a label only: the identity is not in that tenant
    login = arm.SharedLogin()
    with pytest.raises(Exception, match="does not exist in tenant"):
        arm.TenantLogin(login, OTHER_TENANT).get_token(f"{fake_arm_env.endpoint}/.default")


# --- cross-tenant copies -------------------------------------------------------------------------------------


def cross_tenant_source(fake: FakeArm) -> tuple[str, str]:
    """A source version in OTHER_TENANT's subscription, and the path of a version to create from it at home."""
    fake.add_tenant(OTHER_TENANT)
    fake.add_subscription(OTHER_SUB, OTHER_TENANT)
    fake.add_subscription(SUB)
    image = fake.add_gallery_image("dev_gallery", "img", "rg-dev", OTHER_SUB)
    source = fake.add_image_version(image, "1.0.0", source_vm_id="/subscriptions/x/vm")
    fake.add_gallery_image("prod_gallery", "img", "rg-prod", SUB)
    path = f"/subscriptions/{SUB}/resourceGroups/rg-prod/providers/Microsoft.Compute/galleries/prod_gallery"
    return source.id, f"{path}/images/img/versions/1.0.0"


def copy_body(source_id: str) -> dict[str, Any]:
    return {"location": "westeurope", "properties": {"storageProfile": {"source": {"id": source_id}}}}


def test_a_copy_across_tenants_without_an_auxiliary_token_is_linked_authorization_failed(fake_arm: FakeArm) -> None:
    source_id, target = cross_tenant_source(fake_arm)
    refused = call(fake_arm, "PUT", target, fake_arm.token, copy_body(source_id))
    assert refused.status_code == 403 and refused.headers.get("x-ms-failure-cause") == "gateway"
    body = refused.json()
    assert set(body) == {"error"} and body["error"]["code"] == "LinkedAuthorizationFailed"
    assert body["error"]["message"] == (
        "The client has permission to perform action 'Microsoft.Compute/galleries/images/versions/read' on scope "
        f"'{target}', however the current tenant '{fake_arm.tenant_id}' is not authorized to access linked "
        f"subscription '{OTHER_SUB}'."
    )
    assert not fake_arm.image_versions.get((SUB, "rg-prod", "prod_gallery", "img", "1.0.0"))


@pytest.mark.parametrize(
    "auxiliary",
    [
        pytest.param(lambda f: f"Bearer {f.token}", id="a-token-of-the-home-tenant"),
        pytest.param(lambda f: f"Bearer {f.mint_token(tenant=OTHER_TENANT, audience=PUBLIC_ARM)}", id="wrong-audience"),
        pytest.param(lambda f: f"Bearer {f.mint_token(tenant=OTHER_TENANT, expires_in=-1)}", id="expired"),
        pytest.param(lambda f: f.mint_token(tenant=OTHER_TENANT), id="without-Bearer"),
        pytest.param(lambda f: "Bearer " + f.mint_token(tenant=OTHER_TENANT)[:-3] + "xyz", id="not-signed"),
    ],
)
def test_an_auxiliary_token_that_is_not_valid_for_the_source_tenant_is_refused(
    fake_arm: FakeArm, auxiliary: Any
) -> None:
    source_id, target = cross_tenant_source(fake_arm)
    header = {"x-ms-authorization-auxiliary": auxiliary(fake_arm)}
    refused = call(fake_arm, "PUT", target, fake_arm.token, copy_body(source_id), **header)
    assert refused.status_code == 403 and error_code(refused) == "LinkedAuthorizationFailed"
    assert fake_arm.aux_tokens_accepted == 0


def test_a_copy_across_tenants_with_a_token_of_the_source_tenant_is_created(fake_arm: FakeArm) -> None:
    source_id, target = cross_tenant_source(fake_arm)
    # As azure-mgmt-core's AuxiliaryAuthenticationPolicy writes it: comma-separated, up to three.
    header = f"Bearer {fake_arm.mint_token(tenant='another')}, Bearer {fake_arm.mint_token(tenant=OTHER_TENANT)}"
    created = call(
        fake_arm, "PUT", target, fake_arm.token, copy_body(source_id), **{"x-ms-authorization-auxiliary": header}
    )
    assert created.status_code == 201, created.text
    assert created.json()["properties"]["storageProfile"]["source"]["id"] == source_id
    assert fake_arm.aux_tokens_accepted == 1
    # Within one tenant no auxiliary token is needed (and the header is not recorded anywhere).
    assert all("auxiliary" not in json.dumps(r.body or {}) for r in fake_arm.requests)
