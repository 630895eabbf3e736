"""What the program creates in Azure, as recovery looks for it: where each azure-native resource lives (the ID the
program gives it), whether ARM has it, and whether ARM's resource is the one this stack was creating."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from azure.core.credentials import TokenCredential

from commands.recover.errors import RecoverError
from commands.recover.state import VERSION_TOKEN, is_special
from hooks import arm
from hooks.regions import region_key
from hooks.targets import ArmSettings

SUBSCRIPTION_ENV = ("ARM_SUBSCRIPTION_ID", "AZURE_SUBSCRIPTION_ID")
"""Where azure-native takes the subscription from when its provider config has none."""
PROVIDER_PREFIX = "pulumi:providers:"


@dataclass(frozen=True)
class AzureType:
    """An azure-native resource type the program declares: where its ID comes from and what must match."""

    token: str
    what: str
    """How messages name it."""
    path: str
    """The resource ID with `{input}` placeholders (azure-native builds it the same way from the inputs)."""
    api_version: str
    permission: str
    """What a 403 on the GET names."""
    identity: tuple[str, ...]
    """Dotted input paths Azure must report as the program has them, else the resource is not this stack's:
    what cannot change in place (a version's source, a definition's identifier and OS) or names the grant."""

    @property
    def placeholders(self) -> list[str]:
        return re.findall(r"{(\w+)}", self.path)


_GALLERY = "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Compute/galleries"
AZURE_TYPES = {
    t.token: t
    for t in (
        AzureType(
            "azure-native:compute:Gallery",
            "gallery",
            _GALLERY + "/{galleryName}",
            "2024-03-03",
            "Microsoft.Compute/galleries/read",
            ("location",),
        ),
        AzureType(
            "azure-native:compute:GalleryImage",
            "image definition",
            _GALLERY + "/{galleryName}/images/{galleryImageName}",
            "2024-03-03",
            "Microsoft.Compute/galleries/images/read",
            (
                "location",
                "osType",
                "osState",
                "hyperVGeneration",
                "architecture",
                "identifier.publisher",
                "identifier.offer",
                "identifier.sku",
            ),
        ),
        AzureType(
            VERSION_TOKEN,
            "image version",
            _GALLERY + "/{galleryName}/images/{galleryImageName}/versions/{galleryImageVersionName}",
            "2024-03-03",
            arm.PERMISSION_IMAGE_VERSION_READ,
            ("location", "storageProfile.source"),
        ),
        AzureType(
            "azure-native:authorization:RoleAssignment",
            "role assignment",
            "{scope}/providers/Microsoft.Authorization/roleAssignments/{roleAssignmentName}",
            "2022-04-01",
            "Microsoft.Authorization/roleAssignments/read",
            ("principalId", "roleDefinitionId"),
        ),
    )
}


def resource_id(kind: AzureType, inputs: Mapping[str, Any], subscription_id: str | None) -> str:
    """The ID the program gives the resource: its path with the create's inputs (azure-native's own rule)."""
    values: dict[str, str] = {}
    for name in kind.placeholders:
        value = subscription_id if name == "subscriptionId" else inputs.get(name)
        if not isinstance(value, str) or not value:
            raise RecoverError(
                f"the pending {kind.what} has no {name} in its inputs (found {shown(value)}): cannot tell where "
                "it would be in Azure"
            )
        values[name] = value.strip("/") if name == "scope" else value
    path = kind.path.format(**values)
    return path if path.startswith("/") else "/" + path


def subscription_in(rid: str) -> str:
    """The subscription an ARM ID names ("" for one above subscriptions)."""
    match = re.match(r"^/subscriptions/([^/]+)", rid, re.IGNORECASE)
    return match[1] if match else ""


def subscription_finder(
    resources: Sequence[Mapping[str, Any]], environ: Mapping[str, str]
) -> Callable[[Mapping[str, Any]], str | None]:
    """A resource's subscription as azure-native has it: its provider's `subscriptionId`, else ARM_SUBSCRIPTION_ID
    (or AZURE_SUBSCRIPTION_ID)."""
    providers = {
        f"{r.get('urn')}::{r.get('id')}": r for r in resources if str(r.get("type", "")).startswith(PROVIDER_PREFIX)
    }

    def find(resource: Mapping[str, Any]) -> str | None:
        provider = providers.get(str(resource.get("provider", "")))
        configured = ((provider or {}).get("inputs") or {}).get("subscriptionId")
        if isinstance(configured, str) and configured:
            return configured
        return next((environ[name] for name in SUBSCRIPTION_ENV if environ.get(name)), None)

    return find


def read(
    settings: ArmSettings, credential: TokenCredential, kind: AzureType, rid: str, subscription_id: str
) -> Mapping[str, Any] | None:
    """ARM's answer for the resource at `rid`; None when it is not there (404)."""
    call = arm.Call(settings, "read", f"the {kind.what} {rid}", kind.permission)
    response = arm.request(
        call,
        subscription_id,
        "GET",
        rid,
        params={"api-version": kind.api_version},
        accept=(404,),
        credential=credential,
    )
    if response.status_code == 404:
        return None
    body = response.json()
    return body if isinstance(body, dict) else {}


# --- is ARM's resource the stack's? ----------------------------------------------------------------------------


def flatten(body: Mapping[str, Any]) -> dict[str, Any]:
    """ARM's answer in the inputs' shape: `properties` lifted to the top level (as azure-native's outputs are)."""
    top = {k: v for k, v in body.items() if k != "properties"}
    return {**top, **dict(body.get("properties") or {})}


def differences(kind: AzureType, inputs: Mapping[str, Any], found: Mapping[str, Any]) -> list[str]:
    """The identity properties where Azure's resource is not what the program asks for (those both name)."""
    out = []
    for path in kind.identity:
        wanted, have = _at(inputs, path), _at(found, path)
        if wanted is None or have is None or is_special(wanted):
            continue
        if _comparable(wanted) != _comparable(have):
            out.append(f"{path} is {shown(have)} in Azure, {shown(wanted)} in the program")
    return out


def shown(value: Any) -> str:
    """A value for a message: a source by its ID, text as it is, anything else as JSON."""
    if isinstance(value, Mapping):
        source = value.get("virtualMachineId") or value.get("id")
        if source is not None:
            return str(source)
    return json.dumps(value) if not isinstance(value, str) else value


def _at(values: Mapping[str, Any], dotted: str) -> Any:
    value: Any = values
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def _comparable(value: Any) -> Any:
    """Azure's spelling aside: case, spaces ("West Europe" is westeurope), a role by its GUID, a source by its ID."""
    if isinstance(value, Mapping):
        source = value.get("virtualMachineId") or value.get("id")
        return _comparable(source) if source is not None else {k: _comparable(v) for k, v in value.items()}
    if isinstance(value, str):
        text = region_key(value)
        return text.rsplit("/", 1)[-1] if "/providers/microsoft.authorization/roledefinitions/" in text else text
    return value
