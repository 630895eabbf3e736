"""Promotion checks (hooks/promotion.py) through the real dynamic provider host, against the HTTPS fake of ARM.

`Check` runs as the engine calls it in `pulumi preview` and `pulumi up`, `Create` right before the version is
created. Each rule has a failing case here; every test also proves the checks only ever send GETs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from pulumi.runtime import rpc

from hooks.providers.promotion import VersionPromotionProvider
from tests.fakes.dynamic_host import DynamicHost, HostError, host_factory, with_provider  # noqa: F401

if TYPE_CHECKING:
    from tests.fakes.arm import FakeArm, FakeImageVersion

# The fixture fake_arm; loaded as a plugin so pytest rewrites the fake's asserts too.
pytest_plugins = ["tests.fakes.arm"]

DEFAULT_SUBSCRIPTION = "00000000-0000-0000-0000-00000000aaaa"
"""tests.fakes.arm.DEFAULT_SUBSCRIPTION (not imported here: the fake must be imported as a pytest plugin)."""

URN = "urn:pulumi:prod::image-gallery::pulumi-python:dynamic/promotion:VersionPromotion::img-1.0.0-promotion"
OTHER_SUBSCRIPTION = "00000000-0000-0000-0000-00000000bbbb"
OTHER_TENANT = "99999999-8888-7777-6666-555555555555"
PATH = "images[0].versions[0]"


def source_version(fake: FakeArm, subscription: str = DEFAULT_SUBSCRIPTION, **image_fields: Any) -> FakeImageVersion:
    """dev's version 1.0.0 of `img` (Linux, Generalized, V2, x64, TrustedLaunch unless told otherwise)."""
    image = fake.add_gallery_image("dev_gallery", "img", "rg-dev", subscription, **image_fields)
    fake.add_subscription(subscription)
    return fake.add_image_version(image, "1.0.0", source_vm_id="/subscriptions/x/vm")


def props(fake: FakeArm, source_id: Any, *, stack: bool = True, **overrides: Any) -> dict[str, Any]:
    gallery_id = f"/subscriptions/{DEFAULT_SUBSCRIPTION}/resourceGroups/rg-prod/providers/Microsoft.Compute"
    gallery_id += "/galleries/prod_gallery"
    p: dict[str, Any] = {
        "resource_name": "img-1.0.0-promotion",
        "source_id": source_id,
        "source": {
            "label": "stack dev: img 1.0.0" if stack else f"version {source_id}",
            "stack": "dev" if stack else None,
            "export_key": "img/1.0.0" if stack else None,
            "exported": ["img/1.0.0"] if stack else None,
        },
        "target": {
            "definition": {
                "name": "img",
                "os_type": "Linux",
                "os_state": "Generalized",
                "hyper_v_generation": "V2",
                "architecture": "x64",
                "security_type": "TrustedLaunch",
            },
            "version": "1.0.0",
            "location": "westeurope",
            "gallery_id": gallery_id,
        },
        "paths": {"definition": "images[0]", "version": PATH, "source": f"{PATH}.sourceVersion"},
        "arm": {"endpoint": fake.endpoint, "audience": None, "poll_interval": 0.05, "operation_timeout": 10.0},
        "on_arm_unreachable": "fail",
        "log_urn": None,
        "checked_at": None,
    }
    p.update(overrides)
    return with_provider(VersionPromotionProvider(), p)


@pytest.fixture
def host(fake_arm: FakeArm, host_factory: Any) -> DynamicHost:  # noqa: F811
    h: DynamicHost = host_factory(fake_arm.env)
    h.configure({})
    return h


def reasons(host: DynamicHost, news: dict[str, Any], olds: dict[str, Any] | None = None) -> list[str]:
    return [reason for _, reason in host.check(URN, olds or {}, news).failures]


def test_a_matching_source_passes_and_create_returns_its_id(fake_arm: FakeArm, host: DynamicHost) -> None:
    source = source_version(fake_arm)
    assert reasons(host, props(fake_arm, source.id)) == []
    id_, outs = host.create(URN, props(fake_arm, source.id))
    assert id_ == f"{source.id}/promotion" and outs["source_id"] == source.id and outs["checked_at"]
    assert fake_arm.non_get_requests() == []
    assert "promotion checks of images[0].versions[0] (stack dev: img 1.0.0): no mismatch" in host.close()


def test_unknown_source_is_not_checked(fake_arm: FakeArm, host: DynamicHost) -> None:
    assert reasons(host, props(fake_arm, rpc.UNKNOWN)) == []
    assert fake_arm.requests == []


def test_a_version_the_other_stack_does_not_export(fake_arm: FakeArm, host: DynamicHost) -> None:
    [reason] = reasons(host, props(fake_arm, None))
    assert reason.startswith(f"{PATH}.sourceVersion.version: stack dev does not export img/1.0.0")
    assert "it exports: img/1.0.0" in reason and fake_arm.requests == []


def test_a_missing_source(fake_arm: FakeArm, host: DynamicHost) -> None:
    source = source_version(fake_arm)
    fake_arm.image_versions.clear()
    [reason] = reasons(host, props(fake_arm, source.id, stack=False))
    assert reason.startswith(f"{PATH}.sourceVersion.id: the source image version 1.0.0 of img in gallery dev_gallery")
    assert "does not exist" in reason


@pytest.mark.parametrize(
    ("image_fields", "key", "theirs", "ours"),
    [
        ({"os_type": "Windows"}, "osType", "Windows", "Linux"),
        ({"os_state": "Specialized"}, "osState", "Specialized", "Generalized"),
        ({"hyper_v_generation": "V1"}, "hyperVGeneration", "V1", "V2"),
        ({"architecture": "Arm64"}, "architecture", "Arm64", "x64"),
        ({"security_type": None}, "securityType", "Standard", "TrustedLaunch"),
    ],
)
def test_a_definition_mismatch_names_both_values_and_the_key(
    fake_arm: FakeArm, host: DynamicHost, image_fields: dict[str, Any], key: str, theirs: str, ours: str
) -> None:
    source = source_version(fake_arm, **image_fields)
    [reason] = reasons(host, props(fake_arm, source.id))
    assert reason.startswith(f"images[0].{key}: ")
    assert f"with {key} {theirs}, but image definition img (images[0]) has {key} {ours}" in reason
    assert fake_arm.non_get_requests() == []


@pytest.mark.parametrize(
    ("replication", "expected"),
    [
        ({"West Europe": [("Replicating", 40)]}, "to westeurope is Replicating (40%), not Completed"),
        ({"North Europe": [("Completed", 100)]}, "has no replica in westeurope"),
    ],
    ids=["in-progress", "not-in-the-region"],
)
def test_replication_to_the_gallery_region_must_be_complete(
    fake_arm: FakeArm, host: DynamicHost, replication: dict[str, Any], expected: str
) -> None:
    source = source_version(fake_arm)
    source.replication = replication
    [reason] = reasons(host, props(fake_arm, source.id))
    assert reason.startswith(f"{PATH}.sourceVersion.version: ") and expected in reason


def test_a_source_still_being_created(fake_arm: FakeArm, host: DynamicHost) -> None:
    source = source_version(fake_arm)
    source.provisioning_state = "Failed"
    [reason] = reasons(host, props(fake_arm, source.id))
    assert "provisioning state Failed, not Succeeded" in reason


def test_a_source_past_its_end_of_life(fake_arm: FakeArm, host: DynamicHost) -> None:
    source = source_version(fake_arm)
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    source.extra = {"publishingProfile": {"endOfLifeDate": f"{yesterday}T00:00:00+00:00"}}
    [reason] = reasons(host, props(fake_arm, source.id))
    assert f"is past its end-of-life date: its version ended on {yesterday}" in reason
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    source.extra = {"publishingProfile": {"endOfLifeDate": f"{tomorrow}T00:00:00+00:00"}}
    assert reasons(host, props(fake_arm, source.id)) == []


def test_the_target_version_number_must_be_free_or_hold_this_source(fake_arm: FakeArm, host: DynamicHost) -> None:
    source = source_version(fake_arm)
    target_image = fake_arm.add_gallery_image("prod_gallery", "img", "rg-prod")
    taken = fake_arm.add_image_version(
        target_image, "1.0.0", source_vm_id="/subscriptions/s/other", legacy_source_id=True
    )
    [reason] = reasons(host, props(fake_arm, source.id))
    assert reason.startswith(f"{PATH}.version: image version 1.0.0 of img already exists in gallery prod_gallery")
    assert "/subscriptions/s/other" in reason
    taken.source_vm_id = source.id  # a re-run: it holds this same source
    assert reasons(host, props(fake_arm, source.id)) == []


def test_a_source_in_another_tenant_is_refused_in_preview(fake_arm: FakeArm, host: DynamicHost) -> None:
    source = source_version(fake_arm, OTHER_SUBSCRIPTION)
    fake_arm.add_subscription(DEFAULT_SUBSCRIPTION)
    fake_arm.subscriptions[OTHER_SUBSCRIPTION] = OTHER_TENANT
    [reason] = reasons(host, props(fake_arm, source.id))
    assert f"of tenant {OTHER_TENANT}" in reason and "auxiliary-tenant" in reason
    fake_arm.subscriptions[OTHER_SUBSCRIPTION] = fake_arm.tenant_id  # another subscription, same tenant: fine
    assert reasons(host, props(fake_arm, source.id)) == []


def test_an_unchanged_promotion_is_not_checked_again(fake_arm: FakeArm, host: DynamicHost) -> None:
    source = source_version(fake_arm)
    fake_arm.image_versions.clear()  # e.g. dev deleted its version after promotion
    olds = props(fake_arm, source.id)
    assert reasons(host, props(fake_arm, source.id), olds) == []
    assert fake_arm.requests == []
    diff = host.diff(URN, f"{source.id}/promotion", olds, props(fake_arm, source.id))
    assert not diff.changes


def test_create_runs_the_checks_again_and_creates_nothing_on_a_mismatch(fake_arm: FakeArm, host: DynamicHost) -> None:
    source = source_version(fake_arm, hyper_v_generation="V1")
    with pytest.raises(HostError) as failed:
        host.create(URN, props(fake_arm, source.id))
    assert "cannot be promoted into image definition img (images[0]), version 1.0.0" in failed.value.details
    assert "images[0].hyperVGeneration" in failed.value.details
    assert fake_arm.non_get_requests() == []


def test_create_whose_checks_cannot_run_creates_nothing_and_says_why(fake_arm: FakeArm, host: DynamicHost) -> None:
    source = source_version(fake_arm)
    fake_arm.deny(403, path=r"/images/img/versions/1\.0\.0$", method="GET")
    with pytest.raises(HostError) as failed:
        host.create(URN, props(fake_arm, source.id))
    assert failed.value.details.startswith(
        f"hooks.step_failures.StepFailed: [img-1.0.0-promotion] the promotion checks of {PATH} could not run, so "
        "nothing was created:\n  - "
    ), failed.value.details
    assert "galleries/images/versions/read" in failed.value.details
    assert fake_arm.non_get_requests() == []


def test_arm_unreachable_says_so_and_warn_continues(fake_arm: FakeArm, host: DynamicHost) -> None:
    source = source_version(fake_arm)
    fake_arm.deny(403, path=r"/images/img/versions/1\.0\.0$", method="GET")
    failures = reasons(host, props(fake_arm, source.id))
    assert failures and all("not checked" in r for r in failures)
    assert any("galleries/images/versions/read" in r for r in failures)
    assert reasons(host, props(fake_arm, source.id, on_arm_unreachable="warn")) == []
