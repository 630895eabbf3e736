"""Only the Pulumi adapters import Pulumi: hooks/providers/ (the dynamic resources and their providers),
components/, __main__.py, the config's Pulumi adapter and the offline plan (which runs the program under mocks).
Everything else under hooks/, config and commands/ is usable and testable without Pulumi. Read from the source
(every `import` statement, also inside functions and under TYPE_CHECKING), so a lazy import counts too."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CHECKED = ("hooks", "config", "commands")
"""What may not import Pulumi, apart from ALLOWED."""

ALLOWED = ("hooks/providers/", "config/pulumi_adapter.py", "commands/plan.py")


def pulumi_imports(source: str) -> list[str]:
    """The Pulumi modules `source` imports (`pulumi`, `pulumi.*`, `pulumi_*` such as pulumi_azure_native)."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found += [n for n in names if n == "pulumi" or n.startswith(("pulumi.", "pulumi_"))]
    return found


def checked_modules() -> Iterator[Path]:
    for name in CHECKED:
        path = ROOT / name
        paths = sorted(path.rglob("*.py")) if path.is_dir() else [path] if path.exists() else []
        for module in paths:
            relative = module.relative_to(ROOT).as_posix()
            if not relative.startswith(ALLOWED):
                yield module


def test_pulumi_imports_are_read_from_every_kind_of_import_statement() -> None:
    source = """
import os
import pulumi.dynamic
from pulumi import Output
import pulumi_azure_native as azure
from pulumi.runtime import rpc
from pulumiverse import x
from . import pulumi

def later() -> None:
    import pulumi
"""
    assert pulumi_imports(source) == ["pulumi.dynamic", "pulumi", "pulumi_azure_native", "pulumi.runtime", "pulumi"]


def test_only_the_pulumi_adapters_import_pulumi() -> None:
    modules = list(checked_modules())
    assert ROOT / "hooks" / "promotion.py" in modules and ROOT / "hooks" / "step_failures.py" in modules
    offenders = {
        module.relative_to(ROOT).as_posix(): found
        for module in modules
        if (found := pulumi_imports(module.read_text(encoding="utf-8")))
    }
    assert offenders == {}, f"only {', '.join(ALLOWED)}, components/ and __main__.py may import Pulumi: {offenders}"
