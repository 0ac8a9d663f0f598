"""A processed dataset as the rest of seqbench sees it: flat arrays, samples, provenance.

Batches are gathered from the flat arrays with vectorized indexing (:func:`gather_inputs`), so no
per-sample Python runs in training or evaluation and nothing is padded in advance.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from seqbench.data.protocol import Processed, Protocol, Split

SplitName = Literal["train", "valid", "test"]
SPLITS: tuple[SplitName, ...] = ("train", "valid", "test")


@dataclass(frozen=True)
class SequentialDataset:
    """Processed interactions of one dataset under one protocol.

    Item ids run 1..``n_items`` (0 pads); users are 0..``n_users``-1 in order of first appearance
    in the source. ``provenance`` records the source (files, format, options, sha256), the
    protocol fingerprint, the cache key and the counts before filtering.
    """

    name: str
    data: Processed
    protocol: Protocol
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def n_users(self) -> int:
        return int(self.data.offsets.shape[0] - 1)

    @property
    def n_items(self) -> int:
        """Number of real items (the embedding table needs ``n_items + 1`` rows)."""
        return int(self.data.item_tokens.shape[0] - 1)

    @property
    def n_interactions(self) -> int:
        return int(self.data.items.shape[0])

    def split(self, name: SplitName) -> Split:
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; expected one of {', '.join(SPLITS)}")
        return getattr(self.data, name)

    def inputs(
        self, split: SplitName, max_len: int | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(right-padded inputs (S, max_len), input lengths (S,), targets (S,)) of a whole split."""
        s = self.split(split)
        return gather_inputs(
            self.data.items, self.data.offsets, s.user, s.end, max_len or self.protocol.max_len
        )

    def history_lengths(self, split: SplitName) -> np.ndarray:
        """Untruncated number of items before each sample's target (for stratified analysis)."""
        s = self.split(split)
        return s.end - self.data.offsets[s.user]


def gather_inputs(
    items: np.ndarray, offsets: np.ndarray, user: np.ndarray, end: np.ndarray, max_len: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inputs, lengths and targets of the samples (user, end), gathered without a Python loop.

    Slot j of a row holds the j-th oldest of the sample's most recent ``max_len`` items; slots
    past its length hold 0 (right padding, as RecBole).
    """
    start = np.maximum(offsets[user], end - max_len)
    length = end - start
    slots = np.arange(max_len, dtype=np.int64)
    real = slots[None, :] < length[:, None]
    position = np.where(real, start[:, None] + slots[None, :], 0)
    return np.where(real, items[position], 0), length, items[end]


def dataset_stats(ds: SequentialDataset) -> dict[str, Any]:
    """The numbers of a paper's dataset table, plus the samples per split and the provenance."""
    lengths = np.diff(ds.data.offsets)
    users, items, n = ds.n_users, ds.n_items, ds.n_interactions
    return {
        "dataset": ds.name,
        "users": users,
        "items": items,
        "interactions": n,
        "avg_length": float(lengths.mean()),
        "median_length": float(np.median(lengths)),
        "min_length": int(lengths.min()),
        "max_length": int(lengths.max()),
        "density": n / (users * items),
        "train_samples": len(ds.data.train),
        "valid_samples": len(ds.data.valid),
        "test_samples": len(ds.data.test),
        "protocol": ds.protocol.fingerprint(),
        **ds.provenance,
    }
