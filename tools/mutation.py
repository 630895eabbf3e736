"""A small seeded mutation tester: do the tests fail when the code that decides is wrong?

    python -m tools.mutation [--modules hooks/preflight/rules.py ...] [--limit 60] [--seed 14] [--list]

For each target module: parse it with `ast`, list every mutation point (comparison and boolean operators swapped,
`not` removed, constants changed, return values replaced, statements deleted, arithmetic swapped), draw a seeded
sample of at most `--limit` of them, and run each mutant against only the test files that cover the module
(`TESTS` below) with `-x`. A mutant is killed when those tests fail or time out. The score is killed / (mutants -
excluded); the surviving mutants are printed as `file:line  function  change`.

Why not mutmut: it rewrites every function into trampolines in a `mutants/` copy and imports the code from there,
which neither the Pulumi dynamic provider host (a separate `python -m pulumi.dynamic` process importing `hooks`
from the project root) nor the fake guests' subprocesses follow. Here every mutant runs in a private copy of the
tree (`tempfile`), so the working tree is never touched, even on Ctrl-C or kill -9; the copy is deleted at exit.

Tests that already fail on the unmutated tree (work in progress elsewhere) are deselected for that module and
reported, so they do not count as kills.

The seed defaults to the day of the year, so each day draws another sample (tests tuned to one sample show on
the next); every run prints its seed, and `--seed` draws the same sample again.

Equivalent and wording-only mutants are listed, with one reason each, in tools/mutation_exclusions.txt.
"""

from __future__ import annotations

import argparse
import ast
import concurrent.futures
import contextlib
import copy
import os
import queue
import random
import re
import shutil
import signal
import subprocess  # nosec B404 - runs pytest on a private copy of the tree
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXCLUSIONS = ROOT / "tools" / "mutation_exclusions.txt"

CONFIG_TESTS = (
    "tests/unit/config/test_loader.py",
    "tests/unit/config/test_gallery.py",
    "tests/unit/config/test_images.py",
    "tests/unit/config/test_versions.py",
    "tests/unit/config/test_source_vms.py",
    "tests/unit/config/test_test_boot.py",
    "tests/unit/config/test_secrets.py",
    "tests/unit/config/test_login_settings.py",
    "tests/unit/config/test_reader.py",
    "tests/unit/config/test_engine_values.py",
    "tests/unit/config/test_stack_yaml.py",
    "tests/unit/config/test_project_file.py",
    "tests/unit/test_image_versions.py",
    "tests/unit/config/test_corpus.py",
    "tests/unit/test_partner_center.py",
    "tests/unit/test_promotion_program.py",
)
"""The config's tests: each module of config/ that decides something runs its mutants against all of them."""

ARM_MODULES = ("budget", "errors", "session", "vm", "vm_facts", "gallery", "subscription", "spelling")
"""The modules of hooks/arm/ that every ARM call goes through, or that read what the checks compare."""

ARM_TESTS = (
    "tests/unit/test_arm_spelling.py",
    "tests/unit/test_arm_error_messages.py",
    "tests/unit/test_arm_retries.py",
    "tests/unit/test_arm_sessions.py",
    "tests/integration/test_arm_strict.py",
    "tests/integration/test_arm_tokens.py",
    "tests/integration/test_arm_operations.py",
    "tests/integration/test_arm_reads.py",
    "tests/integration/test_arm_vm_power.py",
    "tests/integration/test_replication.py",
    "tests/integration/test_version_copy.py",
    "tests/integration/test_arm_waits.py",
    "tests/integration/test_arm.py",
)
"""The tests of ARM_MODULES, the pure unit tests first (a mutant they kill costs about two seconds)."""

# module -> the test files that cover it (only these run against its mutants)
TESTS: dict[str, tuple[str, ...]] = {
    # fast unit tests first: with -x most mutants are killed in seconds; survivors run the whole list
    **{
        f"hooks/preflight/{name}.py": (
            "tests/unit/test_preflight.py",
            "tests/unit/test_preflight_decisions.py",
            "tests/unit/test_partner_center.py",
            "tests/integration/test_preflight.py",
            "tests/integration/test_marketplace.py",
        )
        for name in ("target", "rules", "reads", "checks", "outcome")
    },
    "hooks/pipeline.py": (
        "tests/unit/test_pipeline.py",
        "tests/integration/test_vm_provider.py",
        "tests/integration/test_guest_provider_linux.py",
        "tests/integration/test_guest_provider_windows.py",
    ),
    **{f"hooks/arm/{name}.py": ARM_TESTS for name in ARM_MODULES},
    # hooks/version_boot.py and hooks/arm/snapshots.py send raw requests through ArmRequests: their tests follow
    # real operations.
    "hooks/arm/operations.py": (
        "tests/integration/test_arm_operations.py",
        "tests/integration/test_test_boot.py",
        "tests/integration/test_safety_snapshots.py",
    ),
    "hooks/arm/snapshots.py": ("tests/integration/test_safety_snapshots.py",),
    "hooks/safety_snapshots.py": (
        "tests/unit/test_safety_snapshots.py",
        "tests/unit/config/test_safety_snapshot_keys.py",
        "tests/integration/test_safety_snapshots.py",
    ),
    # The guard is seen only in a fresh interpreter, where no model class was worked out yet.
    "hooks/arm/sdk_guard.py": ("tests/unit/test_arm_models_guard.py", "tests/unit/test_arm_models.py"),
    **{
        f"config/{name}.py": CONFIG_TESTS
        for name in (
            "reader",
            "gallery",
            "source_vms",
            "images",
            "versions",
            "loader",
            "engine_values",
            "stack_yaml",
            "azure_login",
            "vm_sizes",
        )
    },
    "hooks/windows/scripts.py": ("tests/unit/test_windows_scripts.py", "tests/integration/test_windows_guest.py"),
    "hooks/windows/sysprep.py": ("tests/integration/test_windows_guest.py",),
    "hooks/ssh_keys.py": ("tests/unit/test_linux_keys.py", "tests/integration/test_ssh_guest.py"),
    "hooks/linux.py": (
        "tests/unit/test_deprovision_script.py",
        "tests/integration/test_ssh_guest.py",
        "tests/integration/test_linux_guest.py",
    ),
}
# Only the pure parts: the WinRM transport and the SSH connection are exercised through the fakes, not mutated.
SKIP_FUNCTIONS: dict[str, frozenset[str]] = {
    "hooks/linux.py": frozenset({"_connect", "_client"}),
}

IGNORE = shutil.ignore_patterns(".git", ".venv", ".cache", ".mypy_cache", ".ruff_cache", ".pytest_cache", "__pycache__")

COMPARE_SWAP: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.Lt: ast.GtE,
    ast.GtE: ast.Lt,
    ast.Gt: ast.LtE,
    ast.LtE: ast.Gt,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
}
BINOP_SWAP: dict[type[ast.operator], type[ast.operator]] = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.Div,
    ast.Div: ast.Mult,
    ast.FloorDiv: ast.Mult,
}
VALUE_STRING = re.compile(r"^[\w.\-/:+@]{1,40}$")


@dataclass(frozen=True)
class Mutant:
    module: str
    index: int
    """Position among the module's mutation points (walk order), to re-apply it on a fresh parse."""
    line: int
    function: str
    change: str

    def key(self) -> tuple[str, str, str]:
        return (self.module, self.function, self.change)

    def excluded(self, exclusions: dict[tuple[str, str, str], str]) -> bool:
        """Listed for its module, or for its module and line (`module:line`: for a change that reads the same at
        several lines of one function, of which only one is equivalent; a line that moves no longer matches)."""
        return self.key() in exclusions or (f"{self.module}:{self.line}", self.function, self.change) in exclusions

    def __str__(self) -> str:
        return f"{self.module}:{self.line}  {self.function}  {self.change}"


def _short(node: ast.AST) -> str:
    text = ast.unparse(node).replace("\n", " ")
    return text if len(text) <= 70 else text[:67] + "..."


class _Points(ast.NodeTransformer):
    """Walks a module in a fixed order; with `apply` set, performs that one mutation, else only lists them."""

    def __init__(self, module: str, apply: int | None = None) -> None:
        self.module = module
        self.apply = apply
        self.points: list[Mutant] = []
        self.scope: list[str] = []
        self.skip = SKIP_FUNCTIONS.get(module, frozenset())

    def _offer(self, node: ast.AST, change: str) -> bool:
        """Register a mutation point; True when it is the one to apply."""
        index = len(self.points)
        self.points.append(
            Mutant(self.module, index, getattr(node, "lineno", 0), ".".join(self.scope) or "<module>", change)
        )
        return index == self.apply

    def _in_function(self) -> bool:
        return bool(self.scope) and not (set(self.scope) & self.skip)

    # --- scopes ----------------------------------------------------------------------------------------------

    def _scoped(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> ast.AST:
        self.scope.append(node.name)
        # decorators, annotations and defaults of signatures are not behaviour worth mutating here
        node.body = self._body(node.body)
        self.scope.pop()
        return node

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        return self._scoped(node)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> ast.AST:
        return self._scoped(node)

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.AST:
        return self._scoped(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> ast.AST:
        if node.value is not None:
            node.value = self.visit(node.value)
        return node

    def visit_JoinedStr(self, node: ast.JoinedStr) -> ast.AST:
        return node  # message wording

    def visit_Assert(self, node: ast.Assert) -> ast.AST:
        return node

    def _body(self, body: list[ast.stmt]) -> list[ast.stmt]:
        out: list[ast.stmt] = []
        for i, stmt in enumerate(body):
            if i == 0 and isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
                out.append(stmt)  # docstring
                continue
            if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
                out.append(stmt)  # attribute docstring
                continue
            deletable = self._in_function() and isinstance(
                stmt, ast.Expr | ast.Raise | ast.If | ast.Return | ast.AugAssign | ast.Assign | ast.For | ast.With
            )
            if deletable and not (isinstance(stmt, ast.Expr) and _is_log_call(stmt.value, ("debug", "info"))):
                first = ast.unparse(stmt).splitlines()[0]
                if self._offer(stmt, f"delete `{first[:70]}`"):
                    out.append(ast.copy_location(ast.Pass(), stmt))
                    continue
            visited = self.visit(stmt)
            out.append(visited)
        return out or [ast.Pass()]

    def generic_visit(self, node: ast.AST) -> ast.AST:
        for name, value in ast.iter_fields(node):
            if isinstance(value, list) and value and isinstance(value[0], ast.stmt):
                setattr(node, name, self._body(value))
            elif isinstance(value, list):
                setattr(node, name, [self.visit(v) if isinstance(v, ast.AST) else v for v in value])
            elif isinstance(value, ast.AST):
                setattr(node, name, self.visit(value))
        return node

    # --- expressions -----------------------------------------------------------------------------------------

    def visit_Compare(self, node: ast.Compare) -> ast.AST:
        self.generic_visit(node)
        if not self._in_function():
            return node
        for i, op in enumerate(node.ops):
            swap = COMPARE_SWAP.get(type(op))
            if swap is None:
                continue
            mutated = copy.deepcopy(node)
            mutated.ops[i] = swap()
            if self._offer(node, f"`{_short(node)}` -> `{_short(mutated)}`"):
                return mutated
        return node

    def visit_BoolOp(self, node: ast.BoolOp) -> ast.AST:
        self.generic_visit(node)
        if not self._in_function():
            return node
        mutated = ast.BoolOp(op=ast.Or() if isinstance(node.op, ast.And) else ast.And(), values=node.values)
        if self._offer(node, f"`{_short(node)}` -> `{_short(mutated)}`"):
            return ast.copy_location(mutated, node)
        return node

    def visit_UnaryOp(self, node: ast.UnaryOp) -> ast.AST:
        self.generic_visit(node)
        if (
            self._in_function()
            and isinstance(node.op, ast.Not)
            and self._offer(node, f"`{_short(node)}` -> `{_short(node.operand)}`")
        ):
            return node.operand
        return node

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        self.generic_visit(node)
        swap = BINOP_SWAP.get(type(node.op))
        if swap is None or any(_is_text(side) for side in (node.left, node.right)):
            return node
        mutated = ast.BinOp(left=node.left, op=swap(), right=node.right)
        if self._offer(node, f"`{_short(node)}` -> `{_short(mutated)}`"):
            return ast.copy_location(mutated, node)
        return node

    def visit_Constant(self, node: ast.Constant) -> ast.AST:
        value = node.value
        new: object
        if isinstance(value, bool):
            new = not value
        elif isinstance(value, int):
            new = value + 1
        elif isinstance(value, float):
            new = value * 2 if value else 1.0
        elif isinstance(value, str) and VALUE_STRING.match(value):
            new = value.upper() + "X" if value.islower() else value + "X"
        else:
            return node
        mutated = ast.copy_location(ast.Constant(value=new), node)
        if self._offer(node, f"`{_short(node)}` -> `{_short(mutated)}`"):
            return mutated
        return node

    def visit_Return(self, node: ast.Return) -> ast.AST:
        self.generic_visit(node)
        if not self._in_function() or node.value is None:
            return node
        if isinstance(node.value, ast.Constant) and node.value.value is None:
            return node
        replacement = ast.Constant(value=None)
        if self._offer(node, f"`{_short(node)}` -> `return None`"):
            return ast.copy_location(ast.Return(value=replacement), node)
        return node


def _is_text(node: ast.expr) -> bool:
    return isinstance(node, ast.JoinedStr) or (isinstance(node, ast.Constant) and isinstance(node.value, str))


def _is_log_call(node: ast.expr, levels: tuple[str, ...]) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in levels


def mutation_points(module: str, source: str) -> list[Mutant]:
    walker = _Points(module)
    walker.visit(ast.parse(source))
    return walker.points


def mutate(module: str, source: str, index: int) -> str:
    walker = _Points(module, apply=index)
    tree = ast.fix_missing_locations(walker.visit(ast.parse(source)))
    return ast.unparse(tree) + "\n"


def load_exclusions() -> dict[tuple[str, str, str], str]:
    """`module | function | change | reason`, one per line (`module:line` for one line only); `#` starts a
    comment."""
    out: dict[tuple[str, str, str], str] = {}
    if not EXCLUSIONS.exists():
        return out
    for raw in EXCLUSIONS.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = [p.strip() for p in line.split(" | ")]
        if len(parts) != 4 or not parts[3]:
            raise SystemExit(f"{EXCLUSIONS.name}: expected `module | function | change | reason`: {raw!r}")
        out[(parts[0], parts[1], parts[2])] = parts[3]
    return out


# --- running -----------------------------------------------------------------------------------------------------


_RUNNING: set[subprocess.Popen[str]] = set()
"""pytest processes under way, so that an interrupted run stops them (each is its own process group)."""
_RUNNING_LOCK = threading.Lock()


def _pytest(tree: Path, tests: list[str], extra: list[str], timeout: float) -> tuple[str, str]:
    """('passed' | 'failed' | 'timeout', output tail)."""
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", *extra, *tests]
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.Popen(  # nosec B603 - fixed argv
        cmd,
        cwd=tree,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    with _RUNNING_LOCK:
        _RUNNING.add(proc)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _stop(proc)
        out, _ = proc.communicate()
        return "timeout", (out or "")[-2000:]
    finally:
        with _RUNNING_LOCK:
            _RUNNING.discard(proc)
    return ("passed" if proc.returncode == 0 else "failed"), (out or "")[-4000:]


def _stop(proc: subprocess.Popen[str]) -> None:
    """Kill a pytest run and whatever it started (fake ARM, dynamic provider hosts): its own process group."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def _baseline_failures(output: str) -> list[str]:
    return re.findall(r"^(?:FAILED|ERROR) (\S+)", output, re.MULTILINE)


def run_module(
    trees: list[Path], module: str, limit: int, seed: int, exclusions: dict[tuple[str, str, str], str]
) -> dict[str, object]:
    """Run the module's sample, one mutant per tree at a time (`trees`: private copies, one per job)."""
    source = (ROOT / module).read_text(encoding="utf-8")
    tests = [t for t in TESTS[module] if (ROOT / t).exists()]
    points = mutation_points(module, source)
    rng = random.Random(f"{seed}:{module}")  # nosec B311 - sampling, not security
    sample = sorted(rng.sample(points, min(limit, len(points))), key=lambda m: m.index)

    # baseline: the unmutated module, all tests (no -x), to time it and to deselect what already fails
    started = time.monotonic()
    state, output = _pytest(trees[0], tests, ["--no-header", "-rfE", "--override-ini=addopts="], timeout=1800)
    baseline = time.monotonic() - started
    failing = _baseline_failures(output) if state == "failed" else []
    extra = [f"--deselect={f}" for f in failing]
    # With several jobs the runs share the cores: the margin grows with them, so that a slow run is not a kill.
    timeout = max(30.0, 3 * baseline * max(1, len(trees) // 2) + 15)
    print(
        f"\n== {module}: {len(points)} mutation points, running {len(sample)} (seed {seed}); tests: "
        f"{' '.join(tests)}; baseline {baseline:.0f}s",
        flush=True,
    )
    for f in failing:
        print(f"   already failing, deselected: {f}", flush=True)

    free: queue.SimpleQueue[Path] = queue.SimpleQueue()
    for tree in trees:
        free.put(tree)
    printing = threading.Lock()

    def run_one(n: int, mutant: Mutant) -> str:
        """'killed' | 'survived' | 'excluded'."""
        if mutant.excluded(exclusions):
            return "excluded"
        try:
            mutated = mutate(module, source, mutant.index)
            compile(mutated, module, "exec")
        except (SyntaxError, ValueError):
            return "excluded"
        tree = free.get()
        try:
            (tree / module).write_text(mutated, encoding="utf-8")
            try:
                state, _ = _pytest(tree, tests, extra, timeout)
            finally:
                (tree / module).write_text(source, encoding="utf-8")
        finally:
            free.put(tree)
        with printing:
            if state == "passed":
                print(f"   [{n}/{len(sample)}] SURVIVED {mutant}", flush=True)
            else:
                print(f"   [{n}/{len(sample)}] killed ({state}) {mutant}", flush=True)
        return "survived" if state == "passed" else "killed"

    with concurrent.futures.ThreadPoolExecutor(max_workers=len(trees)) as pool:
        futures = {pool.submit(run_one, n, m): m for n, m in enumerate(sample, 1)}
        try:
            outcomes = {futures[done]: done.result() for done in concurrent.futures.as_completed(futures)}
        except KeyboardInterrupt:
            for future in futures:
                future.cancel()
            with _RUNNING_LOCK:
                for proc in list(_RUNNING):
                    _stop(proc)
            raise
    survivors = [m for m in sample if outcomes.get(m) == "survived"]
    killed = sum(1 for o in outcomes.values() if o == "killed")
    excluded = sum(1 for o in outcomes.values() if o == "excluded")
    counted = killed + len(survivors)
    score = killed / counted if counted else 1.0
    elapsed = time.monotonic() - started
    return {
        "module": module,
        "score": score,
        "killed": killed,
        "survived": len(survivors),
        "excluded": excluded,
        "survivors": survivors,
        "seconds": elapsed,
    }


def default_seed(today: date | None = None) -> int:
    """The day of the year (1-366): another sample each day, the same one all day."""
    return (today or date.today()).timetuple().tm_yday


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modules", nargs="*", default=list(TESTS), help="target modules (default: all)")
    parser.add_argument("--limit", type=int, default=40, help="mutants per module (seeded sample; default 40)")
    parser.add_argument(
        "--seed", type=int, default=None, help="seed of the sample (default: the day of the year, printed)"
    )
    parser.add_argument("--list", action="store_true", help="only list the sampled mutants")
    parser.add_argument("--fail-under", type=float, default=0.0, help="exit 1 when a module scores below this")
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="mutants run at once, each in its own copy of the tree (default 1; the ARM tests mostly wait on "
        "sockets and timers, so 2 or 3 shorten a run without loading the cores much)",
    )
    args = parser.parse_args(argv)
    modules = [m for arg in args.modules for m in arg.split() if m]
    unknown = [m for m in modules if m not in TESTS]
    if unknown:
        parser.error(f"no test mapping for {', '.join(unknown)}; known: {', '.join(TESTS)}")
    exclusions = load_exclusions()
    if args.seed is None:
        args.seed = default_seed()
        print(
            f"mutation: seed {args.seed} (the day of the year; --seed {args.seed} draws this sample again)",
            file=sys.stderr,
        )

    if args.list:
        for module in modules:
            points = mutation_points(module, (ROOT / module).read_text(encoding="utf-8"))
            rng = random.Random(f"{args.seed}:{module}")  # nosec B311
            for m in sorted(rng.sample(points, min(args.limit, len(points))), key=lambda m: m.index):
                print(("EXCLUDED " if m.excluded(exclusions) else "") + str(m))
        return 0

    # SIGTERM as Ctrl-C, so that the private copy is removed either way
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    results = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mutation-") as tmp:
        trees = [Path(tmp) / f"tree{job}" for job in range(max(1, args.jobs))]
        for tree in trees:
            shutil.copytree(ROOT, tree, ignore=IGNORE, symlinks=True)
            for shared in (".venv", ".cache"):  # the environment and the cached waagent sandbox, never mutated
                if (ROOT / shared).exists():
                    os.symlink(ROOT / shared, tree / shared)
        try:
            for module in modules:
                results.append(run_module(trees, module, args.limit, args.seed, exclusions))
        except KeyboardInterrupt:
            print("\ninterrupted: the working tree was never modified; partial results below", file=sys.stderr)

    print("\n== mutation score per module")
    worst = 1.0
    for r in results:
        worst = min(worst, float(r["score"]))  # type: ignore[arg-type]
        print(
            f"   {r['module']:<28} {r['score']:.2f}  killed {r['killed']}, survived {r['survived']}, "
            f"excluded {r['excluded']}  ({r['seconds']:.0f}s)"
        )
    survivors = [m for r in results for m in r["survivors"]]  # type: ignore[attr-defined]
    if survivors:
        print("\n== surviving mutants")
        for m in survivors:
            print(f"   {m}")
    total_k = sum(int(r["killed"]) for r in results)  # type: ignore[call-overload]
    total_s = sum(int(r["survived"]) for r in results)  # type: ignore[call-overload]
    total = total_k + total_s
    print(
        f"\nmutation: {total_k}/{total} killed ({(total_k / total if total else 1.0):.2f}), lowest module {worst:.2f} "
        f"(seed {args.seed}, {len(modules)} module(s), limit {args.limit}, {args.jobs} job(s), "
        f"{time.monotonic() - started:.0f}s)"
    )
    return 1 if results and worst < args.fail_under else 0


if __name__ == "__main__":
    sys.exit(main())
