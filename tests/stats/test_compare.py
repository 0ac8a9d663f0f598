"""compare(): effects by hand, seed handling, JSON output and input validation."""

from __future__ import annotations

import json
import math
from typing import get_args

import numpy as np
import pytest

from seqbench.stats import (
    ALTERNATIVES,
    CORRECTIONS,
    PAIRED_CI,
    TESTS,
    TWO_LEVEL_CI,
    Correction,
    TestName,
    compare,
    correct,
    paired_t,
    randomization,
    wilcoxon,
)

# a: 2 seeds × 4 users, b: 1 seed. Seed means a_bar = [0.3, 0.3, 0.0, 0.8], b = [0.1, 0.3, 0.1, 0.5]
# d = [0.2, 0.0, −0.1, 0.3]: diff = 0.4 / 4 = 0.1; mean_a = 1.4 / 4 = 0.35; mean_b = 1.0 / 4 = 0.25;
# rel = 0.1 / 0.25 = 0.4; deviations of d 0.1, −0.1, −0.2, 0.2 → Σ² = 0.1, / 3 → sd = √(1/30),
# d_z = 0.1 / √(1/30) = √0.3 = 0.547723.
A = np.array([[0.2, 0.4, 0.0, 1.0], [0.4, 0.2, 0.0, 0.6]])
B = np.array([0.1, 0.3, 0.1, 0.5])


def test_effect_matches_hand_computation() -> None:
    effect = compare(A, B).effect
    assert effect.diff == pytest.approx(0.1)
    assert effect.mean_a == pytest.approx(0.35) and effect.mean_b == pytest.approx(0.25)
    assert effect.rel == pytest.approx(0.4)
    assert effect.d_z == pytest.approx(math.sqrt(0.3))
    assert effect.ci_method == PAIRED_CI  # b has one seed
    assert effect.diff_ci.level == 0.95 and effect.diff_ci.low <= 0.1 <= effect.diff_ci.high
    # The CI of a mean over 4 users can reach at most the extremes of d.
    assert effect.diff_ci.low >= -0.1 and effect.diff_ci.high <= 0.3
    assert effect.rel_ci is not None and effect.rel_ci.low <= 0.4 <= effect.rel_ci.high


def test_relative_effect_is_none_when_b_averages_zero() -> None:
    result = compare(A, np.zeros(4))
    assert result.effect.rel is None and result.effect.rel_ci is None
    assert result.effect.mean_b == 0.0
    assert result.to_json()["effect"]["rel"] is None


def test_d_z_is_none_when_the_differences_do_not_vary() -> None:
    b = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
    result = compare(b + 0.1, b)
    assert result.effect.d_z is None and result.effect.diff == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("seeds_a", "seeds_b", "method"),
    [
        (1, 1, PAIRED_CI),
        (3, 1, PAIRED_CI),
        (1, 2, PAIRED_CI),
        (2, 2, TWO_LEVEL_CI),
        (3, 5, TWO_LEVEL_CI),
    ],
)
def test_ci_method_switches_with_the_seed_counts(seeds_a: int, seeds_b: int, method: str) -> None:
    rng = np.random.default_rng(seeds_a * 10 + seeds_b)
    result = compare(rng.random((seeds_a, 30)), rng.random((seeds_b, 30)))
    assert result.effect.ci_method == method
    assert (result.test.n_seeds_a, result.test.n_seeds_b, result.test.n_users) == (
        seeds_a,
        seeds_b,
        30,
    )


def test_each_side_is_averaged_over_its_own_seeds_before_pairing() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.random((3, 50)), rng.random((2, 50))
    d = a.mean(axis=0) - b.mean(axis=0)
    assert compare(a, b, test="t").test.p_value == pytest.approx(paired_t(d)[1])
    assert compare(a, b, test="wilcoxon").test.p_value == pytest.approx(wilcoxon(d)[1])
    assert compare(a, b, test="randomization", seed=4).test.p_value == randomization(d, seed=4)[1]


@pytest.mark.parametrize("test", get_args(TestName))
def test_every_test_is_two_sided_by_default_and_one_sided_when_asked(test: TestName) -> None:
    rng = np.random.default_rng(2)
    b = rng.random((2, 200))
    a = b + rng.normal(0.08, 0.1, (2, 200))  # a is better
    two = compare(a, b, test=test)
    greater = compare(a, b, test=test, alternative="greater")
    less = compare(a, b, test=test, alternative="less")
    assert two.test.alternative == "two-sided" and greater.test.alternative == "greater"
    assert greater.test.p_value < 0.01 < 0.99 < less.test.p_value
    assert two.test.p_value < 0.01 and two.test.test == test
    resampled = test in ("randomization", "bootstrap", "two-level-bootstrap")
    assert (two.test.n_resamples, two.test.seed) == ((10_000, 0) if resampled else (None, None))
    assert two.effect.diff > 0 and two.effect.diff_ci.low > 0


def test_to_json_has_no_nan_and_round_trips() -> None:
    same = np.array([0.1, 0.2, 0.3])
    result = correct([compare(same, same)], "holm")[0]  # all differences 0: t is undefined
    data = result.to_json()
    text = json.dumps(data, allow_nan=False)
    assert json.loads(text) == data
    assert data["test"]["statistic"] is None and data["test"]["p_value"] == 1.0
    assert data["effect"]["d_z"] is None
    assert data["p_adjusted"] == 1.0 and data["significant"] is False
    assert set(data) == {"test", "effect", "p_adjusted", "significant"}
    assert set(data["effect"]["diff_ci"]) == {"low", "high", "level"}
    full = compare(A, B, test="bootstrap").to_json()
    assert json.loads(json.dumps(full, allow_nan=False)) == full
    assert full["test"]["n_resamples"] == 10_000 and isinstance(full["effect"]["diff"], float)
    # The effect's bootstrap runs for every test, so it records its own draws and seed.
    effect = compare(A, B, test="t", n_resamples=12_000, seed=3).to_json()["effect"]
    assert (effect["n_resamples"], effect["seed"]) == (12_000, 3)


def test_legend_tables_describe_every_test_and_correction() -> None:
    assert set(TESTS) == set(get_args(TestName))
    assert set(CORRECTIONS) == set(get_args(Correction))
    assert CORRECTIONS["holm"] == "Holm–Bonferroni"
    assert CORRECTIONS["bh"] == "Benjamini–Hochberg (FDR)"
    assert all(isinstance(text, str) and text for text in TESTS.values())
    assert ALTERNATIVES == ("two-sided", "greater", "less")


def test_compare_is_deterministic_for_a_seed() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.random((2, 40)), rng.random((2, 40))
    assert compare(a, b, test="two-level-bootstrap", seed=9) == compare(
        a, b, test="two-level-bootstrap", seed=9
    )


@pytest.mark.parametrize(
    ("a", "b", "kwargs", "message"),
    [
        (np.ones(5), np.ones(4), {}, "a has 5 users but b has 4"),
        (np.ones((2, 3)), np.ones((1, 4)), {}, "same users in the same column order"),
        (np.ones(1), np.ones(1), {}, "at least 2 users; got 1"),
        (np.array([0.1, np.nan, 0.3]), np.ones(3), {}, "a holds 1 NaN or infinite"),
        (
            np.ones(3),
            np.array([[0.1, 0.2, 0.3], [0.1, np.inf, 0.3]]),
            {},
            "seed row 1, user column 1",
        ),
        (np.ones((1, 2, 3)), np.ones(3), {}, "1-D .* or 2-D"),
        (np.ones((0, 3)), np.ones(3), {}, "no seeds"),
        (np.ones(3), np.ones(3), {"test": "ttest"}, "unknown test 'ttest'; expected one of t, "),
        (np.ones(3), np.ones(3), {"alternative": "bigger"}, "unknown alternative 'bigger'"),
        (np.ones(3), np.ones(3), {"n_resamples": 1_000}, "at least 10,000"),
        (np.ones(3), np.ones(3), {"level": 1.5}, "level must lie strictly between 0 and 1"),
    ],
)
def test_compare_rejects_bad_input_with_a_clear_message(
    a: np.ndarray, b: np.ndarray, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        compare(a, b, **kwargs)  # type: ignore[arg-type]
