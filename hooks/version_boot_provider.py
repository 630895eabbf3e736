"""Kept for the state of existing stacks: the test boot's provider lived here, and the state keeps each dynamic
resource's provider pickled by reference (this module and the class name) in its `__provider` input, which delete
and refresh unpickle. The provider is hooks/providers/version_test_boot.py now; import it from there."""

from __future__ import annotations

from hooks.providers.version_test_boot import VersionTestBootProvider

__all__ = ["VersionTestBootProvider"]
