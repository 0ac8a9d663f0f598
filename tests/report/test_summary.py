"""Per-dataset summary tables: every metric side by side, the metric tables' cells unchanged."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from seqbench.report import Report, build_report, load_results
from seqbench.report.analysis import analyse
from seqbench.report.options import ReportOptions
from seqbench.report.render import to_csv, to_markdown
from tests.report.store import marks_store


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return marks_store(tmp_path_factory.mktemp("summary"))


def analysed(store: Path, metrics: list[str]) -> Report:
    return analyse(build_report(load_results(store), metrics), ReportOptions(strata=None))


def test_a_summary_column_is_its_metric_tables_column(store: Path) -> None:
    report = analysed(store, ["hr@10", "ndcg@10"])
    assert [t.key for t in report.summaries] == ["summary:beauty", "summary:ml-1m"]
    for summary in report.summaries:
        dataset = summary.key.removeprefix("summary:")
        assert summary.header == ["variant", "HR@10", "NDCG@10"]
        for column, table in enumerate(report.tables, start=1):
            index = table.header.index(dataset)
            want = {row[0].text: row[index] for row in table.rows}
            got = {row[0].text: row[column] for row in summary.rows}
            assert got == want  # numbers, emphasis, marks and the comparison behind them
    beauty, ml1m = report.summaries
    # the marks store's references differ between the datasets (chosen on valid)
    assert "sasrec in every column" in " ".join(beauty.legend)
    assert "gru4rec in every column" in " ".join(ml1m.legend)
    marks = {row[0].text: row[1].marks for row in beauty.rows}
    assert marks["sasrec"] == ["†"] and marks["mamba4rec"] == ["▲"] and marks["narm"] == ["▼"]


def test_summaries_come_first_in_markdown_and_stay_out_of_the_csv(store: Path) -> None:
    report = analysed(store, ["hr@10", "ndcg@10"])
    text = to_markdown(report)
    assert text.index("## Summary: beauty (test)") < text.index("## HR@10 (test)")
    assert "| variant | HR@10 | NDCG@10 |" in text
    rows = list(csv.DictReader(io.StringIO(to_csv(report))))
    assert {r["table"] for r in rows} >= {"metric", "efficiency"}
    assert "summary" not in {r["table"] for r in rows}
    metric_rows = [r for r in rows if r["table"] == "metric"]
    assert len(metric_rows) == len(
        {(r["variant"], r["dataset"], r["quantity"]) for r in metric_rows}
    )


def test_one_metric_needs_no_summary(store: Path) -> None:
    assert analysed(store, ["hr@10"]).summaries == []
