"""The robustness part of a report: curves over noise levels, the robustness table with paired
tests against the clean test of the same models, its exports, and the noise figures."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest

from seqbench.report import ReportOptions, analyse, build_report, load_results
from seqbench.report.plots import write_plots
from seqbench.report.render import to_csv, to_latex, to_markdown
from seqbench.report.report_json import report_dict
from seqbench.report.robustness import noise_curves, training_curves
from tests.report.store import BASE_RANKS, MISSES, improved, write_cell

SEEDS = (1, 2, 3)
#: condition name → (settings, users whose hit becomes a miss, per model)
CONDITIONS = {
    "replace-end-0.0": ({"kind": "replace", "ratio": 0.0, "where": "end"}, 0),
    "replace-end-0.1": ({"kind": "replace", "ratio": 0.1, "where": "end"}, 4),
    "replace-end-0.2": ({"kind": "replace", "ratio": 0.2, "where": "end"}, 12),
    "replace-beginning-0.2": ({"kind": "replace", "ratio": 0.2, "where": "beginning"}, 0),
    "truncate-3": ({"kind": "truncate", "keep": 3}, 2),
}
HITS = [i for i, r in enumerate(BASE_RANKS) if r <= 10]  # 20 users with a hit


def add_conditions(cell: Path, lost: dict[str, int]) -> None:
    """Evaluations as the worker writes them: the first ``lost[name]`` hits become misses."""
    result = json.loads((cell / "result.json").read_text())
    with np.load(cell / "ranks.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    result["evaluations"] = {}
    for name, (settings, _) in CONDITIONS.items():
        ranks = arrays["test_rank"].copy()
        ranks[HITS[: lost[name]]] = 50.0
        arrays[f"test_rank@{name}"] = ranks
        arrays[f"test_tied@{name}"] = np.zeros_like(arrays["test_tied"])
        condition = {**settings, "sample": "uniform"} if settings["kind"] == "replace" else settings
        result["evaluations"][name] = {
            "condition": {**condition, "name": name, "split": "test", "seed": 1},
            "metrics": {"test": {"hr@10": float(np.mean(ranks <= 10))}},
            "ranks": {"test": f"test_rank@{name}", "test_tied": f"test_tied@{name}"},
        }
    (cell / "result.json").write_text(json.dumps(result))
    np.savez_compressed(cell / "ranks.npz", **arrays)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    for label, order, worse in (("sasrec", 0, 1), ("gru4rec", 1, 0)):
        for seed in SEEDS:
            cell = write_cell(tmp_path, label=label, order=(order, 0, 0), seed=seed,
                              test_rank=BASE_RANKS, metrics=("hr@10",))  # fmt: skip
            # sasrec loses one more hit per level than gru4rec; seeds differ by one user
            lost = {n: (k + worse + seed - 2 if k else 0) for n, (_, k) in CONDITIONS.items()}
            add_conditions(cell, lost)
    noisy = improved(BASE_RANKS, MISSES[:2])  # trained with noise: two more hits
    for seed in SEEDS:
        write_cell(tmp_path, label="sasrec@noise=replace-uniform-0.2", model="sasrec",
                   order=(2, 0, 0), seed=seed, test_rank=noisy, metrics=("hr@10",),
                   sweep={"noise": {"kind": "replace", "ratio": 0.2, "where": "uniform",
                                    "sample": "uniform", "window": None, "keep": None,
                                    "std": None, "name": None}})  # fmt: skip
    return tmp_path / "demo"


def analysed(store: Path) -> object:
    report = build_report(load_results(store), ["hr@10"])
    analyse(report, ReportOptions(strata=None))
    return report


def test_curves_hold_each_level_over_seeds(store: Path) -> None:
    curves = noise_curves(load_results(store), "hr@10", [])
    by = {(c.variant.label, c.series): c for c in curves}
    assert set(by) == {(v, s) for v in ("sasrec", "gru4rec")
                       for s in ("replace end", "replace beginning", "truncate")}  # fmt: skip
    end = by[("sasrec", "replace end")]
    assert [p.level for p in end.points] == [0.0, 0.1, 0.2]
    assert end.clean.values == [0.5, 0.5, 0.5]
    # sasrec at 0.2 loses 12 + 1 + (seed − 2) of 40 hits: 12, 13, 14
    assert end.points[2].values == pytest.approx([(20 - k) / 40 for k in (12, 13, 14)])
    assert end.points[0].values == [0.5, 0.5, 0.5]  # the zero level is the clean test


def test_robustness_table_relative_changes_and_marks(store: Path) -> None:
    report = analysed(store)
    tables = {t.key: t for t in report.robustness}  # type: ignore[attr-defined]
    table = tables["robustness:hr@10"]
    assert table.header == ["dataset", "variant", "noise", "clean", "0%", "10%", "20%"]
    rows = {(r[1].text, r[2].text): r for r in table.rows}
    row = rows[("sasrec", "replace end")]
    assert row[3].mean == 0.5
    assert row[5].mean == pytest.approx(np.mean([-(k / 20) for k in (4, 5, 6)]))
    assert row[6].mean == pytest.approx(np.mean([-(k / 20) for k in (12, 13, 14)]))
    assert row[4].mean == 0.0 and not row[4].marks  # identical to clean: never marked
    assert row[6].marks == ["▼"] and row[6].comparison["family_size"] == 3
    assert row[6].comparison["reference"] == "sasrec @ clean"
    beginning = rows[("sasrec", "replace beginning")]
    assert beginning[6].mean == 0.0 and not beginning[6].marks
    assert beginning[5].empty  # no 10% condition at the beginning
    assert "robustness:hr@10:keep" in tables
    assert tables["robustness:hr@10:keep"].header[-1] == "keep 3"
    assert "Holm" in " ".join(table.legend)


def test_robustness_exports(store: Path) -> None:
    report = analysed(store)
    markdown = to_markdown(report)  # type: ignore[arg-type]
    assert "## Robustness: HR@10 (test) under evaluation noise" in markdown
    assert "-65.0%<sup>▼</sup>" in markdown  # sasrec at 20%, mean over seeds of −60/−65/−70%
    assert "Robustness: HR@10 (test) under truncation" in to_latex(report)  # type: ignore[arg-type]
    rows = [r for r in csv.DictReader(io.StringIO(to_csv(report))) if r["table"] == "robustness"]  # type: ignore[arg-type]
    level = [r for r in rows if r["variant"] == "sasrec" and r["column"] == "20%"
             and r["quantity"] == "hr@10:replace-end-0.2"]  # fmt: skip
    assert len(level) == 1 and float(level[0]["mean"]) == pytest.approx(-0.65)
    assert level[0]["significant"] == "True" and level[0]["seeds"] == "1;2;3"
    data = report_dict(report)  # type: ignore[arg-type]
    assert any(t["key"] == "robustness:hr@10" for t in data["robustness"])
    curves = data["analysis"]["robustness"]["curves"]
    assert {c["series"] for c in curves} == {"replace end", "replace beginning", "truncate"}
    kinds = {c["kind"] for c in data["analysis"]["comparisons"]}
    assert "robustness" in kinds


def test_training_noise_curve_starts_at_the_model_trained_without_noise(store: Path) -> None:
    (curve,) = training_curves(load_results(store), "hr@10")
    assert curve.label == "sasrec" and curve.series == "replace uniform"
    assert curve.levels == [0.0, 0.2]
    assert curve.mean == pytest.approx([0.5, 22 / 40])


def test_noise_figures(store: Path, tmp_path: Path) -> None:
    report = analysed(store)
    written = {p.name for p in write_plots(report, ReportOptions(strata=None), tmp_path / "p")}  # type: ignore[arg-type]
    for name in ("noise-replace-hr@10", "noise-truncate-hr@10", "noise-train-replace-hr@10"):
        assert {f"{name}.png", f"{name}.pdf"} <= written
    assert not any(name.startswith("noise-noise") for name in written)  # no dict-valued x axis
