"""``seqbench report DIR``: tables with significance marks, JSON and plots from a result store.

Writes one file per format into OUTDIR (default ``DIR/report/``), each holding every table:
``tables.md``, ``tables.tex`` (booktabs ``table`` floats, for ``\\input``), ``tables.csv``
(tidy: one row per variant × dataset × quantity) and ``report.json`` (every number behind every
table); with ``--plots``, PNG and PDF figures under ``OUTDIR/plots/``. Table files are replaced
atomically. docs/report.md explains the marks, the reference rule and the JSON schema.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from seqbench import atomic
from seqbench.cli.common import err, out, reports_errors
from seqbench.errors import SeqbenchError

MIN_RESAMPLES = 10_000  # seqbench.stats.MIN_RESAMPLES (not imported here: it loads scipy)
DEFAULT_STRATA = (5, 10, 20, 50)  # seqbench.report.options.DEFAULT_STRATA


class Format(str, Enum):
    md = "md"
    latex = "latex"
    csv = "csv"
    json = "json"


class SplitName(str, Enum):
    valid = "valid"
    test = "test"


class TestChoice(str, Enum):
    t = "t"
    randomization = "randomization"
    bootstrap = "bootstrap"
    two_level_bootstrap = "two-level-bootstrap"
    wilcoxon = "wilcoxon"


class AlternativeChoice(str, Enum):
    two_sided = "two-sided"
    greater = "greater"
    less = "less"


class CorrectionChoice(str, Enum):
    holm = "holm"
    bh = "bh"
    none = "none"


class FamilyChoice(str, Enum):
    table = "table"
    column = "column"


FILES = {Format.md: "tables.md", Format.latex: "tables.tex", Format.csv: "tables.csv",
         Format.json: "report.json"}  # fmt: skip
STATS = "Statistics"  # help panel of the comparison options


@reports_errors
def report(
    directory: Annotated[
        Path,
        typer.Argument(
            metavar="DIR", help="A suite's results (ROOT/<suite>) or a results root of suites."
        ),
    ],
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", "-o", metavar="OUTDIR", help="Where to write (default DIR/report)."),
    ] = None,
    formats: Annotated[
        list[Format] | None,
        typer.Option(
            "--format", "-f", help="md, latex, csv or json; repeat for several (default all)."
        ),
    ] = None,
    split: Annotated[
        SplitName, typer.Option(help="Which split's metrics to tabulate.")
    ] = SplitName.test,
    metrics: Annotated[
        list[str] | None,
        typer.Option(
            "--metric",
            "-m",
            metavar="NAME@K",
            help="hr@K, ndcg@K or mrr@K; repeat for several (default: those in the results). "
            "A metric not in result.json is recomputed from ranks.npz.",
        ),
    ] = None,
    from_ranks: Annotated[
        bool,
        typer.Option("--from-ranks", help="Recompute every metric from ranks.npz (a check)."),
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Do not print the tables; list the files.")
    ] = False,
    reference: Annotated[
        str | None,
        typer.Option(
            metavar="LABEL",
            rich_help_panel=STATS,
            help="The variant every other is compared with (default: per dataset and metric, "
            "the role = baseline variant with the best validation score).",
        ),
    ] = None,
    test: Annotated[
        TestChoice, typer.Option(rich_help_panel=STATS, help="Paired test over users.")
    ] = TestChoice.t,
    alternative: Annotated[
        AlternativeChoice,
        typer.Option(rich_help_panel=STATS, help="greater: H1 variant better than the reference."),
    ] = AlternativeChoice.two_sided,
    correction: Annotated[
        CorrectionChoice,
        typer.Option(rich_help_panel=STATS, help="Multiple-comparison correction of a family."),
    ] = CorrectionChoice.holm,
    alpha: Annotated[
        float, typer.Option(rich_help_panel=STATS, help="Significance level after correction.")
    ] = 0.05,
    family: Annotated[
        FamilyChoice,
        typer.Option(
            rich_help_panel=STATS,
            help="Comparisons corrected together: all of a table, or each column's.",
        ),
    ] = FamilyChoice.table,
    marks: Annotated[
        bool,
        typer.Option(
            "--marks/--no-marks",
            rich_help_panel=STATS,
            help="Show significance marks (hidden, the comparisons stay in the CSV and JSON).",
        ),
    ] = True,
    resamples: Annotated[
        int,
        typer.Option(
            metavar="N", rich_help_panel=STATS, help="Draws of bootstraps and randomization tests."
        ),
    ] = MIN_RESAMPLES,
    strata: Annotated[
        str,
        typer.Option(
            metavar="EDGES",
            rich_help_panel=STATS,
            help="Upper edges of the user-history buckets of the stratified tables "
            "(5,10,20,50: ≤5, 6–10, 11–20, 21–50, >50), or none.",
        ),
    ] = ",".join(str(e) for e in DEFAULT_STRATA),
    plots: Annotated[
        bool, typer.Option("--plots", help="Also draw PNG and PDF figures in OUTDIR/plots/.")
    ] = False,
    compare: Annotated[
        str | None,
        typer.Option(
            metavar="A,B",
            help="With --plots: the per-user differences of A − B (default: every comparison "
            "of the first metric with its reference).",
        ),
    ] = None,
) -> None:
    """Tabulate a result store: per metric, mean ± std over seeds (best bold, second underlined),
    marked ▲/▼ where a variant is significantly better/worse than the reference (†).

    Also efficiency, ablation (Δ to the full model) and history-bucket tables, the failed cells.

    report.json holds every number; --plots draws figures; docs/report.md explains it all.

    Unreadable result files are skipped with a warning; of two results for one seed, the newest.

    Example: seqbench report results/smoke --out paper --format latex --metric ndcg@20 --plots
    """
    from seqbench.report import build_report, load_results, render
    from seqbench.report.analysis import analyse
    from seqbench.report.options import ReportOptions, parse_pair, parse_strata
    from seqbench.report.report_json import to_json
    from seqbench.report.tables import normalize_metric

    names = [normalize_metric(m) for m in metrics or []]  # bad input fails before any reading
    options = ReportOptions(
        reference=reference, test=test.value, alternative=alternative.value,  # type: ignore[arg-type]
        correction=correction.value, alpha=alpha, family=family.value, marks=marks,  # type: ignore[arg-type]
        n_resamples=resamples, strata=parse_strata(strata),
        compare=parse_pair(compare) if compare is not None else None,
    )  # fmt: skip
    try:
        results = load_results(directory)
    except SeqbenchError:
        if not _tuning_only(directory, out_dir, formats, plots):  # tuned, no final cells yet
            raise
        return
    built = build_report(results, names or None, split.value, from_ranks)  # type: ignore[arg-type]
    analyse(built, options)
    target = out_dir if out_dir is not None else Path(directory) / "report"
    chosen = list(dict.fromkeys(formats or list(Format)))
    renderers = {Format.md: render.to_markdown, Format.latex: render.to_latex,
                 Format.csv: render.to_csv, Format.json: to_json}  # fmt: skip
    texts = {f: renderers[f](built) for f in chosen}
    summaries = _with_tuning(directory, texts, built.warnings)  # seqbench tune's summaries
    written = [write_atomic(target / FILES[f], text) for f, text in texts.items()]
    if summaries and Format.csv in chosen:
        from seqbench.report import tuning

        written.append(write_atomic(target / "tuning.csv", tuning.to_csv(summaries)))
    stale: list[Path] = []
    if plots:
        from seqbench.report.plots import remove_stale, write_plots

        figures = write_plots(built, options, target / "plots")
        if summaries:
            from seqbench.report import tuning

            figures += tuning.write_plots(summaries, target / "plots")
        if (target / "plots").is_dir():
            stale = remove_stale(target / "plots", figures)
        if not figures:
            built.warnings.append("--plots: nothing to plot (no sweep, no max_len series, no "
                                  "comparison with a reference)")  # fmt: skip

    if not quiet:
        for renderable in render.to_rich(built):
            _print_wide(renderable)
        for failed in built.failed:
            out.print(
                f"[red]failed[/] {escape(failed.variant)} on {escape(failed.dataset)}, seed "
                f"{failed.seed}: {escape(' '.join(failed.error.split())[:200])}",
                highlight=False,
            )
    for warning in built.warnings:
        err.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)
    for path in written:
        out.print(f"wrote {escape(str(path))}", highlight=False)
    if plots and figures:
        out.print(f"wrote {len(figures)} plot files to {escape(str(target / 'plots'))}",
                  highlight=False)  # fmt: skip
    if stale:
        out.print(f"removed {len(stale)} plot files of an earlier report that this one does not "
                  f"draw: {escape(', '.join(p.name for p in stale))}", highlight=False)  # fmt: skip


def _tuning_only(
    directory: Path, out_dir: Path | None, formats: list[Format] | None, plots: bool
) -> bool:
    """A folder with tuning summaries and no final cell yet: the tuning tables alone."""
    import json

    from seqbench.report import tuning

    summaries, problems = tuning.load_summaries(directory)
    if not summaries:
        return False
    target = out_dir if out_dir is not None else Path(directory) / "report"
    chosen = list(dict.fromkeys(formats or list(Format)))
    texts = {
        Format.md: "# Tuning\n" + tuning.to_markdown(summaries),
        Format.latex: tuning.to_latex(summaries),
        Format.json: json.dumps({"tuning": tuning.to_json(summaries)}, indent=1) + "\n",
        Format.csv: tuning.to_csv(summaries),
    }
    files = {**FILES, Format.csv: "tuning.csv"}
    written = [write_atomic(target / files[f], texts[f]) for f in chosen]
    if plots:
        written += tuning.write_plots(summaries, target / "plots")
    for problem in problems:
        err.print(f"[yellow]warning:[/] {escape(problem)}", highlight=False)
    err.print("[yellow]warning:[/] no final cells yet: the tuning tables only", highlight=False)
    for path in written:
        out.print(f"wrote {escape(str(path))}", highlight=False)
    return True


def _with_tuning(directory: Path, texts: dict[Format, str], warnings: list[str]) -> list[Any]:
    """Add the tuning tables (``<suite>/tune/summary.json``, if any) to the rendered files."""
    import json

    from seqbench.report import tuning

    summaries, problems = tuning.load_summaries(directory)
    warnings.extend(problems)
    if not summaries:
        return []
    if Format.md in texts:
        texts[Format.md] += tuning.to_markdown(summaries)
    if Format.latex in texts:
        texts[Format.latex] += tuning.to_latex(summaries)
    if Format.json in texts:
        data = json.loads(texts[Format.json])
        data["tuning"] = tuning.to_json(summaries)
        texts[Format.json] = json.dumps(data, indent=1, ensure_ascii=False, allow_nan=False) + "\n"
    return summaries


def _print_wide(renderable: Any) -> None:
    """On a terminal, fit its width; in a pipe or log (80 columns by default), keep tables whole
    instead of folding every header."""
    if out.is_terminal:
        out.print(renderable)
        return
    from rich.console import Console

    wide = out.measure(renderable, options=out.options.update_width(400)).maximum
    Console(file=out.file, width=max(out.width, wide), soft_wrap=True).print(renderable)


def write_atomic(path: Path, text: str) -> Path:
    """Write ``text`` to a temporary file beside ``path`` and rename it over ``path``."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_text(path, text)
    except OSError as exc:
        raise SeqbenchError(
            f"cannot write {exc.filename or path} ({exc.strerror}); pass a writable --out OUTDIR"
        ) from None
    return path
