"""Drive the real Pulumi dynamic provider host (`python -u -m pulumi.dynamic`) over gRPC, as the engine does.

The host is started in the project root (so it imports the providers by reference, exactly as under
`pulumi up`), prints its port on the first stdout line, and serves the ResourceProvider service with 4 workers.
Properties are serialized with the SDK's own code; the provider blob is made by `serialize_provider`, like the
SDK does when a dynamic resource is declared.
"""

from __future__ import annotations

import asyncio
import os
import select
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import struct_pb2
from pulumi.dynamic.dynamic import serialize_provider
from pulumi.runtime import rpc
from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 30.0
CALL_TIMEOUT = 120.0


class HostError(Exception):
    """The host answered a call with an error; `details` is what the engine would show the user."""

    def __init__(self, method: str, details: str) -> None:
        self.method = method
        self.details = details
        super().__init__(f"{method}: {details}")


@dataclass
class CheckResponse:
    inputs: dict[str, Any]
    failures: list[tuple[str, str]]


@dataclass
class DiffResponse:
    changes: bool
    replaces: list[str]
    delete_before_replace: bool


def _struct(props: Mapping[str, Any]) -> struct_pb2.Struct:
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(rpc.serialize_properties(dict(props), {}))
    finally:
        loop.close()


def _plain(struct: struct_pb2.Struct) -> dict[str, Any]:
    return dict(rpc.deserialize_properties(struct))


class DynamicHost:
    """One running host process. Use as a context manager; `stderr` holds everything it logged."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        full_env = dict(os.environ)
        full_env.update(env or {})
        full_env["PYTHONPATH"] = str(ROOT)
        self._proc = subprocess.Popen(
            [sys.executable, "-u", "-m", "pulumi.dynamic"],
            cwd=ROOT,
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.port = self._read_port()
        self._channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
        grpc.channel_ready_future(self._channel).result(timeout=START_TIMEOUT)
        self.stub = provider_pb2_grpc.ResourceProviderStub(self._channel)
        self._stderr: str | None = None

    def _read_port(self) -> int:
        assert self._proc.stdout is not None
        ready, _, _ = select.select([self._proc.stdout], [], [], START_TIMEOUT)
        line = self._proc.stdout.readline() if ready else ""
        if not line.strip().isdigit():
            self._proc.kill()
            _, err = self._proc.communicate(timeout=10)
            raise RuntimeError(f"dynamic provider host did not print its port within {START_TIMEOUT}s: {line!r} {err}")
        return int(line.strip())

    def close(self) -> str:
        """Stop the host; returns its stderr (the provider's log lines)."""
        if self._stderr is None:
            self._channel.close()
            self._proc.terminate()
            try:
                _, err = self._proc.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                _, err = self._proc.communicate(timeout=10)
            self._stderr = err or ""
        return self._stderr

    def __enter__(self) -> DynamicHost:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, request: Any) -> Any:
        try:
            return getattr(self.stub, method)(request, timeout=CALL_TIMEOUT)
        except grpc.RpcError as exc:
            raise HostError(method, exc.details() or str(exc)) from None

    # The engine's calls -------------------------------------------------------------------------------------

    def configure(self, config: Mapping[str, str]) -> None:
        self._call("Configure", provider_pb2.ConfigureRequest(args=_struct(config), acceptSecrets=True))

    def check(self, urn: str, olds: Mapping[str, Any], news: Mapping[str, Any]) -> CheckResponse:
        resp = self._call("Check", provider_pb2.CheckRequest(urn=urn, olds=_struct(olds), news=_struct(news)))
        return CheckResponse(_plain(resp.inputs), [(f.property, f.reason) for f in resp.failures])

    def diff(self, urn: str, id_: str, olds: Mapping[str, Any], news: Mapping[str, Any]) -> DiffResponse:
        resp = self._call("Diff", provider_pb2.DiffRequest(id=id_, urn=urn, olds=_struct(olds), news=_struct(news)))
        changes = resp.changes == provider_pb2.DiffResponse.DIFF_SOME
        return DiffResponse(changes, list(resp.replaces), resp.deleteBeforeReplace)

    def create(self, urn: str, props: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        resp = self._call("Create", provider_pb2.CreateRequest(urn=urn, properties=_struct(props)))
        return resp.id, _plain(resp.properties)

    def read(self, urn: str, id_: str, props: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        resp = self._call("Read", provider_pb2.ReadRequest(id=id_, urn=urn, properties=_struct(props)))
        return resp.id, _plain(resp.properties)

    def update(self, urn: str, id_: str, olds: Mapping[str, Any], news: Mapping[str, Any]) -> dict[str, Any]:
        resp = self._call("Update", provider_pb2.UpdateRequest(id=id_, urn=urn, olds=_struct(olds), news=_struct(news)))
        return _plain(resp.properties)

    def delete(self, urn: str, id_: str, props: Mapping[str, Any]) -> None:
        self._call("Delete", provider_pb2.DeleteRequest(id=id_, urn=urn, properties=_struct(props)))


def with_provider(provider: Any, props: Mapping[str, Any]) -> dict[str, Any]:
    """Props as the SDK sends them: with the pickled provider under `__provider`."""
    return {**props, "__provider": serialize_provider(provider)}


def urn(type_name: str, name: str) -> str:
    return f"urn:pulumi:test::image-gallery::pulumi-python:dynamic/generalization:{type_name}::{name}"


@pytest.fixture
def host_factory() -> Iterator[Any]:
    """Start hosts with extra environment variables; all are stopped at the end of the test."""
    hosts: list[DynamicHost] = []

    def start(env: Mapping[str, str] | None = None) -> DynamicHost:
        t0 = time.monotonic()
        host = DynamicHost(env)
        host.started_in = time.monotonic() - t0  # type: ignore[attr-defined]
        hosts.append(host)
        return host

    yield start
    for host in hosts:
        host.close()
