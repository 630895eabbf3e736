"""Subscription reads (GET only, bounded): its tenant, the locations it can use, and a resource provider's
registration on it. Raw requests (`request()`): the Microsoft.Resources subscription API has no client in the
packages this project depends on."""

from __future__ import annotations

from azure.core.credentials import TokenCredential
from azure.core.exceptions import HttpResponseError

from hooks.arm.errors import Call, arm_errors, azure_error_detail, tenant_of_refusal
from hooks.arm.session import request
from hooks.errors import ArmError
from hooks.targets import ArmSettings
from hooks.waiting import Deadline

SUBSCRIPTIONS_API_VERSION = "2022-12-01"
"""api-version for GET /subscriptions/{id} (the Microsoft.Resources subscriptions API)."""
LOCATIONS_API_VERSION = "2022-12-01"
"""api-version for GET /subscriptions/{id}/locations (Microsoft.Resources)."""
PROVIDERS_API_VERSION = "2021-04-01"
"""api-version for /subscriptions/{id}/providers/{namespace} (Microsoft.Resources)."""

PERMISSION_SUBSCRIPTION_READ = "Microsoft.Resources/subscriptions/read"
PERMISSION_PROVIDER_READ = "Microsoft.Resources/subscriptions/providers/read"


def get_subscription_tenant(
    settings: ArmSettings, subscription_id: str, credential: TokenCredential | None = None
) -> str:
    """The tenant (directory) id a subscription belongs to."""
    return read_subscription_tenant(settings, subscription_id, credential)[0]


def read_subscription_tenant(
    settings: ArmSettings, subscription_id: str, credential: TokenCredential | None = None
) -> tuple[str, bool]:
    """(the tenant id a subscription belongs to, True when ARM refused the login's token for it because the
    subscription is in another tenant than the token's, naming that tenant)."""
    target = f"subscription {subscription_id}"
    call = Call(settings, "read", target, PERMISSION_SUBSCRIPTION_READ)
    response = request(
        call,
        subscription_id,
        "GET",
        f"/subscriptions/{subscription_id}",
        params={"api-version": SUBSCRIPTIONS_API_VERSION},
        accept=(401, 404),
        credential=credential,
    )
    if response.status_code == 404:
        code, message = azure_error_detail(HttpResponseError(response=response))
        raise ArmError(
            f"{target} was not found ({code}): it does not exist or the identity has no role in it. "
            f"Check the subscription id and the login (`az account list`). Azure said: {message}."
        )
    other = tenant_of_refusal(response)
    if other is not None:
        return other, True  # a subscription of another tenant: ARM refuses our token, and names its tenant
    if response.status_code >= 400:
        with arm_errors(call):  # an answer, not a transport failure: nothing to say about retries
            raise HttpResponseError(response=response)
    body = response.json()
    tenant = body.get("tenantId") if isinstance(body, dict) else None
    if not isinstance(tenant, str) or not tenant:
        raise ArmError(f"ARM returned {target} without a tenantId. Run again.")
    return tenant, False


def list_locations(
    settings: ArmSettings, subscription_id: str, credential: TokenCredential | None = None
) -> frozenset[str]:
    """The locations a subscription can use, as region keys: short names, and display names without spaces,
    lowercased (`westeurope`), so both forms of a configured region compare."""
    target = f"the locations of subscription {subscription_id}"
    call = Call(settings, "read", target, PERMISSION_SUBSCRIPTION_READ)
    path = f"/subscriptions/{subscription_id}/locations"
    response = request(
        call, subscription_id, "GET", path, params={"api-version": LOCATIONS_API_VERSION}, credential=credential
    )
    body = response.json()
    entries = body.get("value") if isinstance(body, dict) else None
    if not isinstance(entries, list) or not entries:
        raise ArmError(f"ARM returned no locations for subscription {subscription_id}. Run again.")
    keys: set[str] = set()
    for entry in entries:
        if isinstance(entry, dict):
            for field_name in ("name", "displayName"):
                value = entry.get(field_name)
                if isinstance(value, str) and value:
                    keys.add(value.replace(" ", "").lower())
    return frozenset(keys)


def provider_registration_state(
    settings: ArmSettings, subscription_id: str, namespace: str, within: Deadline | None = None
) -> str:
    """A resource provider's registrationState on the subscription (Registered, NotRegistered, Registering, ...).
    `within`: the longer wait the read is part of, which bounds it too (WaitEnded when its end cut the read short:
    see `request`)."""
    target = f"resource provider {namespace} on subscription {subscription_id}"
    call = Call(settings, "read", target, PERMISSION_PROVIDER_READ)
    path = f"/subscriptions/{subscription_id}/providers/{namespace}"
    params = {"api-version": PROVIDERS_API_VERSION}
    body = request(call, subscription_id, "GET", path, params=params, within=within).json()
    state = body.get("registrationState") if isinstance(body, dict) else None
    return str(state or "NotRegistered")
