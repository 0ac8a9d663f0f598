"""Dropout with the same distribution as ``nn.Dropout`` and a faster mask on the CPU.

PyTorch's CPU dropout draws its mask with ``bernoulli_``, which is several times slower than
``torch.rand`` (about 110 ms against 40 ms forward for a (2048, 50, 64) tensor on a 2-core CPU),
and dropout is a large share of a small recommender's training step there. On the CPU the mask
is therefore ``rand ≥ p``; every element is kept with probability 1 − p and scaled by
1 / (1 − p), as ``nn.Dropout`` does, from a different random stream. On other devices it is
``F.dropout`` (a fused kernel).

:meth:`Dropout.at_slots` is the dropout of a (B, L, d) tensor of which only one slot per row is
computed (a readout): it draws the random numbers of the whole (B, L, d) mask, exactly as the
full dropout would, and applies the rows at those slots. The masks, and every later random
number, are then the ones of computing every slot and reading one, at the cost of the random
numbers alone.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from seqbench.models.layers.slots import gather_slots


class _MaskedScale(torch.autograd.Function):
    """x · m with m = 1[rand ≥ p] / (1 − p), the mask kept for the backward pass."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, p: float) -> torch.Tensor:
        keep = torch.rand(x.shape, device=x.device) >= p
        scale = keep.to(x.dtype).mul_(1.0 / (1.0 - p))
        ctx.save_for_backward(scale)
        return x * scale

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (scale,) = ctx.saved_tensors
        return grad * scale, None


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """``F.dropout(x, p, training)`` in distribution; see the module docstring."""
    if not training or p == 0.0:
        return x
    if p == 1.0 or x.device.type != "cpu":
        return F.dropout(x, p, training=True)
    return _MaskedScale.apply(x, p)


def dropout_at_slots(
    x: torch.Tensor, p: float, training: bool, length: int, at: torch.Tensor
) -> torch.Tensor:
    """``gather_slots(dropout(full, p, training), at)`` given only x = the rows (B, d) of a
    (B, ``length``, d) tensor ``full`` at slots ``at`` (B,): the same random numbers are drawn
    and the same mask rows applied (on the CPU the mask of :func:`dropout`; elsewhere the mask
    ``F.dropout`` draws for a tensor of that shape)."""
    if not training or p == 0.0:
        return x
    shape = (x.shape[0], length, x.shape[-1])
    if p == 1.0 or x.device.type != "cpu":
        return x * gather_slots(F.dropout(x.new_ones(shape), p, training=True), at)
    keep = gather_slots(torch.rand(shape, device=x.device), at) >= p
    return x * keep.to(x.dtype).mul_(1.0 / (1.0 - p))


class Dropout(nn.Dropout):
    """``nn.Dropout`` (same attribute ``p``, same distribution) using :func:`dropout`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)

    def at_slots(self, x: torch.Tensor, length: int, at: torch.Tensor) -> torch.Tensor:
        """This dropout of a (B, ``length``, d) tensor, given only its rows x (B, d) at slots
        ``at`` (B,): see :func:`dropout_at_slots`."""
        return dropout_at_slots(x, self.p, self.training, length, at)
