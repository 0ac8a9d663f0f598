"""Ablation tables: each ablation's paired difference from its full model (ablation_store)."""

from __future__ import annotations

from pathlib import Path

import pytest

from seqbench.report import Table, build_report, load_results
from seqbench.report.ablation import ablation_groups
from seqbench.report.analysis import analyse
from seqbench.report.options import WORSE, ReportOptions
from seqbench.report.render import to_csv, to_markdown
from tests.report.store import ablation_store, demo_store


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    store = ablation_store(tmp_path_factory.mktemp("abl"))
    return analyse(build_report(load_results(store), ["hr@10"]), ReportOptions(strata=None))


def rows(table: Table) -> dict[str, list]:  # type: ignore[type-arg]
    return {row[2].text: row for row in table.rows}


def test_groups_are_variants_differing_only_by_ablation(report) -> None:  # type: ignore[no-untyped-def]
    ((full, ablated),) = ablation_groups(report.results, "beauty")
    assert full.label == "mamba4rec"
    assert [v.ablation for v in ablated] == ["no_filter", "forward_only"]


def test_one_row_per_ablation_with_delta_ci_rel_dz_and_p(report) -> None:  # type: ignore[no-untyped-def]
    (table,) = report.ablations
    assert table.key == "ablation:hr@10" and table.title == "Ablations: HR@10 (test)"
    assert table.header == ["model", "dataset", "ablation", "full", "ablated", "Δ [95% CI]",
                            "rel. Δ", "d_z", "p (Holm)"]  # fmt: skip
    found = rows(table)
    assert list(found) == ["no_filter", "forward_only"]
    no_filter = found["no_filter"]
    full, ablated, delta, rel, d_z, p = no_filter[3:]
    assert (full.mean, ablated.mean) == (1.0, 0.5)  # the full model hits every user
    assert delta.mean == pytest.approx(-0.5)  # 20 of 40 users lose their hit
    assert delta.ci_low <= delta.mean <= delta.ci_high < 0
    assert rel.mean == pytest.approx(-0.5)  # Δ / full
    # half the differences are 0, half −1: mean −0.5, sample std 0.5·√(40/39)
    assert d_z.mean == pytest.approx(-((39 / 40) ** 0.5))
    assert p.mean < 0.05 and delta.marks == [WORSE]
    forward = found["forward_only"]
    assert forward[5].mean == pytest.approx(-1 / 40) and forward[5].marks == []
    assert forward[8].mean > 0.05


def test_p_values_are_holm_adjusted_over_the_table(report) -> None:  # type: ignore[no-untyped-def]
    pairs = [p for p in report.pairs if p.kind == "ablation"]
    assert len(pairs) == 2 and {p.family_size for p in pairs} == {2}
    assert all(p.reference == "mamba4rec" for p in pairs)
    smallest = min(pairs, key=lambda p: p.comparison.test.p_value)
    assert smallest.comparison.p_adjusted == pytest.approx(2 * smallest.comparison.test.p_value)
    legend = " ".join(report.ablations[0].legend)
    assert "significantly better/worse than the full model" in legend
    assert "Holm–Bonferroni correction over a family of 2 comparisons" in legend


def test_rendered_and_exported(report) -> None:  # type: ignore[no-untyped-def]
    text = to_markdown(report)
    assert "## Ablations: HR@10 (test)" in text
    assert "| mamba4rec | beauty | no_filter | 1.0000 ± 0.0000 (n=2) | 0.5000 ± 0.0000 (n=2) | " \
        "-0.5000 [" in text  # fmt: skip
    assert "| -50.0% | -0.99 | <0.001 |" in text
    csv = [line for line in to_csv(report).splitlines() if line.startswith("ablation,diff,")]
    assert len(csv) == 2


def test_no_ablations_no_table(tmp_path: Path) -> None:
    report = analyse(build_report(load_results(demo_store(tmp_path)), ["hr@10"]),
                     ReportOptions(strata=None))  # fmt: skip
    # demo: mamba4rec+no_ffn has a full mamba4rec on beauty, not on ml-1m (failed)
    (table,) = report.ablations
    assert [(r[1].text, r[2].text) for r in table.rows] == [("beauty", "no_ffn")]
