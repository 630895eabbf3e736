"""The Pulumi adapters of the imperative side: the dynamic resources and their providers, the only modules under
hooks/ that import Pulumi.

- `base`: the base class of every provider (failures, the Azure login from `configure()`) and the props helpers;
- `host`: whether this process is the dynamic provider host, and the engine address it was started with;
- `engine_log`: progress lines to the engine under the resource's URN;
- one module per dynamic resource: `chain` (GuestGeneralization, VmGeneralization), `promotion`
  (VersionPromotion), `version_test_boot` (VersionTestBoot), `partner_center` (ProviderRegistration,
  PartnerCenterServicePrincipal).

State compatibility: the state keeps each dynamic resource's provider pickled by reference, as module and class
name, in its `__provider` input; delete and refresh unpickle it from there. Stacks created before this package
existed name `hooks.providers.GuestGeneralizationProvider` and `hooks.providers.VmGeneralizationProvider` (then a
module), so those names stay importable from here; the other old names live on in shims at their old paths
(hooks/promotion.py, hooks/version_boot_provider.py, hooks/partner_center_providers.py). Resolved on first use,
so importing one module of this package does not import them all.
"""

from __future__ import annotations

import importlib
from typing import Any

_MOVED = {
    "GuestGeneralizationProvider": "hooks.providers.chain",
    "VmGeneralizationProvider": "hooks.providers.chain",
}
"""Names pickled into existing states under `hooks.providers` → where they live now."""


def __getattr__(name: str) -> Any:
    module = _MOVED.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
