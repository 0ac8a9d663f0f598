"""Bootstrap intervals: coverage, agreement with their p-values, and the grouped fast path."""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pytest
import scipy.stats

from seqbench import stats
from seqbench.stats import MIN_RESAMPLES, bootstrap, compare, two_level_bootstrap


def skewed_pair(rng: np.random.Generator, n: int, lift: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-user values with a user effect and multiplicative noise; E[a − b] = lift."""
    user = rng.exponential(1.0, n)
    a = user * rng.gamma(2.0, (1.0 + lift) / 2.0, n)
    b = user * rng.gamma(2.0, 0.5, n)
    return a, b


def test_percentile_interval_covers_the_true_mean_difference_at_its_level() -> None:
    rng = np.random.default_rng(2024)
    datasets, users, lift = 400, 200, 0.1
    covered = 0
    for i in range(datasets):
        a, b = skewed_pair(rng, users, lift)
        draws = stats._bootstrap_means([(a - b)[None]], 1_000, np.random.default_rng(i), False)
        ci = stats._percentile_ci(draws[:, 0], 0.95)
        covered += ci.low <= lift <= ci.high
    low, high = scipy.stats.binom.interval(0.99, datasets, 0.95)
    assert low <= covered <= high, f"coverage {covered / datasets:.3f}"


def test_p_value_agrees_with_whether_the_interval_excludes_zero() -> None:
    rng = np.random.default_rng(8)
    for shift in np.linspace(0.0, 0.5, 16):
        d = rng.normal(shift, 1.0, 60)
        p, ci = bootstrap(d, seed=1)
        excludes = ci.low > 0 or ci.high < 0
        near_boundary = abs(p - 0.05) <= 2 / (MIN_RESAMPLES + 1)  # quantile interpolation
        assert (p <= 0.05) == excludes or near_boundary, (shift, p, ci)


def test_one_sided_p_values_split_the_draws() -> None:
    d = np.random.default_rng(3).normal(0.15, 1.0, 100)
    greater, _ = bootstrap(d, "greater")
    less, _ = bootstrap(d, "less")
    two, ci = bootstrap(d)
    # (#≤0 + 1) + (#≥0 + 1) = n + 2 when no draw is exactly 0.
    assert greater + less == pytest.approx((MIN_RESAMPLES + 2) / (MIN_RESAMPLES + 1))
    assert two == pytest.approx(2 * min(greater, less))
    assert d.mean() > 0 and greater < 0.5 < less
    assert ci.level == 0.95 and ci.low < d.mean() < ci.high


def test_bootstrap_is_deterministic_and_refuses_too_few_draws() -> None:
    d = np.random.default_rng(5).normal(size=50)
    assert bootstrap(d, seed=3) == bootstrap(d, seed=3)
    with pytest.raises(ValueError, match="at least 10,000"):
        bootstrap(d, n_resamples=999)
    with pytest.raises(ValueError, match="at least 10,000"):
        two_level_bootstrap(d[None], d[None], n_resamples=999)


def ndcg_like(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    rank = rng.geometric(0.08, size=shape)
    return np.where(rank <= 10, 1 / np.log2(rank + 1), 0.0)


@pytest.mark.parametrize("seeds", [1, 3])
def test_grouped_and_per_user_draws_have_the_same_distribution(
    seeds: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Few distinct value rows: drawn as multinomial counts over them, or user by user when forced.
    rng = np.random.default_rng(6)
    a, b = ndcg_like(rng, (seeds, 2_000)), ndcg_like(rng, (seeds, 2_000))
    assert stats._Users(np.concatenate([a, b]).T).grouped == (seeds == 1)
    spreads = {}
    for ratio in (1, 10**9):
        monkeypatch.setattr(stats, "_GROUP_RATIO", ratio)
        assert stats._Users(np.concatenate([a, b]).T).grouped == (ratio == 1)
        means = stats._bootstrap_means([a, b], 4_000, np.random.default_rng(ratio), seeds > 1)
        diff = means[:, 0] - means[:, 1]
        expected = a.mean() - b.mean()
        assert diff.mean() == pytest.approx(expected, abs=4 * diff.std() / math.sqrt(4_000))
        spreads[ratio] = diff.std()
    # Standard deviations from 4,000 draws each: relative SE ≈ 1.1 %, so 6 % is > 3.5 SE.
    assert spreads[1] == pytest.approx(spreads[10**9], rel=0.06)
    if seeds == 1:  # the bootstrap SE of a mean: sd(d) · √((n − 1)/n) / √n
        d = a[0] - b[0]
        assert spreads[1] == pytest.approx(d.std(ddof=0) / math.sqrt(d.size), rel=0.06)


def test_two_level_interval_widens_with_seed_to_seed_offsets() -> None:
    rng = np.random.default_rng(10)
    users = rng.normal(0.3, 0.1, 500)
    noise = rng.normal(0, 0.05, (2, 4, 500))
    quiet_a, quiet_b = users + noise[0], users + noise[1]
    offsets = rng.normal(0, 0.02, (2, 4, 1))  # each training run shifts every user alike
    loud_a, loud_b = quiet_a + offsets[0], quiet_b + offsets[1]
    _, quiet = two_level_bootstrap(quiet_a, quiet_b)
    _, loud = two_level_bootstrap(loud_a, loud_b)
    _, users_only = bootstrap(loud_a.mean(0) - loud_b.mean(0))
    width = {k: ci.high - ci.low for k, ci in [("q", quiet), ("l", loud), ("u", users_only)]}
    # Seed offsets are invisible to a per-user bootstrap on seed averages (same width as quiet).
    assert width["l"] > 2 * width["u"] and width["l"] > 2 * width["q"]


def test_compare_reuses_its_draws_so_a_bootstrap_p_and_the_interval_agree() -> None:
    rng = np.random.default_rng(12)
    for shift in np.linspace(0.0, 0.3, 8):
        a, b = rng.normal(shift, 1.0, 80), rng.normal(0.0, 1.0, 80)
        c = compare(a, b, test="bootstrap")
        ci = c.effect.diff_ci
        near_boundary = abs(c.test.p_value - 0.05) <= 2 / (MIN_RESAMPLES + 1)
        assert (c.test.p_value <= 0.05) == (ci.low > 0 or ci.high < 0) or near_boundary
    # One seed per side: the two-level bootstrap has no seeds to resample, so it is the same.
    two_level = compare(a, b, test="two-level-bootstrap")
    assert two_level.test.p_value == c.test.p_value and two_level.effect == c.effect


def test_bootstrap_memory_stays_bounded_for_100k_users() -> None:
    d = np.random.default_rng(0).normal(size=100_000)
    tracemalloc.start()
    try:
        draws = stats._bootstrap_means([d[None]], 200, np.random.default_rng(0), False)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert draws.shape == (200, 1) and np.all(np.isfinite(draws))
    assert peak < 64 * 2**20, f"peak {peak / 2**20:.0f} MiB"
