"""Progress lines to the Pulumi engine, tied to the resource, as they happen.

The engine starts the dynamic provider host as `python -u -m pulumi.dynamic <engine address>`, but the host
never connects `pulumi.log` to that engine: whatever a provider logs goes to the host's stderr, which the CLI
shows late, untied to any resource. A step that runs for 40 minutes (sysprep) must show its progress under its
resource while it runs, in the CLI's output and in CI logs. This module sends each line through the engine's own
`Log` RPC with the resource's URN, which is exactly how the CLI's display attributes messages to a resource.

Outside the host (tests, `python -m hooks...`) there is no engine address (hooks/providers/host.py) and lines only
go to stderr. A failing engine connection never fails a step: logging falls back to stderr for the rest of the
process.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable

import grpc
from pulumi.runtime.proto import engine_pb2, engine_pb2_grpc

from hooks.log import Sink
from hooks.providers.host import engine_address

LOG_CALL_TIMEOUT = 5.0
"""Bound of one Log call: a busy engine delays a progress line, never the step."""

_lock = threading.Lock()
_stub: engine_pb2_grpc.EngineStub | None = None
_broken = False


def _engine() -> engine_pb2_grpc.EngineStub | None:
    global _stub
    with _lock:
        if _broken:
            return None
        if _stub is None:
            address = engine_address()
            if address is not None:
                _stub = engine_pb2_grpc.EngineStub(grpc.insecure_channel(address))
        return _stub


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def child_urn(parent_urn: str, type_: str, name: str) -> str:
    """The URN the engine gives a child `name` of type `type_` registered under `parent_urn`."""
    prefix, parent_type, _ = parent_urn.rsplit("::", 2)
    return f"{prefix}::{parent_type}${type_}::{name}"


def sink_for(urn: str | None, fallback: Sink = _stderr) -> Sink:
    """A Log sink that sends each line to the engine under `urn`, or to `fallback` when that is not possible."""

    def emit(line: str) -> None:
        global _broken
        stub = _engine() if urn else None
        if stub is None or urn is None:
            fallback(line)
            return
        severity = engine_pb2.WARNING if "WARNING: " in line else engine_pb2.INFO
        try:
            stub.Log(engine_pb2.LogRequest(severity=severity, message=line, urn=urn), timeout=LOG_CALL_TIMEOUT)
        except grpc.RpcError:
            with _lock:
                _broken = True
            fallback(line)

    return emit


SinkFactory = Callable[[str | None], Sink]
