"""The result store: one folder per cell, complete or absent, shared safely by processes and hosts.

Layout and file formats are in docs/results.md. The rules that make it safe to kill a run at any
moment and to point several ``seqbench run`` processes, Ray tasks or Slurm jobs at one results
root:

- a cell is written under ``.tmp/`` and renamed into place only when complete, so a visible cell
  folder always holds a whole ``result.json``;
- a cell is computed only by the holder of its claim: the OS file lock under ``.locks/`` where
  it works, and the lease under ``.leases/`` (:mod:`seqbench.lease`) everywhere;
- publishing checks the lease is still ours (the fence) and never replaces a finished result,
  so exactly one result is published per cell hash;
- every try is noted under ``.attempts/<hash>/`` while it runs and listed in the published
  record's ``attempts``;
- a cell in training keeps its epoch checkpoint under ``.checkpoints/``
  (:mod:`seqbench.checkpoint`), so that the try after an interrupted one resumes; publishing the
  cell removes it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from filelock import FileLock, Timeout

from seqbench import atomic, checkpoint, lease, record
from seqbench.errors import SeqbenchError

# Names defined once, in seqbench.record; re-exported for the store's users.
RESULT, RANKS, LOG, WEIGHTS = record.RESULT, record.RANKS, record.LOG, record.WEIGHTS
HIDDEN = (".tmp", ".locks", ".leases", ".attempts", checkpoint.FOLDER)


class CellBusy(Exception):
    """Another live process holds this cell."""


class PublishRefused(SeqbenchError):
    """A finished result for this cell exists already: this one is not published."""


@dataclass
class Claim:
    """The right to compute one cell: its OS lock (if any), its lease and our attempt entry."""

    hash: str
    lease: lease.Lease
    executor: str
    os_lock: FileLock | None = None
    attempt: Path | None = None
    _stop_heartbeat: threading.Event = field(default_factory=threading.Event)
    _heartbeat_thread: threading.Thread | None = None
    lost: str | None = None  # why the lease was lost, once a heartbeat found out


class SuiteStore:
    """The results of one suite: ``<root>/<suite>/``."""

    def __init__(
        self,
        root: Path | str,
        suite: str,
        *,
        lease_seconds: float = lease.DEFAULT_LEASE_SECONDS,
        clock: lease.Clock = time.time,
        holder: lease.Holder | None = None,
        executor: str = "local",
    ) -> None:
        self.root = Path(root).expanduser()
        self.dir = self.root / suite
        self.lease_seconds = lease_seconds
        self.clock = clock
        self.holder = holder or lease.Holder.this_process()
        self.executor = executor
        self._locks = self.dir / ".locks"
        self._tmp = self.dir / ".tmp"
        self._leases = self.dir / ".leases"
        self._attempts = self.dir / ".attempts"
        try:
            for folder in (self.dir, self._locks, self._tmp, self._leases, self._attempts):
                folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SeqbenchError(
                f"cannot create the results folder {exc.filename or self.dir} ({exc.strerror}); "
                "pass a writable --results DIR"
            ) from None

    def cell_dir(self, relative: PurePosixPath) -> Path:
        return self.dir / relative

    def status(self, relative: PurePosixPath) -> str | None:
        """The cell's recorded status, or None when it has no readable result."""
        result = read_result(self.cell_dir(relative) / RESULT)
        return None if result is None else str(result.get("status"))

    # ------------------------------------------------------------------ claiming

    def claim(self, cell_hash: str) -> Claim:
        """Claim a cell (:class:`CellBusy` if a live holder has it); call :meth:`release`."""
        os_lock = self._os_lock(cell_hash)
        try:
            held = lease.acquire(
                self._leases / f"{cell_hash}.json",
                duration=self.lease_seconds,
                clock=self.clock,
                holder=self.holder,
                on_take_over=lambda stale, why: self._close_attempt(
                    cell_hash, stale.get("token"), "lost", why
                ),
            )
        except lease.LeaseBusy:
            if os_lock is not None:
                os_lock.release()
            raise CellBusy(cell_hash) from None
        except BaseException:
            if os_lock is not None:
                os_lock.release()
            raise
        claim = Claim(cell_hash, held, self.executor, os_lock)
        for leftover in self._tmp.glob(f"{cell_hash}-*"):  # a dead writer's partial cell
            shutil.rmtree(leftover, ignore_errors=True)
        claim.attempt = self._open_attempt(claim)
        return claim

    @contextlib.contextmanager
    def claimed(self, cell_hash: str) -> Iterator[Claim]:
        """:meth:`claim` … :meth:`release` as a context manager."""
        claim = self.claim(cell_hash)
        try:
            yield claim
        finally:
            self.release(claim)

    def wait_for(
        self,
        cell_hash: str,
        done: Callable[[], bool],
        poll: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> Claim | None:
        """Wait until ``done()`` (another holder finished the cell: None) or the cell can be
        claimed (its holder died or its lease expired: the claim)."""
        while True:
            if done():
                return None
            try:
                return self.claim(cell_hash)
            except CellBusy:
                sleep(poll)

    def heartbeat(self, claim: Claim, on_lost: Callable[[str], None] | None = None) -> None:
        """Renew the claim's lease from a background thread until :meth:`release`; if the lease
        turns out lost, record why in ``claim.lost`` and call ``on_lost(why)`` once."""
        interval = max(0.05, claim.lease.duration / lease.HEARTBEATS_PER_LEASE)

        def beat() -> None:
            while not claim._stop_heartbeat.wait(interval):
                try:
                    lease.renew(claim.lease, self.clock)
                except lease.LeaseLost as exc:
                    claim.lost = str(exc)
                    if on_lost is not None:
                        on_lost(str(exc))
                    return
                except OSError:
                    continue  # a passing filesystem error: try again at the next beat

        thread = threading.Thread(target=beat, name=f"heartbeat-{claim.hash[:8]}", daemon=True)
        claim._heartbeat_thread = thread
        thread.start()

    def release(self, claim: Claim, outcome: str | None = None, message: str | None = None) -> None:
        """Stop heartbeating, close our attempt entry (if still open) and drop the lease."""
        claim._stop_heartbeat.set()
        if claim._heartbeat_thread is not None:
            claim._heartbeat_thread.join()
        try:
            if claim.attempt is not None and claim.attempt.exists():
                self._finish_attempt(claim.attempt, outcome or "interrupted", message)
            lease.release(claim.lease)
        finally:
            if claim.os_lock is not None:
                claim.os_lock.release()

    # ------------------------------------------------------------------ writing

    def scratch(self, cell_hash: str) -> Path:
        """A fresh folder to write the cell into (call while holding its claim)."""
        path = self._tmp / f"{cell_hash}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        path.mkdir(parents=True)
        return path

    def publish(
        self,
        claim: Claim,
        scratch: Path,
        relative: PurePosixPath,
        outcome: str,
        message: str | None = None,
        retry: tuple[str, ...] = (),
        keep_checkpoint: bool = False,
    ) -> Path:
        """Move a finished cell into place, fenced by the claim's lease.

        The record in ``scratch`` gains ``attempts`` (the earlier record's, then every try noted
        for this hash, this one closed with ``outcome``). Raises :class:`lease.LeaseLost` when
        the lease is no longer ours and :class:`PublishRefused` when a finished result (``ok``,
        or an outcome not in ``retry``) is already in place; the scratch is then discarded.

        The cell's epoch checkpoint goes, unless ``keep_checkpoint``: a worker or task that died
        without saying why (a crash, a lost node) leaves it, so that the rerun resumes.
        """
        final = self.cell_dir(relative)
        try:
            lease.check(claim.lease)
            existing = read_result(final / RESULT)
            if existing is not None and not _may_replace(str(existing.get("status")), retry):
                raise PublishRefused(
                    f"{final} already holds a {existing.get('status')!r} result; not replaced"
                )
        except BaseException as exc:
            self.discard(scratch)
            if isinstance(exc, PublishRefused):  # the cell has a record: no resume is wanted
                self._remove_checkpoint(claim.hash)
            raise
        if claim.attempt is not None:
            self._finish_attempt(claim.attempt, outcome, message)
        self._add_attempts(scratch / RESULT, existing, claim.hash)
        atomic.fsync_tree(scratch)
        final.parent.mkdir(parents=True, exist_ok=True)
        retired = None
        if final.exists():  # an earlier failed try, named so that the next claim cleans it up
            retired = self._tmp / f"{claim.hash}-retired-{uuid.uuid4().hex[:8]}"
            final.rename(retired)
        scratch.rename(final)
        atomic.fsync_folder(final.parent)
        if retired is not None:
            shutil.rmtree(retired, ignore_errors=True)
        shutil.rmtree(self._attempts / claim.hash, ignore_errors=True)
        if not keep_checkpoint:
            self._remove_checkpoint(claim.hash)  # the cell has a record
        claim.attempt = None
        return final

    def _remove_checkpoint(self, cell_hash: str) -> None:
        checkpoint.path_for(self.dir, cell_hash).unlink(missing_ok=True)

    def discard(self, scratch: Path) -> None:
        shutil.rmtree(scratch, ignore_errors=True)

    # ------------------------------------------------------------------ attempts

    def attempts(self, cell_hash: str) -> list[dict[str, Any]]:
        """The tries noted for a cell not yet published, oldest first."""
        folder = self._attempts / cell_hash
        found = []
        for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            data = read_result(path)
            if data is not None:
                found.append(data)
        return sorted(found, key=lambda a: str(a.get("started", "")))

    def _open_attempt(self, claim: Claim) -> Path | None:
        folder = self._attempts / claim.hash
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{claim.lease.token}.json"
            atomic.write_json(
                path,
                {
                    "host": claim.lease.holder.host,
                    "pid": claim.lease.holder.pid,
                    "executor": self.executor,
                    "started": record.now("milliseconds"),
                },
            )
        except OSError:
            return None  # the attempt list is a convenience; never a reason to fail a cell
        return path

    def _finish_attempt(self, path: Path, outcome: str, message: str | None) -> None:
        data = read_result(path)
        if data is None or data.get("outcome"):
            return
        data.update(ended=record.now("milliseconds"), outcome=outcome)
        if message:
            data["message"] = message[:2000]
        with contextlib.suppress(OSError):
            atomic.write_json(path, data)

    def _close_attempt(self, cell_hash: str, token: Any, outcome: str, message: str) -> None:
        if isinstance(token, str) and token:
            self._finish_attempt(self._attempts / cell_hash / f"{token}.json", outcome, message)

    def note_worker(self, claim: Claim, worker: str) -> None:
        """Record where the attempt runs (a worker pid, a node)."""
        if claim.attempt is None:
            return
        data = read_result(claim.attempt)
        if data is not None:
            data["worker"] = worker
            with contextlib.suppress(OSError):
                atomic.write_json(claim.attempt, data)

    def _add_attempts(
        self, result_path: Path, previous: dict[str, Any] | None, cell_hash: str
    ) -> None:
        data = read_result(result_path)
        if data is None:
            return
        earlier = previous.get("attempts", []) if previous else []
        tries = [*earlier, *self.attempts(cell_hash)]
        for attempt in tries:
            attempt.setdefault("outcome", "lost")
        data["attempts"] = tries
        atomic.write_json(result_path, data)

    # ------------------------------------------------------------------ locks

    def _os_lock(self, cell_hash: str) -> FileLock | None:
        """The cell's OS lock (:class:`CellBusy` if another process holds it), or None where
        this filesystem gives no working locks (the lease alone then decides)."""
        lock = FileLock(str(self._locks / f"{cell_hash}.lock"))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            raise CellBusy(cell_hash) from None
        except (OSError, NotImplementedError):
            return None
        return lock


def _may_replace(status: str, retry: tuple[str, ...]) -> bool:
    """A result may be replaced unless it is ok, or an outcome the user did not ask to retry
    (an unknown status, e.g. from a damaged record, is replaced)."""
    if status == "ok":
        return False
    return status not in record.OUTCOMES or status in retry


def should_run(status: str | None, retry: tuple[str, ...] = ()) -> bool:
    """Whether a cell with this recorded status (None: no result) is (re)run: missing and
    failed cells are; ``ok`` never; outcomes (oom, timeout, pruned) only when in ``retry``."""
    return status is None or _may_replace(status, retry)


@dataclass(frozen=True)
class StoredCell:
    """What ``seqbench run`` would do with one cell, as ``--dry-run`` tells it."""

    kind: str  # "complete", "held" (another live process trains it) or "to train"
    text: str


def stored_cell(
    suite_dir: Path, relative: PurePosixPath | str, cell_hash: str, retry: tuple[str, ...] = ()
) -> StoredCell:
    """The state of one cell in the store at ``suite_dir``, read without writing anything (no
    folder created, no lease taken, no checkpoint discarded)."""
    result = read_result(Path(suite_dir) / relative / RESULT)
    recorded = None if result is None else str(result.get("status"))
    if not should_run(recorded, retry):
        kept = "" if recorded == "ok" else f" (kept; --retry {recorded} reruns it)"
        return StoredCell("complete", f"{recorded}{kept}")
    saved = checkpoint.EpochCheckpoint(
        checkpoint.path_for(suite_dir, cell_hash), cell_hash
    ).saved_epoch()
    lease_path = Path(suite_dir) / ".leases" / f"{cell_hash}.json"
    current = lease.read(lease_path)
    if current is not None and (
        lease.stale_reason(current, lease_path, time.time(), lease.Holder.this_process()) is None
    ):
        holder = f"pid {current.get('pid')} on {current.get('host')}" if current else "?"
        progress = f", epoch {saved} saved" if saved is not None else ""
        return StoredCell("held", f"in training by {holder}{progress}")
    parts = [f"{recorded}: reruns"] if recorded is not None else []
    if saved is not None:
        parts.append(f"resumes after epoch {saved}")
    return StoredCell("to train", "; ".join(parts) or "to train")


def read_result(path: Path) -> dict[str, Any] | None:
    """A JSON object file's content, or None when it is missing or unreadable."""
    try:
        with path.open(encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Strict JSON (NaN and ±inf become null), atomically and durably."""
    atomic.write_json(path, data)
