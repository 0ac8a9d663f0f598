"""What the Mamba recommenders share: their parameters, embedding path, readout and init.

Every official Mamba recommender (Mamba4Rec, EchoMamba4Rec, M2Rec) is a RecBole
``SequentialRecommender`` with the same skeleton (model-reference §3, §4, §8): item embedding
(padding_idx 0, no positions) → Dropout → LayerNorm(ε 1e-12) → encoder → the slot
length − 1 → dot product with the same table (CE over all of it), and RecBole's
``_init_weights`` applied to every module, the Linear layers inside ``mamba_ssm.Mamba`` included
(§1.9: in_proj, x_proj, dt_proj, out_proj ~ N(0, 0.02²) and dt_proj.bias = 0, so Δ starts near
softplus(0) ≈ 0.69 instead of Mamba's [1e-3, 1e-1]). ``recbole_init = false`` keeps Mamba's own
initialisation inside the blocks (an ablation of that accident).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
from pydantic import Field
from torch import nn

from seqbench.models.base import SequentialRecommender, gather_last
from seqbench.models.layers.dropout import Dropout
from seqbench.models.layers.init import recbole_normal_init
from seqbench.models.layers.mamba import Mamba
from seqbench.models.registry import ModelParams


class MambaRecParams(ModelParams):
    """The official config keys and values (Mamba4Rec/EchoMamba4Rec config.yaml)."""

    hidden_size: int = Field(64, ge=1, description="Item and hidden dimension d.")
    num_layers: int = Field(1, ge=1, description="Stacked layers.")
    dropout_prob: float = Field(0.2, ge=0.0, lt=1.0, description="Dropout everywhere.")
    d_state: int = Field(32, ge=1, description="SSM state size N.")
    d_conv: int = Field(4, ge=1, description="Causal convolution width.")
    expand: int = Field(2, ge=1, description="Block expansion E (d_inner = E·d).")
    recbole_init: bool = Field(
        True,
        description="Re-initialise the Linear layers inside Mamba as RecBole does (dt bias 0); "
        "false keeps mamba_ssm's init there.",
    )

    def mamba(self) -> Mamba:
        return Mamba(self.hidden_size, d_state=self.d_state, d_conv=self.d_conv, expand=self.expand)


class MambaRecommender(SequentialRecommender):
    """Embedding → Dropout → LayerNorm → ``encode`` → slot length − 1 (tied output table).

    Subclasses call :meth:`_build` with their layer; names follow the official checkpoints
    (``item_embedding``, ``LayerNorm``, ``mamba_layers``).
    """

    def _build(
        self,
        params: MambaRecParams,
        n_items: int,
        max_len: int,
        ablation: str,
        layer: Callable[[], nn.Module],
    ) -> None:
        """The official module order — item_embedding, LayerNorm, dropout, num_layers ×
        ``layer()`` as ``mamba_layers`` — then RecBole's init (:meth:`_init_weights`)."""
        self._setup(params, n_items, max_len, ablation)
        self.item_embedding = nn.Embedding(n_items + 1, params.hidden_size, padding_idx=0)
        self.LayerNorm = nn.LayerNorm(params.hidden_size, eps=1e-12)
        self.dropout = Dropout(params.dropout_prob)
        self.mamba_layers = nn.ModuleList(layer() for _ in range(params.num_layers))
        self._init_weights(params)

    def _init_weights(self, params: MambaRecParams) -> None:
        """RecBole's ``_init_weights`` over every module, Mamba's inner Linears only if
        ``recbole_init`` (the official code has no such switch: it always re-initialises)."""
        init = partial(recbole_normal_init, std=0.02)
        if params.recbole_init:
            self.apply(init)
            return
        inside = {id(m) for block in self.modules() if isinstance(block, Mamba)
                  for m in block.modules()}  # fmt: skip
        for module in self.modules():
            if id(module) not in inside:
                init(module)

    def encode(self, hidden: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The layers in turn; each takes (hidden (B, L, d), lengths) (flips need lengths)."""
        for layer in self.mamba_layers:
            hidden = layer(hidden, lengths)
        return hidden

    def forward_all(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, L), (B,) → (B, L, d): the encoder output at every slot."""
        hidden = self.LayerNorm(self.dropout(self.item_embedding(items)))
        return self.encode(hidden, lengths)

    def forward(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return gather_last(self.forward_all(items, lengths), lengths)

    def output_embeddings(self) -> torch.Tensor:
        return self.item_embedding.weight
