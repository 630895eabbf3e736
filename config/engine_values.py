"""The config as the engine and the stack file hand it over: this project's keys out of the engine's values
(`parse_engine_values`), keys set in a misspelt namespace (`stray_keys`), and which values the stack file holds
in plaintext (`plain_leaf_paths`), so that a secret written in plaintext is refused field by field.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from config.constants import PROJECT, SCALAR_KEYS


def parse_engine_values(values: Mapping[str, str], project: str = PROJECT) -> dict[str, Any]:
    """This project's keys (prefix removed), as the engine passes them: scalars stay strings, structured values
    arrive as JSON. Never raises: `load` reports unknown keys and malformed values with everything else."""
    raw: dict[str, Any] = {}
    for full, value in values.items():
        namespace, _, key = full.partition(":")
        if namespace != project:
            continue
        if key in SCALAR_KEYS or not isinstance(value, str):
            raw[key] = value
            continue
        try:
            raw[key] = json.loads(value)
        except json.JSONDecodeError:
            raw[key] = value  # reported by load: not a list / not an object / unknown key
    return raw


def _squash(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def stray_keys(keys: Iterable[str], project: str = PROJECT) -> dict[str, str]:
    """Keys set in a namespace close to ours (`image-galery:publisherRole`, `imagegallery:galleryName`): they do
    nothing, so the user's value is silently replaced by the default. Our key -> the full key as written."""
    strays: dict[str, str] = {}
    for full in keys:
        namespace, sep, key = full.partition(":")
        if not sep or namespace == project:
            continue
        close = _squash(namespace) == _squash(project)
        if close or difflib.SequenceMatcher(None, namespace.lower(), project).ratio() >= 0.85:
            strays.setdefault(key, full)
    return strays


def stray_warning(full: str, project: str = PROJECT) -> str:
    namespace, _, key = full.partition(":")
    return (
        f"{full} is set in namespace {namespace!r}, not {project!r}, so it does nothing; did you mean {project}:{key}?"
    )


def plain_leaf_paths(stack_config: Mapping[str, Any], project: str = PROJECT) -> frozenset[str]:
    """Key paths (`sourceVms.vm.ssh.privateKey`, `images[0].name`) of this project's values written in plaintext in
    a stack file's `config:` map; `{secure: ...}` leaves are not among them."""
    found: set[str] = set()

    def walk(value: Any, path: str) -> None:
        if isinstance(value, Mapping):
            if set(value) == {"secure"}:
                return
            for k, v in value.items():
                walk(v, f"{path}.{k}")
        elif isinstance(value, list):
            for i, v in enumerate(value):
                walk(v, f"{path}[{i}]")
        else:
            found.add(path)

    for full, value in stack_config.items():
        namespace, sep, key = str(full).partition(":")
        if (namespace if sep else project) == project:
            walk(value, key if sep else namespace)
    return frozenset(found)


def stack_file_plain_paths(project: str, stack: str) -> frozenset[str] | None:
    """plain_leaf_paths of `Pulumi.<stack>.yaml` in the project directory; None when it cannot be read (config
    from elsewhere, e.g. `--config-file`): then the rule falls back to the top-level key."""
    try:
        doc = yaml.safe_load((Path.cwd() / f"Pulumi.{stack}.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return None
    stack_config = doc.get("config") if isinstance(doc, dict) else None
    return plain_leaf_paths(stack_config, project) if isinstance(stack_config, dict) else None
