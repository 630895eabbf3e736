"""The `VersionPromotion` dynamic resource: the promotion checks of hooks/promotion.py, in `check` (preview and
up) and again in `create`, before the promoted version exists (its `source_id` output feeds the version)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pulumi
from pulumi.dynamic import CheckFailure, CheckResult, CreateResult, DiffResult, ReadResult, UpdateResult

from hooks.errors import ImageGalleryError
from hooks.promotion import PromotionTarget, require_match, run_checks
from hooks.providers.base import DynamicProvider, DynamicResource, arm_settings, fail, known, log_for
from hooks.targets import ImageVersionRef

PROMOTION_OUTPUTS = ("source_id", "checked_at")
REPLACE_KEYS = ("source_id",)


def _target(props: Mapping[str, Any]) -> PromotionTarget:
    """The parsed inputs (ValueError if malformed); a gallery ID not known yet (first preview) becomes None."""
    target = props.get("target")
    if isinstance(target, Mapping) and not known(target.get("gallery_id")):
        props = {**props, "target": {**target, "gallery_id": None}}
    return PromotionTarget.from_props(props)


def _not_exported(props: Mapping[str, Any], t: PromotionTarget) -> str:
    source = props.get("source") or {}
    exported = source.get("exported")
    listed = ", ".join(exported) if isinstance(exported, list) and exported else "nothing"
    return (
        f"{t.source_config_key}: stack {source.get('stack')} does not export {source.get('export_key')} in its "
        f"versionIds output (it exports: {listed}). Fix: `pulumi up` stack {source.get('stack')} first, or correct "
        f"{t.source_config_key}."
    )


def _source(props: Mapping[str, Any], t: PromotionTarget) -> ImageVersionRef:
    """The source version's reference; ValueError with the config key when there is none or it is malformed."""
    source_id = props.get("source_id")
    if not source_id:
        raise ValueError(_not_exported(props, t))
    try:
        return ImageVersionRef.parse(str(source_id))
    except ValueError as exc:
        raise ValueError(f"{t.source_config_key}: {exc}") from None


class VersionPromotionProvider(DynamicProvider):
    """Runs the promotion checks: in `check` (preview and up) and again in `create`, before the version exists."""

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        source_id = news.get("source_id")
        if not known(source_id) or not known({k: v for k, v in news.get("target", {}).items() if k != "gallery_id"}):
            return CheckResult(news, [])  # the other stack is not read yet (offline plan, first preview)
        try:
            t = _target(news)
            source = _source(news, t)
        except ValueError as exc:
            return CheckResult(news, [CheckFailure("source_id", str(exc))])
        if olds and all(olds.get(k) == news.get(k) for k in REPLACE_KEYS):
            # Promoted already from this very source: `create` will not run again, and the source may since have
            # reached its end of life or been deleted; nothing to check.
            return CheckResult(news, [])
        settings = arm_settings(news, self.login_settings())
        problems = run_checks(settings, source, t, log_for(news, "promotion"))
        return CheckResult(news, [CheckFailure(p.input, str(p)) for p in problems])

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replaces = [k for k in REPLACE_KEYS if olds.get(k) != news.get(k)]
        return DiffResult(changes=bool(replaces), replaces=replaces, delete_before_replace=False)

    def create(self, props: dict[str, Any]) -> CreateResult:
        log = log_for(props, "promotion")
        try:
            t = _target(props)
            source = _source(props, t)
            require_match(arm_settings(props, self.login_settings()), source, t, log)
        except (ValueError, ImageGalleryError) as exc:
            fail(log, str(exc))
        checked_at = datetime.now(UTC).isoformat()
        log.info(f"{t.source_label} may be promoted into {t.definition_name} {t.version}")
        return CreateResult(id_=f"{source.id}/promotion", outs={"source_id": source.id, "checked_at": checked_at})

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs={k: olds.get(k) for k in PROMOTION_OUTPUTS})

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        # A record of a check that passed: it stays valid when the source is later retired or deleted.
        return ReadResult(id_=id_, outs={k: props.get(k) for k in PROMOTION_OUTPUTS})

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        log_for(props, "promotion").info(
            f"removed from the stack; the source version {props.get('source_id')} was left untouched"
        )


class VersionPromotion(DynamicResource, module="promotion", name="VersionPromotion"):
    """Checks that a source image version can be promoted into the target definition; its `source_id` output
    feeds the version, so the version is never created before the checks passed."""

    PROVIDER = VersionPromotionProvider
    OUTPUTS = PROMOTION_OUTPUTS

    source_id: pulumi.Output[str]
    checked_at: pulumi.Output[str]
