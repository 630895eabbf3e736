"""Azure's spelling of the values the checks compare: its APIs differ in case ("linux", "Linux", "x64", "X64")."""

from __future__ import annotations

from enum import Enum

_CANONICAL = {
    v.lower(): v
    for v in ("Linux", "Windows", "V1", "V2", "Standard", "TrustedLaunch", "ConfidentialVM", "x64", "Arm64")
}


def canonical(value: object) -> str | None:
    """Azure's spelling of a known value (APIs differ in case); unknown values are passed through unchanged."""
    if value is None or value == "":
        return None
    text = str(value.value if isinstance(value, Enum) else value)
    return _CANONICAL.get(text.lower(), text)
