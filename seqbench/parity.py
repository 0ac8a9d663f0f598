"""Backend parity of one Mamba block: the fused kernels against seqbench's pure-PyTorch path.

The tolerances are fixed here, once, before any measurement, and shared by ``seqbench doctor``
and ``benchmarks/gpu/parity.py`` (which adds whole-model checks): a GPU that needs looser ones
is a finding to report, not a constant to edit.

:func:`block_parity` runs one block twice on the same weights, input and output cotangent —
first on one backend, then (after ``prepare``) on the other — and compares the outputs and the
gradients of the input and of every parameter. On a CPU the tests compare the torch path with
itself, plain and perturbed, so that the comparison is proven able to fail.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# ---- tolerances: fixed before measuring ------------------------------------------------------
FORWARD_MAX_ABS = 1e-4  # block forward, fp32: max |out_kernels − out_torch|
GRAD_MAX_REL = 1e-3  # per tensor: max |g_kernels − g_torch| / max |g_torch|
SAME_RANK_MIN_FRACTION = 0.999  # whole models: test users whose rank is identical

#: The block compared (Mamba4Rec's official configuration).
BLOCK = {"d_model": 64, "d_state": 32, "d_conv": 4, "expand": 2}


def relative_error(a: Any, b: Any) -> float:
    """max |a − b| / max |b| (max |a − b| where b is all zeros), as a float."""
    scale = float(b.abs().max())
    diff = float((a - b).abs().max())
    return diff / scale if scale > 0 else diff


@dataclass(frozen=True)
class BlockParity:
    """How far the second run of a block is from the first."""

    backends: tuple[str, str]
    forward_max_abs: float
    forward_scale: float  # max |out| of the first run, for reading the difference
    grad_max_rel: dict[str, float] = field(default_factory=dict)  # "input" and each parameter
    seconds: float = 0.0

    def failures(self) -> list[str]:
        """Each difference beyond its tolerance, in words (NaN counts as beyond)."""
        out = []
        if not self.forward_max_abs <= FORWARD_MAX_ABS:
            out.append(f"forward max |Δ| {self.forward_max_abs:.3g} > {FORWARD_MAX_ABS:g}")
        for name, value in self.grad_max_rel.items():
            if not value <= GRAD_MAX_REL:
                out.append(f"gradient of {name}: max rel Δ {value:.3g} > {GRAD_MAX_REL:g}")
        return out

    @property
    def ok(self) -> bool:
        return not self.failures()

    def to_json(self) -> dict[str, Any]:
        worst = max(self.grad_max_rel.values(), default=0.0)
        return {
            "backends": list(self.backends),
            "block": dict(BLOCK),
            "forward_max_abs": self.forward_max_abs,
            "forward_scale": self.forward_scale,
            "grad_max_rel": dict(self.grad_max_rel),
            "grad_max_rel_worst": worst,
            "tolerances": {"forward_max_abs": FORWARD_MAX_ABS, "grad_max_rel": GRAD_MAX_REL},
            "failures": self.failures(),
            "ok": self.ok,
            "seconds": self.seconds,
        }


def block_parity(
    device: Any,
    *,
    backends: tuple[str, str] = ("torch", "mamba_ssm"),
    prepare: Callable[[Any], None] | None = None,
    batch: int = 8,
    length: int = 50,
    seed: int = 0,
) -> BlockParity:
    """Run a :data:`BLOCK` Mamba block on ``backends[0]``, then — after ``prepare(block)`` —
    on ``backends[1]``, same weights and inputs, and compare forward and gradients."""
    import time

    import torch

    from seqbench.models.layers.mamba import Mamba

    start = time.perf_counter()
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        block = Mamba(**BLOCK).to(device)
    shape = (batch, length, BLOCK["d_model"])
    h = torch.randn(shape, generator=generator).to(device)
    cotangent = torch.randn(shape, generator=generator).to(device)
    names = ["input", *(name for name, _ in block.named_parameters())]
    outs, grads = [], []
    for i, backend in enumerate(backends):
        if i == 1 and prepare is not None:
            prepare(block)
        block.backend = backend  # type: ignore[assignment]
        x = h.clone().requires_grad_()
        out = block(x)
        grads.append(torch.autograd.grad((out * cotangent).sum(), [x, *block.parameters()]))
        outs.append(out.detach())
    if device_is_cuda(device):
        torch.cuda.synchronize(device)
    return BlockParity(
        backends=(backends[0], backends[1]),
        forward_max_abs=float((outs[1] - outs[0]).abs().max()),
        forward_scale=float(outs[0].abs().max()),
        grad_max_rel={name: relative_error(b, a) for name, a, b in zip(names, *grads, strict=True)},
        seconds=time.perf_counter() - start,
    )


def device_is_cuda(device: Any) -> bool:
    return str(getattr(device, "type", device)).startswith("cuda")
