"""The stack file read as the engine reads it: `Pulumi.yaml` and `Pulumi.<stack>.yaml`, what the CLI would refuse
raised as StackFileError. `secure:` values are replaced by "[secret]" and never decrypted.

Shared by the commands (`commands.plan`, `commands.replication`); the Pulumi program gets its config from the
engine instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from config import stack_yaml

ROOT = Path(__file__).resolve().parents[1]
"""The project: Pulumi.yaml and the stack files."""
SECRET = "[secret]"
"""What a `secure:` value reads as (never decrypted)."""


# The CLI's schema of a declared config key (sdk/go/common/workspace/project.json): `type` is one of these,
# `items` is required for arrays, and no other attribute than these is allowed.
SIMPLE_TYPES = ("string", "integer", "boolean", "array")
ALLOWED_ATTRIBUTES = ("type", "items", "description", "secret", "default")
_DEFAULT_TYPES: dict[str, type | tuple[type, ...]] = {"string": str, "integer": int, "boolean": bool, "array": list}


class StackFileError(Exception):
    """The stack file cannot be read as the engine reads it; the message says why and what to do."""


@dataclass
class StackFile:
    """A stack file read as the engine reads it, plus what only the file shows."""

    project: str
    values: dict[str, str]
    """Full keys -> values as the engine passes them (JSON text for structured values)."""
    secret_keys: list[str]
    """Full keys holding at least one `secure:` value (the engine encrypts the whole key)."""
    plain_paths: frozenset[str]
    """This project's key paths written in plaintext (config.plain_leaf_paths)."""


def _read_yaml(path: Path) -> Any:
    """The document of a YAML file as the CLI reads it (go-yaml v3's scalars, a key defined twice refused: see
    config.stack_yaml); a malformed one raises StackFileError naming the file, line and column."""
    try:
        text = path.read_text()
        try:
            return stack_yaml.load(text, fast=True)  # libyaml's parser: ten times faster
        except yaml.YAMLError:
            pass  # reported as PyYAML's own parser words it, below (libyaml words some problems differently)
        return stack_yaml.load(text, fast=False)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        what = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        hint = " (YAML indentation must use spaces, not tabs)" if "\\t" in what or "tab" in what else ""
        raise StackFileError(f"{path.name}{where}: invalid YAML: {what}{hint}") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise StackFileError(f"{path.name}: cannot be read: {exc}") from None


def check_project_file(doc: Any) -> list[str]:
    """Problems of Pulumi.yaml against the CLI's schema (the CLI refuses such a project file too)."""
    if not isinstance(doc, dict):
        return [f"the top level must be a mapping, got {type(doc).__name__}"]
    problems = [] if isinstance(doc.get("name"), str) and doc["name"] else ["name: is required"]
    declared = doc.get("config") or {}
    if not isinstance(declared, dict):
        return [*problems, f"config: must be a mapping, got {type(declared).__name__}"]
    for key, declaration in declared.items():
        if not isinstance(declaration, dict):
            continue  # a plain value: the key's default, as the CLI allows
        unknown = sorted(set(declaration) - set(ALLOWED_ATTRIBUTES))
        if unknown:
            problems.append(
                f"config.{key}: unknown attribute {', '.join(unknown)} (allowed: {', '.join(ALLOWED_ATTRIBUTES)})"
            )
        kind = declaration.get("type")
        if kind not in SIMPLE_TYPES:
            problems.append(f"config.{key}.type: {kind!r} is not one of {', '.join(SIMPLE_TYPES)}")
        elif kind == "array" and "items" not in declaration:
            problems.append(f"config.{key}: an array needs `items`")
        elif "default" in declaration:
            default = declaration["default"]
            if not isinstance(default, _DEFAULT_TYPES[kind]) or (kind == "integer" and isinstance(default, bool)):
                problems.append(f"config.{key}.default: {default!r} is not of type {kind}")
    return problems


def read_stack(stack: str, root: Path = ROOT) -> StackFile:
    """Read Pulumi.yaml and Pulumi.<stack>.yaml as the engine does; StackFileError for what the CLI would refuse."""
    project_file = root / "Pulumi.yaml"
    stack_file = root / f"Pulumi.{stack}.yaml"
    if not stack_file.exists():
        stacks = sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in root.glob("Pulumi.*.yaml"))
        raise StackFileError(f"no {stack_file.name}: known stacks are {', '.join(stacks) or 'none'}")
    project_doc = _read_yaml(project_file)
    project_problems = check_project_file(project_doc)
    if project_problems:
        raise StackFileError(
            f"{project_file.name} does not follow the Pulumi CLI's schema:\n" + _bullets(project_problems)
        )
    project = project_doc["name"]
    doc = _read_yaml(stack_file)
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise StackFileError(f"{stack_file.name}: the top level must be a mapping (config: ...), got {_kind(doc)}")
    stack_config = doc.get("config")
    if stack_config is None:
        stack_config = {}
    if not isinstance(stack_config, dict):
        raise StackFileError(
            f"{stack_file.name}: config must be a mapping of keys (image-gallery:galleryName: ...), "
            f"got {_kind(stack_config)}"
        )
    values: dict[str, str] = {}
    secret_keys: list[str] = []
    masked: dict[str, Any] = {}
    for key, value in stack_config.items():
        full = str(key) if ":" in str(key) else f"{project}:{key}"
        plain, had_secret = _mask_secure(value)
        masked[full] = plain
        # Like the CLI: a key with nothing after the colon is "" (the CLI warns that this will change).
        values[full] = "" if plain is None else _engine_value(plain)
        if had_secret:
            secret_keys.append(full)
    # Like the CLI: declared project keys not set by the stack take their Pulumi.yaml default.
    for key, declaration in (project_doc.get("config") or {}).items():
        full = key if ":" in key else f"{project}:{key}"
        if full not in values and isinstance(declaration, dict) and declaration.get("default") is not None:
            values[full] = _engine_value(declaration["default"])
    import config as stack_config_module

    # Like the CLI: a stack value of a key Pulumi.yaml declares with a type is checked before the program runs.
    type_problems = stack_config_module.declared_type_problems(
        project_doc.get("config") or {}, masked, secret_keys, project
    )
    if type_problems:
        raise StackFileError(
            f"{stack_file.name}: the Pulumi CLI refuses values of the wrong type for keys Pulumi.yaml declares "
            "(before the program runs):\n" + _bullets(type_problems)
        )

    plain_paths = stack_config_module.plain_leaf_paths(stack_config, project)
    return StackFile(project, values, secret_keys, plain_paths)


def read_stack_config(stack: str, root: Path = ROOT) -> tuple[str, dict[str, str], list[str]]:
    """Project name, config map (full keys → JSON strings, as the engine passes them) and the secret keys."""
    read = read_stack(stack, root)
    return read.project, read.values, read.secret_keys


def _bullets(problems: list[str]) -> str:
    return "\n".join(f"  - {p}" for p in problems)


def _kind(value: Any) -> str:
    return "a list" if isinstance(value, list) else "a string" if isinstance(value, str) else type(value).__name__


def _engine_value(value: Any) -> str:
    """How the engine hands a config value to the program (config.stack_yaml.engine_value): strings as they are,
    numbers and booleans as Go's JSON text of them, structured values as Go's JSON."""
    return stack_yaml.engine_value(value)


def _mask_secure(value: Any) -> tuple[Any, bool]:
    """Replace every `{secure: ...}` leaf with "[secret]": the plan never decrypts anything."""
    if isinstance(value, dict):
        if stack_yaml.is_secure(value):
            return SECRET, True
        found = False
        out = {}
        for k, v in value.items():
            out[k], f = _mask_secure(v)
            found = found or f
        return out, found
    if isinstance(value, list):
        items = [_mask_secure(v) for v in value]
        return [i[0] for i in items], any(i[1] for i in items)
    return value, False
