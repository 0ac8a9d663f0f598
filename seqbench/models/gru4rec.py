"""GRU4Rec as RecBole 1.2.0 builds it (model-reference §6.3, §1.5).

Follows ``recbole/model/sequential_recommender/gru4rec.py`` of RecBole v1.2.0 (tag v1.2.0 =
362d31f0); defaults from ``recbole/properties/model/GRU4Rec.yaml``. Hidasi et al., "Session-based
Recommendations with Recurrent Neural Networks", ICLR 2016; RecBole cites Tan et al., DLRS 2016
for the prefix augmentation it trains on.
"""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn
from torch.nn.init import xavier_normal_, xavier_uniform_

from seqbench.models.base import SequentialRecommender, gather_last
from seqbench.models.layers.dropout import Dropout
from seqbench.models.registry import FULL, ModelParams, register_model

REFERENCE = (
    "RecBole v1.2.0 recbole/model/sequential_recommender/gru4rec.py; "
    "Hidasi et al., ICLR 2016 / Tan et al., DLRS 2016"
)


class GRU4RecParams(ModelParams):
    """RecBole's names and defaults (properties/model/GRU4Rec.yaml), so configs transfer."""

    embedding_size: int = Field(64, ge=1, description="Item embedding dimension (= output d).")
    hidden_size: int = Field(128, ge=1, description="GRU hidden state dimension.")
    num_layers: int = Field(1, ge=1, description="Stacked GRU layers.")
    dropout_prob: float = Field(
        0.3, ge=0.0, lt=1.0, description="Dropout on the item embeddings (the GRU input)."
    )


def _recbole_gru4rec_init(module: nn.Module) -> None:
    """RecBole's GRU4Rec ``_init_weights``: xavier-normal embeddings; xavier-uniform on the
    FIRST GRU layer's weights only (hh before ih, RecBole's order); every other weight, and the
    dense layer, keep PyTorch's default init."""
    if isinstance(module, nn.Embedding):
        xavier_normal_(module.weight)
    elif isinstance(module, nn.GRU):
        xavier_uniform_(module.weight_hh_l0)
        xavier_uniform_(module.weight_ih_l0)


@register_model(
    "gru4rec",
    params=GRU4RecParams,
    summary="GRU over the item embeddings, projected back to the item space; RecBole's GRU4Rec.",
    causal=True,
    all_positions=True,
    reference=REFERENCE,
)
class GRU4Rec(SequentialRecommender):
    """E[items] → Dropout → GRU (no biases) → Linear(hidden → embedding) → slot length − 1 →
    dot product with the item table (tied).

    Parameter names are RecBole's (``item_embedding``, ``gru_layers.weight_{ih,hh}_l{k}``,
    ``dense``), so a RecBole GRU4Rec state dict loads unchanged; built after the same
    ``torch.manual_seed`` the initial weights equal RecBole's.

    Deliberate deviations from RecBole's code (none changes a number beyond float rounding):

    - RecBole applies ``dense`` at every slot and then gathers slot length − 1; ``forward``
      gathers first and applies ``dense`` to one vector per row (a slot-wise Linear commutes with
      the gather). :meth:`forward_all` applies it at every slot, as RecBole does.
    - RecBole's BPR option (one uniform negative) is ``[train] loss = "bpr"``
      (:mod:`seqbench.losses`); CE (§1.5) is the default.

    The GRU runs over the padded slots too (as RecBole, no packing); it is causal, so slots after
    length − 1 never reach the readout.
    """

    def __init__(
        self, params: GRU4RecParams, *, n_items: int, max_len: int, ablation: str = FULL
    ) -> None:
        super().__init__()
        self._setup(params, n_items, max_len, ablation)
        # Module creation order = RecBole's (same random draws for the same seed).
        self.item_embedding = nn.Embedding(n_items + 1, params.embedding_size, padding_idx=0)
        self.emb_dropout = Dropout(params.dropout_prob)
        self.gru_layers = nn.GRU(
            input_size=params.embedding_size,
            hidden_size=params.hidden_size,
            num_layers=params.num_layers,
            bias=False,
            batch_first=True,
        )
        self.dense = nn.Linear(params.hidden_size, params.embedding_size)
        self.apply(_recbole_gru4rec_init)

    def _states(self, items: torch.Tensor) -> torch.Tensor:
        """The GRU's last-layer hidden state at every slot, (B, L, hidden)."""
        states, _ = self.gru_layers(self.emb_dropout(self.item_embedding(items)))
        return states

    def forward(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, L), (B,) → (B, embedding_size) at slot length − 1."""
        return self.dense(gather_last(self._states(items), lengths))

    def forward_all(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, L), (B,) → (B, L, embedding_size): the output at every slot."""
        return self.dense(self._states(items))

    def output_embeddings(self) -> torch.Tensor:
        return self.item_embedding.weight
