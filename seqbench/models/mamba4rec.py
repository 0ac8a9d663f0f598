"""Mamba4Rec as its official code builds it (model-reference §3, §1.9, §8).

Follows chengkai-liu/Mamba4Rec ``mamba4rec.py`` (classes ``Mamba4Rec``, ``MambaLayer``,
``FeedForward``; config.yaml) and Liu et al., "Mamba4Rec: Towards Efficient Sequential
Recommendation with Selective State Space Models", arXiv 2403.03900 (Fig. 1, eqs. 1–6).
"""

from __future__ import annotations

import torch
from torch import nn

from seqbench.models.layers.dropout import Dropout
from seqbench.models.layers.ffn import FeedForward
from seqbench.models.layers.mamba import Mamba
from seqbench.models.layers.slots import SlotLayer, gather_slots
from seqbench.models.mamba_family import MambaRecommender, MambaRecParams
from seqbench.models.registry import FULL, register_model

REFERENCE = (
    "chengkai-liu/Mamba4Rec mamba4rec.py (Mamba4Rec, MambaLayer, FeedForward); "
    "Liu et al., arXiv 2403.03900"
)


class Mamba4RecParams(MambaRecParams):
    """Official config.yaml: d 64, 1 layer, dropout 0.2 (the paper used 0.4 on Amazon), N 32."""


class MambaLayer(SlotLayer):
    """Mamba → (residual only when stacking) → Dropout → LN → FeedForward, as the official
    ``MambaLayer``: with one layer there is no residual around the Mamba block. ``mamba`` is
    the layer's block (default: ``params.mamba()``; M2Rec's variants pass one with filters)."""

    def __init__(self, params: MambaRecParams, mamba: Mamba | None = None) -> None:
        super().__init__()
        d = params.hidden_size
        self.num_layers = params.num_layers
        self.mamba = params.mamba() if mamba is None else mamba
        self.dropout = Dropout(params.dropout_prob)
        self.LayerNorm = nn.LayerNorm(d, eps=1e-12)
        self.ffn = FeedForward(d, 4 * d, params.dropout_prob)

    def mamba_input(self, hidden: torch.Tensor) -> torch.Tensor:
        """What the Mamba block reads (the layer input; M2Rec's ``input`` filter overrides)."""
        return hidden

    def forward(self, hidden: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        mixed = self.dropout(self.mamba(self.mamba_input(hidden)))
        if self.num_layers > 1:
            mixed = mixed + hidden
        return self.ffn(self.LayerNorm(mixed))

    def readout(self, hidden: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``forward`` at slot length − 1: the block's readout, then the per-slot rest there."""
        at, length = lengths - 1, hidden.shape[1]
        mixed = self.dropout.at_slots(self.mamba.readout(self.mamba_input(hidden), at), length, at)
        if self.num_layers > 1:
            mixed = mixed + gather_slots(hidden, at)
        return self.ffn.at_slots(self.LayerNorm(mixed), length, at)


@register_model(
    "mamba4rec",
    params=Mamba4RecParams,
    summary="Unidirectional Mamba blocks with a feed-forward network (Mamba4Rec, official code).",
    causal=True,
    all_positions=True,
    reference=REFERENCE,
    kernels=True,
)
class Mamba4Rec(MambaRecommender):
    """E[items] → Dropout → LN(ε 1e-12) → num_layers × MambaLayer → slot length − 1 → tied CE.

    State-dict keys are the official checkpoints' (``item_embedding.weight``, ``LayerNorm.*``,
    ``mamba_layers.{i}.mamba.{in_proj,conv1d,x_proj,dt_proj,out_proj}.*``, ``.A_log``, ``.D``,
    ``mamba_layers.{i}.LayerNorm.*``, ``mamba_layers.{i}.ffn.{w_1,w_2,LayerNorm}.*``); modules are
    created in the official order, so one seed gives the official initial weights.

    ``forward`` computes the last layer at slot length − 1 only (the Mamba block's
    :meth:`~seqbench.models.layers.mamba.Mamba.readout`, then dropout, LayerNorm and FFN there,
    with the dropout masks of the full computation): the numbers of ``forward_all`` at that
    slot within float rounding.

    Causal: the Mamba block only looks left and everything else is per slot, so padding on the
    right never reaches a real slot and the all-positions objective is allowed.

    Deliberate deviations: none in the arithmetic. No positional embedding (the code has none;
    summaries of the paper mention one). The official BPR option is ``[train] loss = "bpr"``
    (uniform negatives, as RecBole's sampler). ``recbole_init = false`` is an ablation the
    official code does not have. Dropout masks come from another random stream than
    ``nn.Dropout``'s (same distribution; faster on the CPU).
    """

    def __init__(
        self, params: Mamba4RecParams, *, n_items: int, max_len: int, ablation: str = FULL
    ) -> None:
        super().__init__()
        self._build(params, n_items, max_len, ablation, lambda: MambaLayer(params))
