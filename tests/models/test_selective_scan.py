"""The selective scans (every slot, one readout slot per row, and the reference) against a naive
float64 per-step loop (values and gradients), and against each other. Every test runs twice:
on the pure-PyTorch path and on the compiled CPU loops (``scan_cpu``)."""

from __future__ import annotations

import os

import pytest
import torch
import torch.nn.functional as F

from seqbench.models.layers import scan_cpu
from seqbench.models.layers import selective_scan as fast
from seqbench.models.layers.scan_reference import selective_scan_reference
from seqbench.models.layers.selective_scan import selective_scan, selective_scan_last


@pytest.fixture(params=["torch", "compiled"], autouse=True)
def cpu_scan(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """SEQBENCH_CPU_SCAN for the test; the compiled loops are skipped only where they cannot be
    built and CI is not set (CI must build them)."""
    monkeypatch.setenv(scan_cpu.ENV, request.param)
    if request.param == "compiled":
        require_compiled()
    return request.param


def require_compiled() -> None:
    why = scan_cpu.describe()
    if why != "compiled":
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but the compiled CPU scan does not build: {why}")
        pytest.skip(f"the compiled CPU scan does not build here: {why}")


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
NAMES = ["u", "delta", "A", "B", "C", "D"]
SCANS = {"fast": selective_scan, "reference": selective_scan_reference}


def relative_error(ours: torch.Tensor, ref: torch.Tensor) -> float:
    ours, ref = ours.detach().double(), ref.detach()
    return float((ours - ref).abs().max() / ref.abs().max().clamp_min(1e-30))


def assert_gradients_close(
    grads: tuple[torch.Tensor, ...], ref_grads: tuple[torch.Tensor, ...], one_step: bool
) -> None:
    for name, mine, theirs in zip(NAMES, grads, ref_grads, strict=True):
        if one_step and name == "A":  # s_0 = 0: A gets no gradient from one step
            assert mine.abs().max() == 0 and theirs.abs().max() == 0
            continue
        assert relative_error(mine, theirs) < 1e-5, name


@pytest.mark.parametrize("scan", sorted(SCANS))
@pytest.mark.parametrize(("batch", "length", "channels", "n_state"), SHAPES)
def test_values_and_gradients_match_a_float64_loop(
    scan: str, batch: int, length: int, channels: int, n_state: int
) -> None:
    args = inputs(batch, length, channels, n_state)
    ours = SCANS[scan](*args)
    ref = naive_scan(*args)
    assert ours.dtype == torch.float32 and ours.shape == (batch, length, channels)
    assert relative_error(ours, ref) < 1e-5
    weights = torch.randn(ours.shape, generator=torch.Generator().manual_seed(9))
    grads = torch.autograd.grad((ours * weights).sum(), args)
    ref_grads = torch.autograd.grad((ref * weights.double()).sum(), args)
    assert_gradients_close(grads, ref_grads, length == 1)


def readout_slots(batch: int, length: int, seed: int = 3) -> torch.Tensor:
    """A slot per row, the last slot and slot 0 among them (where the batch allows)."""
    last = torch.randint(0, length, (batch,), generator=torch.Generator().manual_seed(seed))
    last[0] = length - 1
    last[-1] = 0 if batch > 1 else last[-1]
    return last


@pytest.mark.parametrize(("batch", "length", "channels", "n_state"), SHAPES)
def test_readout_scan_matches_the_float64_loop_at_its_slot(
    batch: int, length: int, channels: int, n_state: int
) -> None:
    args = inputs(batch, length, channels, n_state)
    u, delta, A, B, C, D = args
    last = readout_slots(batch, length)
    rows = torch.arange(batch)
    ours = selective_scan_last(u, delta, A, B, C[rows, last], D, last)
    ref = naive_scan(*args)[rows, last]
    assert ours.dtype == torch.float32 and ours.shape == (batch, channels)
    assert relative_error(ours, ref) < 1e-5
    weights = torch.randn(ours.shape, generator=torch.Generator().manual_seed(9))
    grads = torch.autograd.grad((ours * weights).sum(), args)
    ref_grads = torch.autograd.grad((ref * weights.double()).sum(), args)
    assert_gradients_close(grads, ref_grads, bool((last == 0).all()))


def test_the_readout_never_reads_slots_after_its_own() -> None:
    u, delta, A, B, C, D = (t.detach() for t in inputs(4, 12, 6, 5, seed=4))
    last = torch.tensor([11, 5, 0, 7])
    rows = torch.arange(4)
    before = selective_scan_last(u, delta, A, B, C[rows, last], D, last)
    after_slot = torch.arange(12)[None, :, None] > last[:, None, None]
    junk = [torch.where(after_slot, torch.rand_like(t) * 9, t) for t in (u, delta, B)]
    after = selective_scan_last(junk[0], junk[1], A, junk[2], C[rows, last], D, last)
    torch.testing.assert_close(after, before, rtol=0, atol=0)


@pytest.mark.parametrize("scan", ["every_slot", "readout"])
def test_chunks_of_one_row_give_the_same_numbers(
    scan: str, monkeypatch: pytest.MonkeyPatch, cpu_scan: str
) -> None:
    """The batch processed one row per chunk against one chunk for everything (the PyTorch
    path's chunks; the compiled loops have none)."""
    if cpu_scan != "torch":
        pytest.skip("chunks are the PyTorch path's")
    args = inputs(6, 9, 4, 3, seed=1)
    u, delta, A, B, C, D = args
    last = readout_slots(6, 9)
    results = []
    for budget in (1, 10**9):
        monkeypatch.setattr(fast, "CHUNK_BYTES", dict.fromkeys(fast.CHUNK_BYTES, budget))
        if scan == "every_slot":
            y = selective_scan(*args)
        else:
            y = selective_scan_last(u, delta, A, B, C[torch.arange(6), last], D, last)
        results.append((y, *torch.autograd.grad(y.square().sum(), args)))
    for one, other in zip(*results, strict=True):
        torch.testing.assert_close(one, other, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("softplus", [False, True])
def test_delta_bias_and_softplus_inside_the_scans(softplus: bool) -> None:
    """As mamba_ssm's selective_scan_fn: Δ = softplus(Δ_in + bias), or Δ_in + bias."""
    u, delta, A, B, C, D = inputs(4, 9, 6, 5, seed=6)
    pre = (delta.detach() - 0.5 if softplus else delta.detach()).requires_grad_()
    bias = (torch.rand(6, generator=torch.Generator().manual_seed(1)) * 0.2).requires_grad_()
    ref_delta = F.softplus(pre + bias) if softplus else pre + bias  # > 0 either way
    last = readout_slots(4, 9)
    rows = torch.arange(4)
    kwargs = {"delta_bias": bias, "delta_softplus": softplus}
    ours = [
        selective_scan(u, pre, A, B, C, D, **kwargs),  # type: ignore[arg-type]
        selective_scan_last(u, pre, A, B, C[rows, last], D, last, **kwargs),  # type: ignore[arg-type]
    ]
    ref = naive_scan(u, ref_delta, A, B, C, D)
    args = [u, pre, A, B, C, D, bias]
    for mine, theirs in zip(ours, [ref, ref[rows, last]], strict=True):
        assert relative_error(mine, theirs) < 1e-5
        weights = torch.randn(mine.shape, generator=torch.Generator().manual_seed(4))
        for g, r in zip(
            torch.autograd.grad((mine * weights).sum(), args),
            torch.autograd.grad((theirs * weights.double()).sum(), args, retain_graph=True),
            strict=True,
        ):
            assert relative_error(g, r) < 1e-5


def test_fast_scan_equals_the_reference_scan() -> None:
    """At the sizes of the official configs (d_inner 128, N 32), batch 9, L 50."""
    args = inputs(9, 50, 128, 32, seed=5)
    fast_y, ref_y = selective_scan(*args), selective_scan_reference(*args)
    torch.testing.assert_close(fast_y, ref_y, rtol=1e-5, atol=1e-5)
    weights = torch.randn(fast_y.shape, generator=torch.Generator().manual_seed(2))
    for mine, theirs in zip(
        torch.autograd.grad((fast_y * weights).sum(), args),
        torch.autograd.grad((ref_y * weights).sum(), args),
        strict=True,
    ):
        assert relative_error(mine, theirs.double()) < 1e-5


@pytest.mark.parametrize("scan", sorted(SCANS))
def test_low_precision_inputs_are_scanned_in_float32(scan: str) -> None:
    args = [t.detach() for t in inputs(2, 11, 4, 8, seed=2)]
    half = [t.bfloat16() for t in args]
    ours = SCANS[scan](*half)
    assert ours.dtype == torch.bfloat16
    ref = naive_scan(*[t.float() for t in half])
    assert relative_error(ours.float(), ref) < 1e-2  # only the output's bfloat16 rounding


@pytest.mark.parametrize("scan", sorted(SCANS))
def test_shape_errors_name_the_expected_layout(scan: str) -> None:
    u, delta, A, B, C, D = inputs(2, 5, 4, 3)
    with pytest.raises(ValueError, match=r"\(batch, L, D\)"):
        SCANS[scan](u[0], delta[0], A, B, C, D)
    with pytest.raises(ValueError, match=r"expected A \(D, N\)"):
        SCANS[scan](u, delta, A.T, B, C, D)


def test_readout_shape_errors() -> None:
    u, delta, A, B, C, D = inputs(2, 5, 4, 3)
    with pytest.raises(ValueError, match=r"C_last \(batch, N\)"):
        selective_scan_last(u, delta, A, B, C, D, torch.tensor([4, 4]))
    with pytest.raises(ValueError, match=r"last must be \(batch,\)"):
        selective_scan_last(u, delta, A, B, C[:, -1], D, torch.tensor([4]))
