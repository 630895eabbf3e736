"""Kept for the state of existing stacks: Partner Center's providers lived here, and the state keeps each dynamic
resource's provider pickled by reference (this module and the class name) in its `__provider` input, which delete
and refresh unpickle. The providers are in hooks/providers/partner_center.py now; import them from there."""

from __future__ import annotations

from hooks.providers.partner_center import PartnerCenterServicePrincipalProvider, ProviderRegistrationProvider

__all__ = ["PartnerCenterServicePrincipalProvider", "ProviderRegistrationProvider"]
