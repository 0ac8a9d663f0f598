"""Full ranking against a naive per-user numpy ranking: chunks, ties, padding, history masking."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seqbench.batches import DeviceSplit
from seqbench.evaluate import NonFiniteScoreError, rank_split
from tests.core.fixtures import FixedScores, random_dataset


def naive_counts(ds, split, table, users, mask_history=False):
    """Loop over samples: score every item, mask padding (and history), count by hand."""
    s = ds.split(split)
    higher, tied = [], []
    for u, end in zip(s.user, s.end, strict=True):
        history = ds.data.items[ds.data.offsets[u] : end]
        target = ds.data.items[end]
        scores = (table @ users[history[-1]]).astype(np.float64)
        scores[0] = -np.inf
        if mask_history:
            for item in history:
                if item != target:
                    scores[item] = -np.inf
        t = scores[target]
        higher.append(int((scores > t).sum()))
        tied.append(int((scores == t).sum()) - 1)
    return np.array(higher), np.array(tied)


def make_model(ds, coarse: bool):
    """Random scores; ``coarse`` rounds them so that many items tie."""
    g = torch.Generator().manual_seed(0)
    n = ds.n_items + 1
    table = torch.randn(n, 4, generator=g, dtype=torch.float64)
    users = torch.randn(n, 4, generator=g, dtype=torch.float64)
    if coarse:  # scores in {−2..2}: heavy ties, exactly representable
        table = table.sign()
        users = torch.zeros_like(users)
        users[:, 0] = 1.0
    return FixedScores(table, users), table.numpy(), users.numpy()


@pytest.mark.parametrize("coarse", [False, True])
@pytest.mark.parametrize("mask_history", [False, True])
@pytest.mark.parametrize("max_scores", [1 << 24, 50, 7])  # one chunk, several, one row per chunk
def test_rank_split_matches_naive_ranking(
    coarse: bool, mask_history: bool, max_scores: int
) -> None:
    ds = random_dataset()
    model, table, users = make_model(ds, coarse)
    for split in ("valid", "test"):
        got = rank_split(
            model,
            DeviceSplit(ds, split, 50, torch.device("cpu")),
            ds.n_items,
            batch_size=9,
            mask_history=mask_history,
            max_scores=max_scores,
        )
        higher, tied = naive_counts(ds, split, table, users, mask_history)
        np.testing.assert_array_equal(got.higher, higher)
        np.testing.assert_array_equal(got.tied, tied)
    if coarse:
        assert (tied > 0).any()  # the case really has ties


def test_padding_row_never_outranks_the_target() -> None:
    ds = random_dataset()
    model, _, _ = make_model(ds, coarse=False)
    with torch.no_grad():
        model.users.abs_()
        model.table[0] = 1e6  # the padding item would score highest for every user
    split = DeviceSplit(ds, "test", 50, torch.device("cpu"))
    counts = rank_split(model, split, ds.n_items)
    higher, _ = naive_counts(ds, "test", model.table.detach().numpy(), model.users.numpy())
    np.testing.assert_array_equal(counts.higher, higher)
    assert (counts.higher == 0).any()  # some targets are first: padding did not beat them


def test_non_finite_scores_fail_loudly() -> None:
    ds = random_dataset()
    model, _, _ = make_model(ds, coarse=False)
    with torch.no_grad():
        model.table[3, 0] = float("nan")
    with pytest.raises(NonFiniteScoreError, match="non-finite scores"):
        rank_split(model, DeviceSplit(ds, "test", 50, torch.device("cpu")), ds.n_items)
