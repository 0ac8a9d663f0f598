"""Renderers of a :class:`~seqbench.report.tables.Report`: Markdown, LaTeX, tidy CSV, terminal.

Each renderer only formats: which cell is best, what the numbers are and what the legend says are
decided once, in :mod:`seqbench.report.tables`. Metrics show 4 decimals; times and memory get a
readable unit (s, min, h; MiB, GiB); the CSV keeps full-precision numbers in base units (seconds,
MiB) so that it can be read back exactly.

- Markdown: GitHub pipe tables, best ``**bold**``, second ``<u>underlined</u>``, marks as
  ``<sup>…</sup>`` (▲ better, ▼ worse than the reference †).
- LaTeX: one ``table`` float per table, booktabs rules, ``\\textbf`` / ``\\underline``, the legend
  in the caption; marks as ``\\textsuperscript{$\\uparrow$}``, ``$\\downarrow$``, ``$\\dagger$``
  (base LaTeX symbols); needs only ``\\usepackage{booktabs}`` under plain pdflatex.
- CSV: one row per variant × dataset × quantity (``table`` = ``metric``, ``efficiency``,
  ``ablation``, ``strata`` or ``failed``), columns :data:`CSV_COLUMNS`: seed values, mean, std,
  the t-based interval over seeds, and for compared cells the reference, difference with its
  interval, relative difference, d_z, test, raw and adjusted p and the decision.
"""

from __future__ import annotations

import csv
import io
import math
import re
from typing import TYPE_CHECKING, Any

from seqbench.report.tables import DECIMALS, Cell, Report, Table

if TYPE_CHECKING:
    from rich.console import RenderableType

CSV_COLUMNS = (
    "table", "quantity", "split", "variant", "model", "ablation", "role", "dataset",
    "mean", "std", "n", "seeds", "values", "emphasis", "marks", "text",
    "column", "ci_low", "ci_high", "reference", "diff", "diff_low", "diff_high", "rel", "d_z",
    "test", "p_value", "p_adjusted", "significant",
)  # fmt: skip
MISSING = "–"


# ---------------------------------------------------------------------------------------------
# Numbers (plain text, shared by every renderer)
# ---------------------------------------------------------------------------------------------


def format_value(cell: Cell, value: float | None = None) -> str:
    """A cell's mean (or ``value``) in its kind's unit, without markup."""
    x = cell.mean if value is None else value
    if x is None:
        return MISSING
    if cell.kind == "metric":
        return f"{x:.{DECIMALS}f}"
    if cell.kind == "count":
        return f"{round(x):,}" if float(x).is_integer() else f"{x:,.1f}"
    if cell.kind == "seconds":
        return format_seconds(x)
    if cell.kind == "rate":
        return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"
    if cell.kind == "mib":
        return format_mib(x)
    if cell.kind == "delta":
        return f"{x:+.{DECIMALS}f}"
    if cell.kind == "percent":
        return f"{100 * x:+.1f}%"
    if cell.kind == "effect":
        return f"{x:+.2f}"
    if cell.kind == "pvalue":
        return format_p(x)
    if cell.kind == "exponent":
        return f"{x:.2f}"
    return str(x)


def format_p(p: float) -> str:
    """``0.012``, ``<0.001`` (more digits than that are noise at usual user counts)."""
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def format_seconds(seconds: float) -> str:
    """``0.123 s``, ``2.50 s``, ``12.3 s``, ``4.2 min``, ``1.50 h``."""
    if seconds < 1:
        return f"{seconds:.3f} s"
    if seconds < 100:
        return f"{seconds:.2f} s" if seconds < 10 else f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def format_mib(mib: float) -> str:
    """``812 MiB``, ``3.42 GiB``."""
    if mib >= 1024:
        return f"{mib / 1024:.2f} GiB"
    return f"{mib:.1f} MiB" if mib < 10 else f"{mib:.0f} MiB"


def _parts(cell: Cell) -> tuple[str, str | None]:
    """(mean, std) as text; std is None unless the cell is a metric over ≥ 2 seeds."""
    std = None
    if cell.kind == "metric" and cell.std is not None:
        std = f"{cell.std:.{DECIMALS}f}"
    text = format_value(cell)
    if cell.kind == "delta" and cell.ci_low is not None and cell.ci_high is not None:
        text += f" [{cell.ci_low:+.{DECIMALS}f}, {cell.ci_high:+.{DECIMALS}f}]"
    if cell.kind == "exponent" and cell.ci_low is not None and cell.ci_high is not None:
        text += f" [{cell.ci_low:.2f}, {cell.ci_high:.2f}]"
    return text, std


# ---------------------------------------------------------------------------------------------
# Markdown
# ---------------------------------------------------------------------------------------------


def to_markdown(report: Report) -> str:
    """The whole report as GitHub-flavoured Markdown."""
    lines = [f"# {md_escape(report.title)}", ""]
    lines += [" ".join(md_escape(n) for n in report.notes), ""] if report.notes else []
    for table in report.all_tables:
        lines += [f"## {md_escape(table.title)}", "", *markdown_table(table), ""]
        if table.legend:
            lines += [" ".join(md_escape(item) for item in table.legend), ""]
    if report.failed:
        lines += [f"## Failed cells ({len(report.failed)}, not aggregated)", ""]
        rows = [[f.variant, f.dataset, str(f.seed), _one_line(f.error), f.path]
                for f in report.failed]  # fmt: skip
        lines += _pipe_table(["variant", "dataset", "seed", "error", "folder"],
                             ["left", "left", "right", "left", "left"],
                             [[md_escape(c) for c in row] for row in rows])  # fmt: skip
        lines.append("")
    if report.warnings:
        lines += ["## Warnings", ""]
        lines += [f"- {md_escape(_one_line(w))}" for w in report.warnings]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def markdown_table(table: Table) -> list[str]:
    """One table as pipe-table lines (no title, no legend)."""
    body = [[_md_cell(cell) for cell in row] for row in table.rows]
    return _pipe_table([md_escape(h) for h in table.header], table.align, body)


def _md_cell(cell: Cell) -> str:
    if cell.kind == "text":
        return md_escape(cell.text)
    if cell.empty:
        return MISSING
    mean, std = _parts(cell)
    text = f"{mean} ± {std}" if std is not None else mean
    if cell.bold:
        text = f"**{text}**"
    if cell.underline:
        text = f"<u>{text}</u>"
    if cell.marks:
        text += f"<sup>{md_escape(','.join(cell.marks))}</sup>"
    if cell.qualifier:
        text += f" ({md_escape(cell.qualifier)})"
    if cell.kind == "metric":
        text += f" (n={cell.n})"
    return text


def _pipe_table(header: list[str], align: list[Any], rows: list[list[str]]) -> list[str]:
    rule = [":---" if a == "left" else "---:" for a in align]
    return ["| " + " | ".join(cells) + " |" for cells in (header, rule, *rows)]


_MD_SPECIAL = re.compile(r"([\\`*|<>\[\]])")
_MD_EDGE_UNDERSCORE = re.compile(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")


def md_escape(text: str) -> str:
    """Escape what Markdown would read as markup; word-inner underscores stay readable."""
    return _MD_EDGE_UNDERSCORE.sub(r"\\_", _MD_SPECIAL.sub(r"\\\1", str(text)))


# ---------------------------------------------------------------------------------------------
# LaTeX
# ---------------------------------------------------------------------------------------------


def to_latex(report: Report) -> str:
    """Every table as a booktabs ``table`` float; notes, failed cells and warnings as comments."""
    lines = [
        f"% {_one_line(report.title)}: generated by `seqbench report` from {report.source}",
        "% Needs \\usepackage{booktabs}. \\input{} this file or copy single tables.",
        *(f"% {_one_line(note)}" for note in report.notes),
    ]
    for table in report.all_tables:
        lines += ["", *latex_table(table)]
    if report.failed:
        lines += ["", f"% Failed cells ({len(report.failed)}, not aggregated):"]
        lines += [f"%   {_one_line(f'{f.variant} on {f.dataset}, seed {f.seed}: {f.error}')}"
                  for f in report.failed]  # fmt: skip
    if report.warnings:
        lines += ["", "% Warnings:", *(f"%   {_one_line(w)}" for w in report.warnings)]
    return "\n".join(lines) + "\n"


def latex_table(table: Table) -> list[str]:
    """One ``table`` float: caption (title and legend), label, booktabs tabular."""
    spec = "".join("l" if a == "left" else "r" for a in table.align)
    caption = latex_escape(" ".join([f"{table.title}.", *table.legend]))
    label = "tab:seqbench-" + re.sub(r"[^a-z0-9]+", "-", table.key.lower()).strip("-")
    lines = [
        "\\begin{table}[htbp]",
        "  \\centering",
        "  \\small",
        f"  \\caption{{{caption}}}",
        f"  \\label{{{label}}}",
        f"  \\begin{{tabular}}{{{spec}}}",
        "    \\toprule",
        "    " + " & ".join(latex_escape(h) for h in table.header) + " \\\\",
        "    \\midrule",
    ]
    lines += ["    " + " & ".join(_latex_cell(c) for c in row) + " \\\\" for row in table.rows]
    lines += ["    \\bottomrule", "  \\end{tabular}", "\\end{table}"]
    return lines


def _latex_cell(cell: Cell) -> str:
    if cell.kind == "text":
        return latex_escape(cell.text)
    if cell.empty:
        return "--"
    mean, std = _parts(cell)
    text = latex_escape(mean) + (f" $\\pm$ {std}" if std is not None else "")
    if cell.bold:
        text = f"\\textbf{{{text}}}"
    if cell.underline:
        text = f"\\underline{{{text}}}"
    if cell.marks:
        text += f"\\textsuperscript{{{latex_escape(','.join(cell.marks))}}}"
    if cell.qualifier:
        text += f" ({latex_escape(cell.qualifier)})"
    if cell.kind == "metric":
        text += f" {{\\scriptsize (n={cell.n})}}"
    return text


_LATEX = {
    "\\": r"$\backslash$", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
    "<": r"$<$", ">": r"$>$", "|": r"$|$",
    # the non-ASCII characters seqbench writes itself, which pdflatex's utf8 input lacks
    "±": r"$\pm$", "×": r"$\times$", "≥": r"$\geq$", "≤": r"$\leq$", "−": r"$-$", "→": r"$\to$",
    "·": r"$\cdot$", "…": r"\ldots{}", "–": "--", "—": "---", "α": r"$\alpha$",
    "▲": r"$\uparrow$", "▼": r"$\downarrow$", "†": r"$\dagger$", "≈": r"$\approx$",
    "β": r"$\beta$", "δ": r"$\delta$", "Δ": r"$\Delta$", "μ": r"$\mu$", "σ": r"$\sigma$",
}  # fmt: skip


def latex_escape(text: str) -> str:
    """Text safe in a LaTeX text-mode argument: specials escaped, symbols spelled as commands."""
    return "".join(_LATEX.get(ch, ch) for ch in str(text))


# ---------------------------------------------------------------------------------------------
# CSV (tidy)
# ---------------------------------------------------------------------------------------------


def to_csv(report: Report) -> str:
    """One row per variant × dataset × quantity (metrics, efficiency) and per failed cell."""
    variants = {v.display: v for v in report.variants}
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for table in report.all_tables:
        if table.kind == "summary":  # its cells are the metric rows, written once
            continue
        for row in table.rows:
            for index, cell in enumerate(row):
                if cell.quantity is None or cell.quantity == "seeds":
                    continue
                per_column = table.kind in ("strata", "robustness", "scaling")
                column = table.header[index] if per_column else ""
                writer.writerow(_csv_row(table, cell, variants, column))
    for failed in report.failed:
        info = variants.get(failed.variant)
        writer.writerow({
            "table": "failed", "quantity": "error", "split": report.split,
            "variant": failed.variant, "model": info.model if info else "",
            "ablation": info.ablation if info else "", "role": info.role if info else "",
            "dataset": failed.dataset, "n": 0, "seeds": failed.seed, "text": failed.error,
        })  # fmt: skip
    return buffer.getvalue()


def _csv_row(table: Table, cell: Cell, variants: dict[str, Any], column: str) -> dict[str, Any]:
    info = variants.get(cell.variant or "")
    emphasis = "best" if cell.bold else "second" if cell.underline else ""
    row = {
        "table": table.kind,
        "quantity": cell.quantity,
        "split": table.split or "",
        "variant": cell.variant or "",
        "model": info.model if info else "",
        "ablation": info.ablation if info else "",
        "role": info.role if info else "",
        "dataset": cell.dataset or "",
        "mean": _number(cell.mean, cell.kind == "count"),
        "std": _number(cell.std),
        "n": cell.n,
        "seeds": ";".join(str(s) for s in cell.seeds),
        "values": ";".join(repr(v) for v in cell.values),
        "emphasis": emphasis,
        "marks": ";".join(cell.marks),
        "text": cell.text if cell.kind == "text" else cell.qualifier,
        "column": column,
        "ci_low": _number(cell.ci_low),
        "ci_high": _number(cell.ci_high),
    }
    if cell.comparison:  # flat numbers written by seqbench.report.compare.summary
        row.update({k: cell.comparison.get(k) for k in CSV_COLUMNS[-10:]})
        for key in ("diff", "diff_low", "diff_high", "rel", "d_z", "p_value", "p_adjusted"):
            row[key] = _number(row[key])
        row["significant"] = "" if row["significant"] is None else row["significant"]
    return row


def _number(value: float | None, count: bool = False) -> str:
    """Full precision (``repr`` round-trips a float); counts as integers when whole."""
    if value is None or not isinstance(value, (int, float)) or not math.isfinite(value):
        return ""
    if count and float(value).is_integer():
        return str(int(value))
    return repr(float(value))


# ---------------------------------------------------------------------------------------------
# Terminal
# ---------------------------------------------------------------------------------------------


def to_rich(report: Report) -> list[RenderableType]:
    """The tables as rich renderables (bold and underline as styles), for the terminal."""
    from rich.table import Table as RichTable
    from rich.text import Text

    shown: list[RenderableType] = [Text(report.title, style="bold")]
    shown += [Text(note, style="dim") for note in report.notes]
    for table in report.all_tables:
        grid = RichTable(title=table.title, title_justify="left", caption=" ".join(table.legend),
                         caption_justify="left", header_style="bold")  # fmt: skip
        for header, align in zip(table.header, table.align, strict=True):
            grid.add_column(header, justify=align)
        for row in table.rows:
            grid.add_row(*(_rich_cell(cell, Text) for cell in row))
        shown.append(grid)
    return shown


def _rich_cell(cell: Cell, text_type: Any) -> Any:
    if cell.kind == "text":
        return text_type(cell.text)
    if cell.empty:
        return text_type(MISSING, style="dim")
    mean, std = _parts(cell)
    style = "bold" if cell.bold else "underline" if cell.underline else ""
    text = text_type(f"{mean} ± {std}" if std is not None else mean, style=style)
    if cell.marks:
        text.append(",".join(cell.marks), style="italic")
    if cell.qualifier:
        text.append(f" ({cell.qualifier})")
    if cell.kind == "metric":
        text.append(f" (n={cell.n})", style="dim")
    return text


def _one_line(text: str, limit: int = 300) -> str:
    """Whitespace collapsed (a traceback or multi-line message stays in its row or comment)."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
