"""Promoted versions in config, under the SDK's mocks and in the offline plan: no chain, the source taken from
the promotion checks' output, another stack read through a StackReference (unknown until it is read)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import config
from commands import plan
from hooks.errors import ConfigError
from tests.unit import stack_configs as sc

VERSION_T = "azure-native:compute:GalleryImageVersion"
SOURCE_ID = (
    f"/subscriptions/{sc.SUBSCRIPTION}/resourceGroups/rg-dev/providers/Microsoft.Compute/galleries/dev_gallery"
    "/images/ubuntu/versions/1.2.3"
)


def promoting(**source: Any) -> dict[str, Any]:
    """base() with its Linux version promoted instead of captured."""
    raw = sc.base()
    version = raw["images"][0]["versions"][0]
    del version["sourceVm"]
    version["sourceVersion"] = source or {"stack": "dev", "version": "ubuntu/1.2.3"}
    del raw["sourceVms"]["linux-src"]
    return raw


def problems(raw: dict[str, Any], stack: str | None = "prod") -> list[str]:
    with pytest.raises(ConfigError) as caught:
        config.load(raw, ["sourceVms"], stack=stack)
    return caught.value.problems


def test_both_forms_load() -> None:
    by_stack = config.load(promoting(), ["sourceVms"], stack="prod").images[0].versions[0]
    assert by_stack.source_vm is None and by_stack.source_version is not None
    assert by_stack.source_version.label == "stack dev: ubuntu 1.2.3"
    assert by_stack.source_version.export_key == "ubuntu/1.2.3"
    by_id = config.load(promoting(id=SOURCE_ID), ["sourceVms"]).images[0].versions[0]
    assert by_id.source_version is not None and by_id.source_version.id is not None
    assert by_id.source_version.id.id == SOURCE_ID


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ({"stack": "prod", "version": "ubuntu/1.2.3"}, "sourceVersion.stack: 'prod' is this stack itself"),
        ({"stack": "dev"}, "sourceVersion.version: is required"),
        ({"stack": "dev", "version": "ubuntu-1.2.3"}, "sourceVersion.version: 'ubuntu-1.2.3' is not <definition>/"),
        ({"stack": "a b", "version": "ubuntu/1.2.3"}, "sourceVersion.stack: 'a b' is not a stack name"),
        ({"id": "/subscriptions/x/vm"}, "sourceVersion.id: '/subscriptions/x/vm' is not a gallery image version"),
        ({"id": SOURCE_ID, "stack": "dev", "version": "u/1.0.0"}, "sourceVersion: set id (the source version's"),
        ({"stak": "dev"}, "sourceVersion.stak: unknown key"),
    ],
)
def test_malformed_sources_are_refused_with_their_key_path(source: dict[str, Any], expected: str) -> None:
    found = problems(promoting(**source))
    assert any(p.startswith("images[0].versions[0].") and expected in p for p in found), found


def test_sourcevm_and_sourceversion_together_are_refused() -> None:
    raw = sc.base()
    raw["images"][0]["versions"][0]["sourceVersion"] = {"id": SOURCE_ID}
    assert any("set sourceVm (capture from a VM) or sourceVersion" in p for p in problems(raw))


def test_neither_source_names_both_options() -> None:
    raw = promoting()
    del raw["images"][0]["versions"][0]["sourceVersion"]
    assert any("sourceVm: is required (or sourceVersion" in p for p in problems(raw))


def run(raw: dict[str, Any], stack: str = "prod") -> list[plan.PlannedResource]:
    values, secrets = sc.as_engine_config(raw)
    return plan.run_program("image-gallery", stack, values, secrets).resources


def test_a_promoted_version_has_no_chain_and_takes_its_source_from_the_checks() -> None:
    resources = run(promoting())
    names = {r.name for r in resources}
    assert "ubuntu-1.2.3-promotion" in names
    assert "ubuntu-1.2.3-guest" not in names and "ubuntu-1.2.3-vm" not in names
    [ref] = [r for r in resources if r.type == plan.STACK_REFERENCE]
    assert ref.options["read"] == "dev"
    [promotion] = [r for r in resources if r.type == plan.DYNAMIC_PROMOTION]
    assert ref.urn in promotion.depends_on
    assert promotion.inputs["source_id"] == plan.UNKNOWN, "dev's outputs are unknown until the engine reads them"
    assert promotion.inputs["source"]["export_key"] == "ubuntu/1.2.3"
    [version] = [r for r in resources if r.type == VERSION_T and r.name == "ubuntu-1.2.3"]
    assert promotion.urn in version.depends_on
    assert promotion.urn in version.property_dependencies["storageProfile"], "the copy must wait for the checks"
    # The captured Windows version beside it keeps its chain.
    assert {"win2022-0.0.1-guest", "win2022-0.0.1-vm"} <= names


def test_a_source_given_by_id_needs_no_stack_reference() -> None:
    resources = run(promoting(id=SOURCE_ID))
    assert not [r for r in resources if r.type == plan.STACK_REFERENCE]
    [version] = [r for r in resources if r.type == VERSION_T and r.name == "ubuntu-1.2.3"]
    assert version.inputs["storageProfile"] == {"source": {"id": SOURCE_ID}}


def test_promoted_versions_are_exported_like_captured_ones() -> None:
    values, secrets = sc.as_engine_config(promoting())
    exports = plan.run_program("image-gallery", "prod", values, secrets).exports
    assert set(exports["versionIds"]) == {"ubuntu/1.2.3", "win2022/0.0.1"}


PROD_STACK = """\
config:
  azure-native:subscriptionId: 81bfe33b-d336-4213-9088-9360410b0807
  image-gallery:galleryName: contoso_images_prod
  image-gallery:galleryResourceGroup: rg-images-prod
  image-gallery:galleryLocation: westeurope
  image-gallery:images:
    - name: ubuntu-2204-hardened
      osType: Linux
      identifier: {publisher: contoso, offer: ubuntu-hardened, sku: 22_04-gen2}
      versions:
        - version: 1.0.0
          sourceVersion: {stack: dev, version: ubuntu-2204-hardened/1.0.0}
          targetRegions: [{name: westeurope}]
"""


def test_offline_plan_shows_where_it_comes_from(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "Pulumi.yaml").write_text((plan.ROOT / "Pulumi.yaml").read_text())
    (tmp_path / "Pulumi.prod.yaml").write_text(PROD_STACK)
    assert plan.main(["prod"], tmp_path) == 0
    out = capsys.readouterr().out
    assert "promoted from stack dev: ubuntu-2204-hardened 1.0.0" in out
    assert "source version ID: unknown until stack dev is read" in out
    assert '"<unknown until the stack it comes from is read>"' in out
    assert "its image definition matches the target definition" in out
    assert "StackReference  source-stack-dev  (read: the outputs of stack dev)" in out
