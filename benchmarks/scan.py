"""The selective scan alone: seqbench's scans — every slot (``seqbench``), one readout slot per
row (``readout``, the last row's slot chosen at random, half the rows full length), both on the
CPU through the fused loops where they build and again on the pure-PyTorch path
(``seqbench-torch``, ``readout-torch``: SEQBENCH_CPU_SCAN=torch), and the step-by-step reference
(``reference``) — against a naive per-step loop differentiated by autograd, and against the
mamba_ssm kernel when a CUDA GPU with it is present.

    python benchmarks/scan.py --out benchmarks/results/scan_cpu.json [--device cuda]

Shapes of the issue: batch 256, d_inner 128, d_state 32, L 50 and 200. Each measurement runs in
a fresh subprocess, so the peak memory of one implementation is not hidden by another's (CPU:
peak RSS above the process's RSS after the inputs exist; GPU: torch.cuda.max_memory_allocated
above the inputs). Times are the median of ``--repeats`` forward+backward passes after one
warm-up; the max relative difference of outputs and gradients from a float64 naive loop is
recorded too.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def naive(u, delta, A, B, C, D):  # type: ignore[no-untyped-def]
    import torch

    state = torch.zeros(u.shape[0], u.shape[2], A.shape[1], dtype=u.dtype, device=u.device)
    out = []
    for t in range(u.shape[1]):
        state = torch.exp(delta[:, t, :, None] * A) * state + (
            (delta[:, t] * u[:, t])[:, :, None] * B[:, t, None, :]
        )
        out.append((state * C[:, t, None, :]).sum(-1) + D * u[:, t])
    return torch.stack(out, 1)


def measure(impl: str, batch: int, length: int, device: str, repeats: int) -> dict:
    import torch

    from seqbench.models.layers.scan_reference import selective_scan_reference
    from seqbench.models.layers.selective_scan import selective_scan, selective_scan_last

    torch.manual_seed(0)
    dev = torch.device(device)
    u = torch.randn(batch, length, 128, device=dev)
    delta = torch.nn.functional.softplus(torch.randn(batch, length, 128, device=dev) - 1)
    A = -torch.exp(torch.randn(128, 32, device=dev) * 0.5)
    B, C = torch.randn(batch, length, 32, device=dev), torch.randn(batch, length, 32, device=dev)
    D = torch.randn(128, device=dev)
    args = [t.requires_grad_() for t in (u, delta, A, B, C, D)]
    last = torch.randint(0, length, (batch,), device=dev)
    last[: batch // 2] = length - 1

    def at_last(y: torch.Tensor) -> torch.Tensor:  # the readout's slots of a full output
        return y[torch.arange(y.shape[0], device=dev), last[: y.shape[0]]]

    import os

    from seqbench.models.layers import scan_cpu

    if impl.endswith("-torch"):
        os.environ[scan_cpu.ENV] = "torch"
        impl = impl.removesuffix("-torch")
    if impl == "seqbench":
        fn = selective_scan
    elif impl == "readout":

        def fn(u, delta, A, B, C, D):  # type: ignore[no-untyped-def]
            n = u.shape[0]
            return selective_scan_last(u, delta, A, B, at_last(C), D, last[:n])
    elif impl == "reference":
        fn = selective_scan_reference
    elif impl == "naive":
        fn = naive
    else:
        from seqbench.models.layers.kernels import require_kernels

        kernel = require_kernels().selective_scan_fn

        def fn(u, delta, A, B, C, D):  # type: ignore[no-untyped-def]
            t = lambda x: x.transpose(1, 2).contiguous()  # noqa: E731
            return kernel(t(u), t(delta), A, t(B), t(C), D).transpose(1, 2)

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize()

    base_rss = rss_mib()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base_dev = torch.cuda.memory_allocated() / 2**20
    times = []
    for i in range(repeats + 1):
        sync()
        start = time.perf_counter()
        y = fn(*args)
        grads = torch.autograd.grad(y.square().sum(), args)
        sync()
        if i:
            times.append(time.perf_counter() - start)
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {
        "impl": impl + ("-torch" if os.environ.get(scan_cpu.ENV) == "torch" else ""),
        "cpu_scan": scan_cpu.status(), "batch": batch, "L": length, "d_inner": 128, "d_state": 32,
        "device": device, "seconds_fwd_bwd_median": statistics.median(times),
        "seconds_all": times, "peak_rss_above_inputs_mib": peak_rss - base_rss,
    }  # fmt: skip
    if dev.type == "cuda":
        result["peak_device_above_inputs_mib"] = (
            torch.cuda.max_memory_allocated() / 2**20 - base_dev
        )

    # accuracy against float64 (on a slice of the batch, to keep it cheap)
    def head(a: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        part = a.detach()[:8] if a.dim() == 3 else a.detach()
        return part.to(dtype).clone().requires_grad_()

    small = [head(a, torch.float64) for a in args]
    ref = naive(*small) if impl != "readout" else at_last(naive(*small))
    ref_grads = torch.autograd.grad(ref.square().sum(), small)
    mine_in = [head(a, torch.float32) for a in args]
    mine = fn(*mine_in)
    mine_grads = torch.autograd.grad(mine.square().sum(), mine_in)
    rel = lambda a, b: float((a.double() - b).abs().max() / b.abs().max())  # noqa: E731
    result["max_rel_err_vs_float64"] = max(
        [rel(mine.detach(), ref.detach())]
        + [rel(g, r) for g, r in zip(mine_grads, ref_grads, strict=True)]
    )
    del grads
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--lengths", default="50,200")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--one", help=argparse.SUPPRESS)  # impl,L: run one, print JSON
    args = parser.parse_args()
    if args.one:
        impl, length = args.one.split(",")
        print(json.dumps(measure(impl, args.batch, int(length), args.device, args.repeats)))
        return
    import torch

    from seqbench import environment

    impls = ["seqbench", "seqbench-torch", "readout", "readout-torch", "reference", "naive"]
    impls += ["mamba_ssm"] if args.device.startswith("cuda") else []
    runs = []
    for length in map(int, args.lengths.split(",")):
        for impl in impls:
            proc = subprocess.run(
                [sys.executable, __file__, "--out", str(args.out), "--device", args.device,
                 "--batch", str(args.batch), "--repeats", str(args.repeats),
                 "--one", f"{impl},{length}"],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            if proc.returncode:
                runs.append({"impl": impl, "L": length, "error": proc.stderr[-2000:]})
            else:
                runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            print(json.dumps(runs[-1]))
    record = {
        "benchmark": "selective scan forward+backward",
        "environment": environment.describe(torch.device(args.device)),
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
