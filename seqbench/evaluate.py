"""Full-ranking evaluation: each user's target rank against every item, in bounded memory.

RecBole's protocol (model-reference §1.6): all items are ranked, the padding id is masked, and
for sequential models the user's history is NOT masked (``mask_history`` turns masking on; the
target itself is never masked, so repeat consumption stays rankable). Instead of a top-K list we
keep, per user, how many items score strictly higher than the target and how many tie with it;
:mod:`seqbench.metrics` derives every metric at every cutoff, under either tie policy, from
those two counts.

Items are scored in chunks of at most ``max_scores`` scores per batch, so memory stays bounded
for any catalog. The target's own score is read from the same score matrix as the items it is
compared with — never recomputed with a different kernel, whose rounding could make the target
beat or trail itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from seqbench.batches import Batch, DeviceSplit
from seqbench.errors import SeqbenchError
from seqbench.models.base import SequentialRecommender
from seqbench.precision import autocast

DEFAULT_MAX_SCORES = 1 << 24  # scores held at once per batch (64 MiB in float32)


class NonFiniteScoreError(SeqbenchError):
    """A model produced NaN or ±inf scores: its ranks would be meaningless."""


@dataclass(frozen=True)
class RankCounts:
    """Per sample of a split, in split order: items scored above the target, and tied with it."""

    higher: np.ndarray  # int64
    tied: np.ndarray  # int64


@torch.inference_mode()
def rank_split(
    model: SequentialRecommender,
    split: DeviceSplit,
    n_items: int,
    *,
    batch_size: int = 4096,
    mask_history: bool = False,
    max_scores: int = DEFAULT_MAX_SCORES,
    precision: str = "fp32",
) -> RankCounts:
    """Rank every sample's target among all ``n_items`` items (ids 1..n_items).

    ``precision`` "bf16" runs the model's forward pass under bfloat16 autocast on CUDA; the
    scores are always computed and compared in float32 (:mod:`seqbench.precision`)."""
    was_training = model.training
    model.eval()
    higher, tied = [], []
    try:
        for batch in split.batches(batch_size):
            h, t = _rank_batch(model, split, batch, n_items, mask_history, max_scores, precision)
            higher.append(h.cpu())
            tied.append(t.cpu())
    finally:
        model.train(was_training)
    if not higher:
        return RankCounts(np.zeros(0, np.int64), np.zeros(0, np.int64))
    return RankCounts(torch.cat(higher).numpy(), torch.cat(tied).numpy())


def _rank_batch(
    model: SequentialRecommender,
    split: DeviceSplit,
    batch: Batch,
    n_items: int,
    mask_history: bool,
    max_scores: int,
    precision: str = "fp32",
) -> tuple[torch.Tensor, torch.Tensor]:
    with autocast(precision, batch.items.device):
        user = model(batch.items, batch.lengths)
    if user.dtype != torch.float32 and precision == "bf16":
        user = user.float()  # scores in float32: bf16 would tie the target with many items
    rows = user.shape[0]
    width = max(1, min(n_items + 1, max_scores // max(rows, 1)))
    bounds = [(start, min(start + width, n_items + 1)) for start in range(0, n_items + 1, width)]
    history = _history(split, batch) if mask_history else None

    def scores(start: int, end: int) -> torch.Tensor:
        s = model.score(user, start, end).float()
        if not torch.isfinite(s).all():
            bad = (~torch.isfinite(s)).any(dim=1).nonzero().flatten()
            raise NonFiniteScoreError(
                f"the model gave non-finite scores for {bad.numel()} of {rows} users "
                f"(items {start}..{end - 1}); the cell's ranks would be meaningless"
            )
        if start == 0:
            s[:, 0] = -torch.inf  # the padding id is never a candidate
        if history is not None:
            _mask(s, history, batch.targets, start, end)
        return s

    targets = batch.targets
    target_score = torch.empty(rows, dtype=torch.float32, device=user.device)
    if len(bounds) == 1:
        s = scores(*bounds[0])
        target_score = s.gather(1, targets[:, None]).squeeze(1)
        return _count(s, target_score)
    # Several chunks: a first pass reads each target's score from its own chunk.
    for start, end in bounds:
        inside = (targets >= start) & (targets < end)
        if inside.any():
            s = scores(start, end)
            target_score[inside] = s[inside, targets[inside] - start]
    higher = torch.zeros(rows, dtype=torch.int64, device=user.device)
    tied = torch.zeros(rows, dtype=torch.int64, device=user.device)
    for start, end in bounds:
        h, t = _count(scores(start, end), target_score, absent=True)
        higher += h
        tied += t
    return higher, tied - 1  # the target tied with itself once


def _count(
    s: torch.Tensor, target_score: torch.Tensor, absent: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    higher = (s > target_score[:, None]).sum(dim=1)
    equal = (s == target_score[:, None]).sum(dim=1)
    return higher, equal if absent else equal - 1


def _history(split: DeviceSplit, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """(row, item) pairs of every item each sample's user saw before its target (untruncated)."""
    end = split.ends[batch.rows]
    start = split.starts[batch.rows]
    counts = end - start
    row = torch.repeat_interleave(torch.arange(counts.shape[0], device=end.device), counts)
    first = torch.repeat_interleave(start - torch.cumsum(counts, 0) + counts, counts)
    position = first + torch.arange(row.shape[0], device=end.device)
    return row, split.items[position]


def _mask(
    s: torch.Tensor,
    history: tuple[torch.Tensor, torch.Tensor],
    targets: torch.Tensor,
    start: int,
    end: int,
) -> None:
    row, item = history
    keep = (item >= start) & (item < end) & (item != targets[row])
    s[row[keep], item[keep] - start] = -torch.inf
