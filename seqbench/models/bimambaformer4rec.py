"""Bi-Mambaformer4Rec, the EchoMamba4Rec paper's hybrid baseline (model-reference §4, last
paragraph): paper-described, code-unverified.

No code for it exists; the EchoMamba4Rec paper (arXiv 2406.02638, §4.1 and Fig. 4, after
Bi-Mamba4TS and Mambaformer) only names and draws it. Our reading, consistent with the
EchoMamba4Rec repository: each layer is EchoMamba4Rec's bidirectional Mamba pair followed by the
attention block that the repository constructs but never calls (``MultiQueryTransformerBlock``,
whose ``forward`` we follow)::

    x ← Dropout₁(LN₁(x + MHA(x, x, x)))          # 4 heads, no mask (as that block)
    x ← Dropout₂(LN₂(x + GLU(x)))                # GLU with its own residual + LN inside

That block's ``linear1``/``linear2`` are never used by its forward and are not built.
"""

from __future__ import annotations

import torch
from pydantic import Field, model_validator
from torch import nn

from seqbench.models.layers.bidirectional import BidirectionalPairs, FlipMode
from seqbench.models.layers.dropout import Dropout
from seqbench.models.layers.glu import GLU
from seqbench.models.mamba_family import MambaRecommender, MambaRecParams
from seqbench.models.registry import FULL, register_model

REFERENCE = (
    "no public code; EchoMamba4Rec paper (arXiv 2406.02638) §4.1, Fig. 4; attention block = "
    "MultiQueryTransformerBlock.forward of wyd0042/EchoMamba4Rec model.py"
)


class BiMambaformer4RecParams(MambaRecParams):
    n_heads: int = Field(4, ge=1, description="Attention heads (the official block uses 4).")
    flip: FlipMode = Field(
        "full",
        description="'full' reverses all L slots (as EchoMamba4Rec); 'per_length' only "
        "the real items.",
    )

    @model_validator(mode="after")
    def _heads_divide_hidden(self) -> BiMambaformer4RecParams:
        if self.hidden_size % self.n_heads:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) must be a multiple of n_heads ({self.n_heads})"
            )
        return self


class AttentionBlock(nn.Module):
    """The official ``MultiQueryTransformerBlock.forward`` (plain multi-head attention)."""

    def __init__(self, d: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        self.multihead_attn = nn.MultiheadAttention(d, n_heads, dropout=dropout, batch_first=True)
        self.glu = GLU(d, dropout)
        self.norm1 = nn.LayerNorm(d)
        self.norm2 = nn.LayerNorm(d)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        attended, _ = self.multihead_attn(x, x, x, need_weights=False)
        x = self.dropout1(self.norm1(x + attended))
        return self.dropout2(self.norm2(x + self.glu(x)))


class BiMambaformerLayer(BidirectionalPairs):
    """A bidirectional pair, then the attention block. Its readout is the default one (every
    slot computed, one read): the unmasked attention reads the pair's output at every slot, and
    its attention-probability dropout is drawn inside ``nn.MultiheadAttention``."""

    def __init__(self, params: BiMambaformer4RecParams) -> None:
        super().__init__()
        self._build_pairs(params, 1, True, params.flip)
        self.attention = AttentionBlock(params.hidden_size, params.n_heads, params.dropout_prob)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.attention(self._run_pairs(x, lengths))


@register_model(
    "bimambaformer4rec",
    params=BiMambaformer4RecParams,
    summary="Bidirectional Mamba pair + attention/GLU block (paper-described, no public code).",
    causal=False,
    all_positions=True,
    reference=REFERENCE,
    kernels=True,
)
class BiMambaformer4Rec(MambaRecommender):
    """E → Dropout → LN → num_layers × [bidirectional pair → attention block] → slot length − 1.

    Paper-described, code-unverified (module docstring). Not causal: unmasked attention and the
    backward branch read every slot, padding included; last-position objective only. The
    attention reads the pair's output at every slot, so ``forward`` computes every slot of every
    layer and reads one (the faster scan still applies).
    """

    def __init__(
        self, params: BiMambaformer4RecParams, *, n_items: int, max_len: int, ablation: str = FULL
    ) -> None:
        super().__init__()
        self._build(params, n_items, max_len, ablation, lambda: BiMambaformerLayer(params))
