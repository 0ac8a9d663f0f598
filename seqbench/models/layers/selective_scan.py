"""Mamba's selective scan in pure PyTorch: at every slot, or at one readout slot per row.

Arithmetic of ``mamba_ssm``'s ``selective_scan_ref`` (model-reference §2.2, step 5), per batch
row, channel c and state n, with a zero initial state::

    s_t[c, n] = exp(Δ_t[c]·A[c, n]) · s_{t−1}[c, n] + Δ_t[c]·B_t[n]·u_t[c]
    y_t[c]    = Σ_n s_t[c, n]·C_t[n] + D[c]·u_t[c]

in float32 whatever the input dtype (float64 stays float64). As ``mamba_ssm``'s
``selective_scan_fn``, Δ may arrive before its bias and softplus (``delta_bias``,
``delta_softplus``); the gate ``y·SiLU(z)`` is the caller's. Two entry points:

- :func:`selective_scan` gives y at every slot (layers whose every slot is read later);
- :func:`selective_scan_last` gives y at one slot T per row only (the last layer of a model that
  reads its output at slot length − 1). Unrolling the recurrence,
  s_T = Σ_{s ≤ T} exp(A·τ_s)·Δ_s B_s u_s with τ_s = Δ_{s+1} + … + Δ_T, so
  y_T[c] = Σ_s Δ_s u_s[c] · Σ_n exp(A[c, n] τ_s[c]) B_s[n] C_T[n] + D[c] u_T[c]: one vectorised
  contraction over (s, n) instead of T sequential steps, and no state is kept for any other slot.
  Slots after T never enter (the scan is causal), so right padding is ignored exactly.

Both are custom autograd functions that keep only their inputs and recompute everything else
in the backward pass, one chunk of batch rows at a time: Δ's bias and softplus, Δ·u, the suffix
sums and the (batch, L, N, D) decays are all made per chunk, whose work tensors hold about
``CHUNK_BYTES`` so that they stay in the CPU caches (memory bandwidth, not arithmetic, bounds
a pass over a full (batch, L, D) tensor on a CPU); memory is bounded for any batch. Decays are
``exp2`` of log2-scaled exponents (A·log2 e): the same numbers within float rounding, and about
ten times cheaper than ``exp`` on the CPU (torch 2.13). Work tensors are laid out (…, N, D).
Gradients (g = ∂L/∂y, a_t = exp(Δ_t A)):

- every slot: the adjoint G_t = ∂L/∂s_t = a_{t+1} G_{t+1} + C_t ⊗ g_t, walked back through time;
  then ∂C_t = Σ_c g_t s_t, ∂(Δu)_t = Σ_n G_t B_t, ∂B_t = Σ_c G_t (Δu)_t, and with
  q_t = G_t ⊙ a_t ⊙ s_{t−1}: ∂Δ_t (decay part) = Σ_n A q_t, ∂A = Σ_{b,t} Δ_t q_t;
- readout slot: with K_s[c] = Σ_n E_s[c, n] β_s[n] (E_s = exp(A τ_s), β_s = B_s ⊙ C_T) and
  w_s = g ⊙ Δ_s u_s: ∂(Δu)_s = g ⊙ K_s, ∂β_s = Σ_c w_s E_s, ∂τ_s = w_s ⊙ Σ_n A E_s β_s,
  ∂A = Σ_{b,s} (τ_s w_s) ⊙ E_s β_s; τ's gradient reaches each Δ_r through the suffix sums
  (Δ_r receives the τ gradients of every slot before r).

On the CPU, float32 scans run the same arithmetic as fused C++ loops instead
(:mod:`seqbench.models.layers.scan_cpu`; ``SEQBENCH_CPU_SCAN``): each decay computed once and used
in registers, one batch row at a time, forward and backward; Δ (after bias and softplus) is then
kept for the backward pass instead of recomputed. Same numbers within float rounding.

:mod:`seqbench.models.layers.scan_reference` keeps the step-by-step scan these are tested against.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from seqbench.models.layers import scan_cpu

#: Work-tensor sizes: the every-slot scan's (L, rows, N, D) tensors, the readout's (rows, L, D)
#: per-slot inputs and its (slots, N, D) work tensors; cache-sized, chosen by measurement on a
#: 2-core AMD EPYC (1 MiB L2 per core, 32 MiB L3): larger chunks are memory-bound, smaller ones
#: pay Python's per-operation overhead.
CHUNK_BYTES = {"every_slot": 2 * 2**20, "readout_rows": 2**20, "readout": 2 * 2**20}
LOG2_E = 1.0 / math.log(2.0)
#: The readout's decay weights 2^x are taken at x ≥ −100: a weight below 2^−100 ≈ 8e−31 counts
#: as 2^−100, an absolute change far under the float32 rounding of any sum it enters, which
#: keeps the products with gradients out of the (slow) subnormal range.
MIN_LOG2_WEIGHT = -100.0


def selective_scan(
    u: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None = None,
    *,
    delta_bias: Tensor | None = None,
    delta_softplus: bool = False,
) -> Tensor:
    """The scan at every slot, batch-first: u, delta (batch, L, D); A (D, N); B, C (batch, L, N);
    D, delta_bias (D,). Returns y (batch, L, D) in ``u``'s dtype."""
    _check(u, delta, A, B, C.shape == B.shape, "C (batch, L, N)")
    dtype, compute = u.dtype, _compute_dtype(u)
    args = _inputs(compute, u, delta, A, B, C, D, delta_bias)
    return _EverySlot.apply(*args, delta_softplus).to(dtype)


def selective_scan_last(
    u: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C_last: Tensor,
    D: Tensor | None,
    last: Tensor,
    *,
    delta_bias: Tensor | None = None,
    delta_softplus: bool = False,
) -> Tensor:
    """The scan's output at slot ``last`` (batch,) of each row only: u, delta (batch, L, D);
    A (D, N); B (batch, L, N); C_last (batch, N), C at that slot; D, delta_bias (D,). Returns
    (batch, D), equal to ``selective_scan(u, delta, A, B, C, D)[arange(batch), last]`` within
    float rounding for any C whose row ``last`` is C_last; slots after ``last`` are never read."""
    batch = u.shape[0]
    _check(u, delta, A, B, C_last.shape == (batch, A.shape[1]), "C_last (batch, N)")
    if last.shape != (batch,):
        raise ValueError(f"last must be (batch,) = ({batch},), got {tuple(last.shape)}")
    if batch and (int(last.min()) < 0 or int(last.max()) >= u.shape[1]):
        raise ValueError(
            f"last must be slots in [0, {u.shape[1] - 1}], got {int(last.min())}..{int(last.max())}"
        )
    dtype, compute = u.dtype, _compute_dtype(u)
    args = _inputs(compute, u, delta, A, B, C_last, D, delta_bias)
    return _ReadoutSlot.apply(*args, last, delta_softplus).to(dtype)


def _compute_dtype(u: Tensor) -> torch.dtype:
    return torch.promote_types(u.dtype, torch.float32)


def _inputs(
    compute: torch.dtype,
    u: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None,
    delta_bias: Tensor | None,
) -> list[Tensor]:
    """The inputs in the compute dtype, contiguous; zeros for an absent D or bias."""
    zeros = u.new_zeros(u.shape[-1], dtype=compute)
    tensors = [
        u,
        delta,
        A,
        B,
        C,
        zeros if D is None else D,
        zeros if delta_bias is None else delta_bias,
    ]
    return [t.to(compute).contiguous() for t in tensors]


def _check(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, c_fits: bool, c_shape: str) -> None:
    if u.shape != delta.shape or u.dim() != 3:
        raise ValueError(f"u and delta must both be (batch, L, D); got {u.shape}, {delta.shape}")
    batch, length, channels = u.shape
    if A.dim() != 2 or A.shape[0] != channels or B.shape != (batch, length, A.shape[1]):
        raise ValueError(
            f"shapes do not fit: u {tuple(u.shape)}, A {tuple(A.shape)}, B {tuple(B.shape)}; "
            f"expected A (D, N), B (batch, L, N) and {c_shape}"
        )
    if not c_fits:
        raise ValueError(f"C does not fit: expected {c_shape}")


def _chunks(kind: str, u: Tensor, n_state: int) -> tuple[int, list[slice]]:
    """Batch rows per chunk (one (rows, L, N, D) work tensor ≈ CHUNK_BYTES[kind]) and the
    chunks."""
    batch, length, channels = u.shape
    rows = max(1, CHUNK_BYTES[kind] // (length * n_state * channels * u.element_size()))
    rows = min(rows, batch)
    return rows, [slice(lo, min(lo + rows, batch)) for lo in range(0, batch, rows)]


class _Workspace:
    """Reusable flat buffers, viewed as contiguous tensors of any chunk's shape."""

    def __init__(self, numel: int, like: Tensor, count: int) -> None:
        self.buffers = [like.new_empty(numel) for _ in range(count)]

    def view(self, i: int, *shape: int) -> Tensor:
        return self.buffers[i][: math.prod(shape)].view(shape)


def _delta(pre: Tensor, bias: Tensor, softplus: bool) -> tuple[Tensor, Tensor]:
    """(pre + bias, Δ): Δ = softplus(pre + bias) or pre + bias."""
    biased = pre + bias
    return biased, F.softplus(biased) if softplus else biased


def _delta_grad(grad_delta: Tensor, biased: Tensor, softplus: bool) -> Tensor:
    """∂L/∂(pre-bias Δ) from ∂L/∂Δ (softplus' = sigmoid)."""
    return grad_delta * torch.sigmoid(biased) if softplus else grad_delta


class _EverySlot(torch.autograd.Function):
    """y_t = Σ_n C_t[n] s_t[·, n] + D u_t at every slot; batch-first inputs u, Δ (b, L, D),
    A (D, N), B, C (b, L, N), D, bias (D,). Work tensors are time-major (L, rows, N, D), so
    that each step of the recurrence is one contiguous slice."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx,
        u: Tensor,
        delta: Tensor,
        A: Tensor,
        B: Tensor,
        C: Tensor,
        D: Tensor,
        bias: Tensor,
        softplus: bool,
    ) -> Tensor:
        length, n_state = u.shape[1], A.shape[1]
        ctx.softplus = softplus  # type: ignore[attr-defined]
        a2 = (A * LOG2_E).T.contiguous()  # (N, D)
        fused = scan_cpu.usable(u)
        ctx.fused = fused  # type: ignore[attr-defined]
        if fused is not None:  # Δ is kept for the backward pass
            _, dt = _delta(delta, bias, softplus)
            ctx.save_for_backward(u, dt, A, B, C, D)
            return fused.every_slot_forward(u, dt, B, C, a2, D)
        ctx.save_for_backward(u, delta, A, B, C, D, bias)
        rows, chunks = _chunks("every_slot", u, n_state)
        y = torch.empty_like(u)
        work = _Workspace(length * rows * n_state * u.shape[2], u, 2)
        for c in chunks:
            _, dt = _delta(delta[c], bias, softplus)
            shape = (length, c.stop - c.start, n_state, u.shape[2])
            decay, states = work.view(0, *shape), work.view(1, *shape)
            _states((dt * u[c]).transpose(0, 1), dt.transpose(0, 1), B[c].transpose(0, 1), a2,
                    decay, states)  # fmt: skip
            out = states.mul_(C[c].transpose(0, 1)[..., None]).sum(2)  # (L, rows, D)
            torch.addcmul(out.transpose(0, 1), u[c], D, out=y[c])
        return y

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, grad_y: Tensor
    ) -> tuple[Tensor | None, ...]:
        softplus: bool = ctx.softplus  # type: ignore[attr-defined]
        if ctx.fused is not None:  # type: ignore[attr-defined]
            return _every_slot_fused_backward(ctx, grad_y.contiguous(), softplus)
        u, delta, A, B, C, D, bias = ctx.saved_tensors  # type: ignore[attr-defined]
        length, channels, n_state = u.shape[1], u.shape[2], A.shape[1]
        a2 = (A * LOG2_E).T.contiguous()
        a_t = A.T.contiguous()
        grad_y = grad_y.contiguous()
        grad_d = (grad_y * u).sum((0, 1))
        rows, chunks = _chunks("every_slot", u, n_state)
        grad_u, grad_pre = torch.empty_like(u), torch.empty_like(u)
        grad_b, grad_c = torch.empty_like(B), torch.empty_like(C)
        grad_a = u.new_zeros(n_state, channels)
        work = _Workspace(length * rows * n_state * channels, u, 4)
        for c in chunks:
            biased, dt = _delta(delta[c], bias, softplus)
            v = dt * u[c]
            shape = (length, c.stop - c.start, n_state, channels)
            decay, states, adjoint, scratch = (work.view(i, *shape) for i in range(4))
            vt, dtt, bt = v.transpose(0, 1), dt.transpose(0, 1), B[c].transpose(0, 1)
            gy = grad_y[c].transpose(0, 1)
            _states(vt, dtt, bt, a2, decay, states)
            torch.mul(C[c].transpose(0, 1)[..., None], gy[:, :, None, :], out=adjoint)
            for t in range(length - 2, -1, -1):  # G_t = C_t ⊗ g_t + a_{t+1} G_{t+1}
                adjoint[t].addcmul_(decay[t + 1], adjoint[t + 1])
            grad_v = torch.mul(adjoint, bt[..., None], out=scratch).sum(2).transpose(0, 1)
            grad_b[c] = torch.mul(adjoint, vt[:, :, None, :], out=scratch).sum(-1).transpose(0, 1)
            grad_c[c] = torch.mul(states, gy[:, :, None, :], out=scratch).sum(-1).transpose(0, 1)
            q = decay.mul_(adjoint)  # G_t ⊙ a_t, then ⊙ s_{t−1} (s_{−1} = 0)
            q[1:].mul_(states[:-1])
            q[0].zero_()
            grad_a += torch.mul(q, dtt[:, :, None, :], out=scratch).sum((0, 1))
            grad_dt = q.mul_(a_t).sum(2).transpose(0, 1).addcmul_(grad_v, u[c])
            torch.addcmul(grad_v * dt, grad_y[c], D, out=grad_u[c])
            grad_pre[c] = _delta_grad(grad_dt, biased, softplus)
        grad_bias = grad_pre.sum((0, 1))
        return grad_u, grad_pre, grad_a.T, grad_b, grad_c, grad_d, grad_bias, None


def _every_slot_fused_backward(
    ctx: Any, grad_y: Tensor, softplus: bool
) -> tuple[Tensor | None, ...]:
    """:class:`_EverySlot`'s backward through the compiled loops (Δ kept by the forward)."""
    u, dt, A, B, C, D = ctx.saved_tensors
    a2 = (A * LOG2_E).T.contiguous()
    grad_u, grad_pre, grad_b, grad_c, grad_a = ctx.fused.every_slot_backward(
        u, dt, B, C, a2, A.T.contiguous(), D, grad_y, softplus
    )
    grad_d = (grad_y * u).sum((0, 1))
    return grad_u, grad_pre, grad_a.T, grad_b, grad_c, grad_d, grad_pre.sum((0, 1)), None


def _states(v: Tensor, delta: Tensor, B: Tensor, a2: Tensor, decay: Tensor, states: Tensor) -> None:
    """Fill ``decay`` with a_t = 2^(Δ_t·A·log2 e) and ``states`` with s_t, time-major
    (L, rows, N, D); inputs (L, rows, ·) views (v = Δ·u)."""
    torch.mul(delta[:, :, None, :], a2, out=decay).exp2_()
    torch.mul(B[..., None], v[:, :, None, :], out=states)  # the inputs Δ_t u_t ⊗ B_t
    for t in range(1, delta.shape[0]):
        states[t].addcmul_(decay[t], states[t - 1])


class _ReadoutSlot(torch.autograd.Function):
    """y = Σ_s v_s ⊙ K_s + D u_T at the slot T = ``last`` of each row, with v = Δ·u (Δ = 0
    after T), K_s[c] = Σ_n 2^(A2[c, n] τ_s[c]) β_s[n], τ_s = Δ_{s+1} + … + Δ_T and
    β_s = B_s ⊙ C_T; batch-first inputs. Chunks of rows (whose (rows, L, D) tensors are about
    ``CHUNK_BYTES["readout_rows"]``) make the per-slot inputs; their (rows·L) slots are then
    processed in sub-chunks whose (slots, N, D) work tensor is about ``CHUNK_BYTES["readout"]``.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx,
        u: Tensor,
        delta: Tensor,
        A: Tensor,
        B: Tensor,
        C_last: Tensor,
        D: Tensor,
        bias: Tensor,
        last: Tensor,
        softplus: bool,
    ) -> Tensor:
        a2 = (A * LOG2_E).T.contiguous()
        ctx.softplus = softplus  # type: ignore[attr-defined]
        fused = scan_cpu.usable(u)
        ctx.fused = fused  # type: ignore[attr-defined]
        if fused is not None:  # Δ is kept for the backward pass
            _, dt = _delta(delta, bias, softplus)
            last = last.long().contiguous()
            ctx.save_for_backward(u, dt, A, B, C_last, D, last)
            return fused.readout_forward(u, dt, B, C_last, last, a2, D)
        ctx.save_for_backward(u, delta, A, B, C_last, D, bias, last)
        y = u.new_empty(u.shape[0], u.shape[2])
        work = _SlotWork(u, A.shape[1], 1)
        for c in _row_chunks(u):
            _, upto, _, v, tau, beta, u_last = _readout_inputs(
                u[c], delta[c], B[c], C_last[c], bias, last[c], softplus
            )
            kept = _Kept(upto)  # the slots ≤ T: v = 0 after T, so nothing else is computed
            tau_k, beta_k = kept.select(tau), kept.select(beta)
            kernel_k = tau_k.new_empty(tau_k.shape)
            for (tau_x, beta_x, kernel_x), weights in work.chunks(tau_k, beta_k, kernel_k):
                _weights(tau_x, a2, weights)
                torch.sum(weights.mul_(beta_x[..., None]), 1, out=kernel_x)
            torch.addcmul((v * kept.place(kernel_k)).sum(1), u_last, D, out=y[c])
        return y

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, grad_y: Tensor
    ) -> tuple[Tensor | None, ...]:
        softplus: bool = ctx.softplus  # type: ignore[attr-defined]
        if ctx.fused is not None:  # type: ignore[attr-defined]
            return _readout_fused_backward(ctx, grad_y.contiguous(), softplus)
        u, delta, A, B, C_last, D, bias, last = ctx.saved_tensors  # type: ignore[attr-defined]
        channels, n_state = u.shape[2], A.shape[1]
        a2 = (A * LOG2_E).T.contiguous()
        a_t = A.T.contiguous()
        grad_y = grad_y.contiguous()
        grad_u, grad_pre, grad_b = torch.empty_like(u), torch.empty_like(u), torch.empty_like(B)
        grad_c = torch.empty_like(C_last)
        u_last = u.gather(1, last.view(-1, 1, 1).expand(-1, 1, channels)).squeeze(1)
        grad_d = (grad_y * u_last).sum(0)
        grad_a = u.new_zeros(n_state, channels)
        work = _SlotWork(u, n_state, 2)
        for c in _row_chunks(u):
            biased, upto, dm, v, tau, beta, _ = _readout_inputs(
                u[c], delta[c], B[c], C_last[c], bias, last[c], softplus
            )
            g = grad_y[c][:, None, :]  # (rows, 1, D)
            w = g * v  # ∂L/∂K_s
            kept = _Kept(upto)
            inputs = [kept.select(t) for t in (tau, beta, w, tau * w)]
            # ∂β, K and Σ_n A E β at the kept slots
            outputs = [torch.empty_like(inputs[1]), *(torch.empty_like(inputs[0]) for _ in "kj")]
            _readout_grads(work, inputs, outputs, a2, a_t, grad_a)
            grad_beta, kernel, j = (kept.place(t) for t in outputs)
            grad_v = g * kernel
            grad_tau = j.mul_(w)
            # τ_s = Σ_{r>s} Δ_r: each Δ_r receives the τ gradients of the slots before it
            grad_dt = F.pad(torch.cumsum(grad_tau[:, :-1], 1), (0, 0, 1, 0))
            grad_dt.addcmul_(grad_v, u[c]).mul_(upto)
            grad_pre[c] = _delta_grad(grad_dt, biased, softplus)
            at = last[c].view(-1, 1, 1).expand(-1, 1, channels)
            grad_u[c] = (grad_v * dm).scatter_add_(1, at, g * D)  # the D·u_T term at T
            grad_b[c] = grad_beta * C_last[c][:, None, :]
            grad_c[c] = (grad_beta * B[c]).sum(1)
        grad_bias = grad_pre.sum((0, 1))
        return grad_u, grad_pre, grad_a.T, grad_b, grad_c, grad_d, grad_bias, None, None


def _readout_fused_backward(ctx: Any, grad_y: Tensor, softplus: bool) -> tuple[Tensor | None, ...]:
    """:class:`_ReadoutSlot`'s backward through the compiled loops (Δ kept by the forward)."""
    u, dt, A, B, C_last, D, last = ctx.saved_tensors
    a2 = (A * LOG2_E).T.contiguous()
    grad_u, grad_pre, grad_b, grad_c, grad_a = ctx.fused.readout_backward(
        u, dt, B, C_last, last, a2, A.T.contiguous(), D, grad_y, softplus
    )
    u_last = u.gather(1, last.view(-1, 1, 1).expand(-1, 1, u.shape[2])).squeeze(1)
    grad_d = (grad_y * u_last).sum(0)
    return grad_u, grad_pre, grad_a.T, grad_b, grad_c, grad_d, grad_pre.sum((0, 1)), None, None


def _readout_grads(
    work: _SlotWork,
    inputs: list[Tensor],
    outputs: list[Tensor],
    a2: Tensor,
    a_t: Tensor,
    grad_a: Tensor,
) -> None:
    """The PyTorch path of the readout's heavy part: from (τ, β, w, τ·w) at the kept slots,
    ∂β, K and Σ_n A E β into ``outputs``; adds ∂A into ``grad_a`` (N, D)."""
    for (tau_x, beta_x, w_x, tw_x, gb_x, k_x, j_x), weights, scratch in work.chunks(
        *inputs, *outputs
    ):
        _weights(tau_x, a2, weights)  # E
        torch.sum(torch.mul(weights, w_x[:, None, :], out=scratch), -1, out=gb_x)
        y_terms = weights.mul_(beta_x[..., None])  # E ⊙ β
        torch.sum(y_terms, 1, out=k_x)
        grad_a += torch.mul(y_terms, tw_x[:, None, :], out=scratch).sum(0)
        torch.sum(y_terms.mul_(a_t), 1, out=j_x)  # Σ_n A E β


class _Kept:
    """The slots of a row chunk that are ≤ each row's readout slot, flattened: ``select`` takes
    their rows of a (rows, L, k) tensor, ``place`` puts such rows back (zeros elsewhere)."""

    def __init__(self, upto: Tensor) -> None:
        self.shape = upto.shape[:2]
        self.index = upto.reshape(-1).nonzero().squeeze(1)

    def select(self, t: Tensor) -> Tensor:
        return t.reshape(-1, t.shape[-1]).index_select(0, self.index)

    def place(self, t: Tensor) -> Tensor:
        out = t.new_zeros(self.shape[0] * self.shape[1], t.shape[-1])
        return out.index_copy_(0, self.index, t).view(*self.shape, t.shape[-1])


def _weights(tau: Tensor, a2: Tensor, out: Tensor) -> Tensor:
    """E = 2^max(τ ⊗ A·log2 e, MIN_LOG2_WEIGHT) into ``out`` (slots, N, D)."""
    return torch.mul(tau[:, None, :], a2, out=out).clamp_(min=MIN_LOG2_WEIGHT).exp2_()


def _row_chunks(u: Tensor) -> list[slice]:
    """Chunks of batch rows whose (rows, L, D) tensors hold about CHUNK_BYTES["readout_rows"]."""
    batch, length, channels = u.shape
    rows = max(1, CHUNK_BYTES["readout_rows"] // (length * channels * u.element_size()))
    return [slice(lo, min(lo + rows, batch)) for lo in range(0, batch, rows)]


class _SlotWork:
    """(slots, N, D) work tensors of about CHUNK_BYTES["readout"], reused across sub-chunks."""

    def __init__(self, u: Tensor, n_state: int, count: int) -> None:
        self.n_state, self.channels = n_state, u.shape[2]
        per_slot = n_state * self.channels * u.element_size()
        self.slots = max(1, CHUNK_BYTES["readout"] // per_slot)
        self.work = _Workspace(self.slots * n_state * self.channels, u, count)

    def chunks(self, *tensors: Tensor) -> Iterator[tuple[Any, ...]]:
        """For each sub-chunk of the slots (rows of the given (slots, ·) tensors): the tensors'
        rows, then the work tensors."""
        total = tensors[0].shape[0]
        for lo in range(0, total, self.slots):
            hi = min(lo + self.slots, total)
            shape = (hi - lo, self.n_state, self.channels)
            views = [self.work.view(i, *shape) for i in range(len(self.work.buffers))]
            yield (tuple(t[lo:hi] for t in tensors), *views)


def _readout_inputs(
    u: Tensor, pre: Tensor, B: Tensor, C_last: Tensor, bias: Tensor, last: Tensor, softplus: bool
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """One chunk's pre + bias, the 0/1 mask of the slots ≤ T (rows, L, 1), Δ masked by it,
    v = Δ·u, τ, β and u_T."""
    slots = torch.arange(u.shape[1], device=u.device)
    upto = (slots[None, :] <= last[:, None]).to(u.dtype)[..., None]
    biased, delta = _delta(pre, bias, softplus)
    delta = delta * upto  # Δ = 0 after the readout slot: no decay, no input there
    # τ_s = Δ_{s+1} + … + Δ_T: suffix sums, each accurate relative to itself
    suffix = delta.flip(1).cumsum(1).flip(1)
    tau = F.pad(suffix[:, 1:], (0, 0, 0, 1))
    u_last = u.gather(1, last.view(-1, 1, 1).expand(-1, 1, u.shape[2])).squeeze(1)
    return biased, upto, delta, delta * u, tau, B * C_last[:, None, :], u_last
