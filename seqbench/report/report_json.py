"""``report.json``: every number behind every table, for scripts and for checking a paper's claims.

It is :meth:`Report.to_dict` (tables with each cell's per-seed values, mean, std, interval, marks
and comparison; the efficiency, ablation and stratified tables; failed cells; notes; warnings)
plus ``analysis`` (the options used, each column's reference and why, and every comparison with
its test, corrected p-value and effect sizes, which are kept even when marks are hidden). NaN and
infinities become null, so that any JSON reader takes the file. docs/report.md documents it.
"""

from __future__ import annotations

import json
import math
from typing import Any

from seqbench import __version__
from seqbench.report.tables import Report

SCHEMA = 1


def report_dict(report: Report) -> dict[str, Any]:
    """The JSON-able content of report.json."""
    return {"schema": SCHEMA, "seqbench": __version__, **_clean(report.to_dict())}


def to_json(report: Report) -> str:
    """report.json's text: indented, UTF-8 characters kept, strict JSON (no NaN)."""
    return json.dumps(report_dict(report), indent=1, ensure_ascii=False, allow_nan=False) + "\n"


def _clean(value: Any) -> Any:
    """Plain containers and numbers; tuples as lists, NaN and ±inf as None."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return _clean(value.item())
    return value
