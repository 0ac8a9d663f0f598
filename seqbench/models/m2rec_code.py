"""M2Rec as its released code runs: Mamba4Rec plus a fixed low-pass over Δ's channel axis.

Follows CoderPowerBeyond/M2Rec ``run_mm.py`` → ``mmamba4rec.py`` (class ``Mamba4Rec``) and its
vendored ``mamba/mamba_ssm/modules/mamba_simple.py`` (model-reference §5, §9.3): the model is
Mamba4Rec (§3) except that, inside every Mamba block, the pre-bias Δ = W_dt·δ (B × d_inner × L)
goes through ``low_pass_filter_m_dim(dt, cutoff_ratio=0.1)`` — a full complex FFT along the
CHANNEL axis, keeping bins [0, m) and [d_inner − m, d_inner) with m = int(0.1·d_inner), inverse
FFT, real part — before the bias and softplus: Δ = softplus(LowPass_channels(W_dt·δ) + b_dt).
Here that is the block's ``delta_filter`` (a constructor argument of
:class:`~seqbench.models.layers.mamba.Mamba`) with
:func:`~seqbench.models.layers.frequency_masks.channel_low_pass`.

Not carried over, because the official forward never uses them: the LLM fusion (computed from
batch row 0 only, then overwritten by the item embeddings), α/β (uninitialised memory × 0.5),
``l2``, the ``fourier_proj_*`` and ``tcn*`` layers, and the multi-scale convolutions of the
unimported ``mamba_simple_v2.py``. Their parameters would only change the parameter count and
the random stream of initialisation. The official block defaults to the slow (unfused) path; on
the ``mamba_ssm`` backend the filter forces that path here too. One copy of the repository in the
wild replaces the low-pass with a ``FrequencyLayer(hidden_size=200)``; the reference's version
(the low-pass) is the one followed.

What the released code can and cannot explain of the published numbers (repository table,
model-reference §5): its ML-1M, New York, California and Texas rows can only come from
"Mamba4Rec + a channel low-pass on Δ" (or from re-running Mamba4Rec against a baseline row copied
from the Mamba4Rec paper, as ML-1M's is). It cannot explain anything attributed to the paper's
architecture: the learnable/adaptive θ and its sensitivity study (the code's cut-off is a constant
over channels, not a frequency over time), the LLM comparison (bge vs GPT-3.5 vs Llama: the text
never reaches the output), the "w/o GM" ablation (the gate is dead code, so removing it changes
nothing) and the Amazon Beauty results (no such dataset in the repository).

Causal: the filter mixes channels of one slot only, so the variant stays causal and may train on
all positions.
"""

from __future__ import annotations

from functools import partial

from pydantic import Field

from seqbench.models.layers.frequency_masks import channel_low_pass
from seqbench.models.mamba4rec import MambaLayer
from seqbench.models.mamba_family import MambaRecommender, MambaRecParams
from seqbench.models.registry import FULL, register_model

REFERENCE = (
    "CoderPowerBeyond/M2Rec mmamba4rec.py + vendored mamba_simple.py (low_pass_filter_m_dim on "
    "the pre-bias dt, cutoff_ratio 0.1); Zhang et al., arXiv 2505.04445"
)


class M2RecCodeParams(MambaRecParams):
    """The released config.yaml (hidden 64, one layer, dropout 0.2, N 32) and the filter's ratio."""

    cutoff_ratio: float = Field(
        0.1,
        ge=0.0,
        le=1.0,
        description="Kept share of Δ's channel FFT bins: m = int(ratio·d_inner) from each end "
        "(the code's constant 0.1; m = 0 keeps every bin, as the official slicing does).",
    )


class LowPassDeltaLayer(MambaLayer):
    """Mamba4Rec's layer whose Mamba block low-passes Δ over its channels."""

    def __init__(self, params: M2RecCodeParams) -> None:
        low_pass = partial(channel_low_pass, ratio=params.cutoff_ratio)
        super().__init__(params, params.mamba(delta_filter=low_pass))


@register_model(
    "m2rec_code",
    params=M2RecCodeParams,
    summary="M2Rec as its code runs: Mamba4Rec + fixed low-pass over Δ's channels.",
    causal=True,
    all_positions=True,
    reference=REFERENCE,
    kernels=True,
)
class M2RecCode(MambaRecommender):
    """Mamba4Rec (same modules, keys and initial weights for a seed) with the Δ channel filter."""

    def __init__(
        self, params: M2RecCodeParams, *, n_items: int, max_len: int, ablation: str = FULL
    ) -> None:
        super().__init__()
        self._build(params, n_items, max_len, ablation, lambda: LowPassDeltaLayer(params))
