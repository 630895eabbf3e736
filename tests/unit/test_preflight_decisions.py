"""Decisions of the capture-time checks that a user relies on and that the rule-by-rule tests leave open: a
version captured from another VM is refused, a VM whose state Azure did not report is not taken for generalized,
and a check that has used up its time bound stops reading instead of holding `pulumi preview`."""

from __future__ import annotations

import pytest

from hooks import arm, preflight
from hooks.arm import ImageVersionFacts
from hooks.errors import ArmUnreachable
from hooks.log import Log
from hooks.targets import ArmSettings, GalleryRef, VmRef
from tests.unit.test_preflight import VM, facts, target

OTHER_SUB = "00000000-0000-0000-0000-00000000bbbb"


def existing(source_vm_id: str | None) -> ImageVersionFacts:
    return ImageVersionFacts(
        id="/subscriptions/x/versions/1.0.0", provisioning_state="Succeeded", source_vm_id=source_vm_id
    )


@pytest.mark.parametrize(
    "source",
    [
        VmRef(OTHER_SUB, VM.resource_group, VM.name).id,
        VmRef(VM.subscription_id, "rg-other", VM.name).id,
        VmRef(VM.subscription_id, VM.resource_group, "other-vm").id,
    ],
    ids=["other subscription", "other resource group", "other name"],
)
def test_a_version_captured_from_another_vm_is_refused(source: str) -> None:
    found = preflight.check_existing_version(VM, existing(source), target())
    assert found is not None
    assert found.path == "images[1].versions[2].version"
    assert source in found.message and "PropertyChangeNotAllowed" in found.message


def test_a_version_without_a_vm_source_is_refused() -> None:
    found = preflight.check_existing_version(VM, existing(None), target())
    assert found is not None and "a source that is not a VM" in found.message


@pytest.mark.parametrize(
    "source",
    [VM.id, VM.id.upper().replace("/SUBSCRIPTIONS/", "/subscriptions/"), VM.id + "/", VM.id.lower()],
    ids=["same", "other case", "trailing slash", "lower case"],
)
def test_a_re_run_over_the_version_captured_from_this_vm_passes(source: str) -> None:
    assert preflight.check_existing_version(VM, existing(source), target()) is None
    assert preflight.check_existing_version(VM, None, target()) is None


def test_a_recorded_source_with_a_trailing_slash_is_the_same_vm_whatever_the_case_of_its_name() -> None:
    for name, recorded_name in (("build-box", "BUILD-BOX"), ("BUILD-BOX", "build-box")):
        vm = VmRef(VM.subscription_id, VM.resource_group, name)
        recorded = VmRef(VM.subscription_id, VM.resource_group, recorded_name).id + "/"
        assert preflight.check_existing_version(vm, existing(recorded), target()) is None, (name, recorded_name)


def test_a_vm_read_without_instance_view_is_not_taken_for_generalized() -> None:
    found = preflight.compare_vm(VM, facts(status=None), target(os_state="Generalized"))
    assert [m.path for m in found] == ["sourceVms.web"]
    assert "in no power state and not generalized" in found[0].message
    assert found[0].input == "vm_id"
    # Specialized captures any power state, and a VM not reported generalized is fine for it.
    assert preflight.compare_vm(VM, facts(status=None), target(os_state="Specialized")) == []


def test_a_check_out_of_its_time_bound_reads_nothing_more(monkeypatch: pytest.MonkeyPatch) -> None:
    def must_not_read(*args: object, **kw: object) -> None:
        raise AssertionError("a read was attempted after the check's bound")

    monkeypatch.setattr(arm, "get_facts", must_not_read)
    monkeypatch.setattr(arm, "get_subscription_tenant", must_not_read)
    monkeypatch.setattr(arm, "get_image_version", must_not_read)
    reader = preflight.CheckReader(ArmSettings(), Log("test", sink=lambda _: None), max_age=0.0, budget=0.0)
    for read in (
        lambda: reader.vm_facts(VM),
        lambda: reader.subscription_tenant(VM.subscription_id),
        lambda: reader.image_version(GalleryRef(VM.subscription_id, "rg", "gal"), target()),
    ):
        with pytest.raises(ArmUnreachable, match="ran out of their 0s bound before this read"):
            read()
    assert reader.done == []


def test_the_documented_bounds_of_the_checks() -> None:
    # The README promises a check bounded to about 15 s; the other values are documented in hooks/preflight/reads.py.
    assert (preflight.CACHE_TTL, preflight.CHECK_BUDGET, preflight.CALL_TIMEOUT) == (30.0, 15.0, 8.0)
    assert (preflight.REQUEST_TIMEOUT, preflight.MAX_RETRIES) == (4.0, 1)
