"""SASRec as RecBole 1.2.0 builds it (model-reference §6.1, §1.5, §1.9).

Follows ``recbole/model/sequential_recommender/sasrec.py`` and ``recbole/model/layers.py`` of
RecBole v1.2.0 (tag v1.2.0 = 362d31f0); defaults from ``recbole/properties/model/SASRec.yaml``.
Kang & McAuley, "Self-Attentive Sequential Recommendation", ICDM 2018.
"""

from __future__ import annotations

from functools import partial
from typing import Any, ClassVar, Literal

import torch
from pydantic import Field, model_validator
from torch import nn

from seqbench.models.base import SequentialRecommender
from seqbench.models.layers.dropout import Dropout
from seqbench.models.layers.init import recbole_normal_init
from seqbench.models.layers.transformer import TransformerEncoder, attention_mask
from seqbench.models.registry import FULL, ModelParams, register_model

REFERENCE = (
    "RecBole v1.2.0 recbole/model/sequential_recommender/sasrec.py + recbole/model/layers.py; "
    "Kang & McAuley, ICDM 2018"
)


class SASRecParams(ModelParams):
    """RecBole's names and defaults (properties/model/SASRec.yaml), so configs transfer."""

    n_layers: int = Field(2, ge=1, description="Transformer layers.")
    n_heads: int = Field(2, ge=1, description="Attention heads (must divide hidden_size).")
    hidden_size: int = Field(64, ge=1, description="Item, position and hidden dimension d.")
    inner_size: int = Field(256, ge=1, description="Inner dimension of the feed-forward network.")
    hidden_dropout_prob: float = Field(
        0.5, ge=0.0, lt=1.0, description="Dropout on embeddings and after each sub-layer."
    )
    attn_dropout_prob: float = Field(
        0.5, ge=0.0, lt=1.0, description="Dropout on the attention probabilities."
    )
    hidden_act: Literal["gelu", "relu", "swish", "tanh", "sigmoid"] = Field(
        "gelu", description="Feed-forward activation (gelu = exact erf GELU)."
    )
    layer_norm_eps: float = Field(1e-12, gt=0.0, description="LayerNorm epsilon.")
    initializer_range: float = Field(
        0.02, gt=0.0, description="Std of the normal init of every Linear and Embedding weight."
    )
    attention: Literal["sdpa", "naive"] = Field(
        "sdpa",
        description="Attention as seqbench computes it ('sdpa': torch's fused "
        "scaled_dot_product_attention) or as RecBole and the papers do ('naive': the explicit "
        "L×L score matrix); the same numbers within float rounding, different time and memory.",
    )

    # Added after results existed: left out of a cell's parameters (and hash) while "sdpa".
    late_defaults: ClassVar[dict[str, Any]] = {"attention": "sdpa"}

    @model_validator(mode="after")
    def _heads_divide_hidden(self) -> SASRecParams:
        if self.hidden_size % self.n_heads != 0:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) must be a multiple of n_heads ({self.n_heads})"
            )
        return self


@register_model(
    "sasrec",
    params=SASRecParams,
    summary="Self-attentive causal transformer (post-LN, learned positions), RecBole's SASRec.",
    causal=True,
    all_positions=True,
    reference=REFERENCE,
)
class SASRec(SequentialRecommender):
    """E[items] + P[0..L−1] → LayerNorm → Dropout → n_layers post-LN causal transformer layers →
    slot length − 1 → dot product with the item table (tied).

    Parameter names are RecBole's (``item_embedding``, ``position_embedding``,
    ``trm_encoder.layer.{i}.…``, ``LayerNorm``), so ``load_state_dict`` takes a RecBole SASRec
    state dict unchanged; built after the same ``torch.manual_seed`` the initial weights equal
    RecBole's (benchmarks/recbole_model_parity.py checks both).

    Deliberate deviations from RecBole's code (none changes a number beyond float rounding):

    - ``forward`` computes the last transformer layer only at the readout slot (see
      :meth:`TransformerEncoder.readout`); :meth:`forward_all` gives every slot.
    - Attention runs through ``scaled_dot_product_attention`` (``attention = "sdpa"``, the
      default; ``"naive"`` computes it as RecBole does) with the same additive −10000 mask,
      and query/key/value are one stacked matrix product (parameters unchanged); dropout masks
      are drawn from other random numbers than ``nn.Dropout``'s (same distribution; faster on
      the CPU, see ``seqbench.models.layers.dropout``).
    - GELU is ``F.gelu`` (exact erf), RecBole writes ``x·½·(1 + erf(x/√2))`` out by hand.
    - RecBole's BPR option (one uniform negative) is ``[train] loss = "bpr"``
      (:mod:`seqbench.losses`); CE (§1.5) is the default.

    As in RecBole, the padding row 0 of ``item_embedding`` is initialised like every other row
    (not zero); ``padding_idx=0`` only keeps the input lookup from updating it, while the tied
    output side (CE over the whole table, row 0 included) still does.
    """

    def __init__(
        self, params: SASRecParams, *, n_items: int, max_len: int, ablation: str = FULL
    ) -> None:
        super().__init__()
        self._setup(params, n_items, max_len, ablation)
        d = params.hidden_size
        # Module creation order = RecBole's (same random draws for the same seed).
        self.item_embedding = nn.Embedding(n_items + 1, d, padding_idx=0)
        self.position_embedding = nn.Embedding(max_len, d)
        self.trm_encoder = TransformerEncoder.from_params(params)
        self.LayerNorm = nn.LayerNorm(d, eps=params.layer_norm_eps)
        self.dropout = Dropout(params.hidden_dropout_prob)
        self.apply(partial(recbole_normal_init, std=params.initializer_range))

    def _embed(self, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The encoder input (B, L, d) and RecBole's additive causal + padding mask."""
        if items.shape[1] > self.max_len:
            raise ValueError(f"inputs of {items.shape[1]} slots, the model has {self.max_len}")
        positions = self.position_embedding.weight[: items.shape[1]]  # counted from the left
        hidden = self.dropout(self.LayerNorm(self.item_embedding(items) + positions))
        return hidden, attention_mask(items, causal=True, dtype=hidden.dtype)

    def forward(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, L), (B,) → (B, d) at slot length − 1, the last layer computed at that slot only."""
        hidden, mask = self._embed(items)
        return self.trm_encoder.readout(hidden, mask, lengths - 1)

    def forward_all(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, L), (B,) → (B, L, d): the output at every slot (RecBole's ``trm_output[-1]``)."""
        hidden, mask = self._embed(items)
        return self.trm_encoder(hidden, mask)

    def output_embeddings(self) -> torch.Tensor:
        return self.item_embedding.weight
