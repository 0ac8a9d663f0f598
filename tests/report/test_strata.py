"""Stratified tables: metrics and tests per user-history bucket (the cold-start question)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from seqbench.errors import ConfigError
from seqbench.report import Report, build_report, load_results
from seqbench.report.analysis import analyse
from seqbench.report.options import BETTER, REFERENCE, ReportOptions, parse_strata
from seqbench.report.strata import bucket_labels, bucket_of
from tests.report.store import write_cell

USERS = 60
HISTORY = [3] * 30 + [80] * 30  # 30 cold users (≤5 items), 30 with long histories (>50)
BASE = [(2, 15)[i % 2] for i in range(USERS)]  # every other user a hit: HR@10 0.5
WARM_GAIN = [1 if i >= 30 else r for i, r in enumerate(BASE)]  # gains on long histories only


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("strata")
    for index, (label, ranks) in enumerate((("base", BASE), ("warm", WARM_GAIN))):
        for seed in (1, 2):
            write_cell(root, label=label, order=(index, 0, 0), seed=seed, test_rank=ranks,
                       role="baseline" if label == "base" else "proposed",
                       history_len=HISTORY)  # fmt: skip
    return root / "demo"


def analysed(store: Path, **options: object) -> Report:
    report = build_report(load_results(store), ["hr@10"])
    return analyse(report, ReportOptions(**options))  # type: ignore[arg-type]


def test_bucket_labels_and_edges() -> None:
    assert bucket_labels((5, 10, 20, 50)) == ["≤5", "6–10", "11–20", "21–50", ">50"]
    assert bucket_labels((1, 2, 5)) == ["≤1", "2", "3–5", ">5"]
    history = np.array([0, 1, 5, 6, 10, 11, 20, 21, 50, 51, 400])
    assert bucket_of(history, (5, 10, 20, 50)).tolist() == [0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4]


def test_gains_on_long_histories_only_are_marked_there_only(store: Path) -> None:
    report = analysed(store)
    (table,) = report.strata
    assert table.key == "strata:hr@10:beauty"
    assert table.title == "HR@10 (test) by history length: beauty"
    assert table.header == ["variant", "≤5 (n=30)", ">50 (n=30)"]  # empty buckets left out
    base, warm = table.rows
    assert [c.mean for c in base[1:]] == [0.5, 0.5]
    assert [c.mean for c in warm[1:]] == [0.5, 1.0]
    assert [c.marks for c in base[1:]] == [[REFERENCE], [REFERENCE]]
    assert [c.marks for c in warm[1:]] == [[], [BETTER]]
    text = " ".join(table.legend)
    assert "No users in 6–10, 11–20, 21–50." in text
    assert "Holm–Bonferroni correction over a family of 2 comparisons (this table)" in text
    assert "these comparisons are a family of their own" in text
    # the main table's family is not enlarged by the buckets
    (main,) = [p for p in report.pairs if p.kind == "metric"]
    assert main.family_size == 1
    buckets = [p for p in report.pairs if p.kind == "strata"]
    assert [(p.column, p.comparison.test.n_users) for p in buckets] == [("≤5", 30), (">50", 30)]


def test_custom_edges_and_per_bucket_families(store: Path) -> None:
    report = analysed(store, strata=(5, 100), family="column")
    (table,) = report.strata
    assert table.header == ["variant", "≤5 (n=30)", "6–100 (n=30)"]
    assert {p.family_size for p in report.pairs if p.kind == "strata"} == {1}
    assert "correction within each bucket (family sizes: ≤5 1, 6–100 1)" in " ".join(table.legend)


def test_strata_can_be_switched_off(store: Path) -> None:
    assert analysed(store, strata=None).strata == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("5,x", r"--strata: '5,x'; expected comma-separated upper edges"),
        ("10,5", r"--strata: \[10, 5\] is not strictly increasing"),
        ("0,5", r"--strata: \[0, 5\]; expected positive integers"),
    ],
)
def test_bad_edges_name_the_option(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_strata(text)


def test_edges_parse() -> None:
    assert parse_strata("5,10,20,50") == (5, 10, 20, 50)
    assert parse_strata(" 3 , 7 ") == (3, 7)
    assert parse_strata("none") is None
