"""``seqbench report DIR``: Markdown, LaTeX and CSV tables from a result store.

Writes one file per format into OUTDIR (default ``DIR/report/``), each holding every table:
``tables.md``, ``tables.tex`` (booktabs ``table`` floats, for ``\\input``) and ``tables.csv``
(tidy: one row per variant × dataset × quantity). Files are replaced atomically.
"""

from __future__ import annotations

import os
import uuid
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from seqbench.cli.common import err, out, reports_errors
from seqbench.errors import SeqbenchError


class Format(str, Enum):
    md = "md"
    latex = "latex"
    csv = "csv"


class SplitName(str, Enum):
    valid = "valid"
    test = "test"


FILES = {Format.md: "tables.md", Format.latex: "tables.tex", Format.csv: "tables.csv"}


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
        typer.Option("--format", "-f", help="md, latex or csv; repeat for several (default all)."),
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
) -> None:
    """Tabulate a result store: per metric, mean ± std over seeds (best bold, second underlined).

    Also an efficiency table and the failed cells (listed, never averaged).

    Unreadable result files are skipped with a warning; of two results for one seed, the newest.

    Example: seqbench report results/smoke --out paper --format latex --metric ndcg@20
    """
    from seqbench.report import build_report, load_results, render
    from seqbench.report.tables import normalize_metric

    names = [normalize_metric(m) for m in metrics or []]  # a bad name fails before any reading
    results = load_results(directory)
    built = build_report(results, names or None, split.value, from_ranks)  # type: ignore[arg-type]
    target = out_dir if out_dir is not None else Path(directory) / "report"
    chosen = list(dict.fromkeys(formats or list(Format)))
    renderers = {Format.md: render.to_markdown, Format.latex: render.to_latex,
                 Format.csv: render.to_csv}  # fmt: skip
    written = [write_atomic(target / FILES[f], renderers[f](built)) for f in chosen]

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
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            with tmp.open("w", encoding="utf-8", newline="") as f:
                f.write(text)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    except OSError as exc:
        raise SeqbenchError(
            f"cannot write {exc.filename or path} ({exc.strerror}); pass a writable --out OUTDIR"
        ) from None
    return path
