"""Azure's errors, told to the user: every expected failure of an ARM call leaves as one of the `hooks.errors`
types, with a message that names the resource, says what happened and what to do, and never carries a token.

`arm_errors(call)` wraps one call; `Call` says what the call was doing, for the message.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)

from hooks import login as azure_login
from hooks.arm.budget import Budget, Throttled, bound_text, is_reset
from hooks.errors import ArmAccessDenied, ArmError, ArmUnreachable, VmNotFound
from hooks.targets import ArmSettings, VmRef

_SECRET_PATTERNS = (
    (re.compile(r"(?i)\bbearer\s+[A-Za-z0-9\-._~+/=]+"), "Bearer [redacted]"),
    (re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), "[redacted token]"),
    (re.compile(r"(?i)(\"?access_?token\"?\s*[:=]\s*\"?)[^\s\",}]+"), r"\1[redacted]"),
)


def scrub_tokens(text: str) -> str:
    """Remove anything that looks like a token; Azure's own messages should carry none, but we never gamble."""
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def quote_azure(text: str) -> str:
    """Azure's or azure-identity's text, made fit to embed in one of our sentences: no token, one line, no final
    period (our sentence continues)."""
    return " ".join(scrub_tokens(text).split()).rstrip(". ")


def azure_error_detail(exc: HttpResponseError) -> tuple[str, str]:
    """Azure's error (code, message) from an ARM error body, or the HTTP status and reason when there is none."""
    error = exc.error
    code = getattr(error, "code", None) if error is not None else None
    message = getattr(error, "message", None) if error is not None else None
    if not code or not message:
        # Error bodies that azure-core could not parse as OData (or plain `send_request` responses).
        text = exc.response.text() if exc.response is not None else ""
        try:
            body = json.loads(text) if text else None
        except ValueError:  # plain text, or an HTML page from a gateway: quote its title or its text
            body = None
            title = re.search(r"<title>(.*?)</title>", text, re.I | re.S)
            message = message or (title[1] if title else re.sub(r"<[^>]+>", " ", text))[:300].strip() or None
        inner = body.get("error") if isinstance(body, dict) else None
        # ARM's {"error": {...}}, or the top-level {"code", "message"} / {"Message"} of older resource providers
        for shape in (inner, body):
            if isinstance(shape, dict):
                code = code or shape.get("code") or shape.get("Code")
                message = message or shape.get("message") or shape.get("Message")
    status = f"HTTP {exc.status_code}" if exc.status_code else "no HTTP status"
    return quote_azure(str(code or status)), quote_azure(str(message or exc.reason or exc.message or "no details"))


_AUTHORITY_TENANT = re.compile(r"authorization_uri=\"?https://[^/\"]+/([0-9A-Za-z.-]+)", re.I)
_ISSUER_TENANT = re.compile(r"must match the tenant 'https://sts\.windows\.net/([0-9A-Za-z.-]+)/'", re.I)


def tenant_of_refusal(response: Any) -> str | None:
    """The tenant ARM names when it refuses a token of another tenant (401 InvalidAuthenticationTokenTenant): its
    WWW-Authenticate `authorization_uri`, else its message. This is how Azure's own tools find a subscription's
    tenant; None for any other answer."""
    if response is None or response.status_code != 401:
        return None
    code, message = azure_error_detail(HttpResponseError(response=response))
    if code != "InvalidAuthenticationTokenTenant":
        return None
    found = _AUTHORITY_TENANT.search(response.headers.get("WWW-Authenticate") or "") or _ISSUER_TENANT.search(message)
    return found[1] if found else None


class LoginRefused(ClientAuthenticationError):
    """No token: the credential, Entra or the ID token source refused. Carries no HTTP response (ARM's own 401
    does), and says which login was used, each setting with where it came from; never a secret."""

    def __init__(self, settings: azure_login.LoginSettings, message: str) -> None:
        super().__init__(message=f"{settings.redact(message)} [login: {settings.describe()}]")
        self.settings = settings


@dataclass(frozen=True)
class Call:
    """What a single ARM call is doing, for its error messages."""

    settings: ArmSettings
    doing: str
    """e.g. "deallocate": completes "could not <doing> <target>"."""
    target: str
    permission: str
    """The permission a 403 names, e.g. Microsoft.Compute/virtualMachines/read ("" when none applies)."""
    vm: VmRef | None = None
    """The VM the call is about: a 404 is then VmNotFound."""
    accepted: str = ""
    """Set once ARM accepted the operation (a 202) and the call follows it: what that means for the user, e.g.
    that the operation may still be running in Azure and what the next run does about it. Ends every error."""

    def after_acceptance(self, note: str) -> Call:
        """This call, once ARM accepted its operation: every error then ends with `note`."""
        return replace(self, accepted=note)


def translate(exc: AzureError, call: Call, budget: Budget | None = None) -> ArmError:
    """Map an azure-core/azure-identity exception to the error type the user must act on. `budget`: the call's
    (how often the failed request was sent again); `call.accepted` ends the message."""
    error = _translated(exc, call, budget)
    if call.accepted:
        return type(error)(f"{error} {call.accepted}")
    return error


def _translated(exc: AzureError, call: Call, budget: Budget | None) -> ArmError:
    s = call.settings
    if isinstance(exc, ClientAuthenticationError) and exc.response is None:
        # No HTTP response: the credential chain itself failed (not logged in, no identity available).
        settings = exc.settings if isinstance(exc, LoginRefused) else None
        if settings is not None and settings.method != "DefaultAzureCredential":
            advice = (
                "check the login settings named there (client ID, tenant, secret or certificate, or the federated "
                "credential's subject), in the stack's azure-native:* settings or the ARM_* variables"
            )
        else:
            advice = (
                "run `az login` (and `az account set` if needed), or set AZURE_CLIENT_ID/AZURE_TENANT_ID/"
                "AZURE_CLIENT_SECRET or a managed identity for DefaultAzureCredential, or the azure-native:* "
                "login settings / ARM_* variables azure-native uses"
            )
        return ArmUnreachable(
            f"could not {call.doing} {call.target}: no Azure access token could be obtained for {s.scope} "
            f"({quote_azure(exc.message)}). This is a login problem, not a network one: {advice}."
        )
    if isinstance(exc, HttpResponseError) and exc.status_code is not None:
        return _refused(exc, call)
    if isinstance(exc, ServiceRequestError):
        # The request never reached ARM: DNS, connection refused, proxy, or TLS trust.
        return ArmUnreachable(
            f"could not reach ARM at {s.endpoint} to {call.doing} {call.target}: {quote_azure(str(exc))}. This is a "
            "network problem, not a login one: check the endpoint, network and proxy settings, and TLS trust "
            "(REQUESTS_CA_BUNDLE)."
        )
    retried = budget is not None and budget.repeated > 0
    if isinstance(exc, ServiceResponseError) and is_reset(exc):
        again = (
            f"and kept doing so on every retry within the {bound_text(s)}"
            if retried
            else "and the request was not sent again"
        )
        return ArmUnreachable(
            f"ARM at {s.endpoint} closed (reset) the connection without answering, to {call.doing} {call.target}, "
            f"{again}: {quote_azure(str(exc))}. Something between here and ARM (proxy, firewall, NAT) drops the "
            "connection: check the network and run again; the operation is safe to repeat."
        )
    if isinstance(exc, ServiceResponseError):
        again = f"retried within the {bound_text(s)}" if retried else "the request was not sent again"
        return ArmUnreachable(
            f"ARM at {s.endpoint} did not answer in time to {call.doing} {call.target} (per-request bound "
            f"{s.request_timeout:g}s, {again}): {quote_azure(str(exc))}. Check the network and run again; the "
            "operation is safe to repeat."
        )
    return ArmError(
        f"could not {call.doing} {call.target}: {quote_azure(str(exc))}. Run again; if it persists, check ARM."
    )


def _refused(exc: HttpResponseError, call: Call) -> ArmError:
    """ARM answered with an error status."""
    s = call.settings
    code, message = azure_error_detail(exc)
    if exc.status_code == 404 and call.vm is not None:
        return VmNotFound(
            f"{call.vm} was not found in subscription {call.vm.subscription_id} ({code}): it was deleted or the "
            f"identity cannot see it. Check the VM resource ID {call.vm.id} and that the identity has at least "
            f"Reader on it. Azure said: {message}."
        )
    if exc.status_code == 401:
        return ArmAccessDenied(
            f"ARM at {s.endpoint} rejected the access token while trying to {call.doing} {call.target} "
            f"(401 {code}). Check that the token audience {s.scope} belongs to this endpoint and the login is "
            f"for the right tenant; run `az login` again if the session expired. Azure said: {message}."
        )
    if exc.status_code == 403:
        return ArmAccessDenied(
            f"Azure denied the request to {call.doing} {call.target} (403 {code}): the identity needs the "
            f"permission {call.permission} on it (grant a role that includes it, then run again). "
            f"Azure said: {message}."
        )
    return ArmError(
        f"Azure refused to {call.doing} {call.target} (HTTP {exc.status_code} {code}): {message}. "
        "Check the resource in the Azure portal and run again."
    )


@contextmanager
def arm_errors(call: Call, budget: Budget | None = None) -> Iterator[None]:
    """Translate what leaves the block (azure-core's and azure-identity's errors, throttling past the bound) into
    the `hooks.errors` type the user must act on. `budget`: the call's, so that the message says only what
    happened (e.g. whether a request that got no answer was sent again)."""
    try:
        yield
    except AzureError as exc:
        raise translate(exc, call, budget) from exc
    except Throttled as exc:
        # Throttling is ARM refusing work for now: the same category as unreachable (preview may only warn).
        b = exc.budget
        message = (
            f"ARM at {call.settings.endpoint} is throttling requests: to {call.doing} {call.target} this run waited "
            f"{b.elapsed:.0f}s, honouring Retry-After; ARM answered {b.throttled} throttled request(s) and asked to "
            f"wait {exc.retry_after:g}s more, longer than the {max(b.remaining, 0):.0f}s left of the "
            f"{bound_text(call.settings)}. Wait a few minutes and run again (the step is safe to repeat), or raise "
            f"{call.settings.bound_source}."
        )
        raise ArmUnreachable(f"{message} {call.accepted}".rstrip()) from None
