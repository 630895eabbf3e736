"""The stack's top-level keys (config.gallery): the gallery (`gallery*`, `marketplace`), the publisher's access to it
(`publisher*`, `graphEndpoint`) and how the imperative side reaches ARM (`arm*`, `onArmUnreachable`). The
publisher's IDs confused with the login's are test_login_settings.py's."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit import stack_configs as sc
from tests.unit.config.one_change import (
    DELETE,
    PRINCIPAL,
    Rule,
    assert_rule,
    load,
    problems_of,
    rule_cases,
    the_problem,
)


def with_keys(extra: dict[str, Any]) -> dict[str, Any]:
    """stack_configs.base() with these top-level keys set."""
    return {**sc.base(), **extra}


RULES: list[Rule] = [
    # gallery
    ({"galleryName": DELETE}, "galleryName", "is required"),
    ({"galleryName": ""}, "galleryName", "must be a non-empty string"),
    ({"galleryName": "contoso-images"}, "galleryName", "'contoso-images' is not a valid gallery name"),
    ({"galleryName": ".images"}, "galleryName", "starting and ending with a letter or digit"),
    ({"galleryName": "images."}, "galleryName", "starting and ending with a letter or digit"),
    ({"galleryName": "a" * 81}, "galleryName", "1-80 letters, digits, '_' or '.'"),
    ({"galleryName": "images\n"}, "galleryName", "is not a valid gallery name"),
    ({"galleryName": 42}, "galleryName", "must be a non-empty string, got 42"),
    ({"galleryResourceGroup": DELETE}, "galleryResourceGroup", "is required"),
    ({"galleryResourceGroup": "rg/images"}, "galleryResourceGroup", "is not a valid resource group name"),
    ({"galleryLocation": "West_Europe"}, "galleryLocation", "is not an Azure region name like 'westeurope'"),
    ({"galleryLocation": DELETE}, "galleryLocation", "is required"),
    ({"galleryTags": {"env": 1}}, "galleryTags", "must be a map of strings"),
    ({"galleryTags": "contoso"}, "galleryTags", "must be a map of strings"),
    ({"publisherPrincipalId": DELETE, "publisherTenantId": PRINCIPAL}, "publisherTenantId", "set both or neither"),
    # publisher
    ({"publisherPrincipalId": "not-a-guid"}, "publisherPrincipalId", "'not-a-guid' is not a GUID"),
    ({"publisherPrincipalType": ""}, "publisherPrincipalType", "must be a non-empty string"),
    (
        {"publisherPrincipalType": "user"},
        "publisherPrincipalType",
        "'user' is not one of 'User', 'Group', 'ServicePrincipal', 'ForeignGroup', 'Device'",
    ),
    ({"publisherRole": "Contributor"}, "publisherRole", "'Contributor' is not one of 'Owner'"),
    ({"publisherTenantId": "contoso.onmicrosoft.com"}, "publisherTenantId", "is not a GUID"),
    # azure
    ({"armEndpoint": "http://localhost:8443"}, "armEndpoint", "must be an https:// URL"),
    ({"armPollIntervalSeconds": 0}, "armPollIntervalSeconds", "0 is out of range 1-3600"),
    ({"armOperationTimeoutMinutes": -5}, "armOperationTimeoutMinutes", "-5 is out of range"),
    ({"armOperationTimeoutMinutes": "soon"}, "armOperationTimeoutMinutes", "must be an integer"),
    ({"armOperationTimeoutMinutes": True}, "armOperationTimeoutMinutes", "must be an integer"),
    ({"onArmUnreachable": "ignore"}, "onArmUnreachable", "'ignore' is not one of 'fail', 'warn'"),
]


@pytest.mark.parametrize(("changes", "path", "fragment"), rule_cases(RULES))
def test_rule(changes: dict[str, Any], path: str, fragment: str) -> None:
    assert_rule(changes, path, fragment)


# --- the gallery ------------------------------------------------------------------------------------------------------


def test_a_tag_name_of_blanks_is_refused() -> None:
    raw = sc.base()
    raw["galleryTags"] = {" ": "x"}
    assert the_problem(raw) == "galleryTags. : a tag name must not be empty"


def test_fifty_gallery_tags_and_no_more() -> None:
    raw = sc.base()
    raw["galleryTags"] = {f"tag{i}": "v" for i in range(50)}
    assert len(load(raw).gallery.tags) == 50
    raw["galleryTags"]["one-more"] = "v"
    assert the_problem(raw) == "galleryTags: has 51 tags; Azure allows at most 50"


# --- the publisher ----------------------------------------------------------------------------------------------------


def test_the_publisher_is_a_user_unless_said_otherwise() -> None:
    raw = sc.base()
    del raw["publisherPrincipalType"]
    publisher = load(raw).publisher
    assert publisher is not None and publisher.principal_type == "User"


def test_publisher_access_and_marketplace_keys() -> None:
    raw = sc.base()
    raw.pop("publisherPrincipalId")
    raw.update(publisherAccess="partnerCenterServicePrincipals", publisherTenantId=sc.PRINCIPAL, marketplace=False)
    spec = load(raw)
    assert spec.publisher is not None and spec.publisher.service_principals and spec.publisher.principal_id is None
    assert [(p.key, p.display_name, p.object_id) for p in spec.publisher.principals] == [
        ("resourceProvider", "Microsoft Partner Center Resource Provider", None),
        ("computeImageRegistry", "Compute Image Registry", None),
    ], "found by the names Microsoft publishes: no ID is assumed"
    assert spec.gallery.marketplace is False
    assert any(
        p.startswith("publisherAccess: 'sp' is not one of") for p in problems_of({**raw, "publisherAccess": "sp"})
    )
    bad_graph = {**raw, "graphEndpoint": "http://graph.example"}
    assert any(p.startswith("graphEndpoint: ") and "https://" in p for p in problems_of(bad_graph))
    assert load(sc.base()).gallery.marketplace is True
    assert load(sc.base()).publisher.access == "owner"  # type: ignore[union-attr]


SERVICE_PRINCIPALS = {"publisherAccess": "partnerCenterServicePrincipals", "publisherPrincipalId": DELETE}
REGISTRY_OBJECT = "5e5e5e5e-0000-4000-8000-000000000001"


def with_principal_ids(ids: Any, access: dict[str, Any] = SERVICE_PRINCIPALS) -> dict[str, Any]:
    raw = {**sc.base(), **access, "partnerCenterPrincipalIds": ids}
    return {k: v for k, v in raw.items() if v is not DELETE}


def test_a_principals_object_id_can_be_configured() -> None:
    publisher = load(with_principal_ids({"computeImageRegistry": REGISTRY_OBJECT.upper()})).publisher
    assert publisher is not None
    assert [(p.key, p.object_id) for p in publisher.principals] == [
        ("resourceProvider", None),
        ("computeImageRegistry", REGISTRY_OBJECT),
    ]


@pytest.mark.parametrize(
    ("ids", "expected"),
    [
        (
            {"computeImageRegistry": "5947d96b"},
            "partnerCenterPrincipalIds.computeImageRegistry: '5947d96b' is not a GUID",
        ),
        ({"computeImageRegistry": 42}, "partnerCenterPrincipalIds.computeImageRegistry: must be a non-empty string"),
        ({"imageRegistry": REGISTRY_OBJECT}, "partnerCenterPrincipalIds.imageRegistry: unknown key"),
        ("5947d96b-019a-46ba-ad4b-8ffc6f493b2e", "partnerCenterPrincipalIds: must be an object"),
    ],
)
def test_configured_principal_ids_are_validated(ids: Any, expected: str) -> None:
    found = the_problem(with_principal_ids(ids))
    assert found.startswith(expected), found


def test_configured_principal_ids_need_the_service_principal_access() -> None:
    found = the_problem(with_principal_ids({"computeImageRegistry": REGISTRY_OBJECT}, access={}))
    assert found == "partnerCenterPrincipalIds: is only used with publisherAccess: partnerCenterServicePrincipals"


# --- endpoints and the audience ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "path", "fragment"),
    [
        (
            {"armEndpoint": "https://management.azure.com/subscriptions/" + sc.SUBSCRIPTION},
            "armEndpoint",
            "has a path (/subscriptions/81bfe33b-d336-4213-9088-9360410b0807): the VM steps add ARM's resource paths "
            "and api-version themselves; write 'https://management.azure.com', the endpoint alone",
        ),
        ({"armEndpoint": "https://management.azure.com/2024-03-03"}, "armEndpoint", "has a path (/2024-03-03)"),
        ({"armEndpoint": "https://management.azure.com/metadata/endpoints"}, "armEndpoint", "has a path (/metadata"),
        (
            {"graphEndpoint": "https://graph.microsoft.com/v1.0"},
            "graphEndpoint",
            "'https://graph.microsoft.com/v1.0' has a path (/v1.0): the checks add /v1.0/... themselves; write "
            "'https://graph.microsoft.com', the endpoint alone",
        ),
        ({"graphEndpoint": "https://graph.microsoft.us/beta/"}, "graphEndpoint", "has a path (/beta)"),
        (
            {"armAudience": "https://management.core.windows.net/.default"},
            "armAudience",
            "'https://management.core.windows.net/.default' is a scope, not an audience: the token is requested for "
            "<audience>/.default; write 'https://management.core.windows.net'",
        ),
    ],
)
def test_an_endpoint_with_a_path_or_an_audience_given_as_a_scope_is_refused(
    extra: dict[str, Any], path: str, fragment: str
) -> None:
    found = the_problem(with_keys(extra))
    assert found.startswith(f"{path}: ") and fragment in found, found


@pytest.mark.parametrize(
    "path",
    ["/providers/Microsoft.Compute", "/resourceGroups/rg-images", "/subscriptions", "/locations/westeurope", "/v1.0"],
)
def test_every_arm_resource_path_and_version_is_refused_in_the_endpoint(path: str) -> None:
    found = the_problem(with_keys({"armEndpoint": f"https://management.azure.com{path}"}))
    assert found.startswith(f"armEndpoint: 'https://management.azure.com{path}' has a path ({path})"), found


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (
            {"armEndpoint": "https://management.azure.com/tenants"},
            "armEndpoint: 'https://management.azure.com/tenants'",
        ),
        (
            {"armEndpoint": "https://management.azure.com/?api-version=2024-03-03"},
            "must be a plain https://host[:port][/path] URL (no credentials, query or fragment)",
        ),
        ({"armEndpoint": "https://user:pw@management.azure.com"}, "no credentials, query or fragment"),
        ({"armEndpoint": "https://management.azure.com#top"}, "no credentials, query or fragment"),
    ],
)
def test_an_endpoint_with_more_than_a_host_and_path_is_refused(extra: dict[str, Any], fragment: str) -> None:
    found = the_problem(with_keys(extra))
    assert fragment in found and found.startswith("armEndpoint: "), found


@pytest.mark.parametrize(
    "extra",
    [
        {"armEndpoint": "https://management.local.azurestack.external/"},
        {"armEndpoint": "https://management.usgovcloudapi.net", "graphEndpoint": "https://graph.microsoft.us/"},
        {"armAudience": "https://management.adfs.azurestack.local/4de154de-f8a8-4017-af41-df619da68155"},
    ],
)
def test_sovereign_and_azure_stack_endpoints_are_accepted(extra: dict[str, Any]) -> None:
    assert load(with_keys(extra)).warnings == ()


def test_an_arm_endpoint_below_another_path_is_warned_about() -> None:
    stack = load(with_keys({"armEndpoint": "https://proxy.contoso.example/arm"}))
    assert stack.azure.arm_endpoint == "https://proxy.contoso.example/arm"
    (warning,) = stack.warnings
    assert warning.startswith("armEndpoint: 'https://proxy.contoso.example/arm' has a path (/arm)")


def test_only_the_trailing_slash_of_an_endpoint_is_removed() -> None:
    stack = load(
        with_keys(
            {
                "armEndpoint": "https://MANAGEMENT.CONTOSO.BOX/",
                "graphEndpoint": "https://GRAPH.CONTOSO.BOX/",
                "publisherAccess": "partnerCenterServicePrincipals",
            }
        )
    )
    assert stack.azure.arm_endpoint == "https://MANAGEMENT.CONTOSO.BOX"
    assert stack.publisher is not None and stack.publisher.graph_endpoint == "https://GRAPH.CONTOSO.BOX"
    owner = load(with_keys({"graphEndpoint": "https://GRAPH.CONTOSO.BOX/"}))
    assert owner.publisher is not None and owner.publisher.graph_endpoint == "https://GRAPH.CONTOSO.BOX"


def test_a_malformed_principal_with_its_tenant_is_one_problem() -> None:
    raw = sc.base()
    raw["publisherPrincipalId"] = "not-a-guid"
    raw["publisherTenantId"] = "62913c05-bccf-437c-868c-53cdabfbe8d4"
    assert the_problem(raw).startswith("publisherPrincipalId: 'not-a-guid' is not a GUID")


def test_the_smallest_poll_interval_is_accepted() -> None:
    raw = sc.base()
    raw["armPollIntervalSeconds"] = 1
    assert load(raw).azure.poll_interval_seconds == 1
