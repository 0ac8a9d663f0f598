"""Device batches equal the numpy reference gather, sample for sample."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seqbench.batches import DeviceSplit
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
