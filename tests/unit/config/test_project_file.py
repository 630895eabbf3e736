"""Pulumi.yaml is read by the real Pulumi CLI, which we do not have here: check it against the CLI's rules, and
check that its declared defaults are the loader's defaults."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import yaml

import config
from commands import stack_file
from tests.unit import stack_configs as sc

ROOT = Path(__file__).resolve().parents[3]
# sdk/go/common/workspace/project.json: a declared key needs `type`, one of these, and `items` for arrays;
# no other attribute than type, items, description, secret, default.
SIMPLE_TYPES = {"string", "integer", "boolean", "array"}
ALLOWED_ATTRIBUTES = {"type", "items", "description", "secret", "default"}


def project() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    return doc


def test_the_project_file_follows_the_cli_schema() -> None:
    assert stack_file.check_project_file(yaml.safe_load((ROOT / "Pulumi.yaml").read_text())) == []


def test_project_file_follows_the_cli_schema() -> None:
    doc = project()
    assert doc["name"] == "image-gallery"
    assert doc["runtime"] == {"name": "python", "options": {"toolchain": "uv"}}
    for key, declaration in doc["config"].items():
        assert isinstance(declaration, dict), key
        assert set(declaration) <= ALLOWED_ATTRIBUTES, f"{key}: {set(declaration) - ALLOWED_ATTRIBUTES}"
        assert declaration.get("type") in SIMPLE_TYPES, f"{key}: type must be one of {SIMPLE_TYPES}"
        if declaration["type"] == "array":
            assert "items" in declaration, key
        if "default" in declaration:
            python_type = {"string": str, "integer": int, "boolean": bool}[declaration["type"]]
            assert isinstance(declaration["default"], python_type), key
        assert declaration.get("description"), f"{key} needs a description"


def test_every_scalar_key_is_declared_and_nothing_else() -> None:
    assert set(project()["config"]) == set(config.SCALAR_KEYS)


def test_declared_defaults_are_the_loaders_defaults() -> None:
    raw = sc.base()
    for key in config.SCALAR_KEYS:
        if key not in ("galleryName", "galleryResourceGroup", "galleryLocation"):
            raw.pop(key, None)
    today = datetime.date(2026, 11, 22)
    without = config.load(raw, ["sourceVms"], today)
    defaults = {k: stack_file._engine_value(d["default"]) for k, d in project()["config"].items() if "default" in d}
    with_defaults = config.load({**raw, **defaults}, ["sourceVms"], today)
    assert with_defaults == without
