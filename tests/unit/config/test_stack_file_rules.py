"""What the stack-file rules accept (the bad-stack corpus covers what they refuse): display names of regions,
the explicit overrides, the warnings, and Pulumi.yaml held to the CLI's schema."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
import yaml

import config
from commands import stack_file
from hooks.errors import ConfigError
from tests.unit import stack_configs as sc

ROOT = Path(__file__).resolve().parents[3]
TODAY = date(2026, 11, 22)


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


def test_winrm_over_http_needs_the_opt_in_and_is_warned() -> None:
    raw = sc.base()
    winrm = raw["sourceVms"]["win-src"]["winrm"]
    winrm.update({"useHttps": False, "insecureSkipCertificateValidation": False})
    with pytest.raises(ConfigError, match="allowUnencryptedHttp: true"):
        config.load(raw, ["sourceVms"], TODAY)
    winrm["allowUnencryptedHttp"] = True
    stack = config.load(raw, ["sourceVms"], TODAY)
    spec = stack.source_vms["win-src"].winrm
    assert spec is not None and spec.scheme == "http" and spec.port == 5985
    assert any("plain http" in w for w in stack.warnings)


def test_keys_in_a_misspelt_namespace_are_warned() -> None:
    values, _ = sc.as_engine_config(sc.base())
    values["image-galery:publisherRole"] = "ComputeGalleryImageReader"
    values["imagegallery:galleryDescription"] = "x"
    values["azure-native:location"] = "westeurope"  # another provider's namespace: not ours, not close
    strays = config.stray_keys(values)
    assert strays == {
        "publisherRole": "image-galery:publisherRole",
        "galleryDescription": "imagegallery:galleryDescription",
    }
    stack = config.load(config.parse_engine_values(values), ["sourceVms"], TODAY, strays=strays)
    assert stack.publisher is not None and stack.publisher.role == "Owner"
    assert any("image-galery:publisherRole" in w and "image-gallery:publisherRole" in w for w in stack.warnings)


def test_a_secret_written_in_plaintext_is_refused_even_when_its_key_is_encrypted() -> None:
    raw = sc.base()
    plain = config.plain_leaf_paths({"image-gallery:sourceVms": {"linux-src": {"ssh": {"privateKey": "x"}}}})
    assert plain == {"sourceVms.linux-src.ssh.privateKey"}
    assert config.plain_leaf_paths({"image-gallery:sourceVms": {"w": {"password": {"secure": "v1:x"}}}}) == set()
    with pytest.raises(ConfigError, match=r"sourceVms\.linux-src\.ssh\.privateKey: is stored in plaintext"):
        config.load(raw, ["sourceVms"], TODAY, plain)


def test_the_project_file_follows_the_cli_schema() -> None:
    assert stack_file.check_project_file(yaml.safe_load((ROOT / "Pulumi.yaml").read_text())) == []


def test_a_key_in_a_misspelt_namespace_is_found_in_the_stack_file(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
    dev = (ROOT / "Pulumi.dev.yaml").read_text()
    text = dev.replace("image-gallery:publisherRole: Owner", "image-galery:publisherRole: ComputeGalleryImageReader")
    (tmp_path / "Pulumi.warned.yaml").write_text(text)
    read = stack_file.read_stack("warned", tmp_path)
    strays = config.stray_keys(read.values, read.project)
    assert strays == {"publisherRole": "image-galery:publisherRole"}
