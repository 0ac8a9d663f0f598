"""``seqbench report``: tables, statistics and plots from a result store.

:func:`load_results` reads and checks every cell under a folder, :func:`build_report` aggregates
them over seeds into a :class:`Report` (one table per metric, an efficiency table, the failed
cells), :func:`analyse` adds the paired comparisons with each column's reference (marks and
legends), the ablation tables and the tables per user-history bucket, and the renderers in
:mod:`seqbench.report.render` turn that one object into Markdown, LaTeX, CSV or terminal tables
(:mod:`seqbench.report.report_json` into report.json, :mod:`seqbench.report.plots` into figures).
"""

from __future__ import annotations

from seqbench.report.analysis import analyse
from seqbench.report.load import CellResult, ResultFileError, Results, VariantInfo, load_results
from seqbench.report.options import ReportOptions
from seqbench.report.render import to_csv, to_latex, to_markdown, to_rich
from seqbench.report.tables import Cell, FailedCell, Report, Table, build_report

__all__ = [
    "Cell",
    "CellResult",
    "FailedCell",
    "Report",
    "ReportOptions",
    "ResultFileError",
    "Results",
    "Table",
    "VariantInfo",
    "analyse",
    "build_report",
    "load_results",
    "to_csv",
    "to_latex",
    "to_markdown",
    "to_rich",
]
