"""``seqbench report``: tables from a result store.

:func:`load_results` reads and checks every cell under a folder, :func:`build_report` aggregates
them over seeds into a :class:`Report` (one table per metric, an efficiency table, the failed
cells), and the renderers in :mod:`seqbench.report.render` turn that one object into Markdown,
LaTeX, CSV or terminal tables.
"""

from __future__ import annotations

from seqbench.report.load import CellResult, ResultFileError, Results, VariantInfo, load_results
from seqbench.report.render import to_csv, to_latex, to_markdown, to_rich
from seqbench.report.tables import Cell, FailedCell, Report, Table, build_report

__all__ = [
    "Cell",
    "CellResult",
    "FailedCell",
    "Report",
    "ResultFileError",
    "Results",
    "Table",
    "VariantInfo",
    "build_report",
    "load_results",
    "to_csv",
    "to_latex",
    "to_markdown",
    "to_rich",
]
