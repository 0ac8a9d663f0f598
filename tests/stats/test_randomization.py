"""The sign-flip randomization test against exact enumeration, and its guarantees."""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pytest

from seqbench import stats
from seqbench.stats import ALTERNATIVES, MIN_RESAMPLES, randomization

N_DRAWS = 10_000


def exact_sign_flip_p(d: np.ndarray, alternative: str) -> float:
    """Share of all 2^n sign assignments whose sum is at least as extreme as the observed one."""
    n = d.size
    signs = ((np.arange(2**n)[:, None] >> np.arange(n)) & 1) * 2 - 1  # (2^n, n) of ±1
    sums = signs @ d
    observed = d.sum()
    tie = 1e-9 * np.abs(d).sum()
    if alternative == "greater":
        extreme = sums >= observed - tie
    elif alternative == "less":
        extreme = sums <= observed + tie
    else:
        extreme = np.abs(sums) >= abs(observed) - tie
    return float(extreme.mean())


CONTINUOUS = np.random.default_rng(11).normal(0.25, 1.0, size=12)
# Few distinct values, as with NDCG of one seed per side, and ties among the flipped sums.
DISCRETE = np.array([1.0, 1.0, 0.5, 0.5, 0.5, -1.0, 0.5, 1.0, -0.5, 0.0, 0.5, 0.5])


@pytest.mark.parametrize("grouped", [False, True], ids=["per-user", "grouped"])
@pytest.mark.parametrize("d", [CONTINUOUS, DISCRETE], ids=["continuous", "discrete"])
@pytest.mark.parametrize("alternative", ALTERNATIVES)
def test_monte_carlo_p_matches_exact_enumeration(
    d: np.ndarray, alternative: str, grouped: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Force each drawing path: per-user random bits, or binomial counts per distinct value.
    monkeypatch.setattr(stats, "_GROUP_RATIO", 1 if grouped else 10**9)
    exact = exact_sign_flip_p(d, alternative)
    statistic, p = randomization(d, alternative, n_resamples=N_DRAWS, seed=5)
    assert statistic == pytest.approx(d.mean())
    # (b + 1)/(n + 1) has Monte-Carlo SE √(p(1 − p)/n) plus a bias below 1/(n + 1).
    tolerance = 4.5 * math.sqrt(exact * (1 - exact) / N_DRAWS) + 1 / (N_DRAWS + 1)
    assert abs(p - exact) <= tolerance, (p, exact, tolerance)


def test_exact_p_of_the_inputs_is_moderate_so_the_comparison_means_something() -> None:
    for d in (CONTINUOUS, DISCRETE):
        assert 0.01 < exact_sign_flip_p(d, "two-sided") < 0.9


def test_p_is_never_zero_even_when_no_flip_reaches_the_observed_mean() -> None:
    d = np.linspace(1.0, 2.0, 40)  # all positive: exact p = 2 / 2^40
    _, p = randomization(d, n_resamples=N_DRAWS)
    assert p == pytest.approx(1 / (N_DRAWS + 1))  # only the observed assignment counts
    _, greater = randomization(d, "greater", n_resamples=N_DRAWS)
    assert greater == pytest.approx(1 / (N_DRAWS + 1))


def test_all_zero_differences_give_p_one() -> None:
    assert randomization(np.zeros(20)) == (0.0, 1.0)


def test_same_seed_same_p_other_seed_other_draws() -> None:
    d = np.random.default_rng(2).normal(0.1, 1.0, size=200)
    assert randomization(d, seed=7) == randomization(d, seed=7)
    p_values = {randomization(d, seed=s)[1] for s in range(4)}
    assert len(p_values) > 1


def test_fewer_than_ten_thousand_draws_are_refused() -> None:
    d = np.arange(10.0) - 4
    with pytest.raises(ValueError, match="at least 10,000"):
        randomization(d, n_resamples=MIN_RESAMPLES - 1)
    randomization(d, n_resamples=MIN_RESAMPLES)


def test_memory_stays_bounded_for_100k_users() -> None:
    # All draws at once would take ≥ 1 GB (10,000 × 100,000 bits as bytes); chunks keep it small.
    d = np.random.default_rng(0).normal(size=100_000)
    tracemalloc.start()
    try:
        p = stats._sign_flip_p(d, "two-sided", 2_000, np.random.default_rng(0))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert 0 < p <= 1
    assert peak < 64 * 2**20, f"peak {peak / 2**20:.0f} MiB"
