"""Existing stacks keep working after the providers moved: the state holds each dynamic resource's provider pickled
by reference (module and class name) in its `__provider` input, and delete and refresh unpickle it. The blobs in
tests/unit/data/ were written by the code before the move (hooks/providers.py, hooks/promotion.py,
hooks/version_boot_provider.py, hooks/partner_center_providers.py held the providers then)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import dill
import pytest

from hooks.providers.chain import GuestGeneralizationProvider, VmGeneralizationProvider
from hooks.providers.partner_center import PartnerCenterServicePrincipalProvider, ProviderRegistrationProvider
from hooks.providers.promotion import VersionPromotionProvider
from hooks.providers.version_test_boot import VersionTestBootProvider

OLD_BLOBS: dict[str, str] = json.loads(
    (Path(__file__).parent / "data" / "provider_blobs_before_providers_package.json").read_text()
)["blobs"]

NOW = {
    "hooks.providers.GuestGeneralizationProvider": GuestGeneralizationProvider,
    "hooks.providers.VmGeneralizationProvider": VmGeneralizationProvider,
    "hooks.promotion.VersionPromotionProvider": VersionPromotionProvider,
    "hooks.version_boot_provider.VersionTestBootProvider": VersionTestBootProvider,
    "hooks.partner_center_providers.ProviderRegistrationProvider": ProviderRegistrationProvider,
    "hooks.partner_center_providers.PartnerCenterServicePrincipalProvider": PartnerCenterServicePrincipalProvider,
}


def test_every_provider_of_the_old_layout_has_a_blob() -> None:
    assert set(OLD_BLOBS) == set(NOW)


@pytest.mark.parametrize("old_name", sorted(NOW))
def test_a_blob_written_before_the_move_unpickles_to_the_provider_now(old_name: str) -> None:
    raw = base64.b64decode(OLD_BLOBS[old_name])
    module, _, name = old_name.rpartition(".")
    assert module.encode() in raw and name.encode() in raw, "the blob names the class where it was then"
    provider = dill.loads(raw)  # as the dynamic provider host does (pulumi/dynamic/__main__.py get_provider)
    assert type(provider) is NOW[old_name]
    assert vars(provider) == {}, "a provider carries no state of its own"
