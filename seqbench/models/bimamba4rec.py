"""Bi-Mamba4Rec, the EchoMamba4Rec paper's bidirectional baseline (model-reference §4, last
paragraph): paper-described, code-unverified.

No code for it exists anywhere; the EchoMamba4Rec paper (arXiv 2406.02638, §4.1 and Fig. 3)
only names it and draws it after Bi-Mamba4TS (Liang et al., arXiv 2404.15772). This is the
reading consistent with the EchoMamba4Rec repository: Mamba4Rec's skeleton with each
``MambaLayer`` replaced by EchoMamba4Rec's bidirectional pair (forward and flipped backward Mamba,
each with residual + LayerNorm, summed) followed by Mamba4Rec's feed-forward network; no FFT
filter, no GLU.
"""

from __future__ import annotations

import torch
from pydantic import Field

from seqbench.models.layers.bidirectional import BidirectionalPairs, FlipMode
from seqbench.models.layers.ffn import FeedForward
from seqbench.models.mamba_family import MambaRecommender, MambaRecParams
from seqbench.models.registry import FULL, register_model

REFERENCE = (
    "no public code; EchoMamba4Rec paper (arXiv 2406.02638) §4.1, Fig. 3 after Bi-Mamba4TS "
    "(arXiv 2404.15772); blocks from wyd0042/EchoMamba4Rec and chengkai-liu/Mamba4Rec"
)


class BiMamba4RecParams(MambaRecParams):
    flip: FlipMode = Field(
        "full",
        description="'full' reverses all L slots (as EchoMamba4Rec); 'per_length' only "
        "the real items.",
    )


class BiMambaFFNLayer(BidirectionalPairs):
    """One forward/backward pair (summed), then the position-wise feed-forward network."""

    def __init__(self, params: BiMamba4RecParams) -> None:
        super().__init__()
        self._build_pairs(params, 1, True, params.flip)
        self.ffn = FeedForward(params.hidden_size, 4 * params.hidden_size, params.dropout_prob)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.ffn(self._run_pairs(x, lengths))

    def readout(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``forward`` at slot length − 1: the pair's readout, then the FFN at that slot."""
        return self.ffn.at_slots(self._readout_pairs(x, lengths), x.shape[1], lengths - 1)


@register_model(
    "bimamba4rec",
    params=BiMamba4RecParams,
    summary="Bidirectional Mamba pair + feed-forward network (paper-described, no public code).",
    causal=False,
    all_positions=True,
    reference=REFERENCE,
    kernels=True,
)
class BiMamba4Rec(MambaRecommender):
    """E → Dropout → LN → num_layers × [bidirectional pair → FFN] → slot length − 1 → tied CE.

    Paper-described, code-unverified: the structure is our reading (module docstring). Not
    causal (the backward branch reads later slots): last-position objective only. ``forward``
    computes the last layer at slot length − 1 only (both blocks read out at one slot, then the
    FFN there), as EchoMamba4Rec does.
    """

    def __init__(
        self, params: BiMamba4RecParams, *, n_items: int, max_len: int, ablation: str = FULL
    ) -> None:
        super().__init__()
        self._build(params, n_items, max_len, ablation, lambda: BiMambaFFNLayer(params))
