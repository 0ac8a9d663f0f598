"""The Mamba block's causal depthwise convolution, batch-first, on the CPU's terms.

``causal_conv1d(x, weight, bias, silu)`` equals ``causal_conv1d_ref`` of Dao-AILab/causal-conv1d
(model-reference §2.2 step 2) on a batch-first input: with K taps,
out[b, t, c] = bias[c] + Σ_k weight[c, 0, k]·x[b, t − (K − 1) + k, c], zero history before
slot 0, optionally followed by SiLU (``activation="silu"`` of the kernel).

It is a custom autograd function over chunks of batch rows (about ``CHUNK_BYTES`` per (rows, L,
C) tensor): each tap is one multiply-add of shifted slices inside the CPU caches, and the
backward pass recomputes the pre-activation it needs instead of keeping it. The same numbers as
``F.conv1d`` with left padding K − 1 within float rounding, without oneDNN's depthwise
convolution, whose backward pass costs more than the rest of a Mamba block's arithmetic on a
2-core CPU.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

#: About the size of one (rows, L, C) tensor of a batch chunk.
CHUNK_BYTES = 2**20


def causal_conv1d(x: Tensor, weight: Tensor, bias: Tensor | None, silu: bool = False) -> Tensor:
    """x (B, L, C), weight (C, 1, K) (``nn.Conv1d``'s, groups = C), bias (C,) or None →
    (B, L, C), SiLU applied if ``silu``."""
    channels = x.shape[-1]
    if x.dim() != 3 or weight.shape[:2] != (channels, 1):
        raise ValueError(
            f"x must be (B, L, C) and weight (C, 1, K); got {tuple(x.shape)}, {tuple(weight.shape)}"
        )
    if bias is None:
        bias = x.new_zeros(channels)
    return _CausalConv.apply(x.contiguous(), weight, bias, silu)


def _rows(x: Tensor) -> list[slice]:
    batch, length, channels = x.shape
    rows = max(1, CHUNK_BYTES // (length * channels * x.element_size()))
    return [slice(lo, min(lo + rows, batch)) for lo in range(0, batch, rows)]


def _conv(x: Tensor, taps: Tensor, bias: Tensor) -> Tensor:
    """bias + Σ_k taps[k]·x shifted right by K − 1 − k slots; x (rows, L, C), taps (K, C)."""
    width, length = taps.shape[0], x.shape[1]
    out = torch.addcmul(bias, x, taps[width - 1])
    for shift in range(1, min(width, length + 1)):
        out[:, shift:].addcmul_(x[:, : length - shift], taps[width - 1 - shift])
    return out


class _CausalConv(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx,
        x: Tensor,
        weight: Tensor,
        bias: Tensor,
        silu: bool,
    ) -> Tensor:
        taps = weight[:, 0, :].T.contiguous()  # (K, C)
        out = torch.empty_like(x)
        for c in _rows(x):
            pre = _conv(x[c], taps, bias)
            out[c] = F.silu(pre) if silu else pre
        ctx.save_for_backward(x, weight, bias)
        ctx.silu = silu  # type: ignore[attr-defined]
        return out

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, grad_out: Tensor
    ) -> tuple[Tensor | None, ...]:
        x, weight, bias = ctx.saved_tensors  # type: ignore[attr-defined]
        taps = weight[:, 0, :].T.contiguous()
        width, length = taps.shape[0], x.shape[1]
        grad_out = grad_out.contiguous()
        grad_x = torch.empty_like(x)
        grad_taps = torch.zeros_like(taps)
        grad_bias = torch.zeros_like(bias)
        for c in _rows(x):
            g, xc = grad_out[c], x[c]
            if ctx.silu:  # type: ignore[attr-defined]  # through SiLU, at the recomputed input
                g = torch.ops.aten.silu_backward(g, _conv(xc, taps, bias))
            gx = g * taps[width - 1]
            grad_taps[width - 1] += (g * xc).sum((0, 1))
            for shift in range(1, min(width, length + 1)):
                tap = width - 1 - shift
                gx[:, : length - shift].addcmul_(g[:, shift:], taps[tap])
                grad_taps[tap] += (g[:, shift:] * xc[:, : length - shift]).sum((0, 1))
            grad_x[c] = gx
            grad_bias += g.sum((0, 1))
        return grad_x, grad_taps.T[:, None, :].contiguous(), grad_bias, None
