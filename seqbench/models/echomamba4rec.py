"""EchoMamba4Rec as its official code builds it, with its component ablations (model-reference §4,
§7.2, §9.2).

Follows wyd0042/EchoMamba4Rec ``EchoMamba4Rec_submitted/model.py`` (classes ``EchoMamba4Rec``,
``BiMambaLayer``, ``FilterLayer``, ``GLU``; config.yaml) and Wang et al., "EchoMamba4Rec:
Harmonizing Bidirectional State Space Models with Spectral Filtering for Advanced Sequential
Recommendation", arXiv 2406.02638 (eqs. 5, 7–9 filter, 10–18 bidirectional block, 19 GLU, 20
prediction).
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from seqbench.models.layers.bidirectional import BidirectionalPairs, FlipMode
from seqbench.models.layers.fft_filter import FilterLayer
from seqbench.models.layers.glu import GLU
from seqbench.models.mamba_family import MambaRecommender, MambaRecParams
from seqbench.models.registry import FULL, register_model

REFERENCE = (
    "wyd0042/EchoMamba4Rec EchoMamba4Rec_submitted/model.py (EchoMamba4Rec, BiMambaLayer, "
    "FilterLayer, GLU); Wang et al., arXiv 2406.02638"
)

#: Parameters of the official ``MultiQueryTransformerBlock`` per layer at d = 64 (nhead 4,
#: feed-forward 4d), built but never called, hence not built here: MHA 3·64·64 + 192 + 64·64 +
#: 64 = 16,640; its GLU 64·128 + 128 + 64·64 + 64 + 128 = 12,608; linear1 64·256 + 256 = 16,640;
#: linear2 256·64 + 64 = 16,448; norm1 + norm2 256. tests/models/test_mamba_models.py
#: (``test_the_dead_attention_block_has_62592_parameters``) rebuilds the block from torch modules
#: and checks the count.
DEAD_BLOCK_PARAMETERS_D64 = 62_592

ABLATIONS = {
    "no_filter": "no learnable FFT filter before the Mamba pair",
    "forward_only": "no backward Mamba branch (x = forward branch)",
    "no_glu": "no GLU after the Mamba pair",
}


class EchoMamba4RecParams(MambaRecParams):
    """Official config.yaml values; ``flip`` and ``layers`` choose between readings."""

    flip: FlipMode = Field(
        "full",
        description="Backward branch input: 'full' reverses all L slots as the official code "
        "(padding first); 'per_length' reverses only the real items (§7.2).",
    )
    layers: Literal["nested", "flat"] = Field(
        "nested",
        description="'nested' = official: num_layers BiMambaLayers, each with num_layers "
        "forward/backward pairs (num_layers² pairs); 'flat': one pair per layer.",
    )


class BiMambaLayer(BidirectionalPairs):
    """FilterLayer → forward/backward Mamba pairs (summed) → GLU, each part switchable (None
    when its ablation removes it)."""

    def __init__(self, params: EchoMamba4RecParams, max_len: int, ablation: str) -> None:
        super().__init__()
        d = params.hidden_size
        pairs = params.num_layers if params.layers == "nested" else 1
        # official order: filter, norms, blocks, dropout, GLU
        self.filter_layer: FilterLayer | None = None
        if ablation != "no_filter":
            self.filter_layer = FilterLayer(d, max_len, params.dropout_prob, 1e-12)
        self._build_pairs(params, pairs, ablation != "forward_only", params.flip)
        self.glu: GLU | None = GLU(d, params.dropout_prob) if ablation != "no_glu" else None

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if self.filter_layer is not None:
            x = self.filter_layer(x)
        x = self._run_pairs(x, lengths)
        return x if self.glu is None else self.glu(x)

    def readout(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``forward`` at slot length − 1: the filter at every slot (it mixes them all), the
        pairs' readout, the GLU at that slot."""
        length = x.shape[1]
        if self.filter_layer is not None:
            x = self.filter_layer(x)
        x_at = self._readout_pairs(x, lengths)
        return x_at if self.glu is None else self.glu.at_slots(x_at, length, lengths - 1)


@register_model(
    "echomamba4rec",
    params=EchoMamba4RecParams,
    summary="FFT filter + bidirectional Mamba + GLU (EchoMamba4Rec, official code).",
    ablations=ABLATIONS,
    disables={"forward_only": ("flip",)},  # the flip feeds the backward branch only
    causal=False,
    all_positions=True,
    reference=REFERENCE,
    kernels=True,
)
class EchoMamba4Rec(MambaRecommender):
    """E[items] → Dropout → LN(ε 1e-12) → num_layers × BiMambaLayer → slot length − 1 → tied CE.

    BiMambaLayer(x) (model-reference §4): x ← LN(Dropout(irfft(rfft(x)⊙W)) + x) over the padded
    length (W has max_len//2 + 1 rows, so every batch is padded to max_len); then per pair
    f = LN_f(Dropout(Mamba_f(x)) + x), b = LN_b(Dropout(flip(Mamba_b(flip(x)))) + x), x = f + b;
    then x ← LN(Dropout(fc2(v ⊙ σ(g)) + x)) with [v; g] = fc1(x).

    Not causal in any ablation: the filter mixes all slots circularly and the backward branch
    reads every later slot, so it trains only on the last-position objective, where the target
    is never an input (§7.2–§7.3). Both read the padding by design, so the padding row of the
    table is what RecBole makes it: a random vector that the input side never updates.

    State-dict keys are the official ones (``mamba_layers.{i}.filter_layer.complex_weight``,
    ``.mamba_forwards.{j}.*``, ``.mamba_backwards.{j}.*``, ``.norms_forward.{j}.*``,
    ``.norms_backward.{j}.*``, ``.glu.{fc1,fc2,LayerNorm}.*``), minus the dead block.

    ``forward`` computes the last layer's work after the filter at slot length − 1 only: both
    Mamba blocks are read out at one slot (the backward one at the flipped slot, whose state has
    read every later slot and, for ``full``, the padding), the norms and the GLU there, with
    the dropout masks of the full computation; the numbers of ``forward_all`` at that slot
    within float rounding.

    Deliberate deviations:

    - The official ``MultiQueryTransformerBlock`` (an ``nn.MultiheadAttention`` with its own GLU,
      two unused Linears and two LayerNorms) is constructed but never called; it is not built
      here. That removes 62,592 parameters per layer at d = 64 from the official count
      (:data:`DEAD_BLOCK_PARAMETERS_D64`) and changes no output, but it also means that one
      seed cannot give the official initial weights: constructing that block draws random
      numbers (its own initialisation) before RecBole's re-initialisation of every Linear and
      Embedding, so all the re-drawn weights come from another point of the random stream.
      Initial weights are equal in distribution, not value.
    - ``layers = "flat"`` and ``flip = "per_length"`` are readings the code does not have
      (the official nesting only matters for num_layers > 1; see the parameters).
    - Ablations ``no_filter``, ``forward_only``, ``no_glu`` remove the part (and its parameters).
    - Dropout masks come from another random stream than ``nn.Dropout``'s (same distribution,
      :mod:`seqbench.models.layers.dropout`). The official BPR branch is ``[train] loss =
      "bpr"`` (uniform negatives, :mod:`seqbench.losses`).
    """

    def __init__(
        self, params: EchoMamba4RecParams, *, n_items: int, max_len: int, ablation: str = FULL
    ) -> None:
        super().__init__()
        self._build(
            params, n_items, max_len, ablation, lambda: BiMambaLayer(params, max_len, ablation)
        )
