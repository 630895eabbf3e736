"""What a user reads when an ARM call fails (hooks/arm/errors.py): the error type they must act on, what happened
to which resource, and what to do; never a token. One answer or exception each, no server: the integration
tests show the same through the fake ARM, these pin each rule of the translation on its own."""

from __future__ import annotations

import pytest
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)

from hooks import arm
from hooks import login as azure_login
from hooks.arm.budget import Budget, Throttled
from hooks.errors import ArmAccessDenied, ArmError, ArmUnreachable, VmNotFound
from tests.unit.arm_answers import SETTINGS, VM, answer, refusal

CALL = arm.Call(SETTINGS, "deallocate", str(VM), "Microsoft.Compute/virtualMachines/deallocate/action", VM)
READ = arm.Call(SETTINGS, "read", "image definition img", "Microsoft.Compute/galleries/images/read")
TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJ4In0.c2lnbmF0dXJl"


def budget(repeated: int) -> Budget:
    b = Budget(SETTINGS, "deallocate the VM")
    b.repeated = repeated
    return b


def arm_refusal(status: int, body: object = None, *, text: str | None = None) -> HttpResponseError:
    """An error answer whose body is not ARM's usual {"error": {...}}."""
    return HttpResponseError(response=answer(status, body, text=text))


def reset() -> ServiceResponseError:
    return ServiceResponseError("Connection aborted.", error=ConnectionResetError(104, "Connection reset by peer"))


# --- ARM answered with an error status -----------------------------------------------------------------------


def test_a_404_about_a_vm_is_vm_not_found_naming_its_id_and_subscription() -> None:
    error = arm.translate(refusal(404, "ResourceNotFound", "The Resource was not found."), CALL)
    assert type(error) is VmNotFound
    assert str(error).startswith(f"{VM} was not found in subscription {VM.subscription_id} (ResourceNotFound)")
    assert VM.id in str(error)
    assert "Azure said: The Resource was not found." in str(error)


def test_a_404_about_anything_else_is_azures_refusal_with_its_status() -> None:
    error = arm.translate(refusal(404, "ResourceNotFound", "Gone."), READ)
    assert type(error) is ArmError
    assert str(error) == (
        "Azure refused to read image definition img (HTTP 404 ResourceNotFound): Gone. Check the resource in the "
        "Azure portal and run again."
    )


def test_a_401_is_the_token_rejected_naming_the_endpoint_and_audience() -> None:
    error = arm.translate(refusal(401, "InvalidAuthenticationToken", "The token is invalid."), CALL)
    assert type(error) is ArmAccessDenied
    assert str(error).startswith(
        f"ARM at {SETTINGS.endpoint} rejected the access token while trying to deallocate {VM} "
        "(401 InvalidAuthenticationToken)"
    )
    assert f"token audience {SETTINGS.scope}" in str(error)


def test_a_403_names_the_permission_the_call_needs() -> None:
    error = arm.translate(refusal(403, "AuthorizationFailed", "No access."), CALL)
    assert type(error) is ArmAccessDenied
    assert str(error).startswith(f"Azure denied the request to deallocate {VM} (403 AuthorizationFailed)")
    assert "the permission Microsoft.Compute/virtualMachines/deallocate/action on it" in str(error)


@pytest.mark.parametrize("status", [400, 409, 500])
def test_any_other_status_is_azures_refusal_with_status_code_and_message(status: int) -> None:
    error = arm.translate(refusal(status, "OperationNotAllowed", "Not now."), CALL)
    assert type(error) is ArmError
    assert str(error) == (
        f"Azure refused to deallocate {VM} (HTTP {status} OperationNotAllowed): Not now. Check the resource in "
        "the Azure portal and run again."
    )


# --- Azure's error, whatever its body -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"error": {"code": "Conflict", "message": "Busy."}}, ("Conflict", "Busy")),
        ({"code": "Conflict", "message": "Busy."}, ("Conflict", "Busy")),
        ({"Code": "Conflict", "Message": "Busy."}, ("Conflict", "Busy")),
        ({"error": {"code": "Conflict"}, "message": "Busy."}, ("Conflict", "Busy")),
        ({"error": {"message": "Busy."}, "code": "Conflict"}, ("Conflict", "Busy")),
        ({"unrelated": True}, ("HTTP 409", "Conflict")),
    ],
)
def test_azures_code_and_message_are_found_in_every_body_shape(body: object, expected: tuple[str, str]) -> None:
    assert arm.azure_error_detail(arm_refusal(409, body)) == expected


def test_a_gateways_html_page_is_quoted_by_its_title() -> None:
    page = "<html><head><title>502 Bad Gateway</title></head><body><h1>nginx</h1></body></html>"
    assert arm.azure_error_detail(arm_refusal(502, text=page)) == ("HTTP 502", "502 Bad Gateway")


def test_a_plain_text_answer_is_quoted_without_its_markup() -> None:
    assert arm.azure_error_detail(arm_refusal(503, text="<p>Service   down</p>")) == ("HTTP 503", "Service down")


def test_a_token_in_azures_message_never_reaches_the_user() -> None:
    error = arm.translate(refusal(400, "BadRequest", f"Header Authorization: Bearer {TOKEN} was bad."), READ)
    assert TOKEN not in str(error)
    assert "Bearer [redacted]" in str(error)


@pytest.mark.parametrize(
    ("text", "scrubbed"),
    [
        (f"Authorization: Bearer {TOKEN}", "Authorization: Bearer [redacted]"),
        (f"the token {TOKEN} expired", "the token [redacted token] expired"),
        ('{"access_token": "abc.def"}', '{"access_token": "[redacted]"}'),
        ("accessToken=secret-value, next", "accessToken=[redacted], next"),
    ],
)
def test_anything_like_a_token_is_scrubbed(text: str, scrubbed: str) -> None:
    assert arm.scrub_tokens(text) == scrubbed


def test_azures_text_is_quoted_on_one_line_without_its_final_period() -> None:
    assert arm.quote_azure("The VM\n  is running.  ") == "The VM is running"


# --- the tenant ARM names when it refuses a token of another tenant -------------------------------------------


OTHER_TENANT = "22222222-2222-2222-2222-222222222222"


def test_the_tenant_is_read_from_www_authenticate() -> None:
    response = answer(
        401,
        {"error": {"code": "InvalidAuthenticationTokenTenant", "message": "Wrong issuer."}},
        headers={"WWW-Authenticate": f'Bearer authorization_uri="https://login.example/{OTHER_TENANT}", error=x'},
    )
    assert arm.tenant_of_refusal(response) == OTHER_TENANT


def test_the_tenant_is_read_from_the_message_when_no_header_names_it() -> None:
    message = f"The access token must match the tenant 'https://sts.windows.net/{OTHER_TENANT}/' of the subscription."
    response = answer(401, {"error": {"code": "InvalidAuthenticationTokenTenant", "message": message}})
    assert arm.tenant_of_refusal(response) == OTHER_TENANT


@pytest.mark.parametrize(
    ("status", "code"),
    [(401, "InvalidAuthenticationToken"), (403, "InvalidAuthenticationTokenTenant"), (200, "")],
)
def test_no_tenant_is_named_by_any_other_answer(status: int, code: str) -> None:
    header = {"WWW-Authenticate": f'Bearer authorization_uri="https://login.example/{OTHER_TENANT}"'}
    response = answer(status, {"error": {"code": code, "message": "m"}}, headers=header)
    assert arm.tenant_of_refusal(response) is None
    assert arm.tenant_of_refusal(None) is None


# --- no answer from ARM ----------------------------------------------------------------------------------------


def test_a_request_that_never_reached_arm_is_a_network_problem() -> None:
    error = arm.translate(ServiceRequestError("Name or service not known"), CALL)
    assert type(error) is ArmUnreachable
    assert str(error).startswith(
        f"could not reach ARM at {SETTINGS.endpoint} to deallocate {VM}: Name or service not known. This is a "
        "network problem, not a login one"
    )


def test_a_reset_sent_again_says_it_kept_happening_within_the_bound() -> None:
    error = arm.translate(reset(), CALL, budget(repeated=2))
    assert type(error) is ArmUnreachable
    assert "closed (reset) the connection without answering, to deallocate" in str(error)
    assert "kept doing so on every retry within the 120s bound (armKey)" in str(error)
    assert "not sent again" not in str(error)


@pytest.mark.parametrize("sent_again", [None, 0])
def test_a_reset_not_sent_again_does_not_say_retried(sent_again: int | None) -> None:
    error = arm.translate(reset(), CALL, None if sent_again is None else budget(sent_again))
    assert "closed (reset) the connection without answering" in str(error)
    assert "and the request was not sent again" in str(error)
    assert "retry" not in str(error)


def test_no_answer_sent_again_says_retried_within_the_bound() -> None:
    error = arm.translate(ServiceResponseError("Read timed out."), CALL, budget(repeated=1))
    assert type(error) is ArmUnreachable
    assert str(error).startswith(
        f"ARM at {SETTINGS.endpoint} did not answer in time to deallocate {VM} (per-request bound 20s, retried "
        "within the 120s bound (armKey)): Read timed out."
    )


def test_no_answer_not_sent_again_says_so() -> None:
    error = arm.translate(ServiceResponseError("Read timed out."), CALL, budget(repeated=0))
    assert "(per-request bound 20s, the request was not sent again)" in str(error)


def test_any_other_azure_error_asks_to_run_again() -> None:
    error = arm.translate(AzureError("decoding failed"), READ)
    assert type(error) is ArmError
    assert str(error) == "could not read image definition img: decoding failed. Run again; if it persists, check ARM."


# --- no token --------------------------------------------------------------------------------------------------


def test_no_token_from_the_default_credential_asks_for_az_login() -> None:
    error = arm.translate(ClientAuthenticationError("AzureCliCredential: Please run 'az login'."), READ)
    assert type(error) is ArmUnreachable
    assert str(error).startswith(
        f"could not read image definition img: no Azure access token could be obtained for {SETTINGS.scope} "
        "(AzureCliCredential: Please run 'az login'). This is a login problem, not a network one: run `az login`"
    )


def test_no_token_from_configured_login_settings_points_at_those_settings() -> None:
    settings = azure_login.LoginSettings.resolve(
        {"clientId": "app", "clientSecret": "s3cret-value", "tenantId": "t"}, {}
    )
    refused = arm.LoginRefused(settings, "AADSTS7000215: Invalid client secret s3cret-value provided.")
    error = arm.translate(refused, READ)
    assert "This is a login problem, not a network one: check the login settings named there" in str(error)
    assert "run `az login`" not in str(error)
    assert "s3cret-value" not in str(error)


def test_no_token_from_a_login_that_chose_the_default_credential_asks_for_az_login() -> None:
    settings = azure_login.LoginSettings.resolve({"useDefaultAzureCredential": "true"}, {})
    error = arm.translate(arm.LoginRefused(settings, "no identity"), READ)
    assert "This is a login problem, not a network one: run `az login`" in str(error)


def test_arms_own_401_is_not_called_a_login_problem() -> None:
    refused = ClientAuthenticationError(response=answer(401, {"error": {"code": "ExpiredAuthenticationToken"}}))
    error = arm.translate(refused, READ)
    assert type(error) is ArmAccessDenied
    assert "(401 ExpiredAuthenticationToken)" in str(error)


# --- after ARM accepted the operation ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (ServiceResponseError("Read timed out."), ArmUnreachable),
        (refusal(500, "InternalServerError", "Oops."), ArmError),
        (refusal(403, "AuthorizationFailed", "No."), ArmAccessDenied),
    ],
)
def test_once_arm_accepted_the_operation_every_error_ends_with_what_that_means(
    exc: AzureError, kind: type[ArmError]
) -> None:
    note = "It may still be running in Azure; the next run reads the VM first."
    error = arm.translate(exc, CALL.after_acceptance(note))
    assert type(error) is kind
    assert str(error).endswith(f". {note}")
    assert str(arm.translate(exc, CALL)).count(note) == 0


def test_throttling_past_the_bound_says_how_long_it_waited_and_what_to_raise() -> None:
    b = Budget(SETTINGS, "deallocate the VM")
    b.throttled = 7
    with pytest.raises(ArmUnreachable) as caught, arm.arm_errors(CALL.after_acceptance("It may still run."), b):
        raise Throttled(300.0, b)
    message = str(caught.value)
    assert message.startswith(f"ARM at {SETTINGS.endpoint} is throttling requests: to deallocate {VM} this run waited ")
    assert "ARM answered 7 throttled request(s) and asked to wait 300s more, longer than the 120s left" in message
    assert "of the 120s bound (armKey). Wait a few minutes and run again" in message
    assert message.endswith("or raise armKey. It may still run.")
    assert caught.value.__cause__ is None


def test_an_azure_error_leaving_the_block_is_translated_from_it() -> None:
    original = refusal(409, "Conflict", "Busy.")
    with pytest.raises(ArmError) as caught, arm.arm_errors(READ):
        raise original
    assert caught.value.__cause__ is original
