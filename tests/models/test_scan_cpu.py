"""The compiled CPU loops of the selective scan (``scan_cpu``) against the pure-PyTorch path at
the official sizes, their independence of the thread count, and how SEQBENCH_CPU_SCAN chooses."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from seqbench.errors import ConfigError
from seqbench.models.layers import scan_cpu
from seqbench.models.layers.selective_scan import selective_scan, selective_scan_last
from tests.models.test_selective_scan import naive_scan, relative_error, require_compiled

BATCH, LENGTH, CHANNELS, N_STATE = 24, 50, 128, 32


def official_inputs(seed: int = 0) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Inputs as a Mamba block makes them: Δ before its bias and softplus, spread from about
    1e-4 (where softplus' slope needs care) to about 5; readout slots including 0 and L − 1."""
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(BATCH, LENGTH, CHANNELS, generator=g)
    pre = torch.rand(BATCH, LENGTH, CHANNELS, generator=g) * 14 - 9
    A = -torch.exp(torch.randn(CHANNELS, N_STATE, generator=g) * 0.5 + 1)
    B = torch.randn(BATCH, LENGTH, N_STATE, generator=g)
    C = torch.randn(BATCH, LENGTH, N_STATE, generator=g)
    D = torch.randn(CHANNELS, generator=g)
    bias = torch.randn(CHANNELS, generator=g) * 0.1
    last = torch.randint(0, LENGTH, (BATCH,), generator=g)
    last[0], last[1] = 0, LENGTH - 1
    return [t.requires_grad_() for t in (u, pre, A, B, C, D, bias)], last


def run_both(
    monkeypatch: pytest.MonkeyPatch, seed: int = 0
) -> dict[str, dict[str, list[torch.Tensor]]]:
    """Values and gradients of both scans on both paths."""
    out: dict[str, dict[str, list[torch.Tensor]]] = {}
    args, last = official_inputs(seed)
    u, pre, A, B, C, D, bias = args
    rows = torch.arange(BATCH)
    weights = torch.randn(BATCH, LENGTH, CHANNELS, generator=torch.Generator().manual_seed(1))
    for mode in ("torch", "compiled"):
        monkeypatch.setenv(scan_cpu.ENV, mode)
        kwargs = {"delta_bias": bias, "delta_softplus": True}
        every = selective_scan(u, pre, A, B, C, D, **kwargs)  # type: ignore[arg-type]
        readout = selective_scan_last(u, pre, A, B, C[rows, last], D, last, **kwargs)  # type: ignore[arg-type]
        out[mode] = {
            "every": [every, *torch.autograd.grad((every * weights).sum(), args)],
            "readout": [readout, *torch.autograd.grad((readout * weights[:, 0]).sum(), args)],
        }
    return out


NAMES = ["y", "u", "pre", "A", "B", "C", "D", "bias"]


def test_the_compiled_loops_give_the_pytorch_paths_numbers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    require_compiled()
    results = run_both(monkeypatch)
    for scan in ("every", "readout"):
        for name, mine, theirs in zip(
            NAMES, results["compiled"][scan], results["torch"][scan], strict=True
        ):
            assert relative_error(mine, theirs.double()) < 2e-6, (scan, name)


def test_the_softplus_slope_holds_for_tiny_and_large_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    """∂L/∂(pre + bias) = ∂L/∂Δ · sigmoid(pre + bias), which the loops form from Δ: per element
    against float64 autograd for Δ from about 2e-9 to 30. Positive u, B, C and a negligible A
    make every ∂L/∂Δ a sum of positive terms, so float32 holds each element to about 1e-6
    (1 − e^(−Δ) taken directly would be off by 6e-5 at Δ = 1e-3 and entirely below 1e-7)."""
    require_compiled()
    monkeypatch.setenv(scan_cpu.ENV, "compiled")
    g = torch.Generator().manual_seed(3)
    u = torch.rand(4, 40, 16, generator=g) + 0.5
    pre = torch.linspace(-20, 30, 4 * 40 * 16).reshape(4, 40, 16)[:, torch.randperm(40), :]
    pre.requires_grad_()
    A = -torch.rand(16, 8, generator=g) * 1e-6
    B = torch.rand(4, 40, 8, generator=g) + 0.5
    C = torch.rand(4, 40, 8, generator=g) + 0.5
    for scan in ("every", "readout"):
        pre64 = pre.detach().double().requires_grad_()
        if scan == "every":
            y = selective_scan(u, pre, A, B, C, None, delta_softplus=True)
            ref_y = naive_scan(u, F.softplus(pre64), A, B, C, torch.zeros(16))
        else:
            last = torch.full((4,), 39)
            y = selective_scan_last(u, pre, A, B, C[:, -1], None, last, delta_softplus=True)
            ref_y = naive_scan(u, F.softplus(pre64), A, B, C, torch.zeros(16))[:, -1]
        (grad,) = torch.autograd.grad(y.sum(), pre)
        (ref,) = torch.autograd.grad(ref_y.sum(), pre64)
        assert float(((grad.double() - ref).abs() / ref.abs()).max()) < 1e-5, scan


def test_results_do_not_depend_on_the_thread_count(monkeypatch: pytest.MonkeyPatch) -> None:
    require_compiled()
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = run_both(monkeypatch, seed=2)["compiled"]
        torch.set_num_threads(3)
        three = run_both(monkeypatch, seed=2)["compiled"]
    finally:
        torch.set_num_threads(threads)
    for scan in ("every", "readout"):
        for name, a, b in zip(NAMES, one[scan], three[scan], strict=True):
            assert torch.equal(a, b), (scan, name)


def test_the_mode_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(scan_cpu.ENV, "fast")
    with pytest.raises(ConfigError, match="SEQBENCH_CPU_SCAN='fast': expected one of auto"):
        scan_cpu.kernels()
    monkeypatch.setenv(scan_cpu.ENV, "torch")
    assert scan_cpu.kernels() is None
    assert scan_cpu.describe() == "torch (SEQBENCH_CPU_SCAN=torch)"


def test_a_failed_build_falls_back_with_a_warning_or_fails_when_required(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(scan_cpu, "_build", lambda: "RuntimeError: Ninja is required")
    scan_cpu._warn_once.cache_clear()
    monkeypatch.setenv(scan_cpu.ENV, "compiled")
    with pytest.raises(ConfigError, match=r"SEQBENCH_CPU_SCAN=compiled but .*Ninja is required"):
        scan_cpu.kernels()
    monkeypatch.setenv(scan_cpu.ENV, "auto")
    args = [t.detach() for t in official_inputs()[0]]
    with pytest.warns(RuntimeWarning, match=r"Ninja is required.*pure-PyTorch scan"):
        fallback = selective_scan(*args[:6], delta_bias=args[6], delta_softplus=True)
    monkeypatch.setenv(scan_cpu.ENV, "torch")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        reference = selective_scan(*args[:6], delta_bias=args[6], delta_softplus=True)
    assert torch.equal(fallback, reference)
    assert scan_cpu.describe() == "torch (SEQBENCH_CPU_SCAN=torch)"
    monkeypatch.setenv(scan_cpu.ENV, "auto")
    assert scan_cpu.describe() == "torch (RuntimeError: Ninja is required)"


def test_float64_and_other_devices_keep_the_pytorch_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(scan_cpu.ENV, "compiled")
    assert scan_cpu.usable(torch.zeros(2, dtype=torch.float64)) is None
    assert scan_cpu.usable(torch.zeros(2, device="meta")) is None


def test_readout_slots_out_of_range_are_refused() -> None:
    args, last = official_inputs()
    u, pre, A, B, C, D, _ = (t.detach() for t in args)
    last = last.clone()
    last[3] = LENGTH
    with pytest.raises(ValueError, match=r"last must be slots in \[0, 49\], got 0\.\.50"):
        selective_scan_last(u, pre, A, B, C[:, 0], D, last)


def describe_in_a_fresh_process(**env: str) -> str:
    code = "from seqbench.models.layers import scan_cpu; print(scan_cpu.describe())"
    done = subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_the_build_is_kept_per_machine_and_a_missing_compiler_is_named(tmp_path: Path) -> None:
    require_compiled()
    folder = {"SEQBENCH_KERNEL_DIR": str(tmp_path), scan_cpu.ENV: "auto"}
    assert describe_in_a_fresh_process(**folder) == "compiled"
    (library,) = tmp_path.glob("scan_cpu-*.so")
    built = library.stat().st_mtime_ns
    assert describe_in_a_fresh_process(**folder) == "compiled"
    assert library.stat().st_mtime_ns == built  # loaded, not rebuilt
    other = tmp_path / "other"
    missing = describe_in_a_fresh_process(
        SEQBENCH_KERNEL_DIR=str(other), CXX=str(tmp_path / "no-such-compiler")
    )
    assert missing.startswith("torch (FileNotFoundError") and "no-such-compiler" in missing
    assert not list(other.glob("*.so"))
