"""Ranking metrics derived from each user's target rank (one relevant item per user).

Every metric at every cutoff comes from two counts per user: ``higher`` (items scored above the
target) and ``tied`` (other items scored exactly like it). The tie policy says where the target
sits among its ties:

- ``pessimistic``: last among them, rank = 1 + higher + tied (never flatters a model whose
  scores collapse, e.g. constant scores give the worst rank, not the best);
- ``expected``: uniformly at random among them; a metric is its exact expectation over the
  ``tied + 1`` equally likely positions, and the stored rank is the mean position.

With one relevant item: HR@K = 1[rank ≤ K], NDCG@K = 1/log2(rank + 1) if rank ≤ K, MRR@K = 1/rank
if rank ≤ K (RecBole's definitions, model-reference §1.6).
"""

from __future__ import annotations

import re
from typing import Literal

import numpy as np

TiePolicy = Literal["pessimistic", "expected"]
TIE_POLICIES: tuple[TiePolicy, ...] = ("pessimistic", "expected")
KINDS = ("hr", "ndcg", "mrr")
_NAME = re.compile(r"^(?P<kind>[a-z]+)@(?P<k>[0-9]+)$")


def parse_metric(name: str) -> tuple[str, int]:
    """``"ndcg@10"`` → ``("ndcg", 10)``; a ValueError that says what is accepted otherwise."""
    match = _NAME.match(name.strip().lower())
    if match is None or match["kind"] not in KINDS or int(match["k"]) < 1:
        raise ValueError(
            f"unknown metric {name!r}; expected NAME@K with NAME one of {', '.join(KINDS)} "
            "and K ≥ 1, e.g. 'ndcg@10'"
        )
    return match["kind"], int(match["k"])


def ranks_from_counts(higher: np.ndarray, tied: np.ndarray, ties: TiePolicy) -> np.ndarray:
    """The stored rank of each user's target: last of its ties, or their mean position."""
    higher = np.asarray(higher, dtype=np.float64)
    tied = np.asarray(tied, dtype=np.float64)
    if ties == "pessimistic":
        return 1.0 + higher + tied
    if ties == "expected":
        return 1.0 + higher + tied / 2.0
    raise ValueError(f"unknown tie policy {ties!r}; expected one of {', '.join(TIE_POLICIES)}")


def per_user(name: str, higher: np.ndarray, tied: np.ndarray, ties: TiePolicy) -> np.ndarray:
    """Each user's value of metric ``name`` (float64), exact under either tie policy."""
    kind, k = parse_metric(name)
    higher = np.asarray(higher, dtype=np.int64)
    tied = np.asarray(tied, dtype=np.int64)
    if ties == "pessimistic":
        first = last = 1 + higher + tied
    elif ties == "expected":
        first, last = 1 + higher, 1 + higher + tied
    else:
        raise ValueError(f"unknown tie policy {ties!r}; expected one of {', '.join(TIE_POLICIES)}")
    # Sum of the per-position gain over positions first..last (capped at k), divided by the
    # number of positions: an exact expectation, with prefix sums so big tie groups cost O(1).
    gain = _gain(kind, k)
    prefix = np.concatenate([[0.0], np.cumsum(gain)])  # prefix[p] = sum of gains at 1..p
    lo = np.minimum(first - 1, k)
    hi = np.minimum(last, k)
    return (prefix[hi] - prefix[lo]) / (last - first + 1)


def mean(name: str, higher: np.ndarray, tied: np.ndarray, ties: TiePolicy) -> float:
    """Metric ``name`` averaged over users."""
    values = per_user(name, higher, tied, ties)
    return float(values.mean()) if values.size else float("nan")


def _gain(kind: str, k: int) -> np.ndarray:
    """The value a target at position p = 1..k contributes."""
    position = np.arange(1, k + 1, dtype=np.float64)
    if kind == "hr":
        return np.ones(k)
    if kind == "ndcg":
        return 1.0 / np.log2(position + 1.0)
    if kind == "mrr":
        return 1.0 / position
    raise ValueError(f"unknown metric kind {kind!r}")
