"""`load`: the whole stack config, validated at once into a StackSpec, or one ConfigError listing every problem
with its key path (`images[0].versions[1].version: ...`). Each section has its reader module (config.gallery,
config.source_vms, config.images, config.versions); here they run in order, and the rules across sections follow.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import date
from typing import Any

from config.constants import BLANK_MEANS_UNSET
from config.engine_values import stray_warning
from config.gallery import read_azure, read_gallery, read_publisher
from config.images import read_definition
from config.reader import Node, Shared
from config.source_vms import read_source_vms
from config.specs import ImageDefinitionSpec, StackSpec
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

    `secret_keys` names the top-level keys Pulumi holds encrypted; a secret field (privateKey, password,
    passphrase) under any other key is reported, because it would sit in plaintext in `Pulumi.<stack>.yaml`.
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
    values = {k: v for k, v in raw.items() if not (k in BLANK_MEANS_UNSET and v == "")}
    shared = Shared(frozenset(plain_paths) if plain_paths is not None else None, stack=stack)
    root = Node(values, "", problems, secret_ok=False, shared=shared)
    shared.allow_unknown_regions = root.boolean("allowUnknownRegions", False)

    gallery = read_gallery(root)
    shared.marketplace = gallery.marketplace if gallery is not None else True
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
