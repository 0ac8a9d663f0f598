"""Metrics from rank counts: hand-computed values and a brute-force expectation over tie orders."""

from __future__ import annotations

import math

import numpy as np
import pytest

from seqbench import metrics


def test_parse_metric() -> None:
    assert metrics.parse_metric("NDCG@10") == ("ndcg", 10)
    for bad in ("ndcg", "ndcg@0", "recall@10", "ndcg@x", "@5"):
        with pytest.raises(ValueError, match="expected NAME@K"):
            metrics.parse_metric(bad)


def test_pessimistic_values_by_hand() -> None:
    higher = np.array([0, 3, 9, 10, 2])
    tied = np.array([0, 0, 0, 0, 1])  # the last target shares its score with one other item
    # ranks: 1, 4, 10, 11, 4
    hr = metrics.per_user("hr@10", higher, tied, "pessimistic")
    ndcg = metrics.per_user("ndcg@10", higher, tied, "pessimistic")
    mrr = metrics.per_user("mrr@10", higher, tied, "pessimistic")
    assert hr.tolist() == [1, 1, 1, 0, 1]
    assert ndcg == pytest.approx([1, 1 / math.log2(5), 1 / math.log2(11), 0, 1 / math.log2(5)])
    assert mrr == pytest.approx([1, 1 / 4, 1 / 10, 0, 1 / 4])
    assert metrics.ranks_from_counts(higher, tied, "pessimistic").tolist() == [1, 4, 10, 11, 4]


@pytest.mark.parametrize("name", ["hr@1", "hr@5", "ndcg@3", "ndcg@10", "mrr@4", "mrr@20"])
def test_expected_ties_equal_the_average_over_every_tie_order(name: str) -> None:
    rng = np.random.default_rng(0)
    higher = rng.integers(0, 15, size=200)
    tied = rng.integers(0, 8, size=200)
    kind, k = metrics.parse_metric(name)

    def value(rank: int) -> float:
        if rank > k:
            return 0.0
        return {"hr": 1.0, "ndcg": 1 / math.log2(rank + 1), "mrr": 1 / rank}[kind]

    brute = [
        np.mean([value(h + 1 + j) for j in range(t + 1)]) for h, t in zip(higher, tied, strict=True)
    ]
    assert metrics.per_user(name, higher, tied, "expected") == pytest.approx(brute, abs=1e-12)
    ranks = metrics.ranks_from_counts(higher, tied, "expected")
    assert ranks == pytest.approx(higher + 1 + tied / 2)


def test_constant_scores_are_worst_not_best_under_pessimistic_ties() -> None:
    # 100 items all tied with the target: pessimistic puts it last, expected in the middle
    higher, tied = np.array([0]), np.array([99])
    assert metrics.mean("hr@10", higher, tied, "pessimistic") == 0.0
    assert metrics.mean("hr@10", higher, tied, "expected") == pytest.approx(0.1)


def test_unknown_tie_policy() -> None:
    with pytest.raises(ValueError, match="tie policy"):
        metrics.per_user("hr@10", np.array([0]), np.array([0]), "optimistic")  # type: ignore[arg-type]
