"""Batches gathered on the device from a dataset's flat arrays, with no per-sample Python.

The flat item array, the user offsets and a split's (user, end) pairs are moved to the device
once; a batch is then a handful of tensor indexing operations (the twin of
:func:`seqbench.data.dataset.gather_inputs`, which the tests compare it with).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from seqbench.data.dataset import SequentialDataset, SplitName


@dataclass(frozen=True)
class Batch:
    items: torch.Tensor  # (B, L) int64, right-padded with 0
    lengths: torch.Tensor  # (B,) int64, 1..L
    targets: torch.Tensor  # (B,) int64; (B, L) for windows: the next item at every slot, 0 after
    rows: torch.Tensor  # (B,) int64: the samples' positions in their split


class DeviceSplit:
    """One split of a dataset, resident on ``device``, served as batches."""

    def __init__(
        self,
        dataset: SequentialDataset,
        split: SplitName,
        max_len: int,
        device: torch.device,
        *,
        windows: bool = False,
    ) -> None:
        s = dataset.split(split)
        keep = window_ends(s.user, s.end, max_len) if windows else slice(None)
        self.items = torch.as_tensor(dataset.data.items, dtype=torch.int64, device=device)
        self.starts = torch.as_tensor(dataset.data.offsets[s.user[keep]], device=device)
        self.ends = torch.as_tensor(s.end[keep], dtype=torch.int64, device=device)
        self.windows = windows
        self.max_len = max_len
        self.slots = torch.arange(max_len, device=device)
        self.device = device

    def __len__(self) -> int:
        return int(self.ends.shape[0])

    def batch(self, rows: torch.Tensor) -> Batch:
        end = self.ends[rows]
        start = torch.maximum(self.starts[rows], end - self.max_len)
        length = end - start
        real = self.slots[None, :] < length[:, None]
        position = torch.where(real, start[:, None] + self.slots[None, :], 0)
        inputs = torch.where(real, self.items[position], 0)
        if self.windows:  # slot j predicts the item after it; the last real slot the target
            return Batch(inputs, length, torch.where(real, self.items[position + 1], 0), rows)
        return Batch(inputs, length, self.items[end], rows)

    def batches(self, batch_size: int, generator: torch.Generator | None = None) -> Iterator[Batch]:
        """All samples in batches; shuffled with ``generator`` (on the CPU) when one is given."""
        n = len(self)
        if generator is None:
            order = torch.arange(n, device=self.device)
        else:
            order = torch.randperm(n, generator=generator).to(self.device)
        for first in range(0, n, batch_size):
            yield self.batch(order[first : first + batch_size])

    def n_batches(self, batch_size: int) -> int:
        return -(-len(self) // batch_size)

    def take(self, rows: torch.Tensor) -> DeviceSplit:
        """The samples at positions ``rows`` of this split, in that order (sharing its item
        array): e.g. a few users to score."""
        part = copy.copy(self)
        part.starts, part.ends = self.starts[rows], self.ends[rows]
        return part


def window_ends(user: np.ndarray, end: np.ndarray, max_len: int) -> np.ndarray:
    """Which prefix samples end a window of the all-positions objective (boolean mask).

    A user's samples with targets k = 1 … m − 1 (in time order) are tiled from the newest:
    windows end at k = m − 1, m − 1 − L, m − 1 − 2L, … and the window ending at k holds the
    inputs of that sample (the at most L items before k) with a target at each slot, so every
    training target is predicted exactly once. A target's context is then the items since its
    window's start (at most L, as in a prefix sample, and fewer for the first targets of a
    window after the first): identical to the prefix samples when m − 1 ≤ L.
    """
    last = np.full(int(user.max()) + 1 if user.size else 0, -1, dtype=np.int64)
    np.maximum.at(last, user, end)
    return (last[user] - end) % max_len == 0
