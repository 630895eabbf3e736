"""The one place the config meets Pulumi: the stack's config read from the Pulumi runtime (`from_pulumi`), and the
stack's Azure login settings for the explicit dynamic provider hosts (`login_from_pulumi`). Pulumi is imported
inside each function, so that `import config` stays free of it (the offline plan and the tests load the config
without a Pulumi runtime).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from config.engine_values import parse_engine_values, stack_file_plain_paths, stray_keys
from config.loader import load
from config.specs import StackSpec


def from_pulumi() -> StackSpec:
    """Read this project's stack config from the Pulumi runtime (plaintext, then wrapped) and validate it."""
    import pulumi
    from pulumi.runtime import config as runtime_config

    project = pulumi.get_project()
    values = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    # This project's secret keys by name, other namespaces' (azure-native:clientSecret) by their full keys.
    own = f"{project}:"
    secret_keys = [k.removeprefix(own) for k in values if runtime_config.is_config_secret(k)]
    plain = stack_file_plain_paths(project, pulumi.get_stack())
    raw = parse_engine_values(values, project)
    spec = load(raw, secret_keys, None, plain, stray_keys(values, project), stack=pulumi.get_stack())
    for warning in spec.warnings:
        pulumi.log.warn(warning)
    return spec


@dataclass(frozen=True)
class LoginInput:
    """One `azure-native:*` login setting of the stack (hooks/login.py LOGIN_KEYS), handed to the explicit dynamic
    provider hosts as an input: they receive only their own inputs in `configure()`, not the stack config."""

    key: str
    """The full stack key, e.g. `azure-native:clientId` (the input's name too, so both kinds of host read it alike)."""
    value: str = field(repr=False)
    secret: bool
    """Marked secret in the host's inputs (encrypted in the state): the key is a secret, or the stack holds it so."""


def login_from_pulumi() -> tuple[LoginInput, ...]:
    """The stack's `azure-native:*` login settings, for the explicit dynamic provider hosts."""
    from pulumi.runtime import config as runtime_config

    from hooks.login import LOGIN_KEYS, stack_key

    values = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    found: list[LoginInput] = []
    for key in LOGIN_KEYS:
        full = stack_key(key.name)
        value = values.get(full)
        if isinstance(value, str) and value != "":
            found.append(LoginInput(full, value, key.secret or runtime_config.is_config_secret(full)))
    return tuple(found)
