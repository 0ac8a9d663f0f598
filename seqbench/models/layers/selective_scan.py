"""Mamba's selective scan in pure PyTorch: at every slot, or at one readout slot per row.

Arithmetic of ``mamba_ssm``'s ``selective_scan_ref`` (model-reference §2.2, step 5), per batch
row, channel c and state n, with a zero initial state::

    s_t[c, n] = exp(Δ_t[c]·A[c, n]) · s_{t−1}[c, n] + Δ_t[c]·B_t[n]·u_t[c]
    y_t[c]    = Σ_n s_t[c, n]·C_t[n] + D[c]·u_t[c]

in float32 whatever the input dtype (float64 stays float64). Δ arrives biased and soft-plussed;
the gate ``y·SiLU(z)`` is the caller's. Two entry points:

- :func:`selective_scan` gives y at every slot (layers whose every slot is read later);
- :func:`selective_scan_last` gives y at one slot T per row only (the last layer of a model that
  reads its output at slot length − 1). Unrolling the recurrence,
  s_T = Σ_{s ≤ T} exp(A·τ_s)·Δ_s B_s u_s with τ_s = Δ_{s+1} + … + Δ_T, so
  y_T[c] = Σ_s Δ_s u_s[c] · Σ_n exp(A[c, n] τ_s[c]) B_s[n] C_T[n] + D[c] u_T[c]: one vectorised
  contraction over (s, n) instead of T sequential steps, and no state is kept for any other slot.
  Slots after T never enter (the scan is causal), so right padding is ignored exactly.

Both are custom autograd functions that keep only their (batch, L, D)-sized inputs and recompute
the (batch, L, N, D) decays in the backward pass, one chunk of batch rows at a time (a chunk's
work tensors hold about ``CHUNK_BYTES``, so they stay in the CPU caches and memory is bounded
for any batch). Decays are ``exp2`` of log2-scaled exponents (A·log2 e), which is several times
cheaper than ``exp`` on the CPU and the same number within float rounding. The work tensors are
laid out (…, N, D) so that the contractions over the state axis are batched vector–matrix
products. Gradients (g = ∂L/∂y, a_t = exp(Δ_t A)):

- every slot: the adjoint G_t = ∂L/∂s_t = a_{t+1} G_{t+1} + C_t ⊗ g_t, walked back through time;
  then ∂C_t = Σ_c g_t s_t, ∂(Δu)_t = Σ_n G_t B_t, ∂B_t = Σ_c G_t (Δu)_t, and with
  q_t = G_t ⊙ a_t ⊙ s_{t−1}: ∂Δ_t (decay part) = Σ_n A q_t, ∂A = Σ_{b,t} Δ_t q_t;
- readout slot: with K_s[c] = Σ_n E_s[c, n] β_s[n] (E_s = exp(A τ_s), β_s = B_s ⊙ C_T) and
  w_s = g ⊙ Δ_s u_s: ∂(Δu)_s = g ⊙ K_s, ∂β_s = Σ_c w_s E_s, and with Z_s = w_s ⊗ β_s ⊙ E_s:
  ∂τ_s = Σ_n A Z_s, ∂A = Σ_{b,s} τ_s Z_s; τ's gradient reaches Δ through its suffix sums.

:mod:`seqbench.models.layers.scan_reference` keeps the step-by-step scan these are tested against.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

#: About the size of one (rows × L × N × D) work tensor of a batch chunk (CPU cache sized).
CHUNK_BYTES = 8 * 2**20
LOG2_E = 1.0 / math.log(2.0)


def selective_scan(
    u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor | None = None
) -> Tensor:
    """The scan at every slot, batch-first: u, delta (batch, L, D); A (D, N); B, C (batch, L, N);
    D (D,). Returns y (batch, L, D) in ``u``'s dtype."""
    _check(u, delta, A, B, C.shape == B.shape, "C (batch, L, N)")
    dtype, compute = u.dtype, _compute_dtype(u)
    u, delta, B, C = (t.to(compute) for t in (u, delta, B, C))
    y = _EverySlot.apply(delta * u, delta, A.to(compute), B, C)
    if D is not None:
        y = y + u * D.to(compute)
    return y.to(dtype)


def selective_scan_last(
    u: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C_last: Tensor,
    D: Tensor | None,
    last: Tensor,
) -> Tensor:
    """The scan's output at slot ``last`` (batch,) of each row only: u, delta (batch, L, D);
    A (D, N); B (batch, L, N); C_last (batch, N), C at that slot; D (D,). Returns (batch, D),
    equal to ``selective_scan(u, delta, A, B, C, D)[arange(batch), last]`` within float rounding
    for any C whose row ``last`` is C_last; slots after ``last`` are never read."""
    batch, length = u.shape[:2]
    _check(u, delta, A, B, C_last.shape == (batch, A.shape[1]), "C_last (batch, N)")
    if last.shape != (batch,):
        raise ValueError(f"last must be (batch,) = ({batch},), got {tuple(last.shape)}")
    dtype, compute = u.dtype, _compute_dtype(u)
    u, delta, B, C_last = (t.to(compute) for t in (u, delta, B, C_last))
    upto = torch.arange(length, device=u.device)[None, :] <= last[:, None]  # (batch, L)
    delta = delta * upto[:, :, None]  # Δ = 0 after the readout slot: no decay, no input there
    # τ_s = Δ_{s+1} + … + Δ_T: suffix sums, each accurate relative to itself
    suffix = delta.flip(1).cumsum(1).flip(1)
    tau = F.pad(suffix[:, 1:], (0, 0, 0, 1))
    beta = B * C_last[:, None, :]
    y = _ReadoutSlot.apply(delta * u, tau, beta, A.to(compute))
    if D is not None:
        u_last = u.gather(1, last.view(-1, 1, 1).expand(-1, 1, u.shape[2])).squeeze(1)
        y = y + u_last * D.to(compute)
    return y.to(dtype)


def _compute_dtype(u: Tensor) -> torch.dtype:
    return torch.promote_types(u.dtype, torch.float32)


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


def _chunk_rows(length: int, n_state: int, channels: int, itemsize: int) -> int:
    """Batch rows per chunk: one (rows, L, N, D) work tensor holds about CHUNK_BYTES."""
    return max(1, CHUNK_BYTES // (length * n_state * channels * itemsize))


class _Workspace:
    """Reusable flat buffers, viewed as contiguous (…, N, D) tensors of any smaller chunk."""

    def __init__(self, numel: int, like: Tensor, count: int) -> None:
        self.buffers = [like.new_empty(numel) for _ in range(count)]

    def view(self, i: int, *shape: int) -> Tensor:
        return self.buffers[i][: math.prod(shape)].view(shape)


class _EverySlot(torch.autograd.Function):
    """y_t = Σ_n C_t[n] s_t[·, n] for every slot (the D skip is the caller's), batch-first
    inputs v = Δ·u, Δ (b, L, D), A (D, N), B, C (b, L, N). Work tensors are time-major
    (L, rows, N, D), so that each step of the recurrence is one contiguous slice."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx,
        v: Tensor,
        delta: Tensor,
        A: Tensor,
        B: Tensor,
        C: Tensor,
    ) -> Tensor:
        batch, length, channels = v.shape
        n_state = A.shape[1]
        rows = _chunk_rows(length, n_state, channels, v.element_size())
        a2 = (A * LOG2_E).T.contiguous()  # (N, D)
        y = torch.empty_like(v)
        work = _Workspace(length * min(rows, batch) * n_state * channels, v, 2)
        vt, dt, bt, ct = (t.transpose(0, 1) for t in (v, delta, B, C))  # (L, b, ·) views
        for lo in range(0, batch, rows):
            hi = min(lo + rows, batch)
            shape = (length, hi - lo, n_state, channels)
            decay, states = work.view(0, *shape), work.view(1, *shape)
            _states(dt[:, lo:hi], vt[:, lo:hi], bt[:, lo:hi], a2, decay, states)
            out = torch.bmm(
                ct[:, lo:hi].reshape(-1, 1, n_state), states.view(-1, n_state, channels)
            )
            y[lo:hi] = out.view(length, hi - lo, channels).transpose(0, 1)
        ctx.save_for_backward(v, delta, A, B, C)
        return y

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, grad_y: Tensor
    ) -> tuple[Tensor, ...]:
        v, delta, A, B, C = ctx.saved_tensors  # type: ignore[attr-defined]
        batch, length, channels = v.shape
        n_state = A.shape[1]
        rows = _chunk_rows(length, n_state, channels, v.element_size())
        a2 = (A * LOG2_E).T.contiguous()
        a_t = A.T.contiguous()
        gy = grad_y.transpose(0, 1)  # (L, b, D) view
        grad_v, grad_delta = torch.empty_like(v), torch.empty_like(v)
        grad_b, grad_c = torch.empty_like(B), torch.empty_like(B)
        grad_a = v.new_zeros(n_state, channels)
        work = _Workspace(length * min(rows, batch) * n_state * channels, v, 4)
        vt, dt, bt, ct = (t.transpose(0, 1) for t in (v, delta, B, C))
        for lo in range(0, batch, rows):
            hi = min(lo + rows, batch)
            r = slice(lo, hi)
            shape = (length, hi - lo, n_state, channels)
            decay, states, adjoint, scratch = (work.view(i, *shape) for i in range(4))
            _states(dt[:, r], vt[:, r], bt[:, r], a2, decay, states)
            torch.mul(ct[:, r, :, None], gy[:, r, None, :], out=adjoint)
            for t in range(length - 2, -1, -1):
                adjoint[t].addcmul_(decay[t + 1], adjoint[t + 1])
            flat = adjoint.view(-1, n_state, channels)
            out = torch.bmm(bt[:, r].reshape(-1, 1, n_state), flat)
            grad_v[r] = out.view(length, hi - lo, channels).transpose(0, 1)
            grad_c[r] = torch.mul(states, gy[:, r, None, :], out=scratch).sum(-1).transpose(0, 1)
            grad_b[r] = torch.mul(adjoint, vt[:, r, None, :], out=scratch).sum(-1).transpose(0, 1)
            q = decay.mul_(adjoint)  # G_t ⊙ a_t, then ⊙ s_{t−1} (s_{−1} = 0)
            q[1:].mul_(states[:-1])
            q[0].zero_()
            grad_delta[r] = torch.mul(q, a_t, out=scratch).sum(2).transpose(0, 1)
            grad_a += torch.mul(q, dt[:, r, None, :], out=scratch).sum((0, 1))
        return grad_v, grad_delta, grad_a.T, grad_b, grad_c


def _states(delta: Tensor, v: Tensor, B: Tensor, a2: Tensor, decay: Tensor, states: Tensor) -> None:
    """Fill ``decay`` with a_t = 2^(Δ_t·A·log2 e) and ``states`` with s_t, time-major
    (L, rows, N, D); inputs (L, rows, ·) views."""
    torch.mul(delta[:, :, None, :], a2, out=decay).exp2_()
    torch.mul(B[..., None], v[:, :, None, :], out=states)  # the inputs Δ_t u_t ⊗ B_t
    for t in range(1, delta.shape[0]):
        states[t].addcmul_(decay[t], states[t - 1])


class _ReadoutSlot(torch.autograd.Function):
    """y[b, c] = Σ_s v[b, s, c] Σ_n exp(A[c, n] τ[b, s, c]) β[b, s, n] for batch-first v = Δ·u,
    τ (b, L, D), β = B ⊙ C_T (b, L, N) and A (D, N); work tensors (rows, L, N, D)."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, v: Tensor, tau: Tensor, beta: Tensor, A: Tensor
    ) -> Tensor:
        batch, length, channels = v.shape
        n_state = A.shape[1]
        rows = _chunk_rows(length, n_state, channels, v.element_size())
        a2 = (A * LOG2_E).T.contiguous()
        kernel = v.new_empty(batch, length, channels)  # K_s = Σ_n E_s β_s
        work = _Workspace(length * min(rows, batch) * n_state * channels, v, 1)
        for lo in range(0, batch, rows):
            hi = min(lo + rows, batch)
            weights = work.view(0, hi - lo, length, n_state, channels)
            torch.mul(tau[lo:hi, :, None, :], a2, out=weights).exp2_()
            out = torch.bmm(
                beta[lo:hi].reshape(-1, 1, n_state), weights.view(-1, n_state, channels)
            )
            kernel[lo:hi] = out.view(hi - lo, length, channels)
        ctx.save_for_backward(v, tau, beta, A, kernel)
        return (v * kernel).sum(1)

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, grad_y: Tensor
    ) -> tuple[Tensor, ...]:
        v, tau, beta, A, kernel = ctx.saved_tensors  # type: ignore[attr-defined]
        batch, length, channels = v.shape
        n_state = A.shape[1]
        rows = _chunk_rows(length, n_state, channels, v.element_size())
        a2 = (A * LOG2_E).T.contiguous()
        a_t = A.T.contiguous()
        grad_v = grad_y[:, None, :] * kernel
        w = grad_y[:, None, :] * v  # ∂L/∂K
        grad_tau = torch.empty_like(v)
        grad_beta = torch.empty_like(beta)
        grad_a = v.new_zeros(n_state, channels)
        work = _Workspace(length * min(rows, batch) * n_state * channels, v, 2)
        for lo in range(0, batch, rows):
            hi = min(lo + rows, batch)
            shape = (hi - lo, length, n_state, channels)
            weights, scratch = work.view(0, *shape), work.view(1, *shape)
            torch.mul(tau[lo:hi, :, None, :], a2, out=weights).exp2_()
            w_r = w[lo:hi, :, None, :]
            grad_beta[lo:hi] = torch.mul(weights, w_r, out=scratch).sum(-1)
            z = weights.mul_(beta[lo:hi, :, :, None]).mul_(w_r)  # ∂L/∂(A τ)
            grad_tau[lo:hi] = torch.mul(z, a_t, out=scratch).sum(2)
            grad_a += torch.mul(z, tau[lo:hi, :, None, :], out=scratch).sum((0, 1))
        return grad_v, grad_tau, grad_beta, grad_a.T
