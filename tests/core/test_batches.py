"""Device batches equal the numpy reference gather, sample for sample."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seqbench.batches import DeviceSplit, window_ends
from seqbench.data.dataset import gather_inputs
from tests.core.fixtures import random_dataset


@pytest.mark.parametrize("split", ["train", "valid", "test"])
@pytest.mark.parametrize("max_len", [1, 4, 50])
def test_batches_equal_gather_inputs(split: str, max_len: int) -> None:
    ds = random_dataset()
    s = ds.split(split)
    expected = gather_inputs(ds.data.items, ds.data.offsets, s.user, s.end, max_len)
    device_split = DeviceSplit(ds, split, max_len, torch.device("cpu"))
    batches = list(device_split.batches(7))
    assert len(batches) == device_split.n_batches(7) == -(-len(s.user) // 7)
    got = [
        torch.cat([getattr(b, f) for b in batches]).numpy() for f in ("items", "lengths", "targets")
    ]
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_array_equal(g, e)


def test_shuffled_batches_cover_every_sample_once_and_repeat_with_the_seed() -> None:
    ds = random_dataset()
    split = DeviceSplit(ds, "train", 5, torch.device("cpu"))
    rows_a = torch.cat([b.rows for b in split.batches(16, torch.Generator().manual_seed(3))])
    rows_b = torch.cat([b.rows for b in split.batches(16, torch.Generator().manual_seed(3))])
    rows_c = torch.cat([b.rows for b in split.batches(16, torch.Generator().manual_seed(4))])
    assert sorted(rows_a.tolist()) == list(range(len(split)))
    assert torch.equal(rows_a, rows_b) and not torch.equal(rows_a, rows_c)


@pytest.mark.parametrize("max_len", [1, 3, 5, 50])
def test_windows_predict_every_training_target_once_with_its_prefix_context(max_len: int) -> None:
    """All-positions windows against the prefix samples: the same (user, target) pairs, each
    once; a target's context is its prefix sample's input cut at the window's start."""
    ds = random_dataset(n_users=30, seed=4)
    prefix = DeviceSplit(ds, "train", max_len, torch.device("cpu"))
    (p,) = list(prefix.batches(10_000))
    windows = DeviceSplit(ds, "train", max_len, torch.device("cpu"), windows=True)
    (w,) = list(windows.batches(10_000))
    users = ds.split("train").user
    window_users = users[window_ends(users, ds.split("train").end, max_len)]
    expected = sorted(zip(users.tolist(), p.targets.tolist(), strict=True))
    got, exact = [], 0
    for row in range(w.items.shape[0]):
        n = int(w.lengths[row])
        assert (w.targets[row, n:] == 0).all() and (w.items[row, n:] == 0).all()
        for j in range(n):
            got.append((int(window_users[row]), int(w.targets[row, j])))
            context = w.items[row, : j + 1]
            # the prefix sample with this target: same user, same target, the longest context
            matches = [
                i for i in range(len(users))
                if users[i] == window_users[row] and int(p.targets[i]) == int(w.targets[row, j])
                and torch.equal(p.items[i, int(p.lengths[i]) - j - 1 : int(p.lengths[i])], context)
            ]  # fmt: skip
            assert matches, "a window slot's context is the tail of its prefix sample's input"
            exact += any(int(p.lengths[i]) == j + 1 for i in matches)
    assert sorted(got) == expected
    if max_len == 50:  # every sequence fits one window: contexts identical to the prefixes
        assert exact == len(got) and w.items.shape[0] == len(set(users.tolist()))
