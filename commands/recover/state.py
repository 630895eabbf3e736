"""The stack's state as `pulumi stack export` writes it: its pending operations and resources, the special values
in its JSON (secrets), and the versions Azure was still creating when they were recorded."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

SIG_KEY = "4dabf18193072939515e22adb298388d"
"""Marks a secret (or another special value) in the state's JSON."""
VERSION_TOKEN = "azure-native:compute:GalleryImageVersion"


def deployment(exported: Mapping[str, Any]) -> Mapping[str, Any]:
    return exported.get("deployment") or {}


def pending_operations(exported: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return list(deployment(exported).get("pending_operations") or [])


def resources(exported: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return list(deployment(exported).get("resources") or [])


def is_special(value: Any) -> bool:
    """A secret (or another special value) rather than a plain value."""
    return isinstance(value, Mapping) and SIG_KEY in value


def plaintext(value: Any) -> Mapping[str, Any] | None:
    """A decrypted secret of `pulumi stack export --show-secrets` (`{SIG_KEY: …, "plaintext": "<JSON>"}`) as its
    value; a plain mapping as it is."""
    if is_special(value) and isinstance(value.get("plaintext"), str):
        value = json.loads(value["plaintext"])
    return value if isinstance(value, Mapping) else None


def pending_credentials(exported: Mapping[str, Any], urn: str) -> Mapping[str, Any] | None:
    """The `credentials` input of the pending operation on `urn`, from an export with its secrets shown."""
    for op in pending_operations(exported):
        resource = op.get("resource") or {}
        if resource.get("urn") == urn:
            return plaintext((resource.get("inputs") or {}).get("credentials"))
    return None


def creating_version(resource: Mapping[str, Any]) -> bool:
    """An image version in the state that Azure was still creating when it was recorded (imported mid-replication)."""
    outputs = resource.get("outputs") or {}
    return resource.get("type") == VERSION_TOKEN and outputs.get("provisioningState") == "Creating"
