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

from seqbench.cli.common import err, out, reports_errors
from seqbench.cli.validate import DataDirOption
from seqbench.progress import RichBars

DEFAULT_RESULTS = Path("results")


class QuietDisplay:
    """One line per finished cell: for CI and log files."""

    def cells(self, total: int) -> None:
        pass

    def cell_started(self, planned: Any) -> None:
        pass

    def event(self, planned: Any, event: dict[str, Any]) -> None:
        if event.get("event") == "warning":  # shown even when quiet: it concerns the numbers
            self.message(f"warning ({planned.title}): {event.get('message', '')}")

    def cell_finished(self, planned: Any, result: dict[str, Any], path: Path) -> None:
        out.print(escape(_finished_line(planned, result, path)), highlight=False)

    def message(self, text: str) -> None:
        err.print(escape(text), highlight=False)


class RichDisplay(QuietDisplay):
    """Bars for cells, epochs and batches, on stderr."""

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
        self._epochs: TaskID | None = None
        self._batches: TaskID | None = None

    def __enter__(self) -> RichDisplay:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def cells(self, total: int) -> None:
        self._cells = self.progress.add_task("cells", total=total, info="")

    def cell_started(self, planned: Any) -> None:
        epochs = planned.cell.train.epochs
        self._epochs = self.progress.add_task(f"  {escape(planned.title)}", total=epochs, info="")
        self._batches = self.progress.add_task("    batches", total=None, info="")

    def event(self, planned: Any, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "warning":
            super().event(planned, event)
        elif kind == "epoch_start" and self._batches is not None:
            self.progress.reset(self._batches, total=event.get("batches"))
        elif kind == "batch" and self._batches is not None:
            self.progress.update(self._batches, completed=event.get("batch", 0))
        elif kind == "epoch" and self._epochs is not None:
            metric = planned.cell.train.valid_metric
            value = event.get("valid", {}).get(metric)
            best = event.get("best_epoch")
            info = f"valid {metric} {value:.4f} (best epoch {best})" if value is not None else ""
            self.progress.update(self._epochs, completed=event["epoch"] + 1, info=info)

    def cell_finished(self, planned: Any, result: dict[str, Any], path: Path) -> None:
        for task in (self._epochs, self._batches):
            if task is not None:
                self.progress.remove_task(task)
        self._epochs = self._batches = None
        if self._cells is not None:
            self.progress.advance(self._cells)
        self.progress.console.print(escape(_finished_line(planned, result, path)), highlight=False)

    def message(self, text: str) -> None:
        self.progress.console.print(escape(text), highlight=False)


def _finished_line(planned: Any, result: dict[str, Any], path: Path) -> str:
    if result.get("status") != "ok":
        message = result.get("error", {}).get("message", "unknown error")
        return f"FAILED {planned.title}: {message} (log: {path / 'cell.log'})"
    metrics = result.get("metrics", {}).get("test", {})
    shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())
    seconds = result.get("timing", {}).get("total_seconds") or 0.0
    return (
        f"ok {planned.title}: test {shown} ({result.get('epochs_run', 0)} epochs, {seconds:.1f} s)"
    )


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
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:N or auto.")] = "auto",
    backend: Annotated[
        str,
        typer.Option(
            help="Mamba blocks: torch (pure PyTorch), mamba_ssm (fused CUDA kernels) or auto "
            "(the kernels when installed and on CUDA). Recorded in each result and its hash."
        ),
    ] = "auto",
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Print the resolved suite and its cells; train nothing."),
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
) -> None:
    """Run a suite: every dataset × model × ablation × sweep point × seed not yet complete.

    Completed cells are skipped, so an interrupted run resumes where it stopped; a failing cell
    is recorded (reason, traceback, log) and the others go on. Exit status 0 only if every
    selected cell succeeded.
    """
    from seqbench import runner
    from seqbench.cells import source_fingerprint
    from seqbench.cli.validate import print_plan
    from seqbench.suite import load_suite

    suite = load_suite(suite_file, data_dir=data_dir)
    cells = runner.select(suite.cells(), tuple(only or ()))
    if not dry_run:
        suite.require_data(cells)  # a data-folder file not found: what to get, where to put it
    options = runner.RunOptions(
        results=results,
        device=device,
        backend=backend,
        only=tuple(only or ()),
        cache_dir=cache_dir,
        mirror=mirror,
    )
    if dry_run:
        cells = runner.with_backends(cells, options)
        hashes = {}
        for cell in cells:
            source = source_fingerprint(
                cell.dataset, cache_dir=cache_dir, mirror=mirror, download=False
            )
            hashes[id(cell)] = cell.hash(source) if source is not None else None
        print_plan(suite, cells, hashes)
        return
    runner.with_backends(cells, options)  # a bad --device/--backend fails before dataset work
    try:
        if quiet:
            planned = runner.plan(cells, options)
            summary = runner.run_cells(suite.name, planned, options, QuietDisplay())
        else:
            with RichBars(err) as bars:
                planned = runner.plan(cells, options, bars=bars)
            with RichDisplay() as display:
                summary = runner.run_cells(suite.name, planned, options, display)
    except KeyboardInterrupt:
        err.print("interrupted: finished cells are kept; run the same command again to resume")
        raise typer.Exit(130) from None
    out.print(escape(runner.summary_line(summary)), highlight=False)
    out.print(f"results: {escape(str(results / suite.name))}", highlight=False)
    if not summary.ok:
        raise typer.Exit(1)
