"""How far the CPU readout scan is from its arithmetic floor: the decays exp(Δ·A) themselves.

An exact selective scan computes one decay exp(A[c, n]·τ) per (row, slot, channel, state): the
step-by-step recurrence, the readout contraction of ``selective_scan_last`` and mamba_ssm's CUDA
kernel alike. At Mamba4Rec's official size on ml-100k (batch 2048, L 50, d_inner 128, N 32)
that is 2048·50·128·32 = 419 M decays per forward pass, and the backward pass needs them again.
This script times, on random inputs of that shape (one batch, Δ as softplus of the usual init):

- ``readout``: ``selective_scan_last`` forward + backward, as one training step runs it;
- ``decays``: only making the decays (the multiply, the clamp at 2^-100 and exp2 over the same
  elements, cache-sized chunks, as the readout does) once for the forward and once for the
  backward: the part no exact reformulation removes;
- ``fused`` (``--compile``): the forward contraction K = Σ_n 2^(A·τ)·β compiled by
  torch.compile (inductor fuses the decays into the sum: no decay tensor is written), to bound
  what a fused CPU kernel would gain.

    python benchmarks/readout_floor.py --out benchmarks/results/readout_floor_cpu.json [--compile]

Medians of ``--repeats`` runs after a warm-up.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def median_seconds(fn: Any, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=2048)
    parser.add_argument("--length", type=int, default=50)
    parser.add_argument("--channels", type=int, default=128)
    parser.add_argument("--states", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--compile", action="store_true", help="also time a fused compiled kernel")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    import torch
    import torch.nn.functional as F

    from seqbench import environment
    from seqbench.models.layers.selective_scan import (
        CHUNK_BYTES,
        LOG2_E,
        MIN_LOG2_WEIGHT,
        _weights,  # the readout's own decay step, timed alone
        selective_scan_last,
    )

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    b, length, d, n = args.batch, args.length, args.channels, args.states
    u = torch.randn(b, length, d, requires_grad=True)
    dt_bias = torch.log(torch.expm1(torch.empty(d).uniform_(0.001, 0.1)))  # Mamba's Δ init
    pre = (0.1 * torch.randn(b, length, d)).requires_grad_()
    A = -torch.arange(1, n + 1, dtype=torch.float32).repeat(d, 1)
    B = torch.randn(b, length, n, requires_grad=True)
    C = torch.randn(b, n, requires_grad=True)
    D = torch.ones(d)
    last = torch.full((b,), length - 1)
    grad = torch.randn(b, d)

    def readout() -> None:
        y = selective_scan_last(u, pre, A, B, C, D, last, delta_bias=dt_bias, delta_softplus=True)
        y.backward(grad)

    tau = F.softplus(pre.detach() + dt_bias).flip(1).cumsum(1).flip(1).reshape(-1, d)
    a2 = (A * LOG2_E).T.contiguous()
    slots = max(1, CHUNK_BYTES["readout"] // (n * d * 4))
    work = torch.empty(slots, n, d)

    def decays() -> None:
        for _ in range(2):  # forward, and again in the backward pass
            for lo in range(0, tau.shape[0], slots):
                t = tau[lo : lo + slots]
                _weights(t, a2, work[: t.shape[0]])

    figures: dict[str, Any] = {
        "readout_fwd_bwd_s": median_seconds(readout, args.repeats),
        "decays_x2_s": median_seconds(decays, args.repeats),
    }
    figures["decay_share"] = figures["decays_x2_s"] / figures["readout_fwd_bwd_s"]
    if args.compile:
        beta = torch.randn(tau.shape[0], n)

        def contraction(t: Any, w: Any, a: Any) -> Any:
            return (
                torch.exp2(torch.clamp(t[:, None, :] * a, min=MIN_LOG2_WEIGHT)) * w[..., None]
            ).sum(1)

        def eager_forward() -> None:
            for lo in range(0, tau.shape[0], slots):
                t, bt = tau[lo : lo + slots], beta[lo : lo + slots]
                _weights(t, a2, work[: t.shape[0]]).mul_(bt[..., None]).sum(1)

        start = time.perf_counter()
        fused = torch.compile(contraction, dynamic=False)
        fused(tau, beta, a2)
        figures["compile_s"] = time.perf_counter() - start
        figures["forward_eager_s"] = median_seconds(eager_forward, args.repeats)
        figures["forward_fused_s"] = median_seconds(lambda: fused(tau, beta, a2), args.repeats)
        figures["fused_speedup"] = figures["forward_eager_s"] / figures["forward_fused_s"]
    report = {
        "benchmark": "readout_floor",
        "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "environment": environment.describe(None),
        "shape": {"batch": b, "length": length, "d_inner": d, "d_state": n},
        "decays_per_pass": b * length * d * n,
        "threads": args.threads,
        "figures": figures,
    }
    print(json.dumps(report["figures"], indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
