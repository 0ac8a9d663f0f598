"""FMLP-Rec run under seqbench's common (RecBole) protocol (model-reference §6.5, §7).

Follows ``models.py`` (``FMLPRecModel``) and ``modules.py`` (``FilterLayer``, ``Intermediate``,
``Layer``, ``Encoder``) of the official Woeee/FMLP-Rec (commit 51acc8c); defaults from its
``main.py``. Zhou et al., "Filter-enhanced MLP is All You Need for Sequential Recommendation",
WWW 2022. FMLP-Rec is not part of RecBole.
"""

from __future__ import annotations

import copy
from functools import partial
from typing import Literal

import torch
from pydantic import Field
from torch import nn

from seqbench.models.base import SequentialRecommender, gather_last
from seqbench.models.layers.dropout import Dropout
from seqbench.models.layers.fft_filter import FilterLayer
from seqbench.models.layers.init import recbole_normal_init
from seqbench.models.layers.transformer import FeedForward
from seqbench.models.registry import FULL, ModelParams, register_model

REFERENCE = "Woeee/FMLP-Rec @51acc8c models.py + modules.py; Zhou et al., WWW 2022"

#: The official code hard-codes ε = 1e-12 in every (TF-style) LayerNorm.
LAYER_NORM_EPS = 1e-12


class FMLPRecParams(ModelParams):
    """The official argument names and defaults (main.py), so configs transfer."""

    hidden_size: int = Field(64, ge=1, description="Item, position and hidden dimension d.")
    num_hidden_layers: int = Field(2, ge=1, description="Filter-enhanced blocks.")
    hidden_dropout_prob: float = Field(
        0.5, ge=0.0, lt=1.0, description="Dropout on embeddings and after each sub-layer."
    )
    hidden_act: Literal["gelu", "relu", "swish"] = Field(
        "gelu", description="Feed-forward activation (gelu = exact erf GELU)."
    )
    initializer_range: float = Field(
        0.02, gt=0.0, description="Std of the normal init of every Linear and Embedding weight."
    )


class FMLPLayer(nn.Module):
    """One filter-enhanced block: ``filterlayer`` then ``intermediate`` (official ``Layer``)."""

    def __init__(self, params: FMLPRecParams, max_len: int) -> None:
        super().__init__()
        d = params.hidden_size
        self.filterlayer = FilterLayer(d, max_len, params.hidden_dropout_prob, LAYER_NORM_EPS)
        # The official Intermediate: dense_1 (d → 4d) → act → dense_2 → dropout → LN(· + input),
        # the same module (names, order, formula) as the transformer's FeedForward.
        self.intermediate = FeedForward(
            d, 4 * d, params.hidden_dropout_prob, params.hidden_act, LAYER_NORM_EPS
        )

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.intermediate(self.filterlayer(hidden))


class FMLPEncoder(nn.Module):
    """``num_hidden_layers`` deep copies of one :class:`FMLPLayer` (official ``Encoder``)."""

    def __init__(self, params: FMLPRecParams, max_len: int) -> None:
        super().__init__()
        layer = FMLPLayer(params, max_len)
        self.layer = nn.ModuleList(copy.deepcopy(layer) for _ in range(params.num_hidden_layers))

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """(B, L, d) → the last block's output at every slot, (B, L, d)."""
        for layer in self.layer:
            hidden = layer(hidden)
        return hidden

    def readout(self, hidden: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The last block's output at slot length − 1 only, (B, d): its filter needs every
        slot, its feed-forward sub-layer (slot-wise) runs at the readout slot alone."""
        for layer in self.layer[:-1]:
            hidden = layer(hidden)
        last = self.layer[-1]
        return last.intermediate(gather_last(last.filterlayer(hidden), lengths))


@register_model(
    "fmlprec",
    params=FMLPRecParams,
    summary="All-MLP encoder with learnable FFT filters over the sequence (FMLP-Rec), "
    "under the common protocol.",
    causal=False,
    all_positions=False,
    reference=REFERENCE,
)
class FMLPRec(SequentialRecommender):
    """E[items] + P[0..L−1] → LayerNorm → Dropout → num_hidden_layers × [FilterLayer (learnable
    circular filter over all L slots, :mod:`seqbench.models.layers.fft_filter`) → feed-forward
    (d → 4d → d)] → slot length − 1 → dot product with the item table (tied, no bias).

    Parameter names follow the official code (``item_embeddings``, ``position_embeddings``,
    ``LayerNorm``, ``item_encoder.layer.{i}.filterlayer.{complex_weight, LayerNorm.*}``,
    ``item_encoder.layer.{i}.intermediate.{dense_1, dense_2, LayerNorm}.*``), so an official
    ``FMLPRecModel`` state dict loads unchanged; built after the same ``torch.manual_seed`` the
    initial weights equal the official ones (benchmarks/recbole_baseline_parity.py). As in the
    official code, the layers are deep copies of one block, so every layer starts with the SAME
    ``complex_weight`` (the init re-draws the Linear weights per layer, never the filters).

    Deliberate deviation — the protocol. The official code left-pads (the newest item at slot
    L − 1, read out there), trains with binary CE against ONE random negative at the last slot,
    and evaluates by ranking the target among 99 sampled negatives (or, with ``--full_sort``,
    against all items with the history scored 0). Here FMLP-Rec runs under seqbench's common
    protocol, the one of the Mamba papers: right padding (slot j holds the j-th oldest of the
    last L items, so position row j belongs to the oldest items and the L − length padding slots
    come after the history), readout at slot length − 1, CE over the whole item table (padding
    row included, model-reference §1.5) and full ranking. Numbers are therefore not comparable
    to the paper's. The filter is circular over all L slots, so the padding slots (the frozen,
    random padding row plus its position rows) feed every output, as in the official code
    (where they precede the history instead).

    Other deviations, none changing a number beyond float rounding: the official TF-style
    LayerNorm, (x − mean)/√(mean((x − mean)²) + ε) · w + b with ε = 1e-12, is
    ``nn.LayerNorm(eps=1e-12)``, which computes the same formula (biased variance, ε inside the
    square root; the tests check it); the official attention mask, built in ``forward`` but
    unused by the filters, is not built; the last block's feed-forward runs at the readout slot
    only (:meth:`FMLPEncoder.readout`); dropout masks come from other random numbers
    (:mod:`seqbench.models.layers.dropout`). The ``--no_filters`` variant (SASRec-like attention
    instead of filters) is not offered: it is seqbench's ``sasrec``.
    """

    def __init__(
        self, params: FMLPRecParams, *, n_items: int, max_len: int, ablation: str = FULL
    ) -> None:
        super().__init__()
        self._setup(params, n_items, max_len, ablation)
        d = params.hidden_size
        # Module creation order = the official one (same random draws for the same seed).
        self.item_embeddings = nn.Embedding(n_items + 1, d, padding_idx=0)
        self.position_embeddings = nn.Embedding(max_len, d)
        self.LayerNorm = nn.LayerNorm(d, eps=LAYER_NORM_EPS)
        self.dropout = Dropout(params.hidden_dropout_prob)
        self.item_encoder = FMLPEncoder(params, max_len)
        # The official init_weights: N(0, range²) Linear/Embedding weights, zero Linear biases,
        # LayerNorm (1, 0); the filters' complex weights are not touched.
        self.apply(partial(recbole_normal_init, std=params.initializer_range))

    def _embed(self, items: torch.Tensor) -> torch.Tensor:
        """(B, max_len) → the encoder input (B, max_len, d); the filters need exactly max_len."""
        if items.shape[1] != self.max_len:
            raise ValueError(
                f"FMLP-Rec's filters are tied to max_len = {self.max_len} slots; got inputs of "
                f"{items.shape[1]} slots (pad every batch to max_len)"
            )
        hidden = self.item_embeddings(items) + self.position_embeddings.weight
        return self.dropout(self.LayerNorm(hidden))

    def forward(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, max_len), (B,) → (B, d) at slot length − 1."""
        return self.item_encoder.readout(self._embed(items), lengths)

    def output_embeddings(self) -> torch.Tensor:
        return self.item_embeddings.weight
