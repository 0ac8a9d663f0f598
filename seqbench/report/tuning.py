"""Tuning in the report: what ``seqbench tune`` left in ``<suite>/tune/summary.json``.

The report stays a function of the results folder: it reads the summaries (never the study
storage) and gives, per dataset, a table of the studies — the searched space, trials (complete,
pruned, failed), the best trial's validation value and parameters, default against tuned on
validation — in Markdown, LaTeX and CSV (``tuning.csv``) and under ``tuning`` in report.json;
with ``--plots``, each study's optimisation history and parameter importances. The legend
states the budget (trials and time per study: equal for every model, since ``[tune]`` is one
table per suite). Trial cells themselves live in the hidden ``.tune/`` store, which the report
never reads, so they never mix with final cells.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

SUMMARY = Path("tune") / "summary.json"


def load_summaries(directory: Path | str) -> tuple[list[dict[str, Any]], list[str]]:
    """The tuning summaries under a suite folder or a root of suites, and warnings."""
    root = Path(directory).expanduser()
    paths = [root / SUMMARY, *sorted(root.glob(f"*/{SUMMARY.as_posix()}"))]
    found, warnings = [], []
    for path in paths:
        if not path.is_file():
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict) or not isinstance(data.get("studies"), list):
                raise ValueError("no studies")
        except (OSError, ValueError) as exc:
            warnings.append(f"{path}: skipped, not a tuning summary ({exc})")
            continue
        found.append(data)
    return found, warnings


def rows(summaries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per study, in suite then dataset order."""
    out = []
    for summary in summaries:
        metric = summary.get("budget", {}).get("metric")
        for study in summary["studies"]:
            best = study.get("best") or {}
            default = (study.get("default") or {}).get("value")
            tuned = best.get("value")
            counts = study.get("trials", {})
            out.append(
                {
                    "suite": summary.get("suite"),
                    "dataset": study["dataset"],
                    "variant": study["variant"],
                    "study": study["study"],
                    "space": "; ".join(
                        f"{key} {dim.get('text', '')}" for key, dim in study["space"].items()
                    ),
                    "complete": counts.get("complete", 0),
                    "pruned": counts.get("pruned", 0),
                    "failed": counts.get("failed", 0),
                    "epochs": study.get("epochs"),
                    "metric": metric,
                    "default": default,
                    "tuned": tuned,
                    "delta": tuned - default if tuned is not None and default is not None else None,
                    "best_trial": best.get("trial"),
                    "best_params": best.get("params"),
                }
            )
    return out


def legend(summaries: list[dict[str, Any]]) -> str:
    """What the numbers are and the budget each model had."""
    parts = []
    for summary in summaries:
        budget = summary.get("budget", {})
        parts.append(
            f"{summary.get('suite')}: valid {budget.get('metric')} of the best trial per study "
            f"(mean over seeds {budget.get('seeds')}); budget per study: {budget.get('text')}, "
            "equal for every model; "
            f"sampler {budget.get('sampler')} (seed {budget.get('seed')}), pruner "
            f"{budget.get('pruner')} (warm-up {budget.get('warmup')} epochs). Default: the "
            "suite's own values on the same seeds. Trials score validation only."
        )
    return " ".join(parts)


def _value(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) else "–"


def _delta(value: Any) -> str:
    return f"{value:+.4f}" if isinstance(value, (int, float)) else "–"


def _params(params: Any) -> str:
    if not isinstance(params, dict):
        return "–"
    return ", ".join(f"{k} = {v:.4g}" if isinstance(v, float) else f"{k} = {v}"
                     for k, v in params.items())  # fmt: skip


FIELDS = ("suite", "dataset", "variant", "study", "space", "complete", "pruned", "failed",
          "epochs", "metric", "default", "tuned", "delta", "best_trial", "best_params")  # fmt: skip
HEADER = ["variant", "searched", "trials", "default", "tuned", "Δ", "best parameters"]


def _trials(row: dict[str, Any]) -> str:
    text = f"{row['complete']} + {row['pruned']} pruned"
    return text + (f", {row['failed']} failed" if row["failed"] else "")


def _table_rows(found: list[dict[str, Any]]) -> list[list[str]]:
    return [
        [
            r["variant"],
            r["space"],
            f"{r['complete']} + {r['pruned']} pruned"
            + (f", {r['failed']} failed" if r["failed"] else ""),
            _value(r["default"]),
            _value(r["tuned"]),
            _delta(r["delta"]),
            _params(r["best_params"]),
        ]
        for r in found
    ]


def _by_dataset(found: list[dict[str, Any]]) -> dict[tuple[Any, str], list[dict[str, Any]]]:
    groups: dict[tuple[Any, str], list[dict[str, Any]]] = {}
    for row in found:
        groups.setdefault((row["suite"], row["dataset"]), []).append(row)
    return groups


def to_markdown(summaries: list[dict[str, Any]]) -> str:
    found = rows(summaries)
    if not found:
        return ""
    lines = ["", "## Tuning (validation)", ""]
    for (suite, dataset), group in _by_dataset(found).items():
        lines += [f"### {suite}: {dataset} (valid {group[0]['metric']})", ""]
        lines.append("| " + " | ".join(HEADER) + " |")
        lines.append("|" + "|".join(["---"] * len(HEADER)) + "|")
        for cells in _table_rows(group):
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        lines.append("")
    lines += [f"*{legend(summaries)}*", ""]
    return "\n".join(lines)


def to_latex(summaries: list[dict[str, Any]]) -> str:
    from seqbench.report.render import latex_escape

    found = rows(summaries)
    if not found:
        return ""
    out = [""]
    for (suite, dataset), group in _by_dataset(found).items():
        out += [
            r"\begin{table}[t]",
            r"\centering\small",
            rf"\caption{{Tuning on {latex_escape(str(dataset))} ({latex_escape(str(suite))}), "
            rf"validation {latex_escape(str(group[0]['metric']))}. "
            rf"{latex_escape(legend(summaries))}}}",
            r"\begin{tabular}{lllrrrl}",
            r"\toprule",
            " & ".join(latex_escape(h) for h in HEADER) + r" \\",
            r"\midrule",
        ]
        for cells in _table_rows(group):
            out.append(" & ".join(latex_escape(c) for c in cells) + r" \\")
        out += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
    return "\n".join(out)


def to_csv(summaries: list[dict[str, Any]]) -> str:
    found = rows(summaries)
    buffer = io.StringIO()
    fields = list(FIELDS)
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for row in found:
        writer.writerow({**row, "best_params": json.dumps(row["best_params"])})
    return buffer.getvalue()


def to_json(summaries: list[dict[str, Any]]) -> dict[str, Any]:
    return {"legend": legend(summaries), "studies": rows(summaries), "summaries": summaries}


def write_plots(summaries: list[dict[str, Any]], folder: Path) -> list[Path]:
    """Per study: the optimisation history and, where computed, parameter importances."""
    from seqbench.report.plots import _name, _save

    written: list[Path] = []
    for summary in summaries:
        metric = summary.get("budget", {}).get("metric")
        for study in summary["studies"]:
            if study.get("history"):
                figure = _history_figure(study, metric)
                written += _save(figure, folder / _name(f"tune-history-{study['study']}"))
            if study.get("importances"):
                figure = _importance_figure(study)
                written += _save(figure, folder / _name(f"tune-importance-{study['study']}"))
    return written


def _history_figure(study: dict[str, Any], metric: Any) -> Any:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5.0, 3.4), layout="constrained")
    ax = figure.subplots()
    styles = {"COMPLETE": ("o", "C0", "complete"), "PRUNED": ("x", "C1", "pruned (best so far)")}
    for state, (marker, color, label) in styles.items():
        points = [(h["trial"], h["value"]) for h in study["history"]
                  if h["state"] == state and h["value"] is not None]  # fmt: skip
        if points:
            ax.scatter(*zip(*points, strict=True), marker=marker, color=color, label=label)
    best, line = None, []
    for h in sorted(study["history"], key=lambda h: h["trial"]):
        if h["state"] == "COMPLETE" and h["value"] is not None:
            best = h["value"] if best is None else max(best, h["value"])
        if best is not None:
            line.append((h["trial"], best))
    if line:
        ax.step(*zip(*line, strict=True), where="post", color="C2", label="best so far")
    default = (study.get("default") or {}).get("value")
    if default is not None:
        ax.axhline(default, color="grey", linestyle="--", label="default settings")
    ax.set_xlabel("trial")
    ax.set_ylabel(f"valid {metric}")
    ax.set_title(study["study"], fontsize=9)
    ax.legend(fontsize=7)
    return figure


def _importance_figure(study: dict[str, Any]) -> Any:
    from matplotlib.figure import Figure

    items = sorted(study["importances"].items(), key=lambda kv: kv[1])
    figure = Figure(figsize=(4.6, 0.5 + 0.4 * len(items)), layout="constrained")
    ax = figure.subplots()
    ax.barh([k for k, _ in items], [v for _, v in items], color="C0")
    ax.set_xlabel("importance (fANOVA)")
    ax.set_title(study["study"], fontsize=9)
    return figure
