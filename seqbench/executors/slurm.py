"""The Slurm executor: the suite's cells as one job array, submitted with submitit.

``seqbench run SUITE --executor slurm --slurm-partition P --slurm-time 2h
[--slurm-gpus-per-task 1] [--array-parallelism 8]``: each array task runs
:func:`seqbench.executors.remote.run_job_here` on its node — the same claim, worker and publish
steps as every executor. submitit's job folder lives inside the results root
(``<results>/<suite>/.slurm/``), so **the results root must be on a filesystem every node sees**
(the nodes read their job from it and write the result into it).

Progress crosses nodes as small event files: each task appends its worker's events to
``<results>/<suite>/.events/<run>/<hash>.jsonl``, which the driver reads as they grow; a stop
request is a ``<hash>.stop`` file beside it, which the task polls. A preempted or requeued task
(submitit's checkpointing) starts its cell again from scratch and takes it over under the lease
rules; the record lists every attempt.

Streams (``seqbench tune --executor slurm``): K slots, each submitting one job (not an array) at
a time and waiting for it, while one thread reads the event files of all of them.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from seqbench import atomic
from seqbench.errors import SeqbenchError
from seqbench.executors.attempt import record_lost
from seqbench.executors.base import (
    CellHandle,
    CellJob,
    CellOutcome,
    Executor,
    Reporter,
    SerializedReporter,
)
from seqbench.executors.remote import Channel, outcome_from_json, run_job_here
from seqbench.executors.stream import RemoteSlots, StreamSlots


class FileChannel(Channel):
    """Events appended to ``<folder>/<hash>.jsonl``; stop requests read from ``<hash>.stop``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def send(self, message: dict[str, Any]) -> None:
        cell = message.get("hash") or "run"
        line = json.dumps(message) + "\n"
        fd = os.open(self.folder / f"{cell}.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode("utf-8"))  # one write per line: lines never interleave
        finally:
            os.close(fd)

    def stop_request(self, cell_hash: str) -> dict[str, Any] | None:
        path = self.folder / f"{cell_hash}.stop"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None


class SlurmTask:
    """The callable submitit runs on a node (checkpointable: a preempted or timed-out task is
    requeued and starts its cell again, under the lease rules)."""

    def __init__(self, events: str, max_attempts: int) -> None:
        self.events = events
        self.max_attempts = max_attempts

    def __call__(self, job: dict[str, Any]) -> dict[str, Any]:
        import socket

        cpus = os.environ.get("SLURM_CPUS_PER_TASK")
        job_id = os.environ.get("SLURM_ARRAY_JOB_ID") or os.environ.get("SLURM_JOB_ID", "local")
        task_id = os.environ.get("SLURM_ARRAY_TASK_ID")
        name = f"slurm job {job_id}" + (f"_{task_id}" if task_id else "")
        return run_job_here(
            job,
            FileChannel(Path(self.events)),
            executor="slurm",
            n_threads=int(cpus) if cpus and cpus.isdigit() else None,
            max_attempts=self.max_attempts,
            where=f"{name} on {socket.gethostname()}",
        )

    def checkpoint(self, job: dict[str, Any]) -> Any:
        import submitit

        return submitit.helpers.DelayedSubmission(self, job)


class SlurmHandle(CellHandle):
    def __init__(self, job: CellJob, where: str, folder: Path) -> None:
        self.job = job
        self.where = where
        self._folder = folder

    def stop(self, status: str, reason: str, requested_by: str | None = None) -> None:
        request = {"status": status, "reason": reason, "requested_by": requested_by}
        atomic.write_json(self._folder / f"{self.job.hash}.stop", request)


class SlurmExecutor(Executor):
    name = "slurm"

    def __init__(
        self,
        partition: str | None = None,
        time_minutes: int = 60,
        gpus_per_task: int = 0,
        cpus_per_task: int = 1,
        array_parallelism: int = 64,
        max_attempts: int = 3,
        cluster: str = "slurm",  # "local": submitit's local executor (no Slurm; tests)
        poll_seconds: float = 1.0,
    ) -> None:
        self.partition = partition
        self.time_minutes = time_minutes
        self.gpus_per_task = gpus_per_task
        self.cpus_per_task = cpus_per_task
        self.array_parallelism = array_parallelism
        self.max_attempts = max_attempts
        self.cluster = cluster
        self.poll_seconds = poll_seconds

    def run(self, jobs: Sequence[CellJob], reporter: Reporter) -> list[CellOutcome]:
        if not jobs:
            return []
        reporter = SerializedReporter(reporter)
        suite_dir = Path(jobs[0].results) / jobs[0].suite
        executor, events = self._submitit(suite_dir, jobs[0].suite)
        task = SlurmTask(str(events), self.max_attempts)
        submitted = executor.map_array(task, [job.to_json() for job in jobs])
        by_hash = {job.hash: job for job in jobs}
        handles: dict[str, SlurmHandle] = {}
        offsets: dict[str, int] = {}
        outcomes: list[CellOutcome] = []
        pending = dict(zip(submitted, jobs, strict=True))
        try:
            while pending:
                self._read_events(events, offsets, by_hash, handles, reporter)
                for sjob, job in list(pending.items()):
                    if not sjob.done():
                        continue
                    del pending[sjob]
                    self._read_events(events, offsets, by_hash, handles, reporter)
                    outcome = self._outcome(sjob, job, suite_dir)
                    handle = handles.get(job.hash) or SlurmHandle(job, outcome.where, events)
                    reporter.finished(handle, outcome)
                    outcomes.append(outcome)
                if pending:
                    time.sleep(self.poll_seconds)
        except KeyboardInterrupt:
            for sjob in pending:
                sjob.cancel(check=False)
            raise
        return outcomes

    def _submitit(self, suite_dir: Path, suite: str) -> tuple[Any, Path]:
        """A submitit executor for this run (its job folder in ``suite_dir/.slurm/RUN``) and the
        run's event folder (``suite_dir/.events/RUN``)."""
        try:
            import submitit
        except ImportError:
            raise SeqbenchError(
                '--executor slurm needs submitit: pip install "seqbench[cluster]"'
            ) from None
        import logging

        # Without Slurm accounting (sacct), submitit warns on every poll and falls back to the
        # job's output files, which is all this executor needs.
        logging.getLogger("submitit").setLevel(logging.ERROR)
        run_id = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        events = suite_dir / ".events" / run_id
        events.mkdir(parents=True, exist_ok=True)
        executor = submitit.AutoExecutor(folder=suite_dir / ".slurm" / run_id, cluster=self.cluster)
        parameters: dict[str, Any] = {
            "timeout_min": self.time_minutes,
            "cpus_per_task": self.cpus_per_task,
            "name": f"seqbench-{suite}",
        }
        if self.cluster == "slurm":
            parameters.update(
                slurm_array_parallelism=self.array_parallelism,
                slurm_gpus_per_task=self.gpus_per_task or None,
                slurm_partition=self.partition,
            )
        elif self.gpus_per_task:
            parameters["gpus_per_node"] = self.gpus_per_task
        executor.update_parameters(**{k: v for k, v in parameters.items() if v is not None})
        return executor, events

    def open_slots(self, reporter: Reporter, count: int) -> StreamSlots:
        return _SlurmSlots(self, reporter, count)

    def _read_events(
        self,
        folder: Path,
        offsets: dict[str, int],
        by_hash: dict[str, CellJob],
        handles: dict[str, SlurmHandle],
        reporter: Reporter,
    ) -> None:
        for path in sorted(folder.glob("*.jsonl")):
            start = offsets.get(path.name, 0)
            try:
                with path.open("rb") as f:
                    f.seek(start)
                    chunk = f.read()
            except OSError:
                continue
            complete = chunk[: chunk.rfind(b"\n") + 1]  # a line still being written waits
            offsets[path.name] = start + len(complete)
            for line in complete.decode("utf-8", "replace").splitlines():
                try:
                    message = json.loads(line)
                except ValueError:
                    continue
                self._dispatch(message, folder, by_hash, handles, reporter)

    def _dispatch(
        self,
        message: dict[str, Any],
        folder: Path,
        by_hash: dict[str, CellJob],
        handles: dict[str, SlurmHandle],
        reporter: Reporter,
    ) -> None:
        kind = message.get("kind")
        job = by_hash.get(str(message.get("hash")))
        if kind == "message":
            reporter.message(str(message.get("text", "")))
        elif job is not None and kind == "started":
            handle = SlurmHandle(job, str(message.get("where", "")), folder)
            handles[job.hash] = handle
            reporter.started(handle)
        elif job is not None and kind == "event" and job.hash in handles:
            reporter.event(handles[job.hash], message["event"])

    def _outcome(self, sjob: Any, job: CellJob, suite_dir: Path) -> CellOutcome:
        try:
            return outcome_from_json(job, sjob.result())
        except Exception as exc:  # submitit raises the task's failure, or a missing-output one
            text = f"{type(exc).__name__}: {exc}"
            if "has not produced any output" in text or "No such file" in text:
                text += (
                    f" — submitit found no output of job {sjob.job_id} in {suite_dir}/.slurm: "
                    "the results root must be on a filesystem every node sees (NFS, Lustre, …)"
                )
            return record_lost(job, text, self.name, where=f"slurm job {sjob.job_id}")


class _SlurmSlots(RemoteSlots):
    """K slots, each one Slurm job at a time; one thread reads every job's event file. The job
    folder and event folder are made with the first job (its results root is the stream's)."""

    def __init__(self, executor: SlurmExecutor, reporter: Reporter, count: int) -> None:
        self._executor = executor
        self._submitit: Any = None
        self._events: Path | None = None
        self._task: SlurmTask | None = None
        self._offsets: dict[str, int] = {}
        super().__init__(reporter, count, executor.poll_seconds, "slurm-events")

    def _submit(self, job: CellJob) -> Any:
        suite_dir = Path(job.results) / job.suite
        if self._submitit is None:
            self._submitit, self._events = self._executor._submitit(suite_dir, job.suite)
            self._task = SlurmTask(str(self._events), self._executor.max_attempts)
        return self._submitit.submit(self._task, job.to_json())

    def _done(self, task: Any) -> bool:
        if task.done():
            return True
        time.sleep(self._executor.poll_seconds)
        return False

    def _conclude(self, task: Any, job: CellJob) -> CellOutcome:
        return self._executor._outcome(task, job, Path(job.results) / job.suite)

    def _read_channel(self) -> None:
        if self._events is not None:
            self._executor._read_events(
                self._events, self._offsets, self._by_hash, self._handles, self._reporter
            )  # type: ignore[arg-type]

    def _fallback_handle(self, job: CellJob, outcome: CellOutcome) -> CellHandle:
        assert self._events is not None
        return SlurmHandle(job, outcome.where, self._events)

    def _cancel(self, task: Any) -> None:
        task.cancel(check=False)
