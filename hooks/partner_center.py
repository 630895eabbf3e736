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
from hooks.errors import ArmAccessDenied, ArmError, ArmUnreachable, PartnerCenterPrincipalMissing, WaitTimeout
from hooks.log import Log
from hooks.targets import ArmSettings
from hooks.waiting import Deadline

PERMISSION_PROVIDER_REGISTER = "Microsoft.Resources/subscriptions/providers/register/action"  # any */register/action
GRAPH_REQUEST_TIMEOUT = 10.0
MICROSOFT_SERVICES_TENANT = "f8cdef31-a31e-4b4a-93e4-5f571e91255a"
"""The tenant that owns Microsoft's first-party applications ("Microsoft Services"), as a service principal's
`appOwnerOrganizationId` names it: https://learn.microsoft.com/troubleshoot/azure/active-directory/verify-first-party-apps-sign-in
A look-alike registered by anyone else under the same display name has another owner."""

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
    """A service principal found in the tenant, with the tenant that owns its application."""

    object_id: str
    app_id: str
    display_name: str
    owner_tenant: str | None
    """`appOwnerOrganizationId`: the tenant where its application is registered (Microsoft's for first-party)."""


def find_partner_center_principal(
    graph_endpoint: str,
    display_name: str,
    config_key: str,
    namespace: str,
    configured_object_id: str | None = None,
    settings: ArmSettings | None = None,
) -> ServicePrincipal:
    """Partner Center's service principal called `display_name`: the configured object ID when one is given
    (`config_key`), else the one principal of that name owned by Microsoft. Raises PartnerCenterPrincipalMissing,
    saying what to register or configure, when there is none."""
    if configured_object_id is None:
        found = principals_named(graph_endpoint, display_name, settings)
        return microsoft_owned(display_name, found, config_key, graph_endpoint, namespace)
    principal = principal_by_id(graph_endpoint, configured_object_id, settings)
    if principal is None:
        raise PartnerCenterPrincipalMissing(
            f"{config_key}: {configured_object_id} is not a service principal in this tenant (Microsoft Graph "
            f'{graph_endpoint} answered 404). Fix: `az ad sp list --display-name "{display_name}" --query "[].id"` '
            f"gives its object ID; or remove {config_key} to look it up by name"
        )
    return principal


def principals_named(
    graph_endpoint: str, display_name: str, settings: ArmSettings | None = None
) -> list[ServicePrincipal]:
    """Every service principal of the tenant with this display name (read-only):
    GET {graph}/v1.0/servicePrincipals?$filter=displayName eq '…', as Microsoft's own snippet does
    (`az ad sp list --display-name …`). List servicePrincipals:
    https://learn.microsoft.com/graph/api/serviceprincipal-list ; displayName supports $filter (eq) and
    appOwnerOrganizationId names the application's owner tenant:
    https://learn.microsoft.com/graph/api/resources/serviceprincipal . `settings` (timeouts) default to
    ArmSettings's."""
    literal = display_name.replace("'", "''")  # an OData string literal doubles its quotes
    target = f'the service principals named "{display_name}" in Microsoft Graph'
    body = _graph_get(
        graph_endpoint, "/v1.0/servicePrincipals", {"$filter": f"displayName eq '{literal}'"}, target, settings
    )
    values = body.get("value") if body is not None else None
    if not isinstance(values, list):
        raise ArmError(f"Microsoft Graph answered {target} without a list of principals. Run again.")
    return [_principal(v, target) for v in values if isinstance(v, dict)]


def principal_by_id(
    graph_endpoint: str, object_id: str, settings: ArmSettings | None = None
) -> ServicePrincipal | None:
    """GET {graph}/v1.0/servicePrincipals/{object ID} (read-only); None when the tenant has no such principal."""
    target = f"the service principal {object_id} in Microsoft Graph"
    body = _graph_get(graph_endpoint, f"/v1.0/servicePrincipals/{quote(object_id, safe='')}", {}, target, settings)
    return None if body is None else _principal(body, target)


def microsoft_owned(
    display_name: str, found: list[ServicePrincipal], config_key: str, graph_endpoint: str, namespace: str
) -> ServicePrincipal:
    """The one principal among `found` whose application Microsoft's first-party tenant owns; anything else is a
    look-alike anyone could register under the same name, and is refused."""
    owned = [p for p in found if (p.owner_tenant or "").lower() == MICROSOFT_SERVICES_TENANT]
    if len(owned) == 1:
        return owned[0]
    if len(owned) > 1:
        ids = ", ".join(p.object_id for p in owned)
        raise PartnerCenterPrincipalMissing(
            f'Microsoft Graph ({graph_endpoint}) lists {len(owned)} service principals named "{display_name}" owned by '
            f"Microsoft's tenant {MICROSOFT_SERVICES_TENANT} (object IDs {ids}); the checks cannot tell which one "
            f"Partner Center uses. Fix: set {config_key} to the right object ID."
        )
    refused = "".join(
        f"; refused {p.object_id} (application {p.app_id}), owned by tenant {p.owner_tenant or 'unknown'}, not by "
        "Microsoft"
        for p in found
    )
    raise PartnerCenterPrincipalMissing(missing_message(display_name, config_key, graph_endpoint, namespace) + refused)


def missing_message(display_name: str, config_key: str, graph_endpoint: str, namespace: str) -> str:
    """What to do when the tenant has no service principal of Partner Center's under this name: Microsoft's
    guidance registers the resource provider on the subscription, which brings its principals into the tenant."""
    return (
        f'this tenant has no service principal named "{display_name}" owned by Microsoft (appOwnerOrganizationId '
        f"{MICROSOFT_SERVICES_TENANT}) in Microsoft Graph ({graph_endpoint}), so Partner Center cannot be granted "
        "Compute Gallery Image Reader on the gallery. Fix: register the resource provider on the gallery's "
        f"subscription (`az provider register --namespace {namespace} --subscription <id>`; this check "
        "runs before the stack's own registration), wait until `az provider show --namespace "
        f"{namespace} --query registrationState` says Registered and `az ad sp list --display-name "
        f'"{display_name}" --query "[].{{id:id,owner:appOwnerOrganizationId}}"` lists it, then run again; if the '
        f"name differs in this tenant, set {config_key} to its object ID; or use publisherAccess: owner"
    )


def _principal(body: dict[str, object], target: str) -> ServicePrincipal:
    if not body.get("id"):
        raise ArmError(f"Microsoft Graph returned {target} without an id. Run again.")
    owner = body.get("appOwnerOrganizationId")
    return ServicePrincipal(
        str(body["id"]), str(body.get("appId") or ""), str(body.get("displayName") or ""), str(owner) if owner else None
    )


def _graph_get(
    graph_endpoint: str, path: str, params: dict[str, str], target: str, settings: ArmSettings | None
) -> dict[str, object] | None:
    """One read-only GET in Microsoft Graph; None on 404; the expected failures as the hooks' errors."""
    graph = replace(settings or ArmSettings(), endpoint=graph_endpoint.rstrip("/"), audience=None)
    token = _graph_token(graph, target)
    timeout = min(graph.request_timeout, GRAPH_REQUEST_TIMEOUT)
    try:
        response = requests.get(
            f"{graph.endpoint}{path}",
            params={**params, "$select": "id,appId,displayName,appOwnerOrganizationId"},
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
    if not isinstance(body, dict):
        raise ArmError(f"Microsoft Graph answered {target} with something other than an object. Run again.")
    return body


def _graph_token(graph: ArmSettings, target: str) -> str:
    """A token for Graph's audience from the process-wide login (one credential chain for ARM and Graph)."""
    return arm.access_token(graph, target)
