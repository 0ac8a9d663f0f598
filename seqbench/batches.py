"""Batches gathered on the device from a dataset's flat arrays, with no per-sample Python.

The flat item array, the user offsets and a split's (user, end) pairs are moved to the device
once; a batch is then a handful of tensor indexing operations (the twin of
:func:`seqbench.data.dataset.gather_inputs`, which the tests compare it with).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from seqbench.data.dataset import SequentialDataset, SplitName


@dataclass(frozen=True)
class Batch:
    items: torch.Tensor  # (B, L) int64, right-padded with 0
    lengths: torch.Tensor  # (B,) int64, 1..L
    targets: torch.Tensor  # (B,) int64
    rows: torch.Tensor  # (B,) int64: the samples' positions in their split


class DeviceSplit:
    """One split of a dataset, resident on ``device``, served as batches."""

    def __init__(
        self, dataset: SequentialDataset, split: SplitName, max_len: int, device: torch.device
    ) -> None:
        s = dataset.split(split)
        self.items = torch.as_tensor(dataset.data.items, dtype=torch.int64, device=device)
        self.starts = torch.as_tensor(dataset.data.offsets[s.user], device=device)
        self.ends = torch.as_tensor(s.end, dtype=torch.int64, device=device)
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
