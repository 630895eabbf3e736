"""The azure-native login settings of the stack file held to the project's rules (config.azure_login): a secret in
plaintext, a value of the wrong kind, a near miss of a setting's name; IDs that are easy to confuse (the login's
application ID as the publisher's object ID, a tenant given as a subscription) named with what was probably meant;
and the settings reaching the dynamic provider hosts as secrets when either side says so. Each rule with a bad
value and an edge value that must pass."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

import config
from config.constants import PUBLISHER_ROLES
from hooks.errors import ConfigError
from tests.unit import stack_configs as sc

TODAY = date(2026, 11, 22)
TENANT = "62913c05-bccf-437c-868c-53cdabfbe8d4"
CLIENT = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
REGISTRY_OBJECT = "5e5e5e5e-0000-4000-8000-000000000001"
"""An object ID configured for Partner Center's Compute Image Registry (partnerCenterPrincipalIds)."""
WITH_REGISTRY_ID = {
    "publisherAccess": "partnerCenterServicePrincipals",
    "partnerCenterPrincipalIds": {"computeImageRegistry": REGISTRY_OBJECT},
}


def load(extra: dict[str, Any], secret: tuple[str, ...] = (), plain: set[str] | None = None) -> config.StackSpec:
    return config.load({**sc.base(), **extra}, ["sourceVms", *secret], TODAY, plain)


def problems(extra: dict[str, Any], secret: tuple[str, ...] = (), plain: set[str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        load(extra, secret, plain)
    return raised.value.problems


def the_problem(extra: dict[str, Any], secret: tuple[str, ...] = (), plain: set[str] | None = None) -> str:
    (found,) = problems(extra, secret, plain)
    return found


# --- secrets ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["clientSecret", "clientCertificatePassword", "oidcToken", "oidcRequestToken"])
def test_a_login_secret_in_plaintext_is_refused(name: str) -> None:
    full = f"azure-native:{name}"
    found = the_problem({full: "s3cr3t-value"})
    assert found.startswith(f"{full}: is stored in plaintext in the stack file; store it encrypted with ")
    assert f"`pulumi config set --secret {full}`" in found and "s3cr3t-value" not in found
    # encrypted: accepted (the engine says so, or the stack file holds it as `secure:`)
    load({full: "s3cr3t-value"}, secret=(full,))
    load({full: "[secret]"}, plain=set())


def test_the_stack_file_decides_when_it_was_read() -> None:
    plain = {"azure-native:clientSecret"}
    found = the_problem({"azure-native:clientSecret": "x"}, secret=("azure-native:clientSecret",), plain=plain)
    assert found.startswith("azure-native:clientSecret: is stored in plaintext")


def test_a_misspelt_secret_in_plaintext_is_refused_and_warned_about() -> None:
    with pytest.raises(ConfigError) as raised:
        load({"azure-native:clientSceret": "s3cr3t"})
    assert raised.value.problems[0].startswith("azure-native:clientSceret: is stored in plaintext")
    stack = load({"azure-native:clientSceret": "s3cr3t"}, secret=("azure-native:clientSceret",))
    assert any("did you mean azure-native:clientSecret?" in w for w in stack.warnings)


# --- types --------------------------------------------------------------------------------------------------------

GOOD = [
    {"azure-native:useMsi": "true"},
    {"azure-native:useOidc": "False"},
    {"azure-native:clientId": CLIENT, "azure-native:tenantId": TENANT},
    {"azure-native:tenantId": "contoso.onmicrosoft.com"},
    {"azure-native:subscriptionId": sc.SUBSCRIPTION},
    {"azure-native:subscriptionId": f'"{sc.SUBSCRIPTION}"'},  # handed over as JSON text
    {"azure-native:auxiliaryTenantIds": f'["{TENANT}", "contoso.onmicrosoft.com", "{CLIENT}"]'},
    {"azure-native:environment": "usgovernment"},
    {"azure-native:environment": "China"},
    {"azure-native:location": "West Europe"},
    {"azure-native:clientCertificatePath": "/etc/pki/login.pem"},
    {"azure-native:oidcTokenFilePath": "/var/run/secrets/azure/tokens/azure-identity-token"},
    {"azure-native:oidcRequestUrl": "https://pipelines.actions.githubusercontent.com/abc?x=1"},
    {"azure-native:oidcAudience": "api://AzureADTokenExchange"},
    {"azure-native:msiEndpoint": "http://169.254.169.254/metadata/identity/oauth2/token"},
    {"azure-native:metadataHost": "management.azure.com"},
    {"azure-native:partnerId": CLIENT, "azure-native:disablePulumiPartnerId": "true"},
    {"azure-native:useMsi": ""},  # nothing after the colon: unset, as the VM steps read it
    {"aws:region": "eu-west-1", "pulumi:template": "x"},  # other providers' namespaces are none of ours
]


@pytest.mark.parametrize("extra", GOOD)
def test_legitimate_login_settings_are_accepted_without_a_word(extra: dict[str, Any]) -> None:
    assert load(extra).warnings == ()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"azure-native:useMsi": "yes"}, "azure-native:useMsi: must be true or false, got 'yes' (the Pulumi CLI"),
        ({"azure-native:useOidc": "1"}, "azure-native:useOidc: must be true or false, got '1'"),
        ({"azure-native:clientId": "image-builder"}, "azure-native:clientId: 'image-builder' is not an application"),
        ({"azure-native:subscriptionId": "Contoso Prod"}, "azure-native:subscriptionId: 'Contoso Prod' is not a sub"),
        ({"azure-native:tenantId": "contoso"}, "azure-native:tenantId: 'contoso' is not a tenant: give the tenant ID"),
        ({"azure-native:partnerId": "pid-1"}, "azure-native:partnerId: 'pid-1' is not a GUID"),
        (
            {"azure-native:auxiliaryTenantIds": f"{TENANT};{CLIENT}"},
            "azure-native:auxiliaryTenantIds: is '62913c05-bccf-437c-868c-53cdabfbe8d4;0a1b2c3d-4e5f-4a6b-8c7d-"
            "9e0f1a2b3c4d', not a JSON array of tenant IDs",
        ),
        (
            {"azure-native:auxiliaryTenantIds": f'["{TENANT}", "{CLIENT}", "a.example", "b.example"]'},
            "azure-native:auxiliaryTenantIds: names 4 tenants; ARM accepts at most 3",
        ),
        ({"azure-native:environment": "AzureGermanCloud"}, "azure-native:environment: 'AzureGermanCloud' is not an"),
        ({"azure-native:location": "westeurop"}, "azure-native:location: 'westeurop' is not a known Azure public"),
        (
            {"azure-native:clientCertificatePath": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"},
            "azure-native:clientCertificatePath: is the certificate itself; give the path of the file",
        ),
        ({"azure-native:oidcRequestUrl": "token.actions.example"}, "azure-native:oidcRequestUrl: 'token.actions."),
        (
            {"azure-native:oidcAudience": "api://AzureADTokenExchange/.default"},
            "azure-native:oidcAudience: 'api://AzureADTokenExchange/.default' is a scope, not an audience: the token "
            "is requested for <audience>/.default; write 'api://AzureADTokenExchange'",
        ),
        ({"azure-native:metadataHost": "https://management.azure.com"}, "azure-native:metadataHost: 'https://manag"),
        ({"azure-native:clientId": f'["{CLIENT}"]'}, "azure-native:clientId: must be one value, not a list"),
    ],
)
def test_a_login_setting_of_the_wrong_kind_is_refused(extra: dict[str, Any], message: str) -> None:
    found = the_problem(extra)
    assert found.startswith(message), found


def test_an_encrypted_setting_is_not_checked_offline() -> None:
    # make plan cannot read it, so preview must not refuse what the plan accepted
    load({"azure-native:clientId": "[secret]"}, secret=("azure-native:clientId",))


# --- near misses --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("full", "meant"),
    [
        ("azure-native:clientID", "azure-native:clientId"),
        ("azure-native:client_id", "azure-native:clientId"),
        ("azure-native:ARM_TENANT_ID", "azure-native:tenantId"),
        ("azure-native:subscription", "azure-native:subscriptionId"),
        ("azure-native:useMSI", "azure-native:useMsi"),
        ("azure:clientId", "azure-native:clientId"),
        ("azure-nativ:tenantId", "azure-native:tenantId"),
        ("azure_native:subscriptionId", "azure-native:subscriptionId"),
    ],
)
def test_a_near_miss_of_a_login_setting_is_warned_about_with_the_key_meant(full: str, meant: str) -> None:
    value = TENANT if "tenant" in meant.lower() else CLIENT if "client" in meant.lower() else "true"
    stack = load({full: value if "subscription" not in meant else sc.SUBSCRIPTION})
    (warning,) = stack.warnings
    assert warning.startswith(full) and f"did you mean {meant}?" in warning, warning


def test_an_unknown_setting_with_nothing_close_says_to_remove_it() -> None:
    (warning,) = load({"azure-native:colour": "blue"}).warnings
    assert warning == (
        "azure-native:colour is not an azure-native setting, so neither azure-native nor the VM steps read it; "
        "remove it"
    )


# --- values that are easy to confuse ------------------------------------------------------------------------------


def test_the_logins_application_id_as_the_publishers_object_id_is_refused() -> None:
    found = the_problem({"azure-native:clientId": sc.PRINCIPAL, "publisherPrincipalType": "ServicePrincipal"})
    assert found.startswith(
        f"publisherPrincipalId: {sc.PRINCIPAL} is the application (client) ID the login uses (azure-native:clientId), "
        "not the object ID of the user, group or service principal that gets Owner on the gallery; "
        "`az ad sp show --id <application ID> --query id -o tsv` gives a service principal's object ID"
    ), found


@pytest.mark.parametrize(
    ("extra", "what"),
    [
        ({"publisherTenantId": sc.PRINCIPAL}, "is a tenant ID (publisherTenantId)"),
        ({"azure-native:tenantId": sc.PRINCIPAL}, "is a tenant ID (azure-native:tenantId)"),
        ({"azure-native:subscriptionId": sc.PRINCIPAL}, "is a subscription ID (azure-native:subscriptionId)"),
        ({"publisherPrincipalId": sc.SUBSCRIPTION}, "is a subscription ID (sourceVms."),
        (
            {**WITH_REGISTRY_ID, "publisherPrincipalId": REGISTRY_OBJECT},
            "is the object ID of Partner Center's 'Compute Image Registry' "
            "(partnerCenterPrincipalIds.computeImageRegistry)",
        ),
        ({"publisherPrincipalId": PUBLISHER_ROLES["Owner"]}, "is the role definition ID of Owner"),
    ],
)
def test_a_publisher_object_id_that_is_another_kind_of_id_is_refused(extra: dict[str, Any], what: str) -> None:
    found = the_problem(extra)
    assert found.startswith("publisherPrincipalId: ") and what in found, found


def test_partner_centers_principal_as_the_publisher_says_it_gets_its_role_already() -> None:
    found = the_problem({**WITH_REGISTRY_ID, "publisherPrincipalId": REGISTRY_OBJECT})
    assert "publisherAccess: partnerCenterServicePrincipals that principal gets its role already" in found


def test_the_client_id_given_as_the_tenant_id_and_the_tenant_as_the_subscription_are_refused() -> None:
    found = problems({"azure-native:clientId": TENANT, "azure-native:tenantId": TENANT})
    assert found == [
        "azure-native:clientId: is the tenant ID (azure-native:tenantId); give the application (client) ID of the "
        "app registration the login uses"
    ]
    found = problems({"azure-native:tenantId": sc.SUBSCRIPTION, "azure-native:subscriptionId": sc.SUBSCRIPTION})
    assert found[0].startswith("azure-native:tenantId: is the subscription ID (azure-native:subscriptionId)")


def test_an_object_id_distinct_from_every_other_id_is_accepted() -> None:
    load({"azure-native:clientId": CLIENT, "azure-native:tenantId": TENANT, "publisherTenantId": TENANT})


# --- Windows logons that cannot work ------------------------------------------------------------------------------


def test_a_misspelt_key_in_a_misspelt_namespace_is_warned_about_with_both_fixed() -> None:
    (warning,) = load({"azure-nativ:clientSceret": "x"}, secret=("azure-nativ:clientSceret",)).warnings
    assert warning.endswith("did you mean azure-native:clientSecret?"), warning


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ({"azure-native:oidcRequestUrl": "https:///token"}, "'https:///token' is not an http(s) URL"),
        ({"azure-native:msiEndpoint": "ftp://169.254.169.254/token"}, "'ftp://169.254.169.254/token' is not an http"),
        ({"azure-native:clientId": "not-a-guid-but-thirty-six-characters"}, "is not an application (client) ID"),
        (
            {"armAudience": "https://management.core.windows.net/.default/"},
            "write 'https://management.core.windows.net'",
        ),
    ],
)
def test_urls_guids_and_scopes_at_their_edges(extra: dict[str, Any], fragment: str) -> None:
    assert fragment in the_problem(extra)


def test_login_settings_reach_the_hosts_as_secrets_when_either_side_says_secret() -> None:
    # clientSecret is a secret even when it was set without --secret (the hosts' inputs are then still encrypted
    # in the state); a setting the stack holds encrypted stays encrypted whatever its kind.
    import contextvars

    from pulumi.runtime import config as runtime_config

    def read() -> dict[str, bool]:
        runtime_config.set_all_config(
            {
                "azure-native:clientSecret": "plain-but-secret",
                "azure-native:clientId": "app",
                "azure-native:tenantId": "t",
            },
            ["azure-native:tenantId"],
        )
        return {i.key: i.secret for i in config.login_from_pulumi()}

    found = contextvars.copy_context().run(read)
    assert found == {"azure-native:clientId": False, "azure-native:tenantId": True, "azure-native:clientSecret": True}


def test_near_misses_by_hyphen_and_the_classic_providers_namespace_are_named_as_such() -> None:
    (warning,) = load({"azure-native:client-id": CLIENT}).warnings
    assert warning.endswith("did you mean azure-native:clientId?"), warning
    (warning,) = load({"azure:tenantId": TENANT}).warnings
    assert warning == (
        "azure:tenantId configures the classic azure provider, which this project does not use; did you mean "
        "azure-native:tenantId?"
    )


def test_a_certificate_path_on_two_lines_is_refused() -> None:
    found = the_problem({"azure-native:clientCertificatePath": "/etc/pki/login.pem\n/etc/pki/other.pem"})
    assert found == "azure-native:clientCertificatePath: must be a file path on one line"


@pytest.mark.parametrize("value", ["false", "TRUE"])
def test_a_boolean_login_setting_in_any_case_is_accepted(value: str) -> None:
    assert load({"azure-native:useMsi": value}).warnings == ()


def test_a_near_miss_in_capitals_with_hyphens_is_warned_about_with_the_key_meant() -> None:
    (warning,) = load({"azure-native:USE-MSI": "true"}).warnings
    assert warning.endswith("did you mean azure-native:useMsi?"), warning


def test_a_metadata_host_with_a_path_is_refused() -> None:
    found = the_problem({"azure-native:metadataHost": "management.azure.com/metadata"})
    assert found.startswith("azure-native:metadataHost: 'management.azure.com/metadata' is not a host name"), found
