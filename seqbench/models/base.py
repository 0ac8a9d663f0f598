"""The contract between a model and the trainer/evaluator.

Inputs are RecBole's: ``items`` (B, L) int64, right-padded with 0 (slot j holds the j-th oldest of
the most recent L items), ``lengths`` (B,) int64 with 1 ≤ length ≤ L. A model returns the user
representation read out at slot ``length − 1`` (B, d); scores are its dot product with the output
item table (n_items + 1 rows, row 0 = padding), tied to the input embedding where the official
code ties them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from seqbench.data.dataset import SequentialDataset


class SequentialRecommender(nn.Module):
    """Base class of every model; subclasses implement ``forward`` and ``output_embeddings``.

    ``trainable = False`` marks a model fitted by :meth:`fit_statistics` instead of gradient
    steps (e.g. popularity); the trainer then runs no epochs.
    """

    spec_name: ClassVar[str] = ""
    trainable: ClassVar[bool] = True

    def _setup(self, params: object, n_items: int, max_len: int, ablation: str) -> None:
        """Every constructor's first step: refuse an ablation the registry does not declare for
        this model, and keep what built it (the trainer reads ``params`` and ``ablation``)."""
        from seqbench.models.registry import MODELS

        MODELS[self.spec_name].check_ablation(ablation, type(self).__name__)
        self.params, self.ablation = params, ablation
        self.n_items, self.max_len = n_items, max_len

    @property
    def allows_all_positions(self) -> bool:
        """Whether this variant (its parameters and ablation) may train on every slot."""
        from seqbench.models.registry import FULL, MODELS

        spec = MODELS.get(self.spec_name)
        params, ablation = getattr(self, "params", None), getattr(self, "ablation", FULL)
        return spec is not None and spec.allows_all_positions(params, ablation)

    def forward(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, L), (B,) → user representation (B, d) at slot length − 1."""
        raise NotImplementedError

    def output_embeddings(self) -> torch.Tensor:
        """The table scored against: (n_items + 1, d), row 0 = padding."""
        raise NotImplementedError

    def score(self, user: torch.Tensor, start: int = 0, end: int | None = None) -> torch.Tensor:
        """Scores (B, end − start) of items ``start..end-1`` for user representations (B, d).

        The evaluator calls this chunk by chunk so that memory stays bounded for any catalog.
        """
        return user @ self.output_embeddings()[start:end].T

    def loss(
        self, items: torch.Tensor, lengths: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor:
        """RecBole's CE: softmax over the WHOLE item table, padding row included (§1.5)."""
        return F.cross_entropy(self.score(self(items, lengths)), targets)

    def forward_all(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, L), (B,) → (B, L, d): the output at every slot (models declaring
        ``all_positions``)."""
        raise NotImplementedError(f"{type(self).__name__} gives no output at every slot")

    def loss_all_positions(
        self, items: torch.Tensor, lengths: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor:
        """The all-positions objective: CE at every real slot j against ``targets[:, j]`` (the
        next item), averaged over all real slots of the batch. Sound only for causal models:
        the trainer refuses it for any other (model-reference §7.3–§7.4)."""
        real = torch.arange(items.shape[1], device=items.device)[None, :] < lengths[:, None]
        hidden = self.forward_all(items, lengths)
        return F.cross_entropy(self.score(hidden[real]), targets[real])

    def fit_statistics(self, dataset: SequentialDataset) -> None:
        """Fit a non-trainable model from ``dataset``'s training split (see ``trainable``)."""
        raise NotImplementedError


def gather_last(hidden: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """hidden (B, L, d) → (B, d) at slot length − 1 (RecBole's ``gather_indexes``)."""
    index = (lengths - 1).view(-1, 1, 1).expand(-1, 1, hidden.shape[-1])
    return hidden.gather(1, index).squeeze(1)
