"""``seqbench tune SUITE.toml``: search the suite's spaces on validation, then write
``tune/summary.json`` and ``tune/best.toml`` for ``seqbench run --tuned`` and the report."""

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

from seqbench.cli.common import err, out, parse_duration, reports_errors
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
from seqbench.cli.run import DEFAULT_RESULTS
from seqbench.cli.validate import DataDirOption
from seqbench.errors import ConfigError


class QuietTuneDisplay:
    """One line per trial (started, done, pruned, failed): for CI and log files."""

    def study(self, name: str, counts: dict[str, int], best: tuple[int, float] | None) -> None:
        pass

    def trial(self, name: str, line: str) -> None:
        out.print(escape(line), highlight=False)

    def message(self, text: str) -> None:
        err.print(escape(text), highlight=False)


class RichTuneDisplay(QuietTuneDisplay):
    """A progress line per study: trials done of the budget, pruned, failed, running, best."""

    def __init__(self) -> None:
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            console=err,
        )
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> RichTuneDisplay:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def study(self, name: str, counts: dict[str, int], best: tuple[int, float] | None) -> None:
        done = counts["complete"] + counts["pruned"]
        info = f"pruned {counts['pruned']}, failed {counts['failed']}"
        if counts["running"]:
            info += f", running {counts['running']}"
        if best is not None:
            info += f", best {best[1]:.4f} (trial {best[0]})"
        if name not in self._tasks:
            self._tasks[name] = self.progress.add_task(
                escape(name), total=counts["budget"] or None, info=""
            )
        self.progress.update(self._tasks[name], completed=done, info=escape(info))

    def trial(self, name: str, line: str) -> None:
        if line.startswith(("FAILED", "LOST")):  # the rest shows in the study's line
            self.progress.console.print(escape(line), highlight=False)

    def message(self, text: str) -> None:
        self.progress.console.print(escape(text), highlight=False)


@reports_errors
def tune(
    suite_file: Annotated[Path, typer.Argument(metavar="SUITE.toml", help="The suite to tune.")],
    results: Annotated[
        Path, typer.Option("--results", "-r", help="Results root; tuning goes to ROOT/<suite>/.")
    ] = DEFAULT_RESULTS,
    storage: Annotated[
        str | None,
        typer.Option(
            metavar="URL|FILE",
            help="Where the studies live: postgresql://USER:PASSWORD@HOST/DB for workers on "
            "several machines, or a journal file (default ROOT/<suite>/tune/journal.log). "
            "The password is never written anywhere.",
        ),
    ] = None,
    jobs: Annotated[
        int,
        typer.Option(
            "--jobs", "-j", min=1, help="Trials at once: N worker processes sharing the cores."
        ),
    ] = 1,
    threads: Annotated[
        int | None,
        typer.Option(min=1, help="CPU threads per worker (default: the cores divided by --jobs)."),
    ] = None,
    device: Annotated[
        str, typer.Option(help="cpu, cuda, cuda:N, auto, or a list (cuda:0,cuda:1).")
    ] = "auto",
    backend: Annotated[
        str, typer.Option(help="Mamba blocks: torch, mamba_ssm or auto (as seqbench run).")
    ] = "auto",
    lease: Annotated[
        str,
        typer.Option(
            help="How long a silent process keeps its trials and cells before another takes "
            "them over (dead processes on this host lose them at once)."
        ),
    ] = "5m",
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress lines; one line per trial.")
    ] = False,
    cache_dir: Annotated[
        Path | None,
        typer.Option(help="Dataset cache (default: $SEQBENCH_CACHE_DIR or the user cache)."),
    ] = None,
    mirror: Annotated[str | None, typer.Option(help="Download mirror base URL.")] = None,
    data_dir: DataDirOption = None,
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
) -> None:
    """Tune the suite's search spaces (tune = {…} on [[models]] entries) on validation only.

    One study per models entry and dataset, [tune] trials each (complete + pruned; failed ones
    do not count), --jobs at once (worker processes here, or Ray tasks / Slurm jobs with
    --executor ray|slurm); processes sharing a storage join the same studies, and a
    rerun resumes them. Writes ROOT/<suite>/tune/summary.json and best.toml; then
    `seqbench run SUITE --tuned` trains the final seeds with the best values. See docs/tune.md.
    """
    from seqbench import runner
    from seqbench.suite import load_suite

    suite = load_suite(suite_file, data_dir=data_dir)
    tuned = [plan for plan in suite.models if plan.tune]
    if suite.tune is None or not tuned:
        raise ConfigError(
            f"{suite_file}: no models entry has a search space; add e.g. tune = {{ lr = {{ "
            "low = 1e-4, high = 1e-2, log = true }} to a [[models]] entry (docs/tune.md)"
        )
    _require_optuna()
    options = runner.RunOptions(
        results=results,
        device=device,
        backend=backend,
        cache_dir=cache_dir,
        mirror=mirror,
        jobs=jobs,
        threads=threads,
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
    )
    first = [
        c
        for c in suite.cells()
        if c.seed == suite.seeds[0] and suite.models[c.variant.order[0]].tune
    ]
    suite.require_data(first)
    try:
        _tune(suite, first, options, storage, quiet)
    except KeyboardInterrupt:
        err.print("interrupted: finished trials are kept; run the same command again to resume")
        raise typer.Exit(130) from None


def _tune(
    suite: Any, cells: list[Any], options: Any, storage_spec: str | None, quiet: bool
) -> None:
    from seqbench import runner
    from seqbench.progress import RichBars
    from seqbench.tune.driver import TRIALS, TUNE_DIR, TuneOptions, Tuner, on_stale, plan_studies
    from seqbench.tune.outputs import write_outputs
    from seqbench.tune.storage import open_storage

    cells = runner.with_backends(cells, options)
    if quiet:
        runner.plan(cells, options)  # download, process and cache each dataset once
    else:
        with RichBars(err) as bars:
            runner.plan(cells, options, bars=bars)
    plans = plan_studies(suite, cells, options.cache_dir, options.mirror)
    suite_dir = Path(options.results).expanduser().absolute() / suite.name
    storage = open_storage(
        storage_spec, suite_dir / TUNE_DIR, suite_dir / TRIALS / ".locks", on_stale=on_stale
    )
    tune_options = TuneOptions(
        results=options.results,
        jobs=options.jobs,
        devices=tuple(runner.resolve_devices(options.device)),
        threads=options.threads,
        cache_dir=options.cache_dir,
        eval_batch_size=options.eval_batch_size,
        lease_seconds=options.lease_seconds,
        cluster=options.cluster,
    )
    try:
        if quiet:
            tuner = Tuner(suite, plans, storage, tune_options, QuietTuneDisplay())
            _run(tuner)
        else:
            with RichTuneDisplay() as display:
                tuner = Tuner(suite, plans, storage, tune_options, display)
                _run(tuner)
        summary_path, best_path = write_outputs(tuner)
    finally:
        storage.close()
    _print_summary(tuner, summary_path, best_path)


def _run(tuner: Any) -> None:
    from seqbench.tune.outputs import write_outputs

    try:
        tuner.run()
    except KeyboardInterrupt:
        write_outputs(tuner)  # what is finished, for the report and a look at best.toml
        raise


def _print_summary(tuner: Any, summary_path: Path, best_path: Path) -> None:
    import json

    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    metric = summary["budget"]["metric"]
    for study in summary["studies"]:
        counts = study["trials"]
        best = study["best"]
        line = (
            f"{study['study']}: {counts['complete']} complete, {counts['pruned']} pruned, "
            f"{counts['failed']} failed"
        )
        if best is not None:
            default = study["default"]["value"]
            shown = f"{default:.4f}" if default is not None else "?"
            params = ", ".join(f"{k} = {v:.4g}" if isinstance(v, float) else f"{k} = {v}"
                               for k, v in best["params"].items())  # fmt: skip
            line += (
                f"; best valid {metric} {best['value']:.4f} (trial {best['trial']}; default "
                f"{shown}): {params}"
            )
        out.print(escape(line), highlight=False)
    out.print(f"wrote {escape(str(summary_path))}", highlight=False)
    out.print(f"wrote {escape(str(best_path))}", highlight=False)
    out.print(f"studies: {escape(summary['dashboard'])}", highlight=False)


def _require_optuna() -> None:
    try:
        import optuna  # noqa: F401
    except ImportError:
        raise ConfigError(
            'seqbench tune needs Optuna: pip install "seqbench[tune]" (optuna, optuna-dashboard '
            "and the PostgreSQL driver)"
        ) from None
