"""``mamba_ssm.Mamba`` (v1 block) rebuilt in pure PyTorch, with the fused kernels as a backend.

Follows ``mamba_ssm/modules/mamba_simple.py`` (state-spaces/mamba, identical from v1.1.4 to
v2.2.x) and model-reference §2.1–§2.2: the same parameter names, shapes, creation order and
default initialisation, so that ``load_state_dict`` moves weights both ways, and the same
arithmetic (Gu & Dao, "Mamba", 2023, Algorithm 2 with ZOH on A and the simplified Δ·B input)::

    [x; z] = in_proj(h)                        # (B, L, 2·d_inner)
    x      = SiLU(causal depthwise conv(x))    # slot t sees slots t − d_conv + 1 … t
    [δ; B; C] = x_proj(x)                       # split [dt_rank, d_state, d_state]
    Δ      = softplus(dt_proj.weight·δ + dt_proj.bias)
    y      = selective_scan(x, Δ, A = −exp(A_log), B, C, D)  # float32
    out    = out_proj(y ⊙ SiLU(z))

Optional parts are constructor arguments, identity (absent) by default:
``pre_activation``, a filter between the convolution and its SiLU (the M2Rec paper's Fourier
filter sits there: Conv1d → FFT → IFFT → SiLU → SSM), ``delta_filter`` on Δ before its bias
and softplus (M2Rec's released code filters there), both on batch-first (B, L, d_inner)
tensors, and ``ssm_norm``, a LayerNorm over the SSM output y before the gate (the M2Rec paper's
"SSM → LayerNorm, × SiLU(Linear)"). A filter with parameters belongs to its caller (its
parameters keep the caller's names); the block keeps a reference, not a submodule.

:meth:`Mamba.readout` gives the output at one slot per row only (the last layer of a model that
reads slot length − 1): the projections of z and C, the gate, the norm and out_proj run at that
slot, the scan is :func:`~seqbench.models.layers.selective_scan.selective_scan_last`; the
convolution, the filters and Δ, B still run at every slot (the scan reads them all).

Backends (see :mod:`seqbench.models.layers.kernels`): ``torch`` runs everything here (the scans
of :mod:`~seqbench.models.layers.selective_scan`); ``mamba_ssm`` runs ``mamba_inner_fn`` (conv,
projections and scan fused) or, with a filter or the norm, ``causal_conv1d_fn`` and
``selective_scan_fn``, exactly the two code paths of ``Mamba.forward``; its readout is the
kernel forward at every slot, gathered.

Deliberate deviations: no inference cache (``inference_params``/step decoding: a recommender
scores whole sequences), no ``layer_idx``, ``use_fast_path`` is the backend choice.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqbench.models.layers.causal_conv import causal_conv1d
from seqbench.models.layers.kernels import Backend, require_kernels
from seqbench.models.layers.selective_scan import selective_scan, selective_scan_last
from seqbench.models.layers.slots import gather_slots

#: A filter on a batch-first (B, L, d_inner) tensor, shape preserved.
Filter = Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class Filters:
    """The block's optional filters (None = identity); a plain holder, so that a filter which is
    a module's bound method or a module stays its owner's (not a submodule of the block)."""

    pre_activation: Filter | None = None
    delta: Filter | None = None


class Mamba(nn.Module):
    """One Mamba block; parameter names and defaults of ``mamba_ssm.Mamba``, plus the optional
    parts of the module docstring (keyword-only; absent by default)."""

    def __init__(
        self,
        d_model: int,
        d_state: int = 16,
        d_conv: int = 4,
        expand: int = 2,
        dt_rank: int | str = "auto",
        dt_min: float = 0.001,
        dt_max: float = 0.1,
        dt_init: str = "random",
        dt_scale: float = 1.0,
        dt_init_floor: float = 1e-4,
        conv_bias: bool = True,
        bias: bool = False,
        *,
        pre_activation: Filter | None = None,
        delta_filter: Filter | None = None,
        ssm_norm: bool = False,
    ) -> None:
        super().__init__()
        self.d_model = d_model
        self.d_state = d_state
        self.d_conv = d_conv
        self.d_inner = expand * d_model
        self.dt_rank = math.ceil(d_model / 16) if dt_rank == "auto" else int(dt_rank)
        self.backend: Backend = "torch"
        self.filters = Filters(pre_activation, delta_filter)
        # creation order = mamba_ssm's, so that one seed gives the same initial weights
        self.in_proj = nn.Linear(d_model, 2 * self.d_inner, bias=bias)
        self.conv1d = nn.Conv1d(
            self.d_inner,
            self.d_inner,
            kernel_size=d_conv,
            groups=self.d_inner,
            padding=d_conv - 1,
            bias=conv_bias,
        )
        self.x_proj = nn.Linear(self.d_inner, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, self.d_inner, bias=True)
        std = self.dt_rank**-0.5 * dt_scale
        if dt_init == "constant":
            nn.init.constant_(self.dt_proj.weight, std)
        elif dt_init == "random":
            nn.init.uniform_(self.dt_proj.weight, -std, std)
        else:
            raise ValueError(f"dt_init must be 'random' or 'constant', not {dt_init!r}")
        dt = torch.exp(
            torch.rand(self.d_inner) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)
        ).clamp(min=dt_init_floor)
        with torch.no_grad():  # inverse of softplus: softplus(bias) = dt
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))
        self.dt_proj.bias._no_reinit = True  # type: ignore[attr-defined]  # mamba_ssm's flag
        a = torch.arange(1, d_state + 1, dtype=torch.float32).repeat(self.d_inner, 1)
        self.A_log = nn.Parameter(torch.log(a))  # S4D-real
        self.A_log._no_weight_decay = True  # type: ignore[attr-defined]
        self.D = nn.Parameter(torch.ones(self.d_inner))
        self.D._no_weight_decay = True  # type: ignore[attr-defined]
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=bias)
        # created last (no random draw): the other weights are mamba_ssm's for a seed
        self.norm = nn.LayerNorm(self.d_inner) if ssm_norm else None

    # -- the pieces (batch-first, torch backend) --------------------------------------------

    def conv(self, x: Tensor) -> Tensor:
        """SiLU(pre_activation(causal depthwise convolution)): (B, L, d_inner) → (B, L, d_inner);
        zero history before slot 0, as ``F.conv1d`` with left padding d_conv − 1
        (``causal_conv1d_ref``; :func:`~seqbench.models.layers.causal_conv.causal_conv1d`)."""
        pre_activation = self.filters.pre_activation
        if pre_activation is None:
            return causal_conv1d(x, self.conv1d.weight, self.conv1d.bias, silu=True)
        return F.silu(pre_activation(causal_conv1d(x, self.conv1d.weight, self.conv1d.bias)))

    def project(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """x_proj split into (δ (B, L, dt_rank), B (B, L, d_state), C (B, L, d_state))."""
        return torch.split(self.x_proj(x), [self.dt_rank, self.d_state, self.d_state], dim=-1)

    def delta_pre_bias(self, dt_low_rank: Tensor) -> Tensor:
        """delta_filter(dt_proj.weight·δ), before the bias and softplus: (B, L, d_inner)."""
        delta = dt_low_rank @ self.dt_proj.weight.T
        return delta if self.filters.delta is None else self.filters.delta(delta)

    def delta(self, dt_low_rank: Tensor) -> Tensor:
        """Δ = softplus(delta_pre_bias + dt_proj.bias), float32 (float64 for a float64 block)."""
        pre = self.delta_pre_bias(dt_low_rank)
        wide = torch.promote_types(pre.dtype, torch.float32)
        return F.softplus(pre.to(wide) + self.dt_proj.bias.to(wide))

    def A(self) -> Tensor:
        """−exp(A_log) in float32 (float64 for a float64 block)."""
        return -torch.exp(self.A_log.to(torch.promote_types(self.A_log.dtype, torch.float32)))

    def gate(self, y: Tensor, z: Tensor) -> Tensor:
        """out_proj(norm(y) ⊙ SiLU(z)) at any slots (…, d_inner) → (…, d_model)."""
        if self.norm is not None:
            y = self.norm(y.to(z.dtype))
        return self.out_proj(y * F.silu(z))

    # -- forward ---------------------------------------------------------------------------

    def forward(self, hidden: Tensor) -> Tensor:
        """(B, L, d_model) → (B, L, d_model)."""
        if self.backend == "mamba_ssm":
            return self._forward_kernels(hidden)
        self._check_backend()
        x, z = self.in_proj(hidden).chunk(2, dim=-1)
        x = self.conv(x)
        dt, B, C = self.project(x)
        y = selective_scan(
            x, self.delta_pre_bias(dt), self.A(), B, C, self.D,
            delta_bias=self.dt_proj.bias, delta_softplus=True,
        )  # fmt: skip
        return self.gate(y, z)

    def readout(self, hidden: Tensor, at: Tensor) -> Tensor:
        """(B, L, d_model), slots (B,) → the output at those slots only, (B, d_model); equal to
        ``forward(hidden)[arange(B), at]`` within float rounding. Slots after ``at`` are never
        read (the block is causal)."""
        if self.backend == "mamba_ssm":
            return gather_slots(self._forward_kernels(hidden), at)
        self._check_backend()
        w_x, w_z = self.in_proj.weight.chunk(2)
        b_x, b_z = (None, None) if self.in_proj.bias is None else self.in_proj.bias.chunk(2)
        x = self.conv(F.linear(hidden, w_x, b_x))
        w_dtb, w_c = self.x_proj.weight.split([self.dt_rank + self.d_state, self.d_state])
        dt, B = F.linear(x, w_dtb).split([self.dt_rank, self.d_state], dim=-1)
        C_at = F.linear(gather_slots(x, at), w_c)
        y = selective_scan_last(
            x, self.delta_pre_bias(dt), self.A(), B, C_at, self.D, at,
            delta_bias=self.dt_proj.bias, delta_softplus=True,
        )  # fmt: skip
        return self.gate(y, F.linear(gather_slots(hidden, at), w_z, b_z))

    def _check_backend(self) -> None:
        if self.backend != "torch":
            raise ValueError(f"unknown backend {self.backend!r}")

    def _forward_kernels(self, hidden: Tensor) -> Tensor:
        """mamba_ssm's two code paths: fused without filters or norm, else conv + scan kernels."""
        k = require_kernels()
        xz = self.in_proj(hidden).transpose(1, 2).contiguous()  # (B, 2·d_inner, L), L-major
        A = self.A()
        pre_activation, delta_filter = self.filters.pre_activation, self.filters.delta
        if pre_activation is None and delta_filter is None and self.norm is None:
            return k.mamba_inner_fn(
                xz, self.conv1d.weight, self.conv1d.bias, self.x_proj.weight,
                self.dt_proj.weight, self.out_proj.weight, self.out_proj.bias, A, None, None,
                self.D.float(), delta_bias=self.dt_proj.bias.float(), delta_softplus=True,
            ).contiguous()  # fmt: skip
        x, z = xz.chunk(2, dim=1)
        weight = self.conv1d.weight.squeeze(1)  # (d_inner, d_conv)
        if pre_activation is None:
            x = k.causal_conv1d_fn(x.contiguous(), weight, self.conv1d.bias, activation="silu")
            x = x.transpose(1, 2)  # batch-first (B, L, d_inner)
        else:
            x = k.causal_conv1d_fn(x.contiguous(), weight, self.conv1d.bias, activation=None)
            x = F.silu(pre_activation(x.transpose(1, 2)))
        dt, B, C = self.project(x)
        delta = self.delta_pre_bias(dt)
        y = k.selective_scan_fn(
            x.transpose(1, 2).contiguous(), delta.transpose(1, 2).contiguous(), A,
            B.transpose(1, 2).contiguous(), C.transpose(1, 2).contiguous(), self.D.float(),
            z=None if self.norm is not None else z.contiguous(),
            delta_bias=self.dt_proj.bias.float(), delta_softplus=True,
        )  # fmt: skip
        if self.norm is not None:  # the gate after the norm, outside the kernel
            return self.gate(y.transpose(1, 2), z.transpose(1, 2))
        return self.out_proj(y.transpose(1, 2))


def set_backend(model: nn.Module, backend: Backend) -> None:
    """Run every Mamba block of ``model`` on ``backend``."""
    for module in model.modules():
        if isinstance(module, Mamba):
            module.backend = backend


def uses_mamba(model: nn.Module) -> bool:
    return any(isinstance(m, Mamba) for m in model.modules())
