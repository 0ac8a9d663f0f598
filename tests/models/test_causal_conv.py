"""The Mamba block's causal depthwise convolution against ``F.conv1d`` with left padding (the
reference ``causal_conv1d_ref``), values and gradients, with and without its SiLU."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from seqbench.models.layers import causal_conv
from seqbench.models.layers.causal_conv import causal_conv1d


def reference(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, silu: bool
) -> torch.Tensor:
    width, length = weight.shape[-1], x.shape[1]
    out = F.conv1d(x.transpose(1, 2), weight, bias, padding=width - 1, groups=x.shape[-1])
    out = out[..., :length].transpose(1, 2)
    return F.silu(out) if silu else out


@pytest.mark.parametrize("chunk_bytes", [causal_conv.CHUNK_BYTES, 1], ids=["chunks", "one_row"])
@pytest.mark.parametrize("silu", [False, True])
@pytest.mark.parametrize("shape", [(3, 7, 5, 4), (2, 2, 3, 4), (4, 11, 6, 2), (1, 5, 2, 1)])
def test_equals_a_left_padded_conv1d(
    shape: tuple[int, int, int, int], silu: bool, chunk_bytes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(causal_conv, "CHUNK_BYTES", chunk_bytes)
    batch, length, channels, width = shape
    g = torch.Generator().manual_seed(sum(shape))
    x, weight, bias = (
        torch.randn(*s, generator=g, dtype=torch.float64).requires_grad_()
        for s in ((batch, length, channels), (channels, 1, width), (channels,))
    )
    ours, ref = causal_conv1d(x, weight, bias, silu), reference(x, weight, bias, silu)
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)
    cotangent = torch.randn(ref.shape, generator=g, dtype=torch.float64)
    for mine, theirs in zip(
        torch.autograd.grad((ours * cotangent).sum(), [x, weight, bias]),
        torch.autograd.grad((ref * cotangent).sum(), [x, weight, bias]),
        strict=True,
    ):
        torch.testing.assert_close(mine, theirs, rtol=1e-12, atol=1e-12)


def test_causal_and_without_bias() -> None:
    x = torch.randn(2, 9, 4)
    weight = torch.randn(4, 1, 4)
    out = causal_conv1d(x, weight, None)
    changed = x.clone()
    changed[:, 5:] += 1.0
    torch.testing.assert_close(
        causal_conv1d(changed, weight, None)[:, :5], out[:, :5], rtol=0, atol=0
    )
    torch.testing.assert_close(out, reference(x, weight, torch.zeros(4), False))
    with pytest.raises(ValueError, match=r"\(B, L, C\) and weight \(C, 1, K\)"):
        causal_conv1d(x, weight[:2], None)
