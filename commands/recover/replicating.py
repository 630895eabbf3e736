"""Versions the killed run created that Azure is still replicating: shown region by region, and waited for,
bounded, so that `pulumi up` never runs against a half-made version."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from azure.core.credentials import TokenCredential

from commands.recover.errors import RecoverError, Refused
from config import ImageVersionSpec, StackSpec
from hooks import arm
from hooks.errors import WaitTimeout
from hooks.targets import ArmSettings, ImageVersionRef
from hooks.waiting import Deadline, poll


def version_coordinates(resource: Mapping[str, Any]) -> ImageVersionRef:
    """The image version a resource of the state is, from its ID."""
    try:
        return ImageVersionRef.parse(str(resource.get("id") or ""))
    except ValueError as exc:
        raise RecoverError(
            f"{resource.get('urn')} has no image version ID in the state ({resource.get('id')!r})"
        ) from exc


@dataclass(frozen=True)
class VersionWait:
    """Waits for the versions Azure is still creating, each bounded by its createTimeoutMinutes (or the
    command's --wait-minutes); with `preview_only`, shows them only."""

    settings: ArmSettings
    credential: TokenCredential
    spec: StackSpec
    stack: str
    preview_only: bool
    wait_minutes: float | None
    """None: each version's createTimeoutMinutes."""
    say: Callable[[str], None]

    def wait_for(self, versions: Sequence[Mapping[str, Any]]) -> list[str]:
        """Show each version Azure is still creating (imported into the state, with its ID) and wait for it,
        bounded (--preview-only: show it only); the labels of those still unfinished."""
        unfinished = []
        for resource in versions:
            where = version_coordinates(resource)
            label = f"{where.image} {where.version}"
            status = arm.get_replication_status(self.settings, where, credential=self.credential)
            if status is None or settled(status):
                self._report(label, status)
                continue
            self.say(f"{label}: still replicating: {regions_text(status)}")
            if self.preview_only:
                unfinished.append(label)
                continue
            minutes = (
                self.wait_minutes if self.wait_minutes is not None else self._create_timeout(where.image, where.version)
            )
            try:
                status = self._follow(label, where, status, minutes)
            except WaitTimeout as exc:
                self.say(
                    f"{label}: {exc}. It is in the state; Azure goes on replicating it. Run this command again to "
                    f"keep waiting, or watch it with `make replication STACK={self.stack} WATCH=1`."
                )
                unfinished.append(label)
                continue
            self._report(label, status)
        return unfinished

    def _follow(
        self, label: str, where: ImageVersionRef, first: arm.ReplicationStatus, minutes: float
    ) -> arm.ReplicationStatus | None:
        """Poll the version until Azure settles it, printing each change; WaitTimeout after `minutes`."""
        seen = [regions_text(first)]

        def probe() -> tuple[bool, arm.ReplicationStatus | None]:
            now = arm.get_replication_status(self.settings, where, credential=self.credential)
            shown = regions_text(now) if now else "gone"
            if shown != seen[-1]:
                self.say(f"{label}: {shown}")
                seen.append(shown)
            return now is None or settled(now), now

        deadline = Deadline(minutes * 60, f"the replication of {label} ({minutes:g} min)")
        return poll(probe, deadline, self.settings.poll_interval, lambda s: regions_text(s) if s else "gone")

    def _report(self, label: str, status: arm.ReplicationStatus | None) -> None:
        if status is None:
            self.say(f"{label}: no longer in Azure: `pulumi up` creates it again")
        elif "Failed" in (status.provisioning_state, status.aggregated_state):
            raise Refused(
                f"{label} was created but its replication failed ({regions_text(status)}): Azure keeps the failed "
                "version, now in the state. Fix the cause in Azure's message, then replace it (`pulumi up "
                "--replace <its urn>`), or delete it and run `pulumi up`."
            )
        else:
            self.say(f"{label}: replicated ({regions_text(status)})")

    def _create_timeout(self, image: str, version: str) -> float:
        for d in self.spec.images:
            for v in d.versions:
                if d.name == image and v.version == version:
                    return v.create_timeout_minutes
        return ImageVersionSpec.create_timeout_minutes


def settled(status: arm.ReplicationStatus) -> bool:
    """Azure is done with the version: failed, or created and replicated everywhere."""
    if "Failed" in (status.provisioning_state, status.aggregated_state):
        return True
    if status.aggregated_state is None:
        return status.provisioning_state == "Succeeded"
    return status.aggregated_state == "Completed" and status.provisioning_state != "Creating"


def regions_text(status: arm.ReplicationStatus) -> str:
    """The version's state and each region's, on one line."""
    regions = ", ".join(
        f"{r.region} {r.state}" + (f" {r.progress}%" if r.progress is not None else "") for r in status.regions
    )
    return f"provisioning {status.provisioning_state}, replication {status.aggregated_state}" + (
        f" ({regions})" if regions else ""
    )
