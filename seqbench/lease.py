"""Leases: which process may compute a cell, on one machine or on many sharing a filesystem.

One mechanism for every executor (local, Ray, Slurm). A lease is a small JSON file
``<suite>/.leases/<hash>.json`` naming its holder (host, pid, the pid's start time, the boot it
belongs to), a random token, when it started and its last heartbeat. It is created atomically —
written aside, then hard-linked into place, which fails if a lease exists (also on NFS) — so that
exactly one claimant wins. It is taken over:

- at once, when its holder is on this host (same boot) and its process is gone (or the pid now
  belongs to another process) — and never while that process runs;
- after expiry when its holder is on another host: no heartbeat for the lease's own duration
  (``seqbench run --lease``), judged by the claimant's clock; holders heartbeat well inside it.

A take-over moves the stale lease aside under a unique name (one rename wins) and checks that it
moved the lease it judged stale; it then creates its own. Publishing a result checks that the
lease still holds our token (the *fence*): a holder that lost its lease (it stalled past expiry
and another took the cell) refuses to publish, so exactly one result is ever published per hash.

The OS file lock of :mod:`seqbench.store` comes first where it works (same host, local disks):
it serialises claimants before they look at the lease. Where it does not (some network
filesystems), the lease alone decides.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from seqbench import atomic
from seqbench.errors import SeqbenchError

Clock = Callable[[], float]

#: Default lease duration (seconds); holders heartbeat every duration / HEARTBEATS_PER_LEASE.
DEFAULT_LEASE_SECONDS = 300.0
HEARTBEATS_PER_LEASE = 6


class LeaseBusy(Exception):
    """A live holder has the lease."""

    def __init__(self, holder: dict[str, Any] | None) -> None:
        self.holder = holder or {}
        where = f"{self.holder.get('host', '?')} pid {self.holder.get('pid', '?')}"
        super().__init__(f"held by {where}")


class LeaseLost(SeqbenchError):
    """Our lease was taken over (we stalled past its expiry) or removed: we must not publish."""


@dataclass(frozen=True)
class Holder:
    """Who holds (or wants) a lease: this process, unless a test says otherwise."""

    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    pid_start: int | None = None
    boot: str | None = None

    @classmethod
    def this_process(cls) -> Holder:
        pid = os.getpid()
        return cls(socket.gethostname(), pid, process_start(pid), boot_id())


@dataclass
class Lease:
    """A lease we hold."""

    path: Path
    token: str
    holder: Holder
    duration: float
    started: float
    heartbeat: float
    attempt: Path | None = None  # our entry under .attempts/, if any

    def content(self) -> dict[str, Any]:
        return {
            "token": self.token,
            **asdict(self.holder),
            "duration": self.duration,
            "started": self.started,
            "heartbeat": self.heartbeat,
        }


def read(path: Path) -> dict[str, Any] | None:
    """A lease file's content; None when absent; ``{}`` when unreadable (being replaced)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError:
        return {}
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def acquire(
    path: Path,
    *,
    duration: float = DEFAULT_LEASE_SECONDS,
    clock: Clock = time.time,
    holder: Holder | None = None,
    on_take_over: Callable[[dict[str, Any], str], None] | None = None,
) -> Lease:
    """Create our lease at ``path``, taking over a dead or expired one; :class:`LeaseBusy` if a
    live holder has it. ``on_take_over(stale, why)`` is told about each lease taken over."""
    me = holder or Holder.this_process()
    for _ in range(5):  # each round either ends, or someone else moved the lease meanwhile
        current = read(path)
        if current is None:
            now = clock()
            lease = Lease(path, uuid.uuid4().hex, me, duration, now, now)
            if _create_exclusive(path, lease.content()):
                return lease
            continue
        why = stale_reason(current, path, clock(), me)
        if why is None:
            raise LeaseBusy(current)
        tomb = path.with_name(f"{path.name}.stale-{uuid.uuid4().hex[:8]}")
        try:
            os.rename(path, tomb)
        except FileNotFoundError:
            continue  # another claimant moved it first
        moved = read(tomb) or {}
        if current and moved.get("token") != current.get("token"):
            # We moved a lease created after our look: give it back and let its holder be.
            with contextlib.suppress(OSError):
                os.link(tomb, path)
            tomb.unlink(missing_ok=True)
            raise LeaseBusy(moved)
        tomb.unlink(missing_ok=True)
        if on_take_over is not None:
            on_take_over(current, why)
    raise LeaseBusy(read(path))


def stale_reason(current: dict[str, Any], path: Path, now: float, me: Holder) -> str | None:
    """Why ``current`` may be taken over now, or None while its holder may be alive."""
    if not current:  # unreadable: a writer died mid-way on a filesystem without links
        try:
            age = now - path.stat().st_mtime
        except OSError:
            return "unreadable lease vanished"
        return "unreadable lease" if age > DEFAULT_LEASE_SECONDS else None
    local = _is_local(current, me)
    if local is not None:  # this host can tell: the process is the holder's heartbeat
        return f"holder pid {current.get('pid')} on this host is gone" if not local else None
    try:
        silent = now - float(current["heartbeat"])
        limit = float(current.get("duration") or DEFAULT_LEASE_SECONDS)
    except (KeyError, TypeError, ValueError):
        return "lease without a heartbeat time"
    if silent > limit:
        return f"no heartbeat for {silent:.0f} s (lease {limit:.0f} s)"
    return None


def renew(lease: Lease, clock: Clock = time.time) -> None:
    """Heartbeat: rewrite our lease with the time now; :class:`LeaseLost` if it is not ours."""
    check(lease)
    lease.heartbeat = clock()
    atomic.write_json(lease.path, lease.content())


def check(lease: Lease) -> None:
    """The fence: :class:`LeaseLost` unless the lease file still holds our token."""
    current = read(lease.path)
    if not current or current.get("token") != lease.token:
        holder = f"{current.get('host')} pid {current.get('pid')}" if current else "nobody"
        raise LeaseLost(
            f"the lease {lease.path.name} is no longer ours (now held by {holder}); "
            "this process stalled past the lease duration and another took the cell over"
        )


def release(lease: Lease) -> None:
    """Remove our lease (if it is still ours)."""
    current = read(lease.path)
    if current and current.get("token") == lease.token:
        lease.path.unlink(missing_ok=True)


def _create_exclusive(path: Path, content: dict[str, Any]) -> bool:
    """Create ``path`` with ``content`` complete at the moment it appears; False if it exists."""
    tmp = atomic.temporary_path(path)
    try:
        atomic.write_json(tmp, content)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        except OSError:  # no hard links here: exclusive create, content written after
            return _create_without_link(path, content)
        atomic.fsync_folder(path.parent)
        return True
    finally:
        tmp.unlink(missing_ok=True)


def _create_without_link(path: Path, content: dict[str, Any]) -> bool:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(content, f)
        f.flush()
        os.fsync(f.fileno())
    return True


def _is_local(current: dict[str, Any], me: Holder) -> bool | None:
    """For a holder on this host: whether its process still runs; None for another host's
    (whose processes only its heartbeats speak for)."""
    if current.get("host") != me.host:
        return None
    boot = current.get("boot")
    if boot and me.boot and boot != me.boot:
        return False  # this host rebooted since: every process of that boot is gone
    pid = current.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, another user's
    started = current.get("pid_start")
    return not (started is not None and process_start(pid) not in (None, started))


def process_start(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (Linux), to tell a reused pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    try:
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (IndexError, ValueError):
        return None


def boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None
