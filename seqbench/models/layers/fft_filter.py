"""FMLP-Rec's learnable frequency-domain filter, shared by FMLP-Rec and EchoMamba4Rec.

Follows ``FilterLayer`` in ``modules.py`` of Woeee/FMLP-Rec (commit 51acc8c), which EchoMamba4Rec
(wyd0042/EchoMamba4Rec, ``EchoMamba4Rec_submitted/model.py``) uses unchanged; model-reference §6.5
and §4 step 1. Zhou et al., "Filter-enhanced MLP is All You Need for Sequential Recommendation",
WWW 2022.

For an input X (B, L, d) and a complex weight W ((L//2 + 1) frequencies × d channels)::

    X̃ = irfft(rfft(X, dim=1, norm="ortho") ⊙ W, n=L, dim=1, norm="ortho")
    out = LayerNorm(Dropout(X̃) + X)

The product in the frequency domain is a per-channel CIRCULAR convolution over all L slots:
X̃[t, c] = Σ_s h[s, c] · X[(t − s) mod L, c] with the kernel h = irfft(W, n=L) (the default,
unscaled-forward normalisation: the two ``ortho`` factors 1/√L · √L cancel). It reads every slot,
padding included, and wraps around, so it is not causal (model-reference §7.3). Since W has
L//2 + 1 rows, the sequence length is tied to the ``max_len`` the layer was built for.
"""

from __future__ import annotations

import torch
from torch import nn

from seqbench.models.layers.dropout import Dropout


def circular_filter(x: torch.Tensor, complex_weight: torch.Tensor) -> torch.Tensor:
    """irfft(rfft(x) ⊙ W) over the sequence axis (dim 1), both transforms ``norm="ortho"``.

    ``x`` is (B, L, d); ``complex_weight`` is (1, L//2 + 1, d, 2), real and imaginary parts in
    the last axis (``torch.view_as_complex``). The result is x's per-channel circular
    convolution with the kernel ``torch.fft.irfft(W, n=L, dim=1)``, shape (B, L, d).
    """
    length = x.shape[1]
    if complex_weight.shape[1] != length // 2 + 1:
        raise ValueError(
            f"a filter of {complex_weight.shape[1]} frequencies takes sequences of "
            f"{2 * complex_weight.shape[1] - 2} or {2 * complex_weight.shape[1] - 1} slots, "
            f"got {length}"
        )
    spectrum = torch.fft.rfft(x, dim=1, norm="ortho")
    spectrum = spectrum * torch.view_as_complex(complex_weight)
    return torch.fft.irfft(spectrum, n=length, dim=1, norm="ortho")


class FilterLayer(nn.Module):
    """LayerNorm(Dropout(circular_filter(x, W)) + x), W learnable (FMLP-Rec's ``FilterLayer``).

    Parameter names are the official ones (``complex_weight``, ``LayerNorm.weight``,
    ``LayerNorm.bias``) and so is the creation order (W drawn first, as ``randn · 0.02`` for the
    real and the imaginary parts). W is a bare parameter of this module, so RecBole-style
    ``_init_weights`` (Linear / Embedding / LayerNorm only, see
    :func:`seqbench.models.layers.init.recbole_normal_init`) leaves it as drawn.

    Deviations from the official code, neither changing a number beyond float rounding: the
    official TF-style LayerNorm ((x − mean) / √(biased variance + ε)) is ``nn.LayerNorm`` (the same
    formula), and dropout draws its mask from other random numbers than ``nn.Dropout``
    (:mod:`seqbench.models.layers.dropout`).
    """

    def __init__(
        self, hidden_size: int, max_len: int, dropout_prob: float, layer_norm_eps: float
    ) -> None:
        super().__init__()
        self.max_len = max_len
        self.complex_weight = nn.Parameter(
            torch.randn(1, max_len // 2 + 1, hidden_size, 2, dtype=torch.float32) * 0.02
        )
        self.out_dropout = Dropout(dropout_prob)
        self.LayerNorm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, max_len, d) → (B, max_len, d); any other length is an error (W is tied to it)."""
        if x.dim() != 3 or x.shape[1] != self.max_len:
            raise ValueError(
                f"FilterLayer was built for sequences of max_len = {self.max_len} slots (its "
                f"complex weight has {self.max_len // 2 + 1} frequencies); got an input of "
                f"shape {tuple(x.shape)}: pad every batch to exactly max_len"
            )
        return self.LayerNorm(self.out_dropout(circular_filter(x, self.complex_weight)) + x)
