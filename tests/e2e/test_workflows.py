"""The GitHub workflows, checked here: every action pinned to a commit, the stack selection of pull-request
previews, and the preview job itself run step by step, in the workflow's order, through the real Pulumi CLI
against the local stand-ins of Azure.

How a job runs here (`JobRunner`):
- `run:` steps run as `bash --noprofile --norc -eo pipefail` (what `shell: bash` means on GitHub) in the
  workspace's project directory, with the env the workflow, the job and the step set; `${{ … }}` expressions
  are replaced from an explicit table of stubs (secrets, vars, the pull request), an unknown one fails the test;
  `GITHUB_OUTPUT`/`GITHUB_ENV`/`GITHUB_STEP_SUMMARY` are files, read back as GitHub does;
- `uses: pulumi/actions` becomes the CLI commands its inputs mean (login, stack select, `pulumi <command>
  --stack <stack-name> [--diff] …` in work-dir), run through `Workspace.pulumi(..., program=True)`;
- the steps that only exist on GitHub (checkout, setup-*, azure/login) are skipped, each with its stand-in here,
  and listed in the test output.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.harness import PASSPHRASE, ROOT, Result, Workspace
from tests.e2e.world import World, make_world, new_workspace
from tests.fakes.arm import DEFAULT_SUBSCRIPTION, DEFAULT_TENANT
from tests.fakes.entra import FakeEntra, FakeGitHubOidc

WORKFLOWS = ROOT / ".github" / "workflows"
CHANGED_STACKS = ROOT / ".ci" / "changed_stacks.py"

# The actions the workflows may use, at the commits verified against each repository's tag.
PINNED = {
    "actions/checkout": ("3d3c42e5aac5ba805825da76410c181273ba90b1", "v7.0.1"),
    "actions/setup-python": ("5fda3b95a4ea91299a34e894583c3862153e4b97", "v7.0.0"),
    "actions/setup-go": ("b7ad1dad31e06c5925ef5d2fc7ad053ef454303e", "v7.0.0"),
    "astral-sh/setup-uv": ("20cfd1bf945f4377ade1205e4dbc17946fc9a30d", "v10.0.1"),
    "azure/login": ("f5d393ae46f8fde4be8b75f32e3fc50e654ad0ca", "v3.0.1"),
    "pulumi/actions": ("8e5e406f4007fca908480587cb9893c07090f58d", "v7.0.0"),
}

# What stands in here for each step that only exists on GitHub.
GITHUB_ONLY = {
    "actions/checkout": "the workspace's project directory is the checkout (a git repository made here)",
    "actions/setup-python": "Python 3.11 of this machine (the project's .venv is built with it)",
    "actions/setup-go": "the Go toolchain of this machine",
    "astral-sh/setup-uv": "the uv the Makefile uses, put first on PATH",
    "azure/login": "the fake `az` CLI, signed in to the fake ARM (the azure-native stand-in's login)",
}

# Inputs of pulumi/actions that only matter on GitHub: what they do there.
PULUMI_ACTION_GITHUB_ONLY = {
    "comment-on-pr": "comments the preview on the pull request",
    "github-token": "the token of that comment",
    "pulumi-version": "installs that CLI version (here: the pinned build, checked to be that version)",
}
PULUMI_ACTION_FLAGS = {
    "diff": "--diff",
    "suppress-progress": "--suppress-progress",
    "expect-no-changes": "--expect-no-changes",
    "refresh": "--refresh",
}

EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


def load(name: str) -> dict[str, Any]:
    raw: dict[Any, Any] = yaml.safe_load((WORKFLOWS / name).read_text())
    # YAML 1.1 reads the key `on` as the boolean true.
    raw["on"] = raw.pop(True, raw.get("on"))
    return {str(k): v for k, v in raw.items()}


def action_name(uses: str) -> str:
    return uses.split("@", 1)[0].lower()


# --- every workflow ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(p.name for p in WORKFLOWS.glob("*.yml")))
def test_every_action_is_pinned_to_a_verified_commit(name: str) -> None:
    text = (WORKFLOWS / name).read_text()
    uses = re.findall(r"^\s*(?:-\s+)?uses:\s*(\S+)(.*)$", text, flags=re.MULTILINE)
    assert uses, f"{name} uses no action"
    for ref, rest in uses:
        if ref.startswith("./"):
            assert (ROOT / ref).is_file(), f"{name}: {ref} does not exist"
            continue
        action, _, sha = ref.partition("@")
        assert action.lower() in PINNED, f"{name}: {action} is not one of the verified actions"
        want_sha, want_tag = PINNED[action.lower()]
        assert sha == want_sha, f"{name}: {action}@{sha} is not the verified commit {want_sha} ({want_tag})"
        assert rest.strip() == f"# {want_tag}", f"{name}: {action} needs the comment '# {want_tag}'"


@pytest.mark.parametrize("name", sorted(p.name for p in WORKFLOWS.glob("*.yml")))
def test_every_job_is_bounded_and_least_privileged(name: str) -> None:
    workflow = load(name)
    assert workflow["permissions"] == {"contents": "read"}, f"{name}: workflow-wide permissions beyond contents: read"
    for job_name, job in workflow["jobs"].items():
        if "uses" in job:  # a reusable workflow: its own jobs are checked with it
            continue
        assert isinstance(job.get("timeout-minutes"), int), f"{name}: job {job_name} has no timeout-minutes"


def test_up_runs_each_stack_in_its_environment_never_two_at_once() -> None:
    up = load("up.yml")
    assert [j["with"]["stack"] for j in up["jobs"].values()] == ["dev", "prod"]
    assert up["jobs"]["prod"]["needs"] == "dev"
    job = load("up-stack.yml")["jobs"]["up"]
    assert job["environment"] == "${{ inputs.stack }}"
    assert job["concurrency"] == {"group": "pulumi-up-${{ inputs.stack }}", "cancel-in-progress": False}
    assert job["runs-on"] == ["self-hosted", "image-build"]
    assert job["permissions"]["id-token"] == "write"
    assert job["timeout-minutes"] >= 320, "shorter than the longest chain's bounds (see the comment in the file)"


def test_preview_job_permissions() -> None:
    job = load("preview.yml")["jobs"]["preview"]
    assert job["permissions"] == {"id-token": "write", "contents": "read", "pull-requests": "write"}


# --- which stacks a pull request previews --------------------------------------------------------------------------


def changed_stacks(root: Path, *args: str) -> tuple[list[str], str]:
    out = subprocess.run(
        [sys.executable, str(CHANGED_STACKS), "--json", "--root", str(root), *args],
        capture_output=True,
        text=True,
        check=True,
    )
    stacks: list[str] = json.loads(out.stdout)
    return stacks, out.stderr


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (["Pulumi.dev.yaml"], ["dev"]),
        (["Pulumi.prod.yaml", "README.md"], ["prod"]),
        (["Pulumi.dev.yaml", "Pulumi.prod.yaml"], ["dev", "prod"]),
        (["hooks/windows/sysprep.py"], ["dev", "prod"]),
        (["Pulumi.yaml"], ["dev", "prod"]),
        (["uv.lock", "Pulumi.dev.yaml"], ["dev", "prod"]),
        ([".github/workflows/preview.yml"], ["dev", "prod"]),
        (["README.md", "docs/x.md", "tests/unit/config/test_loader.py"], []),
        (["tools/bench.py", "tools/engine/go.mod"], []),
        (["Pulumi.staging.yaml"], []),  # deleted: nothing to preview
        (["sub/Pulumi.dev.yaml"], ["dev", "prod"]),  # not a stack file of this project
    ],
)
def test_changed_stacks_picks_the_stacks_a_change_touches(
    tmp_path: Path, files: list[str], expected: list[str]
) -> None:
    for stack in ("dev", "prod"):
        (tmp_path / f"Pulumi.{stack}.yaml").write_text("config: {}\n")
    stacks, notes = changed_stacks(tmp_path, *files)
    assert stacks == expected
    if "Pulumi.staging.yaml" in files:
        assert "Pulumi.staging.yaml: deleted" in notes


def git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(root), "-c", "user.name=ci", "-c", "user.email=ci@example.invalid", *args],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def test_changed_stacks_reads_the_pull_requests_diff(tmp_path: Path) -> None:
    for stack in ("dev", "prod"):
        (tmp_path / f"Pulumi.{stack}.yaml").write_text("config: {}\n")
    git(tmp_path, "init", "-q", "-b", "main")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-q", "-m", "base")
    base = git(tmp_path, "rev-parse", "HEAD")
    (tmp_path / "Pulumi.prod.yaml").write_text("config: {a: 1}\n")
    git(tmp_path, "commit", "-q", "-am", "prod only")
    assert changed_stacks(tmp_path, "--base", base)[0] == ["prod"]
    (tmp_path / "__main__.py").write_text("")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-q", "-m", "the program")
    assert changed_stacks(tmp_path, "--base", base)[0] == ["dev", "prod"]


# --- the preview job, run here -------------------------------------------------------------------------------------


@dataclass
class JobRunner:
    """Runs one job's steps in order in a workspace, the way the runner would (see the module docstring)."""

    ws: Workspace
    workflow: Mapping[str, Any]
    job_name: str
    stubs: dict[str, str]
    tools: Path
    log: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    outputs: dict[str, dict[str, str]] = field(default_factory=dict)
    """Each step's outputs (`GITHUB_OUTPUT`), by step id."""
    last: Result | None = None
    """The last `pulumi` command's result."""

    @property
    def job(self) -> Mapping[str, Any]:
        job: Mapping[str, Any] = self.workflow["jobs"][self.job_name]
        return job

    def expand(self, value: Any) -> str:
        def stub(match: re.Match[str]) -> str:
            expression = match[1]
            assert expression in self.stubs, f"job {self.job_name}: no stub for the expression {expression!r}"
            return self.stubs[expression]

        return EXPRESSION.sub(stub, value if isinstance(value, str) else json.dumps(value))

    def env(self, step: Mapping[str, Any], added: Mapping[str, str]) -> dict[str, str]:
        env: dict[str, str] = {}
        for scope in (self.workflow.get("env") or {}, self.job.get("env") or {}, step.get("env") or {}):
            env.update({k: self.expand(v) for k, v in scope.items()})
        env.update(added)
        return env

    def run(self) -> None:
        self.log.append(f"job {self.job_name}")
        added: dict[str, str] = {}
        for index, step in enumerate(self.job["steps"]):
            label = step.get("name") or step.get("id") or step.get("uses") or f"step {index}"
            if "if" in step:
                pytest.fail(f"job {self.job_name}: step {label!r} has an `if:` this runner does not evaluate")
            if "run" in step:
                self._run_script(step, label, added)
            elif action_name(step["uses"]) == "pulumi/actions":
                self._pulumi_action(step, added)
            else:
                action = action_name(step["uses"])
                assert action in GITHUB_ONLY, f"job {self.job_name}: no stand-in for {action}: teach this test"
                self.log.append(f"  skipped  {action}: only on GitHub; here: {GITHUB_ONLY[action]}")

    def _run_script(self, step: Mapping[str, Any], label: str, added: dict[str, str]) -> None:
        files = {name: self.ws.root / f"{name.lower()}-{len(self.log)}" for name in ("GITHUB_OUTPUT", "GITHUB_ENV")}
        files["GITHUB_STEP_SUMMARY"] = self.ws.root / "step-summary.md"
        for path in files.values():
            path.touch()
        script = self.expand(step["run"])
        env = {
            **self.ws.env,
            **self.env(step, added),
            **{name: str(path) for name, path in files.items()},
            "GITHUB_WORKSPACE": str(self.ws.project),
            "RUNNER_TEMP": str(self.ws.root),
        }
        env["PATH"] = f"{self.tools}:{env['PATH']}"
        proc = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
            cwd=self.ws.project,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        first, *more = script.strip().splitlines()
        self.log.append(f"  ran      {label}: {first}{' …' if more else ''}")
        self.commands.append(script.strip())
        assert proc.returncode == 0, f"step {label!r} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        outputs = dict(line.split("=", 1) for line in files["GITHUB_OUTPUT"].read_text().splitlines() if "=" in line)
        if "id" in step:
            self.outputs[step["id"]] = outputs
        for line in files["GITHUB_ENV"].read_text().splitlines():
            if "=" in line:
                key, value = line.split("=", 1)
                added[key] = value

    def _pulumi_action(self, step: Mapping[str, Any], added: dict[str, str]) -> None:
        inputs = {k: self.expand(v) for k, v in (step.get("with") or {}).items()}
        command, stack = inputs.pop("command"), inputs.pop("stack-name")
        work_dir = (self.ws.project / inputs.pop("work-dir", "./")).resolve()
        assert work_dir == self.ws.project.resolve(), "work-dir: the project is at the repository's root"
        version = inputs.get("pulumi-version")
        tested = self.ws.pulumi("version", check=True).stdout.strip()
        assert f"v{version}" == tested, f"pulumi-version {version}: the CLI tested here is {tested}"
        cloud_url = inputs.pop("cloud-url", "")
        upsert = inputs.pop("upsert", "false") == "true"
        flags = []
        for name, value in inputs.items():
            if name in PULUMI_ACTION_GITHUB_ONLY:
                self.log.append(f"  skipped  pulumi/actions {name}: {PULUMI_ACTION_GITHUB_ONLY[name]}")
            else:
                assert name in PULUMI_ACTION_FLAGS, f"pulumi/actions input {name}: no translation: teach this test"
                if value == "true":
                    flags.append(PULUMI_ACTION_FLAGS[name])
        saved = self.ws.env_extra
        self.ws.env_extra = {**saved, **self.env(step, added)}
        try:
            # What the action runs: login (cloud-url, else the default backend), select the stack, the command.
            self._pulumi("--non-interactive", "login", *([cloud_url] if cloud_url else []))
            self._pulumi("stack", "select", "--stack", stack, *(["--create"] if upsert else []))
            self._pulumi(command, "--stack", stack, "--non-interactive", *flags, program=True)
        finally:
            self.ws.env_extra = saved

    def _pulumi(self, *args: str, program: bool = False) -> Result:
        result = self.ws.pulumi(*args, program=program)
        shown = " ".join(a if not a.startswith("file://") else "file://<backend>" for a in args)
        self.log.append(f"  ran      pulumi {shown}  (exit {result.returncode}, {result.seconds:.1f}s)")
        self.commands.append(f"pulumi {shown}")
        self.last = result
        return result.expect_ok()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with make_world(tmp_path_factory.mktemp("world")) as w:
        yield w


def pull_request(ws: Workspace) -> str:
    """The workspace as the checkout of a pull request that changes one stack file; returns the base commit.
    A second stack file, never initialised, would make the preview fail if it were picked."""
    shutil.copytree(ROOT / ".ci", ws.project / ".ci", ignore=shutil.ignore_patterns("__pycache__"))
    (ws.project / ".gitignore").write_text(".venv\n__pycache__/\n")
    (ws.project / "Pulumi.untouched.yaml").write_text(ws.stack_file.read_text())
    git(ws.project, "init", "-q", "-b", "main")
    git(ws.project, "add", "-A")
    git(ws.project, "commit", "-q", "-m", "base")
    base = git(ws.project, "rev-parse", "HEAD")
    ws.edit_config(lambda config: config.update({"image-gallery:galleryDescription": "changed in the pull request"}))
    git(ws.project, "commit", "-q", "-am", "the pull request")
    return base


def test_preview_job_goes_green_under_the_real_cli(
    tmp_path: Path, engine: Path, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = new_workspace(tmp_path / "ws", engine, world)
    base = pull_request(ws)
    tools = tmp_path / "tools"
    tools.mkdir()
    uv = shutil.which("uv") or str(ROOT / ".cache" / "bootstrap" / "bin" / "uv")
    (tools / "uv").symlink_to(uv)
    workflow = load("preview.yml")
    stubs = {
        "github.event.pull_request.number": "11",
        "github.event.pull_request.base.sha": base,
        "vars.AZURE_CLIENT_ID": "11111111-1111-1111-1111-111111111111",
        "vars.AZURE_TENANT_ID": DEFAULT_TENANT,  # the tenant of the subscription (the fake ARM checks it)
        "vars.AZURE_SUBSCRIPTION_ID": DEFAULT_SUBSCRIPTION,
        "secrets.PULUMI_ACCESS_TOKEN": "",  # a self-managed backend here: the file backend of the workspace
        "secrets.PULUMI_BACKEND_URL": f"file://{ws.backend}",
        "secrets.PULUMI_CONFIG_PASSPHRASE": PASSPHRASE,
        "secrets.GITHUB_TOKEN": "stub-github-token",
    }
    assert "pull_request" in workflow["on"]
    # The job's ARM_USE_OIDC login, for the VM checks too: the fake Entra of tenant vars.AZURE_TENANT_ID trusts the
    # fake GitHub's ID tokens for vars.AZURE_CLIENT_ID; `id-token: write` stands in as ACTIONS_ID_TOKEN_REQUEST_*.
    github = FakeGitHubOidc().start()
    entra = FakeEntra(tenant_id=stubs["vars.AZURE_TENANT_ID"]).start()
    entra.register(stubs["vars.AZURE_CLIENT_ID"], federated=github)
    world.arm.trust(entra)
    ws.env_extra = {**ws.env_extra, **entra.env, **github.actions_env()}

    stacks_job = JobRunner(ws, workflow, "stacks", stubs, tools)
    stacks_job.run()
    picked = stacks_job.outputs["changed"]["stacks"]
    assert json.loads(picked) == [ws.stack], f"the pull request changes only Pulumi.{ws.stack}.yaml: {picked}"

    preview = workflow["jobs"]["preview"]
    assert preview["needs"] == "stacks"
    # The job's condition, for this pull request (not empty, not from a fork).
    assert preview["if"] == (
        "needs.stacks.outputs.stacks != '[]' && github.event.pull_request.head.repo.full_name == github.repository"
    )
    assert preview["strategy"]["matrix"]["stack"] == "${{ fromJSON(needs.stacks.outputs.stacks) }}"
    world.arm.requests.clear()
    runners = []
    for stack in json.loads(picked):
        runner = JobRunner(ws, workflow, "preview", {**stubs, "matrix.stack": stack}, tools)
        runner.run()
        runners.append(runner)
        assert runner.last is not None
        shown = runner.last.output
        assert "ubuntu-2204-1.0.0-guest" in shown and "win2022-1.0.0-guest" in shown
        assert "changed in the pull request" in shown, "--diff shows the gallery's inputs"
    # The capture-time checks read the VMs; a preview writes nothing and contacts no guest.
    assert any("/virtualMachines/" in r.path for r in world.arm.requests)
    assert world.non_get() == []
    assert world.guest.requests == []
    # The VM checks logged in as the job's app, with a GitHub ID token each.
    assert entra.issued(stubs["vars.AZURE_CLIENT_ID"]) >= 1 and entra.errors() == []
    assert github.fetched == entra.issued()
    entra.stop()
    github.stop()
    with capsys.disabled():
        print("\n" + "\n".join(stacks_job.log + [line for r in runners for line in r.log]))
