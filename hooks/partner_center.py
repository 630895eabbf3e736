"""Partner Center's access to the gallery, the imperative side: the registration of the
Microsoft.PartnerCenterIngestion resource provider on the gallery's subscription (ARM), and Partner Center's
first-party service principals in the tenant (Microsoft Graph, read-only). Plain functions, usable without Pulumi.

Calls go through the process-wide ARM session of hooks.arm (one login, one connection pool); Graph gets its own
token for its own audience from the same credential chain."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace
from urllib.parse import quote

import requests

from hooks import arm
from hooks.errors import ArmAccessDenied, ArmError, ArmUnreachable, WaitTimeout
from hooks.log import Log
from hooks.targets import ArmSettings
from hooks.waiting import Deadline

PERMISSION_PROVIDER_REGISTER = "Microsoft.Resources/subscriptions/providers/register/action"  # any */register/action
GRAPH_REQUEST_TIMEOUT = 10.0

registration_state = arm.provider_registration_state
"""The provider's registrationState on the subscription (Registered, NotRegistered, Registering, ...)."""


def register(settings: ArmSettings, subscription_id: str, namespace: str, log: Log) -> str:
    """Register the provider (POST .../register) unless it is, and wait (bounded) until Azure reports it
    Registered. Returns the final state."""
    state = registration_state(settings, subscription_id, namespace)
    if state.lower() == "registered":
        log.info(f"{namespace} is already registered on subscription {subscription_id}")
        return state
    target = f"resource provider {namespace} on subscription {subscription_id}"
    call = arm.Call(settings, "register", target, PERMISSION_PROVIDER_REGISTER)
    path = f"/subscriptions/{subscription_id}/providers/{namespace}/register"
    arm.request(call, subscription_id, "POST", path, params={"api-version": arm.PROVIDERS_API_VERSION})
    log.info(f"registering {namespace} on subscription {subscription_id} (was {state})")
    deadline = Deadline(settings.operation_timeout, f"{target} to be Registered")
    while True:
        # A read the end of the wait cuts short leaves `state` as last seen, for the timeout below.
        with contextlib.suppress(arm.WaitEnded):
            state = registration_state(settings, subscription_id, namespace, within=deadline)
        if state.lower() == "registered":
            log.info(f"{namespace} is registered on subscription {subscription_id}")
            return state
        if deadline.expired:
            raise WaitTimeout(
                f"{target} is still {state} after {settings.operation_timeout:g}s; Azure registers providers in "
                f"the background: run again later (raise {settings.bound_source} to wait longer)."
            )
        deadline.sleep(settings.poll_interval)


@dataclass(frozen=True)
class ServicePrincipal:
    """A service principal found in the tenant."""

    object_id: str
    app_id: str
    display_name: str


def find_service_principal(
    graph_endpoint: str, app_id: str, settings: ArmSettings | None = None
) -> ServicePrincipal | None:
    """GET {graph}/v1.0/servicePrincipals(appId='…') (read-only); None when the tenant has no service principal for
    that application. `settings` (timeouts) default to ArmSettings's."""
    graph = replace(settings or ArmSettings(), endpoint=graph_endpoint.rstrip("/"), audience=None)
    target = f"the service principal of application {app_id} in Microsoft Graph ({graph.endpoint})"
    token = _graph_token(graph, target)
    url = f"{graph.endpoint}/v1.0/servicePrincipals(appId='{quote(app_id, safe='')}')"
    timeout = min(graph.request_timeout, GRAPH_REQUEST_TIMEOUT)
    try:
        response = requests.get(
            url,
            params={"$select": "id,appId,displayName"},
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            timeout=timeout,
        )
    except requests.RequestException as exc:
        raise ArmUnreachable(
            f"could not read {target}: {type(exc).__name__} (no answer within {timeout:g}s or no connection). Check "
            "the network and graphEndpoint, and run again."
        ) from exc
    if response.status_code == 404:
        return None
    if response.status_code in (401, 403):
        raise ArmAccessDenied(
            f"could not read {target}: Microsoft Graph answered {response.status_code} "
            f"({arm.scrub_tokens(response.text[:300])}). The identity running pulumi needs to read service principals "
            "(members of the tenant can by default; a service principal needs the Application.Read.All Graph "
            "permission)."
        )
    if response.status_code >= 400:
        raise ArmError(f"could not read {target}: Microsoft Graph answered {response.status_code}. Run again.")
    body = response.json()
    if not isinstance(body, dict) or not body.get("id"):
        raise ArmError(f"Microsoft Graph returned {target} without an id. Run again.")
    return ServicePrincipal(str(body["id"]), str(body.get("appId") or app_id), str(body.get("displayName") or ""))


def _graph_token(graph: ArmSettings, target: str) -> str:
    """A token for Graph's audience from the process-wide login (one credential chain for ARM and Graph)."""
    return arm.access_token(graph, target)


def missing_message(display_name: str, app_id: str, graph_endpoint: str) -> str:
    """What to do when Partner Center's application has no service principal in the tenant."""
    return (
        f'Partner Center\'s application "{display_name}" (application ID {app_id}) has no service principal in this '
        f"tenant (Microsoft Graph {graph_endpoint} answered 404), so it cannot be granted Compute Gallery Image "
        f"Reader on the gallery. Fix: create it once (`az ad sp create --id {app_id}`, as a user allowed to add "
        "enterprise applications), or use publisherAccess: owner."
    )
