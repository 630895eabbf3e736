"""The reader of the raw stack config (config.reader): a section of the wrong shape (text where a map belongs, a
list where a map belongs) is one problem at its key path, never a traceback and never a cascade of problems that
follow from the first; an unknown key is refused, with the key probably meant; region names are read as Azure
writes them, or passed with the explicit override."""

from __future__ import annotations

from typing import Any

import pytest

import config
from hooks.errors import ConfigError
from tests.unit import stack_configs as sc
from tests.unit.config.one_change import (
    DELETE,
    PRINCIPAL,
    SSH,
    SYSPREP,
    TODAY,
    VERSION_0,
    WINRM,
    Rule,
    assert_reported,
    assert_rule,
    config_with,
    host_key,
    problems_of,
    rule_cases,
    the_problem,
)

# --- wrong shapes -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("sourceVms.win-build.winrm.sysprep", "vm"),
        ("images[0].identifier", "contoso:ubuntu:22_04"),
        ("images[0].recommended", 4),
        ("images[0].features", ["IsAcceleratedNetworkSupported"]),
    ],
)
def test_a_section_that_is_not_an_object_is_one_problem_at_its_path(path: str, value: Any) -> None:
    problem = the_problem(config_with({path: value}))
    assert problem.startswith(f"{path}: must be an object, got {type(value).__name__}")


@pytest.mark.parametrize("key", ["galleryName", "galleryResourceGroup", "galleryLocation"])
def test_a_missing_gallery_key_is_the_only_problem(key: str) -> None:
    assert the_problem(config_with({key: DELETE})) == f"{key}: is required"


@pytest.mark.parametrize(
    ("path", "value"), [("sourceVms.linux-build.ssh", "10.0.0.4"), ("sourceVms.win-build.winrm", ["x"])]
)
def test_a_connection_block_that_is_not_an_object_is_reported_at_its_path(path: str, value: Any) -> None:
    # (the versions that use the source are then also told it has no usable block)
    assert_reported(problems_of(config_with({path: value})), path, f"must be an object, got {type(value).__name__}")


# --- unknown keys -----------------------------------------------------------------------------------------------------


UNKNOWN_KEYS: list[Rule] = [
    (
        {"galery": {"name": "x"}},
        "galery",
        "unknown key (known keys here: allowUnknownRegions, armAudience, armEndpoint, armOperationTimeoutMinutes",
    ),
    ({"galleryResourcegroup": "rg"}, "galleryResourcegroup", "; did you mean 'galleryResourceGroup'?"),
    ({"publisherPrincipalID": PRINCIPAL}, "publisherPrincipalID", "unknown key"),
    ({"armEndpiont": "https://x"}, "armEndpiont", "unknown key"),
    ({"images[0].osVersion": "22.04"}, "images[0].osVersion", "unknown key"),
    ({"images[0].identifier.plan": "x"}, "images[0].identifier.plan", "unknown key"),
    ({"images[0].recommended": {"minCpus": 2}}, "images[0].recommended.minCpus", "unknown key"),
    ({f"{VERSION_0}.regions": ["westeurope"]}, f"{VERSION_0}.regions", "unknown key"),
    ({f"{VERSION_0}.targetRegions[0].replicas": 2}, f"{VERSION_0}.targetRegions[0].replicas", "unknown key"),
    ({"sourceVms.linux-build.rdp": {}}, "sourceVms.linux-build.rdp", "unknown key"),
    ({f"{SSH}.hostkey": host_key()}, f"{SSH}.hostkey", "unknown key"),
    ({f"{WINRM}.https": True}, f"{WINRM}.https", "unknown key"),
    ({f"{SYSPREP}.skipCheck": ["appx"]}, f"{SYSPREP}.skipCheck", "unknown key"),
]


@pytest.mark.parametrize(("changes", "path", "fragment"), rule_cases(UNKNOWN_KEYS))
def test_unknown_key(changes: dict[str, Any], path: str, fragment: str) -> None:
    assert_rule(changes, path, fragment)


# --- region names -----------------------------------------------------------------------------------------------------


def test_region_display_names_are_normalized_to_short_names() -> None:
    raw = sc.base()
    raw["galleryLocation"] = "West Europe"
    raw["images"][0]["versions"][0]["targetRegions"] = [{"name": "WestEurope"}, {"name": "North Europe"}]
    stack = config.load(raw, ["sourceVms"], TODAY)
    assert stack.gallery.location == "westeurope"
    assert [r.name for r in stack.images[0].versions[0].target_regions] == ["westeurope", "northeurope"]


def test_unknown_regions_pass_only_with_the_explicit_override() -> None:
    raw = sc.base()
    raw["galleryLocation"] = "usgovvirginia"
    with pytest.raises(ConfigError, match="allowUnknownRegions: true"):
        config.load(raw, ["sourceVms"], TODAY)
    stack = config.load({**raw, "allowUnknownRegions": "true"}, ["sourceVms"], TODAY)
    assert stack.gallery.location == "usgovvirginia"
