"""How an expected failure of a provider call reaches the user: as its message alone.

The dynamic provider host (`python -m pulumi.dynamic`) turns any exception from a provider call into the gRPC error
`traceback.format_exc()`, so a failure already explained in one message written for the user would arrive under a
Python traceback of the host's and the provider's frames (pulumi/pulumi#10416). The providers
(hooks/providers/base.py) raise every failure they report as a `StepFailed`, which reads as
`hooks.step_failures.StepFailed: [resource] what happened and what to do`: this module's dotted name is part of
what the user sees, so the exception stays here.

Why a traceback limit at all: the host's own frames (its gRPC method and its error wrapper) are in every traceback
it formats, whatever the provider raises, and `traceback.format_exc()` takes its limit only from
`sys.tracebacklimit`. So the host gets one `StepFailureFrames` as its limit (`drop_step_failure_frames`): it counts
no frames while the exception being handled in the formatting thread is a `StepFailed`, and no limit otherwise.
Nothing else in the process changes: other exceptions, other threads and explicit limits format as before, and a
process that is not the provider host never gets it.
"""

from __future__ import annotations

import sys
import threading


class StepFailed(Exception):
    """Raised to the dynamic provider host: the message is the whole explanation, written for the user."""


class StepFailureFrames:
    """`sys.tracebacklimit` of the provider host: 0 frames while a `StepFailed` is handled in the formatting
    thread, no limit otherwise. `traceback` compares the limit with 0 and slices frames with it (`__index__`)."""

    @staticmethod
    def _frames() -> int:
        return 0 if isinstance(sys.exception(), StepFailed) else sys.maxsize

    def __index__(self) -> int:
        return self._frames()

    def __lt__(self, other: int) -> bool:
        return self._frames() < other

    def __ge__(self, other: int) -> bool:
        return self._frames() >= other

    def __repr__(self) -> str:
        return "StepFailureFrames()"


_INSTALL = threading.Lock()


def drop_step_failure_frames() -> None:
    """Make the host's formatting of a `StepFailed` carry no frames (see the module docstring). Idempotent: every
    call after the first finds the limit in place and changes nothing. Only for the provider host."""
    with _INSTALL:
        if not isinstance(getattr(sys, "tracebacklimit", None), StepFailureFrames):
            sys.tracebacklimit = StepFailureFrames()  # type: ignore[assignment]
