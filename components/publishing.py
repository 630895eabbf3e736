"""The stack outputs a Partner Center publisher copies into a Marketplace plan's technical configuration.

Layer 2: specs and resource outputs -> plain output values; no resources."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pulumi

from config import StackSpec


def partner_center_outputs(stack: StackSpec, version_ids: Mapping[str, pulumi.Output[str]]) -> dict[str, Any]:
    """`versions`: per `definition/version`, `{tenantId, resourceId}` as the plan's technical configuration asks
    for an Azure Compute Gallery image (the tenant is publisherTenantId, which preview checks against the gallery's
    subscription; None when it is not set). `latestVersions`: per definition, the version Azure serves as latest
    (the highest not excluded from latest) and its resource ID."""
    tenant = stack.publisher.tenant_id if stack.publisher else None
    versions = {key: {"tenantId": tenant, "resourceId": rid} for key, rid in version_ids.items()}
    latest: dict[str, Any] = {}
    for d in stack.images:
        number = d.latest_version
        if number is not None and f"{d.name}/{number}" in version_ids:
            latest[d.name] = {"version": number, "resourceId": version_ids[f"{d.name}/{number}"]}
    return {"versions": versions, "latestVersions": latest}
