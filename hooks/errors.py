"""One exception type per kind of failure a user must act on.

Every message says what happened, to which resource, and what to do next. The dynamic providers turn these
into a clean one-paragraph error for Pulumi, without a traceback; anything else is a bug, reported with its
traceback (hooks/step_failures.py).
"""

from __future__ import annotations


class ImageGalleryError(Exception):
    """Base class: an expected failure with a message written for the user."""


class ConfigError(ImageGalleryError):
    """The stack configuration is invalid; the message lists every problem with its key path."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid stack configuration:\n" + "\n".join(f"  - {p}" for p in problems))


class WaitTimeout(ImageGalleryError):
    """A bounded wait ran out; the message says what was awaited and for how long."""


class PartnerCenterPrincipalMissing(ImageGalleryError):
    """The tenant has no single service principal of Partner Center's owned by Microsoft under the name Microsoft
    publishes (or the configured object ID is not a service principal); the message says what to register."""


class ArmError(ImageGalleryError):
    """Azure Resource Manager refused or failed an operation."""


class ArmUnreachable(ArmError):
    """ARM could not be reached, or the credentials could not get a token."""


class ArmAccessDenied(ArmError):
    """ARM answered 401/403: the identity lacks a permission."""


class VmNotFound(ArmError):
    """The source VM does not exist (or the caller cannot see it)."""


class GuestConnectionError(ImageGalleryError):
    """SSH or WinRM could not connect or authenticate (after bounded retries)."""


class HostKeyMismatch(GuestConnectionError):
    """The SSH host key or the WinRM TLS certificate is not the one configured."""


class GuestCommandFailed(ImageGalleryError):
    """A guest script ran and failed; the message carries its exit code and the tail of its output."""


class PreCheckFailed(ImageGalleryError):
    """A pre-check before the irreversible step found a problem; nothing was changed."""


class SysprepFailed(GuestCommandFailed):
    """Sysprep exited without reaching IMAGE_STATE_GENERALIZE_RESEAL_TO_OOBE; carries the Panther log tail."""


class CaptureMismatch(ImageGalleryError):
    """The source VM does not match the image definition it is captured into (found before anything ran)."""


class PromotionMismatch(ImageGalleryError):
    """A source image version cannot be promoted into the configured version (found before anything was created)."""


class TestBootFailed(ImageGalleryError):
    """The throwaway VM booted from a new image version did not provision, or its guest agent never got Ready."""

    __test__ = False  # not a pytest test class
