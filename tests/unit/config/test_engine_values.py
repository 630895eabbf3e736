"""The config as the engine hands it over (config.engine_values): keys set in a misspelt namespace are found, in
the engine's values and in the stack file, and warned about with the key meant."""

from __future__ import annotations

from pathlib import Path

import config
from commands import stack_file
from tests.unit import stack_configs as sc
from tests.unit.config.one_change import TODAY

ROOT = Path(__file__).resolve().parents[3]


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


def test_a_key_in_a_misspelt_namespace_is_found_in_the_stack_file(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
    dev = (ROOT / "Pulumi.dev.yaml").read_text()
    text = dev.replace("image-gallery:publisherRole: Owner", "image-galery:publisherRole: ComputeGalleryImageReader")
    (tmp_path / "Pulumi.warned.yaml").write_text(text)
    read = stack_file.read_stack("warned", tmp_path)
    strays = config.stray_keys(read.values, read.project)
    assert strays == {"publisherRole": "image-galery:publisherRole"}
