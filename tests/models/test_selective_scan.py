"""The pure-PyTorch selective scan against a naive float64 per-step loop (values and gradients)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from seqbench.models.layers.selective_scan import selective_scan


def naive_scan(u, delta, A, B, C, D):  # type: ignore[no-untyped-def]
    """model-reference §2.2 step 5 written out one step at a time, in float64."""
    u, delta, A, B, C, D = (t.double() for t in (u, delta, A, B, C, D))
    batch, length, channels = u.shape
    state = torch.zeros(batch, channels, A.shape[1], dtype=torch.float64)
    out = []
    for t in range(length):
        decay = torch.exp(delta[:, t, :, None] * A)
        state = decay * state + (delta[:, t] * u[:, t])[:, :, None] * B[:, t, None, :]
        out.append((state * C[:, t, None, :]).sum(-1) + D * u[:, t])
    return torch.stack(out, 1)


def inputs(batch: int, length: int, channels: int, n_state: int, seed: int = 0):  # type: ignore[no-untyped-def]
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(batch, length, channels, generator=g)
    delta = F.softplus(torch.randn(batch, length, channels, generator=g) - 1)
    A = -torch.exp(torch.randn(channels, n_state, generator=g) * 0.5)
    B = torch.randn(batch, length, n_state, generator=g)
    C = torch.randn(batch, length, n_state, generator=g)
    D = torch.randn(channels, generator=g)
    return [t.requires_grad_() for t in (u, delta, A, B, C, D)]


SHAPES = [(3, 7, 5, 4), (4, 13, 8, 16), (2, 50, 16, 32), (5, 1, 3, 7), (1, 33, 6, 2)]


def relative_error(ours: torch.Tensor, ref: torch.Tensor) -> float:
    ours, ref = ours.detach().double(), ref.detach()
    return float((ours - ref).abs().max() / ref.abs().max().clamp_min(1e-30))


@pytest.mark.parametrize(("batch", "length", "channels", "n_state"), SHAPES)
def test_values_and_gradients_match_a_float64_loop(
    batch: int, length: int, channels: int, n_state: int
) -> None:
    args = inputs(batch, length, channels, n_state)
    ours = selective_scan(*args)
    ref = naive_scan(*args)
    assert ours.dtype == torch.float32 and ours.shape == (batch, length, channels)
    assert relative_error(ours, ref) < 1e-5
    weights = torch.randn(ours.shape, generator=torch.Generator().manual_seed(9))
    grads = torch.autograd.grad((ours * weights).sum(), args)
    ref_grads = torch.autograd.grad((ref * weights.double()).sum(), args)
    names = ["u", "delta", "A", "B", "C", "D"]
    for name, mine, theirs in zip(names, grads, ref_grads, strict=True):
        if length == 1 and name == "A":  # s_0 = 0: A gets no gradient from one step
            assert mine.abs().max() == 0 and theirs.abs().max() == 0
            continue
        assert relative_error(mine, theirs) < 1e-5, name


def test_backward_chunks_give_the_same_gradients() -> None:
    """A budget of one batch row per chunk against one chunk for everything: identical sums."""
    args = inputs(6, 9, 4, 3, seed=1)
    grads = []
    for budget in (1, 10**9):
        y = selective_scan(*args, state_budget_bytes=budget)
        grads.append(torch.autograd.grad(y.square().sum(), args))
    for one, other in zip(*grads, strict=True):
        torch.testing.assert_close(one, other, rtol=1e-6, atol=1e-7)


def test_low_precision_inputs_are_scanned_in_float32() -> None:
    args = [t.detach() for t in inputs(2, 11, 4, 8, seed=2)]
    half = [t.bfloat16() for t in args]
    ours = selective_scan(*half)
    assert ours.dtype == torch.bfloat16
    ref = naive_scan(*[t.float() for t in half])
    assert relative_error(ours.float(), ref) < 1e-2  # only the output's bfloat16 rounding


def test_shape_errors_name_the_expected_layout() -> None:
    u, delta, A, B, C, D = inputs(2, 5, 4, 3)
    with pytest.raises(ValueError, match=r"\(batch, L, D\)"):
        selective_scan(u[0], delta[0], A, B, C, D)
    with pytest.raises(ValueError, match=r"expected A \(D, N\)"):
        selective_scan(u, delta, A.T, B, C, D)
