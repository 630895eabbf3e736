"""The dynamic resources of Partner Center's access to the gallery (hooks/partner_center.py does the work).

`ProviderRegistration`: the Microsoft.PartnerCenterIngestion resource provider registered on the gallery's
subscription, declared like any other resource (azure-native 3 has no resource for a subscription's provider
registration). Create registers it, read reads its state, delete leaves it registered: other deployments of the
subscription may rely on it.

`PartnerCenterServicePrincipal`: one of Partner Center's first-party service principals, looked up by application ID
in Microsoft Graph (GET only) in `check`, so `pulumi preview` says when it is missing from the tenant. Its object ID
is the principal of a Compute Gallery Image Reader role assignment on the gallery."""

from __future__ import annotations

from typing import Any

import pulumi
from pulumi.dynamic import CheckFailure, CheckResult, CreateResult, DiffResult, ReadResult

from hooks.errors import ArmError
from hooks.providers.base import DynamicProvider, DynamicResource, arm_settings, fail, known, log_for, user_facing

REGISTRATION_OUTPUTS = ("subscription_id", "namespace", "registration_state", "resource_name")
PRINCIPAL_OUTPUTS = ("object_id", "app_id", "display_name", "resource_name")


class ProviderRegistrationProvider(DynamicProvider):
    """Registers a resource provider namespace on a subscription; never unregisters it."""

    replace_keys = ("subscription_id", "namespace")

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replaces = [k for k in self.replace_keys if str(olds.get(k) or "").lower() != str(news.get(k) or "").lower()]
        return DiffResult(changes=bool(replaces), replaces=replaces, delete_before_replace=False)

    def create(self, props: dict[str, Any]) -> CreateResult:
        from hooks import partner_center

        log = log_for(props, "provider registration")
        sub, namespace = str(props["subscription_id"]), str(props["namespace"])
        settings = arm_settings(props, self.login_settings())
        state = user_facing(log, lambda: partner_center.register(settings, sub, namespace, log))
        outs = {
            "subscription_id": sub,
            "namespace": namespace,
            "registration_state": state,
            "resource_name": props.get("resource_name"),
        }
        return CreateResult(id_=f"/subscriptions/{sub}/providers/{namespace}", outs=outs)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        from hooks import partner_center

        log = log_for(props, "provider registration")
        sub, namespace = str(props["subscription_id"]), str(props["namespace"])
        settings = arm_settings(props, self.login_settings())
        state = user_facing(log, lambda: partner_center.registration_state(settings, sub, namespace))
        return ReadResult(
            id_=id_, outs={**{k: props.get(k) for k in REGISTRATION_OUTPUTS}, "registration_state": state}
        )

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        log_for(props, "provider registration").info(
            f"removed from the stack; {props.get('namespace')} stays registered on subscription "
            f"{props.get('subscription_id')} (unregister it by hand if nothing else needs it)"
        )


class PartnerCenterServicePrincipalProvider(DynamicProvider):
    """Looks a first-party service principal up by application ID (read-only, in preview and up)."""

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        from hooks import partner_center

        app_id, graph = news.get("app_id"), news.get("graph_endpoint")
        if not (isinstance(app_id, str) and isinstance(graph, str) and known(app_id) and known(graph)):
            return CheckResult(news, [])
        log = log_for(news, "service principal")
        try:
            found = partner_center.find_service_principal(graph, app_id, arm_settings(news, self.login_settings()))
        except ArmError as exc:
            message = f"{news.get('config_path')}: not checked (Partner Center's service principals): {exc}"
            if news.get("on_unreachable") == "warn":
                log.warn(f"{message} onArmUnreachable is warn: continuing.")
                return CheckResult(news, [])
            return CheckResult(news, [CheckFailure("app_id", message)])
        if found is None:
            missing = partner_center.missing_message(str(news.get("display_name")), app_id, graph)
            return CheckResult(news, [CheckFailure("app_id", f"{news.get('config_path')}: {missing}")])
        log.info(f'found "{found.display_name}" ({app_id}): object ID {found.object_id}')
        return CheckResult({**news, "object_id": found.object_id}, [])

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = [k for k in ("app_id", "object_id") if news.get(k) is not None and olds.get(k) != news.get(k)]
        return DiffResult(changes=bool(changed), replaces=changed, delete_before_replace=False)

    def create(self, props: dict[str, Any]) -> CreateResult:
        from hooks import partner_center

        log = log_for(props, "service principal")
        app_id, graph = str(props["app_id"]), str(props["graph_endpoint"])
        settings = arm_settings(props, self.login_settings())
        found = user_facing(log, lambda: partner_center.find_service_principal(graph, app_id, settings))
        if found is None:
            fail(log, partner_center.missing_message(str(props.get("display_name")), app_id, graph))
        outs = {
            "object_id": found.object_id,
            "app_id": app_id,
            "display_name": found.display_name or props.get("display_name"),
            "resource_name": props.get("resource_name"),
        }
        return CreateResult(id_=found.object_id, outs=outs)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        return ReadResult(id_=id_, outs={k: props.get(k) for k in PRINCIPAL_OUTPUTS})

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        """Nothing to delete: the service principal belongs to the tenant, not to this stack."""


class ProviderRegistration(DynamicResource, module="partnercenter", name="ProviderRegistration"):
    """A resource provider namespace registered on a subscription (left registered on delete)."""

    PROVIDER = ProviderRegistrationProvider
    OUTPUTS = REGISTRATION_OUTPUTS

    registration_state: pulumi.Output[str]


class PartnerCenterServicePrincipal(DynamicResource, module="partnercenter", name="PartnerCenterServicePrincipal"):
    """One of Partner Center's first-party service principals in the tenant, found by application ID."""

    PROVIDER = PartnerCenterServicePrincipalProvider
    OUTPUTS = PRINCIPAL_OUTPUTS

    object_id: pulumi.Output[str]
