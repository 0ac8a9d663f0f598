"""Cells fed one at a time: a source decides each next cell while others run.

A tuning study decides its cells as it goes (the sampler proposes a trial from the trials
finished so far, and whether to start one at all depends on every process sharing the study);
``seqbench run`` on the local executor feeds its known list the same way (:class:`ListSource`).
:func:`run_stream` runs K slots of any executor; each slot asks a :class:`JobSource` for its next
cell whenever it is free and computes it through the executor's :class:`StreamSlots` (a worker
process, a Ray task, a Slurm job), which claims, heartbeats, computes and publishes it through
the same seam as every other cell; the reporter sees its events and may stop it (the pruner).
"""

from __future__ import annotations

import abc
import threading
import time
from collections import deque
from collections.abc import Iterable
from typing import Any, Protocol

from seqbench.executors.base import CellHandle, CellJob, CellOutcome, Reporter


class JobSource(Protocol):
    """Where the slots get cells: :meth:`next_job` may block (a study waiting on another
    process's trials); None ends the slot. :meth:`job_done` hears every cell's outcome,
    including ``done`` (already published: a repeated point) which no reporter call announces."""

    def next_job(self) -> CellJob | None: ...
    def job_done(self, job: CellJob, outcome: CellOutcome) -> None: ...
    def cancel(self) -> None: ...

    def defer(self, job: CellJob) -> bool:
        """``job`` is held by another live process: True when the source takes it back to offer
        it again later (the slot moves on), False to wait for it on this slot now."""
        ...


class ListSource:
    """A known list of cells (``seqbench run``): each once, in order; a cell another process
    holds is set aside and offered again when the list is empty, then waited for."""

    def __init__(self, jobs: Iterable[CellJob]) -> None:
        self._queue: deque[CellJob] = deque(jobs)
        self._deferred: deque[CellJob] = deque()
        self._waited: set[int] = set()
        self._lock = threading.Lock()

    def next_job(self) -> CellJob | None:
        with self._lock:
            if self._queue:
                return self._queue.popleft()
            if self._deferred:
                job = self._deferred.popleft()
                self._waited.add(id(job))
                return job
            return None

    def defer(self, job: CellJob) -> bool:
        with self._lock:
            if id(job) in self._waited:
                return False
            self._deferred.append(job)
            return True

    def job_done(self, job: CellJob, outcome: CellOutcome) -> None:
        with self._lock:
            if id(job) in self._waited and outcome.status == "done":
                outcome.message = "completed by another process"

    def cancel(self) -> None:
        with self._lock:
            self._queue.clear()
            self._deferred.clear()


class StreamSlots(abc.ABC):
    """An executor's K slots for a stream. :meth:`run` computes one job on slot ``slot`` and
    blocks until its outcome (``busy`` when another live process holds the cell); slots run in
    threads of their own, so it must be safe to call from several at once."""

    count: int

    @abc.abstractmethod
    def run(self, slot: int, job: CellJob) -> CellOutcome: ...

    @abc.abstractmethod
    def interrupt(self) -> None:
        """Ctrl-C: stop every cell in progress without publishing it."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the slots' resources (worker processes, the cluster connection)."""


class RemoteSlots(StreamSlots):
    """Slots whose cells run as cluster tasks (a Ray task, a Slurm job) that report through a
    channel one thread reads for all of them (a Ray queue, event files). A subclass says how to
    submit, wait for, read, cancel and conclude a task; this class keeps the maps the channel
    reader needs (which job a hash is, the handle its first event made), under one lock, and
    reads the channel once more after a task ends, so that every event precedes its
    ``finished``."""

    def __init__(self, reporter: Reporter, count: int, poll_seconds: float, name: str) -> None:
        self.count = count
        self._reporter = reporter
        self._poll_seconds = poll_seconds
        self._lock = threading.Lock()  # submission, channel reads and the maps below
        self._by_hash: dict[str, CellJob] = {}
        self._handles: dict[str, CellHandle] = {}
        self._pending: set[Any] = set()
        self._closed = threading.Event()
        self._reader = threading.Thread(target=self._read_loop, name=name, daemon=True)
        self._reader.start()

    @abc.abstractmethod
    def _submit(self, job: CellJob) -> Any:
        """Start ``job`` as a task (called under the lock); its task handle."""

    @abc.abstractmethod
    def _done(self, task: Any) -> bool:
        """Whether the task has ended (may block up to about a poll interval)."""

    @abc.abstractmethod
    def _conclude(self, task: Any, job: CellJob) -> CellOutcome:
        """The ended task's outcome (a lost task recorded as such)."""

    @abc.abstractmethod
    def _read_channel(self) -> None:
        """Pass new events to the reporter (called under the lock)."""

    @abc.abstractmethod
    def _fallback_handle(self, job: CellJob, outcome: CellOutcome) -> CellHandle:
        """The handle for ``finished`` when no event of the task arrived."""

    @abc.abstractmethod
    def _cancel(self, task: Any) -> None: ...

    def _shutdown(self) -> None:
        """Release what the slots started (after the reader stopped)."""

    def _read_loop(self) -> None:
        while not self._closed.wait(self._poll_seconds):
            self._read()

    def _read(self) -> None:
        with self._lock:
            self._read_channel()

    def run(self, slot: int, job: CellJob) -> CellOutcome:
        with self._lock:
            self._by_hash[job.hash] = job
            task = self._submit(job)
            self._pending.add(task)
        try:
            while not self._done(task):
                pass
            self._read()
            outcome = self._conclude(task, job)
            with self._lock:
                handle = self._handles.pop(job.hash, None)
                self._by_hash.pop(job.hash, None)
            if outcome.status != "busy":  # a busy cell is tried again: not finished yet
                self._reporter.finished(handle or self._fallback_handle(job, outcome), outcome)
            return outcome
        finally:
            with self._lock:
                self._pending.discard(task)

    def interrupt(self) -> None:
        with self._lock:
            tasks = list(self._pending)
        for task in tasks:
            self._cancel(task)

    def close(self) -> None:
        self._closed.set()
        self._reader.join(timeout=5)
        self._shutdown()


def run_stream(
    slots: StreamSlots, source: JobSource, reporter: Reporter, poll_seconds: float = 1.0
) -> list[CellOutcome]:
    """Run cells from ``source`` on every slot until each got None. A cell another process holds
    (the same point in a concurrent trial, a cell of another ``seqbench run``) is handed back to
    the source or waited for, then reused. Ctrl-C: interrupt the slots, publish nothing
    half-done, re-raise KeyboardInterrupt. ``reporter`` must be safe to
    call from several threads (:class:`~seqbench.executors.base.SerializedReporter`)."""
    outcomes: list[CellOutcome] = []
    lock = threading.Lock()
    cancelled = threading.Event()
    errors: list[BaseException] = []
    ended: list[int] = []
    changed = threading.Event()

    def slot(index: int) -> None:
        try:
            while not cancelled.is_set() and (job := source.next_job()) is not None:
                told = False
                while True:
                    outcome = slots.run(index, job)
                    if outcome.status != "busy" or cancelled.is_set():
                        break
                    if source.defer(job):
                        break
                    if not told:
                        reporter.message(f"waiting for another process to finish {job.title}")
                        told = True
                    time.sleep(poll_seconds)
                if outcome.status == "busy" and not cancelled.is_set():
                    continue  # handed back to the source
                source.job_done(job, outcome)
                with lock:
                    outcomes.append(outcome)
        except BaseException as exc:  # a bug in seqbench: stop everything, re-raise it
            errors.append(exc)
            cancelled.set()
            source.cancel()
        finally:
            with lock:
                ended.append(index)
            changed.set()

    def running() -> bool:
        with lock:
            return len(ended) < slots.count

    threads = [
        threading.Thread(target=slot, args=(i,), name=f"slot {i + 1}", daemon=True)
        for i in range(slots.count)
    ]
    for t in threads:
        t.start()
    # Wait on an event, not Thread.join: a KeyboardInterrupt inside join() can leave the thread
    # looking finished (CPython < 3.13), and the slots must get to release their claims.
    try:
        while running():
            changed.wait(0.2)
            changed.clear()
    except KeyboardInterrupt:
        cancelled.set()
        source.cancel()
        slots.interrupt()
        deadline = time.monotonic() + 30
        while running() and time.monotonic() < deadline:
            time.sleep(0.05)
        raise
    if errors:
        raise errors[0]
    return outcomes
