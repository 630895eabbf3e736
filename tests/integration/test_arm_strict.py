"""The fake ARM refuses what ARM refuses, and hooks.arm quotes Azure whatever shape its error body has.

ARM answers 400 MissingApiVersionParameter / InvalidApiVersionParameter to a request without a well-formed
api-version, and 404 in its `{"error": {"code", "message"}}` shape to an unknown route. Error bodies come in more
shapes than azure-core parses into an ODataV4Format: `{"Message": ...}` from older resource providers, plain text,
an HTML page from a gateway. A user must still read what Azure said, and which permission a 403 is about."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
import requests

from hooks import arm
from hooks.errors import ArmAccessDenied, ArmError
from hooks.log import Log

if TYPE_CHECKING:
    from tests.fakes.arm import FakeArm

pytest_plugins = ["tests.fakes.arm"]

SUB = "00000000-0000-0000-0000-00000000aaaa"


@pytest.fixture
def log() -> Log:
    return Log("test", sink=lambda line: None)


def get(fake: FakeArm, path: str) -> requests.Response:
    return requests.get(
        f"{fake.endpoint.rstrip('/')}{path}",
        headers={"Authorization": f"Bearer {fake.token}"},
        verify=str(fake.ca_path),
        timeout=5,
    )


def arm_error(response: requests.Response) -> tuple[str, str]:
    body = response.json()
    assert set(body) == {"error"} and {"code", "message"} <= set(body["error"]), body
    return body["error"]["code"], body["error"]["message"]


# --- the fake is as strict as ARM ----------------------------------------------------------------------------


@pytest.mark.parametrize("query", ["", "?api-version=", "?$expand=instanceView"])
def test_a_request_without_api_version_is_refused_like_arm_does(fake_arm: FakeArm, query: str) -> None:
    vm = fake_arm.add_vm()
    response = get(fake_arm, vm.id + query)
    assert response.status_code == 400
    code, message = arm_error(response)
    assert code == "MissingApiVersionParameter" and "api-version" in message


@pytest.mark.parametrize("version", ["latest", "2024-07-01x", "24-07-01", "2024-07-01-beta", "v39"])
def test_an_api_version_not_of_arms_form_is_refused(fake_arm: FakeArm, version: str) -> None:
    vm = fake_arm.add_vm()
    response = get(fake_arm, f"{vm.id}?api-version={version}")
    assert response.status_code == 400
    code, message = arm_error(response)
    assert code == "InvalidApiVersionParameter" and f"'{version}'" in message


@pytest.mark.parametrize("version", ["2024-07-01", "2026-04-01", "2023-07-03-preview"])
def test_any_api_version_of_arms_form_is_accepted(fake_arm: FakeArm, version: str) -> None:
    vm = fake_arm.add_vm()
    assert get(fake_arm, f"{vm.id}?api-version={version}").status_code == 200


def test_an_unknown_route_answers_arms_404(fake_arm: FakeArm) -> None:
    response = get(fake_arm, f"/subscriptions/{SUB}/providers/Microsoft.Compute/noSuchThings/x?api-version=2024-07-01")
    assert response.status_code == 404
    code, message = arm_error(response)
    assert code == "InvalidResourceType" and "noSuchThings" in message


def test_every_request_of_the_arm_half_and_the_checks_carries_a_valid_api_version(
    fake_arm_env: FakeArm, log: Log
) -> None:
    vm = fake_arm_env.add_vm()
    s = fake_arm_env.settings()
    arm.get_facts(s, vm.ref, log)
    arm.get_subscription_tenant(s, vm.subscription_id)
    arm.get_image_version(s, vm.subscription_id, "rg-gallery", "gal", "img", "1.0.0")
    status = arm.deallocate(s, vm.ref, log, current=arm.get_status(s, vm.ref, log))
    arm.generalize(s, vm.ref, log, current=status)
    assert arm.verify_generalized(s, vm.ref, log).generalized
    refused = [(r.method, r.path, r.status) for r in fake_arm_env.requests if r.status == 400]
    assert refused == []
    assert all("api-version" in r.query for r in fake_arm_env.requests)


# --- Azure's words reach the user, whatever the body's shape -------------------------------------------------


@pytest.mark.parametrize(
    ("body", "quoted"),
    [
        ({"error": {"code": "OperationNotAllowed", "message": "The VM is being updated."}}, "The VM is being updated"),
        ({"code": "OperationNotAllowed", "message": "The VM is being updated."}, "The VM is being updated"),
        ({"Message": "The request is invalid."}, "The request is invalid"),
        ({"Code": "OperationNotAllowed", "Message": "The VM is being updated."}, "The VM is being updated"),
        ("Bad request: the VM is locked", "Bad request: the VM is locked"),
        ("<html><head><title>400 Bad Request</title></head><body>nginx</body></html>", "400 Bad Request"),
    ],
    ids=["odata", "top-level code", "Message", "Code and Message", "plain text", "gateway html"],
)
def test_azures_error_is_quoted_whatever_the_body_shape(
    fake_arm_env: FakeArm, log: Log, body: str | dict[str, Any], quoted: str
) -> None:
    vm = fake_arm_env.add_vm()
    content_type = "text/html" if isinstance(body, str) and body.startswith("<") else "text/plain; charset=utf-8"
    fake_arm_env.fail_with_body(409, body, method="GET", path=r"/instanceView$", content_type=content_type)
    with pytest.raises(ArmError) as caught:
        arm.get_status(fake_arm_env.settings(), vm.ref, log)
    message = str(caught.value)
    assert "HTTP 409" in message and quoted in message, message
    if isinstance(body, dict) and "OperationNotAllowed" in str(body):
        assert "OperationNotAllowed" in message


@pytest.mark.parametrize(
    ("read", "path", "permission"),
    [
        (
            lambda s, vm: arm.get_image_version(s, vm.subscription_id, "rg-gallery", "gal", "img", "1.0.0"),
            r"/versions/",
            "Microsoft.Compute/galleries/images/versions/read",
        ),
        (
            lambda s, vm: arm.get_subscription_tenant(s, vm.subscription_id),
            r"^/subscriptions/[^/]+$",
            "Microsoft.Resources/subscriptions/read",
        ),
        (
            lambda s, vm: arm.get_facts(s, vm.ref, Log("t", sink=lambda _: None)),
            r"/virtualMachines/",
            "Microsoft.Compute/virtualMachines/read",
        ),
    ],
    ids=["image version", "subscription", "vm"],
)
def test_a_403_names_the_permission_of_the_read(fake_arm_env: FakeArm, read: Any, path: str, permission: str) -> None:
    vm = fake_arm_env.add_vm()
    fake_arm_env.deny(403, path=path)
    with pytest.raises(ArmAccessDenied) as caught:
        read(fake_arm_env.settings(), vm)
    assert f"needs the permission {permission}" in str(caught.value)
    assert "403 AuthorizationFailed" in str(caught.value)


def test_a_subscription_answer_without_tenant_is_reported(fake_arm_env: FakeArm) -> None:
    fake_arm_env.fail_with_body(
        200, {"id": f"/subscriptions/{SUB}", "subscriptionId": SUB, "state": "Enabled"}, path=r"^/subscriptions/[^/]+$"
    )
    with pytest.raises(ArmError, match=f"ARM returned subscription {SUB} without a tenantId"):
        arm.get_subscription_tenant(fake_arm_env.settings(), SUB)


def test_the_subscriptions_tenant_is_read(fake_arm_env: FakeArm) -> None:
    fake_arm_env.add_subscription(SUB, "11111111-2222-3333-4444-555555555555")
    assert arm.get_subscription_tenant(fake_arm_env.settings(), SUB) == "11111111-2222-3333-4444-555555555555"


def test_a_vm_whose_disk_reports_no_os_type_is_reported(fake_arm_env: FakeArm, log: Log) -> None:
    vm = fake_arm_env.add_vm(os_type="")
    with pytest.raises(ArmError, match="ARM reports no osType for the OS disk of"):
        arm.get_facts(fake_arm_env.settings(), vm.ref, log)


def test_a_vm_answered_without_a_storage_profile_is_reported_not_a_crash(fake_arm_env: FakeArm, log: Log) -> None:
    vm = fake_arm_env.add_vm()
    partial = {"id": vm.id, "name": vm.name, "location": "westeurope", "properties": {"vmId": "0000-1"}}
    fake_arm_env.add_fault(200, method="GET", path=rf"/virtualMachines/{vm.name}$", body=partial)
    with pytest.raises(ArmError, match="without a storage profile; cannot tell its OS"):
        arm.get_facts(fake_arm_env.settings(), vm.ref, log)


def test_a_subscription_answered_with_no_locations_is_reported(fake_arm_env: FakeArm) -> None:
    # An empty list would make every configured region "unknown": say what ARM answered instead.
    fake_arm_env.add_subscription(SUB, "11111111-2222-3333-4444-555555555555")
    fake_arm_env.locations = []
    with pytest.raises(ArmError, match=f"ARM returned no locations for subscription {SUB}"):
        arm.list_locations(fake_arm_env.settings(), SUB)
