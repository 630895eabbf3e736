"""Serve the project's `__main__.py` to the real Pulumi CLI as its language runtime (`pulumi … --client=ADDR`).

Why: the Go module proxy serves the CLI (`github.com/pulumi/pulumi/pkg/v3`) but not the Python language host
module (`github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3`: "403 Forbidden / This module version
is not available" for every version, tag and commit asked). The CLI's own `--client` flag, which the Automation
API uses for inline programs, lets a process serve the LanguageRuntime service instead. This module does that
with Pulumi's own server (`pulumi.automation._server.LanguageServer`), running the unmodified `__main__.py` of
the project: the engine, the config and secrets decryption, the state, the plan, the dynamic provider host
(`pulumi-resource-pulumi-python`) and every provider plugin are the CLI's real ones.

What differs from the real language host: the program runs in this process (started with the project's .venv
interpreter) instead of a `python __main__.py` child. A program that ends with SystemExit (our config errors)
is reported the way the real host reports it: the message, no traceback.

Usage: `python -m tools.engine.program PROJECT_DIR` prints `PORT` on its first stdout line and serves until it
is terminated (the harness stops it after the CLI command ends).
"""

from __future__ import annotations

import os
import runpy
import signal
import sys
import threading
from concurrent import futures
from pathlib import Path

import grpc
import pulumi
from pulumi.automation._server import LanguageServer
from pulumi.errors import RunError
from pulumi.runtime.proto import language_pb2_grpc

MAX_MESSAGE = 400 * 1024 * 1024  # as the Automation API's server: large stacks send large config


def program_of(project: Path) -> object:
    """A Pulumi program that runs `project/__main__.py` as `python __main__.py` would."""
    main = project / "__main__.py"

    def run() -> None:
        if str(project) not in sys.path:
            sys.path.insert(0, str(project))
        try:
            runpy.run_path(str(main), run_name="__main__")
        except SystemExit as exc:
            # The real host shows what the program printed to stderr (SystemExit's message) and fails with
            # "Program exited with non-zero exit code: 1": no traceback. Here the program's stderr is not the
            # CLI's, so the message goes through the engine's log, once.
            if exc.code not in (None, 0):
                if not isinstance(exc.code, int):
                    pulumi.log.error(str(exc.code))
                code = exc.code if isinstance(exc.code, int) else 1
                raise RunError(f"Program exited with non-zero exit code: {code}") from None

    return run


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m tools.engine.program PROJECT_DIR", file=sys.stderr)
        return 2
    project = Path(argv[0]).resolve()
    os.chdir(project)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=4),
        options=[("grpc.max_receive_message_length", MAX_MESSAGE), ("grpc.max_send_message_length", MAX_MESSAGE)],
    )
    language_pb2_grpc.add_LanguageRuntimeServicer_to_server(LanguageServer(program_of(project)), server)  # type: ignore[arg-type]
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(port, flush=True)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    server.stop(grace=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
