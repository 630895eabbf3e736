"""The dynamic provider host: whether this process is it, and the engine address it was started with.

The engine starts the host as `python -u -m pulumi.dynamic <engine address>`. Everything that behaves differently
in the host (progress lines sent to the engine, hooks/providers/engine_log.py; the frames of an explained failure,
hooks/step_failures.py) asks here, so the host is recognised one way: by its command line.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence

_HOST_SCRIPT = "pulumi/dynamic/__main__.py"
"""What `python -m pulumi.dynamic` puts in sys.argv[0] (the module's full path)."""

_ADDRESS = re.compile(r"^(?:\[[0-9a-fA-F:]+\]|[\w.-]+):\d+$")


def in_provider_host(argv: Sequence[str] | None = None) -> bool:
    """Whether this process (or the command line `argv`) is Pulumi's dynamic provider host."""
    args = sys.argv if argv is None else argv
    return bool(args) and args[0].replace("\\", "/").endswith(_HOST_SCRIPT)


def engine_address(argv: Sequence[str] | None = None) -> str | None:
    """The engine address the host was started with, when this process is the dynamic provider host."""
    args = sys.argv if argv is None else argv
    if in_provider_host(args) and len(args) >= 2:
        return args[1] if _ADDRESS.match(args[1]) else None
    return None
