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

from config import stack_yaml
from config.constants import PROJECT, SCALAR_KEYS

_ATOI = re.compile(r"[+-]?[0-9]+")
"""strconv.Atoi's syntax (base 10, an optional sign, no underscores)."""
_TYPE_ADVICE = {
    "boolean": "write true or false (yes, no, on and off are text to the Pulumi CLI, as in YAML 1.2)",
    "integer": "write a whole number, e.g. 15",
    "string": "write one value, not a list or a mapping",
    "array": "write a list",
}


def parse_engine_values(values: Mapping[str, str], project: str = PROJECT) -> dict[str, Any]:
    """This project's keys (prefix removed), as the engine passes them: scalars stay strings, structured values
    arrive as JSON; other namespaces' keys under their full names, as they are (`azure-native:clientId`). Never
    raises: `load` reports unknown keys and malformed values with everything else."""
    raw: dict[str, Any] = {}
    for full, value in values.items():
        namespace, _, key = full.partition(":")
        if namespace != project:
            raw[full] = value  # another namespace's key, as the engine passes it (load checks azure-native's)
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
    a stack file's `config:` map, and other namespaces' under their full keys (`azure-native:clientSecret`);
    `{secure: ...}` leaves are not among them."""
    found: set[str] = set()

    def walk(value: Any, path: str) -> None:
        if isinstance(value, Mapping):
            if stack_yaml.is_secure(value):
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
        own = (namespace if sep else project) == project
        walk(value, (key if sep else namespace) if own else str(full))
    return frozenset(found)


def stack_file_plain_paths(project: str, stack: str) -> frozenset[str] | None:
    """plain_leaf_paths of `Pulumi.<stack>.yaml` in the project directory; None when it cannot be read (config
    from elsewhere, e.g. `--config-file`): then the rule falls back to the top-level key."""
    try:
        doc = stack_yaml.load((Path.cwd() / f"Pulumi.{stack}.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return None
    stack_config = doc.get("config") if isinstance(doc, dict) else None
    return plain_leaf_paths(stack_config, project) if isinstance(stack_config, dict) else None


def declared_type_problems(
    declared: Mapping[str, Any], stack_values: Mapping[str, Any], secret_keys: Iterable[str], project: str = PROJECT
) -> list[str]:
    """What the CLI refuses before the program runs: a stack value not of the type Pulumi.yaml declares for its key
    (pkg/workspace/config.go `validateStackConfigValues`, sdk/go/common/workspace/project.go `ValidateConfigValue`).

    `stack_values` maps full keys to the values as read from the stack file (`config.stack_yaml`); the keys in
    `secret_keys` are skipped (the CLI checks the decrypted value; the plan never decrypts)."""
    secret = set(secret_keys)
    problems: list[str] = []
    for key in sorted(declared):
        declaration = declared[key]
        full = key if ":" in key else f"{project}:{key}"
        if not isinstance(declaration, Mapping) or "type" not in declaration or full not in stack_values:
            continue
        if full in secret:
            continue
        raw = stack_values[full]
        # The CLI checks the value it hands over: text for a scalar, the parsed JSON for a list or a mapping.
        content = raw if isinstance(raw, Mapping | list) else stack_yaml.engine_value(raw)
        kind = str(declaration["type"])
        if not _cli_accepts(kind, declaration.get("items"), content):
            shown = "a mapping" if isinstance(raw, Mapping) else "a list" if isinstance(raw, list) else repr(content)
            name = key.partition(":")[2] if full.startswith(f"{project}:") and ":" in key else key
            problems.append(
                f"{name}: {shown} is not of type {_type_name(kind, declaration.get('items'))}, as Pulumi.yaml "
                f"declares it; {_TYPE_ADVICE.get(kind, 'fix the value')}"
            )
    return problems


def _cli_accepts(kind: str, items: Any, value: Any) -> bool:
    """sdk/go/common/workspace/project.go `ValidateConfigValue`."""
    if kind == "string":
        return isinstance(value, str)
    if kind == "integer":
        if isinstance(value, bool):
            return False
        if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
            return True
        return isinstance(value, str) and _ATOI.fullmatch(value) is not None and -(2**63) <= int(value) < 2**63
    if kind == "boolean":
        return isinstance(value, bool) or value in ("true", "false")
    if kind == "object":
        return isinstance(value, Mapping)
    if not isinstance(value, list) or not isinstance(items, Mapping):
        return False
    return all(_cli_accepts(str(items.get("type")), items.get("items"), item) for item in value)


def _type_name(kind: str, items: Any) -> str:
    if kind == "array" and isinstance(items, Mapping):
        return f"array<{_type_name(str(items.get('type')), items.get('items'))}>"
    return kind
