"""Progress lines to the engine's Log service: URNs, the host's engine address, and the fallback to stderr."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest
from google.protobuf import empty_pb2
from pulumi.runtime.proto import engine_pb2, engine_pb2_grpc

from hooks.log import Log
from hooks.providers import engine_log, host

PARENT = "urn:pulumi:dev::image-gallery::image-gallery:index:CapturedImageVersion::ubuntu-1.0.0"
GUEST_TYPE = "pulumi-python:dynamic/generalization:GuestGeneralization"


def test_child_urn_nests_the_type_under_the_parent() -> None:
    assert engine_log.child_urn(PARENT, GUEST_TYPE, "ubuntu-1.0.0-guest") == (
        "urn:pulumi:dev::image-gallery::image-gallery:index:CapturedImageVersion$"
        "pulumi-python:dynamic/generalization:GuestGeneralization::ubuntu-1.0.0-guest"
    )


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["/venv/lib/python3.11/site-packages/pulumi/dynamic/__main__.py", "127.0.0.1:40123"], "127.0.0.1:40123"),
        (["/venv/lib/python3.11/site-packages/pulumi/dynamic/__main__.py", "localhost:1"], "localhost:1"),
        (["/venv/lib/python3.11/site-packages/pulumi/dynamic/__main__.py"], None),
        (["/venv/lib/python3.11/site-packages/pulumi/dynamic/__main__.py", "--flag"], None),
        (["pytest", "127.0.0.1:40123"], None),
    ],
)
def test_engine_address_only_inside_the_dynamic_host(argv: list[str], expected: str | None) -> None:
    assert host.engine_address(argv) == expected


class _Engine(engine_pb2_grpc.EngineServicer):
    def __init__(self) -> None:
        self.logs: list[Any] = []

    def Log(self, request: Any, context: Any) -> empty_pb2.Empty:
        self.logs.append(request)
        return empty_pb2.Empty()


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Engine]:
    servicer = _Engine()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    engine_pb2_grpc.add_EngineServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    monkeypatch.setattr(engine_log.sys, "argv", ["/x/pulumi/dynamic/__main__.py", f"127.0.0.1:{port}"])
    monkeypatch.setattr(engine_log, "_stub", None)
    monkeypatch.setattr(engine_log, "_broken", False)
    try:
        yield servicer
    finally:
        server.stop(0)


def test_lines_reach_the_engine_under_the_urn_redacted(engine: _Engine) -> None:
    urn = engine_log.child_urn(PARENT, GUEST_TYPE, "ubuntu-1.0.0-guest")
    fallback: list[str] = []
    log = Log("ubuntu-1.0.0-guest", secrets=["hunter2"], sink=engine_log.sink_for(urn, fallback.append))
    log.info("connecting with password hunter2")
    log.warn("host key check is off")
    assert [(r.urn, r.severity, r.message) for r in engine.logs] == [
        (urn, engine_pb2.INFO, "[ubuntu-1.0.0-guest] connecting with password [secret]"),
        (urn, engine_pb2.WARNING, "[ubuntu-1.0.0-guest] WARNING: host key check is off"),
    ]
    assert fallback == []


def test_no_urn_means_stderr_only(engine: _Engine) -> None:
    fallback: list[str] = []
    engine_log.sink_for(None, fallback.append)("a line")
    assert fallback == ["a line"] and engine.logs == []


def test_an_unreachable_engine_falls_back_for_good(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine_log.sys, "argv", ["/x/pulumi/dynamic/__main__.py", "127.0.0.1:1"])
    monkeypatch.setattr(engine_log, "_stub", None)
    monkeypatch.setattr(engine_log, "_broken", False)
    monkeypatch.setattr(engine_log, "LOG_CALL_TIMEOUT", 0.5)
    fallback: list[str] = []
    sink = engine_log.sink_for("urn:x", fallback.append)
    sink("first")
    assert engine_log._broken
    started = time.monotonic()
    sink("second")
    assert time.monotonic() - started < 0.2, "a broken engine connection is not tried again"
    assert fallback == ["first", "second"]
