"""Run the project under the real Pulumi CLI, offline: a copy of the project, a file backend, passphrase secrets.

`Workspace` is what a user's checkout is: the project files, `.venv`, a `Pulumi.<stack>.yaml`, `pulumi login
file://…`, and `pulumi` commands. The CLI is the pinned build from tools/engine/build.sh (cached outside the
clone); the program is served by tools/engine/program.py through the CLI's `--client` flag (the Python language
host module is not served by the Go module proxy: see that file). Provider plugins: the dynamic provider host
(`pulumi-resource-pulumi-python`, bundled next to the CLI) and the azure-native test plugin installed into a
throwaway PULUMI_HOME, with automatic plugin acquisition off, so nothing is downloaded.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
ENGINE_BUILD = ROOT / "tools" / "engine" / "build.sh"
PROGRAM_SERVER = ROOT / "tools" / "engine" / "program.py"
PROJECT_FILES = ("Pulumi.yaml", "__main__.py", "config", "components", "hooks", "pyproject.toml", "uv.lock")
# What older revisions (the upgrade tests) had instead of today's files: config was one module before config/.
FORMER_PROJECT_FILES = ("config.py",)
PASSPHRASE = "e2e-passphrase-not-a-secret"
PROJECT = "image-gallery"
BUILD_TIMEOUT = 1800.0
COMMAND_TIMEOUT = 300.0
PROGRAM_START_TIMEOUT = 30.0


class EngineUnavailable(Exception):
    """The pinned CLI could not be built or started; the message says why (never a reason to skip)."""


def engine_bin() -> Path:
    """The bin directory of the pinned CLI, built on first use (cached outside the clone)."""
    try:
        result = subprocess.run(
            ["bash", str(ENGINE_BUILD)], capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise EngineUnavailable(f"building the Pulumi CLI took longer than {BUILD_TIMEOUT:.0f}s") from exc
    if result.returncode != 0:
        raise EngineUnavailable(f"tools/engine/build.sh failed ({result.returncode}): {result.stderr[-3000:]}")
    if result.stderr.strip():
        print(result.stderr.strip(), file=sys.stderr)
    return Path(result.stdout.strip().splitlines()[-1])


@dataclass
class Result:
    """One finished `pulumi` command."""

    args: Sequence[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def documents(self) -> list[Any]:
        """Every JSON document of a `--json` run: `preview` prints one; `up`/`destroy` print the preview's, then
        one engine event per line."""
        decoder = json.JSONDecoder()
        docs: list[Any] = []
        text, i = self.stdout, 0
        while True:
            while i < len(text) and text[i].isspace():
                i += 1
            if i >= len(text):
                return docs
            doc, i = decoder.raw_decode(text, i)
            docs.append(doc)

    def json(self) -> Any:
        return self.documents()[0]

    def events(self) -> list[dict[str, Any]]:
        """The steps as `{"op", "urn"}`: what was done (the engine's resource events) when the command ran
        them, else what the preview planned."""
        docs = self.documents()
        done = [d["resourcePreEvent"]["metadata"] for d in docs[1:] if isinstance(d, dict) and "resourcePreEvent" in d]
        if done:
            return [{"op": m.get("op"), "urn": m.get("urn", "")} for m in done]
        first = docs[0] if docs else {}
        return list(first.get("steps", [])) if isinstance(first, dict) else []

    def expect_ok(self) -> Result:
        assert self.returncode == 0, f"pulumi {' '.join(self.args)} failed ({self.returncode}):\n{self.output[-6000:]}"
        return self


@dataclass
class Workspace:
    """A user's checkout: the project copied to `project`, its own PULUMI_HOME, file backend and stack."""

    root: Path
    bin_dir: Path
    env_extra: Mapping[str, str] = field(default_factory=dict)
    stack: str = "e2e"
    source_rev: str | None = None
    """Copy the project files as they were at this git revision (e.g. a stack deployed by an older release)."""
    own_language_host: bool = True
    """Serve the program through `--client` (the pinned build has no Python language host); False: a full CLI
    distribution on PATH runs `__main__.py` through its own `pulumi-language-python`."""
    shared_backend: Path | None = None
    """The file backend directory of another workspace, to hold this workspace's stack too (several stacks of
    one project on one backend, e.g. dev and prod); None: a backend of its own under `root`."""

    def __post_init__(self) -> None:
        self.project = self.root / "project"
        self.home = self.root / "pulumi-home"
        self.backend = self.shared_backend or self.root / "backend"
        self.logs = self.root / "logs"
        for d in (self.project, self.home, self.backend, self.logs):
            d.mkdir(parents=True, exist_ok=True)
        self.copy_project(self.source_rev)
        # The project's environment, as `pulumi install` would have made it (uv, from uv.lock).
        (self.project / ".venv").symlink_to(ROOT / ".venv")
        self.python = str(ROOT / ".venv" / "bin" / "python")

    def copy_project(self, rev: str | None = None) -> None:
        """Lay the project files into the workspace: the working tree's, or those of git revision `rev`."""
        for name in (*PROJECT_FILES, *FORMER_PROJECT_FILES):
            target = self.project / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
        if rev is not None:
            listed = subprocess.run(
                ["git", "-C", str(ROOT), "ls-tree", "--name-only", rev],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.split()
            names = [n for n in (*PROJECT_FILES, *FORMER_PROJECT_FILES) if n in listed]
            archive = subprocess.run(
                ["git", "-C", str(ROOT), "archive", "--format=tar", rev, *names],
                capture_output=True,
                check=True,
            )
            subprocess.run(["tar", "-x", "-C", str(self.project)], input=archive.stdout, check=True)
            return
        for name in PROJECT_FILES:
            src = ROOT / name
            if src.is_dir():
                shutil.copytree(src, self.project / name, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(src, self.project / name)

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PULUMI_", "ARM_", "AZURE_"))}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env.update(
            {
                "PULUMI_HOME": str(self.home),
                "PULUMI_SKIP_UPDATE_CHECK": "true",
                "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
                "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE,
                "PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK": "true",
                "NO_COLOR": "1",
            }
        )
        if self.own_language_host:
            # The engine hands the project's runtime options (Pulumi.yaml: toolchain uv) to plugins as
            # PULUMI_RUNTIME_*; with `--client` it has none to hand, so the launcher of the dynamic provider host
            # would pick the system python. Give it what the engine passes when it runs the program itself.
            env["PULUMI_RUNTIME_TOOLCHAIN"] = "uv"
        env.update(self.env_extra)
        env["PATH"] = f"{self.bin_dir}{os.pathsep}{env.get('PATH', '')}"
        return env

    @property
    def stack_file(self) -> Path:
        return self.project / f"Pulumi.{self.stack}.yaml"

    # --- commands -------------------------------------------------------------------------------------------

    def pulumi(
        self,
        *args: str,
        program: bool = False,
        input: str | None = None,
        timeout: float = COMMAND_TIMEOUT,
        check: bool = False,
        stream: bool = False,
    ) -> Result:
        """Run `pulumi ARGS` in the project; `program=True` for commands that run `__main__.py`; `stream=True`
        shows the output on this terminal instead of capturing it."""
        serve = program and self.own_language_host
        with self._program_server() if serve else contextlib.nullcontext() as address:
            argv = [str(self.bin_dir / "pulumi"), *args]
            if address:
                argv += [f"--client={address}", "--exec-kind=inline"]
            started = time.monotonic()
            proc = subprocess.run(
                argv,
                cwd=self.project,
                env=self.env,
                input=input,
                capture_output=not stream,
                text=True,
                timeout=timeout,
                check=False,
            )
        result = Result(args, proc.returncode, proc.stdout or "", proc.stderr or "", time.monotonic() - started)
        self._keep_log(result)
        return result.expect_ok() if check else result

    def start(self, *args: str) -> tuple[subprocess.Popen[str], contextlib.ExitStack]:
        """Start `pulumi ARGS` (with the program) without waiting: for tests that kill it mid-run."""
        stack = contextlib.ExitStack()
        address = stack.enter_context(self._program_server())
        argv = [str(self.bin_dir / "pulumi"), *args, f"--client={address}", "--exec-kind=inline"]
        out = (self.logs / f"started-{len(list(self.logs.iterdir()))}.log").open("w")
        stack.callback(out.close)
        proc = subprocess.Popen(
            argv,
            cwd=self.project,
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        return proc, stack

    def kill_strays(self) -> list[str]:
        """SIGKILL every process still running from this workspace (the engine starts each plugin in a process
        group of its own, so killing the CLI's group leaves them): what a cancelled CI job does to its tree.

        A process is this workspace's when its command line, working directory or environment (PULUMI_HOME, which
        every plugin inherits) names the workspace: a plugin run from the repository's .venv, like the test
        azure-native plugin, names it only in the last two. Returns the command lines of the processes killed."""
        killed: list[str] = []
        marker = f"{self.root}/".encode()  # with the slash: not another workspace whose name starts the same
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes()
                ours = (
                    marker in cmdline
                    or f"{os.readlink(entry / 'cwd')}/".encode().startswith(marker)
                    or marker in (entry / "environ").read_bytes()
                )
            except OSError:
                continue
            if ours:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(int(entry.name), signal.SIGKILL)
                    killed.append(cmdline.replace(b"\0", b" ").decode(errors="replace").strip())
        return killed

    def login(self) -> None:
        self.pulumi("login", f"file://{self.backend}", check=True)

    def init_stack(self, config: Mapping[str, Any]) -> None:
        """`pulumi stack init`, then the stack file's config as a user writes it (non-secret keys)."""
        self.pulumi("stack", "init", self.stack, check=True)
        data = yaml.safe_load(self.stack_file.read_text()) if self.stack_file.exists() else {}
        data = data or {}
        data["config"] = {**(data.get("config") or {}), **config}
        self.stack_file.write_text(yaml.safe_dump(data, sort_keys=False))

    def edit_config(self, change: Callable[[dict[str, Any]], None]) -> None:
        """Change the stack file's config as a user edits it (secure: values stay as they are)."""
        data = yaml.safe_load(self.stack_file.read_text())
        change(data["config"])
        self.stack_file.write_text(yaml.safe_dump(data, sort_keys=False))

    def set_secret(self, path: str, value: str) -> None:
        """`pulumi config set --secret --path PATH` with the value on stdin, as the README says."""
        self.pulumi("config", "set", "--secret", "--path", path, input=value, check=True)

    def export(self) -> dict[str, Any]:
        result = self.pulumi("stack", "export", check=True)
        data: dict[str, Any] = json.loads(result.stdout)
        return data

    def state_file(self) -> Path:
        matches = sorted(self.backend.rglob(f"{self.stack}.json"))
        assert matches, f"no state file for stack {self.stack} under {self.backend}"
        return matches[0]

    # --- internals ------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _program_server(self) -> Iterator[str]:
        proc = subprocess.Popen(
            [self.python, "-u", str(PROGRAM_SERVER), str(self.project)],
            cwd=self.project,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=(self.logs / "program.log").open("a"),
            text=True,
        )
        try:
            assert proc.stdout is not None
            ready, _, _ = select.select([proc.stdout], [], [], PROGRAM_START_TIMEOUT)
            line = proc.stdout.readline().strip() if ready else ""
            if not line.isdigit():
                raise EngineUnavailable(
                    f"the program server did not print its port within {PROGRAM_START_TIMEOUT:.0f}s "
                    f"(exit {proc.poll()}); see {self.logs / 'program.log'}"
                )
            yield f"127.0.0.1:{line}"
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def _keep_log(self, result: Result) -> None:
        n = len(list(self.logs.glob("cmd-*.log")))
        (self.logs / f"cmd-{n:02d}.log").write_text(
            f"$ pulumi {' '.join(result.args)}\n# exit {result.returncode} after {result.seconds:.1f}s\n"
            f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}\n"
        )
