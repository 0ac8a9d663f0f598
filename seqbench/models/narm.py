"""NARM as RecBole 1.2.0 builds it (model-reference §6.4, §1.5).

Follows ``recbole/model/sequential_recommender/narm.py`` of RecBole v1.2.0 (tag v1.2.0 =
362d31f0); defaults from ``recbole/properties/model/NARM.yaml``. Li et al., "Neural Attentive
Session-based Recommendation", CIKM 2017.
"""

from __future__ import annotations

from typing import Annotated

import torch
from pydantic import Field
from torch import nn
from torch.nn.init import constant_, xavier_normal_

from seqbench.models.base import SequentialRecommender, gather_last
from seqbench.models.layers.dropout import Dropout
from seqbench.models.registry import FULL, ModelParams, register_model

REFERENCE = "RecBole v1.2.0 recbole/model/sequential_recommender/narm.py; Li et al., CIKM 2017"

Probability = Annotated[float, Field(ge=0.0, lt=1.0)]


class NARMParams(ModelParams):
    """RecBole's names and defaults (properties/model/NARM.yaml), so configs transfer."""

    embedding_size: int = Field(64, ge=1, description="Item embedding dimension (= output d).")
    hidden_size: int = Field(128, ge=1, description="GRU hidden state dimension.")
    n_layers: int = Field(1, ge=1, description="Stacked GRU layers.")
    dropout_probs: list[Probability] = Field(
        default_factory=lambda: [0.25, 0.5],
        min_length=2,
        max_length=2,
        description="[dropout on the item embeddings, dropout on [c_local; c_global]].",
    )


def _recbole_narm_init(module: nn.Module) -> None:
    """RecBole's NARM ``_init_weights``: xavier-normal on the embedding and every Linear weight,
    zero Linear biases (there are none: every Linear is bias-free); the GRU keeps PyTorch's
    default init."""
    if isinstance(module, nn.Embedding):
        xavier_normal_(module.weight.data)
    elif isinstance(module, nn.Linear):
        xavier_normal_(module.weight.data)
        if module.bias is not None:
            constant_(module.bias.data, 0)


@register_model(
    "narm",
    params=NARMParams,
    summary="GRU encoder with additive attention over its states (local + global), RecBole's NARM.",
    causal=False,
    all_positions=False,
    reference=REFERENCE,
)
class NARM(SequentialRecommender):
    """E[items] → Dropout → GRU (no biases) → h_j; c_global = h_{length−1};
    α_j = v_t · (1[item_j ≠ 0] · σ(a_1 h_j + a_2 c_global)); c_local = Σ_j α_j h_j;
    Dropout([c_local; c_global]) → b (2·hidden → embedding, no bias) → dot product with the item
    table (tied).

    The attention has no softmax, and its mask is the input's non-padding slots (``item > 0``),
    over ALL slots, not the slots before ``length``: items placed after slot length − 1 would be
    attended. seqbench's inputs never hold any (they are zeros), but the variant is registered as
    non-causal because of it. The padding row of the embedding never reaches the readout (the
    GRU is causal and padding slots get α = 0).

    Parameter names are RecBole's (``item_embedding``, ``gru``, ``a_1``, ``a_2``, ``v_t``,
    ``b``), so a RecBole NARM state dict loads unchanged; built after the same
    ``torch.manual_seed`` the initial weights equal RecBole's (benchmarks/
    recbole_baseline_parity.py).

    Deliberate deviations from RecBole's code (none changes a number beyond float rounding):
    dropout draws its masks from other random numbers than ``nn.Dropout``
    (:mod:`seqbench.models.layers.dropout`). RecBole's BPR option is ``[train] loss = "bpr"``
    (:mod:`seqbench.losses`); CE (§1.5) is the default.
    """

    def __init__(
        self, params: NARMParams, *, n_items: int, max_len: int, ablation: str = FULL
    ) -> None:
        super().__init__()
        self._setup(params, n_items, max_len, ablation)
        hidden = params.hidden_size
        # Module creation order = RecBole's (same random draws for the same seed).
        self.item_embedding = nn.Embedding(n_items + 1, params.embedding_size, padding_idx=0)
        self.emb_dropout = Dropout(params.dropout_probs[0])
        self.gru = nn.GRU(
            params.embedding_size, hidden, params.n_layers, bias=False, batch_first=True
        )
        self.a_1 = nn.Linear(hidden, hidden, bias=False)
        self.a_2 = nn.Linear(hidden, hidden, bias=False)
        self.v_t = nn.Linear(hidden, 1, bias=False)
        self.ct_dropout = Dropout(params.dropout_probs[1])
        self.b = nn.Linear(2 * hidden, params.embedding_size, bias=False)
        self.apply(_recbole_narm_init)

    def forward(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, L), (B,) → (B, embedding_size)."""
        states, _ = self.gru(self.emb_dropout(self.item_embedding(items)))
        c_global = gather_last(states, lengths)
        real = (items > 0).unsqueeze(2).to(states.dtype)  # (B, L, 1)
        gates = torch.sigmoid(self.a_1(states) + self.a_2(c_global).unsqueeze(1))
        alpha = self.v_t(real * gates)  # (B, L, 1)
        c_local = (alpha * states).sum(dim=1)
        return self.b(self.ct_dropout(torch.cat([c_local, c_global], dim=1)))

    def output_embeddings(self) -> torch.Tensor:
        return self.item_embedding.weight
