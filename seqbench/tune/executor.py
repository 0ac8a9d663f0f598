"""The local executor fed one cell at a time: tuning trials are decided while others run.

``seqbench run`` knows all its cells before it starts; a study does not (the sampler proposes a
trial from the trials finished so far, and whether to start one at all depends on every process
sharing the study). :class:`TrialExecutor` is the local executor with one more entry point,
:meth:`TrialExecutor.run_stream`: its K slots (``--jobs K``, the cores divided among them, each
with its own worker process reused from cell to cell) ask a :class:`JobSource` for their next
cell whenever they are free. Each cell goes through the same seam as every other:
:func:`seqbench.executors.attempt.run_attempt` claims, heartbeats, computes and publishes it, and
the reporter sees its events (and may stop it: the pruner).
"""

from __future__ import annotations

import threading
import time
from typing import Protocol

from seqbench.executors.attempt import run_attempt
from seqbench.executors.base import CellJob, CellOutcome, Reporter, SerializedReporter
from seqbench.executors.local import LocalExecutor
from seqbench.executors.worker_process import WorkerProcess


class JobSource(Protocol):
    """Where the slots get cells: :meth:`next_job` may block (a study waiting on another
    process's trials); None ends the slot. :meth:`job_done` hears every cell's outcome,
    including ``done`` (already published: a repeated point) which no reporter call announces."""

    def next_job(self) -> CellJob | None: ...
    def job_done(self, job: CellJob, outcome: CellOutcome) -> None: ...
    def cancel(self) -> None: ...


class TrialExecutor(LocalExecutor):
    """:class:`~seqbench.executors.local.LocalExecutor` with :meth:`run_stream`."""

    def run_stream(self, source: JobSource, reporter: Reporter) -> list[CellOutcome]:
        """Run cells from ``source`` on K slots until every slot got None. A cell another
        process holds (the same point in a concurrent trial) is waited for, then reused.
        Ctrl-C: stop the workers, publish nothing half-done, re-raise KeyboardInterrupt."""
        reporter = SerializedReporter(reporter)
        outcomes: list[CellOutcome] = []
        lock = threading.Lock()
        cancelled = threading.Event()
        errors: list[BaseException] = []
        self._workers = [
            WorkerProcess(
                self.devices[i % len(self.devices)],
                self.threads,
                workers=self.jobs,
                name=f"worker {i + 1}",
            )
            for i in range(self.jobs)
        ]

        def slot(worker: WorkerProcess) -> None:
            try:
                while not cancelled.is_set() and (job := source.next_job()) is not None:
                    told = False
                    while True:
                        outcome = run_attempt(job, worker, reporter, executor=self.name)
                        if outcome.status != "busy" or cancelled.is_set():
                            break
                        if not told:
                            reporter.message(f"waiting for another process to finish {job.title}")
                            told = True
                        time.sleep(self.poll_seconds)
                    source.job_done(job, outcome)
                    with lock:
                        outcomes.append(outcome)
            except BaseException as exc:  # a bug in seqbench: stop everything, re-raise it
                errors.append(exc)
                cancelled.set()
                source.cancel()
            finally:
                worker.close()

        threads_ = [
            threading.Thread(target=slot, args=(w,), name=w.name, daemon=True)
            for w in self._workers
        ]
        for t in threads_:
            t.start()
        try:
            while any(t.is_alive() for t in threads_):
                for t in threads_:
                    t.join(timeout=0.2)
        except KeyboardInterrupt:
            cancelled.set()
            source.cancel()
            self._interrupt_workers()
            for t in threads_:
                t.join(timeout=15)
            raise
        if errors:
            raise errors[0]
        return outcomes
