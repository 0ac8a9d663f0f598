"""Flips for a backward Mamba pass over right-padded sequences (model-reference §7.2).

``full`` reverses all L slots, as EchoMamba4Rec's ``torch.flip(x, [1])``: the backward scan first
reads the L − n padding slots, then x_{n−1} … x₀, so its output depends on the padding count.
``per_length`` reverses only the n real slots and leaves the padding where it is (M2Rec's
commented helper): the backward output at slot t is a function of x_{n−1} … x_t alone. Both are
involutions, so the same call maps the backward output back to the original slots.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import torch
from torch import nn

from seqbench.models.layers.dropout import Dropout
from seqbench.models.layers.slots import SlotLayer, gather_slots

if TYPE_CHECKING:
    from seqbench.models.mamba_family import MambaRecParams

FlipMode = Literal["full", "per_length"]


def flip(x: torch.Tensor, lengths: torch.Tensor, mode: FlipMode) -> torch.Tensor:
    """x (B, L, d) reversed along the slots: all of them, or the first ``lengths`` of each row."""
    if mode == "full":
        return torch.flip(x, [1])
    if mode != "per_length":
        raise ValueError(f"flip must be 'full' or 'per_length', not {mode!r}")
    slots = torch.arange(x.shape[1], device=x.device)
    n = lengths.to(x.device)[:, None]
    source = torch.where(slots[None, :] < n, n - 1 - slots[None, :], slots[None, :])
    return x.gather(1, source.unsqueeze(-1).expand(-1, -1, x.shape[2]))


def flipped_slot(
    at: torch.Tensor, lengths: torch.Tensor, length: int, mode: FlipMode
) -> torch.Tensor:
    """Where :func:`flip` moves slot ``at`` (B,) of rows of ``lengths`` (B,) in L = ``length``
    slots: L − 1 − at (``full``), n − 1 − at for a real slot at < n (``per_length``)."""
    if mode == "full":
        return length - 1 - at
    return torch.where(at < lengths, lengths - 1 - at, at)


class BidirectionalPairs(SlotLayer):
    """EchoMamba4Rec's inner loop (model-reference §4 step 2), as a base of the layers using it.

    For each of ``n_pairs`` pairs, with separate blocks and LayerNorms (default ε 1e-5, as the
    official ``nn.LayerNorm(d_model)``)::

        f = norms_forward[i](Dropout(mamba_forwards[i](x)) + x)
        b = norms_backward[i](Dropout(flip(mamba_backwards[i](flip(x)))) + x)
        x = f + b

    ``backward = False`` drops the backward branch (x = f: the forward-only ablation). The
    attributes are the official names, so a subclass's state-dict keys match the checkpoints.

    :meth:`_readout_pairs` gives the output of the pairs at slot length − 1 alone: every pair
    but the last runs at every slot; in the last one both branches are read at one slot, since
    after each scan the work is per slot. The backward block is causal over the flipped input,
    so its output at the flipped readout slot is one readout of its scan (its state there has
    read the flipped slots before it: the original slots from length − 1 on, padding included
    for ``full``). Dropout masks are those of the full computation.
    """

    def _build_pairs(
        self, params: MambaRecParams, n_pairs: int, backward: bool, flip_mode: FlipMode
    ) -> None:
        d = params.hidden_size
        self.flip_mode = flip_mode
        self.backward_branch = backward
        self.norms_forward = nn.ModuleList(nn.LayerNorm(d) for _ in range(n_pairs))
        if backward:
            self.norms_backward = nn.ModuleList(nn.LayerNorm(d) for _ in range(n_pairs))
        self.mamba_forwards = nn.ModuleList(params.mamba() for _ in range(n_pairs))
        if backward:
            self.mamba_backwards = nn.ModuleList(params.mamba() for _ in range(n_pairs))
        self.dropout = Dropout(params.dropout_prob)

    def _run_pairs(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        for i in range(len(self.mamba_forwards)):
            x = self._pair(i, x, lengths)
        return x

    def _pair(self, i: int, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        forward = self.norms_forward[i](self.dropout(self.mamba_forwards[i](x)) + x)
        if not self.backward_branch:
            return forward
        reverse = self.mamba_backwards[i](flip(x, lengths, self.flip_mode))
        backward = self.dropout(flip(reverse, lengths, self.flip_mode))
        return forward + self.norms_backward[i](backward + x)

    def _readout_pairs(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``_run_pairs`` at slot length − 1 only: (B, L, d) → (B, d)."""
        last = len(self.mamba_forwards) - 1
        for i in range(last):
            x = self._pair(i, x, lengths)
        at, length = lengths - 1, x.shape[1]
        x_at = gather_slots(x, at)
        mixed = self.dropout.at_slots(self.mamba_forwards[last].readout(x, at), length, at)
        forward = self.norms_forward[last](mixed + x_at)
        if not self.backward_branch:
            return forward
        reverse_at = flipped_slot(at, lengths, length, self.flip_mode)
        reverse = self.mamba_backwards[last].readout(flip(x, lengths, self.flip_mode), reverse_at)
        backward = self.dropout.at_slots(reverse, length, at)
        return forward + self.norms_backward[last](backward + x_at)
