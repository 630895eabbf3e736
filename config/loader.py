"""`load`: the whole stack config, validated at once into a StackSpec, or one ConfigError listing every problem
with its key path (`images[0].versions[1].version: ...`). Each section has its reader module (config.gallery,
config.source_vms, config.images, config.versions); here they run in order, and the rules across sections follow.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import date
from typing import Any

from config.azure_login import LoginValues, principal_id_confusion, read_login
from config.constants import AZURE_NATIVE, BLANK_MEANS_UNSET, PUBLISHER_ROLES
from config.engine_values import stray_warning
from config.gallery import read_azure, read_gallery, read_publisher
from config.images import read_definition
from config.reader import Node, Shared
from config.source_vms import read_source_vms
from config.specs import ImageDefinitionSpec, PublisherSpec, SourceVmSpec, StackSpec
from hooks.errors import ConfigError


def load(
    raw: Mapping[str, Any],
    secret_keys: Iterable[str] = (),
    today: date | None = None,
    plain_paths: Iterable[str] | None = None,
    strays: Mapping[str, str] | None = None,
    stack: str | None = None,
) -> StackSpec:
    """Validate the project's config (keys without the `image-gallery:` prefix) into a StackSpec.

    `raw` may also hold keys of other namespaces under their full names (`azure-native:clientId`, as
    `parse_engine_values` keeps them): the azure-native login settings are checked too (config.azure_login).

    `secret_keys` names the top-level keys Pulumi holds encrypted (other namespaces' by their full names); a secret
    field (privateKey, password, passphrase) under any other key is reported, because it would sit in plaintext in
    `Pulumi.<stack>.yaml`.
    `plain_paths` (see `plain_leaf_paths`), when the stack file could be read, checks each secret field on its
    own: Pulumi encrypts a whole top-level key as soon as one field is `secure:`, which would hide a plaintext key
    beside it. `stack` (the stack being loaded) refuses a version promoted from that same stack. `strays` (see
    `stray_keys`) maps keys set in a misspelt namespace to how they were written, so that a
    missing required key points at them. Raises ConfigError listing every problem.
    """
    problems: list[str] = []
    today = today or date.today()
    secret_set = set(secret_keys)
    strays = strays or {}
    foreign = {k: v for k, v in raw.items() if ":" in k}
    values = {k: v for k, v in raw.items() if ":" not in k and not (k in BLANK_MEANS_UNSET and v == "")}
    shared = Shared(frozenset(plain_paths) if plain_paths is not None else None, stack=stack)
    root = Node(values, "", problems, secret_ok=False, shared=shared)
    shared.allow_unknown_regions = root.boolean("allowUnknownRegions", False)

    gallery = read_gallery(root)
    shared.marketplace = gallery.marketplace if gallery is not None else True
    login = read_login(foreign, shared, problems, secret_set)
    publisher = read_publisher(root)
    azure = replace(read_azure(root), allow_unknown_regions=shared.allow_unknown_regions)
    source_node = root.child("sourceVms")
    if source_node is not None:
        source_node.secret_ok = "sourceVms" in secret_set
    source_vms = read_source_vms(source_node)
    definitions = [(n.path, read_definition(n, source_vms, today)) for n in root.items("images", True)]
    images = [d for _, d in definitions if d]
    root.done()

    _check_uniqueness([(path, d) for path, d in definitions if d], problems)
    _check_source_reuse(images, problems)
    _check_identities(publisher, login, source_vms, problems)
    warnings = [stray_warning(full) for full in strays.values()] + shared.warnings
    for i, p in enumerate(problems):
        key = p.partition(":")[0]
        if key in strays and p.startswith(f"{key}: is required"):
            problems[i] = f"{p} ({stray_warning(strays[key])})"
    if problems:
        raise ConfigError(problems)
    assert gallery is not None
    sources = {k: v for k, v in source_vms.items() if v}
    return StackSpec(gallery, tuple(images), publisher, azure, sources, tuple(warnings))


def _check_uniqueness(images: list[tuple[str, ImageDefinitionSpec]], problems: list[str]) -> None:
    by_name: dict[str, str] = {}
    by_ident: dict[tuple[str, str, str], str] = {}
    for path, d in images:
        if d.name.lower() in by_name:
            problems.append(f"{path}.name: {d.name!r} is used by {by_name[d.name.lower()]} too")
        by_name.setdefault(d.name.lower(), path)
        ident = (d.publisher.lower(), d.offer.lower(), d.sku.lower())
        if ident in by_ident:
            problems.append(
                f"{path}.identifier: publisher/offer/sku {d.publisher}/{d.offer}/{d.sku} is already used by "
                f"{by_ident[ident]!r}; it must be unique within the gallery"
            )
        by_ident.setdefault(ident, d.name)


def _check_source_reuse(images: list[ImageDefinitionSpec], problems: list[str]) -> None:
    """A generalized VM can be captured many times, but only one chain may generalize it."""
    users: dict[str, list[str]] = {}
    for d in images:
        for v in d.versions:
            if d.os_state == "Generalized" and v.source_vm is not None:
                users.setdefault(v.source_vm.key, []).append(f"{d.name}/{v.version}")
    for key, who in users.items():
        if len(who) > 1:
            problems.append(
                f"sourceVms.{key}: generalized by more than one version ({', '.join(who)}); a VM is generalized "
                "once: capture it into one version, and build a new source VM for the next version"
            )


def _check_identities(
    publisher: PublisherSpec | None,
    login: LoginValues,
    source_vms: Mapping[str, SourceVmSpec | None],
    problems: list[str],
) -> None:
    """GUIDs that are easy to confuse: the publisher's object ID given as an application, tenant, subscription or
    role definition ID, the login's client ID given as its tenant ID. Offline, only what the stack itself names can
    be told apart (an object ID and an application ID look alike; preview's Graph lookups tell more)."""
    client, tenant, subscription = login.get("clientId"), login.get("tenantId"), login.get("subscriptionId")
    if client and tenant and client.lower() == tenant.lower():
        problems.append(
            f"{AZURE_NATIVE}:clientId: is the tenant ID ({AZURE_NATIVE}:tenantId); give the application (client) ID "
            "of the app registration the login uses"
        )
    if tenant and subscription and tenant.lower() == subscription.lower():
        problems.append(
            f"{AZURE_NATIVE}:tenantId: is the subscription ID ({AZURE_NATIVE}:subscriptionId); give the tenant ID "
            "(`az account show --query tenantId -o tsv`)"
        )
    if publisher is None or publisher.principal_id is None:
        return
    tenants = [(t, f"{AZURE_NATIVE}:tenantId") for t in (tenant,) if t]
    tenants += [(t, "publisherTenantId") for t in (publisher.tenant_id,) if t]
    subscriptions = [(s, f"{AZURE_NATIVE}:subscriptionId") for s in (subscription,) if s]
    subscriptions += [(v.vm.subscription_id, f"sourceVms.{k}.id") for k, v in source_vms.items() if v]
    known = [
        (p.object_id, f"the object ID of Partner Center's {p.display_name!r} (partnerCenterPrincipalIds.{p.key})")
        for p in publisher.principals
        if p.object_id is not None
    ]
    known += [(guid, f"the role definition ID of {role}") for role, guid in PUBLISHER_ROLES.items()]
    what = principal_id_confusion(publisher.principal_id, login, tenants, subscriptions, known)
    if what is None:
        return
    how = {
        "ServicePrincipal": "`az ad sp show --id <application ID> --query id -o tsv` gives a service principal's",
        "Group": "`az ad group show --group <name> --query id -o tsv` gives a group's",
        "User": "`az ad user show --id <user@domain> --query id -o tsv` gives a user's",
    }.get(publisher.principal_type, "`az ad sp show` / `az ad user show` / `az ad group show --query id` give the")
    advice = f"{how} object ID"
    if "Partner Center" in what:
        advice = (
            "with publisherAccess: partnerCenterServicePrincipals that principal gets its role already: remove "
            "publisherPrincipalId, or give your publisher account's object ID"
        )
    problems.append(
        f"publisherPrincipalId: {publisher.principal_id} is {what}, not the object ID of the user, group or service "
        f"principal that gets {publisher.role} on the gallery; {advice}"
    )
