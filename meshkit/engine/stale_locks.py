"""Stack locks left behind by a `pulumi up` that was killed.

The file backend (``file://``) locks a stack with one JSON file per running update, naming the host and
process that wrote it. A killed ``pulumi up`` cannot remove its lock, and every later ``up`` is refused
until someone runs ``pulumi cancel``, which removes *every* lock, a live update's too. Here a lock is only
removed when it is provably stale: written on this host by a process that no longer exists (or whose PID
now belongs to something that is not Pulumi). Pure standard library; no Pulumi runtime.

A kill can also land while the backend rewrites a checkpoint's attribute file (``<stack>.json.attrs``,
which the file backend writes in place, unlike the checkpoint itself, which it renames into place): a
truncated one makes every later command fail with ``failed to load checkpoint: EOF``, though the
checkpoint is whole. Once the stack's locks are gone, such a file is removed; the backend reads a missing
one as no attributes.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse


@dataclass(frozen=True)
class StackLock:
    path: Path
    pid: int
    hostname: str
    timestamp: str

    def __str__(self) -> str:
        return f"lock of pid {self.pid} on {self.hostname} since {self.timestamp} ({self.path})"


def backend_directory(backend_url: str) -> Path | None:
    """The directory of a ``file://`` backend URL; None for any other backend (Pulumi Cloud, buckets),
    whose locks are the service's business."""
    parsed = urlparse(backend_url)
    if parsed.scheme != "file":
        return None
    return Path(unquote(parsed.netloc + parsed.path)).expanduser()


def stack_locks(backend: Path, project: str, stack: str) -> list[StackLock]:
    """Every lock of ``project``/``stack`` in a file backend (project-scoped or legacy layout)."""
    locks_root = backend / ".pulumi" / "locks"
    directories = [locks_root / "organization" / project / stack, locks_root / stack]
    found = []
    for directory in directories:
        for path in sorted(directory.glob("*.json")):
            try:
                content = json.loads(path.read_text(encoding="utf-8"))
                found.append(StackLock(path, int(content["pid"]), str(content["hostname"]), str(content["timestamp"])))
            except (OSError, ValueError, KeyError, TypeError):
                continue  # not a lock Pulumi wrote: leave it to `pulumi cancel`
    return found


def _is_pulumi_process(pid: int) -> bool:
    try:
        command = Path(f"/proc/{pid}/comm").read_text(encoding="utf-8").strip()
        # A killed process whose parent died too stays a zombie until init reaps it (seconds in some
        # containers, never under an init that does not reap): it runs nothing.
        state = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8").rpartition(")")[2].split()[:1]
    except FileNotFoundError:
        return False
    except OSError:
        return True  # cannot tell: treat the lock as held
    return command.startswith("pulumi") and state not in (["Z"], ["X"])


def is_stale(lock: StackLock, hostname: str | None = None) -> bool:
    """True when the process that wrote ``lock`` is certainly gone: only decidable on its own host."""
    if lock.hostname != (hostname or socket.gethostname()):
        return False
    if not Path("/proc").is_dir():
        try:
            os.kill(lock.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False
    return not _is_pulumi_process(lock.pid)


def remove_stale_locks(backend: Path, project: str, stack: str) -> tuple[list[StackLock], list[StackLock]]:
    """Remove the stack's stale locks; (removed, still held)."""
    removed, held = [], []
    for lock in stack_locks(backend, project, stack):
        if is_stale(lock):
            lock.path.unlink(missing_ok=True)
            removed.append(lock)
        else:
            held.append(lock)
    return removed, held


def truncated_attribute_files(backend: Path, project: str, stack: str) -> list[Path]:
    """The stack's checkpoint attribute files that are not JSON objects (cut short by a killed update)."""
    directories = [backend / ".pulumi" / "stacks" / project, backend / ".pulumi" / "stacks"]
    found = []
    for directory in directories:
        for path in sorted(directory.glob(f"{stack}.json*.attrs")):
            try:
                if isinstance(json.loads(path.read_text(encoding="utf-8")), dict):
                    continue
            except (OSError, ValueError):
                pass
            found.append(path)
    return found
