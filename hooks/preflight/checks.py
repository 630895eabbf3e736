"""Running the capture-time checks of one version: read what the rules need (concurrently, after one login),
apply every rule, and say what was found; `require_match` is the create path's verdict."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from hooks.arm import VmFacts, VmStatus
from hooks.errors import ArmError, CaptureMismatch, VmNotFound
from hooks.log import Log
from hooks.preflight.outcome import apply_unreachable_policy, raise_problems
from hooks.preflight.reads import CACHE_TTL, CHECK_BUDGET, CheckReader
from hooks.preflight.rules import (
    check_existing_version,
    check_publisher_tenant,
    check_regions_exist,
    compare_vm,
    data_disk_note,
    data_disks_line,
)
from hooks.preflight.target import PUBLISHER_TENANT_PATH, CaptureTarget, Mismatch
from hooks.targets import ArmSettings, GalleryRef, VmRef


def _not_checked(path: str, what: str, exc: ArmError, input: str = "capture") -> Mismatch:
    """A check that could not run, said so distinctly from a mismatch. hooks.arm's message already tells a
    network failure, a login failure, a rejected token (401) and a missing permission (403, named) apart."""
    return Mismatch(path, f"not checked ({what}): {exc}", input, cause=exc)


def run_checks(
    settings: ArmSettings,
    vm: VmRef,
    target: CaptureTarget,
    log: Log,
    *,
    max_age: float = CACHE_TTL,
    budget: float = CHECK_BUDGET,
) -> list[Mismatch]:
    """Every capture-time check of one version: reads through ARM (GET only) and returns the problems.

    A check that could not run (ARM unreachable, login failed, access denied) is a problem with `cause` set under
    `on_arm_unreachable: fail`, and only a warning in `log` under `warn`. `max_age` 0 reads everything afresh
    (the create path); the default shares VM and subscription reads made by other checks moments ago."""
    return _run_checks(settings, vm, target, log, max_age, budget)[0]


def _run_checks(
    settings: ArmSettings, vm: VmRef, target: CaptureTarget, log: Log, max_age: float, budget: float
) -> tuple[list[Mismatch], VmFacts | None]:
    """`run_checks`, also returning the VM's facts when they could be read.

    The VM, the existing version and the gallery's subscription are read concurrently (each bounded), after one
    login: a check costs the slowest read, not the sum."""
    t = target
    started = time.monotonic()
    reader = CheckReader(settings, log, max_age, budget)
    reader.login()
    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="capture-check") as pool:
        vm_read = pool.submit(_vm_checks, reader, vm, t)
        gallery_read = pool.submit(_gallery_checks, reader, vm, t.gallery, t) if t.gallery is not None else None
        region_read = pool.submit(_region_checks, reader, vm, t) if not t.allow_unknown_regions else None
        vm_problems, facts = vm_read.result()
        problems = [*vm_problems, *(gallery_read.result() if gallery_read is not None else [])]
        region_problems = region_read.result() if region_read is not None else []
        # One unreachable ARM is reported by the reads above already; its locations read adds nothing to say.
        if not (any(p.unverified for p in problems) and all(p.unverified for p in region_problems)):
            problems.extend(region_problems)
    if t.gallery is None:
        log.info(
            f"{t.version_path}: the gallery's ID is not known yet (new stack); whether version {t.version} "
            "exists already, and the gallery's tenant, are checked once it is"
        )

    kept = apply_unreachable_policy(
        problems, t.on_arm_unreachable, log, "continuing without this check; Azure may still refuse the capture later."
    )
    mismatches = sum(1 for p in problems if not p.unverified)
    unverified = len(problems) - mismatches
    verdict = f"{mismatches} mismatch(es)" if mismatches else "no mismatch"
    if unverified:
        verdict += f", {unverified} not checked"
    log.info(
        f"capture-time checks of {t.version_path} ({vm}): {verdict} in {time.monotonic() - started:.2f}s "
        f"({'; '.join(sorted(reader.done)) or 'no reads'})"
    )
    return kept, facts


def _vm_checks(reader: CheckReader, vm: VmRef, t: CaptureTarget) -> tuple[list[Mismatch], VmFacts | None]:
    try:
        facts = reader.vm_facts(vm)
    except VmNotFound as exc:
        return [Mismatch(f"{t.source_vm_path}.id", str(exc), input="vm_id")], None
    except ArmError as exc:
        return [_not_checked(f"{t.source_vm_path}.id", f"{vm} against {t.definition_path}", exc, "vm_id")], None
    reader.log.info(data_disks_line(vm, facts, t))
    note = data_disk_note(vm, facts, t)
    if note is not None:
        reader.log.warn(note)
    return compare_vm(vm, facts, t), facts


def _region_checks(reader: CheckReader, vm: VmRef, t: CaptureTarget) -> list[Mismatch]:
    # The version lives in the gallery's subscription; before its ID is known, the VM's stands in (usually the same).
    subscription_id = t.gallery.subscription_id if t.gallery is not None else vm.subscription_id
    try:
        locations = reader.locations(subscription_id)
    except ArmError as exc:
        return [
            _not_checked(f"{t.version_path}.targetRegions", f"the locations of subscription {subscription_id}", exc)
        ]
    return check_regions_exist(subscription_id, locations, t)


def _gallery_checks(reader: CheckReader, vm: VmRef, gallery: GalleryRef, t: CaptureTarget) -> list[Mismatch]:
    problems: list[Mismatch] = []
    try:
        existing = reader.image_version(gallery, t)
    except ArmError as exc:
        problems.append(_not_checked(f"{t.version_path}.version", f"whether version {t.version} exists", exc))
    else:
        found = check_existing_version(vm, existing, t)
        if found is not None:
            problems.append(found)
    if t.publisher_tenant_id is not None:
        try:
            tenant = reader.subscription_tenant(gallery.subscription_id)
        except ArmError as exc:
            problems.append(_not_checked(PUBLISHER_TENANT_PATH, "the tenant of the gallery's subscription", exc))
        else:
            found = check_publisher_tenant(gallery, tenant, t)
            if found is not None:
                problems.append(found)
    return problems


def require_match(settings: ArmSettings, vm: VmRef, target: CaptureTarget, log: Log) -> VmStatus | None:
    """The create path: the same checks with fresh reads; raises CaptureMismatch listing every mismatch, or the
    ARM error type when checks could only not run. When everything matches, returns the VM's status from the
    same read (None when it could not be read and `onArmUnreachable` is warn), so the caller need not read the
    VM again."""
    problems, facts = _run_checks(settings, vm, target, log, 0.0, CHECK_BUDGET)
    raise_problems(
        problems,
        CaptureMismatch,
        f"{vm} cannot be captured into {target.definition_label}, version {target.version} ({target.version_path})",
        f"the capture-time checks of {target.version_path}",
        "nothing was changed",
    )
    return facts.status if facts is not None else None
