"""``seqbench run SUITE --tuned``: the suite's cells with the best values of its studies.

The best values come from ``<results>/<suite>/tune/summary.json`` (the results folder is the one
source of truth; ``seqbench tune`` writes it) and are applied by
:func:`seqbench.tune.points.apply_point`, the rule a trial's cells use, so that a tuned cell has
exactly the hash of a hand-written suite with the same values (``tune/best.toml`` is that
suite fragment). Each tuned cell's record says where its values came from (``tuned_from``:
study, trial, storage, values, validation value and metric); it is not part of the hash.
Entries without a search space run as the suite sets them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from seqbench.cells import Cell
from seqbench.errors import ConfigError
from seqbench.store import read_result
from seqbench.suite import Suite
from seqbench.tune.points import apply_point

SUMMARY_PATH = ("tune", "summary.json")


def tuned_cells(
    suite: Suite, cells: list[Cell], results: Path
) -> tuple[list[Cell], list[dict[str, Any]]]:
    """``cells`` with their study's best values, and each one's job ``extra``
    (``{"tuned_from": …}`` for a tuned cell, ``{}`` otherwise)."""
    path = Path(results).expanduser() / suite.name / Path(*SUMMARY_PATH)
    summary = read_result(path)
    if summary is None:
        raise ConfigError(
            f"--tuned: no tuning results at {path}; run `seqbench tune {suite.file.name}` "
            "(with the same --results) first"
        )
    studies = {(s.get("variant"), s.get("dataset")): s for s in summary.get("studies", [])}
    metric = (summary.get("budget") or {}).get("metric")
    tuned: list[Cell] = []
    extras: list[dict[str, Any]] = []
    missing: list[str] = []
    for cell in cells:
        entry = suite.models[cell.variant.order[0]]
        if not entry.tune:
            tuned.append(cell)
            extras.append({})
            continue
        study = studies.get((cell.variant.label, cell.dataset.name))
        best = (study or {}).get("best")
        where = f"{cell.variant.label} on {cell.dataset.name}"
        if study is None or best is None:
            missing.append(f"{where}: {'no study' if study is None else 'no complete trial'}")
            continue
        params = dict(best["params"])
        if set(params) != set(entry.tune):
            missing.append(
                f"{where}: the study searched {sorted(params)}, the suite now searches "
                f"{sorted(entry.tune)}; tune again"
            )
            continue
        tuned.append(apply_point(cell, params, entry.tune_targets))
        extras.append(
            {
                "tuned_from": {
                    "study": study["study"],
                    "trial": best["trial"],
                    "storage": summary.get("storage", ""),
                    "params": params,
                    "value": best.get("value"),
                    "metric": metric,
                }
            }
        )
    if missing:
        raise ConfigError(
            f"--tuned: {path} has no best values for: " + "; ".join(dict.fromkeys(missing))
        )
    return tuned, extras
