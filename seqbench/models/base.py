"""The contract between a model and the trainer/evaluator.

Inputs are RecBole's: ``items`` (B, L) int64, right-padded with 0 (slot j holds the j-th oldest of
the most recent L items), ``lengths`` (B,) int64 with 1 ≤ length ≤ L. A model returns the user
representation read out at slot ``length − 1`` (B, d); scores are its dot product with the output
item table (n_items + 1 rows, row 0 = padding), tied to the input embedding where the official
code ties them.

The training objective is the model's :meth:`~SequentialRecommender.criterion`, a
:class:`seqbench.losses.Criterion` chosen by the trainer with
:meth:`~SequentialRecommender.set_loss` (``[train] loss``): "ce" (the default, also for a model
whose ``set_loss`` was never called) is RecBole's softmax cross-entropy over the whole item
table; "bce" and "bpr" score the target against sampled negatives through
:meth:`~SequentialRecommender.score_items`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import torch
from torch import nn

from seqbench.losses import Criterion
from seqbench.models.layers.slots import gather_slots
from seqbench.models.registry import FULL, MODELS, ModelParams

if TYPE_CHECKING:
    from seqbench.data.dataset import SequentialDataset


class SequentialRecommender(nn.Module):
    """Base class of every model; subclasses implement ``forward`` and ``output_embeddings``.

    ``trainable = False`` marks a model fitted by :meth:`fit_statistics` instead of gradient
    steps (e.g. popularity); the trainer then runs no epochs.
    """

    spec_name: ClassVar[str] = ""
    trainable: ClassVar[bool] = True
    #: The training criterion (see :meth:`set_loss`); the class default until the trainer sets it.
    training_loss: Criterion = Criterion()
    #: What built the model (:meth:`_setup`); class defaults for a model built without it.
    params: ModelParams | None = None
    ablation: str = FULL
    _n_items: int | None = None

    def _setup(self, params: ModelParams, n_items: int, max_len: int, ablation: str) -> None:
        """Every constructor's first step: refuse an ablation the registry does not declare for
        this model, and keep what built it (the trainer reads ``params`` and ``ablation``)."""
        MODELS[self.spec_name].check_ablation(ablation, type(self).__name__)
        self.params, self.ablation = params, ablation
        self._n_items, self.max_len = n_items, max_len

    @property
    def allows_all_positions(self) -> bool:
        """Whether this variant (its parameters and ablation) may train on every slot."""
        spec = MODELS.get(self.spec_name)
        return spec is not None and spec.allows_all_positions(self.params, self.ablation)

    def forward(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, L), (B,) → user representation (B, d) at slot length − 1."""
        raise NotImplementedError

    def output_embeddings(self) -> torch.Tensor:
        """The table scored against: (n_items + 1, d), row 0 = padding."""
        raise NotImplementedError

    def input_item_embedding(self) -> nn.Embedding | None:
        """The module that embeds the input item ids ((B, L) → (B, L, d)), for code that acts on
        input embeddings through a forward hook (evaluation-time embedding noise,
        :mod:`seqbench.robustness.embedding`): the ``item_embedding`` (or FMLP-Rec's
        ``item_embeddings``) attribute by default; None for a model without one (popularity).
        A model that embeds its inputs some other way overrides this."""
        for name in ("item_embedding", "item_embeddings"):
            module = getattr(self, name, None)
            if isinstance(module, nn.Embedding):
                return module
        return None

    def score(self, user: torch.Tensor, start: int = 0, end: int | None = None) -> torch.Tensor:
        """Scores (B, end − start) of items ``start..end-1`` for user representations (B, d).

        The evaluator calls this chunk by chunk so that memory stays bounded for any catalog.
        """
        return user @ self.output_embeddings()[start:end].T

    def score_items(self, user: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Scores (N, k) of the given ``items`` (N, k) for user representations (N, d), each
        row's own items only (sampled losses); consistent with :meth:`score`."""
        return (user[:, None, :] * self.output_embeddings()[items]).sum(-1)

    @property
    def n_items(self) -> int:
        """Real items, ids 1..n_items: as built (:meth:`_setup`), else the output table's
        rows − 1."""
        if self._n_items is not None:
            return self._n_items
        return self.output_embeddings().shape[0] - 1

    @property
    def loss_kind(self) -> str:
        return self.training_loss.kind

    @property
    def loss_negatives(self) -> int:
        return self.training_loss.negatives

    def set_loss(self, kind: str = "ce", negatives: int = 1) -> None:
        """Choose the training criterion: "ce", or "bce"/"bpr" with ``negatives`` uniform
        negatives per target (the trainer calls this from ``[train] loss`` / ``negatives``);
        see :class:`seqbench.losses.Criterion`."""
        self.training_loss = Criterion(kind, negatives)

    def criterion(
        self, user: torch.Tensor, targets: torch.Tensor, weight: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The training loss of user representations (N, d) for ``targets`` (N,), a scalar
        (:class:`seqbench.losses.Criterion`, optionally weighted per sample)."""
        return self.training_loss(self, user, targets, weight)

    def loss(
        self, items: torch.Tensor, lengths: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor:
        """The :meth:`criterion` at the last real slot; by default RecBole's CE, a softmax over
        the WHOLE item table, padding row included (§1.5)."""
        return self.criterion(self(items, lengths), targets)

    def forward_all(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, L), (B,) → (B, L, d): the output at every slot (models declaring
        ``all_positions``)."""
        raise NotImplementedError(f"{type(self).__name__} gives no output at every slot")

    def loss_all_positions(
        self, items: torch.Tensor, lengths: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor:
        """The all-positions objective: the :meth:`criterion` (CE by default) at every real slot
        j against ``targets[:, j]`` (the next item), averaged over all real slots of the batch.
        Sound only for causal models: the trainer refuses it for any other (model-reference
        §7.3–§7.4)."""
        real = torch.arange(items.shape[1], device=items.device)[None, :] < lengths[:, None]
        hidden = self.forward_all(items, lengths)
        return self.criterion(hidden[real], targets[real])

    def fit_statistics(self, dataset: SequentialDataset) -> None:
        """Fit a non-trainable model from ``dataset``'s training split (see ``trainable``)."""
        raise NotImplementedError


def gather_last(hidden: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """hidden (B, L, d) → (B, d) at slot length − 1 (RecBole's ``gather_indexes``)."""
    return gather_slots(hidden, lengths - 1)
