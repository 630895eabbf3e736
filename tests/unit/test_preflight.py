"""The capture-time rules of hooks/preflight as pure functions, and the shared read cache (no network)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from hooks import preflight, steps
from hooks.arm import ImageVersionFacts, VmFacts, VmStatus
from hooks.errors import ArmAccessDenied, ArmUnreachable
from hooks.log import Log
from hooks.preflight import CaptureTarget, ReadCache, security_type_problem
from hooks.targets import ArmSettings, GalleryRef, VmRef

VM = VmRef("00000000-0000-0000-0000-00000000aaaa", "rg-src", "src-vm")
RUNNING = VmStatus("running", False, "succeeded", ("PowerState/running",))


def facts(**overrides: Any) -> VmFacts:
    values: dict[str, Any] = dict(
        location="westeurope",
        os_type="Linux",
        hyper_v_generation="V2",
        security_type="TrustedLaunch",
        architecture="x64",
        vm_id="6b8e3a4c-0000-0000-0000-000000000001",
        status=RUNNING,
    )
    values.update(overrides)
    return VmFacts(**values)


def target(**overrides: Any) -> CaptureTarget:
    values: dict[str, Any] = dict(
        definition_name="img",
        os_type="Linux",
        os_state="Generalized",
        hyper_v_generation="V2",
        architecture="x64",
        security_type="TrustedLaunch",
        version="1.0.0",
        target_regions=("westeurope",),
        gallery=GalleryRef("00000000-0000-0000-0000-00000000aaaa", "rg-gallery", "gal"),
        gallery_resource_group="rg-gallery",
        gallery_name="gal",
        publisher_tenant_id=None,
        definition_path="images[1]",
        version_path="images[1].versions[2]",
        source_vm_path="sourceVms.web",
    )
    values.update(overrides)
    return CaptureTarget(**values)


def test_a_matching_vm_has_no_mismatch() -> None:
    assert preflight.compare_vm(VM, facts(), target()) == []


def test_descriptions_cover_every_rule() -> None:
    # the VM read, five rules over the facts, the state, the version, the tenant; the features (one line for the
    # three feature rules), the Marketplace's OS disk and data disk rules, the data disks against dataDiskLuns
    assert len(steps.CAPTURE_CHECKS) == 1 + len(preflight.VM_RULES) + 3 + 3 + 1
    assert len(preflight.FEATURE_RULES) == 6


@pytest.mark.parametrize(
    ("vm", "definition", "ok"),
    [
        ("Standard", "Standard", True),
        ("TrustedLaunch", "TrustedLaunch", True),
        ("ConfidentialVM", "ConfidentialVM", True),
        ("TrustedLaunch", "TrustedLaunchSupported", False),
        ("Standard", "TrustedLaunchSupported", False),
        ("ConfidentialVM", "ConfidentialVmSupported", False),
        ("TrustedLaunch", "TrustedLaunchAndConfidentialVmSupported", False),
        ("TrustedLaunch", "Standard", False),
        ("Standard", "TrustedLaunch", False),
        ("Standard", "ConfidentialVM", False),
        ("ConfidentialVM", "TrustedLaunch", False),
        ("TrustedLaunch", "ConfidentialVM", False),
    ],
)
def test_security_type_compatibility(vm: str, definition: str, ok: bool) -> None:
    assert (security_type_problem(vm, definition) is None) is ok


def test_each_rule_names_its_key_and_the_fix() -> None:
    cases = [
        (facts(os_type="Windows"), "images[1].osType", "point images[1].versions[2].sourceVm at a Linux VM"),
        (facts(hyper_v_generation="V1"), "images[1].hyperVGeneration", "set images[1].hyperVGeneration to V1"),
        (facts(security_type="Standard"), "images[1].securityType", "upgrade the VM to Trusted Launch"),
        (facts(architecture="Arm64"), "images[1].architecture", "set images[1].architecture to Arm64"),
        (facts(location="eastus"), "images[1].versions[2].targetRegions", "`- name: eastus`"),
    ]
    for vm_facts, path, fix in cases:
        [found] = preflight.compare_vm(VM, vm_facts, target())
        assert found.path == path and fix in found.message, found
        assert str(found).startswith(f"{path}: Azure reports that ")
        assert "VM src-vm (resource group rg-src)" in found.message
        assert not found.unverified


def test_region_compares_without_case_and_spaces() -> None:
    assert preflight.check_region(VM, facts(location="West Europe"), target()) is None
    assert preflight.check_region(VM, facts(location="westeurope"), target(target_regions=("WestEurope",))) is None


@pytest.mark.parametrize(
    ("power_state", "generalized", "os_state", "problem_path"),
    [
        ("running", False, "Generalized", None),
        ("starting", False, "Generalized", None),
        ("deallocated", True, "Generalized", None),
        ("deallocated", False, "Generalized", "sourceVms.web"),
        ("stopped", False, "Generalized", "sourceVms.web"),
        ("stopping", False, "Generalized", "sourceVms.web"),
        (None, False, "Generalized", "sourceVms.web"),
        ("running", False, "Specialized", None),
        ("deallocated", False, "Specialized", None),
        ("deallocated", True, "Specialized", "images[1].osState"),
    ],
)
def test_state_rule(power_state: str | None, generalized: bool, os_state: str, problem_path: str | None) -> None:
    status = VmStatus(power_state, generalized, "succeeded", ())
    found = preflight.check_state(VM, status, target(os_state=os_state))
    assert (found.path if found else None) == problem_path


def test_existing_version_needs_the_same_source() -> None:
    t = target()
    same = ImageVersionFacts("v", "Succeeded", VM.id.upper().replace("SUBSCRIPTIONS", "subscriptions"))
    assert preflight.check_existing_version(VM, None, t) is None
    assert preflight.check_existing_version(VM, same, t) is None
    other = ImageVersionFacts("v", "Succeeded", VM.id.replace("src-vm", "old-vm"))
    found = preflight.check_existing_version(VM, other, t)
    assert found is not None and found.path == "images[1].versions[2].version" and "old-vm" in found.message
    no_vm = preflight.check_existing_version(VM, ImageVersionFacts("v", "Succeeded", None), t)
    assert no_vm is not None and "a source that is not a VM" in no_vm.message


def test_publisher_tenant() -> None:
    gallery = GalleryRef("sub", "rg", "gal")
    t = target(publisher_tenant_id="AAAA")
    assert preflight.check_publisher_tenant(gallery, "aaaa", t) is None
    found = preflight.check_publisher_tenant(gallery, "bbbb", t)
    assert found is not None and found.path == "publisherTenantId" and "Partner Center" in found.message
    assert preflight.check_publisher_tenant(gallery, "bbbb", target()) is None


def test_capture_target_from_props() -> None:
    props: dict[str, Any] = {
        "definition": {
            "name": "img",
            "os_type": "Windows",
            "os_state": "Specialized",
            "hyper_v_generation": "V2",
            "architecture": "x64",
            "security_type": "TrustedLaunch",
        },
        "version": "1.2.3",
        "target_regions": ["westeurope"],
        "gallery_id": "/subscriptions/ABC/resourceGroups/rg-g/providers/Microsoft.Compute/galleries/gal",
        "gallery_resource_group": "rg-g",
        "gallery_name": "gal",
        "publisher_tenant_id": None,
        "on_arm_unreachable": "warn",
        "paths": {"definition": "images[0]", "version": "images[0].versions[0]", "source_vm": "sourceVms.a"},
    }
    t = CaptureTarget.from_props(props)
    assert t.gallery == GalleryRef("abc", "rg-g", "gal")
    assert (t.os_state, t.on_arm_unreachable, t.source_vm_path) == ("Specialized", "warn", "sourceVms.a")
    assert CaptureTarget.from_props({**props, "gallery_id": None}).gallery is None
    with pytest.raises(ValueError, match="not a gallery resource ID"):
        CaptureTarget.from_props({**props, "gallery_id": "/subscriptions/x"})
    with pytest.raises(ValueError, match="on_arm_unreachable"):
        CaptureTarget.from_props({**props, "on_arm_unreachable": "ignore"})
    with pytest.raises(ValueError, match="incomplete"):
        CaptureTarget.from_props({"version": "1.0.0"})


def test_the_data_disk_rule() -> None:
    from hooks.arm import DataDiskFacts
    from hooks.preflight import check_data_disk_luns, data_disks_line

    two = facts(data_disks=(DataDiskFacts(1, 64), DataDiskFacts(0, 32)))
    assert check_data_disk_luns(VM, two, target(data_disk_luns=(0, 1))) is None
    assert check_data_disk_luns(VM, two, target()) is None, "undeclared and unencrypted: whatever the VM has"
    wrong = check_data_disk_luns(VM, two, target(data_disk_luns=(0,)))
    assert wrong is not None and wrong.path == "images[1].versions[2].dataDiskLuns"
    encrypted = check_data_disk_luns(VM, two, target(encrypts_data_disks=True))
    assert encrypted is not None and "diskEncryptionSetId" in encrypted.message
    assert check_data_disk_luns(VM, facts(), target(encrypts_data_disks=True)) is None
    assert data_disks_line(VM, two, target()).endswith(": LUN 0 (32 GB), LUN 1 (64 GB)")
    assert "no data disks" in data_disks_line(VM, facts(), target())


# --- the shared read cache -----------------------------------------------------------------------------------


def test_concurrent_reads_of_one_key_fetch_once() -> None:
    cache = ReadCache(ttl=30)
    calls: list[int] = []
    gate = threading.Event()

    def fetch() -> str:
        calls.append(1)
        gate.wait(2)
        return "facts"

    results: list[tuple[str, bool]] = []
    threads = [threading.Thread(target=lambda: results.append(cache.get(("e", "vm"), fetch, 30, 5))) for _ in range(6)]
    for t in threads:
        t.start()
    time.sleep(0.1)
    gate.set()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert sorted(results) == [("facts", False)] * 5 + [("facts", True)]


def test_errors_are_shared_and_entries_expire() -> None:
    now = [0.0]
    cache = ReadCache(ttl=30, clock=lambda: now[0])
    calls: list[int] = []

    def denied() -> str:
        calls.append(1)
        raise ArmAccessDenied("403")

    for _ in range(3):
        with pytest.raises(ArmAccessDenied):
            cache.get(("e", "vm"), denied, 30, 1)
    assert len(calls) == 1, "an ARM error is shared like a result"
    now[0] = 31.0
    assert cache.get(("e", "vm"), lambda: "ok", 30, 1) == ("ok", True)
    assert cache.get(("e", "vm"), lambda: "again", 0, 1) == ("again", True), "max_age 0 reads afresh"


def test_a_shared_error_is_raised_as_an_exception_of_its_own_in_each_thread() -> None:
    # One ARM error, cached, reaches several checks at once: each must raise its own exception, or their
    # tracebacks (written by every raise) mix, and a handler in one thread sees another thread's frames.
    cache = ReadCache(ttl=30)
    failure = ArmAccessDenied("403: the identity needs Microsoft.Compute/virtualMachines/read")
    failure.__cause__ = RuntimeError("the HTTP answer")

    def denied() -> str:
        raise failure

    with pytest.raises(ArmAccessDenied) as first:
        cache.get(("e", "vm"), denied, 30, 1)
    start = threading.Barrier(4)
    caught: list[BaseException] = []

    def read() -> None:
        start.wait()
        try:
            cache.get(("e", "vm"), lambda: "never fetched", 30, 5)
        except ArmAccessDenied as exc:
            caught.append(exc)

    threads = [threading.Thread(target=read) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(caught) == 4 and first.value is failure
    assert len({id(e) for e in [failure, *caught]}) == 5, "every thread raised an exception of its own"
    for exc in caught:
        assert type(exc) is ArmAccessDenied and str(exc) == str(failure) and exc.__cause__ is failure.__cause__
        frames = [tb.tb_frame.f_code.co_name for tb in _walk(exc.__traceback__)]
        assert frames == ["read", "get"], frames  # this thread's raise only, nothing of the others or the fetch


def _walk(tb: Any) -> list[Any]:
    found = []
    while tb is not None:
        found.append(tb)
        tb = tb.tb_next
    return found


def test_a_check_whose_login_failed_raises_it_anew_in_each_read() -> None:
    reader = preflight.CheckReader(ArmSettings(), Log("test", sink=lambda _: None), max_age=0.0, budget=15.0)
    reader.login_failure = ArmUnreachable("no Azure access token could be obtained")
    raised = []
    for _ in range(2):
        with pytest.raises(ArmUnreachable, match="no Azure access token") as caught:
            reader.vm_facts(VM)
        raised.append(caught.value)
    assert raised[0] is not raised[1] and reader.login_failure not in raised


def test_waiting_for_another_read_is_bounded() -> None:
    cache = ReadCache()
    release = threading.Event()
    worker = threading.Thread(target=lambda: cache.get(("e", "vm"), lambda: release.wait(5), 30, 5))
    worker.start()
    time.sleep(0.05)
    t0 = time.monotonic()
    with pytest.raises(ArmUnreachable, match=r"did not answer within 0\.2s"):
        cache.get(("e", "vm"), lambda: "never", 30, 0.2)
    assert time.monotonic() - t0 < 1.0
    release.set()
    worker.join()
