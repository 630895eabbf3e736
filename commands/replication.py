"""Watch a stack's image versions replicate: a read-only companion to `pulumi up`.

Azure's capture call (the GalleryImageVersion create) returns only once the version is replicated to every
target region, which takes tens of minutes per region, and Pulumi shows nothing meanwhile. A watcher resource
inside Pulumi would hold one of the dynamic provider host's four worker threads for hours, so this runs next to
`pulumi up` instead (or afterwards). It reads `Pulumi.<stack>.yaml` (secrets are never decrypted), GETs each
declared version with `$expand=ReplicationStatus` and prints every target region's state and percent. It only
reads: it never writes anything to Azure.

    python -m commands.replication STACK [--subscription ID] [--watch] [--interval SECONDS] [--timeout MINUTES]
                                   [--format text|json]

Exit codes: 0 every version completed; 1 a version or region failed; 2 config, usage or ARM error; 3 not
finished within the bound (--timeout with --watch; without --watch, not finished now).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

import config
from commands.stack_file import ROOT, StackFileError, read_stack_config
from config import StackSpec
from hooks.arm import RegionReplication, ReplicationStatus, SharedLogin, get_replication_status
from hooks.errors import ArmError, ConfigError, WaitTimeout
from hooks.targets import ArmSettings, ImageVersionRef
from hooks.waiting import Deadline, poll

SUBSCRIPTION_KEY = "azure-native:subscriptionId"
SUBSCRIPTION_ENV = ("AZURE_SUBSCRIPTION_ID", "ARM_SUBSCRIPTION_ID")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")

EXIT_COMPLETED, EXIT_FAILED, EXIT_ERROR, EXIT_NOT_FINISHED = 0, 1, 2, 3


class UsageError(Exception):
    """The command cannot run as asked (stack, subscription); the message says what to set."""


@dataclass(frozen=True)
class Gallery:
    """Where the stack's gallery lives."""

    subscription_id: str
    resource_group: str
    name: str

    def __str__(self) -> str:
        return f"gallery {self.name} (resource group {self.resource_group}, subscription {self.subscription_id})"


@dataclass(frozen=True)
class WatchedVersion:
    """A version the stack declares, and the regions it is replicated to."""

    image: str
    version: str
    regions: tuple[str, ...]
    """Target regions as the config names them (`westeurope`)."""

    @property
    def label(self) -> str:
        return f"{self.image} {self.version}"


@dataclass(frozen=True)
class Progress:
    """One read of a version: its status, or None while it does not exist."""

    version: WatchedVersion
    status: ReplicationStatus | None

    @property
    def settled(self) -> bool:
        """Azure has finished with it: replication Completed or Failed, or the capture itself Failed."""
        s = self.status
        if s is None:
            return False
        if s.aggregated_state is None:  # an endpoint that reports no replication: the capture is the signal
            return s.provisioning_state in ("Succeeded", "Failed")
        return s.aggregated_state in ("Completed", "Failed") or s.provisioning_state == "Failed"

    @property
    def failures(self) -> list[str]:
        """What failed, with Azure's details: each failed region, or the version itself."""
        s = self.status
        if s is None:
            return []
        label = self.version.label
        found = [f"{label} in {r.region}: {r.details or 'no details'}" for r in self.regions() if r.state == "Failed"]
        if not found and "Failed" in (s.aggregated_state, s.provisioning_state):
            found.append(f"{label}: provisioning {s.provisioning_state}, replication {s.aggregated_state}")
        return found

    def regions(self) -> list[RegionReplication]:
        """The config's target regions in config order, matched with Azure's (display) names; regions Azure
        reports beyond them follow."""
        reported = {_region_key(r.region): r for r in (self.status.regions if self.status else ())}
        rows = []
        for name in self.version.regions:
            r = reported.pop(_region_key(name), None)
            rows.append(RegionReplication(name, r.state, r.progress, r.details) if r else _not_reported(name))
        return rows + list(reported.values())

    def headline(self) -> str:
        s = self.status
        if s is None:
            return f"{self.version.label}: not created yet"
        replication = s.aggregated_state or "not reported"
        return f"{self.version.label}: replication {replication}, provisioning {s.provisioning_state}"

    def brief(self) -> str:
        """One line for messages: the version and its unfinished regions."""
        if self.status is None:
            return f"{self.version.label} (not created yet)"
        busy = [f"{r.region} {r.state} {_percent(r.progress)}" for r in self.regions() if r.state != "Completed"]
        return f"{self.version.label} ({', '.join(busy) or self.status.aggregated_state})"

    def as_json(self) -> dict[str, Any]:
        s = self.status
        return {
            "image": self.version.image,
            "version": self.version.version,
            "exists": s is not None,
            "provisioningState": s.provisioning_state if s else None,
            "aggregatedState": s.aggregated_state if s else None,
            "regions": [
                {"region": r.region, "state": r.state, "progress": r.progress, "details": r.details}
                for r in (self.regions() if s else [])
            ],
        }


def _not_reported(region: str) -> RegionReplication:
    return RegionReplication(region, "Unknown", None, "not reported by Azure yet")


def _region_key(name: str) -> str:
    """Azure reports display names ("West Europe"); the config uses programmatic ones ("westeurope")."""
    return name.replace(" ", "").lower()


def _percent(progress: int | None) -> str:
    return "-" if progress is None else f"{progress}%"


def _region_line(r: RegionReplication) -> str:
    return f"{r.state} {_percent(r.progress)}" + (f" - {r.details}" if r.details else "")


# --- reading the stack ---------------------------------------------------------------------------------------


def load_stack(stack: str, root: Path) -> tuple[StackSpec, dict[str, str]]:
    """The validated stack (secrets masked, never decrypted) and its raw engine values."""
    try:
        project, values, secret_keys = read_stack_config(stack, root)
    except StackFileError as exc:
        raise UsageError(str(exc)) from exc
    except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
        raise UsageError(f"cannot read Pulumi.yaml / Pulumi.{stack}.yaml in {root}: {exc}") from exc
    own_secrets = [k.partition(":")[2] for k in secret_keys if k.startswith(f"{project}:")]
    return config.load(config.parse_engine_values(values, project), own_secrets), values


def resolve_subscription(stack: str, flag: str | None, values: dict[str, str]) -> str:
    """--subscription, else the stack's azure-native:subscriptionId, else AZURE_SUBSCRIPTION_ID/ARM_SUBSCRIPTION_ID."""
    candidates = [
        ("--subscription", flag),
        (f"{SUBSCRIPTION_KEY} in Pulumi.{stack}.yaml", values.get(SUBSCRIPTION_KEY)),
    ]
    candidates += [(name, os.environ.get(name)) for name in SUBSCRIPTION_ENV]
    source, value = next(((s, v) for s, v in candidates if v), ("", None))
    if value is None:
        raise UsageError(
            "no subscription for the gallery: pass --subscription ID, or set "
            f"`pulumi config set {SUBSCRIPTION_KEY} ID` in the stack, or export AZURE_SUBSCRIPTION_ID "
            "(or ARM_SUBSCRIPTION_ID)"
        )
    if value == "[secret]":  # how read_stack_config masks a `secure:` value
        raise UsageError(f"{source} is a secret and is not decrypted here: pass --subscription ID instead")
    if not _GUID.match(value):
        raise UsageError(f"{source} is {value!r}, not a subscription id (a GUID)")
    return value


def watched_versions(spec: StackSpec) -> list[WatchedVersion]:
    return [
        WatchedVersion(d.name, v.version, tuple(r.name for r in v.target_regions))
        for d in spec.images
        for v in d.versions
    ]


# --- reading Azure and printing ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reader:
    """Reads every declared version of the gallery (GET only), with one login for the whole run."""

    settings: ArmSettings
    gallery: Gallery
    versions: tuple[WatchedVersion, ...]
    login: SharedLogin

    def read(self) -> list[Progress]:
        g = self.gallery
        return [
            Progress(
                v,
                get_replication_status(
                    self.settings,
                    ImageVersionRef(g.subscription_id, g.resource_group, g.name, v.image, v.version),
                    credential=self.login,
                ),
            )
            for v in self.versions
        ]


def render_text(progress: list[Progress]) -> list[str]:
    lines = []
    for p in progress:
        lines.append(p.headline())
        rows = p.regions() if p.status else []
        width = max((len(r.region) for r in rows), default=0)
        for r in rows:
            details = f"  {r.details}" if r.details else ""
            lines.append(f"  {r.region:<{width}}  {r.state:<11} {_percent(r.progress):>4}{details}")
    return lines


def summary(progress: list[Progress]) -> str:
    counts = {
        "completed": sum(p.settled and not p.failures for p in progress),
        "failed": sum(bool(p.failures) for p in progress),
        "in progress": sum(p.status is not None and not p.settled and not p.failures for p in progress),
        "not created yet": sum(p.status is None for p in progress),
    }
    parts = [f"{n} {what}" for what, n in counts.items() if n]
    return f"{len(progress)} version{'s' if len(progress) != 1 else ''}: {', '.join(parts)}"


class ChangeFeed:
    """Prints what changed since the last read, each line time-stamped (text), or the whole state (JSON line)."""

    def __init__(self, stack: str, gallery: Gallery, fmt: str) -> None:
        self.stack, self.gallery, self.fmt = stack, gallery, fmt
        self.seen: dict[str, str] = {}

    def say(self, line: str) -> None:
        """A time-stamped text line (JSON output carries only the state lines)."""
        if self.fmt == "text":
            print(f"{_stamp()} {line}", flush=True)

    def show(self, progress: list[Progress]) -> None:
        current: dict[str, str] = {}
        for p in progress:
            current[p.version.label] = p.headline()
            for r in p.regions() if p.status else []:
                current[f"{p.version.label} {r.region}"] = f"{p.version.label} {r.region}: {_region_line(r)}"
        changed = [line for key, line in current.items() if self.seen.get(key) != line]
        self.seen = current
        if not changed:
            return
        if self.fmt == "json":
            print(json.dumps({"time": _stamp(), **document(self.stack, self.gallery, progress)}), flush=True)
        for line in changed:
            self.say(line)


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def document(stack: str, gallery: Gallery, progress: list[Progress]) -> dict[str, Any]:
    return {
        "stack": stack,
        "subscription": gallery.subscription_id,
        "resourceGroup": gallery.resource_group,
        "gallery": gallery.name,
        "versions": [p.as_json() for p in progress],
    }


def outcome(progress: list[Progress]) -> int:
    """Exit code once every version is settled, or EXIT_NOT_FINISHED."""
    if not all(p.settled for p in progress):
        return EXIT_NOT_FINISHED
    return EXIT_FAILED if any(p.failures for p in progress) else EXIT_COMPLETED


# --- the command ---------------------------------------------------------------------------------------------


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m commands.replication", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("stack", help="stack name: reads Pulumi.<stack>.yaml")
    parser.add_argument("--subscription", help="the gallery's subscription (default: azure-native:subscriptionId)")
    parser.add_argument("--watch", action="store_true", help="poll until every version completed or failed")
    parser.add_argument("--interval", type=_positive, default=30.0, help="seconds between polls (default 30)")
    parser.add_argument(
        "--timeout", type=_positive, help="minutes to watch (default: the largest createTimeoutMinutes)"
    )
    parser.add_argument("--format", choices=("text", "json"), default="text")
    return parser


def main(argv: Sequence[str] | None = None, root: Path = ROOT) -> int:
    """Run the command; `root` is the directory with Pulumi.yaml and Pulumi.<stack>.yaml."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse has printed the usage error (or --help)
        return EXIT_ERROR if exc.code else 0
    # azure-identity logs a multi-line warning when the login fails; our one-line error already says it all.
    azure_log = logging.getLogger("azure")
    if not any(isinstance(h, logging.NullHandler) for h in azure_log.handlers):
        azure_log.addHandler(logging.NullHandler())
    try:
        return run(args, root)
    except (UsageError, ConfigError, ArmError) as exc:
        message = "; ".join(exc.problems) if isinstance(exc, ConfigError) else str(exc)
        print(f"replication of stack '{args.stack}': {message}", file=sys.stderr)
        return EXIT_ERROR


def run(args: argparse.Namespace, root: Path) -> int:
    spec, values = load_stack(args.stack, root)
    subscription = resolve_subscription(args.stack, args.subscription, values)
    gallery = Gallery(subscription, spec.gallery.resource_group, spec.gallery.name)
    versions = watched_versions(spec)
    if not versions:
        print(f"stack '{args.stack}' declares no image versions: nothing replicates")
        return EXIT_COMPLETED
    # Each GET is bounded well below the watch, so a stuck ARM ends the command with an error instead of hanging.
    settings = ArmSettings(
        endpoint=spec.azure.arm_endpoint, audience=spec.azure.audience, request_timeout=30.0, operation_timeout=120.0
    )
    with SharedLogin() as login:
        reader = Reader(settings, gallery, tuple(versions), login)
        if not args.watch:
            progress = snapshot(args.stack, reader, args.format)
        else:
            minutes = args.timeout or max(v.create_timeout_minutes for d in spec.images for v in d.versions)
            try:
                progress = watch(args.stack, reader, args.format, args.interval, minutes)
            except WaitTimeout as exc:
                print(f"replication of stack '{args.stack}': {exc}. Nothing was changed in Azure.", file=sys.stderr)
                return EXIT_NOT_FINISHED
    code = outcome(progress)
    if code == EXIT_NOT_FINISHED:  # only a snapshot ends unfinished
        print(f"not finished yet: {_unfinished(progress)}. Run with --watch to follow it.", file=sys.stderr)
    if code == EXIT_FAILED:
        print(f"replication failed: {'; '.join(f for p in progress for f in p.failures)}", file=sys.stderr)
    return code


def snapshot(stack: str, reader: Reader, fmt: str) -> list[Progress]:
    """Read every version once and print it."""
    progress = reader.read()
    if fmt == "json":
        print(json.dumps(document(stack, reader.gallery, progress), indent=2))
    else:
        print("\n".join([f"Replication of stack '{stack}' in {reader.gallery}", *render_text(progress)]))
        print(summary(progress))
    return progress


def watch(stack: str, reader: Reader, fmt: str, interval: float, minutes: float) -> list[Progress]:
    """Poll until every version is settled, printing changes; WaitTimeout when `minutes` pass first."""
    labels = ", ".join(v.label for v in reader.versions)
    deadline = Deadline(minutes * 60, f"the replication of {labels} in {reader.gallery} to finish ({minutes:g} min)")
    feed = ChangeFeed(stack, reader.gallery, fmt)
    feed.say(f"watching the replication of stack '{stack}' in {reader.gallery}, every {interval:g}s")

    def probe() -> tuple[bool, list[Progress]]:
        progress = reader.read()
        feed.show(progress)
        return all(p.settled for p in progress), progress

    progress = poll(probe, deadline, interval, _unfinished)
    feed.say(summary(progress))
    return progress


def _unfinished(progress: list[Progress]) -> str:
    return "; ".join(p.brief() for p in progress if not p.settled)


if __name__ == "__main__":
    sys.exit(main())
