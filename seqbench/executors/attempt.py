"""One try at one cell, the same steps for every executor: claim, heartbeat, compute, publish.

This runs in the process that drives the worker (the ``seqbench run`` process for the local
executor, a Ray task, a Slurm job), so that the claim's holder is alive exactly while the cell
can still be published.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from seqbench import lease, record
from seqbench.executors.base import CellHandle, CellJob, CellOutcome, Reporter
from seqbench.executors.worker_process import WorkerExit, WorkerProcess
from seqbench.store import CellBusy, PublishRefused, SuiteStore, read_result, should_run

log = logging.getLogger(__name__)


class WorkerHandle(CellHandle):
    """A cell running on a :class:`WorkerProcess`."""

    def __init__(self, job: CellJob, worker: WorkerProcess, where: str) -> None:
        self.job = job
        self.worker = worker
        self.where = where

    def stop(self, status: str, reason: str, requested_by: str | None = None) -> None:
        self.worker.stop(self.job, status, reason, requested_by)


def open_store(job: CellJob, executor: str) -> SuiteStore:
    return SuiteStore(job.results, job.suite, lease_seconds=job.lease_seconds, executor=executor)


def run_attempt(
    job: CellJob,
    worker: WorkerProcess,
    reporter: Reporter,
    *,
    executor: str = "local",
    store: SuiteStore | None = None,
    where: str | None = None,
    handle_factory: Callable[[CellJob, WorkerProcess, str], CellHandle] | None = None,
    publish_crash: bool = True,
    cancelled: Callable[[], bool] = lambda: False,
) -> CellOutcome:
    """Claim ``job``'s cell and compute it on ``worker``; ``busy`` if a live holder has it,
    ``done`` if it is complete (or its outcome is not to be retried).

    A worker that dies mid-cell is published as a ``failed`` record (WorkerCrash), unless
    ``publish_crash`` is False: the try is then only noted (outcome ``crashed``, under the
    cell's attempts) and the executor may try again. A worker that dies while ``cancelled()``
    (the run is being interrupted) publishes nothing."""
    store = store or open_store(job, executor)
    if not should_run(store.status(job.relative_path), job.retry):
        return CellOutcome(job, "done")
    try:
        claim = store.claim(job.hash)
    except CellBusy:
        return CellOutcome(job, "busy")
    outcome_status, message = "interrupted", None
    try:
        if not should_run(store.status(job.relative_path), job.retry):  # finished meanwhile
            outcome_status = "done"
            return CellOutcome(job, "done")
        worker.start()
        place = where or worker.where
        store.note_worker(claim, place)
        handle = (handle_factory or WorkerHandle)(job, worker, place)
        store.heartbeat(
            claim,
            on_lost=lambda why: handle.stop("failed", f"lease lost: {why}", "lease"),
        )
        reporter.started(handle)
        scratch = store.scratch(job.hash)
        timer = _time_limit(job, handle)
        try:
            ended = worker.run_cell(job, scratch, lambda event: reporter.event(handle, event))
        except BaseException:
            store.discard(scratch)
            raise
        finally:
            if timer is not None:
                timer.cancel()
        if ended.interrupted or (ended.status is None and cancelled()):
            store.discard(scratch)
            outcome = CellOutcome(job, "interrupted", where=place)
            reporter.finished(handle, outcome)
            return outcome
        result = _result_of(ended, scratch, job)
        outcome_status = str(result.get("status"))
        if ended.ended_by_stop:  # killed on purpose, or died while stopping: its status
            message = ended.crash_reason()
        elif ended.status is None:
            outcome_status, message = "crashed", ended.crash_reason()
            if not publish_crash:
                store.discard(scratch)
                outcome = CellOutcome(job, "crashed", where=place, message=message)
                reporter.finished(handle, outcome)
                return outcome
        if claim.lost is not None:
            store.discard(scratch)
            outcome = CellOutcome(job, "lost", where=place, message=claim.lost)
            outcome_status, message = "lost", claim.lost
            reporter.finished(handle, outcome)
            return outcome
        try:
            final = store.publish(
                claim,
                scratch,
                job.relative_path,
                outcome_status,
                message,
                job.retry,
                keep_checkpoint=outcome_status == "crashed",  # the rerun resumes
            )
        except (lease.LeaseLost, PublishRefused) as exc:
            outcome = CellOutcome(job, "lost", where=place, message=str(exc))
            outcome_status, message = "lost", str(exc)
            reporter.finished(handle, outcome)
            return outcome
        published = read_result(final / record.RESULT) or result
        outcome = CellOutcome(job, str(published.get("status")), published, final, place)
        reporter.finished(handle, outcome)
        return outcome
    finally:
        store.release(claim, outcome_status, message)


def _time_limit(job: CellJob, handle: CellHandle) -> threading.Timer | None:
    """A timer that asks ``handle`` to end the cell ``timeout`` once it has run for the job's
    time limit (the seam's stop request; the worker is killed if it does not stop in time)."""
    seconds = job.time_limit_seconds
    if seconds is None:
        return None
    from seqbench.limits import format_seconds

    reason = f"the cell ran past its time limit of {format_seconds(seconds)} (--time-limit)"
    timer = threading.Timer(seconds, handle.stop, args=("timeout", reason, "time-limit"))
    timer.daemon = True
    timer.start()
    return timer


def _result_of(ended: WorkerExit, scratch: Path, job: CellJob) -> dict[str, Any]:
    """The record the worker wrote; when it died without one, a record saying why (with the
    status a stop asked for, if it was killed for it or died while a stop was in force)."""
    result = read_result(scratch / record.RESULT)
    if result is not None and ended.status is not None:
        return result
    from seqbench.atomic import write_json

    stop = ended.stop if ended.ended_by_stop else None
    data: dict[str, Any] = {
        "schema": record.SCHEMA,
        "cell": {"hash": job.hash, "identity": job.identity, **job.cell},
        "timing": {"total_seconds": None},
        "recorded": record.now(),
    }
    status = str(stop.get("status")) if stop else "failed"
    if stop and status in record.OUTCOMES:
        data.update(
            status=status,
            stopped={"reason": ended.crash_reason(), "requested_by": stop.get("requested_by")},
        )
    else:
        data.update(
            status="failed",
            error={
                "type": "WorkerCrash",
                "message": ended.crash_reason(),
                "traceback": _log_tail(scratch / record.LOG),
            },
        )
    data = record.ResultRecord.model_validate(data).to_json()
    write_json(scratch / record.RESULT, data)
    return data


def _log_tail(path: Path, limit: int = 4000) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")[-limit:]
    except OSError:
        return ""


def record_lost(job: CellJob, message: str, executor: str, where: str = "") -> CellOutcome:
    """Publish a ``failed`` record for a cell whose task died for good (the scheduler's retries
    exhausted), so that the cell and every attempt are recorded and the next run retries it.
    Nothing is written when the cell was finished meanwhile or another live process holds it."""
    store = open_store(job, executor)
    if not should_run(store.status(job.relative_path), job.retry):
        return CellOutcome(job, "done", where=where, message=message)
    try:
        claim = store.claim(job.hash)
    except CellBusy:
        return CellOutcome(job, "lost", where=where, message=message)
    try:
        scratch = store.scratch(job.hash)
        data = record.ResultRecord.model_validate(
            {
                "schema": record.SCHEMA,
                "status": "failed",
                "cell": {"hash": job.hash, "identity": job.identity, **job.cell},
                "error": {"type": "TaskLost", "message": message, "traceback": ""},
                "recorded": record.now(),
            }
        ).to_json()
        from seqbench.atomic import write_json

        write_json(scratch / record.RESULT, data)
        final = store.publish(
            claim, scratch, job.relative_path, "failed", message, job.retry, keep_checkpoint=True
        )  # the task's checkpoint, if any, lets the rerun resume
        published = read_result(final / record.RESULT) or data
        return CellOutcome(job, "failed", published, final, where, message)
    except (lease.LeaseLost, PublishRefused):
        return CellOutcome(job, "lost", where=where, message=message)
    finally:
        store.release(claim, "failed", message)
