"""report.json: strict JSON holding every number behind every table, effect sizes always."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from seqbench.report import build_report, load_results
from seqbench.report.analysis import analyse
from seqbench.report.options import ReportOptions
from seqbench.report.report_json import report_dict, to_json
from seqbench.stats import seed_summary
from tests.report.store import marks_store


def strict(text: str) -> dict:  # type: ignore[type-arg]
    def refuse(name: str) -> None:
        raise AssertionError(f"{name} in report.json")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict:  # type: ignore[type-arg]
    store = marks_store(tmp_path_factory.mktemp("json"))
    report = build_report(load_results(store), ["hr@10", "ndcg@10"])
    analyse(report, ReportOptions(marks=False, strata=(10,)))
    return strict(to_json(report))


def test_header_options_and_sections(data: dict) -> None:  # type: ignore[type-arg]
    assert data["schema"] == 1 and data["seqbench"]
    assert data["split"] == "test"
    options = data["analysis"]["options"]
    assert options == {
        "reference": None, "test": "t", "alternative": "two-sided", "correction": "holm",
        "alpha": 0.05, "family": "table", "marks": False, "level": 0.95,
        "n_resamples": 10_000, "seed": 0, "strata": [10], "compare": None,
    }  # fmt: skip
    assert data["analysis"]["strata"]["buckets"] == ["≤10", ">10"]
    kinds = [t["kind"] for t in data["tables"]]
    assert kinds == ["metric", "metric"]
    assert data["efficiency"]["kind"] == "efficiency"
    assert [t["key"] for t in data["strata"]] == [
        "strata:hr@10:beauty", "strata:hr@10:ml-1m", "strata:ndcg@10:beauty",
        "strata:ndcg@10:ml-1m",
    ]  # fmt: skip


def test_effect_sizes_are_kept_with_marks_hidden(data: dict) -> None:  # type: ignore[type-arg]
    comparisons = data["analysis"]["comparisons"]
    # per metric: 8 in the main table + 2 buckets × 8 in the stratified tables
    assert len(comparisons) == 2 * (8 + 16)
    for c in comparisons:
        assert set(c) >= {"variant", "reference", "dataset", "column", "family", "family_size",
                          "test", "effect", "p_adjusted", "significant"}  # fmt: skip
        effect = c["effect"]
        assert effect["diff"] is not None and effect["diff_ci"]["level"] == 0.95
        assert effect["mean_a"] - effect["mean_b"] == pytest.approx(effect["diff"])
    better = next(c for c in comparisons if c["kind"] == "metric" and c["variant"] == "mamba4rec"
                  and c["metric"] == "hr@10" and c["dataset"] == "beauty")  # fmt: skip
    assert better["significant"] is True and better["effect"]["diff"] == pytest.approx(0.5)
    assert better["effect"]["rel"] == pytest.approx(1.0) and better["effect"]["d_z"] > 0
    assert all(not cell["marks"] for t in data["tables"] for row in t["rows"] for cell in row)


def test_every_metric_cell_has_its_seed_values_and_summary(data: dict) -> None:  # type: ignore[type-arg]
    for table in data["tables"]:
        for row in table["rows"]:
            for cell in row[1:]:
                summary = seed_summary(cell["values"])
                assert cell["seeds"] == [1, 2]
                assert cell["mean"] == pytest.approx(summary.mean)
                assert cell["std"] == pytest.approx(summary.std)
                assert (cell["ci_low"], cell["ci_high"]) == pytest.approx(
                    (summary.ci.low, summary.ci.high)  # type: ignore[union-attr]
                )


def test_cells_carry_the_same_numbers_as_the_comparison_list(data: dict) -> None:  # type: ignore[type-arg]
    listed = {(c["metric"], c["dataset"], c["variant"]): c for c in data["analysis"]["comparisons"]
              if c["kind"] == "metric"}  # fmt: skip
    for table in data["tables"]:
        for row in table["rows"]:
            for cell in row[1:]:
                found = listed.get((table["key"], cell["dataset"], cell["variant"]))
                if found is None:  # the reference of its column
                    assert cell["comparison"] is None
                    continue
                assert cell["comparison"]["diff"] == found["effect"]["diff"]
                assert cell["comparison"]["p_adjusted"] == found["p_adjusted"]


def test_references_are_exported(data: dict) -> None:  # type: ignore[type-arg]
    refs = {(r["metric"], r["dataset"]): r for r in data["analysis"]["references"]}
    assert refs[("hr@10", "beauty")]["variant"] == "sasrec"
    assert refs[("hr@10", "ml-1m")]["variant"] == "gru4rec"


def test_nan_becomes_null(tmp_path: Path) -> None:
    store = marks_store(tmp_path)
    report = build_report(load_results(store), ["hr@10"])
    report.notes.append("x")
    report.analysis = {"odd": [float("nan"), float("inf"), 1.5]}
    assert report_dict(report)["analysis"]["odd"] == [None, None, 1.5]
