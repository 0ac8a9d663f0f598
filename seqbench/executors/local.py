"""The local executor: N worker processes on this host, several cells at once.

``seqbench run --jobs N --device cpu|cuda:0,cuda:1`` starts N slots; each slot owns one worker
process (placed on the device list round-robin, with an equal share of the cores: N workers never
oversubscribe them) and computes cells one after another through
:func:`seqbench.executors.attempt.run_attempt`; the slots are fed by
:func:`seqbench.executors.stream.run_stream`, as tuning trials are. A cell another process holds
is set aside and waited for once the queue is empty, so several ``seqbench run`` processes can
share one results root. Ctrl-C interrupts every worker; nothing half-done is published.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Sequence

from seqbench import threads
from seqbench.executors.attempt import run_attempt
from seqbench.executors.base import (
    CellJob,
    CellOutcome,
    Executor,
    Reporter,
)
from seqbench.executors.stream import ListSource, StreamSlots
from seqbench.executors.worker_process import WorkerProcess


class LocalExecutor(Executor):
    name = "local"

    def __init__(
        self,
        jobs: int = 1,
        devices: Sequence[str] = ("cpu",),
        threads_per_worker: int | None = None,
        poll_seconds: float = 1.0,
    ) -> None:
        if jobs < 1:
            raise ValueError(f"jobs = {jobs}; need ≥ 1")
        self.jobs = jobs
        self.devices = list(devices) or ["cpu"]
        self.threads = threads.per_worker(jobs, explicit=threads_per_worker)
        self.poll_seconds = poll_seconds
        self._workers: list[WorkerProcess] = []

    def run(self, jobs: Sequence[CellJob], reporter: Reporter) -> list[CellOutcome]:
        """The cells in order, ``jobs`` at once: one slot per worker process, a stream over the
        known list (:class:`~seqbench.executors.stream.ListSource`)."""
        count = min(self.jobs, max(1, len(jobs)))
        return self.run_stream(ListSource(jobs), reporter, count, self.poll_seconds)

    def _interrupt_workers(self) -> None:
        """Ctrl-C from a terminal reaches the workers already; a SIGINT sent to this process
        alone does not, so pass it on (each then exits without recording its cell)."""
        for worker in self._workers:
            pid = worker.pid
            if pid is not None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGINT)

    def open_slots(self, reporter: Reporter, count: int) -> StreamSlots:
        return _LocalSlots(self, reporter, count)


class _LocalSlots(StreamSlots):
    """One worker process per slot (the cores shared among them), reused from cell to cell."""

    def __init__(self, executor: LocalExecutor, reporter: Reporter, count: int) -> None:
        self.count = count
        self._executor = executor
        self._reporter = reporter
        self._cancelled = threading.Event()
        executor._workers = self._workers = [
            WorkerProcess(
                executor.devices[i % len(executor.devices)],
                executor.threads,
                workers=count,
                name=f"worker {i + 1}",
            )
            for i in range(count)
        ]

    def run(self, slot: int, job: CellJob) -> CellOutcome:
        return run_attempt(
            job,
            self._workers[slot],
            self._reporter,
            executor=self._executor.name,
            cancelled=self._cancelled.is_set,
        )

    def interrupt(self) -> None:
        self._cancelled.set()
        self._executor._interrupt_workers()

    def close(self) -> None:
        for worker in self._workers:
            worker.close()
