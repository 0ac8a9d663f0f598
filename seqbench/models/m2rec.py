"""M2Rec as its paper describes it: adaptive Fourier filter, item-text embeddings, learned gate.

Follows Zhang et al., "M2Rec: Multi-scale Mamba for Efficient Sequential Recommendation",
arXiv 2505.04445: the AFFM block of the configuration figure (Linear → Conv1d → FFT → mask at θ →
IFFT → SiLU → SSM, gated by SiLU(Linear)), §III-C (item text c_v = {name, category, description}
encoded by bge-large-en-v1.5), §III-D eq. 12 (X̃ = IFFT(FFT(X) ⊙ M), M keeps |f| ≤ θ) and §III-E
eq. 16 (Ŷ = Linear(α·E(l) + β·E(m))). The released code (CoderPowerBeyond/M2Rec, ``mmamba4rec.py``)
implements none of this (model-reference §5, §9.3); it is :mod:`seqbench.models.m2rec_code`.

The skeleton is the one the paper builds on and its code runs: Mamba4Rec (model-reference §3:
item embedding → Dropout → LayerNorm → num_layers × [Mamba → Dropout → (residual when stacking) →
LayerNorm → FFN], tied CE, RecBole init).

What the paper leaves open, and the choice taken here:

- **θ's unit and the FFT length.** θ is a normalised frequency in cycles per position; rfft bin k
  of the padded length-L input has frequency k/L (so θ = 0.5 keeps everything). The FFT runs over
  all ``max_len`` slots, right padding included, as the EchoMamba4Rec/FMLP-Rec filters do.
- **Where the filter sits** (``affm_position``): ``in_block`` (default) as the figure draws it,
  between the causal convolution and the SiLU of every Mamba block (the block's
  ``pre_activation_hook``); ``input`` filters the input of every Mamba block instead.
- **How the mask adapts** (``theta_mode``): ``fixed`` is eq. 12 (a hyper-parameter θ);
  ``learnable`` trains θ through σ((θ − f)/τ), τ = ``theta_temperature``; ``soft`` learns one gain
  per frequency bin, initialised to the fixed mask (see
  :class:`~seqbench.models.layers.frequency_masks.AdaptiveFourierFilter`).
- **E(l)**: each input item's fixed text embedding (the encoder is ``text_encoder``; the paper's
  bge-large-en-v1.5 is ``st:BAAI/bge-large-en-v1.5``) projected by a Linear to d, then Dropout;
  items without text contribute 0 (masked), not the projection's bias. The text embeddings are
  frozen (the paper uses them as given).
- **E(m)**: the Mamba branch's output at every slot. **Fusion**: Ŷ = Linear_d→d(α·E(l) + β·E(m))
  per slot, read out at slot length − 1 and scored against the item ID embeddings (tied, as every
  official Mamba recommender). α and β are scalars initialised to ``gate_init`` = 0.5 (the
  released code multiplies uninitialised memory by 0.5); the trainer logs them every epoch
  (:meth:`M2Rec.diagnostics`) so a collapse of one branch is visible. The fusion Linear starts
  as the identity (``fusion_init``): with RecBole's N(0, 0.02²), as every other Linear, it
  shrinks both branches about tenfold, and on the synthetic data 3 epochs then reach test
  NDCG@10 0.161 instead of 0.265 (no_affm; Mamba4Rec 0.283) — an artefact of the extra layer's
  initialisation, not of the paper's idea, so ``fusion_init = "recbole"`` is kept as a reading.
- **Loss**: the paper says binary cross-entropy with sampled negatives, the code uses softmax CE
  over all items; both are ``[train] loss`` options (default ``ce``, as the code and the other
  Mamba papers).

Ablations: ``no_affm`` (filter off: then the model is causal, as it is with a fixed θ = 0.5),
``no_llm`` (no E(l); Ŷ = Linear(β·E(m)); no item text needed), ``no_gate`` (α = β = 0.5
fixed). The AFFM reads every slot, so the full model is not causal and cannot train on all
positions (model-reference §7.3).
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import nn

from seqbench.errors import ConfigError
from seqbench.models.item_text import ItemText
from seqbench.models.layers.dropout import Dropout
from seqbench.models.layers.frequency_masks import AdaptiveFourierFilter, ThetaMode
from seqbench.models.layers.init import recbole_normal_init
from seqbench.models.mamba4rec import MambaLayer
from seqbench.models.mamba_family import MambaRecommender, MambaRecParams
from seqbench.models.registry import FULL, ModelParams, register_model

REFERENCE = (
    "Zhang et al., arXiv 2505.04445 (AFFM figure, eqs. 12 and 16); skeleton of "
    "chengkai-liu/Mamba4Rec mamba4rec.py; not CoderPowerBeyond/M2Rec's code (see m2rec_code)"
)

#: The encoder that runs without network or download (the ``text`` extra ships its weights).
OFFLINE_TEXT_ENCODER = "wordllama"

ABLATIONS = {
    "no_affm": "no adaptive Fourier filter (the Mamba blocks are Mamba4Rec's)",
    "no_llm": "no item-text branch: Ŷ = Linear(β·E(m))",
    "no_gate": "α = β = 0.5 fixed instead of learned",
}

AFFM_PARAMETERS = ("theta", "theta_mode", "theta_temperature", "affm_position")


class M2RecParams(MambaRecParams):
    """Mamba4Rec's official config plus the paper's filter, text and gate settings."""

    theta: float = Field(
        0.1, gt=0.0, le=0.5, description="Cut-off θ in cycles per position (bin k/L kept if ≤ θ)."
    )
    theta_mode: ThetaMode = Field(
        "fixed",
        description="'fixed' hard mask (paper eq. 12); 'learnable' θ via σ((θ − f)/τ); 'soft' "
        "one learned gain per frequency, initialised to the fixed mask.",
    )
    theta_temperature: float = Field(
        0.01, gt=0.0, description="τ of the learnable mask, in cycles per position."
    )
    affm_position: Literal["in_block", "input"] = Field(
        "in_block",
        description="'in_block': between conv and SiLU inside each Mamba block (paper figure); "
        "'input': on each Mamba block's input.",
    )
    ssm_norm: bool = Field(
        True,
        description="LayerNorm over the SSM output before the SiLU gate, as the paper's AFFM "
        "block draws it (SSM → LayerNorm, × SiLU(Linear)); false: mamba_ssm's block.",
    )
    text_encoder: str = Field(
        OFFLINE_TEXT_ENCODER,
        description="Item-text encoder: 'wordllama[:dim]' (offline, packaged), "
        "'st:<sentence-transformers model or path>' (paper: st:BAAI/bge-large-en-v1.5), "
        "'hashing:<dim>' (dependency-free).",
    )
    gate_init: float = Field(0.5, description="Initial α and β of the gate.")
    fusion_init: Literal["identity", "recbole"] = Field(
        "identity",
        description="Initial output Linear: 'identity' (Ŷ = α·E(l) + β·E(m) at the start) or "
        "'recbole' (N(0, 0.02²) like every other Linear, which shrinks both branches ~10×).",
    )


class M2RecLayer(MambaLayer):
    """Mamba4Rec's layer whose Mamba block has the SSM LayerNorm (``ssm_norm``) and the AFFM
    inside (between convolution and SiLU) or on its input. The filter is this layer's module
    (``affm``); the block holds a reference to it."""

    def __init__(self, params: M2RecParams, max_len: int, ablation: str) -> None:
        affm = None
        if ablation != "no_affm":
            affm = AdaptiveFourierFilter(
                params.theta,
                params.theta_mode,
                temperature=params.theta_temperature,
                max_len=max_len,
            )
        in_block = affm is not None and params.affm_position == "in_block"
        mamba = params.mamba(pre_activation=affm if in_block else None, ssm_norm=params.ssm_norm)
        super().__init__(params, mamba)
        self.position = params.affm_position
        self.affm = affm

    def mamba_input(self, hidden: torch.Tensor) -> torch.Tensor:
        if self.affm is not None and self.position == "input":
            return self.affm(hidden)
        return hidden


def _causal(params: ModelParams, ablation: str) -> bool:
    """The Fourier filter reads every slot, unless it is off or a fixed mask at θ = 0.5, which
    keeps every bin (k/L ≤ 0.5 for all k) and so is the identity."""
    assert isinstance(params, M2RecParams)
    identity = params.theta_mode == "fixed" and params.theta >= 0.5
    return ablation == "no_affm" or identity


def _needs_text(params: ModelParams, ablation: str) -> bool:
    return ablation != "no_llm"


@register_model(
    "m2rec",
    params=M2RecParams,
    summary="M2Rec as its paper describes it: Fourier filter, item text, learned gate.",
    ablations=ABLATIONS,
    causal=_causal,
    all_positions=True,
    reference=REFERENCE,
    kernels=True,
    text=_needs_text,
    disables={"no_affm": AFFM_PARAMETERS, "no_llm": ("text_encoder",), "no_gate": ("gate_init",)},
)
class M2Rec(MambaRecommender):
    """E[items] → Dropout → LN → num_layers × M2RecLayer = E(m); Ŷ = Linear(α·E(l) + β·E(m)).

    State-dict keys extend Mamba4Rec's: ``mamba_layers.{i}.affm.{theta|gains}`` (learnable or
    soft modes), ``text_projection.*``, ``fusion.*``, ``alpha``, ``beta``. ``item_text`` is required
    unless the ablation is ``no_llm``.
    """

    def __init__(
        self,
        params: M2RecParams,
        *,
        n_items: int,
        max_len: int,
        ablation: str = FULL,
        item_text: ItemText | None = None,
    ) -> None:
        super().__init__()
        self._build(
            params, n_items, max_len, ablation, lambda: M2RecLayer(params, max_len, ablation)
        )
        d = params.hidden_size
        self.uses_text = ablation != "no_llm"
        self.text_projection: nn.Linear | None = None
        if self.uses_text:
            if item_text is None:
                raise ConfigError(
                    "m2rec needs item-text embeddings (item_text): give its dataset item text, "
                    "or use the no_llm ablation"
                )
            if item_text.vectors.shape[0] != n_items + 1:
                raise ValueError(
                    f"item text has {item_text.vectors.shape[0]} rows, expected n_items + 1 = "
                    f"{n_items + 1} (row 0 = padding)"
                )
            self.register_buffer("text_vectors", item_text.vectors.float(), persistent=False)
            self.register_buffer("has_text", item_text.has_text.bool(), persistent=False)
            self.text_projection = nn.Linear(item_text.vectors.shape[1], d)
            self.text_dropout = Dropout(params.dropout_prob)
        self.fusion = nn.Linear(d, d)
        for added in (self.text_projection, self.fusion):  # after _build's init, in this order
            if added is not None:
                recbole_normal_init(added, std=0.02)
        if params.fusion_init == "identity":
            with torch.no_grad():
                self.fusion.weight.copy_(torch.eye(d))  # the bias is already 0
        gate = torch.tensor(float(params.gate_init))
        if ablation == "no_gate":
            self.register_buffer("alpha", torch.tensor(0.5))
            self.register_buffer("beta", torch.tensor(0.5))
        else:
            if self.uses_text:
                self.alpha = nn.Parameter(gate.clone())
            self.beta = nn.Parameter(gate.clone())

    def semantic(self, items: torch.Tensor) -> torch.Tensor:
        """E(l): (B, L) → (B, L, d), the projected text of each input item (0 without text)."""
        assert self.text_projection is not None  # only called when uses_text
        projected = self.text_projection(self.text_vectors[items])
        return self.text_dropout(projected) * self.has_text[items].unsqueeze(-1)

    def semantic_at(self, items: torch.Tensor, at: torch.Tensor) -> torch.Tensor:
        """E(l) at slots ``at`` (B,) only, (B, d), with the dropout mask of :meth:`semantic`."""
        assert self.text_projection is not None
        item = items.gather(1, at[:, None]).squeeze(1)
        projected = self.text_projection(self.text_vectors[item])
        masked = self.text_dropout.at_slots(projected, items.shape[1], at)
        return masked * self.has_text[item].unsqueeze(-1)

    def forward_all(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, L), (B,) → Ŷ at every slot (B, L, d)."""
        fused = self.beta * super().forward_all(items, lengths)  # E(m)
        if self.uses_text:
            fused = fused + self.alpha * self.semantic(items)
        return self.fusion(fused)

    def forward(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Ŷ at slot length − 1 only (B, d): E(m) from the Mamba layers' readout, E(l) there."""
        fused = self.beta * super().forward(items, lengths)
        if self.uses_text:
            fused = fused + self.alpha * self.semantic_at(items, lengths - 1)
        return self.fusion(fused)

    def diagnostics(self) -> dict[str, float]:
        """The gate scalars and every learnable θ, logged by the trainer after each epoch."""
        values = {"beta": float(self.beta.detach())}
        if self.uses_text:
            values["alpha"] = float(self.alpha.detach())
        thetas = [
            layer.affm.current_theta()
            for layer in self.mamba_layers
            if isinstance(layer, M2RecLayer) and layer.affm is not None
            and layer.affm.mode == "learnable"
        ]  # fmt: skip
        if len(thetas) == 1:
            values["theta"] = thetas[0]
        else:
            values.update({f"theta.{i}": t for i, t in enumerate(thetas)})
        return values
