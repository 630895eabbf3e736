"""hooks.arm against the local HTTPS fake of ARM, through the real azure-mgmt-compute client, the real azure-core
pipeline (retries, LRO polling, TLS) and the real DefaultAzureCredential logging in through a fake `az`."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
from azure.core.exceptions import HttpResponseError

from hooks import arm
from hooks.errors import ArmAccessDenied, ArmError, ArmUnreachable, ImageGalleryError, VmNotFound, WaitTimeout
from hooks.log import Log
from hooks.targets import ImageVersionRef, VmRef

if TYPE_CHECKING:
    from tests.fakes.arm import FakeArm

# The fixtures fake_arm / fake_arm_env; loaded as a plugin so pytest rewrites the fake's asserts too.
pytest_plugins = ["tests.fakes.arm"]

VM_PATH = r"/virtualMachines/src-vm"
OPERATION_PATH = r"/operations/[0-9a-f-]+$"


@pytest.fixture
def log() -> Log:
    return Log("test", sink=lambda line: None)


def expect_error(fake: FakeArm, error: type[ImageGalleryError], call: Callable[..., Any], *args: Any) -> str:
    """Run `call`, expect `error`, and check its message never carries the token (or any part of it)."""
    with pytest.raises(error) as caught:
        call(*args)
    message = str(caught.value)
    for part in [fake.token, *fake.token.split(".")]:
        assert part not in message, f"token leaked into: {message}"
    assert "Bearer ey" not in message
    return message


# --- reading state -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("reversed_statuses", [False, True])
def test_status_codes_are_parsed_whatever_their_order(fake_arm_env: FakeArm, log: Log, reversed_statuses: bool) -> None:
    vm = fake_arm_env.add_vm(power_state="deallocated", generalized=True, statuses_reversed=reversed_statuses)
    status = arm.get_status(fake_arm_env.settings(), vm.ref, log)
    assert status.power_state == "deallocated"
    assert status.generalized is True
    assert status.provisioning_state == "succeeded"
    assert set(status.codes) == {"ProvisioningState/succeeded", "OSState/generalized", "PowerState/deallocated"}

    vm.power_state, vm.generalized = "running", False
    status = arm.get_status(fake_arm_env.settings(), vm.ref, log)
    assert (status.power_state, status.generalized) == ("running", False)


def test_token_is_requested_for_the_configured_audience(fake_arm_env: FakeArm, log: Log) -> None:
    vm = fake_arm_env.add_vm()
    arm.get_status(fake_arm_env.settings(), vm.ref, log)
    calls = fake_arm_env.az_calls()
    assert calls, "DefaultAzureCredential did not call az"
    assert calls[0][:2] == ["account", "get-access-token"]
    assert calls[0][calls[0].index("--resource") + 1] == fake_arm_env.endpoint
    assert all(r.authorized for r in fake_arm_env.requests)


def test_facts_come_from_the_vm_model_and_its_os_disk(fake_arm_env: FakeArm, log: Log) -> None:
    vm = fake_arm_env.add_vm(
        location="northeurope", os_type="Windows", hyper_v_generation="V2", security_type="TrustedLaunch"
    )
    facts = arm.get_facts(fake_arm_env.settings(), vm.ref, log)
    assert facts == arm.VmFacts(
        location="northeurope",
        os_type="Windows",
        hyper_v_generation="V2",
        security_type="TrustedLaunch",
        architecture="x64",
        vm_id=vm.vm_id,
    )
    assert fake_arm_env.count("GET", VM_PATH + "$") == 1
    assert next(r for r in fake_arm_env.requests if r.path.endswith("/src-vm")).query.get("$expand") == "instanceView"
    assert fake_arm_env.count("GET", "/disks/") == 1
    assert fake_arm_env.non_get_requests() == []


def test_facts_fall_back_to_the_os_disk_and_azure_defaults(fake_arm_env: FakeArm, log: Log) -> None:
    arm64 = fake_arm_env.add_vm(
        name="arm-vm", architecture="Arm64", security_type="ConfidentialVM", hyper_v_in_instance_view=False
    )
    facts = arm.get_facts(fake_arm_env.settings(), arm64.ref, log)
    assert (facts.architecture, facts.security_type, facts.hyper_v_generation) == ("Arm64", "ConfidentialVM", "V2")

    old = fake_arm_env.add_vm(name="old-vm", hyper_v_generation=None, security_type=None, architecture=None)
    facts = arm.get_facts(fake_arm_env.settings(), old.ref, log)
    assert (facts.architecture, facts.security_type, facts.hyper_v_generation) == ("x64", "Standard", "V1")
    assert any("assuming x64" in line for line in log.lines)

    unmanaged = fake_arm_env.add_vm(name="vhd-vm", managed_os_disk=False, hyper_v_in_instance_view=False)
    facts = arm.get_facts(fake_arm_env.settings(), unmanaged.ref, log)
    assert (facts.architecture, facts.hyper_v_generation) == ("x64", "V1")
    assert fake_arm_env.count("GET", "/disks/vhd-vm") == 0


# --- deallocate ----------------------------------------------------------------------------------------------


def test_deallocate_polls_the_async_operation_until_succeeded(fake_arm_env: FakeArm, log: Log) -> None:
    fake_arm_env.lro_polls = 3
    vm = fake_arm_env.add_vm()
    status = arm.deallocate(fake_arm_env.settings(), vm.ref, log)
    assert status.power_state == "deallocated"
    assert vm.power_state == "deallocated"
    assert fake_arm_env.count("POST", r"/deallocate$") == 1
    polls = [r for r in fake_arm_env.requests if r.path.endswith(tuple(fake_arm_env.operations))]
    async_polls = [r for r in polls if "monitor" not in r.query]
    assert len(async_polls) == 4  # 3 x InProgress, then Succeeded
    assert all(r.query.get("p") and r.query.get("api-version") for r in async_polls)
    assert [r.query.get("monitor") for r in polls if "monitor" in r.query] == ["true"]  # final GET of Location
    assert next(iter(fake_arm_env.operations.values())).status == "Succeeded"


def test_deallocate_of_a_deallocated_vm_writes_nothing(fake_arm_env: FakeArm, log: Log) -> None:
    vm = fake_arm_env.add_vm(power_state="deallocated")
    assert arm.deallocate(fake_arm_env.settings(), vm.ref, log).power_state == "deallocated"
    assert fake_arm_env.non_get_requests() == []


def test_deallocate_lets_an_earlier_deallocation_finish_instead_of_racing_it(fake_arm_env: FakeArm, log: Log) -> None:
    vm = fake_arm_env.add_vm(power_state="deallocating", settles_to="deallocated", settle_after_reads=2)
    assert arm.deallocate(fake_arm_env.settings(), vm.ref, log).power_state == "deallocated"
    assert fake_arm_env.non_get_requests() == []


def test_deallocate_that_azure_fails_reports_azure_error(fake_arm_env: FakeArm, log: Log) -> None:
    vm = fake_arm_env.add_vm()
    fake_arm_env.fail_next_lro("VMAgentStatusCommunicationError", "The VM did not shut down within the time limit.")
    message = expect_error(fake_arm_env, ArmError, arm.deallocate, fake_arm_env.settings(), vm.ref, log)
    assert "VMAgentStatusCommunicationError" in message
    assert "did not shut down within the time limit" in message
    assert "src-vm" in message
    assert "Failed" in message
    assert vm.power_state == "running"


def test_hanging_deallocate_hits_the_operation_bound(fake_arm_env: FakeArm, log: Log) -> None:
    vm = fake_arm_env.add_vm()
    fake_arm_env.hang_next_lro()
    started = time.monotonic()
    message = expect_error(
        fake_arm_env, WaitTimeout, arm.deallocate, fake_arm_env.settings(operation_timeout=0.5), vm.ref, log
    )
    assert time.monotonic() - started < 3
    assert "gave up after 0.5s" in message
    assert "deallocate" in message and "src-vm" in message
    assert "InProgress" in message
    # The abandoned poller must stop with its (closed) client rather than poll forever in the background.
    polls = fake_arm_env.count("GET", OPERATION_PATH)
    time.sleep(0.3)
    assert fake_arm_env.count("GET", OPERATION_PATH) <= polls + 1


def test_hanging_request_is_bounded_by_the_request_timeout(fake_arm_env: FakeArm, log: Log) -> None:
    vm = fake_arm_env.add_vm()
    fake_arm_env.hang(method="POST", path=r"/deallocate$")
    started = time.monotonic()
    message = expect_error(
        fake_arm_env, ArmUnreachable, arm.deallocate, fake_arm_env.settings(request_timeout=0.3), vm.ref, log
    )
    assert time.monotonic() - started < 3
    assert "did not answer in time" in message and "src-vm" in message


# --- generalize and verify -----------------------------------------------------------------------------------


def test_generalize_while_running_is_refused_with_a_clear_error(fake_arm_env: FakeArm, log: Log) -> None:
    vm = fake_arm_env.add_vm()
    message = expect_error(fake_arm_env, ArmError, arm.generalize, fake_arm_env.settings(), vm.ref, log)
    assert "409" in message and "OperationNotAllowed" in message
    assert "since the VM is running" in message, "Azure's own words come first"
    assert "The VM is running" in message and "Deallocate it" in message, "advice that fits the state read"
    assert "src-vm" in message
    assert vm.generalized is False


def test_generalize_409_after_a_deallocate_does_not_advise_deallocating(fake_arm_env: FakeArm, log: Log) -> None:
    # Right after a successful deallocate Azure may still refuse (another operation on the VM): saying
    # "deallocate it first" then is wrong advice.
    vm = fake_arm_env.add_vm()
    settings = fake_arm_env.settings()
    status = arm.deallocate(settings, vm.ref, log)
    conflict = {"error": {"code": "Conflict", "message": "Another operation is in progress on the VM."}}
    fake_arm_env.add_fault(409, method="POST", path=r"/generalize$", body=conflict)
    message = expect_error(fake_arm_env, ArmError, lambda: arm.generalize(settings, vm.ref, log, current=status))
    assert "409 Conflict" in message and "Another operation is in progress" in message
    assert "deallocate" not in message.lower().replace("deallocated", ""), message
    assert "activity log" in message


def test_generalize_refused_while_the_vm_is_still_stopping_advises_waiting(fake_arm_env: FakeArm, log: Log) -> None:
    vm = fake_arm_env.add_vm(power_state="deallocating")
    conflict = {"error": {"code": "OperationNotAllowed", "message": "The VM is being deallocated."}}
    fake_arm_env.add_fault(409, method="POST", path=r"/generalize$", body=conflict)
    message = expect_error(fake_arm_env, ArmError, arm.generalize, fake_arm_env.settings(), vm.ref, log)
    assert "The VM is still deallocating: wait until it has stopped" in message


def test_generalize_after_deallocate_then_verify(fake_arm_env: FakeArm, log: Log) -> None:
    vm = fake_arm_env.add_vm()
    settings = fake_arm_env.settings()
    arm.deallocate(settings, vm.ref, log)
    arm.generalize(settings, vm.ref, log)
    assert vm.generalized is True
    status = arm.verify_generalized(settings, vm.ref, log)
    assert status.power_state == "deallocated" and status.generalized
    assert fake_arm_env.count("POST", r"/generalize$") == 1

    # Like Azure, the fake refuses to start a generalized VM.
    client = arm.session(settings).compute(vm.subscription_id)
    with pytest.raises(HttpResponseError) as refused:
        client.virtual_machines.begin_start(vm.resource_group, vm.name)
    assert refused.value.status_code == 409
    assert "generalized" in str(refused.value)


@pytest.mark.parametrize(
    ("power_state", "generalized", "expected"),
    [
        ("deallocated", False, "OSState/generalized is missing"),
        ("stopped", True, "PowerState is stopped"),
        ("running", False, "PowerState is running"),
    ],
)
def test_verify_generalized_names_what_is_missing(
    fake_arm_env: FakeArm, log: Log, power_state: str, generalized: bool, expected: str
) -> None:
    vm = fake_arm_env.add_vm(power_state=power_state, generalized=generalized)
    message = expect_error(fake_arm_env, ArmError, arm.verify_generalized, fake_arm_env.settings(), vm.ref, log)
    assert expected in message and "src-vm" in message


def test_wait_until_stopped_waits_out_a_stopping_vm(fake_arm_env: FakeArm, log: Log) -> None:
    vm = fake_arm_env.add_vm(power_state="stopping", settles_to="stopped", settle_after_reads=3)
    status = arm.wait_until_stopped(fake_arm_env.settings(), vm.ref, log)
    assert status.power_state == "stopped"
    assert fake_arm_env.count("GET", r"/instanceView$") == 4

    running = fake_arm_env.add_vm(name="busy")
    assert arm.wait_until_stopped(fake_arm_env.settings(), running.ref, log).power_state == "running"


def test_wait_until_stopped_is_bounded(fake_arm_env: FakeArm, log: Log) -> None:
    vm = fake_arm_env.add_vm(power_state="deallocating", settles_to="deallocated", settle_after_reads=10_000)
    message = expect_error(
        fake_arm_env, WaitTimeout, arm.wait_until_stopped, fake_arm_env.settings(operation_timeout=0.3), vm.ref, log
    )
    assert "src-vm" in message and "PowerState/deallocating" in message


# --- retries -------------------------------------------------------------------------------------------------


def test_throttling_429_is_retried_after_retry_after(fake_arm_env: FakeArm, log: Log) -> None:
    vm = fake_arm_env.add_vm()
    fake_arm_env.throttle(1, method="GET", path=r"/instanceView$", retry_after=1)
    started = time.monotonic()
    assert arm.get_status(fake_arm_env.settings(), vm.ref, log).power_state == "running"
    assert time.monotonic() - started >= 0.9  # Retry-After was honoured
    assert [r.status for r in fake_arm_env.requests if r.path.endswith("/instanceView")] == [429, 200]


def test_throttling_that_says_retry_at_once_is_still_backed_off(fake_arm_env: FakeArm, log: Log) -> None:
    # Retry-After: 0 leaves the wait to the retry policy: each further 429 must wait longer, not hammer ARM.
    vm = fake_arm_env.add_vm()
    fake_arm_env.throttle(2, method="GET", path=r"/instanceView$", retry_after=0)
    started = time.monotonic()
    assert arm.get_status(fake_arm_env.settings(), vm.ref, log).power_state == "running"
    assert time.monotonic() - started >= 1.0
    assert [r.status for r in fake_arm_env.requests if r.path.endswith("/instanceView")] == [429, 429, 200]


def test_a_long_retry_after_cannot_stretch_a_call_past_its_bound(fake_arm_env: FakeArm, log: Log) -> None:
    vm = fake_arm_env.add_vm()
    fake_arm_env.throttle(5, method="GET", path=r"/instanceView$", retry_after=60)
    started = time.monotonic()
    with pytest.raises(ArmError) as err:
        arm.get_status(fake_arm_env.settings(operation_timeout=2.0), vm.ref, log)
    assert time.monotonic() - started < 10, "Retry-After: 60 must be cut to the call's 2 s bound"
    assert vm.name in str(err.value)
    assert "throttling" in str(err.value) and "60s" in str(err.value), "the message must say ARM throttles"
    assert isinstance(err.value, ArmUnreachable), "preview treats throttling like an unreachable ARM (warn mode)"


@pytest.mark.parametrize(("method", "path", "times"), [("GET", r"/instanceView$", 2), ("POST", r"/deallocate$", 1)])
def test_transient_server_errors_are_retried(
    fake_arm_env: FakeArm, log: Log, method: str, path: str, times: int
) -> None:
    vm = fake_arm_env.add_vm()
    fake_arm_env.fail_transient(times, status=500, method=method, path=path)
    assert arm.deallocate(fake_arm_env.settings(), vm.ref, log).power_state == "deallocated"
    statuses = [r.status for r in fake_arm_env.requests if r.method == method and re.search(path, r.path)]
    assert statuses[: times + 1] == [500] * times + [statuses[times]]
    assert statuses[times] in (200, 202)


# --- errors --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("operation", [arm.get_status, arm.get_facts, arm.deallocate, arm.generalize])
def test_missing_vm_is_vm_not_found(fake_arm_env: FakeArm, log: Log, operation: Callable[..., Any]) -> None:
    ghost = VmRef(fake_arm_env.subscription_id, "rg-src", "ghost-vm")
    message = expect_error(fake_arm_env, VmNotFound, operation, fake_arm_env.settings(), ghost, log)
    assert "ghost-vm" in message
    assert "deleted or the identity cannot see it" in message
    assert "ResourceNotFound" in message


@pytest.mark.parametrize(
    ("operation", "path", "permission"),
    [
        (arm.deallocate, r"/deallocate$", "Microsoft.Compute/virtualMachines/deallocate/action"),
        (arm.generalize, r"/generalize$", "Microsoft.Compute/virtualMachines/generalize/action"),
        (arm.get_status, r"/instanceView$", "Microsoft.Compute/virtualMachines/instanceView/read"),
        (arm.get_facts, r"/disks/", "Microsoft.Compute/disks/read"),
    ],
)
def test_forbidden_names_the_permission_needed(
    fake_arm_env: FakeArm, log: Log, operation: Callable[..., Any], path: str, permission: str
) -> None:
    vm = fake_arm_env.add_vm(power_state="stopped")
    fake_arm_env.deny(403, path=path)
    message = expect_error(fake_arm_env, ArmAccessDenied, operation, fake_arm_env.settings(), vm.ref, log)
    assert "403" in message and "AuthorizationFailed" in message
    assert f"needs the permission {permission}" in message
    assert (vm.power_state, vm.generalized) == ("stopped", False)
    if operation in (arm.deallocate, arm.generalize):  # the message says what was refused
        assert f"Azure denied the request to {operation.__name__} {vm.ref}" in message


def test_rejected_token_is_access_denied(fake_arm_env: FakeArm, log: Log) -> None:
    vm = fake_arm_env.add_vm()
    fake_arm_env.accepted_token = "some-other-token"
    message = expect_error(fake_arm_env, ArmAccessDenied, arm.get_status, fake_arm_env.settings(), vm.ref, log)
    assert "401" in message and "InvalidAuthenticationToken" in message
    assert "az login" in message


def test_token_echoed_by_the_server_never_reaches_the_message(fake_arm_env: FakeArm, log: Log) -> None:
    vm = fake_arm_env.add_vm()
    echo = {"error": {"code": "InvalidAuthenticationToken", "message": f"Token Bearer {fake_arm_env.token} is bad"}}
    fake_arm_env.add_fault(401, path=r"/instanceView$", times=None, body=echo)
    expect_error(fake_arm_env, ArmAccessDenied, arm.get_status, fake_arm_env.settings(), vm.ref, log)


def test_logged_out_cli_is_a_login_problem(fake_arm_env: FakeArm, log: Log) -> None:
    vm = fake_arm_env.add_vm()
    fake_arm_env.az_logged_out = True
    message = expect_error(fake_arm_env, ArmUnreachable, arm.deallocate, fake_arm_env.settings(), vm.ref, log)
    assert "az login" in message
    assert "login problem" in message and "src-vm" in message
    assert fake_arm_env.requests == []  # nothing was sent without a token
    assert vm.power_state == "running"


def test_endpoint_nobody_listens_on_is_a_network_problem(fake_arm_env: FakeArm, log: Log) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = fake_arm_env.settings(endpoint=f"https://127.0.0.1:{port}", operation_timeout=1.0)
    vm = VmRef(fake_arm_env.subscription_id, "rg-src", "src-vm")
    started = time.monotonic()
    message = expect_error(fake_arm_env, ArmUnreachable, arm.generalize, settings, vm, log)
    assert time.monotonic() - started < 5
    assert f"could not reach ARM at https://127.0.0.1:{port}" in message
    assert "network problem" in message and "src-vm" in message


def test_untrusted_certificate_is_a_network_problem(
    fake_arm_env: FakeArm, log: Log, monkeypatch: pytest.MonkeyPatch
) -> None:
    vm = fake_arm_env.add_vm()
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    message = expect_error(fake_arm_env, ArmUnreachable, arm.generalize, fake_arm_env.settings(), vm.ref, log)
    assert "REQUESTS_CA_BUNDLE" in message
    assert fake_arm_env.requests == []


# --- gallery and subscription reads --------------------------------------------------------------------------


@pytest.mark.parametrize("legacy_source_id", [False, True])
def test_image_version_is_read_or_none(fake_arm_env: FakeArm, legacy_source_id: bool) -> None:
    settings = fake_arm_env.settings()
    vm = fake_arm_env.add_vm()
    image = fake_arm_env.add_gallery_image()
    fake_arm_env.add_image_version(image, "1.2.3", source_vm_id=vm.id, legacy_source_id=legacy_source_id)
    version = arm.get_image_version(settings, fake_arm_env.subscription_id, "rg-gallery", "gal", "img", "1.2.3")
    assert version is not None
    assert version.source_vm_id == vm.id
    assert version.provisioning_state == "Succeeded"
    assert arm.get_image_version(settings, fake_arm_env.subscription_id, "rg-gallery", "gal", "img", "9.9.9") is None
    assert fake_arm_env.non_get_requests() == []


@pytest.mark.parametrize("security_type", ["TrustedLaunch", None])
def test_image_definition_is_read_with_its_security_type_or_none(
    fake_arm_env: FakeArm, security_type: str | None
) -> None:
    settings = fake_arm_env.settings()
    fake_arm_env.add_gallery_image(security_type=security_type, hyper_v_generation="V2")
    found = arm.get_image_definition(settings, fake_arm_env.subscription_id, "rg-gallery", "gal", "img")
    assert found is not None and found.id.endswith("/galleries/gal/images/img")
    assert (found.os_type, found.os_state, found.hyper_v_generation) == ("Linux", "Generalized", "V2")
    assert found.security_type == (security_type or "Standard"), "no SecurityType feature means Standard"
    assert arm.get_image_definition(settings, fake_arm_env.subscription_id, "rg-gallery", "gal", "none") is None


def test_a_version_to_promote_from_is_read_with_its_source_or_none(fake_arm_env: FakeArm) -> None:
    settings = fake_arm_env.settings()
    vm = fake_arm_env.add_vm()
    image = fake_arm_env.add_gallery_image()
    fake_arm_env.add_image_version(image, "1.2.3", source_vm_id=vm.id)

    def version(number: str) -> ImageVersionRef:
        return ImageVersionRef(fake_arm_env.subscription_id, "rg-gallery", "gal", "img", number)

    found = arm.get_version_source(settings, version("1.2.3"))
    assert found is not None and found.id.endswith("/images/img/versions/1.2.3")
    assert (found.source_id, found.provisioning_state, found.location) == (vm.id, "Succeeded", "westeurope")
    assert found.replication, "read with its replication status"
    assert arm.get_version_source(settings, version("9.9.9")) is None
    assert fake_arm_env.non_get_requests() == []


def test_gallery_read_forbidden_names_the_permission(fake_arm_env: FakeArm) -> None:
    fake_arm_env.add_image_version(fake_arm_env.add_gallery_image(), "1.0.0")
    fake_arm_env.deny(403, path=r"/galleries/")
    message = expect_error(
        fake_arm_env,
        ArmAccessDenied,
        arm.get_image_version,
        fake_arm_env.settings(),
        fake_arm_env.subscription_id,
        "rg-gallery",
        "gal",
        "img",
        "1.0.0",
    )
    assert arm.PERMISSION_IMAGE_VERSION_READ in message and "gal" in message


def test_subscription_tenant(fake_arm_env: FakeArm) -> None:
    other = "11111111-2222-3333-4444-555555555555"
    fake_arm_env.add_subscription(other, tenant_id="99999999-0000-0000-0000-000000000001")
    fake_arm_env.add_subscription(fake_arm_env.subscription_id)
    settings = fake_arm_env.settings()
    assert arm.get_subscription_tenant(settings, fake_arm_env.subscription_id) == fake_arm_env.tenant_id
    assert arm.get_subscription_tenant(settings, other) == "99999999-0000-0000-0000-000000000001"
    missing = "deadbeef-0000-0000-0000-000000000000"
    message = expect_error(fake_arm_env, ArmError, arm.get_subscription_tenant, settings, missing)
    assert missing in message and "SubscriptionNotFound" in message


# --- throttling, silence and resets (bounded by armOperationTimeoutMinutes) -----------------------------------


def test_a_throttling_storm_on_deallocate_is_waited_out(fake_arm_env: FakeArm, log: Log) -> None:
    # azure-core's default allows 3 status retries: five 429s used to fail the step after 3 s.
    vm = fake_arm_env.add_vm()
    fake_arm_env.throttle(5, method="POST", path=r"/deallocate$", retry_after=1)
    status = arm.deallocate(fake_arm_env.settings(operation_timeout=30.0), vm.ref, log)
    assert status.power_state == "deallocated"
    assert [r.status for r in fake_arm_env.requests if r.path.endswith("/deallocate")] == [429] * 5 + [202]
    assert any("ARM is throttling requests to deallocate" in line for line in log.lines), log.lines


def test_throttling_past_the_bound_says_so_and_names_the_config_key(fake_arm_env: FakeArm, log: Log) -> None:
    vm = fake_arm_env.add_vm()
    fake_arm_env.throttle(100, method="GET", path=r"/instanceView$", retry_after=1)
    started = time.monotonic()
    message = expect_error(
        fake_arm_env, ArmUnreachable, arm.get_status, fake_arm_env.settings(operation_timeout=2.5), vm.ref, log
    )
    assert time.monotonic() - started < 4
    assert "is throttling requests" in message and "waited" in message and "Retry-After" in message
    assert "raise armOperationTimeoutMinutes" in message
    assert "portal" not in message, "throttling is not a problem with the resource"
    assert "operation_timeout" not in message


def test_a_silent_arm_is_retried_and_reported_within_one_request_bound(fake_arm_env: FakeArm, log: Log) -> None:
    vm = fake_arm_env.add_vm()
    fake_arm_env.hang(method="GET", path=r"/instanceView$", seconds=30, times=2)
    status = arm.get_status(fake_arm_env.settings(request_timeout=0.5), vm.ref, log)
    assert status.power_state == "running"
    told = [line for line in log.lines if "did not answer within the per-request bound of 0.5s" in line]
    assert len(told) == 2 and "retrying" in told[0] and "armOperationTimeoutMinutes" in told[0], log.lines


def test_a_silent_arm_is_bounded_by_the_operation_bound(fake_arm_env: FakeArm, log: Log) -> None:
    vm = fake_arm_env.add_vm()
    fake_arm_env.hang(method="GET", path=r"/instanceView$", seconds=30)
    started = time.monotonic()
    message = expect_error(
        fake_arm_env,
        ArmUnreachable,
        arm.get_status,
        fake_arm_env.settings(request_timeout=0.5, operation_timeout=1.8),
        vm.ref,
        log,
    )
    assert time.monotonic() - started < 3, "retries of an unanswered request stay within the operation bound"
    assert "did not answer in time" in message and "armOperationTimeoutMinutes" in message
    assert "operation_timeout" not in message


def test_a_silent_arm_while_deallocating_is_reported_as_silence_not_as_a_slow_deallocation(
    fake_arm_env: FakeArm, log: Log
) -> None:
    vm = fake_arm_env.add_vm()
    fake_arm_env.hang(method="GET", path=OPERATION_PATH, seconds=30)
    message = expect_error(
        fake_arm_env,
        ArmUnreachable,
        arm.deallocate,
        fake_arm_env.settings(request_timeout=0.5, operation_timeout=1.8),
        vm.ref,
        log,
    )
    assert "did not answer in time" in message


def test_a_poll_of_the_deallocation_refused_by_arm_is_arms_refusal_not_a_failed_operation(
    fake_arm_env: FakeArm, log: Log
) -> None:
    vm = fake_arm_env.add_vm()
    fake_arm_env.fail_with_body(
        400,
        {"error": {"code": "InvalidRequest", "message": "The operation ID is not valid."}},
        method="GET",
        path=OPERATION_PATH,
    )
    message = expect_error(fake_arm_env, ArmError, arm.deallocate, fake_arm_env.settings(), vm.ref, log)
    assert "HTTP 400 InvalidRequest" in message and "The operation ID is not valid" in message
    assert "the operation ended" not in message


def test_a_reset_connection_is_reported_as_a_reset(fake_arm_env: FakeArm, log: Log) -> None:
    vm = fake_arm_env.add_vm()
    fake_arm_env.reset_connection(method="GET", path=r"/instanceView$", times=None)
    message = expect_error(
        fake_arm_env, ArmUnreachable, arm.get_status, fake_arm_env.settings(operation_timeout=2.0), vm.ref, log
    )
    assert "closed (reset) the connection" in message
    assert "did not answer in time" not in message


def test_the_operation_bound_message_names_the_config_key(fake_arm_env: FakeArm, log: Log) -> None:
    vm = fake_arm_env.add_vm()
    fake_arm_env.hang_next_lro()
    message = expect_error(
        fake_arm_env, WaitTimeout, arm.deallocate, fake_arm_env.settings(operation_timeout=0.5), vm.ref, log
    )
    assert "armOperationTimeoutMinutes" in message and "operation_timeout" not in message


# --- one session per process ---------------------------------------------------------------------------------


def test_calls_share_one_login_and_one_connection(fake_arm_env: FakeArm, log: Log) -> None:
    settings = fake_arm_env.settings()
    vms = [fake_arm_env.add_vm(name=f"vm-{i}") for i in range(3)]
    for vm in vms:
        arm.get_status(settings, vm.ref, log)
        arm.deallocate(settings, vm.ref, log)
        arm.get_facts(settings, vm.ref, log)
    assert fake_arm_env.logins() == 1, fake_arm_env.az_calls()
    assert fake_arm_env.connections == 1


def test_concurrent_calls_share_one_login(fake_arm_env: FakeArm, log: Log) -> None:
    import concurrent.futures

    settings = fake_arm_env.settings()
    vms = [fake_arm_env.add_vm(name=f"vm-{i}") for i in range(6)]
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        statuses = list(pool.map(lambda vm: arm.get_status(settings, vm.ref, log), vms))
    assert all(s.power_state == "running" for s in statuses)
    assert fake_arm_env.logins() == 1, "threads wait for the one login in progress"
    assert fake_arm_env.connections <= 6


def test_short_lived_tokens_are_refreshed_never_used_expired(fake_arm_env: FakeArm, log: Log) -> None:
    # A multi-hour run outlives its first token: here each token lives 2 s and the deallocation takes about 4 s.
    fake_arm_env.hand_out_short_lived_tokens(2)
    fake_arm_env.lro_polls = 3
    vm = fake_arm_env.add_vm()
    settings = fake_arm_env.settings(poll_interval=1.0, operation_timeout=30.0)
    arm.deallocate(settings, vm.ref, log)
    time.sleep(2.1)  # the last token has expired
    arm.generalize(settings, vm.ref, log)
    assert vm.generalized
    assert fake_arm_env.expired_token_requests == 0
    assert all(r.authorized for r in fake_arm_env.requests)
    assert fake_arm_env.logins() >= 2
