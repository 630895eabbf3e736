"""Progress messages from the imperative side.

The dynamic provider host does not tie log lines to a resource, so every line is prefixed with the resource
name. Secrets are redacted here as a last line of defence: a Log knows the secret values of its resource."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

Sink = Callable[[str], None]


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass
class Log:
    """Writes `[<resource>] message` lines to a sink (stderr by default), redacting known secret values."""

    resource: str
    secrets: Iterable[str] = ()
    sink: Sink = _stderr
    lines: list[str] = field(default_factory=list)

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            if secret:
                text = text.replace(secret, "[secret]")
        return text

    def info(self, message: str) -> None:
        self._emit("", message)

    def warn(self, message: str) -> None:
        self._emit("WARNING: ", message)

    def _emit(self, level: str, message: str) -> None:
        line = f"[{self.resource}] {level}{self.redact(message)}"
        self.lines.append(line)
        self.sink(line)
