"""Small datasets and fake models shared by the core tests."""

from __future__ import annotations

import numpy as np
import torch

from seqbench.data.dataset import SequentialDataset
from seqbench.data.protocol import Protocol, process
from seqbench.data.raw import InteractionAccumulator
from seqbench.models.base import SequentialRecommender


def random_dataset(
    n_users: int = 40, n_items: int = 30, seed: int = 0, max_len: int = 6, k_core: int = 0
) -> SequentialDataset:
    """Random sequences of 3..12 items per user, with repeats (so history masking matters)."""
    rng = np.random.default_rng(seed)
    acc = InteractionAccumulator(has_time=True, has_rating=False)
    for u in range(n_users):
        for t in range(int(rng.integers(3, 13))):
            acc.add(f"u{u}", f"i{int(rng.integers(0, n_items))}", float(t))
    protocol = Protocol(k_core=k_core, max_len=max_len)
    return SequentialDataset("random", process(acc.finish(), protocol), protocol)


class FixedScores(SequentialRecommender):
    """Scores = user vector · item table, both given; the user vector is a function of the
    last input item, so tests know every score in advance."""

    def __init__(self, table: torch.Tensor, users_by_last_item: torch.Tensor) -> None:
        super().__init__()
        self.table = torch.nn.Parameter(table)
        self.users = users_by_last_item

    def forward(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        last = items.gather(1, (lengths - 1)[:, None]).squeeze(1)
        return self.users[last]

    def output_embeddings(self) -> torch.Tensor:
        return self.table


class LastItem(SequentialRecommender):
    """A tiny trainable model: the user is the embedding of the last input item (tied scores)."""

    def __init__(self, n_items: int, dim: int = 8) -> None:
        super().__init__()
        self.embedding = torch.nn.Embedding(n_items + 1, dim)

    def forward(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.embedding(items.gather(1, (lengths - 1)[:, None]).squeeze(1))

    def output_embeddings(self) -> torch.Tensor:
        return self.embedding.weight
