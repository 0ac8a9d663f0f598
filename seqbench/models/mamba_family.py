"""What the Mamba recommenders share: their parameters, embedding path, readout and init.

Every official Mamba recommender (Mamba4Rec, EchoMamba4Rec, M2Rec) is a RecBole
``SequentialRecommender`` with the same skeleton (model-reference §3, §4, §8): item embedding
(padding_idx 0, no positions) → Dropout → LayerNorm(ε 1e-12) → encoder → the slot
length − 1 → dot product with the same table (CE over all of it), and RecBole's
``_init_weights`` applied to every module, the Linear layers inside ``mamba_ssm.Mamba`` included
(§1.9: in_proj, x_proj, dt_proj, out_proj ~ N(0, 0.02²) and dt_proj.bias = 0, so Δ starts near
softplus(0) ≈ 0.69 instead of Mamba's [1e-3, 1e-1]). ``recbole_init = false`` keeps Mamba's own
initialisation inside the blocks (an ablation of that accident).

``forward`` (the readout the trainer and evaluator use) runs every layer but the last at every
slot and the last one at slot length − 1 only (:meth:`SlotLayer.readout`): the same numbers and
dropout masks as ``forward_all`` read at that slot, within float rounding, for a fraction of the
work; ``forward_all`` gives every slot (the all-positions objective).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
from pydantic import Field
from torch import nn

from seqbench.models.base import SequentialRecommender
from seqbench.models.layers.dropout import Dropout
from seqbench.models.layers.init import recbole_normal_init
from seqbench.models.layers.mamba import Filter, Mamba
from seqbench.models.layers.slots import SlotLayer
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

    def mamba(
        self,
        *,
        pre_activation: Filter | None = None,
        delta_filter: Filter | None = None,
        ssm_norm: bool = False,
    ) -> Mamba:
        """A block of these sizes, with the optional parts of :class:`Mamba` (absent by
        default)."""
        return Mamba(
            self.hidden_size, d_state=self.d_state, d_conv=self.d_conv, expand=self.expand,
            pre_activation=pre_activation, delta_filter=delta_filter, ssm_norm=ssm_norm,
        )  # fmt: skip


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
        layer: Callable[[], SlotLayer],
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

    def embed(self, items: torch.Tensor) -> torch.Tensor:
        """(B, L) → LayerNorm(Dropout(E[items])) (B, L, d), the first layer's input."""
        return self.LayerNorm(self.dropout(self.item_embedding(items)))

    def forward_all(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, L), (B,) → (B, L, d): the encoder output at every slot. Each layer takes
        (hidden (B, L, d), lengths) (flips need lengths)."""
        hidden = self.embed(items)
        for layer in self.mamba_layers:
            hidden = layer(hidden, lengths)
        return hidden

    def forward(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, L), (B,) → (B, d) at slot length − 1, the last layer computed at that slot."""
        hidden = self.embed(items)
        *body, last = self.mamba_layers
        for layer in body:
            hidden = layer(hidden, lengths)
        return last.readout(hidden, lengths)

    def output_embeddings(self) -> torch.Tensor:
        return self.item_embedding.weight
