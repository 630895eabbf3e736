"""The stack's top-level keys: the gallery (`gallery*`, `marketplace`), Partner Center's access to it
(`publisher*`, `graphEndpoint`) and how the imperative side reaches ARM (`arm*`, `onArmUnreachable`,
`parallelHosts`)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import urlsplit

from config.azure_login import scope_problem
from config.constants import (
    HOST_NAME,
    MAX_PARALLEL_HOSTS,
    PARTNER_CENTER_PRINCIPALS,
    PRINCIPAL_TYPES,
    PUBLIC_CLOUD_GRAPH,
    PUBLISHER_ACCESS,
    PUBLISHER_ROLES,
    RESOURCE_GROUP_NAME,
)
from config.reader import MISSING, Node, read_guid, read_region, warn_unquoted_date
from config.specs import AzureSpec, GallerySpec, PartnerCenterPrincipalSpec, PublisherSpec
from hooks.targets import ON_ARM_UNREACHABLE, PUBLIC_CLOUD_ARM

# Microsoft.Compute/galleries: 1-80, alphanumerics, underscores and periods, start and end with alphanumeric.
_GALLERY_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9_.]{0,78}[A-Za-z0-9])?$")
# Tags: https://learn.microsoft.com/azure/azure-resource-manager/management/tag-resources#limitations
# At most 50 per resource; names up to 512 and values up to 256 characters; no `< > % & \ ? /` in names.
_MAX_TAGS, _MAX_TAG_NAME, _MAX_TAG_VALUE = 50, 512, 256
_TAG_NAME_FORBIDDEN = set("<>%&\\?/")
# What follows ARM's host in a request, never in the endpoint: resource paths and API versions (2024-03-03, v1.0).
_ARM_PATH_ROOTS = frozenset(("subscriptions", "providers", "tenants", "resourcegroups", "metadata", "locations"))
_API_VERSION = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}(-preview)?|v[0-9]+(\.[0-9]+)?|beta", re.IGNORECASE)


def read_gallery(root: Node) -> GallerySpec | None:
    name = root.string("galleryName", None, required=True)
    if name is not None and not _GALLERY_NAME.fullmatch(name):
        root.problem(
            "galleryName",
            f"{name!r} is not a valid gallery name: use 1-80 letters, digits, '_' or '.', "
            "starting and ending with a letter or digit",
        )
        name = None
    rg = root.string(
        "galleryResourceGroup",
        None,
        RESOURCE_GROUP_NAME,
        "is not a valid resource group name (1-90 letters, digits, '_', '-', '.', '(', ')'; not ending with '.')",
        True,
    )
    location = read_region(root, "galleryLocation", required=True)
    description = root.string("galleryDescription", "")
    tags_raw = root.raw("galleryTags")
    tags: dict[str, str] = {}
    if tags_raw is not MISSING and tags_raw is not None:
        if isinstance(tags_raw, Mapping) and all(isinstance(v, str) for v in tags_raw.values()):
            tags = {str(k): v for k, v in tags_raw.items()}
            _check_tags(root, tags)
        else:
            root.problem("galleryTags", "must be a map of strings")
    marketplace = root.boolean("marketplace", True)
    if name is None or rg is None or location is None:
        return None
    return GallerySpec(name, rg, location, description, tags, marketplace)


def _partner_center_principals(root: Node, access: str | None) -> tuple[PartnerCenterPrincipalSpec, ...] | None:
    """`partnerCenterPrincipalIds`: per principal (PARTNER_CENTER_PRINCIPALS' keys), its object ID in this tenant,
    instead of the lookup by display name. None when the map has a problem (already reported)."""
    node = root.child("partnerCenterPrincipalIds")
    if node is None:
        return tuple(PartnerCenterPrincipalSpec(k, n) for k, n in PARTNER_CENTER_PRINCIPALS.items())
    if access != "partnerCenterServicePrincipals":
        root.problem("partnerCenterPrincipalIds", "is only used with publisherAccess: partnerCenterServicePrincipals")
        return None
    before = len(root.problems)
    found = tuple(
        PartnerCenterPrincipalSpec(k, n, read_guid(node, k, None)) for k, n in PARTNER_CENTER_PRINCIPALS.items()
    )
    node.done()
    return found if len(root.problems) == before else None


def _check_tags(root: Node, tags: Mapping[str, str]) -> None:
    """Azure's tag limits (see _MAX_TAGS): ARM would refuse the gallery only at `pulumi up`."""
    if len(tags) > _MAX_TAGS:
        root.problem("galleryTags", f"has {len(tags)} tags; Azure allows at most {_MAX_TAGS}")
    for name, value in tags.items():
        at = f"galleryTags.{name}"
        if not name.strip():
            root.problems.append(f"{at}: a tag name must not be empty")
        if len(name) > _MAX_TAG_NAME:
            root.problems.append(f"{at}: the tag name has {len(name)} characters; Azure allows {_MAX_TAG_NAME}")
        bad = sorted(set(name) & _TAG_NAME_FORBIDDEN)
        if bad:
            root.problems.append(f"{at}: a tag name must not contain {' '.join(bad)} (Azure refuses < > % & \\ ? /)")
        if len(value) > _MAX_TAG_VALUE:
            root.problems.append(f"{at}: the value has {len(value)} characters; Azure allows {_MAX_TAG_VALUE}")
        warn_unquoted_date(root, at, value)


def read_publisher(root: Node) -> PublisherSpec | None:
    """Partner Center's access: the publisher's role (when publisherPrincipalId is set) and, with publisherAccess
    partnerCenterServicePrincipals, the first-party service principals' reader role and the provider registration."""
    principal_id = read_guid(root, "publisherPrincipalId", None)
    principal_type = root.choice("publisherPrincipalType", PRINCIPAL_TYPES, "User")
    role = root.choice("publisherRole", PUBLISHER_ROLES, "Owner")
    tenant_id = read_guid(root, "publisherTenantId", None)
    access = root.choice("publisherAccess", PUBLISHER_ACCESS, "owner")
    graph = root.string("graphEndpoint", PUBLIC_CLOUD_GRAPH)
    problem = _endpoint_problem(graph)
    path = urlsplit(graph).path.strip("/") if not problem else ""
    if path:
        # The checks request {graph}/v1.0/servicePrincipals(...): a path here is doubled (404, "not in the tenant").
        problem = (
            f"has a path (/{path}): the checks add /v1.0/... themselves; write {_origin(graph)!r}, the endpoint alone"
        )
    if problem:
        root.problem("graphEndpoint", f"{graph!r} {problem.replace('ARM tokens', 'Graph tokens')}")
        graph = PUBLIC_CLOUD_GRAPH
    principal_given = root.raw("publisherPrincipalId") not in (MISSING, None)
    principals = _partner_center_principals(root, access)
    if access == "partnerCenterServicePrincipals":
        if principal_type is None or (principal_given and principal_id is None) or principals is None:
            return None
        return PublisherSpec(principal_id, principal_type, role, tenant_id, access, graph.rstrip("/"), principals)
    if principal_id is None or principal_type is None:
        if tenant_id is not None and not principal_given:
            root.problem(
                "publisherTenantId",
                "is only used with publisherPrincipalId (set both or neither) or with publisherAccess: "
                "partnerCenterServicePrincipals",
            )
        return None
    return PublisherSpec(principal_id, principal_type, role, tenant_id, access, graph.rstrip("/"))


def read_azure(root: Node) -> AzureSpec:
    endpoint = root.string("armEndpoint", PUBLIC_CLOUD_ARM)
    problem = _endpoint_problem(endpoint) or _arm_path_problem(root, endpoint)
    if problem:
        root.problem("armEndpoint", f"{endpoint!r} {problem}")
        endpoint = PUBLIC_CLOUD_ARM
    audience = root.string("armAudience", None)
    if audience is not None and (problem := scope_problem(audience)):
        root.problem("armAudience", problem)
        audience = None
    return AzureSpec(
        arm_endpoint=endpoint.rstrip("/"),
        audience=audience,
        # Declared integer in Pulumi.yaml: the CLI refuses 2.5 there, so the plan does too.
        poll_interval_seconds=root.integer("armPollIntervalSeconds", 15, 1, 3600),
        operation_timeout_minutes=root.integer("armOperationTimeoutMinutes", 30, 1, 7 * 24 * 60),
        on_arm_unreachable=root.choice("onArmUnreachable", ON_ARM_UNREACHABLE, "fail"),
        parallel_hosts=root.integer("parallelHosts", 0, 0, MAX_PARALLEL_HOSTS),
    )


def _endpoint_problem(endpoint: str) -> str | None:
    """Why an ARM endpoint is unusable, or None: ARM tokens are only ever sent to an https URL with a host."""
    try:
        url = urlsplit(endpoint)
        url.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError as exc:
        return f"is not a well-formed URL ({exc})"
    if url.scheme != "https":
        return "must be an https:// URL (ARM tokens are never sent over http)"
    if not url.hostname or not HOST_NAME.fullmatch(url.hostname) or any(c.isspace() for c in endpoint):
        return "must be an https:// URL with a host name, e.g. https://management.azure.com"
    if url.username or url.password or url.query or url.fragment:
        return "must be a plain https://host[:port][/path] URL (no credentials, query or fragment)"
    return None


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _arm_path_problem(root: Node, endpoint: str) -> str | None:
    """A path after ARM's host: a resource path or an API version is refused (the VM steps add both themselves, so
    they would be doubled); any other path is warned about (a proxy may serve ARM below a path)."""
    segments = [s for s in urlsplit(endpoint).path.split("/") if s]
    if not segments:
        return None
    path = "/".join(segments)
    if segments[0].lower() in _ARM_PATH_ROOTS or any(_API_VERSION.fullmatch(s) for s in segments):
        return (
            f"has a path (/{path}): the VM steps add ARM's resource paths and api-version themselves; write "
            f"{_origin(endpoint)!r}, the endpoint alone"
        )
    root.shared.warnings.append(
        f"armEndpoint: {endpoint!r} has a path (/{path}): every ARM request goes below it; keep it only for a proxy "
        f"that serves ARM there, else write {_origin(endpoint)!r}"
    )
    return None
