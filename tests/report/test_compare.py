"""Significance marks in the metric tables: the reference rule, which cells are marked, families,
corrections and what the legend states. The store is built so that every outcome is known
(tests/report/store.py, marks_store)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from seqbench.errors import ConfigError
from seqbench.report import Report, Table, build_report, load_results
from seqbench.report.analysis import analyse
from seqbench.report.options import BETTER, REFERENCE, WORSE, ReportOptions, parse_pair
from tests.report.store import BASE_RANKS, marks_store, write_cell

FAST = {"strata": None}  # the stratified tables have their own tests


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return marks_store(tmp_path_factory.mktemp("marks"))


def analysed(store: Path, metrics: tuple[str, ...] = ("hr@10",), **options: object) -> Report:
    report = build_report(load_results(store), list(metrics))
    return analyse(report, ReportOptions(**{**FAST, **options}))  # type: ignore[arg-type]


def marks(table: Table, dataset: str) -> dict[str, list[str]]:
    column = table.header.index(dataset)
    return {row[0].text: row[column].marks for row in table.rows}


def legend(table: Table) -> str:
    return " ".join(table.legend)


def test_marks_follow_the_designed_differences(store: Path) -> None:
    (table,) = analysed(store).tables
    for dataset in ("beauty", "ml-1m"):
        shown = marks(table, dataset)
        assert shown["mamba4rec"] == [BETTER]  # every miss became a hit
        assert shown["narm"] == [WORSE]  # every hit became a miss
        assert shown["fmlp"] == []  # one gain, one loss
    assert marks(table, "beauty")["gru4rec"] == []  # 2 users better: not significant


def test_reference_is_the_baseline_best_on_valid_not_on_test(store: Path) -> None:
    report = analysed(store)
    (table,) = report.tables
    # beauty: sasrec is best on valid, gru4rec better on test; ml-1m: the other way round
    assert marks(table, "beauty")["sasrec"] == [REFERENCE]
    assert marks(table, "ml-1m")["gru4rec"] == [REFERENCE]
    refs = {(r["dataset"], r["variant"]) for r in report.analysis["references"]}
    assert refs == {("beauty", "sasrec"), ("ml-1m", "gru4rec")}
    beauty = next(r for r in report.analysis["references"] if r["dataset"] == "beauty")
    assert beauty["rule"] == "best valid baseline"
    assert beauty["valid_means"] == {"sasrec": 1.0, "gru4rec": 0.5}
    test_means = {row[0].text: row[1].mean for row in table.rows}
    assert test_means["gru4rec"] > test_means["sasrec"]  # the test split would have chosen it
    assert (
        "beauty: sasrec, the best valid HR@10 among the baselines, 1.0000 (vs gru4rec 0.5000)"
        in legend(table)
    )
    comparisons = [c for c in report.analysis["comparisons"] if c["dataset"] == "beauty"]
    assert {c["reference"] for c in comparisons} == {"sasrec"}
    assert {c["variant"] for c in comparisons} == {"gru4rec", "mamba4rec", "fmlp", "narm"}


def test_reference_named_on_the_command_line(store: Path) -> None:
    (table,) = analysed(store, reference="fmlp").tables
    for dataset in ("beauty", "ml-1m"):
        shown = marks(table, dataset)
        assert shown["fmlp"] == [REFERENCE]
        assert shown["mamba4rec"] == [BETTER] and shown["narm"] == [WORSE]
    assert "fmlp, named with --reference" in legend(table)
    assert "validation split" not in legend(table)


def test_holm_family_size_in_the_legend_equals_the_comparisons(store: Path) -> None:
    report = analysed(store)
    (table,) = report.tables
    assert len(report.pairs) == 8  # 4 other variants × 2 datasets
    assert "Holm–Bonferroni correction over a family of 8 comparisons (this table)" in legend(table)
    assert "paired t-test" in legend(table) and "two-sided" in legend(table)
    assert "α = 0.05" in legend(table) and "40 users, 2 seeds" in legend(table)
    assert {c["family_size"] for c in report.analysis["comparisons"]} == {8}
    # Holm: the smallest raw p is multiplied by the family size
    raw = sorted(p.comparison.test.p_value for p in report.pairs)
    adjusted = sorted(p.comparison.p_adjusted for p in report.pairs)
    assert adjusted[0] == pytest.approx(min(1.0, 8 * raw[0]))


def test_family_per_column_and_other_corrections(store: Path) -> None:
    column = analysed(store, family="column", correction="bh")
    (table,) = column.tables
    assert "Benjamini–Hochberg (FDR) correction within each dataset (family sizes: beauty 4, " \
        "ml-1m 4)" in legend(table)  # fmt: skip
    assert {p.family_size for p in column.pairs} == {4}
    assert len({p.family for p in column.pairs}) == 2
    none = analysed(store, correction="none")
    assert "no correction for multiple comparisons (8 in this table)" in legend(none.tables[0])
    assert all(p.comparison.p_adjusted == p.comparison.test.p_value for p in none.pairs)


def test_one_sided_alternative_is_stated(store: Path) -> None:
    report = analysed(store, alternative="greater")
    (table,) = report.tables
    assert "one-sided, H1: better than the dataset's reference" in legend(table)
    assert marks(table, "beauty")["mamba4rec"] == [BETTER]
    assert marks(table, "beauty")["narm"] == []  # worse is not what was tested
    assert {p.comparison.test.alternative for p in report.pairs} == {"greater"}


def test_no_marks_hides_marks_but_keeps_every_comparison(store: Path) -> None:
    report = analysed(store, marks=False)
    (table,) = report.tables
    assert all(not cell.marks for row in table.rows for cell in row)
    assert "Significance marks hidden (--no-marks)" in legend(table)
    assert len(report.analysis["comparisons"]) == 8
    for cell in (row[1] for row in table.rows if row[0].text != "sasrec"):
        assert cell.comparison is not None and cell.comparison["d_z"] is not None
        assert cell.comparison["significant"] is not None


def test_resampling_tests_run_and_are_recorded(store: Path) -> None:
    report = analysed(store, test="randomization")
    assert marks(report.tables[0], "beauty")["mamba4rec"] == [BETTER]
    first = report.analysis["comparisons"][0]
    assert first["test"]["test"] == "randomization" and first["test"]["n_resamples"] == 10_000
    assert "randomization" in legend(report.tables[0])


def test_no_baseline_means_no_marks_and_a_reason(tmp_path: Path) -> None:
    for label in ("a", "b"):
        write_cell(tmp_path, label=label, role="proposed", test_rank=BASE_RANKS)
    (table,) = analyse(build_report(load_results(tmp_path), ["hr@10"])).tables
    assert all(not cell.marks for row in table.rows for cell in row)
    assert "No marks on beauty (no variant with role baseline has results on beauty): name a " \
        "reference with --reference." in legend(table)  # fmt: skip


def test_different_users_are_not_compared_and_the_files_are_named(tmp_path: Path) -> None:
    base = write_cell(tmp_path, label="base", test_rank=BASE_RANKS)
    other = write_cell(tmp_path, label="other", role="proposed", test_rank=BASE_RANKS,
                       users=range(100, 140))  # fmt: skip
    report = analyse(build_report(load_results(tmp_path), ["hr@10"]))
    assert report.pairs == []
    (warning,) = [w for w in report.warnings if "different users" in w]
    assert str(base / "ranks.npz") in warning and str(other / "ranks.npz") in warning


def test_a_single_seed_is_compared_and_shown_without_std(tmp_path: Path) -> None:
    write_cell(tmp_path, label="base", test_rank=BASE_RANKS, seed=1)
    write_cell(tmp_path, label="base", test_rank=BASE_RANKS, seed=2)
    write_cell(tmp_path, label="new", role="proposed", test_rank=(1,) * 40, seed=1)
    report = analyse(build_report(load_results(tmp_path), ["hr@10"]), ReportOptions(**FAST))  # type: ignore[arg-type]
    (pair,) = report.pairs
    assert (pair.comparison.test.n_seeds_a, pair.comparison.test.n_seeds_b) == (1, 2)
    new = report.tables[0].rows[1][1]
    assert (new.n, new.std, new.ci_low, new.marks) == (1, None, None, [BETTER])
    base = report.tables[0].rows[0][1]
    assert base.ci_low == base.ci_high == 0.5  # two equal seeds: a zero-width interval


def test_per_user_differences_are_seed_means(store: Path) -> None:
    report = analysed(store)
    pair = next(p for p in report.pairs if (p.dataset, p.variant) == ("beauty", "mamba4rec"))
    assert pair.differences is not None and pair.differences.shape == (40,)
    assert pair.comparison.effect.diff == pytest.approx(float(np.mean(pair.differences)))
    assert pair.comparison.effect.diff == pytest.approx(0.5)  # 20 of 40 users gain a hit


def test_reference_and_compare_names_are_checked(store: Path) -> None:
    with pytest.raises(ConfigError, match=r"--reference: no variant 'bert4rec' in the results; "
                       r"expected one of 'sasrec', 'gru4rec'"):  # fmt: skip
        analysed(store, reference="bert4rec")
    with pytest.raises(ConfigError, match=r"--compare: no variant 'x'"):
        analysed(store, compare=("x", "sasrec"))
    with pytest.raises(ConfigError, match=r"--compare: 'a'; expected two different variant"):
        parse_pair("a")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"alpha": 1.5}, r"--alpha: 1.5 is not a probability"),
        ({"test": "z"}, r"--test: 'z' is not one of t, randomization, bootstrap"),
        ({"correction": "bonferroni"}, r"--correction: 'bonferroni' is not one of holm, bh, none"),
        ({"family": "all"}, r"--family: 'all' is not one of table, column"),
        ({"n_resamples": 10}, r"--resamples: 10; expected at least 10000"),
    ],
)
def test_bad_options_name_the_option_and_the_valid_values(
    options: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        ReportOptions(**options)  # type: ignore[arg-type]


def test_legend_marks_are_explained_once_per_table(store: Path) -> None:
    (table,) = analysed(store, metrics=("hr@10",)).tables
    text = legend(table)
    assert len(re.findall(f"{BETTER}/{WORSE}: significantly better/worse", text)) == 1
    assert (
        text.count(f"Reference {REFERENCE} (chosen on the validation split, never on test):") == 1
    )


def test_seeds_with_different_users_are_not_compared(tmp_path: Path) -> None:
    write_cell(tmp_path, label="base", test_rank=BASE_RANKS)
    first = write_cell(tmp_path, label="new", role="proposed", test_rank=BASE_RANKS, seed=1)
    second = write_cell(tmp_path, label="new", role="proposed", test_rank=BASE_RANKS, seed=2,
                        users=range(100, 140))  # fmt: skip
    report = analyse(build_report(load_results(tmp_path), ["hr@10"]), ReportOptions(**FAST))  # type: ignore[arg-type]
    assert report.pairs == []
    (warning,) = [w for w in report.warnings if "seeds evaluated different users" in w]
    assert str(first / "ranks.npz") in warning and str(second / "ranks.npz") in warning
