"""Figures: the plotted numbers (from the pure series functions) and the files written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.stats

from seqbench.report import Report, build_report, load_results
from seqbench.report.analysis import analyse
from seqbench.report.options import ReportOptions
from seqbench.report.plots import (
    difference_histogram,
    difference_sets,
    group_label,
    loglog_slope,
    scaling_series,
    sweep_keys,
    sweep_series,
    write_plots,
)
from tests.report.store import D_STATES, NOISE, SCALING, sweep_store, write_cell

PNG, PDF = b"\x89PNG\r\n\x1a\n", b"%PDF-"
PAIR = ("mamba4rec@d_state=32", "sasrec@max_len=50")


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Report:
    store = sweep_store(tmp_path_factory.mktemp("sweeps"))
    built = build_report(load_results(store), ["hr@10"])
    return analyse(built, ReportOptions(strata=None, compare=PAIR))


def half_width(std: float, n: int) -> float:
    return float(scipy.stats.t.ppf(0.975, n - 1)) * std / np.sqrt(n)


def test_sweep_keys_and_group_labels(report: Report) -> None:
    assert report.results is not None
    assert sweep_keys(report.results) == ["max_len", "d_state", "noise_ratio"]
    variant = next(v for v in report.results.variants if v.label == "sasrec@max_len=20")
    assert group_label(variant, "max_len") == "sasrec"


def test_metric_vs_swept_parameter_with_seed_intervals(report: Report) -> None:
    assert report.results is not None
    (series,) = sweep_series(report.results, "d_state", "hr@10")
    assert (series.label, series.dataset) == ("mamba4rec", "beauty")
    assert series.x == sorted(D_STATES)
    # seed 1 gains g users over 20 hits of 40; seed 2 has one hit fewer
    expected = [(20 + g + 19 + g) / 80 for g in D_STATES.values()]
    assert series.mean == pytest.approx(expected)
    spread = half_width(np.std([0.5, 0.475], ddof=1), 2)
    assert np.subtract(series.high, series.mean) == pytest.approx([spread] * 3)
    assert np.subtract(series.mean, series.low) == pytest.approx([spread] * 3)
    assert series.n == [2, 2, 2]


def test_metric_vs_noise_level(report: Report) -> None:
    assert report.results is not None
    (series,) = sweep_series(report.results, "noise_ratio", "hr@10")
    assert series.x == sorted(NOISE)
    assert series.mean == pytest.approx([(39 - 2 * lost) / 80 for lost in NOISE.values()])
    assert series.mean == sorted(series.mean, reverse=True)  # more noise, fewer hits


def test_time_and_memory_vs_max_len_log_log(report: Report) -> None:
    assert report.results is not None
    (line,) = scaling_series(report.results)  # other groups have a single max_len
    assert (line.label, line.memory_kind) == ("sasrec", "GPU")
    assert line.max_len == sorted(SCALING)
    assert line.seconds == [SCALING[n][0] for n in sorted(SCALING)]
    assert line.memory == [SCALING[n][1] for n in sorted(SCALING)]
    assert loglog_slope(line.max_len, line.seconds) == pytest.approx(1.0)  # linear
    assert loglog_slope(line.max_len, line.memory) == pytest.approx(2.0)  # quadratic
    assert loglog_slope([1.0], [2.0]) is None


def test_difference_histogram_counts_every_user() -> None:
    d = np.array([-1.0, 0.0, 0.0, 0.0, 0.5, 1.0, 1.0])
    counts, edges = difference_histogram(d, bins=5)
    assert counts.sum() == d.size
    assert edges[0] == pytest.approx(-1.0) and edges[-1] == pytest.approx(1.0)
    assert counts.tolist() == [1, 0, 3, 1, 2]  # 0 is the middle bin's centre
    zero, _ = difference_histogram(np.zeros(4))
    assert zero.sum() == 4


def test_compare_pair_differences(report: Report) -> None:
    (found,) = difference_sets(report, ReportOptions(strata=None, compare=PAIR))
    assert (found.variant, found.reference, found.dataset) == (*PAIR, "beauty")
    # seed means: d_state=32 gains 10 users over the base ranks that max_len=50 keeps
    assert found.values.shape == (40,) and found.values.sum() == pytest.approx(10.0)
    every = difference_sets(report, ReportOptions(strata=None))
    assert len(every) == len([p for p in report.pairs if p.kind == "metric"]) == 9


def test_write_plots_png_and_pdf_one_per_key(report: Report, tmp_path: Path) -> None:
    files = write_plots(report, ReportOptions(strata=None, compare=PAIR), tmp_path)
    stems = sorted({f.stem for f in files})
    assert stems == sorted([
        "sweep-max_len-hr@10", "sweep-d_state-hr@10", "noise-noise_ratio-hr@10",
        "scaling-max_len", "differences-hr@10-beauty-mamba4rec@d_state=32-vs-sasrec@max_len=50",
    ])  # fmt: skip
    assert len(files) == 2 * len(stems)
    for path in files:
        head = path.read_bytes()[:8]
        assert head.startswith(PNG if path.suffix == ".png" else PDF), path
        assert path.stat().st_size > 1000


def test_categorical_sweep_values(tmp_path: Path) -> None:
    for index, loss in enumerate(("ce", "bpr")):
        write_cell(tmp_path, label=f"sasrec@loss_type={loss}", model="sasrec",
                   sweep={"loss_type": loss}, order=(0, 0, index),
                   test_rank=(1, 2, 30, 40))  # fmt: skip
    built = build_report(load_results(tmp_path), ["hr@10"])
    assert built.results is not None
    (series,) = sweep_series(built.results, "loss_type", "hr@10")
    assert series.x == ["bpr", "ce"] and series.low == [None, None]  # one seed: no interval
    files = write_plots(built, ReportOptions(strata=None), tmp_path / "plots")
    assert sorted(f.name for f in files) == ["sweep-loss_type-hr@10.pdf",
                                             "sweep-loss_type-hr@10.png"]  # fmt: skip
