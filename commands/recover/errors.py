"""How recovery stops: the two failures a user must act on, each message saying what to do."""

from __future__ import annotations


class RecoverError(Exception):
    """Recovery cannot go on; the message says what happened and what to do. Nothing was changed unless it says."""


class Refused(RecoverError):
    """Recovery stops before changing anything (or, for a failed replication, says what it changed)."""
