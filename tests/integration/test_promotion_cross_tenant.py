"""Promotion from a gallery in another tenant (hooks/promotion.py), through the real dynamic provider host, against
the fake ARM modelling two tenants: the signed-in identity is in both, the gallery's subscription is in the home
tenant, the source's in the other.

ARM serves the source only to a token of its own tenant, and copies it only with such a token in
x-ms-authorization-auxiliary; the other tenant must therefore be an auxiliary tenant
(`azure-native:auxiliaryTenantIds` / ARM_AUXILIARY_TENANT_IDS), and the preview checks say so, naming the key."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
from pulumi.runtime import rpc

from tests.fakes.dynamic_host import DynamicHost, HostError, host_factory  # noqa: F401
from tests.integration.test_promotion import URN, props, reasons, source_version

if TYPE_CHECKING:
    from tests.fakes.arm import FakeArm, FakeImageVersion

pytest_plugins = ["tests.fakes.arm"]

OTHER_SUBSCRIPTION = "00000000-0000-0000-0000-00000000bbbb"
OTHER_TENANT = "99999999-8888-7777-6666-555555555555"
THIRD_TENANT = "33333333-3333-3333-3333-333333333333"
KEY = "azure-native:auxiliaryTenantIds"


def other_tenants_source(fake: FakeArm) -> FakeImageVersion:
    fake.add_tenant(OTHER_TENANT)
    source = source_version(fake, OTHER_SUBSCRIPTION)
    fake.add_subscription(OTHER_SUBSCRIPTION, OTHER_TENANT)
    fake.add_subscription(fake.subscription_id)
    return source


def start(host_factory: Any, fake: FakeArm, stack: dict[str, str] | None = None, **env: str) -> DynamicHost:  # noqa: F811
    host: DynamicHost = host_factory({**fake.env, **env})
    host.configure(stack or {})
    return host


def test_a_source_in_an_auxiliary_tenant_is_read_with_a_token_of_its_tenant(
    fake_arm: FakeArm,
    host_factory: Any,  # noqa: F811
) -> None:
    source = other_tenants_source(fake_arm)
    host = start(host_factory, fake_arm, {KEY: json.dumps([OTHER_TENANT])})
    assert reasons(host, props(fake_arm, source.id)) == []
    _, outs = host.create(URN, props(fake_arm, source.id))
    assert outs["source_id"] == source.id
    source_reads = [r for r in fake_arm.requests if r.path.startswith(f"/subscriptions/{OTHER_SUBSCRIPTION}/resource")]
    assert source_reads and all(r.authorized and r.status == 200 for r in source_reads)
    assert fake_arm.non_get_requests() == []
    assert any(call[-2:] == ["--tenant", OTHER_TENANT] for call in fake_arm.az_calls())
    log = host.close()
    assert f"source version (a token of tenant {OTHER_TENANT}, an auxiliary tenant): GET" in log
    assert fake_arm.token not in log and fake_arm.signing_key not in log


def test_the_auxiliary_tenants_may_come_from_the_environment_as_azure_native_reads_them(
    fake_arm: FakeArm,
    host_factory: Any,  # noqa: F811
) -> None:
    source = other_tenants_source(fake_arm)
    host = start(host_factory, fake_arm, ARM_AUXILIARY_TENANT_IDS=json.dumps([OTHER_TENANT.upper()]))
    assert reasons(host, props(fake_arm, source.id)) == []


def test_without_auxiliary_tenants_the_source_tenant_and_the_key_are_named(
    fake_arm: FakeArm,
    host_factory: Any,  # noqa: F811
) -> None:
    source = other_tenants_source(fake_arm)
    host = start(host_factory, fake_arm)
    [reason] = reasons(host, props(fake_arm, source.id))
    assert reason.startswith("images[0].versions[0].sourceVersion.version: the source image version 1.0.0")
    assert f"subscription {OTHER_SUBSCRIPTION} of tenant {OTHER_TENANT}" in reason
    assert f"{KEY} / ARM_AUXILIARY_TENANT_IDS, not set: none" in reason
    assert f"pulumi config set --path '{KEY}[0]' {OTHER_TENANT}" in reason
    # The tenant came from ARM's refusal of the home tenant's token; nothing of the source was read.
    [refusal] = [r for r in fake_arm.requests if r.path == f"/subscriptions/{OTHER_SUBSCRIPTION}"]
    assert refusal.status == 401
    assert not any("/galleries/dev_gallery" in r.path for r in fake_arm.requests)
    with pytest.raises(HostError) as failed:
        host.create(URN, props(fake_arm, source.id))
    assert "nothing was created" in failed.value.details and KEY in failed.value.details


def test_a_source_tenant_that_is_not_among_the_auxiliary_tenants(
    fake_arm: FakeArm,
    host_factory: Any,  # noqa: F811
) -> None:
    source = other_tenants_source(fake_arm)
    host = start(host_factory, fake_arm, {KEY: json.dumps([THIRD_TENANT])})
    [reason] = reasons(host, props(fake_arm, source.id))
    assert f"tenant {OTHER_TENANT} is not an auxiliary tenant (stack setting {KEY}: {THIRD_TENANT})" in reason


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (f"{OTHER_TENANT};{THIRD_TENANT}", "not a JSON array of tenant IDs"),
        (json.dumps(OTHER_TENANT), "not a JSON array of tenant IDs"),
        (json.dumps(["a", "b", "c", "d"]), "names 4 tenants; ARM accepts at most 3"),
    ],
)
def test_malformed_auxiliary_tenants_are_reported_with_where_they_came_from(
    fake_arm: FakeArm,
    host_factory: Any,  # noqa: F811
    value: str,
    expected: str,
) -> None:
    source = other_tenants_source(fake_arm)
    host = start(host_factory, fake_arm, ARM_AUXILIARY_TENANT_IDS=value)
    found = reasons(host, props(fake_arm, source.id))
    assert any(r.startswith("images[0].versions[0].sourceVersion.version: ARM_AUXILIARY_TENANT_IDS ") for r in found)
    assert any(expected in r for r in found), found


def test_an_auxiliary_tenant_the_identity_cannot_log_in_to(
    fake_arm: FakeArm,
    host_factory: Any,  # noqa: F811
) -> None:
    source = other_tenants_source(fake_arm)
    (fake_arm.workdir / "az-tenants").write_text(f"{fake_arm.tenant_id}\n")  # signed out of the other tenant
    host = start(host_factory, fake_arm, {KEY: json.dumps([OTHER_TENANT])})
    found = reasons(host, props(fake_arm, source.id))
    assert found and all("not checked (" in r for r in found), found
    assert found[0].startswith(
        f"images[0].versions[0].sourceVersion.version: not checked (source version (a token of tenant {OTHER_TENANT}"
    )
    assert any(f"does not exist in tenant '{OTHER_TENANT}'" in r and "login problem" in r for r in found)
    assert not any("/galleries/dev_gallery" in r.path for r in fake_arm.requests)


def test_in_the_first_preview_the_source_tenant_is_told_by_arms_refusal(
    fake_arm: FakeArm,
    host_factory: Any,  # noqa: F811
) -> None:
    """A new stack: the gallery's ID is not known yet, but ARM refusing the login's token for the source's
    subscription says it is in another tenant (and which)."""
    source = other_tenants_source(fake_arm)
    news = props(fake_arm, source.id)
    news["target"]["gallery_id"] = rpc.UNKNOWN
    [reason] = reasons(start(host_factory, fake_arm), news)
    assert (
        f"of tenant {OTHER_TENANT}, but ARM refuses the login's token for that subscription" in reason and KEY in reason
    )
    fake_arm.requests.clear()
    assert reasons(start(host_factory, fake_arm, {KEY: json.dumps([OTHER_TENANT])}), news) == []
    assert any(r.path.endswith("/versions/1.0.0") and r.status == 200 for r in fake_arm.requests)


def test_in_the_first_preview_a_source_of_the_logins_tenant_costs_one_read(
    fake_arm: FakeArm,
    host_factory: Any,  # noqa: F811
) -> None:
    source = source_version(fake_arm, OTHER_SUBSCRIPTION)
    news = props(fake_arm, source.id)
    news["target"]["gallery_id"] = rpc.UNKNOWN
    assert reasons(start(host_factory, fake_arm), news) == []
    assert fake_arm.count("GET", f"^/subscriptions/{OTHER_SUBSCRIPTION}$") == 1
