"""One slot per row of a (B, L, d) tensor, and layers that can compute that slot alone."""

from __future__ import annotations

import torch
from torch import nn


def gather_slots(hidden: torch.Tensor, at: torch.Tensor) -> torch.Tensor:
    """hidden (B, L, d), slots ``at`` (B,) → (B, d): each row's vector at its slot (RecBole's
    ``gather_indexes``)."""
    return hidden.gather(1, at.view(-1, 1, 1).expand(-1, 1, hidden.shape[-1])).squeeze(1)


class SlotLayer(nn.Module):
    """A sequence layer, (B, L, d) and lengths (B,) → (B, L, d), that can also give its output at
    slot length − 1 of each row alone: :meth:`readout` equals ``forward`` read at that slot.

    This default computes every slot and reads one; a layer whose work after its sequence mixing
    is per slot overrides it to compute that slot only (the last layer of a model that reads
    slot length − 1 then does a fraction of the work).
    """

    def forward(self, hidden: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def readout(self, hidden: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, L, d), (B,) → (B, d): the output at slot length − 1."""
        return gather_slots(self(hidden, lengths), lengths - 1)
