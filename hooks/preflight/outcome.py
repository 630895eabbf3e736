"""What the problems a check found mean for the run, for the capture-time checks and the promotion checks alike:
`apply_unreachable_policy` (a check that could not run fails, or only warns under onArmUnreachable: warn),
`describe` (the problems as the error lists them) and `raise_problems` (the create path's error)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from hooks.log import Log
from hooks.preflight.target import ON_ARM_UNREACHABLE_PATH, Mismatch


def apply_unreachable_policy(
    problems: Sequence[Mismatch], on_arm_unreachable: str, log: Log, warning: str
) -> list[Mismatch]:
    """The problems that fail the check. A read that could not reach ARM (or was denied) is a warning with
    `onArmUnreachable: warn`; otherwise it fails, saying how to turn it into a warning. Real mismatches always fail."""
    kept: list[Mismatch] = []
    for problem in problems:
        if problem.unverified and on_arm_unreachable == "warn":
            log.warn(f"{problem} {ON_ARM_UNREACHABLE_PATH} is warn: {warning}")
        elif problem.unverified:
            kept.append(
                replace(
                    problem,
                    message=f"{problem.message} To continue without these checks (a warning instead of a failure), "
                    f"set {ON_ARM_UNREACHABLE_PATH} to warn.",
                )
            )
        else:
            kept.append(problem)
    return kept


def describe(problems: Sequence[Mismatch]) -> str:
    return "\n".join(f"  - {p}" for p in problems)


def raise_problems(
    problems: Sequence[Mismatch], mismatch: Callable[[str], Exception], refused: str, checks: str, unchanged: str
) -> None:
    """The create path's verdict on the problems its checks found: nothing when there are none. Any real mismatch
    raises `mismatch(f"{refused}; {unchanged}:" + the list)`, e.g. CaptureMismatch; when the checks could only not
    run, the first one's ARM error type is raised, saying `f"{checks} could not run, so {unchanged}:"` + the list.

    `refused`: e.g. "VM x cannot be captured into image definition y, version 1.0.0 (images[0].versions[0])";
    `checks`: e.g. "the capture-time checks of images[0].versions[0]"; `unchanged`: e.g. "nothing was changed"."""
    if not problems:
        return
    if any(not p.unverified for p in problems):
        raise mismatch(f"{refused}; {unchanged}:\n{describe(problems)}")
    cause = problems[0].cause
    assert cause is not None
    raise type(cause)(f"{checks} could not run, so {unchanged}:\n{describe(problems)}") from cause
