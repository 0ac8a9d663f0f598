"""The studies of one ``seqbench tune`` process: which trial to start, when to stop, what a
trial's cells say, and which trials of dead processes to run again.

One study per models entry (× ablation × sweep point) with a ``tune`` table and per dataset,
named by :func:`seqbench.tune.storage.study_name`, so that every process tuning the same suite
joins it. Each trial is one validation-only cell per trial seed (:mod:`seqbench.tune.points`),
stored in the suite's hidden ``.tune/`` store and computed through the executor seam
(:meth:`seqbench.executors.base.Executor.run_stream`: worker processes here, Ray tasks or
Slurm jobs); a repeated point reuses its published result.

**Exactly N.** "Start another trial?" is decided inside the study's lock
(:meth:`seqbench.tune.storage.Storage.lock`: an OS file lock for the journal, a PostgreSQL
advisory lock for the database), which also covers the ``ask`` that creates the trial:
another starts only while complete + pruned + running < N, counted from the storage that every
process shares. A failed trial (its cell failed) no longer counts, so another is started; one
that completes or is pruned cannot exceed N because it was counted while running. A process
whose trials are all done but whose study still has running trials elsewhere waits, so that it
can take over if one of them fails.

**Dead trials.** Each trial records its holder (host, pid, the pid's start, the boot, and this
process's lease file under ``.tune/.leases/``, heartbeated like a cell's lease). Inside the
lock, before deciding, every running trial of another process is checked with
:func:`seqbench.lease.stale_reason`: a holder on this host whose process is gone is dead at
once; with the journal, a holder elsewhere whose lease was not renewed for ``--lease``; with
PostgreSQL, one whose Optuna heartbeat is older than its grace period. A dead trial is marked
failed and its parameters enqueued again (the next ``ask`` takes them), so the study continues
where it stopped and still ends at exactly N.

**Seeds and pruning.** A trial trains the ``[tune] seeds`` one after another; its value is the
mean over them of ``metric`` at the early-stopping best epoch. The first seed reports, after
every epoch, the best ``metric`` so far as the intermediate value, and the pruner may stop it
(``handle.stop("pruned", …, "pruner")``): the cell is recorded ``pruned`` with its last epoch and
the trial ``PRUNED``. A pruned trial trains no further seed.

**Samplers.** TPE (default) and random draw from a sampler seeded per trial with the ``[tune]
seed`` and the trial's number, so that processes never share a random stream and one process
alone is reproducible. The grid sampler enqueues the first grid point (in the order of
:func:`seqbench.suite.tune.grid_points`: first key slowest) that no trial has taken, inside the
lock: no point is ever run twice, across processes
too.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
import uuid
import warnings
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from seqbench import lease, record
from seqbench.cells import Cell, canonical_json, source_fingerprint
from seqbench.errors import SeqbenchError
from seqbench.executors.base import CellHandle, CellJob, CellOutcome, Executor
from seqbench.runner import ClusterOptions, RunOptions
from seqbench.store import read_result
from seqbench.suite import Suite
from seqbench.suite.tune import Dimension, TuneSettings, grid_points
from seqbench.tune.points import apply_point, default_point, tidy, trial_identity, trial_label
from seqbench.tune.storage import Storage, scrub, study_name

log = logging.getLogger(__name__)

#: The hidden store of trial cells, under ``<results>/<suite>/``.
TRIALS = ".tune"
#: The visible folder of a suite's tuning outputs (journal, summary.json, best.toml).
TUNE_DIR = "tune"
#: User attributes seqbench sets on trials (visible in optuna-dashboard).
HOLDER, CELLS, EPOCHS, ERROR, REUSED, RETRY_OF, LOST = (
    "seqbench:holder",
    "seqbench:cells",
    "seqbench:epochs",
    "seqbench:error",
    "seqbench:reused",
    "seqbench:retry_of",
    "seqbench:lost",
)
#: The study's user attribute describing it (space, budget, metric; written once).
STUDY_ATTR = "seqbench"
#: The record's ``tune.trial`` of a study's default cell (the suite's own values; not a trial).
DEFAULT_TRIAL = -1


class TuneError(SeqbenchError):
    """A study cannot be run as asked (e.g. its storage holds another search space)."""


@dataclass
class StudyPlan:
    """One study: a variant of a models entry on one dataset."""

    name: str
    dataset: str
    label: str
    model: str
    entry: int
    space: dict[str, Dimension]
    targets: dict[str, str]
    cells: list[Cell]  # base cells, one per trial seed (device and backend resolved)
    source: dict[str, Any]  # the dataset's fingerprint (cell identities)
    default: dict[str, Any]  # the suite's own values of the searched keys

    @property
    def short(self) -> str:
        return f"{self.label}/{self.dataset}"


@dataclass(frozen=True)
class TuneOptions:
    results: Path
    jobs: int = 1
    devices: tuple[str, ...] = ("cpu",)
    threads: int | None = None
    cache_dir: Path | None = None
    eval_batch_size: int = 4096
    lease_seconds: float = lease.DEFAULT_LEASE_SECONDS
    poll_seconds: float = 1.0
    cluster: ClusterOptions | None = None  # --executor ray|slurm and their options


class TuneDisplay(Protocol):
    """What the command line is told (rich lines per study, or one line per trial)."""

    def study(self, name: str, counts: dict[str, int], best: tuple[int, float] | None) -> None: ...
    def trial(self, name: str, line: str) -> None: ...
    def message(self, text: str) -> None: ...


class SilentDisplay:
    def study(self, name: str, counts: dict[str, int], best: tuple[int, float] | None) -> None:
        pass

    def trial(self, name: str, line: str) -> None:
        pass

    def message(self, text: str) -> None:
        pass


def plan_studies(
    suite: Suite, cells: list[Cell], cache_dir: Path | None, mirror: str | None
) -> list[StudyPlan]:
    """The studies of a suite: ``cells`` are its cells (devices resolved) of the first seed
    whose models entry has a search space."""
    tune = suite.tune
    assert tune is not None and tune.seeds is not None
    sources: dict[str, dict[str, Any]] = {}
    plans = []
    for cell in cells:
        entry = suite.models[cell.variant.order[0]]
        if not entry.tune:
            continue
        key = cell.dataset.model_dump_json()
        if key not in sources:
            fingerprint = source_fingerprint(
                cell.dataset, cache_dir=cache_dir, mirror=mirror, download=True
            )
            assert fingerprint is not None
            sources[key] = fingerprint
        plans.append(
            StudyPlan(
                name=study_name(suite.name, cell.variant.label, cell.dataset.name),
                dataset=cell.dataset.name,
                label=cell.variant.label,
                model=cell.variant.model,
                entry=cell.variant.order[0],
                space=dict(entry.tune),
                targets=dict(entry.tune_targets),
                cells=[cell.model_copy(update={"seed": s}) for s in tune.seeds],
                source=sources[key],
                default=default_point(cell, entry.tune_targets),
            )
        )
    return plans


def distributions(space: dict[str, Dimension]) -> dict[str, Any]:
    """Optuna's distribution of each searched key."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    found: dict[str, Any] = {}
    for key, dim in space.items():
        if dim.choices is not None:
            found[key] = CategoricalDistribution(dim.choices)
        elif dim.integer:
            assert dim.low is not None and dim.high is not None
            found[key] = IntDistribution(
                int(dim.low), int(dim.high), log=dim.log, step=int(dim.step or 1)
            )
        else:
            assert dim.low is not None and dim.high is not None
            found[key] = FloatDistribution(dim.low, dim.high, log=dim.log, step=dim.step)
    return found


def make_pruner(tune: TuneSettings, max_epochs: int) -> Any:
    import optuna

    warmup = tune.warmup or 0
    if tune.pruner == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=tune.startup_trials, n_warmup_steps=warmup
        )
    if tune.pruner == "hyperband":
        low = max(1, warmup)
        return optuna.pruners.HyperbandPruner(
            min_resource=low, max_resource=max(max_epochs, low + 1), reduction_factor=3
        )
    return optuna.pruners.NopPruner()


def make_sampler(tune: TuneSettings, number: int) -> Any:
    """A sampler seeded for the trial about to be created (``number`` trials exist)."""
    import optuna

    seed = ((tune.seed or 0) * 1_000_003 + number) % 2**32
    if tune.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    return optuna.samplers.RandomSampler(seed=seed)  # grid: every trial's point is enqueued


@dataclass(eq=False)
class TrialRun:
    """A trial this process runs: its cells (one per seed, in turn) and what they gave."""

    study: StudyState
    trial: Any  # optuna.Trial
    number: int
    params: dict[str, Any]
    jobs: list[CellJob]
    index: int = 0
    values: list[float] = field(default_factory=list)
    epochs: int = 0
    best: float = -math.inf
    stop_asked: bool = False
    reported: set[int] = field(default_factory=set)
    reused: bool = True  # until a cell is computed here


@dataclass(eq=False)
class DefaultRun:
    """The study's default cells (the suite's values): validation only, not a trial."""

    study: StudyState
    jobs: list[CellJob]


@dataclass(eq=False)
class StudyState:
    plan: StudyPlan
    study: Any = None  # optuna.Study, once opened
    distributions: dict[str, Any] = field(default_factory=dict)
    grid: list[dict[str, Any]] = field(default_factory=list)
    started: float | None = None
    closed: bool = False
    why_closed: str = ""
    invalid: int = 0  # trials whose point the model refused (failed at once)


WAIT, DONE = "wait", "done"


class Tuner:
    """Runs every study of a suite from this process (a
    :class:`~seqbench.executors.stream.JobSource` and a
    :class:`~seqbench.executors.base.Reporter` for :meth:`Executor.run_stream`)."""

    def __init__(
        self,
        suite: Suite,
        plans: list[StudyPlan],
        storage: Storage,
        options: TuneOptions,
        display: TuneDisplay | None = None,
    ) -> None:
        assert suite.tune is not None
        self.suite = suite
        self.tune: TuneSettings = suite.tune
        self.storage = storage
        self.options = options
        self.display = display or SilentDisplay()
        self.suite_dir = Path(options.results).expanduser().absolute() / suite.name
        self.leases = self.suite_dir / TRIALS / ".leases"
        self.studies = [StudyState(plan) for plan in plans]
        self._lock = threading.RLock()
        self._queue: deque[CellJob] = deque()
        self._owners: dict[int, TrialRun | DefaultRun] = {}
        self._running: dict[tuple[str, int], TrialRun] = {}
        self._defaults: dict[str, dict[int, float | None]] = {}
        self._cancelled = threading.Event()
        self._me = lease.Holder.this_process()
        self._lease: lease.Lease | None = None

    # ------------------------------------------------------------------ running

    def run(self) -> None:
        """Run every study to its budget on ``--jobs`` slots."""
        _quiet_optuna()
        self.leases.mkdir(parents=True, exist_ok=True)
        self._clean_stale_leases()
        self._lease = lease.acquire(
            self.leases / f"tuner-{uuid.uuid4().hex[:12]}.json",
            duration=self.options.lease_seconds,
            holder=self._me,
        )
        stop = threading.Event()
        beat = threading.Thread(target=self._heartbeat, args=(stop,), daemon=True)
        beat.start()
        try:
            for state in self.studies:
                self._open(state)
            executor = self._executor()
            try:
                executor.run_stream(
                    self, self, self.options.jobs, poll_seconds=self.options.poll_seconds
                )
            finally:
                self._abandon_running("interrupted before it finished")
        finally:
            stop.set()
            beat.join(timeout=5)
            with contextlib.suppress(OSError):
                lease.release(self._lease)

    def _executor(self) -> Executor:
        """Where the trials run: worker processes here (``--jobs`` of them), or ``--jobs``
        trials at once as Ray tasks or Slurm jobs (``--executor``)."""
        from seqbench.runner import make_executor

        if self.options.cluster is not None and self.options.cluster.executor != "local":
            return make_executor(
                RunOptions(results=self.options.results, cluster=self.options.cluster)
            )
        from seqbench.executors.local import LocalExecutor

        return LocalExecutor(
            self.options.jobs,
            list(self.options.devices),
            self.options.threads,
            poll_seconds=self.options.poll_seconds,
        )

    def _heartbeat(self, stop: threading.Event) -> None:
        """Renew this process's lease; with PostgreSQL, Optuna's heartbeat of our trials."""
        from seqbench.tune.storage import HEARTBEAT_SECONDS

        interval = min(self.options.lease_seconds / lease.HEARTBEATS_PER_LEASE, HEARTBEAT_SECONDS)
        while not stop.wait(max(0.05, interval)):
            with contextlib.suppress(lease.LeaseLost, OSError):
                assert self._lease is not None
                lease.renew(self._lease)
            for run in list(self._running.values()):
                with contextlib.suppress(Exception):
                    self.storage.record_heartbeat(run.trial._trial_id)

    def _clean_stale_leases(self) -> None:
        """Leases of tune processes that are gone: a trial naming a missing lease is dead
        anyway, so removing them loses nothing."""
        now = time.time()
        for path in self.leases.glob("tuner-*.json"):
            current = lease.read(path)
            if current is not None and lease.stale_reason(current, path, now, self._me):
                path.unlink(missing_ok=True)

    def _open(self, state: StudyState) -> None:
        import optuna

        plan = state.plan
        described = {
            "suite": self.suite.name,
            "dataset": plan.dataset,
            "variant": plan.label,
            "model": plan.model,
            "space": {k: v.model_dump(exclude_defaults=True) for k, v in plan.space.items()},
            "targets": plan.targets,
            "metric": self.tune.metric,
        }
        epochs = max(c.train.epochs for c in plan.cells)
        with self.storage.lock(plan.name):
            try:
                study = optuna.create_study(
                    storage=self.storage.optuna,
                    study_name=plan.name,
                    direction="maximize",
                    load_if_exists=True,
                    pruner=make_pruner(self.tune, epochs),
                )
            except Exception as exc:
                raise TuneError(
                    f"study {plan.name}: cannot open it in {self.storage.shown} "
                    f"({type(exc).__name__}: {scrub(str(exc), self.storage.url)})"
                ) from None
            stored = study.user_attrs.get(STUDY_ATTR)
            if stored is None:
                study.set_user_attr(STUDY_ATTR, described)
            elif canonical_json(stored.get("space")) != canonical_json(described["space"]) or (
                stored.get("metric") != described["metric"]
            ):
                raise TuneError(
                    f"study {plan.name} in {self.storage.shown} was made with another search "
                    f"space or metric ({canonical_json(stored.get('space'))}, "
                    f"{stored.get('metric')}); tune into another storage (--storage, or another "
                    "--results) or remove its journal to start afresh"
                )
        state.study = study
        state.distributions = distributions(plan.space)
        if self.tune.sampler == "grid":
            state.grid = grid_points(plan.space)
        default = DefaultRun(
            state, [self._job(state, DEFAULT_TRIAL, plan.default, c) for c in plan.cells]
        )
        with self._lock:
            for job in default.jobs:
                self._owners[id(job)] = default
                self._queue.append(job)
        self._show(state)

    # ------------------------------------------------------------------ JobSource

    def next_job(self) -> CellJob | None:
        while not self._cancelled.is_set():
            with self._lock:
                if self._queue:
                    return self._queue.popleft()
                waiting = False
                for state in self.studies:
                    if state.closed:
                        continue
                    decided = self._decide(state)
                    if isinstance(decided, TrialRun):
                        return decided.jobs[0]
                    if decided == WAIT:
                        waiting = True
                if not waiting:
                    return None
            self._cancelled.wait(self.options.poll_seconds)
        return None

    def cancel(self) -> None:
        self._cancelled.set()

    def defer(self, job: CellJob) -> bool:
        """A point another process is computing (a concurrent trial's): wait for it, as the
        trial's value is that cell's."""
        return False

    def _decide(self, state: StudyState) -> TrialRun | str:
        """Start a trial of ``state`` (a :class:`TrialRun`), or :data:`WAIT` (trials running
        elsewhere may still fail), or :data:`DONE` (closes it for this process)."""
        from optuna.trial import TrialState

        plan, budget = state.plan, self.tune.trials
        while True:
            with self.storage.lock(plan.name):
                self._recover(state)
                trials = state.study.get_trials(deepcopy=False)
                done = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
                running = sum(t.state == TrialState.RUNNING for t in trials)
                waiting = sum(t.state == TrialState.WAITING for t in trials)
                if budget is not None and done >= budget:
                    return self._close(state, f"{done} trials")
                if self._timed_out(state):
                    return self._close(state, "timeout")
                if budget is not None and done + running >= budget:
                    return WAIT
                if state.invalid > max(10, 2 * (budget or 0)):
                    return self._close(state, "the model refused too many sampled points")
                if self.tune.sampler == "grid" and waiting == 0:
                    taken = {_point_key(t.params) for t in trials if t.state != TrialState.WAITING}
                    free = [p for p in state.grid if _point_key(p) not in taken]
                    if not free:
                        return WAIT if running else self._close(state, "grid exhausted")
                    state.study.enqueue_trial(free[0])
                state.study.sampler = make_sampler(self.tune, len(trials))
                trial = state.study.ask(state.distributions)
                trial.set_user_attr(HOLDER, self._holder())
                self.storage.record_heartbeat(trial._trial_id)
            if state.started is None:
                state.started = time.monotonic()
            params = tidy(plan.space, trial.params)
            try:
                jobs = [self._job(state, trial.number, params, cell) for cell in plan.cells]
            except ValueError as exc:  # the model refuses the point (e.g. heads ∤ hidden size)
                state.invalid += 1
                message = " ".join(str(exc).split())[:500]
                self._tell(state, trial, "FAIL", error=f"invalid point: {message}")
                self.display.trial(plan.name, f"FAILED trial {trial.number} of {plan.short}: "
                                   f"the model refuses {params}: {message}")  # fmt: skip
                continue
            run = TrialRun(state, trial, trial.number, params, jobs)
            with contextlib.suppress(Exception):
                trial.set_user_attr(CELLS, [job.hash for job in jobs])
            for job in jobs:
                self._owners[id(job)] = run
            self._running[(plan.name, trial.number)] = run
            self.display.trial(plan.name, f"trial {trial.number} of {plan.short}: {_show(params)}")
            return run

    def _timed_out(self, state: StudyState) -> bool:
        """``[tune] timeout``: seconds since this process started the study's first trial."""
        limit, started = self.tune.timeout, state.started
        return limit is not None and started is not None and time.monotonic() - started >= limit

    def _timed_out(self, state: StudyState) -> bool:
        """``[tune] timeout``: seconds since this process started the study's first trial."""
        limit, started = self.tune.timeout, state.started
        return limit is not None and started is not None and time.monotonic() - started >= limit

    def _close(self, state: StudyState, why: str) -> str:
        state.closed, state.why_closed = True, why
        return DONE

    def _holder(self) -> dict[str, Any]:
        assert self._lease is not None
        return {**self._lease.content(), "lease": self._lease.path.name}

    def _recover(self, state: StudyState) -> None:
        """Inside the lock: fail the running trials of dead processes and enqueue their
        parameters again (see the module docstring)."""
        from optuna.exceptions import UpdateFinishedTrialError
        from optuna.trial import TrialState

        if self.storage.heartbeats:
            from optuna.storages import fail_stale_trials

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fail_stale_trials(state.study)  # its callback enqueues them (see open_storage)
        now = time.time()
        for trial in state.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if (state.plan.name, trial.number) in self._running:
                continue
            why = self._dead(trial, now)
            if why is None:
                continue
            try:
                self.storage.optuna.set_trial_user_attr(trial._trial_id, LOST, why)
                self.storage.optuna.set_trial_state_values(trial._trial_id, TrialState.FAIL)
            except (UpdateFinishedTrialError, KeyError, RuntimeError):
                continue
            requeue(state.study, trial.params, trial.number)
            self.display.message(
                f"{state.plan.name}: trial {trial.number} was lost ({why}); marked failed and "
                "its parameters queued again"
            )

    def _dead(self, trial: Any, now: float) -> str | None:
        holder = trial.user_attrs.get(HOLDER)
        if not isinstance(holder, dict):
            # asked by a process that died before recording itself (inside the lock) — or a
            # trial of some other Optuna client, which seqbench leaves to its owner
            return "no holder recorded" if self.storage.kind == "journal" else None
        if self.storage.kind == "journal":
            path = self.leases / str(holder.get("lease", ""))
            current = lease.read(path)
            if current is None:
                return "its process's lease is gone"
            return lease.stale_reason(current, path, now, self._me)
        # PostgreSQL: Optuna's heartbeat judges other hosts; a holder here is checked at once
        probe = {**holder, "heartbeat": now}
        return lease.stale_reason(probe, Path(str(holder.get("lease", "-"))), now, self._me)

    # ------------------------------------------------------------------ cells

    def _job(self, state: StudyState, number: int, params: dict[str, Any], base: Cell) -> CellJob:
        plan = state.plan
        cell = apply_point(base, params, plan.targets, label=trial_label(base, params))
        identity, cell_hash = trial_identity(cell, plan.source)
        what = "default" if number == DEFAULT_TRIAL else f"trial {number}"
        return CellJob(
            suite=TRIALS,
            results=str(self.suite_dir),
            relative=str(cell.directory(cell_hash)),
            cell=cell.to_json(),
            hash=cell_hash,
            identity=identity,
            title=f"{plan.short} {what} seed {base.seed}",
            cache_dir=str(self.options.cache_dir) if self.options.cache_dir else None,
            eval_batch_size=self.options.eval_batch_size,
            lease_seconds=self.options.lease_seconds,
            extra={
                "validation_only": True,
                "tune": {
                    "study": plan.name,
                    "trial": number,
                    "storage": self.storage.shown,
                    "sampler": self.tune.sampler,
                    "params": params,
                    "metric": self.tune.metric,
                },
            },
        )

    def job_done(self, job: CellJob, outcome: CellOutcome) -> None:
        with self._lock:
            owner = self._owners.pop(id(job), None)
        if owner is None:
            return
        result = outcome.result
        if result is None and outcome.status == "done":
            result = read_result(job.cell_dir / record.RESULT)
        status = str(result.get("status")) if result is not None else outcome.status
        if isinstance(owner, DefaultRun):
            self._default_done(owner, job, result if status == "ok" else None)
            return
        run = owner
        if outcome.status != "done":
            run.reused = False
        if status not in record.STATUSES:  # interrupted, lost, crashed: not this trial's fault
            self._abandon(run, f"its cell was {status}: {outcome.message or 'not published'}")
            return
        assert result is not None
        run.epochs += int(result.get("epochs_run") or 0)
        if run.index == 0 and outcome.status == "done":  # reused: its curve as if run now
            self._report_curve(run, result)
        if status == "ok":
            value = _metric(result, self.tune.metric)
            if value is None:
                self._finish(run, "FAIL", error=f"no valid {self.tune.metric} in {job.cell_dir}")
                return
            run.values.append(value)
            if run.index + 1 < len(run.jobs):
                run.index += 1
                nxt = run.jobs[run.index]
                with self._lock:
                    self._queue.appendleft(nxt)
                return
            self._finish(run, "COMPLETE", value=sum(run.values) / len(run.values))
        elif status == "pruned":
            self._finish(run, "PRUNED")
        else:
            error = result.get("error") or {}
            stopped = result.get("stopped") or {}
            message = error.get("message") or stopped.get("reason") or status
            self._finish(run, "FAIL", error=f"{status}: {message}")

    def _default_done(self, run: DefaultRun, job: CellJob, result: dict[str, Any] | None) -> None:
        seed = int(job.cell.get("seed", 0))
        value = _metric(result, self.tune.metric) if result is not None else None
        self._defaults.setdefault(run.study.plan.name, {})[seed] = value

    def default_value(self, name: str) -> float | None:
        """The mean over trial seeds of the default cells' value (None if any is missing)."""
        values = self._defaults.get(name, {})
        if not values or any(v is None for v in values.values()):
            return None
        return sum(v for v in values.values() if v is not None) / len(values)

    def _report_curve(self, run: TrialRun, result: dict[str, Any]) -> None:
        best = -math.inf
        for entry in result.get("curve") or []:
            value = (entry.get("valid") or {}).get(self.tune.metric)
            if value is None:
                continue
            best = max(best, float(value))
            self._report(run, int(entry["epoch"]), best)

    def _report(self, run: TrialRun, epoch: int, best: float) -> None:
        if epoch in run.reported:
            return
        run.reported.add(epoch)
        with contextlib.suppress(Exception):
            run.trial.report(best, epoch)

    def _finish(
        self, run: TrialRun, state: str, value: float | None = None, error: str = ""
    ) -> None:
        with contextlib.suppress(Exception):
            run.trial.set_user_attr(EPOCHS, run.epochs)
            run.trial.set_user_attr(REUSED, run.reused)
        self._tell(run.study, run.trial, state, value, error)
        self._running.pop((run.study.plan.name, run.number), None)
        shown = f" {self.tune.metric} {value:.4f}" if value is not None else ""
        detail = f" ({run.epochs} epochs{', reused' if run.reused else ''})"
        word = {"COMPLETE": "done", "PRUNED": "PRUNED", "FAIL": "FAILED"}[state]
        text = f"{word} trial {run.number} of {run.study.plan.short}:{shown}{detail}"
        if error:
            text += f": {error}"
        self.display.trial(run.study.plan.name, text)
        self._show(run.study)

    def _tell(self, state: StudyState, trial: Any, kind: str, value: float | None = None,
              error: str = "") -> None:  # fmt: skip
        from optuna.trial import TrialState

        if error:
            with contextlib.suppress(Exception):
                trial.set_user_attr(ERROR, error[:2000])
        try:
            state.study.tell(trial, value if kind == "COMPLETE" else None, state=TrialState[kind])
        except Exception as exc:  # failed meanwhile by another process (it judged us dead)
            self.display.message(
                f"{state.plan.name}: trial {trial.number} could not be recorded as {kind} "
                f"({scrub(str(exc), self.storage.url)})"
            )

    def _abandon(self, run: TrialRun, why: str) -> None:
        """A trial this process cannot finish: failed, and its parameters queued again."""
        from optuna.trial import TrialState

        if self._running.pop((run.study.plan.name, run.number), None) is None:
            return
        with contextlib.suppress(Exception):
            run.trial.set_user_attr(LOST, why)
        try:
            self.storage.optuna.set_trial_state_values(run.trial._trial_id, TrialState.FAIL)
        except Exception:
            return
        with contextlib.suppress(Exception):
            requeue(run.study.study, run.params, run.number)
        self.display.trial(
            run.study.plan.name,
            f"LOST trial {run.number} of {run.study.plan.short}: {why}; queued again",
        )

    def _abandon_running(self, why: str) -> None:
        for run in list(self._running.values()):
            self._abandon(run, why)

    def _show(self, state: StudyState) -> None:
        from optuna.trial import TrialState

        trials = state.study.get_trials(deepcopy=False)
        counts = {
            "complete": sum(t.state == TrialState.COMPLETE for t in trials),
            "pruned": sum(t.state == TrialState.PRUNED for t in trials),
            "failed": sum(t.state == TrialState.FAIL for t in trials),
            "running": sum(t.state == TrialState.RUNNING for t in trials),
            "budget": self.tune.trials or len(state.grid),
        }
        complete = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
        best = max(complete, key=lambda t: t.value, default=None)
        self.display.study(state.plan.name, counts, (best.number, best.value) if best else None)

    # ------------------------------------------------------------------ Reporter

    def started(self, handle: CellHandle) -> None:
        pass

    def event(self, handle: CellHandle, event: dict[str, Any]) -> None:
        if event.get("event") == "warning":
            self.display.message(f"warning ({handle.job.title}): {event.get('message', '')}")
            return
        if event.get("event") != "epoch":
            return
        owner = self._owners.get(id(handle.job))
        if not isinstance(owner, TrialRun) or owner.index != 0:
            return
        value = (event.get("valid") or {}).get(self.tune.metric)
        if value is None:
            return
        owner.best = max(owner.best, float(value))
        epoch = int(event["epoch"])
        self._report(owner, epoch, owner.best)
        if owner.stop_asked or self.tune.pruner == "none":
            return
        try:
            prune = owner.trial.should_prune()
        except Exception:
            return
        if prune:
            owner.stop_asked = True
            handle.stop(
                "pruned",
                f"{self.tune.pruner} pruner after epoch {epoch}: best valid {self.tune.metric} "
                f"{owner.best:.4f} so far",
                "pruner",
            )

    def finished(self, handle: CellHandle, outcome: CellOutcome) -> None:
        pass

    def message(self, text: str) -> None:
        self.display.message(text)


def requeue(study: Any, params: dict[str, Any], number: int) -> None:
    """Enqueue a lost trial's parameters again (the next ``ask`` takes them)."""
    study.enqueue_trial(dict(params), user_attrs={RETRY_OF: number})


def on_stale(study: Any, trial: Any) -> None:
    """Optuna's callback for a PostgreSQL trial whose heartbeat stopped (it is failed)."""
    requeue(study, trial.params, trial.number)


def _metric(result: dict[str, Any] | None, metric: str | None) -> float | None:
    valid = ((result or {}).get("metrics") or {}).get("valid") or {}
    value = valid.get(metric)
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def _point_key(params: dict[str, Any]) -> str:
    return canonical_json({k: float(v) if isinstance(v, int) and not isinstance(v, bool) else v
                           for k, v in params.items()})  # fmt: skip


def _show(params: dict[str, Any]) -> str:
    return ", ".join(
        f"{k} = {v:.4g}" if isinstance(v, float) else f"{k} = {v}" for k, v in params.items()
    )


def _quiet_optuna() -> None:
    """Optuna's per-trial log lines and experimental-feature warnings stay out of our display."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed")
