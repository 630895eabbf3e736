"""`python -m commands.recover STACK` (what `make recover STACK=…` runs): the command line, the stack file and the
Azure login, then the recovery (recovery.py); every expected failure as one line and its exit code."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import commands.recover
from commands.recover.errors import RecoverError, Refused
from commands.recover.pulumi_cli import PulumiCli
from commands.recover.recovery import EXIT_ERROR, EXIT_REFUSED, Recovery
from commands.replication import UsageError, load_stack
from commands.stack_file import ROOT, StackFileError, read_stack
from hooks import arm
from hooks.errors import ArmError, ConfigError
from hooks.targets import ArmSettings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m commands.recover",
        description=commands.recover.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("stack", help="the stack a killed `pulumi up` left behind (Pulumi.<stack>.yaml)")
    parser.add_argument(
        "--preview-only", action="store_true", help="repair the state, then `pulumi preview` instead of `pulumi up`"
    )
    parser.add_argument(
        "--wait-minutes",
        type=float,
        help="how long to wait for a version still replicating (default: its createTimeoutMinutes)",
    )
    parser.add_argument(
        "--deprovisioned",
        action="append",
        default=[],
        metavar="NAME",
        help="the Linux guest of this pending guest step (e.g. ubuntu-2204-1.0.0-guest) was deprovisioned: mark its "
        "VM generalized without looking (when recovery cannot tell: its user is gone, the host key kept)",
    )
    parser.add_argument("--cwd", type=Path, default=ROOT, help="the project directory (default: this checkout)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:
        return EXIT_ERROR if exc.code else 0
    # azure-identity logs a multi-line warning when the login fails; our one-line error already says it all.
    logging.getLogger("azure").addHandler(logging.NullHandler())
    try:
        spec, _ = load_stack(args.stack, args.cwd)
        project = read_stack(args.stack, args.cwd).project
        settings = ArmSettings(
            endpoint=spec.azure.arm_endpoint,
            audience=spec.azure.audience,
            poll_interval=spec.azure.poll_interval_seconds,
            request_timeout=30.0,
            operation_timeout=120.0,
        )
        with arm.SharedLogin() as login:
            recovery = Recovery(
                PulumiCli(args.stack, args.cwd),
                project,
                spec,
                settings,
                login,
                args.preview_only,
                args.wait_minutes,
                args.deprovisioned,
            )
            return recovery.run()
    except Refused as exc:
        print(f"recover of stack '{args.stack}': refused: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except (UsageError, StackFileError, ConfigError, ArmError, RecoverError) as exc:
        message = "; ".join(exc.problems) if isinstance(exc, ConfigError) else str(exc)
        print(f"recover of stack '{args.stack}': {message}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
