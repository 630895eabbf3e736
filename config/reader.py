"""The reader of the raw stack config: a `Node` is one mapping with its key path, reading typed values and recording
every problem (with the path) instead of raising, so that `load` reports them all at once. Also the readers of the
values several sections share: GUIDs, future dates, region names.
"""

from __future__ import annotations

import difflib
import math
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from config.specs import Secret
from hooks.regions import closest_region, normalize_region

_REGION = re.compile(r"^[a-z][a-z0-9]{1,40}$")
# An unquoted date or date-time as the Pulumi CLI hands it over: go-yaml reads it as a time.Time and Pulumi passes
# its String(), e.g. `2028-12-31 00:00:00 +0000 UTC` (config.stack_yaml.go_time).
_GO_TIME = re.compile(r"([0-9]{4}-[0-9]{2}-[0-9]{2}) [0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)? [+-][0-9]{4} \S+")
_YAML11_BOOLEANS = frozenset(("yes", "no", "on", "off", "y", "n"))
"""YAML 1.1 booleans (PyYAML's): text to the Pulumi CLI, which reads YAML 1.2's true/false only."""

MISSING = object()
"""A key that is not in the config at all (None is a key written with nothing after the colon)."""


@dataclass
class Shared:
    """What every node of one load needs to know."""

    plain_paths: frozenset[str] | None = None
    """Key paths written in plaintext in the stack file, when it was read: a secret field at one of them is
    refused even when another field of the same top-level key is `secure:`."""
    allow_unknown_regions: bool = False
    marketplace: bool = True
    """The gallery's `marketplace` switch: Marketplace-only keys are refused without it."""
    warnings: list[str] = field(default_factory=list)
    stack: str | None = None
    """The stack being loaded, when known: a version cannot be promoted from its own stack."""


class Node:
    """A mapping in the raw config, with its key path; records problems instead of raising."""

    def __init__(
        self,
        value: Mapping[str, Any],
        path: str,
        problems: list[str],
        secret_ok: bool,
        shared: Shared | None = None,
    ) -> None:
        self.value = value
        self.path = path
        self.problems = problems
        self.secret_ok = secret_ok
        self.shared = shared or Shared()
        self._used: set[str] = set()
        self._empty: set[str] = set()

    def at(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def problem(self, key: str, message: str) -> None:
        if key in self._empty and message.startswith("is required"):
            return  # already reported as empty
        self.problems.append(f"{self.at(key)}: {message}")

    def raw(self, key: str) -> Any:
        """The value, or MISSING; a key written with nothing after the colon is reported, never taken as unset."""
        self._used.add(key)
        value = self.value.get(key, MISSING)
        if value is None and key not in self._empty:
            self._empty.add(key)
            self.problems.append(f"{self.at(key)}: has no value (nothing after the colon): set a value or remove it")
        return value

    def string(
        self,
        key: str,
        default: Any = MISSING,
        pattern: re.Pattern[str] | None = None,
        hint: str = "",
        required: bool = False,
    ) -> Any:
        value = self.raw(key)
        if value is MISSING or value is None:
            if default is MISSING or required:
                self.problem(key, "is required")
            return default
        if isinstance(value, Secret):
            self.problem(key, "must not be a secret value")
            return default
        if isinstance(value, int | float) and not isinstance(value, bool):
            # The CLI hands an unquoted number over as a number (and `1.0` as 1): only quotes keep the text.
            self.problem(
                key, f"must be a non-empty string, got {value!r}, a number to the Pulumi CLI: write it in quotes"
            )
            return default
        if not isinstance(value, str) or not value.strip():
            self.problem(key, f"must be a non-empty string, got {value!r}")
            return default
        warn_unquoted_date(self, self.at(key), value)
        if pattern is not None and not pattern.fullmatch(value):
            self.problem(key, f"{value!r} {hint or 'is malformed'}")
            return default
        return value

    def choice(self, key: str, choices: Iterable[str], default: Any = MISSING, required: bool = False) -> Any:
        options = tuple(choices)
        value = self.string(key, default, required=required)
        if value is default:
            return default
        if value not in options:
            shown = ", ".join(repr(o) for o in options)
            self.problem(key, f"{value!r} is not one of {shown}")
            return default
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self.raw(key)
        if value is MISSING or value is None:
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        hint = ""
        if isinstance(value, str) and value.lower() in _YAML11_BOOLEANS:
            hint = f" (the Pulumi CLI reads YAML 1.2: {value} is text, only true and false are booleans)"
        self.problem(key, f"must be true or false, got {value!r}{hint}")
        return default

    def integer(self, key: str, default: Any, low: int, high: int) -> Any:
        value = self.raw(key)
        if value is MISSING or value is None:
            if default is MISSING:
                self.problem(key, "is required")
            return default
        if isinstance(value, str) and re.fullmatch(r"-?[0-9]+", value.strip()):
            value = int(value)
        # A float is refused even when whole (`2.0`): the CLI refuses it for keys Pulumi.yaml declares integer.
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(key, f"must be an integer, got {value!r}")
            return default
        if not low <= value <= high:
            self.problem(key, f"{value} is out of range {low}-{high}")
            return default
        return value

    def positive(self, key: str, default: float) -> float:
        value = self.raw(key)
        if value is MISSING or value is None:
            return default
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.problem(key, f"must be a positive number, got {value!r}")
            return default
        if isinstance(value, bool) or not number > 0:
            self.problem(key, f"must be a positive number, got {value!r}")
            return default
        if not math.isfinite(number):  # inf would be an endless wait (a create timeout of "infm")
            self.problem(key, f"must be a finite number of {_unit(key)}, got {value!r}")
            return default
        return number

    def secret(self, key: str) -> Secret | None:
        value = self.raw(key)
        if value is MISSING or value is None:
            return None
        if isinstance(value, Secret):
            if not value.reveal().strip():
                self.problem(key, "is empty")
                return None
            return value
        if isinstance(value, str) and value.strip():
            plain_paths = self.shared.plain_paths
            written_plain = plain_paths is not None and self.at(key) in plain_paths
            if written_plain or not self.secret_ok:
                self.problem(
                    key,
                    "is stored in plaintext; store it encrypted with "
                    f"`pulumi config set --secret --path '{self.at(key)}'`",
                )
            return Secret(value)
        self.problem(key, "must be a non-empty string")
        return None

    def child(self, key: str, required: bool = False) -> Node | None:
        value = self.raw(key)
        if value is MISSING or value is None:
            if required:
                self.problem(key, "is required")
            return None
        if not isinstance(value, Mapping):
            self.problem(key, f"must be an object, got {type(value).__name__}")
            return None
        return Node(value, self.at(key), self.problems, self.secret_ok, self.shared)

    def items(self, key: str, required: bool = False) -> list[Node]:
        value = self.raw(key)
        if value is MISSING or value is None:
            if required:
                self.problem(key, "is required and must list at least one entry")
            return []
        if not isinstance(value, list):
            self.problem(key, f"must be a list, got {type(value).__name__}")
            return []
        if required and not value:
            self.problem(key, "must list at least one entry")
        nodes = []
        for i, item in enumerate(value):
            path = f"{self.at(key)}[{i}]"
            if not isinstance(item, Mapping):
                self.problems.append(f"{path}: must be an object, got {type(item).__name__}")
                continue
            nodes.append(Node(item, path, self.problems, self.secret_ok, self.shared))
        return nodes

    def strings(self, key: str, pattern: re.Pattern[str] | None = None, hint: str = "") -> tuple[str, ...]:
        value = self.raw(key)
        if value is MISSING or value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.problem(key, "must be a list of strings")
            return ()
        for i, v in enumerate(value):
            if pattern is not None and not pattern.fullmatch(v):
                self.problems.append(f"{self.at(key)}[{i}]: {v!r} {hint}")
        return tuple(value)

    def done(self) -> None:
        """Report keys nobody read: typos must not be silently ignored."""
        for key in self.value:
            if key not in self._used:
                known = ", ".join(sorted(self._used))
                close = difflib.get_close_matches(str(key), sorted(self._used), n=1, cutoff=0.75)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                self.problem(str(key), f"unknown key (known keys here: {known}){hint}")


def warn_unquoted_date(node: Node, path: str, value: str) -> None:
    """Warn when text is an unquoted date as the Pulumi CLI hands it over (`2026-01-01 00:00:00 +0000 UTC`): the
    user most likely meant the date as written."""
    if _GO_TIME.fullmatch(value):
        node.shared.warnings.append(
            f"{path}: the Pulumi CLI reads an unquoted date here and hands it over as {value!r}; write it in quotes "
            f"('{value[:10]}') if that is not what you meant"
        )


def _unit(key: str) -> str:
    return "seconds" if key.endswith("Seconds") else "minutes" if key.endswith("Minutes") else "units"


def read_guid(node: Node, key: str, default: Any = MISSING, required: bool = False) -> Any:
    value = node.string(key, default, required=required)
    if value is default or value is None:
        return value
    try:
        return str(uuid.UUID(value))
    except ValueError:
        node.problem(key, f"{value!r} is not a GUID (object ID like 00000000-0000-0000-0000-000000000000)")
        return default


def read_future_date(node: Node, key: str, today: date) -> str | None:
    value = node.raw(key)
    if value is MISSING or value is None:
        return None
    parsed: date | None
    if isinstance(value, date):  # a date value (the config given as Python data)
        parsed = value if not isinstance(value, datetime) else value.date()
    else:
        if isinstance(value, str) and _GO_TIME.fullmatch(value):
            value = value[:10]  # an unquoted date, as the Pulumi CLI hands it over: its date is what was meant
        try:
            parsed = datetime.fromisoformat(value).date() if isinstance(value, str) else None
        except ValueError:
            parsed = None
        if parsed is None:
            node.problem(key, f"{value!r} is not an ISO date (YYYY-MM-DD)")
            return None
    if parsed <= today:
        node.problem(key, f"{parsed.isoformat()} is not in the future")
        return None
    return parsed.isoformat() + "T00:00:00Z"


def read_region(node: Node, key: str, required: bool = False) -> Any:
    """A region's short name: display names (`West Europe`) are normalized; an unknown name is refused with the
    closest known one, unless `allowUnknownRegions: true` (sovereign clouds, regions newer than the repo's list)."""
    value = node.string(key, None, required=required)
    if value is None:
        return None
    known = normalize_region(value)
    if known is not None:
        return known
    short = value.replace(" ", "").lower()
    if not _REGION.fullmatch(short):
        node.problem(key, f"{value!r} is not an Azure region name like 'westeurope' or 'West Europe'")
        return None
    if node.shared.allow_unknown_regions:
        return short
    close = closest_region(value)
    hint = f"did you mean {close!r}? " if close else ""
    node.problem(
        key,
        f"{value!r} is not a known Azure public region ({hint}see hooks/azure_regions.json); for sovereign clouds "
        "or new regions set allowUnknownRegions: true",
    )
    return None
