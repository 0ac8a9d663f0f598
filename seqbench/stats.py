"""Paired statistics for comparing two variants on the same users, with seeds taken seriously.

A result cell (dataset × variant × seed) stores every user's target rank, so a report can derive
per-user metric values and compare two variants *paired over users*. The frameworks we surveyed
get this wrong in recurring ways (framework-landscape §2b, §3, §8): RecBole tests per-seed means
with the wrong tail, ranx's randomization p-value can be 0, nobody corrects for multiple
comparisons or reports effect sizes. This module fixes each of them:

- every test is two-sided unless a direction is asked for, and the result records it;
- per-user values are averaged over each side's seeds, then compared paired over users; the
  two-level bootstrap also resamples seeds, so training variance counts when seeds are few;
- resampling p-values are ``(b + 1) / (n + 1)``, never 0, from a seeded numpy Generator;
- every comparison carries an effect: mean difference with a bootstrap interval, relative
  difference and Cohen's d_z, because with thousands of users almost anything is "significant";
- Holm (family-wise) and Benjamini–Hochberg (FDR) adjust a family of comparisons.

Resampling is exact but grouped where it can be: users with identical values are
interchangeable, so when few distinct value rows exist (e.g. NDCG@10 of one seed per side) a
resample is drawn as multinomial counts over the distinct rows, and a sign flip as binomial
counts over the distinct differences — the same distribution as resampling users one by one,
at a fraction of the cost. Otherwise users are drawn in chunks so memory stays bounded.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal, get_args

import numpy as np
import scipy.stats

Alternative = Literal["two-sided", "greater", "less"]
"""``"greater"``: H1 is mean(a − b) > 0; ``"less"``: mean(a − b) < 0."""
TestName = Literal["t", "randomization", "bootstrap", "two-level-bootstrap", "wilcoxon"]
Correction = Literal["holm", "bh", "none"]

ALTERNATIVES: tuple[Alternative, ...] = get_args(Alternative)
TESTS: dict[TestName, str] = {
    "t": "paired t-test on per-user values averaged over seeds",
    "randomization": "paired randomization (sign-flip) test of the mean per-user difference, "
    "values averaged over seeds",
    "bootstrap": "paired bootstrap over users of the mean difference (percentile), "
    "values averaged over seeds",
    "two-level-bootstrap": "two-level bootstrap of the mean difference: seeds of each side, "
    "then users (percentile)",
    "wilcoxon": "Wilcoxon signed-rank test on per-user values averaged over seeds "
    "(median/symmetry, not the mean; not recommended at large N)",
}
CORRECTIONS: dict[Correction, str] = {
    "holm": "Holm–Bonferroni",
    "bh": "Benjamini–Hochberg (FDR)",
    "none": "none",
}
MIN_RESAMPLES = 10_000
"""Fewest draws any public resampling function accepts: p-values resolve to 1e-4 and the
Monte-Carlo error of a p near 0.05 stays ≈ 0.002."""

TWO_LEVEL_CI = "two-level bootstrap (seeds, then users)"
PAIRED_CI = "paired bootstrap over users"

_CHUNK_ELEMENTS = 1 << 19  # elements per resampling chunk (4 MiB of float64): cache-sized
_GROUP_RATIO = 4  # draw grouped counts when distinct rows ≤ users / this (multinomial costs more)
_TIE_RTOL = 1e-9  # resampled statistics this close (relative to Σ|d|) to the observed one tie


@dataclass(frozen=True)
class Interval:
    """A confidence interval at ``level`` (e.g. 0.95)."""

    low: float
    high: float
    level: float


@dataclass(frozen=True)
class SeedSummary:
    """Mean over seeds with its spread; std and CI are None for one seed (never a fake 0)."""

    n: int
    mean: float
    std: float | None
    ci: Interval | None


@dataclass(frozen=True)
class Effect:
    """How large the difference a − b is, whatever its p-value says.

    ``diff`` is the mean over users of (a − b), each side first averaged over its seeds; ``rel``
    is ``diff / mean_b`` (None when mean_b is 0); ``d_z`` is Cohen's d for paired data, mean
    over standard deviation of the per-user differences (None when they do not vary).
    ``rel_ci`` comes from the same bootstrap draws as ``diff_ci`` (ratio of resampled means);
    ``n_resamples`` and ``seed`` reproduce those draws (filled by ``compare``).
    """

    diff: float
    diff_ci: Interval
    ci_method: str
    rel: float | None
    rel_ci: Interval | None
    d_z: float | None
    mean_a: float
    mean_b: float
    n_resamples: int | None = None
    seed: int | None = None


@dataclass(frozen=True)
class TestResult:
    """One test's outcome and everything needed to reproduce it."""

    __test__ = False  # not a pytest class, despite the name

    test: TestName
    alternative: Alternative
    statistic: float | None
    p_value: float
    n_users: int
    n_seeds_a: int
    n_seeds_b: int
    n_resamples: int | None
    seed: int | None


@dataclass(frozen=True)
class Comparison:
    """A test and an effect for one pair of variants; ``correct()`` fills the last two fields."""

    test: TestResult
    effect: Effect
    p_adjusted: float | None = None
    significant: bool | None = None

    def to_json(self) -> dict[str, Any]:
        """Every number as plain JSON: non-finite values become None (null), never NaN."""
        return _jsonable(asdict(self))


# --------------------------------------------------------------------------- seed summaries


def seed_summary(values: Sequence[float], level: float = 0.95) -> SeedSummary:
    """Mean ± sample std over seeds and a t-based CI of the mean (None for a single seed)."""
    _check_level(level)
    x = np.asarray(values, dtype=np.float64).ravel()
    if x.size == 0:
        raise ValueError("seed_summary needs at least one value")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"seed_summary got non-finite values: {x.tolist()}")
    if x.size == 1:
        return SeedSummary(n=1, mean=float(x[0]), std=None, ci=None)
    constant = _constant(x)  # identical seeds: 0 spread, not a rounding residue
    mean = float(x.mean())
    std = 0.0 if constant else float(x.std(ddof=1))
    half = float(scipy.stats.t.ppf((1 + level) / 2, x.size - 1)) * std / math.sqrt(x.size)
    return SeedSummary(
        n=int(x.size), mean=mean, std=std, ci=Interval(mean - half, mean + half, level)
    )


# --------------------------------------------------------------------------- individual tests


def paired_t(d: np.ndarray, alternative: Alternative = "two-sided") -> tuple[float, float]:
    """(t, p) of the one-sample t-test of mean(d) = 0, i.e. the paired t-test of a vs b.

    Degenerate input is answered without scipy's warnings: when every difference is 0 there is
    no evidence either way (t is NaN, p = 1); a constant non-zero difference (equal up to
    rounding) gives t = ±inf.
    """
    d = _differences(d)
    _check_alternative(alternative)
    if _constant(d):
        mean = float(d.mean())
        if mean == 0.0:
            return float("nan"), 1.0
        toward = (mean > 0) if alternative == "greater" else (mean < 0)
        p = 0.0 if alternative == "two-sided" or toward else 1.0
        return math.copysign(math.inf, mean), p
    result = scipy.stats.ttest_1samp(d, 0.0, alternative=alternative)
    return float(result.statistic), float(result.pvalue)


def randomization(
    d: np.ndarray,
    alternative: Alternative = "two-sided",
    n_resamples: int = 10_000,
    seed: int = 0,
) -> tuple[float, float]:
    """(mean(d), p) of the paired randomization test: flip each user's sign at random.

    Under H0 (a and b exchangeable for every user) each difference is as likely to be +d as −d.
    p = (b + 1) / (n + 1), b = number of draws at least as extreme as the observed mean (|mean|
    for two-sided), so p is never 0 and stays valid with Monte-Carlo draws. Requires
    ``n_resamples ≥ MIN_RESAMPLES``.
    """
    d = _differences(d)
    _check_alternative(alternative)
    _check_resamples(n_resamples)
    p = _sign_flip_p(d, alternative, n_resamples, np.random.default_rng(seed))
    return float(d.mean()), p


def bootstrap(
    d: np.ndarray,
    alternative: Alternative = "two-sided",
    n_resamples: int = 10_000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, Interval]:
    """(p, percentile CI) of mean(d) from a paired bootstrap over users.

    The p-value inverts the percentile interval: for "greater" it is the share of bootstrap
    means ≤ 0, for "less" the share ≥ 0 (each as (b + 1) / (n + 1)), two-sided twice the
    smaller, capped at 1. So the two-sided p ≤ 1 − level exactly when the CI at ``level``
    excludes 0 (up to Monte-Carlo resolution): an interval never contradicts its test.
    """
    d = _differences(d)
    _check_alternative(alternative)
    _check_resamples(n_resamples)
    _check_level(level)
    draws = _bootstrap_means([d[None, :]], n_resamples, np.random.default_rng(seed), False)[:, 0]
    return _percentile_p(draws, alternative), _percentile_ci(draws, level)


def two_level_bootstrap(
    a: np.ndarray,
    b: np.ndarray,
    alternative: Alternative = "two-sided",
    n_resamples: int = 10_000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, Interval]:
    """(p, percentile CI) of the mean difference, resampling seeds and then users.

    Each draw resamples the seeds of a and of b with replacement (independently: their seeds
    need not match), then users (the same user indices for both sides), and takes the mean over
    users of (mean over resampled seeds of a − same of b). Seed-to-seed training variance thus
    widens the interval, which a per-user test on seed-averaged values ignores.

    Calibration (simulated, 3 seeds a side, α = 0.05; tests/stats/test_calibration.py): with a
    shared per-seed offset the per-user t-test rejected 26–51 % of true nulls, this test 4–13 %
    (the seed level underestimates seed variance by (S − 1)/S, so few seeds stay somewhat
    liberal when offsets dominate: more seeds is the real cure). Without any seed offset it is
    conservative (≈ 0.3 %): resampling seeds *and* users counts the per-user-per-seed noise
    twice, as the bootstrap of a crossed design does. p as in :func:`bootstrap`.
    """
    a, b = _paired_sides(a, b)
    _check_alternative(alternative)
    _check_resamples(n_resamples)
    _check_level(level)
    means = _bootstrap_means([a, b], n_resamples, np.random.default_rng(seed), True)
    draws = means[:, 0] - means[:, 1]
    return _percentile_p(draws, alternative), _percentile_ci(draws, level)


def wilcoxon(d: np.ndarray, alternative: Alternative = "two-sided") -> tuple[float, float]:
    """(W, p) of scipy's Wilcoxon signed-rank test; offered for comparison, not recommended.

    It tests whether the differences are symmetric about 0 (a median/location shift), not
    whether the mean differs, so it can disagree with the metric's mean in sign. Zero
    differences (users both variants score alike, e.g. both miss the top 10) are dropped
    (scipy's ``zero_method="wilcox"``), so it judges only the users that differ. At the user
    counts of recommendation data its power makes tiny, irrelevant differences "significant",
    and with thousands of users its Type-I error inflates (Ihemelandu & Ekstrand, SIGIR 2023):
    prefer the t-test, randomization or bootstrap, and read the effect size.
    When every difference is 0: (NaN, 1.0).
    """
    d = _differences(d)
    _check_alternative(alternative)
    if np.all(d == 0):
        return float("nan"), 1.0
    result = scipy.stats.wilcoxon(d, alternative=alternative)
    return float(result.statistic), float(result.pvalue)


# --------------------------------------------------------------------------- comparison


def compare(
    a: np.ndarray,
    b: np.ndarray,
    *,
    test: TestName = "t",
    alternative: Alternative = "two-sided",
    level: float = 0.95,
    n_resamples: int = 10_000,
    seed: int = 0,
) -> Comparison:
    """Test and effect of variant a vs variant b on the same users.

    ``a``: (n_seeds_a, n_users), ``b``: (n_seeds_b, n_users) per-user values of one metric,
    the same users in the same column order (1-D = one seed); the seeds need not match in
    identity or number. Each side is averaged over its seeds, then compared paired over users.
    The effect's interval is a two-level bootstrap when both sides have ≥ 2 seeds, a paired
    bootstrap over users otherwise; a bootstrap test drawn the same way reuses its draws, so
    its p-value and the interval agree.
    """
    if test not in TESTS:
        raise ValueError(f"unknown test {test!r}; expected one of {', '.join(TESTS)}")
    _check_alternative(alternative)
    _check_level(level)
    _check_resamples(n_resamples)
    a, b = _paired_sides(a, b)
    a_bar, b_bar = a.mean(axis=0), b.mean(axis=0)
    d = a_bar - b_bar

    draws_by_mode: dict[bool, np.ndarray] = {}

    def draws(two_level: bool) -> np.ndarray:
        """(mean_a*, mean_b*) per draw; one seed per side makes both modes the same draws."""
        two_level = two_level and (a.shape[0] > 1 or b.shape[0] > 1)
        if two_level not in draws_by_mode:
            rng = np.random.default_rng(seed)
            draws_by_mode[two_level] = _bootstrap_means([a, b], n_resamples, rng, two_level)
        return draws_by_mode[two_level]

    statistic: float | None
    resampled = test in ("randomization", "bootstrap", "two-level-bootstrap")
    if test == "t":
        statistic, p = paired_t(d, alternative)
    elif test == "wilcoxon":
        statistic, p = wilcoxon(d, alternative)
    elif test == "randomization":
        statistic, p = randomization(d, alternative, n_resamples, seed)
    else:
        means = draws(test == "two-level-bootstrap")
        statistic, p = float(d.mean()), _percentile_p(means[:, 0] - means[:, 1], alternative)

    two_level_ci = a.shape[0] >= 2 and b.shape[0] >= 2
    effect = _effect(a_bar, b_bar, draws(two_level_ci), level, two_level_ci)
    effect = replace(effect, n_resamples=n_resamples, seed=seed)
    result = TestResult(
        test=test,
        alternative=alternative,
        statistic=_finite_or_none(statistic),
        p_value=float(p),
        n_users=int(d.size),
        n_seeds_a=int(a.shape[0]),
        n_seeds_b=int(b.shape[0]),
        n_resamples=n_resamples if resampled else None,
        seed=seed if resampled else None,
    )
    return Comparison(test=result, effect=effect)


def adjust(p_values: Sequence[float], method: Correction = "holm") -> np.ndarray:
    """Adjusted p-values of one family, in the original order, monotone and ≤ 1.

    Holm controls the family-wise error (any false positive); Benjamini–Hochberg the false
    discovery rate (the share of false positives among rejections), which keeps more power
    when many variants are compared. Reject where adjusted p ≤ α.
    """
    if method not in CORRECTIONS:
        raise ValueError(f"unknown correction {method!r}; expected one of {', '.join(CORRECTIONS)}")
    p = np.asarray(p_values, dtype=np.float64).ravel()
    if p.size and (not np.all(np.isfinite(p)) or p.min() < 0 or p.max() > 1):
        raise ValueError(f"p-values must lie in [0, 1]; got {p.tolist()}")
    m = p.size
    if method == "none" or m == 0:
        return p.copy()
    order = np.argsort(p, kind="stable")
    ranked = p[order]
    if method == "holm":
        # p_(i) · (m − i + 1), made non-decreasing from the smallest p upwards.
        adjusted = np.maximum.accumulate(ranked * np.arange(m, 0, -1))
    else:
        # p_(i) · m / i, made non-decreasing by the running minimum from the largest p down.
        adjusted = np.minimum.accumulate((ranked * m / np.arange(1, m + 1))[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(adjusted, 1.0)
    return out


def correct(
    comparisons: Sequence[Comparison], method: Correction = "holm", alpha: float = 0.05
) -> list[Comparison]:
    """The comparisons of one family with ``p_adjusted`` and ``significant`` (p_adjusted ≤ α)."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie strictly between 0 and 1; got {alpha}")
    adjusted = adjust([c.test.p_value for c in comparisons], method)
    return [
        replace(c, p_adjusted=float(q), significant=bool(q <= alpha))
        for c, q in zip(comparisons, adjusted, strict=True)
    ]


# --------------------------------------------------------------------------- internals


def _effect(
    a_bar: np.ndarray, b_bar: np.ndarray, means: np.ndarray, level: float, two_level: bool
) -> Effect:
    """Effect sizes from seed-averaged per-user values and bootstrap draws of (mean_a, mean_b)."""
    d = a_bar - b_bar
    diff, mean_a, mean_b = float(d.mean()), float(a_bar.mean()), float(b_bar.mean())
    std = 0.0 if _constant(d) else float(d.std(ddof=1))  # no rounding residue as a spread
    diff_draws = means[:, 0] - means[:, 1]
    rel = rel_ci = None
    if mean_b != 0:
        rel = diff / mean_b
        if np.all(means[:, 1] != 0):
            rel_ci = _percentile_ci(diff_draws / means[:, 1], level)
    return Effect(
        diff=diff,
        diff_ci=_percentile_ci(diff_draws, level),
        ci_method=TWO_LEVEL_CI if two_level else PAIRED_CI,
        rel=rel,
        rel_ci=rel_ci,
        d_z=diff / std if std > 0 else None,
        mean_a=mean_a,
        mean_b=mean_b,
    )


def _bootstrap_means(
    blocks: Sequence[np.ndarray], n_resamples: int, rng: np.random.Generator, resample_seeds: bool
) -> np.ndarray:
    """(n_resamples, len(blocks)): per draw, each block's mean over resampled users.

    A block is one side's (n_seeds, n_users) values. Users are resampled once per draw, the
    same users for every block (pairing); with ``resample_seeds`` each block's seeds are also
    resampled with replacement per draw, otherwise they are averaged first. Each seed column is
    summed over the resampled users once; a draw's seed weights then mix those sums.
    No minimum on ``n_resamples`` here: the public functions enforce it, tests may use fewer.
    """
    if not resample_seeds:
        blocks = [block.mean(axis=0, keepdims=True) for block in blocks]
    n_users = blocks[0].shape[1]
    users = _Users(np.concatenate(blocks, axis=0).T)
    edges = np.cumsum([0] + [block.shape[0] for block in blocks])
    chunk = max(1, _CHUNK_ELEMENTS // users.width)
    out = np.empty((n_resamples, len(blocks)))
    for start in range(0, n_resamples, chunk):
        size = min(chunk, n_resamples - start)
        sums = users.sums(rng, size)  # (size, all seed columns)
        for j in range(len(blocks)):
            block = sums[:, edges[j] : edges[j + 1]]
            seeds = block.shape[1]
            if seeds > 1:
                weights = rng.multinomial(seeds, np.full(seeds, 1.0 / seeds), size=size)
                block = (block * weights).sum(axis=1, keepdims=True) / seeds
            out[start : start + size, j] = block[:, 0] / n_users
    return out


class _Users:
    """Bootstrap resamples of users, grouped by identical value rows where that pays.

    Grouped: a draw is multinomial counts over the distinct rows (exactly the distribution of
    n users drawn with replacement), summed by one matrix product. Otherwise: user indices,
    summed by gathering each value column, or counted per user and summed by a matrix product
    when there are many columns (seeds).
    """

    def __init__(self, rows: np.ndarray) -> None:
        self.n = rows.shape[0]
        unique, counts = np.unique(rows, axis=0, return_counts=True)
        self.grouped = unique.shape[0] * _GROUP_RATIO <= self.n
        self.values = unique if self.grouped else rows
        self.p = counts / self.n
        self.columns = [np.ascontiguousarray(column) for column in self.values.T]
        self.width = self.values.shape[0]

    def sums(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """(size, n_columns): each value column summed over each of ``size`` fresh resamples."""
        if self.grouped:
            return rng.multinomial(self.n, self.p, size=size).astype(np.float64) @ self.values
        drawn = rng.integers(0, self.n, size=(size, self.n), dtype=np.int32)
        if len(self.columns) <= 2:  # gathering a column is cheaper than counting, for few
            return np.stack([np.take(col, drawn).sum(axis=1) for col in self.columns], axis=1)
        drawn += np.arange(0, size * self.n, self.n, dtype=np.int32)[:, None]  # < 2^31
        counts = np.bincount(drawn.ravel(), minlength=size * self.n).reshape(size, self.n)
        return counts.astype(np.float64) @ self.values  # float: BLAS, not a generic loop


def _sign_flip_p(
    d: np.ndarray, alternative: Alternative, n_resamples: int, rng: np.random.Generator
) -> float:
    """Monte-Carlo p of the sign-flip test of sum(d) (equivalently mean(d)); no floor on draws.

    Zero differences never change the sum and are left out. Distinct non-zero values v_k held
    by m_k users flip as v_k·(2·Binomial(m_k, ½) − m_k) when few distinct values exist; users
    are flipped one by one (random bits) otherwise.
    """
    d = d[d != 0]
    observed = float(d.sum())
    tolerance = _TIE_RTOL * float(np.abs(d).sum())
    values, counts = np.unique(d, return_counts=True)
    grouped = values.size * _GROUP_RATIO <= d.size
    width = values.size if grouped else d.size
    chunk = max(1, _CHUNK_ELEMENTS // max(width, 1))
    extreme = 0
    for start in range(0, n_resamples, chunk):
        size = min(chunk, n_resamples - start)
        if width == 0:
            flipped = np.zeros(size)
        elif grouped:
            positive = rng.binomial(counts, 0.5, size=(size, values.size))
            flipped = (2.0 * positive - counts) @ values
        else:
            packed = rng.integers(0, 256, size=(size, (width + 7) // 8), dtype=np.uint8)
            bits = np.unpackbits(packed, axis=1, count=width)
            flipped = 2.0 * (bits.astype(np.float64) @ d) - observed  # Σ(±d) via BLAS
        if alternative == "greater":
            extreme += int(np.count_nonzero(flipped >= observed - tolerance))
        elif alternative == "less":
            extreme += int(np.count_nonzero(flipped <= observed + tolerance))
        else:
            extreme += int(np.count_nonzero(np.abs(flipped) >= abs(observed) - tolerance))
    return (extreme + 1) / (n_resamples + 1)


def _percentile_p(draws: np.ndarray, alternative: Alternative) -> float:
    """p by inverting the percentile interval of bootstrap draws of the mean difference."""
    n = draws.size
    greater = (int(np.count_nonzero(draws <= 0)) + 1) / (n + 1)  # evidence for mean > 0
    less = (int(np.count_nonzero(draws >= 0)) + 1) / (n + 1)
    if alternative == "greater":
        return greater
    if alternative == "less":
        return less
    return min(1.0, 2.0 * min(greater, less))


def _percentile_ci(draws: np.ndarray, level: float) -> Interval:
    low, high = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2])
    return Interval(float(low), float(high), level)


def _as_seeds(x: np.ndarray, name: str) -> np.ndarray:
    """(n_seeds, n_users) float64 from 1-D (one seed) or 2-D input, finite, ≥ 1 seed."""
    array = np.asarray(x, dtype=np.float64)
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2:
        raise ValueError(
            f"{name} must be 1-D (n_users,) or 2-D (n_seeds, n_users); got shape {array.shape}"
        )
    if array.shape[0] == 0:
        raise ValueError(f"{name} has no seeds (shape {array.shape})")
    bad = ~np.isfinite(array)
    if bad.any():
        seed_row, user = (int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"{name} holds {int(bad.sum())} NaN or infinite value(s), first at seed row "
            f"{seed_row}, user column {user}"
        )
    return array


def _paired_sides(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = _as_seeds(a, "a"), _as_seeds(b, "b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"a has {a.shape[1]} users but b has {b.shape[1]}; both sides must hold the same "
            "users in the same column order"
        )
    if a.shape[1] < 2:
        raise ValueError(f"a paired comparison needs at least 2 users; got {a.shape[1]}")
    return a, b


def _differences(d: np.ndarray) -> np.ndarray:
    d = np.asarray(d, dtype=np.float64)
    if d.ndim != 1:
        raise ValueError(f"d must be 1-D, one difference per user; got shape {d.shape}")
    if d.size < 2:
        raise ValueError(f"a paired test needs at least 2 users; got {d.size}")
    if not np.all(np.isfinite(d)):
        raise ValueError(f"d holds {int((~np.isfinite(d)).sum())} NaN or infinite value(s)")
    return d


def _constant(x: np.ndarray) -> bool:
    """All values equal up to rounding (range ≤ 1e-12 of the largest magnitude).

    ``(b + 0.1) − b`` is not exactly constant in floating point; its tiny spread would make
    d_z or t astronomically large instead of undefined.
    """
    return bool(np.ptp(x) <= 1e-12 * np.abs(x).max())


def _check_alternative(alternative: str) -> None:
    if alternative not in ALTERNATIVES:
        raise ValueError(
            f"unknown alternative {alternative!r}; expected one of {', '.join(ALTERNATIVES)}"
        )


def _check_level(level: float) -> None:
    if not 0 < level < 1:
        raise ValueError(f"level must lie strictly between 0 and 1 (e.g. 0.95); got {level}")


def _check_resamples(n_resamples: int) -> None:
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, (int, np.integer)):
        raise ValueError(f"n_resamples must be an integer; got {n_resamples!r}")
    if n_resamples < MIN_RESAMPLES:
        raise ValueError(
            f"n_resamples must be at least {MIN_RESAMPLES:,} (p-value resolution and a stable "
            f"interval); got {n_resamples:,}"
        )


def _finite_or_none(x: float | None) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


def _jsonable(value: Any) -> Any:
    """Plain Python containers and numbers; NaN and ±inf become None."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return _finite_or_none(float(value))
    return value
