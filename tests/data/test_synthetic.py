"""The synthetic generator: deterministic, valid, and with structure a sequence model can learn."""

from __future__ import annotations

import numpy as np
import pytest

from seqbench.data.protocol import Protocol, process
from seqbench.data.synthetic import SyntheticConfig, content_sha256, generate


def test_same_seed_same_bytes_other_seed_other_data() -> None:
    a, b = generate(SyntheticConfig(seed=3)), generate(SyntheticConfig(seed=3))
    assert content_sha256(a) == content_sha256(b)
    assert np.array_equal(a.item, b.item) and np.array_equal(a.timestamp, b.timestamp)
    assert content_sha256(generate(SyntheticConfig(seed=4))) != content_sha256(a)


def test_text_does_not_change_the_interactions() -> None:
    with_text = generate(SyntheticConfig(text=True))
    without = generate(SyntheticConfig(text=False))
    assert np.array_equal(with_text.item, without.item) and without.item_text is None
    assert len(with_text.item_text) == 500 and all(t for t in with_text.item_text)


def test_lengths_and_time_order() -> None:
    cfg = SyntheticConfig(n_users=300, min_length=12, mean_length=20, max_length=40)
    raw = generate(cfg)
    lengths = np.bincount(raw.user, minlength=cfg.n_users)
    assert lengths.min() >= 12 and lengths.max() <= 40
    assert 16 < lengths.mean() < 24
    assert np.all(np.diff(raw.timestamp) >= 0)  # a log in global time order
    for u in range(0, 300, 37):  # no two interactions of a user share a timestamp
        t = raw.timestamp[raw.user == u]
        assert len(np.unique(t)) == len(t)


def test_very_long_sequences_for_scaling_studies() -> None:
    raw = generate(SyntheticConfig(n_users=20, min_length=2000, mean_length=3000, max_length=4000))
    lengths = np.bincount(raw.user)
    assert lengths.min() >= 2000 and lengths.max() <= 4000


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"p_markov": 0.9, "p_periodic": 0.2}, "at most 1"),
        ({"min_length": 30}, "min_length <= mean_length"),
        ({"min_period": 9, "max_period": 3}, "min_period <= max_period"),
        ({"n_items": 3, "successors": 3}, "successors must be smaller"),
        ({"n_user": 3}, "Extra inputs"),
    ],
)
def test_invalid_configs_are_rejected(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SyntheticConfig(**options)


def hits_and_ndcg(rank: np.ndarray, k: int = 10) -> tuple[float, float]:
    hit = rank <= k
    return float(hit.mean()), float(np.where(hit, 1 / np.log2(rank + 1), 0).mean())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_planted_structure_beats_popularity_by_a_wide_margin(seed: int) -> None:
    """A first-order (bigram) predictor fitted on train beats popularity at least 3x on test.

    This is the floor a trained sequential model must clear in the smoke suite; the periodic
    part is invisible to the bigram and leaves room above it.
    """
    p = process(generate(SyntheticConfig(seed=seed)), Protocol())
    n = len(p.item_tokens)
    prev, nxt = p.items[p.train.end - 1], p.items[p.train.end]
    transitions = np.zeros((n, n))
    np.add.at(transitions, (prev, nxt), 1.0)
    popularity = np.bincount(nxt, minlength=n).astype(float)
    popularity[0] = -np.inf

    target = p.items[p.test.end]
    bigram = transitions[p.items[p.test.end - 1]] + 1e-6 * popularity  # ties broken by popularity
    bigram[:, 0] = -np.inf
    rank_bigram = (bigram > bigram[np.arange(len(target)), target][:, None]).sum(1) + 1
    rank_pop = (popularity[None, :] > popularity[target][:, None]).sum(1) + 1

    hr_b, ndcg_b = hits_and_ndcg(rank_bigram)
    hr_p, ndcg_p = hits_and_ndcg(rank_pop)
    assert hr_b > 3 * hr_p and ndcg_b > 3 * ndcg_p, (hr_b, hr_p, ndcg_b, ndcg_p)
    assert hr_b > 0.5
