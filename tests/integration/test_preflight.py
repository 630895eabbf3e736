"""Capture-time checks (hooks/preflight/) through the real dynamic provider host, against the HTTPS fake of ARM.

Every check here is `Check` as the engine calls it in `pulumi preview` and `pulumi up`; the fake records every
request, so each test also proves that a check only ever sends GETs."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import pytest
from pulumi.runtime import rpc

from hooks import preflight
from hooks.providers import GuestGeneralizationProvider, VmGeneralizationProvider
from hooks.targets import VmRef
from tests.fakes.dynamic_host import CheckResponse, DynamicHost, HostError, host_factory, urn, with_provider  # noqa: F401

if TYPE_CHECKING:
    from tests.fakes.arm import FakeArm, FakeGalleryImage

# The fixture fake_arm; loaded as a plugin so pytest rewrites the fake's asserts too.
pytest_plugins = ["tests.fakes.arm"]

GUEST_URN = urn("GuestGeneralization", "img-1.0.0-guest")
VM_URN = urn("VmGeneralization", "img-1.0.0-vm")
PUBLISHER_TENANT = "11111111-2222-3333-4444-555555555555"
OTHER_TENANT = "99999999-8888-7777-6666-555555555555"


# --- props as the components build them ----------------------------------------------------------------------


def capture(
    fake: FakeArm, image: FakeGalleryImage | None = None, version: str = "1.0.0", **overrides: Any
) -> dict[str, Any]:
    """The "capture" input (components.captured_image_version.capture_props) for `image` (defaults: the fake's
    own defaults: Linux, Generalized, V2, TrustedLaunch, x64)."""
    image = image or fake.add_gallery_image()
    definition = {
        "name": image.name,
        "os_type": image.os_type,
        "os_state": image.os_state,
        "hyper_v_generation": image.hyper_v_generation or "V1",
        "architecture": image.architecture or "x64",
        "security_type": image.security_type or "Standard",
    }
    definition.update(overrides.pop("definition", {}))
    props: dict[str, Any] = {
        "definition": definition,
        "version": version,
        "target_regions": ["westeurope", "northeurope"],
        "gallery_id": (
            f"/subscriptions/{image.subscription_id}/resourceGroups/{image.resource_group}"
            f"/providers/Microsoft.Compute/galleries/{image.gallery}"
        ),
        "gallery_resource_group": image.resource_group,
        "gallery_name": image.gallery,
        "publisher_tenant_id": None,
        "on_arm_unreachable": "fail",
        "paths": {"definition": "images[0]", "version": "images[0].versions[0]", "source_vm": "sourceVms.web"},
    }
    props.update(overrides)
    return props


def arm_props(fake: FakeArm, endpoint: str | None = None) -> dict[str, Any]:
    return {"endpoint": endpoint or fake.endpoint, "audience": None, "poll_interval": 0.05, "operation_timeout": 10.0}


def guest_props(
    fake: FakeArm, vm_id: str, cap: dict[str, Any] | None, ssh_port: int = 9, **overrides: Any
) -> dict[str, Any]:
    p: dict[str, Any] = {
        "resource_name": "img-1.0.0-guest",
        "vm_id": vm_id,
        "os_type": "Linux",
        "arm": arm_props(fake),
        "ssh": {
            "host": "127.0.0.1",
            "port": ssh_port,
            "username": "azureuser",
            "host_key": None,
            "insecure_ignore_host_key": True,
            "connect_timeout": 2.0,
            "command_timeout": 5.0,
        },
        "winrm": None,
        "capture": cap,
        "credentials": {"password": "not-used-by-these-tests"},
        "action": None,
        "method": None,
        "detail": None,
        "started_at": None,
        "finished_at": None,
    }
    p.update(overrides)
    return with_provider(GuestGeneralizationProvider(), p)


def vm_props(fake: FakeArm, vm_id: str, cap: dict[str, Any] | None, name: str = "img-1.0.0-vm") -> dict[str, Any]:
    specialized = cap is not None
    return with_provider(
        VmGeneralizationProvider(),
        {
            "resource_name": name,
            "vm_id": vm_id,
            "arm": arm_props(fake),
            "generalize": not specialized,
            "deallocate": True,
            "after_guest": None,
            "capture": cap,
            "actions": None,
            "power_state": None,
            "generalized": None,
            "finished_at": None,
        },
    )


def vm_ref(fake: FakeArm, name: str) -> str:
    """The ID of a VM the fake does not have."""
    return VmRef(fake.subscription_id, "rg-src", name).id


def specialized(fake: FakeArm, **image: Any) -> FakeGalleryImage:
    return fake.add_gallery_image(name="img-spec", os_state="Specialized", **image)


# --- fixtures and helpers ------------------------------------------------------------------------------------


@pytest.fixture
def host(fake_arm: FakeArm, host_factory: Any) -> DynamicHost:  # noqa: F811
    h: DynamicHost = host_factory(fake_arm.env)
    h.configure({"image-gallery:gallery": "{}"})
    return h


def check(fake: FakeArm, host: DynamicHost, props: dict[str, Any], olds: dict[str, Any] | None = None) -> CheckResponse:
    """`Check` through the host, proving it sent nothing but GETs."""
    before = len(fake.non_get_requests())
    result = host.check(GUEST_URN if "os_type" in props else VM_URN, olds or {}, props)
    assert fake.non_get_requests()[before:] == [], "a check must never write"
    return result


def only_failure(result: CheckResponse) -> tuple[str, str]:
    assert len(result.failures) == 1, result.failures
    return result.failures[0]


@pytest.fixture
def guest_port() -> Iterator[tuple[int, list[socket.socket]]]:
    """A listening socket standing in for the guest's SSH port; the list collects every connection made to it."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(0.05)
    connections: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                connections.append(server.accept()[0])
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1], connections
    stop.set()
    thread.join(timeout=5)
    for conn in connections:
        conn.close()
    server.close()


# --- everything matches --------------------------------------------------------------------------------------


def test_matching_vm_passes_with_five_gets_and_one_login(fake_arm: FakeArm, host: DynamicHost) -> None:
    vm = fake_arm.add_vm()
    fake_arm.add_subscription(fake_arm.subscription_id, PUBLISHER_TENANT)
    cap = capture(fake_arm, publisher_tenant_id=PUBLISHER_TENANT)
    t0 = time.monotonic()
    result = check(fake_arm, host, guest_props(fake_arm, vm.id, cap))
    elapsed = time.monotonic() - t0
    assert result.failures == []
    # The VM (with its instance view), its OS disk, the version (404: not there yet), the gallery's subscription
    # and its locations; read concurrently, so their order varies.
    seen = {(r.method, r.path.rsplit("/", 2)[-2], r.status) for r in fake_arm.requests}
    assert seen == {
        ("GET", "virtualMachines", 200),
        ("GET", "disks", 200),
        ("GET", "versions", 404),
        ("GET", "subscriptions", 200),
        ("GET", fake_arm.subscription_id, 200),  # .../locations
    }
    assert len(fake_arm.requests) == 5
    assert fake_arm.logins() == 1, "one login for the whole check"
    assert elapsed < 5.0, f"one check took {elapsed:.2f}s"
    print(f"\none capture-time check against the fake ARM: {elapsed:.3f}s, {len(fake_arm.requests)} GETs")
    stderr = host.close()
    assert "capture-time checks of images[0].versions[0]" in stderr and "no mismatch" in stderr


def test_compatible_variants_pass(fake_arm: FakeArm, host: DynamicHost) -> None:
    # Standard VM into a Standard definition; Arm64 into Arm64; Windows into Windows; a V1 VM into V1;
    # a generalized, deallocated VM (the guest step will be skipped); the region compared without case/spaces.
    cases = [
        (dict(security_type=None), dict(security_type="Standard")),
        (dict(architecture="Arm64"), dict(architecture="Arm64")),
        (dict(os_type="Windows"), dict(os_type="Windows")),
        (dict(hyper_v_generation="V1", security_type=None), dict(hyper_v_generation="V1", security_type="Standard")),
        (dict(power_state="deallocated", generalized=True), {}),
        (dict(power_state="starting"), {}),
        (dict(location="northeurope"), {}),
    ]
    for i, (vm_fields, definition) in enumerate(cases):
        vm = fake_arm.add_vm(name=f"vm-{i}", **vm_fields)
        props = guest_props(fake_arm, vm.id, capture(fake_arm, definition=definition))
        if definition.get("os_type") == "Windows":
            props.update(os_type="Windows", ssh=None, winrm={"host": "127.0.0.1"})
        assert check(fake_arm, host, props).failures == [], (vm_fields, definition)


# --- one scenario per mismatch -------------------------------------------------------------------------------


def test_missing_vm(fake_arm: FakeArm, host: DynamicHost) -> None:
    ghost = vm_ref(fake_arm, "ghost")
    prop, reason = only_failure(check(fake_arm, host, guest_props(fake_arm, ghost, capture(fake_arm))))
    assert prop == "vm_id"
    assert reason.startswith("sourceVms.web.id: ")
    assert "ghost" in reason and "was not found" in reason and "Reader" in reason


def test_os_type(fake_arm: FakeArm, host: DynamicHost) -> None:
    vm = fake_arm.add_vm(os_type="Windows")
    prop, reason = only_failure(check(fake_arm, host, guest_props(fake_arm, vm.id, capture(fake_arm))))
    assert prop == "capture"
    assert reason.startswith("images[0].osType: ")
    assert "runs Windows" in reason and "osType Linux" in reason and "images[0].versions[0].sourceVm" in reason


def test_hyper_v_generation(fake_arm: FakeArm, host: DynamicHost) -> None:
    vm = fake_arm.add_vm(hyper_v_generation="V1", security_type=None)
    cap = capture(fake_arm, definition={"security_type": "Standard"})
    prop, reason = only_failure(check(fake_arm, host, guest_props(fake_arm, vm.id, cap)))
    assert (prop, reason.split(":")[0]) == ("capture", "images[0].hyperVGeneration")
    assert "Hyper-V generation V1" in reason and "hyperVGeneration V2" in reason
    assert "Fix: set images[0].hyperVGeneration to V1" in reason


@pytest.mark.parametrize(
    ("vm_security", "definition_security", "expected"),
    [
        ("TrustedLaunch", "TrustedLaunchSupported", "never a VM"),
        (None, "ConfidentialVmSupported", "never a VM"),
        ("TrustedLaunch", "TrustedLaunchAndConfidentialVmSupported", "never a VM"),
        ("TrustedLaunch", "Standard", "a Trusted Launch VM can only be captured into a TrustedLaunch definition"),
        (None, "TrustedLaunch", "refuses a standard (non-Trusted-Launch) VM"),
        ("ConfidentialVM", "TrustedLaunch", "a confidential VM can only be captured into a ConfidentialVM definition"),
    ],
)
def test_security_type(
    fake_arm: FakeArm, host: DynamicHost, vm_security: str | None, definition_security: str, expected: str
) -> None:
    vm = fake_arm.add_vm(security_type=vm_security)
    cap = capture(fake_arm, definition={"security_type": definition_security})
    _, reason = only_failure(check(fake_arm, host, guest_props(fake_arm, vm.id, cap)))
    assert reason.startswith("images[0].securityType: ")
    assert expected in reason
    assert f"security type {vm_security or 'Standard'}" in reason and f"securityType {definition_security}" in reason
    assert f"Fix: set images[0].securityType to {vm_security or 'Standard'}" in reason


def test_architecture(fake_arm: FakeArm, host: DynamicHost) -> None:
    vm = fake_arm.add_vm(architecture="Arm64")
    _, reason = only_failure(check(fake_arm, host, guest_props(fake_arm, vm.id, capture(fake_arm))))
    assert reason.startswith("images[0].architecture: ")
    assert "is Arm64" in reason and "architecture x64" in reason


def test_region_not_among_target_regions(fake_arm: FakeArm, host: DynamicHost) -> None:
    vm = fake_arm.add_vm(location="swedencentral")
    _, reason = only_failure(check(fake_arm, host, guest_props(fake_arm, vm.id, capture(fake_arm))))
    assert reason.startswith("images[0].versions[0].targetRegions: ")
    assert "swedencentral" in reason and "westeurope, northeurope" in reason
    assert "`- name: swedencentral`" in reason


@pytest.mark.parametrize("power_state", ["deallocated", "stopped"])
def test_stopped_vm_that_is_not_generalized(fake_arm: FakeArm, host: DynamicHost, power_state: str) -> None:
    vm = fake_arm.add_vm(power_state=power_state)
    prop, reason = only_failure(check(fake_arm, host, guest_props(fake_arm, vm.id, capture(fake_arm))))
    assert (prop, reason.split(":")[0]) == ("vm_id", "sourceVms.web")
    assert f"{power_state} and not generalized" in reason and "needs it running" in reason
    assert "az vm start" in reason and "do NOT start it" in reason and "az vm generalize" in reason


def test_version_exists_with_another_source(fake_arm: FakeArm, host: DynamicHost) -> None:
    vm = fake_arm.add_vm()
    other = fake_arm.add_vm(name="old-build-vm")
    image = fake_arm.add_gallery_image()
    fake_arm.add_image_version(image, "1.0.0", source_vm_id=other.id)
    _, reason = only_failure(check(fake_arm, host, guest_props(fake_arm, vm.id, capture(fake_arm, image))))
    assert reason.startswith("images[0].versions[0].version: ")
    assert "already exists" in reason and "old-build-vm" in reason and "PropertyChangeNotAllowed" in reason


def test_version_exists_with_the_same_source(fake_arm: FakeArm, host: DynamicHost) -> None:
    vm = fake_arm.add_vm()
    image = fake_arm.add_gallery_image()
    # The older API shape (source.id), and ARM's own casing of the ID: still the same VM.
    fake_arm.add_image_version(
        image, "1.0.0", source_vm_id=vm.id.replace("resourceGroups", "resourcegroups"), legacy_source_id=True
    )
    assert check(fake_arm, host, guest_props(fake_arm, vm.id, capture(fake_arm, image))).failures == []


def test_gallery_subscription_in_another_tenant(fake_arm: FakeArm, host: DynamicHost) -> None:
    vm = fake_arm.add_vm()
    fake_arm.add_subscription(fake_arm.subscription_id, OTHER_TENANT)
    cap = capture(fake_arm, publisher_tenant_id=PUBLISHER_TENANT)
    _, reason = only_failure(check(fake_arm, host, guest_props(fake_arm, vm.id, cap)))
    assert reason.startswith("publisherTenantId: ")
    assert OTHER_TENANT in reason and PUBLISHER_TENANT in reason and "Partner Center" in reason


def test_every_mismatch_is_reported_at_once(fake_arm: FakeArm, host: DynamicHost) -> None:
    vm = fake_arm.add_vm(hyper_v_generation="V1", security_type=None, location="eastus", power_state="deallocated")
    image = fake_arm.add_gallery_image()
    fake_arm.add_image_version(image, "1.0.0", source_vm_id=None)
    result = check(fake_arm, host, guest_props(fake_arm, vm.id, capture(fake_arm, image)))
    assert [reason.split(":")[0] for _, reason in result.failures] == [
        "images[0].hyperVGeneration",
        "images[0].securityType",
        "images[0].versions[0].targetRegions",
        "sourceVms.web",
        "images[0].versions[0].version",
    ]


# --- unknown inputs and existing resources -------------------------------------------------------------------


def test_unknown_vm_id_calls_nothing(fake_arm: FakeArm, host: DynamicHost) -> None:
    cap = capture(fake_arm, gallery_id=rpc.UNKNOWN)
    assert check(fake_arm, host, guest_props(fake_arm, rpc.UNKNOWN, cap)).failures == []
    assert fake_arm.requests == [] and fake_arm.az_calls() == []


def test_unknown_gallery_id_checks_the_vm_only(fake_arm: FakeArm, host: DynamicHost) -> None:
    vm = fake_arm.add_vm(hyper_v_generation="V1", security_type=None)
    cap = capture(fake_arm, gallery_id=rpc.UNKNOWN, publisher_tenant_id=PUBLISHER_TENANT)
    cap["definition"]["security_type"] = "Standard"
    _, reason = only_failure(check(fake_arm, host, guest_props(fake_arm, vm.id, cap)))
    assert reason.startswith("images[0].hyperVGeneration")
    assert fake_arm.count("GET", "/versions/") == 0 and fake_arm.count("GET", r"^/subscriptions/[^/]+$") == 0
    assert "not known yet" in host.close()


def test_existing_resource_for_the_same_vm_is_not_rechecked(fake_arm: FakeArm, host: DynamicHost) -> None:
    # After the capture the source VM is usually deleted: later previews must not fail on it.
    ghost = vm_ref(fake_arm, "gone")
    news = guest_props(fake_arm, ghost, capture(fake_arm))
    assert check(fake_arm, host, news, olds=dict(news)).failures == []
    assert fake_arm.requests == []
    # A different VM replaces the resource: then it is checked.
    moved = guest_props(fake_arm, ghost.replace("/gone", "/other"), capture(fake_arm))
    assert check(fake_arm, host, moved, olds=dict(news)).failures[0][0] == "vm_id"


def test_the_update_does_not_read_azure_in_check(fake_arm: FakeArm, host: DynamicHost) -> None:
    # In the update (not a preview) the program sets read_in_check False: the engine calls Check one resource at a
    # time while it plans, and the Create runs the same checks right before it changes anything.
    vm = fake_arm.add_vm(hyper_v_generation="V1")  # a mismatch a preview reports
    news = guest_props(fake_arm, vm.id, capture(fake_arm))
    assert check(fake_arm, host, {**news, "read_in_check": False}).failures == []
    assert fake_arm.requests == []
    assert [p for p, _ in check(fake_arm, host, {**news, "read_in_check": True}).failures] == ["capture"]


# --- ARM unreachable, logged out, denied ---------------------------------------------------------------------


def test_unreachable_arm_is_not_a_mismatch(fake_arm: FakeArm, host: DynamicHost) -> None:
    vm = fake_arm.add_vm()
    props = guest_props(fake_arm, vm.id, capture(fake_arm), arm=arm_props(fake_arm, "https://127.0.0.1:9"))
    t0 = time.monotonic()
    result = host.check(GUEST_URN, {}, props)
    elapsed = time.monotonic() - t0
    assert [p for p, _ in result.failures] == ["vm_id", "capture"]
    for _, reason in result.failures:
        assert "not checked" in reason and "onArmUnreachable to warn" in reason
        assert "Azure reports" not in reason
    vm_reason, version_reason = (reason for _, reason in result.failures)
    assert "could not reach ARM at https://127.0.0.1:9" in vm_reason and "network problem, not a login one" in vm_reason
    # The version is read concurrently with the VM: it reports the same cause (or, if it started later, skips).
    assert "could not reach ARM" in version_reason or "skipped, because an earlier read" in version_reason
    assert elapsed < 10.0, f"unreachable ARM took {elapsed:.2f}s to report"


def test_logged_out_is_a_login_problem(fake_arm: FakeArm, host: DynamicHost) -> None:
    vm = fake_arm.add_vm()
    fake_arm.az_logged_out = True
    result = check(fake_arm, host, guest_props(fake_arm, vm.id, capture(fake_arm)))
    (prop, reason), (_, skipped) = result.failures
    assert prop == "vm_id" and reason.startswith("sourceVms.web.id: not checked")
    assert "login problem, not a network one" in reason and "az login" in reason
    assert "could not reach" not in reason
    # One login, tried before the concurrent reads: its failure is every read's reason, and none is sent.
    assert "login problem" in skipped
    assert fake_arm.requests == []
    assert len(fake_arm.az_calls()) == 1, "after the failed login nothing else is tried"


def test_one_checks_skipped_reads_are_not_served_to_the_next(fake_arm: FakeArm, host: DynamicHost) -> None:
    # Check A cannot log in, so it skips its tenant read; check B, after `az login`, must really read the tenant.
    fake_arm.add_subscription(fake_arm.subscription_id, OTHER_TENANT)
    a, b = fake_arm.add_vm(name="vm-a"), fake_arm.add_vm(name="vm-b")
    cap = capture(fake_arm, publisher_tenant_id=PUBLISHER_TENANT)
    fake_arm.az_logged_out = True
    assert all(
        "not checked" in reason for _, reason in check(fake_arm, host, guest_props(fake_arm, a.id, cap)).failures
    )
    fake_arm.az_logged_out = False
    _, reason = only_failure(check(fake_arm, host, guest_props(fake_arm, b.id, cap)))
    assert reason.startswith("publisherTenantId: the gallery gal is in subscription")


def test_forbidden_names_the_missing_permission(fake_arm: FakeArm, host: DynamicHost) -> None:
    vm = fake_arm.add_vm()
    fake_arm.add_subscription(fake_arm.subscription_id, PUBLISHER_TENANT)
    fake_arm.deny(403, path=r"/virtualMachines/")
    fake_arm.deny(403, path=r"^/subscriptions/[^/]+$")
    cap = capture(fake_arm, publisher_tenant_id=PUBLISHER_TENANT)
    result = check(fake_arm, host, guest_props(fake_arm, vm.id, cap))
    reasons = dict(result.failures)
    assert set(reasons) == {"vm_id", "capture"}
    assert reasons["vm_id"].startswith("sourceVms.web.id: not checked")
    assert "Azure denied the request" in reasons["vm_id"] and "403 AuthorizationFailed" in reasons["vm_id"]
    assert "needs the permission Microsoft.Compute/virtualMachines/read" in reasons["vm_id"]
    assert reasons["capture"].startswith("publisherTenantId: not checked")
    assert "needs the permission Microsoft.Resources/subscriptions/read" in reasons["capture"]
    assert "could not reach" not in reasons["vm_id"] and "login problem" not in reasons["vm_id"]


def test_hanging_arm_is_bounded(fake_arm: FakeArm, host: DynamicHost) -> None:
    vm = fake_arm.add_vm()
    fake_arm.hang(method="GET", seconds=60)
    t0 = time.monotonic()
    result = check(fake_arm, host, guest_props(fake_arm, vm.id, capture(fake_arm)))
    elapsed = time.monotonic() - t0
    assert [p for p, _ in result.failures] == ["vm_id", "capture"]
    (_, vm_reason), (_, version_reason) = result.failures
    assert "did not answer in time" in vm_reason and "per-request bound 4s" in vm_reason
    # Read concurrently with the VM, the version hangs too: the check costs the slowest read, not the sum.
    assert "did not answer in time" in version_reason
    assert elapsed < preflight.CALL_TIMEOUT + 3, f"a hanging ARM held the check for {elapsed:.1f}s"


def test_one_throttled_request_is_absorbed(fake_arm: FakeArm, host: DynamicHost) -> None:
    vm = fake_arm.add_vm()
    fake_arm.throttle(times=1, method="GET", path=r"/virtualMachines/", retry_after=1)
    assert check(fake_arm, host, guest_props(fake_arm, vm.id, capture(fake_arm))).failures == []
    assert fake_arm.count("GET", r"/virtualMachines/src-vm$") == 2


def test_warn_mode_passes_with_a_warning(fake_arm: FakeArm, host: DynamicHost) -> None:
    vm = fake_arm.add_vm()
    cap = capture(fake_arm, on_arm_unreachable="warn")
    props = guest_props(fake_arm, vm.id, cap, arm=arm_props(fake_arm, "https://127.0.0.1:9"))
    assert host.check(GUEST_URN, {}, props).failures == []
    stderr = host.close()
    assert "[img-1.0.0-guest] WARNING: sourceVms.web.id: not checked" in stderr
    assert "onArmUnreachable is warn: continuing without this check" in stderr


def test_warn_mode_still_fails_real_mismatches(fake_arm: FakeArm, host: DynamicHost) -> None:
    vm = fake_arm.add_vm(architecture="Arm64")
    fake_arm.deny(403, path=r"/versions/")
    result = check(fake_arm, host, guest_props(fake_arm, vm.id, capture(fake_arm, on_arm_unreachable="warn")))
    assert [reason.split(":")[0] for _, reason in result.failures] == ["images[0].architecture"]
    assert "versions/read" in host.close()


# --- shared work under the host's 4 workers ------------------------------------------------------------------


def test_versions_of_the_same_vm_share_its_read(fake_arm: FakeArm, host: DynamicHost) -> None:
    vm = fake_arm.add_vm(power_state="deallocated")
    image = specialized(fake_arm)
    versions = [f"1.0.{i}" for i in range(8)]
    props = [vm_props(fake_arm, vm.id, capture(fake_arm, image, v), name=f"img-{v}-vm") for v in versions]
    t0 = time.monotonic()
    with ThreadPoolExecutor(len(props)) as pool:
        results = list(pool.map(lambda p: host.check(VM_URN, {}, p), props))
    elapsed = time.monotonic() - t0
    assert all(r.failures == [] for r in results), [r.failures for r in results]
    assert fake_arm.count("GET", r"/virtualMachines/src-vm$") == 1, "the VM is read once for all versions"
    assert fake_arm.count("GET", "/disks/") == 1
    assert fake_arm.count("GET", "/versions/") == len(versions), "each version is read by its own check"
    assert fake_arm.non_get_requests() == []
    print(f"\n{len(versions)} concurrent checks of one VM: {elapsed:.3f}s, {len(fake_arm.requests)} GETs")
    assert host.close().count("VM and OS disk: shared") == len(versions) - 1


# --- Specialized definitions: the ARM half checks --------------------------------------------------------------


def test_specialized_refuses_a_generalized_vm(fake_arm: FakeArm, host: DynamicHost) -> None:
    vm = fake_arm.add_vm(power_state="deallocated", generalized=True)
    cap = capture(fake_arm, specialized(fake_arm))
    _, reason = only_failure(check(fake_arm, host, vm_props(fake_arm, vm.id, cap)))
    assert reason.startswith("images[0].osState: ")
    assert "generalized" in reason and "osState Specialized" in reason and "different OS state" in reason


@pytest.mark.parametrize("power_state", ["running", "stopped", "deallocated"])
def test_specialized_takes_any_power_state(fake_arm: FakeArm, host: DynamicHost, power_state: str) -> None:
    vm = fake_arm.add_vm(power_state=power_state)
    assert check(fake_arm, host, vm_props(fake_arm, vm.id, capture(fake_arm, specialized(fake_arm)))).failures == []


def test_specialized_create_refuses_before_deallocating(fake_arm: FakeArm, host: DynamicHost) -> None:
    vm = fake_arm.add_vm(power_state="running", generalized=True, hyper_v_generation="V1", security_type=None)
    cap = capture(fake_arm, specialized(fake_arm))
    with pytest.raises(HostError) as err:
        host.create(VM_URN, vm_props(fake_arm, vm.id, cap))
    assert "cannot be captured into image definition img-spec" in err.value.details
    assert "images[0].osState" in err.value.details and "images[0].hyperVGeneration" in err.value.details
    assert "nothing was changed" in err.value.details
    assert fake_arm.non_get_requests() == [] and vm.power_state == "running"


def test_specialized_create_checks_then_deallocates(fake_arm: FakeArm, host: DynamicHost) -> None:
    vm = fake_arm.add_vm(power_state="running")
    _, outs = host.create(VM_URN, vm_props(fake_arm, vm.id, capture(fake_arm, specialized(fake_arm))))
    assert outs["actions"] == ["deallocated"] and not vm.generalized
    first_write = next(i for i, r in enumerate(fake_arm.requests) if r.method != "GET")
    assert fake_arm.count("GET", "/disks/") == 1
    assert any("/disks/" in r.path for r in fake_arm.requests[:first_write]), "checked before deallocating"


# --- the guest step's create ---------------------------------------------------------------------------------


def test_guest_create_refuses_a_mismatch_before_contacting_the_guest(
    fake_arm: FakeArm, host: DynamicHost, guest_port: tuple[int, list[socket.socket]]
) -> None:
    port, connections = guest_port
    vm = fake_arm.add_vm(hyper_v_generation="V1", security_type=None, location="eastus")
    cap = capture(fake_arm, definition={"security_type": "Standard"})
    with pytest.raises(HostError) as err:
        host.create(GUEST_URN, guest_props(fake_arm, vm.id, cap, ssh_port=port))
    details = err.value.details
    assert "[img-1.0.0-guest]" in details and "nothing was changed" in details
    assert "images[0].hyperVGeneration" in details and "images[0].versions[0].targetRegions" in details
    time.sleep(0.2)  # a connection attempt in flight would have been accepted by now
    assert connections == [], "the guest was contacted despite the mismatch"
    assert fake_arm.non_get_requests() == []
    # Fresh reads in create: the VM was read by the instance view step and the checks, not from a cache.
    assert fake_arm.count("GET", r"/virtualMachines/src-vm$") == 1


def test_guest_create_reads_afresh_after_a_preview(
    fake_arm: FakeArm, host: DynamicHost, guest_port: tuple[int, list[socket.socket]]
) -> None:
    # Preview passes; the VM changes before `up` (here: moved to another generation); create must see it.
    port, connections = guest_port
    vm = fake_arm.add_vm()
    props = guest_props(fake_arm, vm.id, capture(fake_arm), ssh_port=port)
    assert check(fake_arm, host, props).failures == []
    vm.architecture = "Arm64"
    with pytest.raises(HostError) as err:
        host.create(GUEST_URN, props)
    assert "images[0].architecture" in err.value.details
    assert connections == []


def test_a_misspelt_target_region_fails_preview_naming_the_key_and_the_closest(
    fake_arm: FakeArm, host: DynamicHost
) -> None:
    vm = fake_arm.add_vm()
    result = check(
        fake_arm, host, guest_props(fake_arm, vm.id, capture(fake_arm, target_regions=["westeurope", "northeurop"]))
    )
    key, message = only_failure(result)
    assert key == "capture"
    assert "images[0].versions[0].targetRegions[1].name" in message
    assert "'northeurop'" in message and "did you mean northeurope" in message
    assert "allowUnknownRegions" in message


def test_a_region_the_subscription_does_not_list_fails_even_if_azure_has_it_elsewhere(
    fake_arm: FakeArm, host: DynamicHost
) -> None:
    fake_arm.locations = [("westeurope", "West Europe")]  # e.g. a subscription without access to northeurope
    vm = fake_arm.add_vm()
    result = check(fake_arm, host, guest_props(fake_arm, vm.id, capture(fake_arm)))
    _, message = only_failure(result)
    assert "images[0].versions[0].targetRegions[1].name" in message and "'northeurope'" in message


def test_locations_that_cannot_be_read_are_reported_even_when_the_vm_could_be(
    fake_arm: FakeArm, host: DynamicHost
) -> None:
    # Only the locations read is refused: the regions were not checked, and that is said, not dropped.
    fake_arm.deny(403, method="GET", path=r"/locations$")
    vm = fake_arm.add_vm()
    result = check(fake_arm, host, guest_props(fake_arm, vm.id, capture(fake_arm)))
    _, message = only_failure(result)
    assert "targetRegions" in message and "403" in message


def test_display_names_and_allow_unknown_regions_pass(fake_arm: FakeArm, host: DynamicHost) -> None:
    vm = fake_arm.add_vm()
    shown = capture(fake_arm, target_regions=["West Europe", "North Europe"])
    assert check(fake_arm, host, guest_props(fake_arm, vm.id, shown)).failures == []
    fake_arm.requests.clear()
    unknown = capture(fake_arm, target_regions=["westeurope", "mars-north"], allow_unknown_regions=True)
    assert check(fake_arm, host, guest_props(fake_arm, vm.id, unknown)).failures == []
    assert not any(r.path.endswith("/locations") for r in fake_arm.requests), "no locations read when overridden"
