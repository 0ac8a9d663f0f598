"""The closed-form pieces: paired t-test, Wilcoxon and the summary over seeds."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest
import scipy.stats

from seqbench.stats import ALTERNATIVES, paired_t, seed_summary, wilcoxon


@pytest.mark.parametrize("alternative", ALTERNATIVES)
def test_paired_t_equals_scipy_ttest_rel(alternative: str) -> None:
    rng = np.random.default_rng(3)
    a = rng.gamma(2.0, 0.1, size=300)
    b = a + rng.normal(0.01, 0.05, size=300)
    t, p = paired_t(a - b, alternative)
    expected = scipy.stats.ttest_rel(a, b, alternative=alternative)
    assert t == pytest.approx(expected.statistic, rel=1e-10)
    assert p == pytest.approx(expected.pvalue, rel=1e-10)


def test_paired_t_one_sided_p_values_point_the_right_way() -> None:
    # a beats b on average: evidence for "greater", none for "less" (RecBole's wrong-tail bug).
    d = np.array([0.3, 0.1, 0.2, 0.25, -0.05, 0.15, 0.2, 0.3])
    _, greater = paired_t(d, "greater")
    _, less = paired_t(d, "less")
    _, two = paired_t(d)
    assert greater < 0.01 < 0.99 < less
    assert two == pytest.approx(2 * greater)


def test_paired_t_degenerate_differences_answer_without_nan_p() -> None:
    t, p = paired_t(np.zeros(5))
    assert math.isnan(t) and p == 1.0
    assert paired_t(np.full(4, 0.2)) == (math.inf, 0.0)
    assert paired_t(np.full(4, 0.2), "less") == (math.inf, 1.0)
    assert paired_t(np.full(4, -0.2), "less") == (-math.inf, 0.0)


@pytest.mark.parametrize("alternative", ALTERNATIVES)
def test_wilcoxon_equals_scipy(alternative: str) -> None:
    rng = np.random.default_rng(4)
    a, b = rng.random(80), rng.random(80)
    w, p = wilcoxon(a - b, alternative)
    expected = scipy.stats.wilcoxon(a, b, alternative=alternative)
    assert (w, p) == pytest.approx((expected.statistic, expected.pvalue))


def test_wilcoxon_all_zero_differences_give_p_one() -> None:
    w, p = wilcoxon(np.zeros(10))
    assert math.isnan(w) and p == 1.0


def test_seed_summary_matches_hand_computed_t_interval() -> None:
    values = [0.31, 0.29, 0.35, 0.30]
    # mean = 1.25 / 4 = 0.3125; deviations −0.0025, −0.0225, 0.0375, −0.0125;
    # squares sum to 0.002075, / (n − 1) = 0.00069167, std = 0.0262996;
    # t(0.975, df=3) = 3.182446 (table), half-width = 3.182446 · 0.0262996 / √4 = 0.0418486.
    summary = seed_summary(values)
    assert summary.n == 4
    assert summary.mean == pytest.approx(0.3125)
    assert summary.std == pytest.approx(statistics.stdev(values)) == pytest.approx(0.0262996, 1e-5)
    assert summary.ci is not None and summary.ci.level == 0.95
    assert summary.ci.low == pytest.approx(0.3125 - 0.0418486, abs=1e-6)
    assert summary.ci.high == pytest.approx(0.3125 + 0.0418486, abs=1e-6)
    wider = seed_summary(values, level=0.99).ci
    assert wider is not None and wider.low < summary.ci.low and wider.high > summary.ci.high


def test_seed_summary_of_one_seed_has_no_spread_rather_than_a_fake_zero() -> None:
    summary = seed_summary([0.42])
    assert (summary.n, summary.mean, summary.std, summary.ci) == (1, 0.42, None, None)


def test_seed_summary_of_identical_seeds_is_a_point_interval() -> None:
    summary = seed_summary([0.2, 0.2, 0.2])
    assert summary.std == 0.0 and summary.ci is not None
    assert summary.ci.low == summary.ci.high == pytest.approx(0.2)


@pytest.mark.parametrize(
    ("values", "message"),
    [([], "at least one value"), ([0.1, math.nan], "non-finite"), ([math.inf], "non-finite")],
)
def test_seed_summary_rejects_empty_and_non_finite(values: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        seed_summary(values)


def test_seed_summary_rejects_a_level_outside_zero_one() -> None:
    with pytest.raises(ValueError, match="level"):
        seed_summary([0.1, 0.2], level=95)
