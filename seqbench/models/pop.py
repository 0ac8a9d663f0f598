"""Popularity baseline: every user gets the same scores, the items' training counts.

Follows ``recbole/model/general_recommender/pop.py`` of RecBole v1.2.0 (tag v1.2.0 = 362d31f0)
in what it ranks by, not in how it counts (see :class:`Pop`); model-reference §1.4.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from seqbench.models.base import SequentialRecommender
from seqbench.models.registry import FULL, ModelParams, register_model

if TYPE_CHECKING:
    from seqbench.data.dataset import SequentialDataset

REFERENCE = "RecBole v1.2.0 recbole/model/general_recommender/pop.py"


class PopParams(ModelParams):
    """Pop has no parameters."""


def training_counts(dataset: SequentialDataset) -> np.ndarray:
    """Occurrences of each item id (n_items + 1,) in the training part of every user's sequence.

    The training part of user u is ``items[offsets[u] : e + 1]`` with e the largest target
    position of u's train samples: the first item and every train target, i.e. every interaction
    before the valid and test targets. Users without a train sample contribute nothing.
    """
    data = dataset.data
    n_users = dataset.n_users
    last = np.full(n_users, -1, dtype=np.int64)
    np.maximum.at(last, data.train.user, data.train.end)
    owner = np.repeat(np.arange(n_users), np.diff(data.offsets))
    position = np.arange(data.items.shape[0])
    counted = data.items[position <= last[owner]]
    return np.bincount(counted, minlength=dataset.n_items + 1).astype(np.int64)


@register_model(
    "pop",
    params=PopParams,
    summary="Most popular items first: counts of each item in the training interactions.",
    causal=True,
    all_positions=False,
    reference=REFERENCE,
)
class Pop(SequentialRecommender):
    """Score of item i = its number of occurrences in the training interactions, for every user.

    What RecBole 1.2.0's Pop counts: Pop is a ``TRADITIONAL`` model, so RecBole builds a general
    ``Dataset`` for it (no prefix augmentation) and ``TraditionalTrainer`` runs one epoch of
    ``calculate_loss``, which adds 1 to ``item_cnt[item]`` for the item ids of each training
    batch. Three consequences: (1) under the LS split of the Mamba configs the counted
    interactions are every interaction except each user's last two — the same set as ours on
    5-core data; (2) with RecBole's default ``train_neg_sample_args`` (uniform, 1 negative) the
    point-wise batches also hold the sampled negatives, which get counted too (the Mamba configs
    set it to ``~``, so only positives); (3) ``item_cnt[item] = item_cnt[item] + 1`` is an
    index assignment, so an item occurring several times in one batch is counted ONCE per batch
    (with batch 2048, a popular item's count saturates near the number of batches; RecBole
    issues #1844 and #2198; a fix is proposed in PR #2199).

    What seqbench counts: every occurrence of an item in the training interactions, i.e.
    ``items[offsets[u] : e + 1]`` per user, with e the last train target (:func:`training_counts`):
    each user's first item and all train targets, never a valid or test target, never negatives,
    duplicates within a user or across users all counted. Deliberate deviations: no negatives
    (2) and exact counts (3). Without k-core two more differ: a user with two interactions
    trains on the first only in RecBole's general split, on both in seqbench's sequential split
    (its single sample is a train sample); a user with one interaction is counted by RecBole and
    not by seqbench (no sample at all).

    ``forward`` returns ones (B, 1) and ``output_embeddings`` the counts (n_items + 1, 1), so
    ``score`` gives the counts for every user; row 0 (padding) is 0 and the evaluator masks it.
    """

    trainable = False

    def __init__(self, params: PopParams, *, n_items: int, max_len: int, ablation: str = FULL):
        super().__init__()
        self._setup(params, n_items, max_len, ablation)
        self.register_buffer("item_cnt", torch.zeros(n_items + 1, dtype=torch.int64))

    def fit_statistics(self, dataset: SequentialDataset) -> None:
        if dataset.n_items != self.n_items:
            raise ValueError(
                f"Pop was built for {self.n_items} items, the dataset has {dataset.n_items}"
            )
        self.item_cnt.copy_(torch.from_numpy(training_counts(dataset)))

    def forward(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return torch.ones(items.shape[0], 1, device=items.device)

    def output_embeddings(self) -> torch.Tensor:
        return self.item_cnt.to(torch.float32).unsqueeze(1)
