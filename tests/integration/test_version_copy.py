"""A gallery image version created from another image version (`storageProfile.source.id`), through the
azure-native test plugin against the fake ARM: the ID reaches ARM as sent, and the fake refuses what Azure
refuses (source missing, definition mismatch, replication not complete)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fakes.arm import FakeArm, FakeImageVersion
from tests.integration.test_azure_native_plugin import (  # noqa: F401 (fixtures)
    GALLERY,
    IMAGE,
    VERSION,
    Plugin,
    fake_arm,
    gallery_inputs,
    image_inputs,
    plugin,
    rpc_error,
    running_plugin,
    shared_arm,
    version_inputs,
)


def promoted_inputs(source_id: str) -> dict[str, Any]:
    return version_inputs("unused", storageProfile={"source": {"id": source_id}})


def source_version(fake: FakeArm, **image_fields: Any) -> FakeImageVersion:
    """Version 1.0.0 of `img` in the dev gallery `src` (same definition properties as image_inputs by default)."""
    fields: dict[str, Any] = {"hyper_v_generation": "V2", "security_type": "TrustedLaunch", **image_fields}
    image = fake.add_gallery_image("src", "img", "rg-dev", **fields)
    return fake.add_image_version(image, "1.0.0")


def test_a_version_is_created_from_another_version(plugin: Plugin, fake_arm: FakeArm) -> None:  # noqa: F811
    source = source_version(fake_arm)
    plugin.create(GALLERY, gallery_inputs())
    plugin.create(IMAGE, image_inputs())
    rid, outs = plugin.create(VERSION, promoted_inputs(source.id))
    assert rid.endswith("/galleries/gal/images/img/versions/1.0.0")
    assert outs["storageProfile"]["source"] == {"id": source.id}
    sent = fake_arm.bodies("PUT", r"/galleries/gal/images/img/versions/1\.0\.0$")[-1]
    assert sent["properties"]["storageProfile"] == {"source": {"id": source.id}}
    # The same source again is a no-op update; another source cannot be set on the version.
    other = fake_arm.add_image_version(source.image, "1.1.0")
    error = rpc_error(plugin.update, VERSION, rid, outs, promoted_inputs(other.id))
    assert 'Code="PropertyChangeNotAllowed"' in (error.details() or "")


def test_a_missing_source_version_is_refused(plugin: Plugin, fake_arm: FakeArm) -> None:  # noqa: F811
    source = source_version(fake_arm)
    fake_arm.image_versions.clear()
    plugin.create(GALLERY, gallery_inputs())
    plugin.create(IMAGE, image_inputs())
    error = rpc_error(plugin.create, VERSION, promoted_inputs(source.id))
    assert 'Status=404 Code="NotFound"' in (error.details() or "")
    assert "source gallery image version" in (error.details() or "")


@pytest.mark.parametrize(
    ("image_fields", "message"),
    [
        ({"os_type": "Windows"}, "different OS type ['Windows'] than the parent gallery image ['Linux']"),
        (
            {"os_state": "Specialized"},
            "different OS state ['Specialized'] than the parent gallery image ['Gen",
        ),
        ({"hyper_v_generation": "V1"}, "different Hypervisor generation ['V1'] than the parent gallery image ['V2']"),
        ({"architecture": "Arm64"}, "different architecture ['Arm64'] than the parent gallery image ['x64']"),
        (
            {"security_type": None},
            "different security type ['Standard'] than the parent gallery image ['Tru",
        ),
    ],
)
def test_a_source_of_another_definition_kind_is_refused(
    plugin: Plugin,  # noqa: F811
    fake_arm: FakeArm,  # noqa: F811
    image_fields: dict[str, Any],
    message: str,
) -> None:
    source = source_version(fake_arm, **image_fields)
    plugin.create(GALLERY, gallery_inputs())
    plugin.create(IMAGE, image_inputs())
    error = rpc_error(plugin.create, VERSION, promoted_inputs(source.id))
    assert 'Status=400 Code="InvalidParameter"' in (error.details() or "")
    assert message in (error.details() or "")


@pytest.mark.parametrize(
    "replication",
    [{"westeurope": [("Replicating", 40)]}, {"northeurope": [("Completed", 100)]}],
    ids=["in-progress", "not-in-the-region"],
)
def test_a_source_not_replicated_to_the_region_is_refused(
    plugin: Plugin,  # noqa: F811
    fake_arm: FakeArm,  # noqa: F811
    replication: dict[str, Any],
) -> None:
    source = source_version(fake_arm)
    source.replication = replication
    plugin.create(GALLERY, gallery_inputs())
    plugin.create(IMAGE, image_inputs())
    error = rpc_error(plugin.create, VERSION, promoted_inputs(source.id))
    assert 'Status=409 Code="OperationNotAllowed"' in (error.details() or "")
    assert "no completed replica in region 'westeurope'" in (error.details() or "")
