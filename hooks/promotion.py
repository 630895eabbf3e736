"""Promotion checks: compare a source image version with the version it is promoted into, in `pulumi preview`
and again right before the version is created.

A promoted version is a copy Azure makes of another gallery image version (`storageProfile.source.id`): no VM,
no guest, nothing generalized. Azure refuses the copy only when the version is created; the rules here say why
before that, each with the config key to change. Like hooks/preflight/: small pure rules over facts read
through ARM (GET only, bounded), `run_checks` to read and compare, `require_match` for the create path. The
`VersionPromotion` dynamic resource (hooks/providers/promotion.py) runs them: its `check` in preview and up, its
`create` before the version.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from hooks.errors import ArmError, ArmUnreachable, PromotionMismatch
from hooks.log import Log
from hooks.login import AUXILIARY_TENANTS, LoginSettingsError, stack_key
from hooks.regions import region_key
from hooks.targets import ArmSettings, GalleryRef, ImageVersionRef

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

    from hooks.arm import ImageDefinitionFacts, SharedLogin, VersionSourceFacts
    from hooks.preflight import Mismatch

# azure-* is imported inside the functions: the program process imports this module (through the provider's) to
# declare the resource, and only the dynamic provider host runs the checks.

T = TypeVar("T")

CHECK_DESCRIPTIONS: tuple[str, ...] = (
    "first, when the source is in another subscription (or the gallery is not known yet): source and gallery are "
    "in one tenant (GET both subscriptions; ARM names a subscription's tenant even when it refuses the token), or "
    "the source's tenant is one of the auxiliary tenants (azure-native:auxiliaryTenantIds / "
    "ARM_AUXILIARY_TENANT_IDS), whose token Azure needs in x-ms-authorization-auxiliary to copy across tenants; the "
    "source is then read with a token of its own tenant",
    "the source version exists, its provisioning succeeded, and its replication to the gallery's region (where "
    "Azure reads the copy from) has completed (GET the version with $expand=ReplicationStatus)",
    "its image definition matches the target definition: osType, osState, hyperVGeneration, architecture, "
    "securityType (GET the source definition)",
    "the source version is not past its end-of-life date",
    "the target version number is free, or already holds this same source (GET the version, once the gallery ID "
    "is known)",
)
"""What the offline plan prints for a promoted version, in the order `run_checks` reports problems."""

DEFINITION_FIELDS = (
    ("os_type", "osType"),
    ("os_state", "osState"),
    ("hyper_v_generation", "hyperVGeneration"),
    ("architecture", "architecture"),
    ("security_type", "securityType"),
)


@dataclass(frozen=True)
class PromotionTarget:
    """The promoted version as configured, and the config key paths to name in messages.

    Built from the inputs of `VersionPromotion` (components.promoted_image_version)."""

    definition_name: str
    definition: Mapping[str, str]
    """os_type, os_state, hyper_v_generation, architecture, security_type of the target definition."""
    version: str
    location: str
    """The gallery's region: the version is created there, and Azure reads the source's replica there."""
    gallery: GalleryRef | None
    """None until the gallery's ID is known (first preview of a new stack)."""
    source_label: str
    """e.g. "stack dev: ubuntu-2204 1.0.0" or "version /subscriptions/…"."""
    on_arm_unreachable: str = "fail"
    definition_path: str = "images[?]"
    version_path: str = "images[?].versions[?]"
    source_path: str = "images[?].versions[?].sourceVersion"
    source_key: str = "id"
    """The key under sourceVersion that names the source: `id` or `version` (with `stack`)."""

    @classmethod
    def from_props(cls, props: Mapping[str, Any]) -> PromotionTarget:
        """Parse the inputs; raises ValueError if malformed. A gallery ID of None (not known yet) becomes None."""
        try:
            t, paths, source = props["target"], props.get("paths") or {}, props.get("source") or {}
            gallery_id = t.get("gallery_id")
            return cls(
                definition_name=str(t["definition"]["name"]),
                definition={k: str(t["definition"][k]) for k, _ in DEFINITION_FIELDS},
                version=str(t["version"]),
                location=str(t["location"]),
                gallery=GalleryRef.parse(str(gallery_id)) if gallery_id else None,
                source_label=str(source.get("label") or "the source version"),
                on_arm_unreachable=str(props.get("on_arm_unreachable") or "fail"),
                definition_path=str(paths.get("definition") or cls.definition_path),
                version_path=str(paths.get("version") or cls.version_path),
                source_path=str(paths.get("source") or cls.source_path),
                source_key="version" if source.get("stack") else "id",
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"the promotion input is incomplete ({exc!r} missing or malformed)") from exc

    @property
    def source_config_key(self) -> str:
        return f"{self.source_path}.{self.source_key}"

    @property
    def definition_label(self) -> str:
        return f"image definition {self.definition_name} ({self.definition_path})"


def _mismatch(path: str, message: str, cause: ArmError | None = None) -> Mismatch:
    from hooks.preflight import Mismatch

    return Mismatch(path, message, "source_id", cause=cause)


# --- the rules (pure) ----------------------------------------------------------------------------------------


def check_source_exists(
    source: ImageVersionRef, facts: VersionSourceFacts | None, t: PromotionTarget
) -> Mismatch | None:
    if facts is not None:
        return None
    return _mismatch(
        t.source_config_key,
        f"the source {source} ({t.source_label}) does not exist, or the identity cannot see it; Azure would refuse "
        f"the copy (source not found). Fix: check {t.source_config_key}, that the source version was not deleted, and "
        "that the identity has Reader on its gallery.",
    )


def check_source_provisioned(source: ImageVersionRef, facts: VersionSourceFacts, t: PromotionTarget) -> Mismatch | None:
    if (facts.provisioning_state or "").lower() == "succeeded":
        return None
    return _mismatch(
        t.source_config_key,
        f"Azure reports the source {source} in provisioning state {facts.provisioning_state or 'unknown'}, not "
        "Succeeded; only a finished version can be copied. Fix: wait until its creation finished (or fix the "
        "failed version in the stack that owns it), then run again.",
    )


def check_replication(source: ImageVersionRef, facts: VersionSourceFacts, t: PromotionTarget) -> Mismatch | None:
    """The copy is read from the source's replica in the gallery's region: it must exist and be complete."""
    wanted = region_key(t.location)
    entry = next((r for r in facts.replication if region_key(r.region) == wanted), None)
    if entry is not None and entry.state.lower() == "completed":
        return None
    listed = ", ".join(f"{r.region} {r.state}" for r in facts.replication) or "none reported"
    if entry is None:
        return _mismatch(
            t.source_config_key,
            f"the source {source} has no replica in {t.location}, the region of this gallery, where Azure reads the "
            f"copy from (its replication: {listed}). Fix: add {t.location} to the source version's targetRegions in "
            "the stack that owns it, `pulumi up` there, and run again once that replication completed.",
        )
    progress = f" ({entry.progress}%)" if entry.progress is not None else ""
    return _mismatch(
        t.source_config_key,
        f"the replication of the source {source} to {t.location} is {entry.state}{progress}, not Completed; Azure "
        "copies only a completed replica. Fix: wait until it completes (`make replication STACK=<source stack>` "
        "shows the progress), then run again.",
    )


def _past(iso: str | None, now: datetime) -> bool:
    if not iso:
        return False
    try:
        moment = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return False
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment <= now


def check_end_of_life(
    source: ImageVersionRef,
    facts: VersionSourceFacts,
    definition: ImageDefinitionFacts | None,
    t: PromotionTarget,
    now: datetime,
) -> Mismatch | None:
    if _past(facts.end_of_life_date, now):
        what, date = "version", facts.end_of_life_date
    elif definition is not None and _past(definition.end_of_life_date, now):
        what, date = f"image definition {source.image}", definition.end_of_life_date
    else:
        return None
    return _mismatch(
        t.source_config_key,
        f"the source {source} is past its end-of-life date: its {what} ended on {str(date)[:10]}; promoting it would "
        f"publish an image already retired. Fix: promote a newer version in {t.source_config_key}, or move the "
        "endOfLifeDate forward in the stack that owns it.",
    )


def compare_definitions(
    source: ImageVersionRef, definition: ImageDefinitionFacts, t: PromotionTarget
) -> list[Mismatch]:
    """Every property Azure requires equal between the source's definition and the target definition."""
    found: list[Mismatch] = []
    for attr, key in DEFINITION_FIELDS:
        theirs, ours = str(getattr(definition, attr)), t.definition[attr]
        if theirs.lower() == ours.lower():
            continue
        found.append(
            _mismatch(
                f"{t.definition_path}.{key}",
                f"the source {source} belongs to image definition {source.image} with {key} {theirs}, but "
                f"{t.definition_label} has {key} {ours}; Azure would refuse the copy (definition mismatch). Fix: set "
                f"{t.definition_path}.{key} to {theirs} (Azure does not change an existing definition's {key}: use a "
                f"new definition name if it exists), or promote a version of a definition with {key} {ours}.",
            )
        )
    return found


def check_target_free(
    source: ImageVersionRef, existing: VersionSourceFacts | None, t: PromotionTarget
) -> Mismatch | None:
    """A version that already exists must hold this same source (a re-run); its source cannot change."""
    if existing is None or (existing.source_id and source.same_as(existing.source_id)):
        return None
    gallery = t.gallery.name if t.gallery else "the gallery"
    return _mismatch(
        f"{t.version_path}.version",
        f"image version {t.version} of {t.definition_name} already exists in gallery {gallery} with source "
        f"{existing.source_id or 'unknown'}, not {source.id}; a version's source cannot change "
        f"(PropertyChangeNotAllowed). Fix: give this promotion a version number not used yet in "
        f"{t.version_path}.version, or point {t.source_config_key} back at the version it was promoted from.",
    )


def check_tenant(
    source: ImageVersionRef,
    source_tenant: str,
    gallery: GalleryRef | None,
    gallery_tenant: str | None,
    auxiliary: tuple[str, ...],
    auxiliary_source: str,
    t: PromotionTarget,
) -> Mismatch | None:
    """A source in another tenant can be copied only with a token of its tenant in x-ms-authorization-auxiliary:
    its tenant must be one of the auxiliary tenants, which azure-native (and these checks) get tokens for.
    `gallery_tenant` None: the gallery is not known yet, and ARM refused the login's token for the source's
    subscription (the gallery is made with that login, so it is in the login's tenant)."""
    same = gallery_tenant is not None and source_tenant.lower() == gallery_tenant.lower()
    if same or source_tenant.lower() in auxiliary:
        return None
    listed = ", ".join(auxiliary) if auxiliary else "none"
    key = stack_key(AUXILIARY_TENANTS)
    if gallery is not None and gallery_tenant is not None:
        target = f"the gallery {gallery.name} is in subscription {gallery.subscription_id} of tenant {gallery_tenant}"
    else:
        target = (
            "ARM refuses the login's token for that subscription: the login, and the gallery it creates, are in "
            "another tenant"
        )
    return _mismatch(
        t.source_config_key,
        f"the source {source} is in subscription {source.subscription_id} of tenant {source_tenant}, but {target}. "
        "A copy across tenants needs a token of the source's tenant in Azure's auxiliary-tenant header "
        f"(x-ms-authorization-auxiliary), and tenant {source_tenant} is not an auxiliary tenant ({auxiliary_source}: "
        f"{listed}). Fix: add it to {key} (`pulumi config set --path '{key}[0]' {source_tenant}`, or "
        f"""ARM_AUXILIARY_TENANT_IDS='["{source_tenant}"]'), with the identity present in that tenant and Reader on """
        "the source's gallery there; or promote from a gallery in this tenant.",
    )


# --- reading and running -------------------------------------------------------------------------------------


class _Reads:
    """The reads of one check: bounded like the capture-time checks, one login, and the first unreachable ARM
    makes the later reads fail at once instead of each waiting out its own timeout."""

    def __init__(self, settings: ArmSettings, credential: SharedLogin, t: PromotionTarget) -> None:
        from hooks import preflight

        self.settings = replace(
            settings,
            request_timeout=min(settings.request_timeout, preflight.REQUEST_TIMEOUT),
            operation_timeout=min(settings.operation_timeout, preflight.CALL_TIMEOUT),
            max_retries=preflight.MAX_RETRIES,
        )
        self.credential = credential
        self.target = t
        self.unreachable: ArmUnreachable | None = None
        self.done: list[str] = []
        self.problems: list[Mismatch] = []

    def read(self, what: str, path: str, fetch: Callable[[ArmSettings], T]) -> tuple[bool, T | None]:
        """(True, value), or (False, None) with a "not checked" problem recorded."""
        try:
            if self.unreachable is not None:
                raise ArmUnreachable("skipped, because an earlier read of this check could not reach ARM or log in.")
            value = fetch(self.settings)
        except ArmError as exc:
            if isinstance(exc, ArmUnreachable):
                self.unreachable = self.unreachable or exc
            self.problems.append(_mismatch(path, f"not checked ({what}): {exc}", cause=exc))
            return False, None
        self.done.append(f"{what}: GET")
        return True, value


def run_checks(
    settings: ArmSettings,
    source: ImageVersionRef,
    t: PromotionTarget,
    log: Log,
    login: SharedLogin | None = None,
    now: datetime | None = None,
) -> list[Mismatch]:
    """Every promotion check of one version: reads through ARM (GET only) and returns the problems. A check that
    could not run is a problem with `cause` set under onArmUnreachable `fail`, a warning under `warn`. The reads
    share one login: `login`, else one made with `settings.login`."""
    from hooks import arm

    now = now or datetime.now(UTC)
    started = time.monotonic()
    with contextlib.nullcontext(login) if login is not None else arm.SharedLogin(settings.login) as shared:
        reads = _Reads(settings, shared, t)
        problems = reads.problems
        reader = _source_reader(reads, shared, source, t)
        if reader is None:  # in another tenant, and not an auxiliary one: nothing of the source can be read
            return _finish(problems, reads, t, log, started)
        what, source_credential = reader
        ok, facts = reads.read(
            f"source version{what}",
            t.source_config_key,
            lambda s: arm.get_version_source(s, source, credential=source_credential),
        )
        missing = check_source_exists(source, facts, t) if ok else None
        if missing is not None:
            problems.append(missing)
        definition_ok, definition = reads.read(
            f"source definition{what}",
            t.source_config_key,
            lambda s: arm.get_image_definition(
                s,
                source.subscription_id,
                source.resource_group,
                source.gallery,
                source.image,
                credential=source_credential,
            ),
        )
        if facts is not None:
            for rule in (check_source_provisioned, check_replication):
                found = rule(source, facts, t)
                if found is not None:
                    problems.append(found)
        if definition is not None:
            problems.extend(compare_definitions(source, definition, t))
        elif definition_ok and missing is None:
            problems.append(_mismatch(t.source_config_key, f"the image definition of the source {source} is gone."))
        if facts is not None:
            eol = check_end_of_life(source, facts, definition, t, now)
            if eol is not None:
                problems.append(eol)

        if t.gallery is None:
            log.info(
                f"{t.version_path}: the gallery's ID is not known yet (new stack); whether version {t.version} "
                "exists already, and the gallery's tenant, are checked once it is"
            )
        else:
            gallery = t.gallery
            ok, existing = reads.read(
                "target version",
                f"{t.version_path}.version",
                lambda s: arm.get_version_source(
                    s,
                    ImageVersionRef(
                        gallery.subscription_id, gallery.resource_group, gallery.name, t.definition_name, t.version
                    ),
                    credential=shared,
                ),
            )
            if ok:
                found = check_target_free(source, existing, t)
                if found is not None:
                    problems.append(found)

    return _finish(problems, reads, t, log, started)


def _source_reader(
    reads: _Reads, shared: SharedLogin, source: ImageVersionRef, t: PromotionTarget
) -> tuple[str, TokenCredential] | None:
    """How to read the source: (a note for the log, the credential). A source in another subscription has its
    tenant read first (ARM names it even when it refuses our token); in another tenant that is an auxiliary one,
    the source is read with a token of that tenant. None (a problem recorded): another tenant, not an auxiliary
    one, so nothing of the source can be read."""
    from hooks import arm

    try:
        auxiliary = shared.settings.auxiliary_tenants()
    except LoginSettingsError as exc:
        reads.problems.append(_mismatch(t.source_config_key, f"{exc}"))
        auxiliary = ()
    gallery = t.gallery
    if gallery is not None and source.subscription_id.lower() == gallery.subscription_id.lower():
        return "", shared
    _, found_tenant = reads.read(
        "source subscription",
        t.source_config_key,
        lambda s: arm.read_subscription_tenant(s, source.subscription_id, credential=shared),
    )
    if found_tenant is None:
        return "", shared
    source_tenant, refused = found_tenant
    gallery_tenant = None
    if gallery is not None:
        _, gallery_tenant = reads.read(
            "gallery subscription",
            t.source_config_key,
            lambda s: arm.get_subscription_tenant(s, gallery.subscription_id, credential=shared),
        )
        if gallery_tenant is None:
            return "", shared
    elif not refused:
        return "", shared  # the gallery is not known yet (first preview); the login's token is good for the source
    found = check_tenant(source, source_tenant, gallery, gallery_tenant, auxiliary, shared.settings.auxiliary_source, t)
    if found is not None:
        reads.problems.append(found)
        return None
    if gallery_tenant is not None and source_tenant.lower() == gallery_tenant.lower():
        return "", shared
    return f" (a token of tenant {source_tenant}, an auxiliary tenant)", arm.TenantLogin(shared, source_tenant)


def _finish(problems: list[Mismatch], reads: _Reads, t: PromotionTarget, log: Log, started: float) -> list[Mismatch]:
    from hooks.preflight import apply_unreachable_policy

    kept = apply_unreachable_policy(problems, t.on_arm_unreachable, log, "continuing without this check.")
    verdict = f"{len(kept)} problem(s)" if kept else "no mismatch"
    log.info(
        f"promotion checks of {t.version_path} ({t.source_label}): {verdict} in {time.monotonic() - started:.2f}s "
        f"({'; '.join(reads.done) or 'no reads'})"
    )
    return kept


def require_match(
    settings: ArmSettings, source: ImageVersionRef, t: PromotionTarget, log: Log, now: datetime | None = None
) -> None:
    """The create path: the same checks, read afresh; raises PromotionMismatch listing every problem, or the ARM
    error type when the checks could only not run (hooks.preflight `raise_problems`, as for a capture)."""
    from hooks.preflight import raise_problems

    raise_problems(
        run_checks(settings, source, t, log, now=now),
        PromotionMismatch,
        f"{t.source_label} cannot be promoted into {t.definition_label}, version {t.version} ({t.version_path})",
        f"the promotion checks of {t.version_path}",
        "nothing was created",
    )


# --- state compatibility -------------------------------------------------------------------------------------

_MOVED = {"VersionPromotionProvider": "hooks.providers.promotion"}
"""Names pickled into existing states under this module (the provider lived here) → where they live now. The state
keeps each dynamic resource's provider by reference in its `__provider` input, and delete and refresh unpickle it;
resolved on first use, so this module itself imports no Pulumi."""


def __getattr__(name: str) -> Any:
    module = _MOVED.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
