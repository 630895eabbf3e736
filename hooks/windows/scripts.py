"""The script protocol between hooks/windows and the guest: a .ps1 file from hooks/scripts/windows, sent unmodified
behind a prelude of whitelisted values as one `powershell -EncodedCommand` line, printing one JSON line of facts.

Also the defensive readers of those facts: the guest is not trusted to send the types we expect."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from defusedxml import DefusedXmlException
from defusedxml import ElementTree as SafeET

SCRIPTS = Path(__file__).parent.parent / "scripts" / "windows"

CMD_LINE_LIMIT = 8191
"""WinRS runs the command through cmd.exe, whose command line is limited to 8191 characters."""
POWERSHELL = "powershell.exe -NoProfile -NonInteractive -EncodedCommand "


# ----------------------------------------------------------------------------------------------------------------
# Guest scripts
# ----------------------------------------------------------------------------------------------------------------

ScriptValue = str | int | tuple[str, ...]
_SAFE_TEXT = re.compile(r"^[A-Za-z0-9/:._-]*$")
_PARAM_NAME = re.compile(r"^[A-Z][A-Za-z]+$")


@dataclass(frozen=True)
class GuestScript:
    """One of the .ps1 files in hooks/scripts/windows, with its parameters as a prelude of fixed assignments."""

    name: str
    params: Mapping[str, ScriptValue] | None = None

    @property
    def text(self) -> str:
        body = (SCRIPTS / f"{self.name}.ps1").read_text(encoding="ascii")
        return "".join(f"${key} = {_ps_literal(value)}\n" for key, value in self._params()) + body

    @property
    def command(self) -> str:
        """The command line that runs the script, as pywinrm's run_ps builds it (base64 of UTF-16LE)."""
        encoded = base64.b64encode(self.text.encode("utf-16-le")).decode("ascii")
        command = POWERSHELL + encoded
        if len(command) >= CMD_LINE_LIMIT:
            # A programming error (scripts are ours); the fake guest enforces the same limit.
            raise ValueError(f"{self.name}.ps1 is too long for one WinRS command line ({len(command)} characters)")
        return command

    def _params(self) -> list[tuple[str, ScriptValue]]:
        params = sorted((self.params or {}).items())
        for key, _ in params:
            if not _PARAM_NAME.match(key):
                raise ValueError(f"invalid script parameter name {key!r}")
        return params


def _ps_literal(value: ScriptValue) -> str:
    """A PowerShell literal for a value that was validated against a whitelist; refuses anything else."""
    if isinstance(value, bool):
        raise TypeError("booleans are not script parameters")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        if not _SAFE_TEXT.match(value):
            raise ValueError(f"refusing to pass {value!r} to a guest script")
        return f"'{value}'"
    return "@(" + ", ".join(_ps_literal(item) for item in value) + ")"


def parse_result_line(stdout: str) -> dict[str, Any] | None:
    """The JSON object a guest script printed as its last `{` line, or None."""
    for line in reversed(stdout.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except ValueError:
                return None
            return value if isinstance(value, dict) else None
    return None


def clean_clixml(stderr: str) -> str:
    """The error text of PowerShell's CLIXML stderr (progress records dropped), or the text as it came."""
    if not stderr.startswith("#< CLIXML"):
        return stderr.strip()
    lines = []
    for chunk in stderr.split("#< CLIXML")[1:]:
        try:
            root = SafeET.fromstring(chunk.strip())
        except (SafeET.ParseError, DefusedXmlException):
            # Not CLIXML after all, or XML with entity declarations (never in PowerShell's output): show it raw.
            return stderr.strip()
        for node in root.iter():
            if node.tag.endswith("}S") and node.get("S") == "Error" and node.text:
                lines.append(node.text.replace("_x000D__x000A_", "\n"))
    return "".join(lines).strip()


# ----------------------------------------------------------------------------------------------------------------
# Reading the JSON facts defensively
# ----------------------------------------------------------------------------------------------------------------


def fact_str(facts: Mapping[str, Any], key: str) -> str:
    value = facts.get(key)
    return value if isinstance(value, str) else "" if value is None else str(value)


def fact_bool(facts: Mapping[str, Any], key: str) -> bool:
    return facts.get(key) is True


def fact_int(facts: Mapping[str, Any], key: str) -> int:
    value = facts.get(key)
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def fact_list(facts: Mapping[str, Any], key: str) -> list[Any]:
    value = facts.get(key)
    if value is None:
        return []
    # PowerShell 5.1 may unroll a one-element array into its element.
    return value if isinstance(value, list) else [value]


def fact_str_list(facts: Mapping[str, Any], key: str) -> list[str]:
    return [str(v) for v in fact_list(facts, key) if v is not None]


def fact_int_list(facts: Mapping[str, Any], key: str) -> list[int]:
    return [int(v) for v in fact_list(facts, key) if isinstance(v, int | float) and not isinstance(v, bool)]


def fact_dict_list(facts: Mapping[str, Any], key: str) -> list[dict[str, Any]]:
    return [v for v in fact_list(facts, key) if isinstance(v, dict)]


def squash(text: str) -> str:
    return re.sub(r"[\s_-]", "", text).lower()


def tail(text: str, lines: int) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])
