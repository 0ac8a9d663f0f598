"""The local executor: N worker processes on this host, several cells at once.

``seqbench run --jobs N --device cpu|cuda:0,cuda:1`` starts N slots; each slot owns one worker
process (placed on the device list round-robin, with an equal share of the cores: N workers never
oversubscribe them) and computes cells one after another through
:func:`seqbench.executors.attempt.run_attempt`. A cell another process holds is set aside and
waited for once the queue is empty, so several ``seqbench run`` processes can share one results
root. Ctrl-C interrupts every worker; nothing half-done is published.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Sequence

from seqbench import threads
from seqbench.executors.attempt import run_attempt
from seqbench.executors.base import (
    CellJob,
    CellOutcome,
    Executor,
    Reporter,
    SerializedReporter,
)
from seqbench.executors.stream import StreamSlots
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
        reporter = SerializedReporter(reporter)
        queue: deque[CellJob] = deque(jobs)
        deferred: deque[CellJob] = deque()
        outcomes: list[CellOutcome] = []
        lock = threading.Lock()
        cancelled = threading.Event()
        errors: list[BaseException] = []
        n_slots = min(self.jobs, max(1, len(jobs)))
        self._workers = [
            WorkerProcess(
                self.devices[i % len(self.devices)],
                self.threads,
                workers=n_slots,
                name=f"worker {i + 1}",
            )
            for i in range(n_slots)
        ]

        def next_job() -> tuple[CellJob, bool] | None:
            with lock:
                if queue:
                    return queue.popleft(), False
                if deferred:
                    return deferred.popleft(), True
                return None

        def slot(worker: WorkerProcess) -> None:
            try:
                while not cancelled.is_set() and (taken := next_job()) is not None:
                    job, waiting = taken
                    told = False
                    while True:
                        outcome = run_attempt(
                            job, worker, reporter, executor=self.name, cancelled=cancelled.is_set
                        )
                        if outcome.status != "busy" or cancelled.is_set():
                            break
                        if not waiting:  # come back to it when the queue is empty
                            with lock:
                                deferred.append(job)
                            break
                        if not told:
                            reporter.message(
                                f"waiting for another seqbench process to finish {job.title}"
                            )
                            told = True
                        time.sleep(self.poll_seconds)
                    if outcome.status == "busy" and not waiting:
                        continue
                    if waiting and outcome.status == "done":
                        outcome.message = "completed by another process"
                    with lock:
                        outcomes.append(outcome)
            except BaseException as exc:  # a bug in seqbench: stop everything, re-raise it
                errors.append(exc)
                cancelled.set()
            finally:
                worker.close()
                with lock:
                    finished.append(worker)
                all_done_or_interrupted.set()

        finished: list[WorkerProcess] = []
        all_done_or_interrupted = threading.Event()

        def running() -> bool:
            with lock:
                return len(finished) < len(self._workers)

        threads_ = [
            threading.Thread(target=slot, args=(w,), name=w.name, daemon=True)
            for w in self._workers
        ]
        for t in threads_:
            t.start()
        # Wait on an event, not Thread.join: a KeyboardInterrupt inside join() can leave the
        # thread looking finished (CPython < 3.13), and the slots must get to release their claims.
        try:
            while running():
                all_done_or_interrupted.wait(0.2)
                all_done_or_interrupted.clear()
        except KeyboardInterrupt:
            cancelled.set()
            self._interrupt_workers()
            deadline = time.monotonic() + 30
            while running() and time.monotonic() < deadline:
                time.sleep(0.05)
            raise
        if errors:
            raise errors[0]
        return outcomes

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
