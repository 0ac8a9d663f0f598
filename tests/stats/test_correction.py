"""Holm and Benjamini–Hochberg against hand-worked examples, and correct() on comparisons."""

from __future__ import annotations

import numpy as np
import pytest

from seqbench.stats import CORRECTIONS, Comparison, Effect, Interval, TestResult, adjust, correct

# The classic example, m = 4: p = [0.01, 0.04, 0.03, 0.005].
# Sorted: 0.005 (#4), 0.01 (#1), 0.03 (#3), 0.04 (#2).
# Holm, p_(i) · (m − i + 1): 0.005·4 = 0.02, 0.01·3 = 0.03, 0.03·2 = 0.06, 0.04·1 = 0.04,
#   running max → 0.02, 0.03, 0.06, 0.06; back in input order: [0.03, 0.06, 0.06, 0.02].
# BH, p_(i) · m / i: 0.005·4 = 0.02, 0.01·2 = 0.02, 0.03·4/3 = 0.04, 0.04·1 = 0.04,
#   running min from the top → 0.02, 0.02, 0.04, 0.04; input order: [0.02, 0.04, 0.04, 0.02].
P = [0.01, 0.04, 0.03, 0.005]


def test_holm_worked_example() -> None:
    np.testing.assert_allclose(adjust(P, "holm"), [0.03, 0.06, 0.06, 0.02])


def test_benjamini_hochberg_worked_example() -> None:
    np.testing.assert_allclose(adjust(P, "bh"), [0.02, 0.04, 0.04, 0.02])


def test_bh_step_up_lifts_a_smaller_p_to_a_later_smaller_bound() -> None:
    # m = 3, sorted 0.02, 0.03, 0.035: raw BH 0.06, 0.045, 0.035 → running min from the top
    # 0.035, 0.035, 0.035 (the largest p rescues the smaller ones: step-up, not step-down).
    # Holm: 0.06, 0.06 (max of 0.06 and 0.03·2), 0.06 (max of 0.06 and 0.035).
    p = [0.035, 0.02, 0.03]
    np.testing.assert_allclose(adjust(p, "bh"), [0.035, 0.035, 0.035])
    np.testing.assert_allclose(adjust(p, "holm"), [0.06, 0.06, 0.06])


def test_adjusted_values_are_clipped_to_one() -> None:
    # Holm: 0.5·3 = 1.5, 0.6·2 = 1.2, 0.9 → clipped 1, 1, 1 (max keeps them 1).
    np.testing.assert_array_equal(adjust([0.5, 0.6, 0.9], "holm"), [1.0, 1.0, 1.0])
    assert adjust([0.7, 0.8], "bh").max() <= 1.0


@pytest.mark.parametrize("method", ["holm", "bh"])
def test_monotone_in_p_order_preserving_and_never_below_raw(method: str) -> None:
    rng = np.random.default_rng(9)
    p = np.concatenate([rng.uniform(0, 0.05, 8), rng.uniform(0, 1, 12), [0.02, 0.02]])
    rng.shuffle(p)
    q = adjust(p, method)
    order = np.argsort(p, kind="stable")
    assert np.all(np.diff(q[order]) >= 0)  # a smaller p never gets a larger adjusted p
    assert np.all(q >= p) and np.all(q <= 1)
    # Order preservation: adjusting a permuted family permutes the result the same way.
    perm = rng.permutation(p.size)
    np.testing.assert_allclose(adjust(p[perm], method), q[perm])


def test_holm_is_never_less_conservative_than_bh() -> None:
    p = np.random.default_rng(1).uniform(0, 0.2, 15)
    assert np.all(adjust(p, "holm") >= adjust(p, "bh") - 1e-15)


def test_none_returns_the_raw_p_values_and_empty_families_are_fine() -> None:
    np.testing.assert_array_equal(adjust(P, "none"), P)
    for method in CORRECTIONS:
        assert adjust([], method).shape == (0,)
    np.testing.assert_array_equal(adjust([0.3], "holm"), [0.3])


@pytest.mark.parametrize("bad", [[0.1, 1.5], [-0.1], [float("nan")]])
def test_p_values_outside_zero_one_are_rejected(bad: list[float]) -> None:
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        adjust(bad)


def test_unknown_method_is_rejected_with_the_choices() -> None:
    with pytest.raises(ValueError, match="holm, bh, none"):
        adjust(P, "bonferroni")  # type: ignore[arg-type]


def comparison(p: float) -> Comparison:
    ci = Interval(-0.1, 0.1, 0.95)
    effect = Effect(0.0, ci, "paired bootstrap over users", None, None, None, 0.1, 0.1)
    return Comparison(TestResult("t", "two-sided", 1.0, p, 50, 1, 1, None, None), effect)


def test_correct_fills_adjusted_p_and_significance_in_order() -> None:
    family = [comparison(p) for p in P]
    corrected = correct(family, "holm", alpha=0.05)
    assert [c.p_adjusted for c in corrected] == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert [c.significant for c in corrected] == [True, False, False, True]
    assert [c.test for c in corrected] == [c.test for c in family]
    assert all(c.p_adjusted is None and c.significant is None for c in family)  # untouched
    bh = correct(family, "bh", alpha=0.04)  # ≤ α counts: 0.04 is significant at α = 0.04
    assert [c.significant for c in bh] == [True, True, True, True]
    none = correct(family, "none", alpha=0.02)
    assert [c.significant for c in none] == [True, False, False, True]


def test_correct_rejects_a_bad_alpha() -> None:
    with pytest.raises(ValueError, match="alpha"):
        correct([comparison(0.1)], alpha=5)
