"""Auxiliary tenants (hooks/login.py `auxiliaryTenantIds`) and the promotion rule that needs them
(hooks/promotion.py `check_tenant`): read from the same places as azure-native, in the same JSON form, and every
problem names where the value came from and what to set."""

from __future__ import annotations

import json
from typing import Any

import pytest

from hooks import login
from hooks.login import LoginSettings, LoginSettingsError
from hooks.promotion import PromotionTarget, check_tenant
from hooks.targets import GalleryRef, ImageVersionRef

SOURCE_TENANT = "99999999-8888-7777-6666-555555555555"
HOME_TENANT = "72f988bf-0000-0000-0000-00000000beef"
SOURCE = ImageVersionRef.parse(
    "/subscriptions/00000000-0000-0000-0000-00000000bbbb/resourceGroups/rg-dev/providers/Microsoft.Compute"
    "/galleries/dev_gallery/images/img/versions/1.0.0"
)
GALLERY = GalleryRef("00000000-0000-0000-0000-00000000aaaa", "rg-prod", "prod_gallery")
TARGET = PromotionTarget(
    definition_name="img",
    definition={},
    version="1.0.0",
    location="westeurope",
    gallery=GALLERY,
    source_label="stack dev: img 1.0.0",
    version_path="images[0].versions[0]",
    source_path="images[0].versions[0].sourceVersion",
    source_key="version",
)


def settings(stack: dict[str, str] | None = None, **environ: str) -> LoginSettings:
    return LoginSettings.resolve(stack or {}, environ)


def test_unset_means_none() -> None:
    s = settings()
    assert s.auxiliary_tenants() == ()
    assert s.auxiliary_source == "azure-native:auxiliaryTenantIds / ARM_AUXILIARY_TENANT_IDS, not set"


def test_the_stack_setting_comes_first_then_the_environment_both_json_arrays() -> None:
    both = settings(
        {"auxiliaryTenantIds": json.dumps([SOURCE_TENANT.upper()])},
        ARM_AUXILIARY_TENANT_IDS=json.dumps(["other"]),
    )
    assert both.auxiliary_tenants() == (SOURCE_TENANT,)
    assert both.auxiliary_source == "stack setting azure-native:auxiliaryTenantIds"
    env = settings(ARM_AUXILIARY_TENANT_IDS=json.dumps([SOURCE_TENANT, "contoso.onmicrosoft.com", SOURCE_TENANT]))
    assert env.auxiliary_tenants() == (SOURCE_TENANT, "contoso.onmicrosoft.com")
    assert env.auxiliary_source == "ARM_AUXILIARY_TENANT_IDS"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (f"{SOURCE_TENANT};{HOME_TENANT}", "not a JSON array of tenant IDs"),  # Terraform's form, not azure-native's
        (SOURCE_TENANT, "not a JSON array of tenant IDs"),
        (json.dumps({"tenant": SOURCE_TENANT}), "not a JSON array of tenant IDs"),
        (json.dumps(["has space"]), "not a JSON array of tenant IDs"),
        (json.dumps([1]), "not a JSON array of tenant IDs"),
        (json.dumps(["a", "b", "c", "d"]), "names 4 tenants; ARM accepts at most 3 auxiliary tokens"),
    ],
)
def test_a_malformed_value_names_where_it_came_from_and_the_fix(value: str, expected: str) -> None:
    with pytest.raises(LoginSettingsError) as refused:
        settings(ARM_AUXILIARY_TENANT_IDS=value).auxiliary_tenants()
    assert str(refused.value).startswith("ARM_AUXILIARY_TENANT_IDS ") and expected in str(refused.value)
    with pytest.raises(LoginSettingsError, match=r"^stack setting azure-native:auxiliaryTenantIds "):
        settings({"auxiliaryTenantIds": value}).auxiliary_tenants()


def test_the_credential_may_get_tokens_of_the_auxiliary_tenants(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[tuple[str, dict[str, Any]]] = []

    def recorder(name: str) -> Any:
        def make(*args: Any, **kwargs: Any) -> str:
            made.append((name, kwargs))
            return name

        return make

    from azure import identity

    for name in ("ClientSecretCredential", "ManagedIdentityCredential", "DefaultAzureCredential"):
        monkeypatch.setattr(identity, name, recorder(name))
    aux = json.dumps([SOURCE_TENANT])
    settings(
        ARM_CLIENT_ID="app", ARM_TENANT_ID=HOME_TENANT, ARM_CLIENT_SECRET="x", ARM_AUXILIARY_TENANT_IDS=aux
    ).credential()
    settings(ARM_AUXILIARY_TENANT_IDS=aux).credential()
    settings(ARM_USE_MSI="true", ARM_AUXILIARY_TENANT_IDS=aux).credential()
    settings(ARM_CLIENT_ID="app", ARM_TENANT_ID=HOME_TENANT, ARM_CLIENT_SECRET="x").credential()
    assert [(n, k.get("additionally_allowed_tenants")) for n, k in made] == [
        ("ClientSecretCredential", [SOURCE_TENANT]),
        ("DefaultAzureCredential", [SOURCE_TENANT]),
        ("ManagedIdentityCredential", None),  # a managed identity lives in one tenant
        ("ClientSecretCredential", None),
    ]


def test_auxiliary_tenants_is_one_of_the_login_settings_the_hosts_receive() -> None:
    key = next(k for k in login.LOGIN_KEYS if k.name == login.AUXILIARY_TENANTS)
    assert key.env == ("ARM_AUXILIARY_TENANT_IDS",) and not key.secret


def test_a_source_in_the_gallerys_tenant_or_an_auxiliary_one_passes() -> None:
    assert check_tenant(SOURCE, HOME_TENANT, GALLERY, HOME_TENANT.upper(), (), "x", TARGET) is None
    assert check_tenant(SOURCE, SOURCE_TENANT.upper(), GALLERY, HOME_TENANT, (SOURCE_TENANT,), "x", TARGET) is None


def test_a_source_in_another_tenant_names_both_tenants_the_key_and_the_fix() -> None:
    found = check_tenant(
        SOURCE,
        SOURCE_TENANT,
        GALLERY,
        HOME_TENANT,
        ("11111111-0000-0000-0000-000000000000",),
        "ARM_AUXILIARY_TENANT_IDS",
        TARGET,
    )
    assert found is not None and found.path == "images[0].versions[0].sourceVersion.version"
    message = str(found)
    assert f"subscription {SOURCE.subscription_id} of tenant {SOURCE_TENANT}" in message
    assert f"gallery prod_gallery is in subscription {GALLERY.subscription_id} of tenant {HOME_TENANT}" in message
    assert "x-ms-authorization-auxiliary" in message
    assert "(ARM_AUXILIARY_TENANT_IDS: 11111111-0000-0000-0000-000000000000)" in message
    assert f"pulumi config set --path 'azure-native:auxiliaryTenantIds[0]' {SOURCE_TENANT}" in message
    assert f"""ARM_AUXILIARY_TENANT_IDS='["{SOURCE_TENANT}"]'""" in message


def test_before_the_gallery_is_known_the_message_says_arm_refused_the_logins_token() -> None:
    found = check_tenant(SOURCE, SOURCE_TENANT, None, None, (), "ARM_AUXILIARY_TENANT_IDS, not set", TARGET)
    assert found is not None
    assert f"of tenant {SOURCE_TENANT}, but ARM refuses the login's token for that subscription" in str(found)
    assert check_tenant(SOURCE, SOURCE_TENANT, None, None, (SOURCE_TENANT,), "x", TARGET) is None
