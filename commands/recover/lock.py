"""The lock a killed `pulumi up` leaves on its stack: released with `pulumi cancel`, unless a `pulumi` of this
machine still holds it (a live lock, seen in the lock files of a self-managed `file://` backend)."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from commands.recover.errors import Refused
from commands.recover.pulumi_cli import PulumiCli


@dataclass(frozen=True)
class Lock:
    """A lock file of a self-managed (file://) backend."""

    path: Path
    pid: int
    hostname: str
    timestamp: str

    def held_here(self) -> bool:
        """Held by a process still running on this machine (a `pulumi` that is not dead)."""
        if self.hostname != socket.gethostname() or self.pid <= 0:
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def file_backend_root(url: str) -> Path | None:
    """The directory of a `file://` backend URL; None for any other backend."""
    if not url.startswith("file://"):
        return None
    rest = url[len("file://") :].split("?", 1)[0]
    return Path(os.path.expanduser(unquote(rest))) if rest.startswith("~") else Path(unquote(urlsplit(url).path))


def stack_locks(backend: Path, project: str, stack: str) -> list[Lock]:
    """The lock files of `stack` in a file backend (`.pulumi/locks/<org>/<project>/<stack>/*.json`, or the
    older `.pulumi/locks/<stack>/`)."""
    root = backend / ".pulumi" / "locks"
    name = stack.rsplit("/", 1)[-1]
    locks = []
    for path in sorted(root.glob("**/*.json")):
        where = path.parent
        if where.name != name or not (where.parent == root or where.parent.name == project):
            continue
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError):
            doc = {}
        locks.append(
            Lock(path, int(doc.get("pid") or 0), str(doc.get("hostname") or ""), str(doc.get("timestamp") or ""))
        )
    return locks


def release_lock(cli: PulumiCli, project: str, say: Callable[[str], None]) -> None:
    """Release the killed run's lock (`pulumi cancel`); Refused while a `pulumi` of this machine holds it."""
    backend = file_backend_root(cli.backend_url())
    if backend is None:
        # Pulumi Cloud (or a bucket): the CLI knows whether an update is in progress, and says so.
        done = cli.run("cancel", "--yes", check=False)
        first = (done.stderr or done.stdout or "").strip().splitlines()
        say(
            "lock: "
            + (
                "released (pulumi cancel)"
                if done.returncode == 0
                else f"nothing to cancel ({first[-1] if first else 'no update in progress'})"
            )
        )
        return
    locks = stack_locks(backend, project, cli.stack)
    live = [lock for lock in locks if lock.held_here()]
    if live:
        held = ", ".join(f"pid {lock.pid} since {lock.timestamp}" for lock in live)
        raise Refused(
            f"a `pulumi` command of stack '{cli.stack}' is still running on this machine ({held}): let it "
            "finish, or stop it, then run again. Nothing was changed."
        )
    if not locks:
        say("lock: none held")
        return
    cli.run("cancel", "--yes")
    held = ", ".join(f"pid {lock.pid} on {lock.hostname or '?'} since {lock.timestamp}" for lock in locks)
    say(f"lock: released (pulumi cancel): it was held by a killed run ({held})")


def repair_checkpoint_metadata(cli: PulumiCli, project: str, say: Callable[[str], None]) -> None:
    """Remove a checkpoint metadata file a kill left unreadable, in a self-managed (`file://`) backend.

    The file backend (gocloud.dev/blob/fileblob, under pulumi/pkg/backend/diy) writes a checkpoint to a temporary
    file and renames it into place, so the checkpoint itself is always whole; but first it rewrites the sidecar
    `<stack>.json.attrs` in place (`setAttrs`: os.Create, then a JSON encode). A kill between the two leaves an
    empty sidecar, and every later command fails with "failed to load checkpoint: EOF". A missing sidecar is read
    as default metadata (`getAttrs`), so removing the unreadable one is all the repair there is."""
    backend = file_backend_root(cli.backend_url())
    if backend is None:
        return
    name = cli.stack.rsplit("/", 1)[-1]
    root = backend / ".pulumi" / "stacks"
    for sidecar in sorted(root.glob(f"**/{name}.json*.attrs")):
        if sidecar.parent != root and sidecar.parent.name != project:
            continue
        try:
            json.loads(sidecar.read_text())
            continue
        except ValueError:
            pass
        sidecar.unlink()
        say(
            f"state: removed {sidecar.name}, the checkpoint's metadata file, which the killed run left unreadable "
            "(the checkpoint itself is whole)"
        )
