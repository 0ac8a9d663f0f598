"""``seqbench run SUITE.toml``: train and evaluate every pending cell of a suite."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from seqbench.cli.common import err, out, parse_duration, parse_retry, reports_errors
from seqbench.cli.executor_options import (
    AddressOption,
    ArrayParallelismOption,
    CpusPerCellOption,
    ExecutorOption,
    GpusPerCellOption,
    MaxRetriesOption,
    SlurmCpusOption,
    SlurmGpusOption,
    SlurmPartitionOption,
    SlurmTimeOption,
    cluster_options,
)
from seqbench.cli.validate import DataDirOption
from seqbench.limits import parse_memory
from seqbench.progress import RichBars

DEFAULT_RESULTS = Path("results")


class QuietDisplay:
    """One line per finished cell: for CI and log files (an executor reporter)."""

    def cells(self, total: int) -> None:
        pass

    def started(self, handle: Any) -> None:
        pass

    def event(self, handle: Any, event: dict[str, Any]) -> None:
        if event.get("event") == "warning":  # shown even when quiet: it concerns the numbers
            self.message(f"warning ({handle.job.title}): {event.get('message', '')}")

    def finished(self, handle: Any, outcome: Any) -> None:
        line = _finished_line(outcome)
        if line:
            out.print(escape(line), highlight=False)

    def message(self, text: str) -> None:
        err.print(escape(text), highlight=False)


class RichDisplay(QuietDisplay):
    """A bar for the suite and one line per running cell (epochs, batches, validation), on
    stderr."""

    def __init__(self) -> None:
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            console=err,
            transient=True,
        )
        self._cells: TaskID | None = None
        self._running: dict[str, TaskID] = {}
        self._validation: dict[str, str] = {}

    def __enter__(self) -> RichDisplay:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def cells(self, total: int) -> None:
        self._cells = self.progress.add_task("cells", total=total, info="")

    def started(self, handle: Any) -> None:
        job = handle.job
        train = job.cell.get("train", {})
        total = train.get("epochs")
        if train.get("mode") == "throughput":  # warm-up and timed steps, then the scoring
            total = (train.get("warmup_steps") or 0) + (train.get("steps") or 0) + 1
        self._running[job.hash] = self.progress.add_task(
            f"  {escape(job.title)}", total=total, info=escape(_short_where(handle.where))
        )

    def event(self, handle: Any, event: dict[str, Any]) -> None:
        kind = event.get("event")
        task = self._running.get(handle.job.hash)
        if kind == "warning":
            super().event(handle, event)
        if task is None:
            return
        where = _short_where(handle.where)
        seen = self._validation.get(handle.job.hash, "")
        if kind == "step":  # a throughput cell
            name = {"warmup": "warm-up", "train": "step", "score": "scored users"}
            info = f"{name.get(event.get('phase'), '?')} {event.get('step')}/{event.get('steps')}"
            self.progress.advance(task)
            self.progress.update(task, info=escape(f"{info} {where}"))
        elif kind == "batch":
            info = f"batch {event.get('batch', 0)}/{event.get('batches', '?')} {seen} {where}"
            self.progress.update(task, info=escape(info))
        elif kind == "epoch":
            metric = handle.job.cell.get("train", {}).get("valid_metric", "")
            value = event.get("valid", {}).get(metric)
            if value is not None:
                seen = f"valid {metric} {value:.4f} (best epoch {event.get('best_epoch')})"
                self._validation[handle.job.hash] = seen
            self.progress.update(task, completed=event["epoch"] + 1, info=escape(f"{seen} {where}"))

    def finished(self, handle: Any, outcome: Any) -> None:
        task = self._running.pop(handle.job.hash, None)
        self._validation.pop(handle.job.hash, None)
        if task is not None:
            self.progress.remove_task(task)
        if self._cells is not None and outcome.published:
            self.progress.advance(self._cells)
        line = _finished_line(outcome)
        if line:
            self.progress.console.print(escape(line), highlight=False)

    def message(self, text: str) -> None:
        self.progress.console.print(escape(text), highlight=False)


def _short_where(where: str) -> str:
    return f"[{where.split(' (')[0]}]" if where else ""


def _finished_line(outcome: Any) -> str:
    title = outcome.job.title
    result = outcome.result or {}
    status = result.get("status") if outcome.published else outcome.status
    path = outcome.path
    if status == "ok" and result.get("throughput"):
        return f"ok {title}: {throughput_summary(result['throughput'])}"
    if status == "ok":
        metrics = result.get("metrics", {}).get("test") or {}
        shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if v is not None)
        seconds = result.get("timing", {}).get("total_seconds") or 0.0
        epochs = result.get("epochs_run", 0)
        resumed = result.get("timing", {}).get("resumed_from_epoch")
        also = f", resumed after epoch {resumed}" if resumed is not None else ""
        return f"ok {title}: test {shown} ({epochs} epochs, {seconds:.1f} s{also})"
    if status == "failed":
        message = result.get("error", {}).get("message", "unknown error")
        return f"FAILED {title}: {message} (log: {path / 'cell.log' if path else '?'})"
    if status in ("oom", "timeout", "pruned"):
        stopped = result.get("stopped", {})
        epoch = stopped.get("epoch")
        at = f" after epoch {epoch}" if epoch is not None else ""
        return f"{status.upper()} {title}{at}: {stopped.get('reason', '')}"
    if status == "lost":
        return f"LOST {title}: {outcome.message} (not published)"
    if status == "crashed":
        return f"CRASHED {title}: {outcome.message} (will be retried)"
    return ""


def throughput_summary(section: dict[str, Any]) -> str:
    """``0.412 s/step (5 steps), 621 tokens/s, 88.1 users/s, +312 MiB`` of a throughput cell."""
    parts = []
    if section.get("seconds_per_step") is not None:
        done = len(section.get("step_seconds") or [])
        parts.append(f"{section['seconds_per_step']:.3g} s/step ({done} steps)")
    if section.get("tokens_per_second") is not None:
        parts.append(f"{section['tokens_per_second']:,.0f} tokens/s")
    if section.get("users_per_second") is not None:
        parts.append(f"{section['users_per_second']:,.3g} users/s")
    memory = section.get("memory") or {}
    if memory.get("train_peak") is not None and memory.get("baseline") is not None:
        above = memory["train_peak"] - memory["baseline"]
        parts.append(f"training {above:+,.0f} MiB above the baseline ({memory.get('kind')})")
    return ", ".join(parts) or "no step completed"


@reports_errors
def run(
    suite_file: Annotated[Path, typer.Argument(metavar="SUITE.toml", help="The suite to run.")],
    results: Annotated[
        Path, typer.Option("--results", "-r", help="Results root; cells go to ROOT/<suite>/.")
    ] = DEFAULT_RESULTS,
    only: Annotated[
        list[str] | None,
        typer.Option(
            "--only",
            metavar="KEY=GLOB[,KEY=GLOB]",
            help="Run only matching cells (keys: dataset, model, variant, ablation, seed, role); "
            "repeat for alternatives.",
        ),
    ] = None,
    device: Annotated[
        str,
        typer.Option(
            help="cpu, cuda, cuda:N, auto, or a list (cuda:0,cuda:1): workers are placed on it "
            "in turn."
        ),
    ] = "auto",
    jobs: Annotated[
        int,
        typer.Option(
            "--jobs", "-j", min=1, help="Cells at once: N worker processes sharing the cores."
        ),
    ] = 1,
    threads: Annotated[
        int | None,
        typer.Option(min=1, help="CPU threads per worker (default: the cores divided by --jobs)."),
    ] = None,
    retry: Annotated[
        str | None,
        typer.Option(
            metavar="OUTCOMES",
            help="Also rerun cells that ended with these outcomes (oom, timeout, pruned); failed "
            "cells are always rerun.",
        ),
    ] = None,
    lease: Annotated[
        str,
        typer.Option(
            help="How long a silent holder keeps a cell before another process takes it over "
            "(e.g. 90s, 10m); holders heartbeat well inside it. Dead processes on this host lose "
            "their cells at once.",
        ),
    ] = "5m",
    executor: ExecutorOption = "local",
    address: AddressOption = None,
    cpus_per_cell: CpusPerCellOption = 1.0,
    gpus_per_cell: GpusPerCellOption = 0.0,
    max_retries: MaxRetriesOption = 2,
    slurm_partition: SlurmPartitionOption = None,
    slurm_time: SlurmTimeOption = "60m",
    slurm_gpus_per_task: SlurmGpusOption = 0,
    slurm_cpus_per_task: SlurmCpusOption = 1,
    array_parallelism: ArrayParallelismOption = 64,
    memory_limit: Annotated[
        str,
        typer.Option(
            metavar="SIZE",
            help="Memory cap per cell (4GiB, 512MiB, 50%, auto, none): on a CPU the worker's "
            "resident memory, killed past it; on CUDA the allocator's. A cell past it ends oom "
            "and the suite goes on. auto: 80% of the memory available at start, divided by "
            "--jobs (on CUDA: no allocator cap, the host's memory watched at that share).",
        ),
    ] = "auto",
    time_limit: Annotated[
        str | None,
        typer.Option(
            metavar="DURATION",
            help="Wall-time cap per cell (90s, 10m, 2h): a cell past it ends timeout and the "
            "suite goes on. Default: none.",
        ),
    ] = None,
    backend: Annotated[
        str,
        typer.Option(
            help="Mamba blocks: torch (pure PyTorch), mamba_ssm (fused CUDA kernels) or auto "
            "(the kernels when installed and on CUDA). Recorded in each result and its hash."
        ),
    ] = "auto",
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Print the resolved suite and its cells, with what a run would do with each "
            "(complete, in training elsewhere, resumes after epoch N, to train); train nothing.",
        ),
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No bars; one line per cell.")
    ] = False,
    cache_dir: Annotated[
        Path | None,
        typer.Option(help="Dataset cache (default: $SEQBENCH_CACHE_DIR or the user cache)."),
    ] = None,
    mirror: Annotated[str | None, typer.Option(help="Download mirror base URL.")] = None,
    data_dir: DataDirOption = None,
    tuned: Annotated[
        bool,
        typer.Option(
            "--tuned",
            help="Entries with a search space use the best values of `seqbench tune` "
            "(ROOT/<suite>/tune/summary.json); each result records them under tuned_from.",
        ),
    ] = False,
) -> None:
    """Run a suite: every dataset × model × ablation × sweep point × seed not yet complete.

    Completed cells are skipped, so an interrupted run resumes where it stopped; a failing cell
    is recorded (reason, traceback, log) and the others go on; a cell past --memory-limit or
    --time-limit ends oom or timeout (outcomes, rerun only with --retry). Exit status 0 only if
    every selected cell succeeded.
    """
    from seqbench import runner
    from seqbench.cells import source_fingerprint
    from seqbench.cli.validate import print_plan
    from seqbench.suite import load_suite

    suite = load_suite(suite_file, data_dir=data_dir)
    cells = runner.select(suite.cells(), tuple(only or ()))
    extras: list[dict[str, Any]] = [{} for _ in cells]
    if tuned:
        from seqbench.tune.tuned import tuned_cells

        cells, extras = tuned_cells(suite, cells, results)
    if not dry_run:
        suite.require_data(cells)  # a data-folder file not found: what to get, where to put it
    options = runner.RunOptions(
        results=results,
        device=device,
        backend=backend,
        only=tuple(only or ()),
        cache_dir=cache_dir,
        mirror=mirror,
        jobs=jobs,
        threads=threads,
        retry=parse_retry(retry),
        lease_seconds=parse_duration(lease, "--lease"),
        cluster=cluster_options(
            executor,
            address,
            cpus_per_cell,
            gpus_per_cell,
            max_retries,
            slurm_partition,
            slurm_time,
            slurm_gpus_per_task,
            slurm_cpus_per_task,
            array_parallelism,
        ),
        memory_limit=parse_memory(memory_limit),
        time_limit=parse_duration(time_limit, "--time-limit") if time_limit else None,
    )
    if dry_run:
        cells = runner.with_backends(cells, options)
        from seqbench.store import stored_cell

        store_dir = Path(results).expanduser() / suite.name
        hashes: dict[int, str | None] = {}
        states = []
        for cell in cells:
            source = source_fingerprint(
                cell.dataset, cache_dir=cache_dir, mirror=mirror, download=False
            )
            h = hashes[id(cell)] = cell.hash(source) if source is not None else None
            state = stored_cell(store_dir, cell.directory(h), h, options.retry) if h else None
            states.append(state)
        print_plan(suite, cells, hashes, states, store_dir)
        return
    runner.with_backends(cells, options)  # a bad --device/--backend fails before dataset work
    _stop_on_sigterm()
    try:
        if quiet:
            planned = _with_extras(runner.plan(cells, options), extras)
            summary = runner.run_cells(suite.name, planned, options, QuietDisplay())
        else:
            with RichBars(err) as bars:
                planned = _with_extras(runner.plan(cells, options, bars=bars), extras)
            with RichDisplay() as display:
                summary = runner.run_cells(suite.name, planned, options, display)
        from seqbench.robustness.stored import complete_planned  # [eval] noise added later

        conditions_ok = complete_planned(
            planned, options, lambda text: out.print(escape(text), highlight=False)
        )
    except KeyboardInterrupt:
        err.print("interrupted: finished cells are kept; run the same command again to resume")
        raise typer.Exit(130) from None
    out.print(escape(runner.summary_line(summary)), highlight=False)
    out.print(f"results: {escape(str(results / suite.name))}", highlight=False)
    if not summary.ok or not conditions_ok:
        raise typer.Exit(1)


def _stop_on_sigterm() -> None:
    """SIGTERM (a scheduler's preemption, ``timeout``, ``kill``) ends the run as Ctrl-C does:
    workers interrupted, nothing half-done published, claims released."""
    import signal

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def _with_extras(planned: list[Any], extras: list[dict[str, Any]]) -> list[Any]:
    """Each planned cell (in the order of its cell) with its job's extra (``--tuned``)."""
    for cell, extra in zip(planned, extras, strict=True):
        cell.extra = extra
    return planned
