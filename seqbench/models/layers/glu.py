"""EchoMamba4Rec's gated linear unit (wyd0042/EchoMamba4Rec, EchoMamba4Rec_submitted/model.py
``GLU``; paper eq. 19; model-reference §4 step 3): [v; g] = fc1(x), LN(Dropout(fc2(v ⊙ σ(g)) + x)).
As in the official code the dropout acts on the sum, residual included (not on the branch)."""

from __future__ import annotations

import torch
from torch import nn

from seqbench.models.layers.dropout import Dropout


class GLU(nn.Module):
    def __init__(self, d_model: int, dropout: float = 0.2) -> None:
        super().__init__()
        self.fc1 = nn.Linear(d_model, 2 * d_model)
        self.fc2 = nn.Linear(d_model, d_model)
        self.dropout = Dropout(dropout)
        self.LayerNorm = nn.LayerNorm(d_model, eps=1e-12)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.fc1(x).chunk(2, dim=-1)
        return self.LayerNorm(self.dropout(self.fc2(value * torch.sigmoid(gate)) + x))

    def at_slots(self, x: torch.Tensor, length: int, at: torch.Tensor) -> torch.Tensor:
        """``forward`` of a (B, ``length``, d) input at slots ``at`` (B,) only, given those rows
        (B, d): the same numbers and dropout masks (per-slot arithmetic)."""
        value, gate = self.fc1(x).chunk(2, dim=-1)
        summed = self.fc2(value * torch.sigmoid(gate)) + x
        return self.LayerNorm(self.dropout.at_slots(summed, length, at))
