"""The Ray executor: each cell a Ray task, on a cluster seqbench joins or starts for the run.

``seqbench run SUITE --executor ray [--address HOST:PORT]``: with ``--address`` the run joins
that cluster (``ray start --head`` elsewhere); without it seqbench starts a local cluster and
shuts it down when the run ends, also on Ctrl-C, leaving no Ray process behind. Each task
reserves ``--cpus-per-cell`` CPUs and ``--gpus-per-cell`` GPUs (fractional values pack small
cells on one large GPU; Ray does not enforce memory, so the per-cell memory cap applies where
set) and runs :func:`seqbench.executors.remote.run_job_here`: the same claim, worker and publish
steps as every executor, on whichever node Ray picks — so the results root must be a filesystem
every node sees.

Worker events come back through a Ray queue the driver drains, and stop requests go out through
a small actor the tasks poll. A task whose process dies (SIGKILL to the Ray worker, a lost node)
is retried by Ray up to ``--max-retries`` times; the retry takes the cell over under the lease
rules and the record lists both attempts.

Streams (``seqbench tune --executor ray``): K slots, each submitting one task at a time and
waiting for it, while one thread drains the events of all of them.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

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


class StopBoard:
    """Stop requests by cell hash (a Ray actor: the driver writes, tasks read)."""

    def __init__(self) -> None:
        self._requests: dict[str, dict[str, Any]] = {}

    def request(self, cell_hash: str, request: dict[str, Any]) -> None:
        self._requests.setdefault(cell_hash, request)

    def get(self, cell_hash: str) -> dict[str, Any] | None:
        return self._requests.get(cell_hash)


class _RayChannel(Channel):
    def __init__(self, events: Any, board: Any) -> None:
        self.events = events
        self.board = board

    def send(self, message: dict[str, Any]) -> None:
        self.events.put_nowait(message)

    def stop_request(self, cell_hash: str) -> dict[str, Any] | None:
        import ray

        return ray.get(self.board.get.remote(cell_hash), timeout=10)


def _task(job: dict[str, Any], events: Any, board: Any, max_attempts: int) -> dict[str, Any]:
    """The body of a cell's Ray task, on the node Ray picked."""
    import os
    import socket

    import ray

    cpus = int(ray.get_runtime_context().get_assigned_resources().get("CPU", 1) or 1)
    node = f"ray node {socket.gethostname()} (task pid {os.getpid()})"
    return run_job_here(
        job,
        _RayChannel(events, board),
        executor="ray",
        n_threads=max(1, cpus),
        max_attempts=max_attempts,
        where=node,
    )


class RayHandle(CellHandle):
    def __init__(self, job: CellJob, where: str, board: Any) -> None:
        self.job = job
        self.where = where
        self._board = board

    def stop(self, status: str, reason: str, requested_by: str | None = None) -> None:
        request = {"status": status, "reason": reason, "requested_by": requested_by}
        self._board.request.remote(self.job.hash, request)


class RayExecutor(Executor):
    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        cpus_per_cell: float = 1.0,
        gpus_per_cell: float = 0.0,
        max_retries: int = 2,
        max_attempts: int = 3,
        num_cpus: int | None = None,
        object_store_mib: int = 256,
    ) -> None:
        self.address = address
        self.cpus_per_cell = cpus_per_cell
        self.gpus_per_cell = gpus_per_cell
        self.max_retries = max_retries
        self.max_attempts = max_attempts
        self.num_cpus = num_cpus
        self.object_store_mib = object_store_mib

    def run(self, jobs: Sequence[CellJob], reporter: Reporter) -> list[CellOutcome]:
        ray = _import_ray()
        from ray.util.queue import Empty, Queue

        reporter = SerializedReporter(reporter)
        started_here = not ray.is_initialized()
        if started_here:
            self._connect(ray)
        try:
            events = Queue()
            board = ray.remote(StopBoard).options(num_cpus=0).remote()
            remote_task = self._remote_task(ray)
            by_hash = {job.hash: job for job in jobs}
            refs = {
                remote_task.remote(job.to_json(), events, board, self.max_attempts): job
                for job in jobs
            }
            handles: dict[str, RayHandle] = {}
            outcomes: list[CellOutcome] = []
            pending = list(refs)
            while pending:
                done, pending = ray.wait(pending, num_returns=1, timeout=0.2)
                self._drain(events, Empty, by_hash, handles, board, reporter)
                for ref in done:
                    job = refs[ref]
                    outcome = self._outcome(ray, ref, job)
                    self._drain(events, Empty, by_hash, handles, board, reporter)
                    handle = handles.get(job.hash) or RayHandle(job, outcome.where, board)
                    reporter.finished(handle, outcome)
                    outcomes.append(outcome)
            return outcomes
        except KeyboardInterrupt:
            for ref in list(locals().get("refs", {})):
                ray.cancel(ref, force=True)
            raise
        finally:
            if started_here:
                ray.shutdown()

    def open_slots(self, reporter: Reporter, count: int) -> StreamSlots:
        return _RaySlots(self, reporter, count)

    def _remote_task(self, ray: Any) -> Any:
        return ray.remote(_task).options(
            num_cpus=self.cpus_per_cell,
            num_gpus=self.gpus_per_cell,
            max_retries=self.max_retries,
            retry_exceptions=False,
        )

    def _connect(self, ray: Any) -> None:
        runtime_env = {"env_vars": forwarded_environment()}
        if self.address:
            try:
                ray.init(address=self.address, log_to_driver=False, runtime_env=runtime_env)
            except (ConnectionError, RuntimeError) as exc:
                raise SeqbenchError(
                    f"--address {self.address}: cannot join the Ray cluster there ({exc}); start "
                    "it with `ray start --head --port PORT` or leave --address out to run a "
                    "local one"
                ) from None
            return
        for attempt in range(3):  # Ray gives a new node 30 s to register: a busy machine may not
            try:
                ray.init(
                    num_cpus=self.num_cpus,
                    include_dashboard=False,
                    log_to_driver=False,
                    object_store_memory=self.object_store_mib * 2**20,
                    runtime_env=runtime_env,
                )
                return
            except Exception as exc:
                if "timed out during startup" not in str(exc) or attempt == 2:
                    raise
                ray.shutdown()

    def _drain(
        self,
        events: Any,
        empty: type[Exception],
        by_hash: dict[str, CellJob],
        handles: dict[str, RayHandle],
        board: Any,
        reporter: Reporter,
    ) -> None:
        while True:
            try:
                message = events.get_nowait()
            except empty:
                return
            kind = message.get("kind")
            job = by_hash.get(str(message.get("hash")))
            if kind == "message":
                reporter.message(str(message.get("text", "")))
            elif job is not None and kind == "started":
                handle = RayHandle(job, str(message.get("where", "")), board)
                handles[job.hash] = handle
                reporter.started(handle)
            elif job is not None and kind == "event" and job.hash in handles:
                reporter.event(handles[job.hash], message["event"])

    def _outcome(self, ray: Any, ref: Any, job: CellJob) -> CellOutcome:
        from ray.exceptions import RayError

        try:
            return outcome_from_json(job, ray.get(ref))
        except RayError as exc:  # the task failed for good (retries exhausted)
            reason = f"its Ray task died {self.max_retries + 1} times ({type(exc).__name__})"
            return record_lost(job, reason, self.name, where="ray")


class _RaySlots(RemoteSlots):
    """K slots on the cluster: each runs one task at a time; one thread drains the events."""

    def __init__(self, executor: RayExecutor, reporter: Reporter, count: int) -> None:
        self._ray = ray = _import_ray()
        from ray.util.queue import Empty, Queue

        self._executor = executor
        self._started_here = not ray.is_initialized()
        if self._started_here:
            executor._connect(ray)
        self._empty = Empty
        self._events = Queue()
        self._board = ray.remote(StopBoard).options(num_cpus=0).remote()
        self._task = executor._remote_task(ray)
        super().__init__(reporter, count, 0.2, "ray-events")

    def _submit(self, job: CellJob) -> Any:
        return self._task.remote(job.to_json(), self._events, self._board,
                                 self._executor.max_attempts)  # fmt: skip

    def _done(self, task: Any) -> bool:
        return bool(self._ray.wait([task], num_returns=1, timeout=0.5)[0])

    def _conclude(self, task: Any, job: CellJob) -> CellOutcome:
        return self._executor._outcome(self._ray, task, job)

    def _read_channel(self) -> None:
        self._executor._drain(
            self._events, self._empty, self._by_hash, self._handles, self._board, self._reporter
        )  # type: ignore[arg-type]

    def _fallback_handle(self, job: CellJob, outcome: CellOutcome) -> CellHandle:
        return RayHandle(job, outcome.where, self._board)

    def _cancel(self, task: Any) -> None:
        self._ray.cancel(task, force=True)

    def _shutdown(self) -> None:
        if self._started_here:
            self._ray.shutdown()


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise SeqbenchError('--executor ray needs Ray: pip install "seqbench[cluster]"') from None
    return ray


def forwarded_environment() -> dict[str, str]:
    """What the tasks must see of the driver's environment: seqbench's own variables (cache,
    data folder, plugins, mirror) and the import path."""
    import os

    names = [n for n in os.environ if n.startswith("SEQBENCH_")] + ["PYTHONPATH"]
    return {n: os.environ[n] for n in names if n in os.environ}


def wait_for_cluster(address: str, timeout: float = 60.0) -> None:
    """Block until a Ray cluster answers at ``address`` (used by tests and scripts)."""
    import ray

    deadline = time.monotonic() + timeout
    while True:
        try:
            ray.init(address=address, log_to_driver=False)
            ray.shutdown()
            return
        except (ConnectionError, RuntimeError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
