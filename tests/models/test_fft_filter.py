"""The FFT filter layer: a per-channel circular convolution, checked against a naive loop.

Derivation of the kernel. With ``norm="ortho"`` both ways, rfft gives X[k] = L^(−1/2) Σ_t x[t]
e^(−2πikt/L) for k = 0..L//2, and irfft returns y[t] = L^(−1/2) Σ_{k=0}^{L−1} Ỹ[k] e^(2πikt/L),
where Ỹ is the Hermitian extension of Y = X ⊙ W (Ỹ[L − k] = conj Ỹ[k]; irfft keeps only the
real part of the k = 0 bin and, for even L, of the k = L/2 bin). The two L^(−1/2) make the
unnormalised DFT pair, so DFT(y) = DFT(x) ⊙ W̃ and, by the convolution theorem, y = x ⊛ h with
h = IDFT(W̃): per channel c,

    h[s] = (1/L) · (Re W[0] + Σ_{0<k<L/2} 2 (Re W[k] cos(2πks/L) − Im W[k] sin(2πks/L))
                    + [L even] Re W[L/2] · (−1)^s),

which is ``torch.fft.irfft(W, n=L)`` (default normalisation), and y[t] = Σ_s h[s] x[(t − s) mod L].
"""

from __future__ import annotations

import math

import pytest
import torch

from seqbench.models.layers.fft_filter import FilterLayer, circular_filter


def naive_kernel(weight: torch.Tensor, length: int) -> torch.Tensor:
    """h (L, d) from the complex weight (1, L//2 + 1, d, 2) by the formula above, term by term."""
    w = weight[0].double()
    h = torch.zeros(length, w.shape[1], dtype=torch.float64)
    for s in range(length):
        for k in range(length // 2 + 1):
            if k == 0:
                h[s] += w[0, :, 0]
            elif 2 * k == length:  # the Nyquist bin of an even length
                h[s] += w[k, :, 0] * (-1) ** s
            else:
                angle = 2 * math.pi * k * s / length
                h[s] += 2 * (w[k, :, 0] * math.cos(angle) - w[k, :, 1] * math.sin(angle))
    return h / length


def naive_circular_convolution(x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """y[b, t, c] = Σ_s h[s, c] · x[b, (t − s) mod L, c], by explicit loops."""
    batch, length, _ = x.shape
    y = torch.zeros_like(x)
    for b in range(batch):
        for t in range(length):
            for s in range(length):
                y[b, t] += h[s] * x[b, (t - s) % length]
    return y


@pytest.mark.parametrize("length", [7, 8])
def test_filter_is_a_circular_convolution_with_kernel_irfft_of_the_weight(length: int) -> None:
    g = torch.Generator().manual_seed(length)
    d = 5
    x = torch.randn(3, length, d, generator=g, dtype=torch.float64)
    weight = torch.randn(1, length // 2 + 1, d, 2, generator=g, dtype=torch.float64)
    h = naive_kernel(weight, length)
    # the derivation: the kernel is irfft of the weight (default normalisation) ...
    torch.testing.assert_close(
        h, torch.fft.irfft(torch.view_as_complex(weight[0]), n=length, dim=0), rtol=0, atol=1e-14
    )
    # ... and the ortho rfft → ⊙ W → ortho irfft is the circular convolution with it
    expected = naive_circular_convolution(x, h)
    torch.testing.assert_close(circular_filter(x, weight), expected, rtol=0, atol=1e-12)


def test_imaginary_parts_of_the_dc_and_nyquist_bins_have_no_effect() -> None:
    """Why the naive kernel reads only Re W at k = 0 and k = L/2 (even L)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 8, 3, generator=g, dtype=torch.float64)
    weight = torch.randn(1, 5, 3, 2, generator=g, dtype=torch.float64)
    changed = weight.clone()
    changed[0, 0, :, 1] += 1.0
    changed[0, 4, :, 1] -= 2.0
    torch.testing.assert_close(circular_filter(x, changed), circular_filter(x, weight))


def test_filter_layer_is_layernorm_of_filtered_plus_input_in_eval() -> None:
    torch.manual_seed(0)
    layer = FilterLayer(hidden_size=6, max_len=9, dropout_prob=0.5, layer_norm_eps=1e-12).eval()
    x = torch.randn(4, 9, 6)
    filtered = circular_filter(x, layer.complex_weight)
    expected = torch.nn.functional.layer_norm(filtered + x, (6,), eps=1e-12)  # LN starts (1, 0)
    torch.testing.assert_close(layer(x), expected)


def test_parameters_their_names_shapes_and_initial_scale() -> None:
    torch.manual_seed(0)
    layer = FilterLayer(hidden_size=64, max_len=50, dropout_prob=0.2, layer_norm_eps=1e-12)
    shapes = {n: tuple(p.shape) for n, p in layer.named_parameters()}
    assert shapes == {
        "complex_weight": (1, 26, 64, 2),  # 50 // 2 + 1 frequencies, (real, imaginary)
        "LayerNorm.weight": (64,),
        "LayerNorm.bias": (64,),
    }
    assert layer.complex_weight.std().item() == pytest.approx(0.02, rel=0.05)  # randn · 0.02
    assert abs(layer.complex_weight.mean().item()) < 2e-3
    assert layer.LayerNorm.eps == 1e-12 and layer.out_dropout.p == 0.2


def test_the_initialiser_leaves_the_complex_weight_alone() -> None:
    from seqbench.models.layers.init import recbole_normal_init

    torch.manual_seed(0)
    layer = FilterLayer(hidden_size=8, max_len=10, dropout_prob=0.0, layer_norm_eps=1e-12)
    before = layer.complex_weight.detach().clone()
    layer.apply(lambda m: recbole_normal_init(m, std=1.0))
    assert torch.equal(layer.complex_weight, before)


def test_gradients_flow_to_the_weight_the_input_and_the_layernorm() -> None:
    torch.manual_seed(0)
    layer = FilterLayer(hidden_size=4, max_len=6, dropout_prob=0.1, layer_norm_eps=1e-12)
    x = torch.randn(2, 6, 4, requires_grad=True)
    (layer(x) * torch.randn(2, 6, 4)).sum().backward()
    for grad in (x.grad, layer.complex_weight.grad, layer.LayerNorm.weight.grad):
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_the_filter_mixes_every_slot_circularly() -> None:
    """Not causal: the first slot's output depends on the last slot's input (wrap-around)."""
    torch.manual_seed(0)
    layer = FilterLayer(hidden_size=4, max_len=6, dropout_prob=0.0, layer_norm_eps=1e-12)
    x = torch.randn(1, 6, 4)
    changed = x.clone()
    changed[0, -1] += 1.0
    with torch.no_grad():
        assert (layer(changed)[0, 0] - layer(x)[0, 0]).abs().max() > 1e-4


@pytest.mark.parametrize("length", [9, 11, 5])
def test_a_sequence_length_other_than_max_len_is_a_clear_error(length: int) -> None:
    layer = FilterLayer(hidden_size=4, max_len=10, dropout_prob=0.0, layer_norm_eps=1e-12)
    with pytest.raises(ValueError, match=r"max_len = 10 slots .* pad every batch to exactly"):
        layer(torch.randn(2, length, 4))


def test_circular_filter_rejects_a_weight_of_another_length() -> None:
    with pytest.raises(ValueError, match="a filter of 6 frequencies takes sequences of 10 or 11"):
        circular_filter(torch.randn(1, 8, 3), torch.randn(1, 6, 3, 2))
