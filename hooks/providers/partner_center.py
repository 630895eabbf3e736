"""The dynamic resources of Partner Center's access to the gallery (hooks/partner_center.py does the work).

`ProviderRegistration`: the Microsoft.PartnerCenterIngestion resource provider registered on the gallery's
subscription, declared like any other resource (azure-native 3 has no resource for a subscription's provider
registration). Create registers it, read reads its state, delete leaves it registered: other deployments of the
subscription may rely on it.

`PartnerCenterServicePrincipal`: one of Partner Center's first-party service principals, looked up in Microsoft
Graph (GET only) in `check`, by the display name Microsoft publishes and owned by Microsoft's tenant, or by the
object ID configured for it, so `pulumi preview` says when it is missing from the tenant. Its object ID is the
principal of a Compute Gallery Image Reader role assignment on the gallery."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pulumi
from pulumi.dynamic import CheckFailure, CheckResult, CreateResult, DiffResult, ReadResult

from hooks.errors import ArmError
from hooks.providers.base import DynamicProvider, DynamicResource, arm_settings, known, log_for, user_facing

if TYPE_CHECKING:
    from hooks.partner_center import ServicePrincipal

REGISTRATION_OUTPUTS = ("subscription_id", "namespace", "registration_state", "resource_name")
PRINCIPAL_OUTPUTS = ("object_id", "app_id", "owner_tenant", "display_name", "resource_name")


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
    """Finds one of Partner Center's service principals by display name, owned by Microsoft, or by its configured
    object ID (read-only, in preview and up)."""

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        from hooks.errors import PartnerCenterPrincipalMissing

        graph = news.get("graph_endpoint")
        if not (isinstance(graph, str) and known(graph) and known(news.get("configured_object_id"))):
            return CheckResult(news, [])
        log = log_for(news, "service principal")
        try:
            found = self._find(news)
        except PartnerCenterPrincipalMissing as exc:
            return CheckResult(news, [CheckFailure("display_name", f"{news.get('config_path')}: {exc}")])
        except ArmError as exc:
            message = f"{news.get('config_path')}: not checked (Partner Center's service principals): {exc}"
            if news.get("on_unreachable") == "warn":
                log.warn(f"{message} onArmUnreachable is warn: continuing.")
                return CheckResult(news, [])
            return CheckResult(news, [CheckFailure("display_name", message)])
        log.info(partner_center_found(found, news))
        return CheckResult({**news, "object_id": found.object_id}, [])

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        keys = ("display_name", "configured_object_id", "object_id")
        changed = [k for k in keys if news.get(k) is not None and olds.get(k) != news.get(k)]
        return DiffResult(changes=bool(changed), replaces=changed, delete_before_replace=False)

    def create(self, props: dict[str, Any]) -> CreateResult:
        log = log_for(props, "service principal")
        found = user_facing(log, lambda: self._find(props))
        log.info(partner_center_found(found, props))
        outs = {
            "object_id": found.object_id,
            "app_id": found.app_id,
            "owner_tenant": found.owner_tenant,
            "display_name": props.get("display_name"),
            "resource_name": props.get("resource_name"),
        }
        return CreateResult(id_=found.object_id, outs=outs)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        return ReadResult(id_=id_, outs={k: props.get(k) for k in PRINCIPAL_OUTPUTS})

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        """Nothing to delete: the service principal belongs to the tenant, not to this stack."""

    def _find(self, props: dict[str, Any]) -> ServicePrincipal:
        from hooks import partner_center

        configured = props.get("configured_object_id")
        return partner_center.find_partner_center_principal(
            str(props["graph_endpoint"]),
            str(props["display_name"]),
            str(props.get("config_key") or "partnerCenterPrincipalIds"),
            str(props.get("namespace") or "Microsoft.PartnerCenterIngestion"),
            str(configured) if configured else None,
            arm_settings(props, self.login_settings()),
        )


def partner_center_found(found: ServicePrincipal, props: dict[str, Any]) -> str:
    """The log line naming what was found: both IDs, and how (configured or by name)."""
    how = f"configured in {props.get('config_key')}" if props.get("configured_object_id") else "found by name"
    return (
        f'"{props.get("display_name")}" {how}: application ID {found.app_id or "unknown"}, object ID '
        f"{found.object_id}, owner tenant {found.owner_tenant or 'unknown'}"
    )


class ProviderRegistration(DynamicResource, module="partnercenter", name="ProviderRegistration"):
    """A resource provider namespace registered on a subscription (left registered on delete)."""

    PROVIDER = ProviderRegistrationProvider
    OUTPUTS = REGISTRATION_OUTPUTS

    registration_state: pulumi.Output[str]


class PartnerCenterServicePrincipal(DynamicResource, module="partnercenter", name="PartnerCenterServicePrincipal"):
    """One of Partner Center's first-party service principals in the tenant, found by display name and owner."""

    PROVIDER = PartnerCenterServicePrincipalProvider
    OUTPUTS = PRINCIPAL_OUTPUTS

    object_id: pulumi.Output[str]
