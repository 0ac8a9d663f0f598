"""Mamba4Rec's position-wise feed-forward block (chengkai-liu/Mamba4Rec, mamba4rec.py
``FeedForward``; model-reference §3): LN(Dropout(W₂·Dropout(GELU(W₁h + b₁)) + b₂) + h), inner
size 4d, exact-erf GELU, LayerNorm ε 1e-12. Unlike RecBole's transformer FFN it has a dropout
after the activation too."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from seqbench.models.layers.dropout import Dropout


class FeedForward(nn.Module):
    def __init__(self, d_model: int, inner_size: int, dropout: float = 0.2) -> None:
        super().__init__()
        self.w_1 = nn.Linear(d_model, inner_size)
        self.w_2 = nn.Linear(inner_size, d_model)
        self.dropout = Dropout(dropout)
        self.LayerNorm = nn.LayerNorm(d_model, eps=1e-12)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        inner = self.dropout(F.gelu(self.w_1(hidden)))
        return self.LayerNorm(self.dropout(self.w_2(inner)) + hidden)

    def at_slots(self, hidden: torch.Tensor, length: int, at: torch.Tensor) -> torch.Tensor:
        """``forward`` of a (B, ``length``, d) input at slots ``at`` (B,) only, given those rows
        (B, d): the same numbers and dropout masks (per-slot arithmetic)."""
        inner = self.dropout.at_slots(F.gelu(self.w_1(hidden)), length, at)
        return self.LayerNorm(self.dropout.at_slots(self.w_2(inner), length, at) + hidden)
