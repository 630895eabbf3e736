"""`images[]` (config.images): each gallery image definition's identity, what it claims (features, security type,
recommended sizes, plan image type), its Marketplace details, and its latest version. Its versions are
test_versions.py's, its test boot test_test_boot.py's."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

import config
from tests.unit import stack_configs as sc
from tests.unit.config.one_change import (
    DELETE,
    Rule,
    assert_reported,
    assert_rule,
    config_with,
    load,
    problems_of,
    rule_cases,
    the_problem,
)


def with_definition(**fields: Any) -> dict[str, Any]:
    """stack_configs.base() with these fields of images[0] set."""
    raw = sc.base()
    raw["images"][0].update(fields)
    return raw


RULES: list[Rule] = [
    ({"images": DELETE}, "images", "is required and must list at least one entry"),
    ({"images": []}, "images", "must list at least one entry"),
    ({"images": "ubuntu"}, "images", "must be a list, got str"),
    ({"images[1]": "windows"}, "images[1]", "must be an object, got str"),
    ({"images[0].name": DELETE}, "images[0].name", "is required"),
    ({"images[0].name": "-ubuntu"}, "images[0].name", "'-ubuntu' is not a valid image definition name"),
    ({"images[0].name": "ubuntu."}, "images[0].name", "is not a valid image definition name"),
    ({"images[0].name": "ubuntu 22"}, "images[0].name", "is not a valid image definition name"),
    ({"images[0].name": "u" * 81}, "images[0].name", "(1-80 letters, digits, '.', '_', '-')"),
    ({"images[0].osType": DELETE}, "images[0].osType", "is required"),
    ({"images[0].osType": "linux"}, "images[0].osType", "'linux' is not one of 'Linux', 'Windows'"),
    ({"images[0].osState": "Generalised"}, "images[0].osState", "is not one of 'Generalized', 'Specialized'"),
    ({"images[0].hyperVGeneration": "V3"}, "images[0].hyperVGeneration", "'V3' is not one of 'V1', 'V2'"),
    ({"images[0].architecture": "arm64"}, "images[0].architecture", "'arm64' is not one of 'x64', 'Arm64'"),
    ({"images[0].securityType": "Trusted"}, "images[0].securityType", "'Trusted' is not one of 'Standard'"),
    (
        {"images[0].hyperVGeneration": "V1", "images[0].securityType": "TrustedLaunch"},
        "images[0].securityType",
        "TrustedLaunch needs hyperVGeneration V2",
    ),
    (
        {"images[0].hyperVGeneration": "V1", "images[0].architecture": "Arm64"},
        "images[0].architecture",
        "Arm64 images need hyperVGeneration V2",
    ),
    ({"images[0].identifier": DELETE}, "images[0].identifier", "is required"),
    ({"images[0].identifier.sku": DELETE}, "images[0].identifier.sku", "is required"),
    ({"images[0].identifier.offer": "ubuntu server"}, "images[0].identifier.offer", "is not a valid identifier part"),
    ({"images[0].identifier.publisher": "-contoso"}, "images[0].identifier.publisher", "is not a valid identifier"),
    ({"images[0].identifier.sku": "s" * 129}, "images[0].identifier.sku", "up to 128"),
    (
        {"images[0].recommended": {"minVCpus": 16, "maxVCpus": 2}},
        "images[0].recommended.minVCpus",
        "16 is larger than maxVCpus (2)",
    ),
    (
        {"images[0].recommended": {"minMemoryGb": 64, "maxMemoryGb": 8}},
        "images[0].recommended.minMemoryGb",
        "64 is larger than maxMemoryGb (8)",
    ),
    ({"images[0].recommended": {"minVCpus": 0}}, "images[0].recommended.minVCpus", "0 is out of range 1-1024"),
    ({"images[0].recommended": {"maxMemoryGb": "lots"}}, "images[0].recommended.maxMemoryGb", "must be an integer"),
    ({"images[0].endOfLifeDate": "31/12/2028"}, "images[0].endOfLifeDate", "'31/12/2028' is not an ISO date"),
    ({"images[0].endOfLifeDate": "2028-12-31junk"}, "images[0].endOfLifeDate", "is not an ISO date (YYYY-MM-DD)"),
    ({"images[0].endOfLifeDate": 2028}, "images[0].endOfLifeDate", "2028 is not an ISO date"),
    ({"images[0].endOfLifeDate": "2026-11-22"}, "images[0].endOfLifeDate", "2026-11-22 is not in the future"),
    ({"images[0].endOfLifeDate": date(2020, 1, 1)}, "images[0].endOfLifeDate", "2020-01-01 is not in the future"),
]


@pytest.mark.parametrize(("changes", "path", "fragment"), rule_cases(RULES))
def test_rule(changes: dict[str, Any], path: str, fragment: str) -> None:
    assert_rule(changes, path, fragment)


# --- recommended sizes at their bounds --------------------------------------------------------------------------------


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


def test_equal_minimum_and_maximum_memory_is_accepted() -> None:
    stack = load(config_with({"images[0].recommended": {"minMemoryGb": 8, "maxMemoryGb": 8}}))
    assert (stack.images[0].min_memory_gb, stack.images[0].max_memory_gb) == (8, 8)


# --- features, security type, purchase plan, disallowed disk types ----------------------------------------------------


def test_features_plan_and_disallowed_are_read() -> None:
    raw = with_definition(
        features={"diskControllerTypes": ["NVMe", "SCSI"], "acceleratedNetwork": True, "hibernate": False},
        purchasePlan={"name": "gen2", "publisher": "contoso", "product": "ubuntu-hardened"},
        disallowedDiskTypes=["Standard_LRS"],
    )
    d = load(raw).images[0]
    assert d.disk_controller_types == ("SCSI", "NVMe")
    assert (d.accelerated_network, d.hibernate) == (True, False)
    assert d.purchase_plan == config.PurchasePlanSpec("gen2", "contoso", "ubuntu-hardened")
    assert d.disallowed_disk_types == ("Standard_LRS",)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"features": {"diskControllerTypes": ["IDE"]}}, "images[0].features.diskControllerTypes[0]: 'IDE' is not"),
        ({"features": {"diskControllerTypes": []}}, "images[0].features.diskControllerTypes: must list"),
        (
            {"hyperVGeneration": "V1", "securityType": "Standard", "features": {"diskControllerTypes": ["NVMe"]}},
            "images[0].features.diskControllerTypes: NVMe needs hyperVGeneration V2",
        ),
        ({"features": {"acceleratedNetworking": True}}, "images[0].features.acceleratedNetworking: unknown key"),
        ({"purchasePlan": {"name": "p", "publisher": "c"}}, "images[0].purchasePlan.product: is required"),
        ({"purchasePlan": {"name": "p", "product": "x"}}, "images[0].purchasePlan.publisher: is required"),
        ({"purchasePlan": {"publisher": "c", "product": "x"}}, "images[0].purchasePlan.name: is required"),
        ({"disallowedDiskTypes": ["Premium"]}, "images[0].disallowedDiskTypes[0]: 'Premium' is not one of"),
        ({"privacyStatementUri": "contoso privacy"}, "images[0].privacyStatementUri: 'contoso privacy' is not an"),
    ],
)
def test_definition_fields_are_validated(fields: dict[str, Any], expected: str) -> None:
    assert any(p.startswith(expected) for p in problems_of(with_definition(**fields))), problems_of(
        with_definition(**fields)
    )


def test_an_arm64_confidential_definition_is_refused() -> None:
    raw = sc.base()
    raw["images"][0].update(architecture="Arm64", securityType="ConfidentialVmSupported")
    found = the_problem(raw)
    assert found.startswith("images[0].securityType: ConfidentialVmSupported needs an x64 definition"), found


def test_a_plain_http_link_for_customers_is_accepted() -> None:
    raw = sc.base()
    raw["images"][0]["privacyStatementUri"] = "http://contoso.example/privacy"
    assert load(raw).images[0].privacy_statement_uri == "http://contoso.example/privacy"


# --- the Marketplace's plan image type --------------------------------------------------------------------------------


def test_plan_image_type_must_fit_the_generation() -> None:
    assert load(with_definition(planImageType="x64Gen2")).images[0].plan_image_type == "x64Gen2"
    (found,) = problems_of(with_definition(planImageType="x64Gen1"))
    assert found.startswith(
        "images[0].planImageType: x64Gen1 needs architecture x64 and hyperVGeneration V1, but the definition has "
        "architecture x64 and hyperVGeneration V2"
    )
    assert "https://learn.microsoft.com/partner-center/" in found
    raw = with_definition(planImageType="x64Gen2")
    raw["marketplace"] = False
    assert problems_of(raw) == ["images[0].planImageType: is a Marketplace rule: remove it, or set marketplace: true"]


def test_a_plan_image_type_outside_the_marketplace_is_one_problem() -> None:
    raw = sc.base()
    raw["marketplace"] = False
    raw["images"][0]["planImageType"] = "x64Gen1"  # would not fit the V2 definition either: not said twice
    assert the_problem(raw) == "images[0].planImageType: is a Marketplace rule: remove it, or set marketplace: true"


def test_plan_image_types_are_spelled_as_the_ingestion_api_spells_them() -> None:
    # Partner Center's Product Ingestion API spells imageType with a lowercase first letter (x64Gen2, arm64Gen2).
    assert sorted(config.PLAN_IMAGE_TYPES) == ["arm64Gen2", "x64Gen1", "x64Gen2"]
    arm = with_definition(architecture="Arm64", planImageType="arm64Gen2")
    stack = load(arm)
    assert (stack.images[0].plan_image_type, stack.warnings) == ("arm64Gen2", ())


def test_the_old_arm64_spelling_is_read_with_a_warning() -> None:
    stack = load(with_definition(architecture="Arm64", planImageType="Arm64Gen2"))
    assert stack.images[0].plan_image_type == "arm64Gen2"
    assert stack.warnings == (
        "images[0].planImageType: 'Arm64Gen2' is the old spelling; write 'arm64Gen2', as Partner Center's Product "
        "Ingestion API spells the image type (read as that)",
    )
    (found,) = problems_of(with_definition(planImageType="Arm64Gen2"))  # still checked against the definition
    assert found.startswith("images[0].planImageType: arm64Gen2 needs architecture Arm64 and hyperVGeneration V2")
    (unknown,) = problems_of(with_definition(planImageType="X64Gen2"))
    assert unknown.startswith("images[0].planImageType: 'X64Gen2' is not one of"), unknown


# --- the latest version -----------------------------------------------------------------------------------------------


def test_latest_version_skips_excluded_ones() -> None:
    versions = [
        config.ImageVersionSpec(v, None, (), exclude_from_latest=x)
        for v, x in (("1.10.0", False), ("1.9.0", False), ("2.0.0", True))
    ]
    d = config.ImageDefinitionSpec(
        "d", "Linux", "Generalized", "V2", "x64", "Standard", "p", "o", "s", versions=tuple(versions)
    )
    assert d.latest_version == "1.10.0"


def test_an_empty_list_of_disk_controllers_is_refused() -> None:
    assert the_problem(with_definition(features={"diskControllerTypes": []})) == (
        "images[0].features.diskControllerTypes: must list SCSI, NVMe or both (or be left out: SCSI only)"
    )


def test_a_misspelt_purchase_plan_key_is_refused() -> None:
    plan = {"name": "p", "publisher": "contoso", "product": "x", "prodcut": "x"}
    found = the_problem(with_definition(purchasePlan=plan))
    assert found.startswith("images[0].purchasePlan.prodcut: unknown key") and "did you mean 'product'?" in found, found
