"""One table per dataset with every metric as a column: what a README or a paper's main table shows.

The per-metric tables put datasets in columns, which suits several datasets and one metric; a
reader of one dataset wants one row per variant and the metrics side by side (RecBole's result
pages, the BARS leaderboards). A summary column is its metric table's column for that dataset,
cell for cell: the same numbers, emphasis and marks (▲/▼ against the column's reference †), so
the summary adds no statistics of its own and cannot disagree with the tables it summarises.
The tidy CSV leaves summaries out (their cells are the metric rows already there).
"""

from __future__ import annotations

import copy

from seqbench.report.options import REFERENCE
from seqbench.report.tables import Cell, Report, Table


def summary_tables(report: Report) -> list[Table]:
    """Per dataset, a (variant × metric) table copied from the metric tables; none when the report
    has fewer than two metrics (the metric table is its own summary)."""
    if len(report.tables) < 2:
        return []
    datasets = list(dict.fromkeys(h for t in report.tables for h in t.header[1:]))
    return [table for d in datasets if (table := _summary(report, d)) is not None]


def _summary(report: Report, dataset: str) -> Table | None:
    variants: list[str] = []
    columns: dict[str, dict[str, Cell]] = {}  # metric title → variant → cell
    references: dict[str, str] = {}
    for table in report.tables:
        if dataset not in table.header:
            continue
        index = table.header.index(dataset)
        title = table.title.removesuffix(f" ({table.split})") if table.split else table.title
        cells = {row[0].text: copy.deepcopy(row[index]) for row in table.rows}
        if not any(not c.empty for c in cells.values()):
            continue
        columns[title] = cells
        variants += [v for v in cells if v not in variants]
        marked = [v for v, c in cells.items() if REFERENCE in c.marks]
        references[title] = marked[0] if marked else ""
    if len(columns) < 2:
        return None
    rows = [
        [Cell(text=v, variant=v)]
        + [columns[m].get(v) or Cell(kind="metric", variant=v, dataset=dataset) for m in columns]
        for v in variants
    ]
    return Table(
        key=f"summary:{dataset}",
        kind="summary",
        title=f"Summary: {dataset} ({report.split})",
        header=["variant", *columns],
        align=["left", *["right"] * len(columns)],
        rows=rows,
        legend=_legend(dataset, report.split, references),
        split=report.split,
    )


def _legend(dataset: str, split: str, references: dict[str, str]) -> list[str]:
    legend = [
        f"Every metric on {dataset} ({split} split); each column is that metric table's column "
        "below, with the same cells, emphasis and marks (mean ± sample std over seeds, "
        "n = seeds; bold best, underlined second in each column).",
    ]
    named = set(references.values())
    if named == {""}:
        return legend
    if len(named) == 1:
        who = f"{named.pop()} in every column"
    else:
        who = "per column: " + ", ".join(f"{m} {r or 'none'}" for m, r in references.items())
    legend.append(
        f"▲/▼: significantly better/worse than the column's reference † ({who}; chosen on the "
        "validation split), tested and corrected as the metric table's legend says."
    )
    return legend
