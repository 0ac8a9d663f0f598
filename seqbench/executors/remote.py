"""What a cluster task runs: one cell job, on whatever node the scheduler picked.

Ray tasks and Slurm array jobs call :func:`run_job_here` with the job's JSON. It starts a worker
process on this node, runs :func:`seqbench.executors.attempt.run_attempt` — the same claim,
heartbeat, worker and publish steps as the local executor — and forwards worker events through a
:class:`Channel` to the driver (a Ray queue, or event files in the store), polling it for stop
requests. A seqbench worker that dies mid-cell (a signal, the out-of-memory killer) is retried
here up to ``max_attempts`` times in all before its failure is published; a cell that fails for
its own reason (a NaN, bad input) is recorded at once and never retried in a loop. If the task's
own process dies, the scheduler retries the task (Ray ``max_retries``, Slurm requeue) and the
next try takes the cell over under the lease rules (at once on the same host, after expiry
elsewhere). Every try is listed in the record's ``attempts``.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from typing import Any

from seqbench import threads
from seqbench.executors.attempt import run_attempt
from seqbench.executors.base import CellHandle, CellJob, CellOutcome
from seqbench.executors.worker_process import WorkerProcess

#: Seconds between two looks for a stop request, and between two looks at a busy cell.
POLL_SECONDS = 0.5


class Channel:
    """How a task talks to its driver: events out, stop requests in."""

    def send(self, message: dict[str, Any]) -> None:
        raise NotImplementedError

    def stop_request(self, cell_hash: str) -> dict[str, Any] | None:
        raise NotImplementedError


class _Forwarder:
    """A reporter that sends everything to the driver through the channel."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel

    def started(self, handle: CellHandle) -> None:
        self.channel.send({"kind": "started", "hash": handle.job.hash, "where": handle.where})

    def event(self, handle: CellHandle, event: dict[str, Any]) -> None:
        self.channel.send({"kind": "event", "hash": handle.job.hash, "event": event})

    def finished(self, handle: CellHandle, outcome: CellOutcome) -> None:
        pass  # the task's return value carries the outcome

    def message(self, text: str) -> None:
        self.channel.send({"kind": "message", "text": text})


def outcome_to_json(outcome: CellOutcome) -> dict[str, Any]:
    return {
        "hash": outcome.job.hash,
        "status": outcome.status,
        "result": outcome.result,
        "path": str(outcome.path) if outcome.path is not None else None,
        "where": outcome.where,
        "message": outcome.message,
    }


def outcome_from_json(job: CellJob, data: dict[str, Any]) -> CellOutcome:
    from pathlib import Path

    path = data.get("path")
    return CellOutcome(
        job,
        str(data["status"]),
        data.get("result"),
        Path(path) if path else None,
        str(data.get("where") or ""),
        str(data.get("message") or ""),
    )


def run_job_here(
    job_data: dict[str, Any],
    channel: Channel,
    *,
    executor: str,
    device: str | None = None,
    n_threads: int | None = None,
    max_attempts: int = 3,
    where: str | None = None,
) -> dict[str, Any]:
    """Compute one cell on this node (see the module docstring); returns the outcome as JSON."""
    job = CellJob.from_json(job_data)
    device = device or str(job.cell.get("device") or "cpu")  # the type the cell was hashed with
    cores = n_threads or threads.available_cores()
    place = where or f"{socket.gethostname()} pid {os.getpid()}"
    worker = WorkerProcess(device, cores, workers=1, name=place)
    stop_watch = _StopWatch(channel, job, worker)
    told_busy = False
    crashes = 0
    try:
        while True:
            outcome = run_attempt(
                job,
                worker,
                _Forwarder(channel),
                executor=executor,
                publish_crash=crashes + 1 >= max_attempts,
            )
            if outcome.status == "busy":  # another live holder (another node): wait for it
                if not told_busy:
                    text = f"waiting for another process to finish {job.title}"
                    channel.send({"kind": "message", "text": text})
                    told_busy = True
                time.sleep(POLL_SECONDS)
                continue
            if outcome.status != "crashed":
                return outcome_to_json(outcome)
            crashes += 1  # the seqbench worker died; a fresh one tries again
    finally:
        stop_watch.close()
        worker.close()


class _StopWatch:
    """Looks for a stop request for the job every :data:`POLL_SECONDS` and passes it on."""

    def __init__(self, channel: Channel, job: CellJob, worker: WorkerProcess) -> None:
        self._done = threading.Event()
        self._thread = threading.Thread(
            target=self._watch, args=(channel, job, worker), name="stop-watch", daemon=True
        )
        self._thread.start()

    def _watch(self, channel: Channel, job: CellJob, worker: WorkerProcess) -> None:
        while not self._done.wait(POLL_SECONDS):
            try:
                request = channel.stop_request(job.hash)
            except Exception:  # the driver is gone or busy: look again later
                continue
            if request:
                worker.stop(
                    job,
                    str(request.get("status") or "failed"),
                    str(request.get("reason") or "stopped by the driver"),
                    request.get("requested_by"),
                )

    def close(self) -> None:
        self._done.set()
        self._thread.join(timeout=5)
