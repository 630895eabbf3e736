#!/usr/bin/env python3
"""Which stacks a change touches, for `pulumi preview` in pull requests (.github/workflows/preview.yml).

- `Pulumi.<stack>.yaml` changed: that stack (a deleted stack file: nothing to preview, said on stderr);
- documentation (`*.md`), tests (`tests/`) or the developer tools (`tools/`) only: no stack;
- anything else (the program, `Pulumi.yaml`, `uv.lock`, the workflows, this script, ...): every stack.

The stacks are the `Pulumi.<stack>.yaml` files next to `Pulumi.yaml`. Standard library only: it runs before the
project's environment exists.

    python3 .ci/changed_stacks.py --base <sha> [--head <ref>] [--json]   # the files of `git diff base...head`
    python3 .ci/changed_stacks.py [--json] FILE...                       # the files given
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

STACK_FILE = re.compile(r"^Pulumi\.(?P<stack>[^/]+)\.yaml$")
NOT_DEPLOYED = ("tests/", "tools/")
"""Paths whose changes never change what a stack deploys (besides `*.md`)."""


def all_stacks(root: Path) -> list[str]:
    """The stacks with a stack file in `root`."""
    stacks = (STACK_FILE.match(p.name) for p in root.glob("Pulumi.*.yaml"))
    return sorted(m["stack"] for m in stacks if m)


def changed_stacks(files: Iterable[str], root: Path) -> tuple[list[str], list[str]]:
    """(stacks to preview, notes): each changed file classified as the module docstring says."""
    existing = set(all_stacks(root))
    chosen: set[str] = set()
    notes: list[str] = []
    for name in files:
        path = PurePosixPath(name)
        match = STACK_FILE.match(name)
        if match:
            stack = match["stack"]
            if stack in existing:
                chosen.add(stack)
            else:
                notes.append(f"{name}: deleted, stack {stack!r} is not previewed")
        elif path.suffix == ".md" or name.startswith(NOT_DEPLOYED):
            continue
        else:
            if existing - chosen:
                notes.append(f"{name}: not a stack file, every stack is previewed")
            chosen |= existing
    return sorted(chosen), notes


def git_changed_files(root: Path, base: str, head: str) -> list[str]:
    """The files `git diff base...head` names (both sides of a rename)."""
    out = subprocess.run(
        ["git", "-C", str(root), "diff", "--name-only", "--no-renames", "-z", f"{base}...{head}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"changed_stacks: git diff {base}...{head} failed: {out.stderr.strip()}")
    return [f for f in out.stdout.split("\0") if f]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="*", help="changed files, relative to the project root")
    parser.add_argument("--base", help="compare with this commit (git diff BASE...HEAD) instead of FILES")
    parser.add_argument("--head", default="HEAD", help="with --base: the changed commit (default HEAD)")
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1], help="project root")
    parser.add_argument("--json", action="store_true", help="print a JSON list (for a job matrix)")
    args = parser.parse_args(argv)
    if bool(args.base) == bool(args.files):
        parser.error("give either --base or FILES")
    files = git_changed_files(args.root, args.base, args.head) if args.base else args.files
    stacks, notes = changed_stacks(files, args.root)
    for note in notes:
        print(f"changed_stacks: {note}", file=sys.stderr)
    print(json.dumps(stacks, separators=(",", ":")) if args.json else "\n".join(stacks))
    return 0


if __name__ == "__main__":
    sys.exit(main())
