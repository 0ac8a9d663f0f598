"""The reference selective scan: seqbench's first pure-PyTorch scan, kept as the twin that the
fast scans of :mod:`seqbench.models.layers.selective_scan` are tested against.

It walks through time one step at a time, exactly as the recurrence is written, and is lean in
memory; it is about four times slower than the fast scan for a training step (benchmarks/scan.py).

Arithmetic of ``mamba_ssm``'s ``selective_scan_ref`` (model-reference §2.2, step 5), per batch
row, channel c and state n, with a zero initial state::

    s_t[c, n] = exp(Δ_t[c]·A[c, n]) · s_{t−1}[c, n] + Δ_t[c]·B_t[n]·u_t[c]
    y_t[c]    = Σ_n s_t[c, n]·C_t[n] + D[c]·u_t[c]

in float32 whatever the input dtype (the reference upcasts too). Δ arrives already biased and
soft-plussed, and the gate ``y·SiLU(z)`` is applied by the caller, so that both stay ordinary
autograd operations.

Why a custom autograd function: differentiating the loop with autograd keeps every state
(B·L·D·N floats, 1.7 GB for batch 2048, L 50, D 128, N 32, several times over), which blows any
CPU memory budget. Here the forward pass keeps only its inputs; the backward pass recomputes
the states one batch chunk at a time (chunk chosen so that a chunk's states fit
``state_budget_bytes``) and walks back through time with the adjoint recursion

    g_t = ∂L/∂s_t = g_{t+1}·exp(Δ_{t+1}A) + ∂L/∂y_t ⊗ C_t,

from which every input gradient follows in closed form (see ``_backward_chunk``). Memory is then
bounded by one chunk's states, whatever the batch size. Each time step is a handful of in-place
tensor operations on time-major (L, B, ·) slices, so no per-sample Python is run.
"""

from __future__ import annotations

import torch
from torch import Tensor

#: Upper bound of the states a backward chunk keeps (L × chunk × D × N float32 values).
STATE_BUDGET_BYTES = 192 * 2**20
#: Batch rows processed together in the forward loop (keeps a step's tensors in the CPU cache).
FORWARD_CHUNK = 256


def selective_scan_reference(
    u: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None = None,
    *,
    state_budget_bytes: int = STATE_BUDGET_BYTES,
) -> Tensor:
    """The scan, batch-first: u, delta (batch, L, D); A (D, N); B, C (batch, L, N); D (D,).

    Returns y (batch, L, D) in ``u``'s dtype, computed in float32 (float64 inputs in float64).
    """
    if u.shape != delta.shape or u.dim() != 3:
        raise ValueError(f"u and delta must both be (batch, L, D); got {u.shape}, {delta.shape}")
    batch, length, channels = u.shape
    if A.shape[0] != channels or B.shape != (batch, length, A.shape[1]) or B.shape != C.shape:
        raise ValueError(
            f"shapes do not fit: u {tuple(u.shape)}, A {tuple(A.shape)}, B {tuple(B.shape)}, "
            f"C {tuple(C.shape)}; expected A (D, N) and B, C (batch, L, N)"
        )
    dtype = u.dtype
    compute = torch.promote_types(dtype, torch.float32)  # float64 stays float64
    if D is None:
        D = u.new_zeros(channels)
    # time-major contiguous copies: one time step is then one contiguous slice
    tm = [t.to(compute).transpose(0, 1).contiguous() for t in (u, delta, B, C)]
    y = _SelectiveScan.apply(*tm[:2], A.to(compute), *tm[2:], D.to(compute), state_budget_bytes)
    return y.transpose(0, 1).to(dtype)


class _SelectiveScan(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx,
        u: Tensor,
        delta: Tensor,
        A: Tensor,
        B: Tensor,
        C: Tensor,
        D: Tensor,
        state_budget_bytes: int,
    ) -> Tensor:
        batch = u.shape[1]
        y = torch.empty_like(u)
        for lo in range(0, batch, FORWARD_CHUNK):
            hi = min(lo + FORWARD_CHUNK, batch)
            _forward_chunk(u[:, lo:hi], delta[:, lo:hi], A, B[:, lo:hi], C[:, lo:hi], y[:, lo:hi])
        y.addcmul_(u, D)
        ctx.save_for_backward(u, delta, A, B, C, D)
        ctx.state_budget_bytes = state_budget_bytes  # type: ignore[attr-defined]
        return y

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, grad_y: Tensor
    ) -> tuple[Tensor | None, ...]:
        u, delta, A, B, C, D = ctx.saved_tensors  # type: ignore[attr-defined]
        grad_y = grad_y.contiguous()
        length, batch, channels = u.shape
        n_state = A.shape[1]
        per_row = length * channels * n_state * u.element_size()
        chunk = max(1, min(batch, ctx.state_budget_bytes // per_row))  # type: ignore[attr-defined]
        grad_u = torch.empty_like(u)
        grad_delta = torch.empty_like(delta)
        grad_B = torch.empty_like(B)
        grad_C = torch.empty_like(C)
        grad_A = torch.zeros_like(A)
        for lo in range(0, batch, chunk):
            rows = slice(lo, min(lo + chunk, batch))
            _backward_chunk(
                u[:, rows], delta[:, rows], A, B[:, rows], C[:, rows], grad_y[:, rows],
                grad_u[:, rows], grad_delta[:, rows], grad_A, grad_B[:, rows], grad_C[:, rows],
            )  # fmt: skip
        grad_u.addcmul_(grad_y, D)
        grad_D = (grad_y * u).sum((0, 1))
        return grad_u, grad_delta, grad_A, grad_B, grad_C, grad_D, None


def _forward_chunk(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, y: Tensor) -> None:
    """Writes Σ_n s_t·C_t into ``y`` (time-major views of one batch chunk)."""
    length, rows, channels = u.shape
    state = u.new_zeros(rows, channels, A.shape[1])
    decay = torch.empty_like(state)
    drive = delta * u  # Δ_t·u_t, (L, rows, D)
    for t in range(length):
        torch.mul(delta[t].unsqueeze(-1), A, out=decay).exp_()
        state.mul_(decay).addcmul_(drive[t].unsqueeze(-1), B[t].unsqueeze(1))
        torch.bmm(state, C[t].unsqueeze(-1), out=y[t].unsqueeze(-1))


def _backward_chunk(
    u: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    grad_y: Tensor,
    grad_u: Tensor,
    grad_delta: Tensor,
    grad_A: Tensor,
    grad_B: Tensor,
    grad_C: Tensor,
) -> None:
    """Gradients of one batch chunk; ``grad_A`` accumulates, the others are written.

    With x_t = Δ_t u_t ⊗ B_t, a_t = exp(Δ_t A) and the adjoint g_t = ∂L/∂s_t:
    ∂L/∂C_t = Σ_c gy_t[c] s_t[c, :];  ∂L/∂B_t = Σ_c g_t[c, :] Δ_t[c] u_t[c];
    ∂L/∂u_t = Δ_t Σ_n g_t B_t;  ∂L/∂Δ_t = u_t Σ_n g_t B_t + Σ_n A·h_t;
    ∂L/∂A = Σ_{b,t} Δ_t h_t  with h_t = g_t ⊙ s_{t−1} ⊙ a_t.
    """
    length, rows, channels = u.shape
    n_state = A.shape[1]
    states = u.new_empty(length, rows, channels, n_state)
    drive = delta * u
    decay = u.new_empty(rows, channels, n_state)
    state = u.new_zeros(rows, channels, n_state)  # s_0
    for t in range(length):  # recompute s_1..s_L, each written in place
        torch.mul(delta[t].unsqueeze(-1), A, out=decay).exp_()
        torch.mul(states[t - 1] if t else state, decay, out=states[t])
        states[t].addcmul_(drive[t].unsqueeze(-1), B[t].unsqueeze(1))
    adjoint = u.new_zeros(rows, channels, n_state)
    h = torch.empty_like(adjoint)
    weighted = torch.zeros_like(adjoint)  # Σ_t Δ_t h_t, reduced over the rows at the end
    grad_drive = u.new_empty(rows, channels, 1)
    for t in range(length - 1, -1, -1):
        adjoint.addcmul_(grad_y[t].unsqueeze(-1), C[t].unsqueeze(1))
        torch.bmm(grad_y[t].unsqueeze(1), states[t], out=grad_C[t].unsqueeze(1))
        torch.bmm(drive[t].unsqueeze(1), adjoint, out=grad_B[t].unsqueeze(1))
        torch.bmm(adjoint, B[t].unsqueeze(-1), out=grad_drive)
        g_drive = grad_drive.squeeze(-1)
        torch.mul(g_drive, delta[t], out=grad_u[t])
        torch.mul(g_drive, u[t], out=grad_delta[t])
        if t == 0:
            break  # s_0 = 0: no decay term
        torch.mul(delta[t].unsqueeze(-1), A, out=decay).exp_()
        torch.mul(adjoint, states[t - 1], out=h).mul_(decay)
        weighted.addcmul_(h, delta[t].unsqueeze(-1))
        grad_delta[t].add_(h.mul_(A).sum(-1))
        adjoint.mul_(decay)
    grad_A.add_(weighted.sum(0))
