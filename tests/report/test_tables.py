"""Aggregation over seeds, emphasis, efficiency and the failed-cell list of a Report."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

from seqbench.errors import ConfigError
from seqbench.report import Report, Table, build_report, load_results
from seqbench.report.tables import Cell, aggregate, emphasize, normalize_metric
from tests.report.store import RANKS, demo_store, hand_metric


@pytest.fixture
def report(tmp_path: Path) -> Report:
    return build_report(load_results(demo_store(tmp_path)))


def cell(table: Table, variant: str, dataset: str) -> Cell:
    column = table.header.index(dataset)
    (row,) = [r for r in table.rows if r[0].text == variant]
    return row[column]


def test_one_table_per_recorded_metric_variants_as_rows(report: Report) -> None:
    assert [t.key for t in report.tables] == ["hr@10", "ndcg@10", "mrr@10"]
    hr = report.tables[0]
    assert hr.title == "HR@10 (test)"
    assert hr.header == ["variant", "beauty", "ml-1m"]
    assert [row[0].text for row in hr.rows] == ["sasrec", "mamba4rec", "mamba4rec+no_ffn"]


def test_mean_std_n_match_hand_computation(report: Report) -> None:
    hr = report.tables[0]
    sasrec = cell(hr, "sasrec", "beauty")
    assert (sasrec.mean, sasrec.std, sasrec.n, sasrec.seeds) == (0.5, 0.25, 3, (1, 2, 3))
    assert sasrec.values == (0.5, 0.25, 0.75)
    ndcg = report.tables[1]
    for (variant, dataset), seeds in RANKS.items():
        expected = [hand_metric("ndcg@10", ranks) for ranks in seeds.values()]
        got = cell(ndcg, variant, dataset)
        assert got.n == len(expected)
        assert got.mean == pytest.approx(statistics.mean(expected))
        if len(expected) > 1:
            assert got.std == pytest.approx(statistics.stdev(expected))  # sample std, n − 1


def test_a_single_seed_has_no_std(report: Report) -> None:
    single = cell(report.tables[0], "mamba4rec", "ml-1m")
    assert (single.mean, single.std, single.n) == (0.75, None, 1)
    assert aggregate([0.3], [7], "metric").std is None


def test_failed_and_missing_cells_are_left_out(report: Report) -> None:
    missing = cell(report.tables[0], "mamba4rec+no_ffn", "ml-1m")
    assert missing.empty and missing.n == 0 and not missing.bold
    (failed,) = report.failed
    assert (failed.variant, failed.dataset, failed.seed) == ("mamba4rec+no_ffn", "ml-1m", 1)
    assert "CUDA out of memory" in failed.error
    assert "–: no successful run." in report.tables[0].legend


def test_best_bold_second_underlined_ties_shared(report: Report) -> None:
    hr = report.tables[0]
    # beauty: mamba4rec 0.875 > sasrec 0.5 = no_ffn 0.5
    assert [(c.bold, c.underline) for c in hr.column(1)] == [
        (False, True), (True, False), (False, True),
    ]  # fmt: skip
    # ml-1m: sasrec 0.75 = mamba4rec 0.75, no_ffn failed → both bold, no second
    assert [(c.bold, c.underline) for c in hr.column(2)] == [
        (True, False), (True, False), (False, False),
    ]  # fmt: skip


def test_emphasis_rules() -> None:
    def cells(*means: float | None) -> list[Cell]:
        return [Cell(kind="metric", mean=m, n=1 if m is not None else 0) for m in means]

    column = cells(0.3, 0.5, 0.4, None, 0.4)
    emphasize(column)
    assert [c.bold for c in column] == [False, True, False, False, False]
    assert [c.underline for c in column] == [False, False, True, False, True]
    alone = cells(0.3, None)
    emphasize(alone)
    assert (alone[0].bold, alone[0].underline) == (True, False)  # one variant: no second
    shown_equal = cells(0.12341, 0.12344, 0.1)  # equal at 4 decimals: a tie as the reader sees it
    emphasize(shown_equal)
    assert [c.bold for c in shown_equal] == [True, True, False]
    assert shown_equal[2].underline


def test_efficiency_means_over_seeds(report: Report) -> None:
    table = report.efficiency
    assert table is not None
    assert table.header == ["variant", "dataset", "seeds", "parameters", "s/epoch", "to best",
                            "epochs", "total time", "inference users/s", "peak memory",
                            "device"]  # fmt: skip
    assert [(r[0].text, r[1].text) for r in table.rows] == [
        ("sasrec", "beauty"), ("sasrec", "ml-1m"), ("mamba4rec", "beauty"),
        ("mamba4rec", "ml-1m"), ("mamba4rec+no_ffn", "beauty"),
    ]  # fmt: skip
    row = {c.quantity: c for c in table.rows[0][2:]}
    assert row["seeds"].mean == 3
    assert row["parameters"].mean == 765_432
    assert row["seconds_per_epoch"].mean == 3.0  # (2 + 3 + 4) / 3
    assert row["epochs_to_best"].mean == 2.0 + 1  # best_epoch 2 + 1 (test store: seed + 1)
    assert row["epochs_run"].mean == 5.0
    assert row["total_seconds"].mean == 200.0
    assert row["users_per_second"].mean == 2000.0
    assert (row["peak_memory_mib"].mean, row["peak_memory_mib"].qualifier) == (500.0, "RSS")
    assert row["device"].text == "Test CPU"
    assert not any(c.bold or c.underline for r in table.rows for c in r)


def test_a_requested_metric_not_in_result_json_is_computed_from_ranks(tmp_path: Path) -> None:
    built = build_report(load_results(demo_store(tmp_path)), ["NDCG@20", "hr@10"])
    ndcg20, hr10 = built.tables
    assert ndcg20.title == "NDCG@20 (test)"
    assert "recomputed from each user's rank in ranks.npz" in ndcg20.legend[0]
    assert "as recorded in result.json" in hr10.legend[0]
    expected = [hand_metric("ndcg@20", r) for r in RANKS[("sasrec", "beauty")].values()]
    assert cell(ndcg20, "sasrec", "beauty").mean == pytest.approx(statistics.mean(expected))


def test_from_ranks_reproduces_result_json(tmp_path: Path) -> None:
    results = load_results(demo_store(tmp_path))
    stored, recomputed = build_report(results), build_report(results, from_ranks=True)
    for a, b in zip(stored.tables, recomputed.tables, strict=True):
        for row_a, row_b in zip(a.rows, b.rows, strict=True):
            for x, y in zip(row_a[1:], row_b[1:], strict=True):
                assert x.n == y.n and (x.mean is None or x.mean == pytest.approx(y.mean))


def test_valid_split(tmp_path: Path) -> None:
    built = build_report(load_results(demo_store(tmp_path)), split="valid")
    assert built.tables[0].title == "HR@10 (valid)" and built.split == "valid"


def test_bad_metric_names_are_config_errors() -> None:
    assert normalize_metric(" MRR@5 ") == "mrr@5"
    with pytest.raises(ConfigError, match="unknown metric 'recall@10'"):
        normalize_metric("recall@10")


def test_report_is_json_able_and_notes_say_what_was_read(report: Report) -> None:
    data = json.loads(json.dumps(report.to_dict()))
    assert data["tables"][0]["rows"][0][1]["values"] == [0.5, 0.25, 0.75]
    assert report.title == "seqbench report: demo"
    assert report.notes[0].startswith(
        "10 cells, 1 failed (listed, not aggregated), 1 unreadable file skipped, "
        "from 12 result.json files"
    )
    assert "Tie policy: pessimistic" in report.notes[1]
