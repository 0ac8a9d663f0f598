"""The executor seam: where the runner's planned cells meet the machines that compute them.

The runner (:mod:`seqbench.runner`) plans a suite into :class:`CellJob` s — every resolved
setting, the hash, where the result goes — and hands the pending ones to an :class:`Executor`.
An executor starts workers wherever it runs them (worker processes on this host; Ray tasks; Slurm
job arrays) and reports back through a :class:`Reporter`: when a cell starts and where, every
worker event (per epoch: loss, validation metrics, seconds), and each cell's
:class:`CellOutcome`. Events flow the other way too: the reporter may call
:meth:`CellHandle.stop` on a running cell (a tuner's pruner, a time or memory cap); the worker
then ends the cell with the status it is given and writes its record.

Every executor computes a cell the same way, with :func:`seqbench.executors.attempt.run_attempt`
in the process that runs the worker: claim the cell in the store (OS lock + lease), heartbeat,
drive the worker (:class:`seqbench.executors.worker_process.WorkerProcess`), publish through
the fenced store, release. So the guarantees — one published result per hash, nothing
half-written, a lost process costs only its cell — hold identically everywhere. A new executor
is one module on this seam: implement :meth:`Executor.run` (and :meth:`Executor.open_slots` for
streams of cells decided one at a time, as tuning trials are).

Reporter calls come from the executor's threads; executors serialise them, so a reporter needs
no locking of its own.
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from seqbench.executors.stream import JobSource, StreamSlots

#: What a cell's run can end as, beyond the record statuses: ``busy`` (another live holder
#: has it; waited for or deferred), ``done`` (already complete, not run), ``interrupted``
#: (Ctrl-C; nothing published), ``lost`` (our lease was taken over; nothing published),
#: ``crashed`` (the worker died and the executor will try again; noted under attempts).
NOT_PUBLISHED = ("busy", "done", "interrupted", "lost", "crashed")


@dataclass(frozen=True)
class CellJob:
    """One cell to compute: everything any worker needs, JSON-able (it travels to other hosts).

    ``extra`` carries what a driver adds for its own purposes (e.g. a tuning trial's study and
    parameters), copied into the record by the worker where the record has a section for it.
    """

    suite: str
    results: str  # the results root; the cell goes to <results>/<suite>/<relative>
    relative: str
    cell: dict[str, Any]  # Cell.to_json()
    hash: str
    identity: dict[str, Any]
    title: str
    cache_dir: str | None = None
    eval_batch_size: int = 4096
    lease_seconds: float = 300.0
    retry: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)
    # caps (run options, not identity; seqbench.limits): the worker's resident memory, watched
    # by the process driving it; the CUDA allocator's; the wall time, through a stop request
    memory_limit_mib: float | None = None
    device_memory_limit_mib: float | None = None
    time_limit_seconds: float | None = None

    @property
    def relative_path(self) -> PurePosixPath:
        return PurePosixPath(self.relative)

    @property
    def cell_dir(self) -> Path:
        return Path(self.results) / self.suite / self.relative

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "retry": list(self.retry)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CellJob:
        return cls(**{**data, "retry": tuple(data.get("retry", ()))})


@dataclass
class CellOutcome:
    """How one job ended: a record status, or one of :data:`NOT_PUBLISHED`."""

    job: CellJob
    status: str
    result: dict[str, Any] | None = None  # the published record (None when not published)
    path: Path | None = None  # the published cell folder
    where: str = ""  # the worker, node or job that ran it
    message: str = ""

    @property
    def published(self) -> bool:
        return self.path is not None


class CellHandle(abc.ABC):
    """A running cell, as the reporter sees it."""

    job: CellJob
    where: str

    @abc.abstractmethod
    def stop(self, status: str, reason: str, requested_by: str | None = None) -> None:
        """Ask the worker to end this cell now with ``status`` (``pruned``, ``timeout``,
        ``oom`` or ``failed``); it writes the record (curve so far, ``stopped``)."""


class Reporter(Protocol):
    """What the runner (or the tuning driver) is told while an executor runs jobs."""

    def started(self, handle: CellHandle) -> None: ...
    def event(self, handle: CellHandle, event: dict[str, Any]) -> None: ...
    def finished(self, handle: CellHandle, outcome: CellOutcome) -> None: ...
    def message(self, text: str) -> None: ...


class SilentReporter:
    """A reporter that ignores everything."""

    def started(self, handle: CellHandle) -> None:
        pass

    def event(self, handle: CellHandle, event: dict[str, Any]) -> None:
        pass

    def finished(self, handle: CellHandle, outcome: CellOutcome) -> None:
        pass

    def message(self, text: str) -> None:
        pass


class SerializedReporter:
    """Forwards to a reporter one call at a time (executors call it from several threads)."""

    def __init__(self, inner: Reporter) -> None:
        self._inner = inner
        self._lock = threading.RLock()

    def started(self, handle: CellHandle) -> None:
        with self._lock:
            self._inner.started(handle)

    def event(self, handle: CellHandle, event: dict[str, Any]) -> None:
        with self._lock:
            self._inner.event(handle, event)

    def finished(self, handle: CellHandle, outcome: CellOutcome) -> None:
        with self._lock:
            self._inner.finished(handle, outcome)

    def message(self, text: str) -> None:
        with self._lock:
            self._inner.message(text)


class Executor(abc.ABC):
    """Runs jobs somewhere; see the module docstring."""

    name: str = "?"

    @abc.abstractmethod
    def run(self, jobs: Sequence[CellJob], reporter: Reporter) -> list[CellOutcome]:
        """Compute every job (each exactly once across all processes sharing the store) and
        return one outcome per job, in any order. Ctrl-C: stop the workers, publish nothing
        half-done, and re-raise KeyboardInterrupt."""

    def open_slots(self, reporter: Reporter, count: int) -> StreamSlots:
        """``count`` slots that compute one cell at a time for :meth:`run_stream`."""
        raise NotImplementedError(f"the {self.name} executor cannot run a stream of cells")

    def run_stream(
        self, source: JobSource, reporter: Reporter, count: int, poll_seconds: float = 1.0
    ) -> list[CellOutcome]:
        """Compute cells that ``source`` decides one at a time (tuning trials), ``count`` at
        once (:func:`seqbench.executors.stream.run_stream`)."""
        from seqbench.executors.stream import run_stream

        reporter = SerializedReporter(reporter)
        slots = self.open_slots(reporter, count)
        try:
            return run_stream(slots, source, reporter, poll_seconds)
        finally:
            slots.close()
