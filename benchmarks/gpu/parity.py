"""Backend parity on a CUDA GPU: seqbench's pure-PyTorch Mamba path against the fused kernels.

    python benchmarks/gpu/parity.py --out benchmarks/results/gpu_parity.json \
        [--data .gpu/data/amazon-beauty/Beauty.txt --format sequences --max-len 50]

The tolerances (seqbench.parity, shared with ``seqbench doctor``) were fixed before any
measurement and are not tuned afterwards.

(a) One Mamba block (seqbench.models.layers.mamba.Mamba; d_model 64, d_state 32, d_conv 4,
    expand 2; batch 64; L 50 and 200), the same weights and inputs on backend "torch" and
    "mamba_ssm": the forward outputs, and the gradients of every parameter and of the input for a
    fixed random cotangent, and the readout at one slot per row. Four cases per length: no
    optional part (``mamba_inner_fn``, the fused path), a Δ filter, a pre-activation filter, and
    both filters with the SSM LayerNorm (``causal_conv1d_fn`` + ``selective_scan_fn``, the
    unfused path).
(b) Whole models (Mamba4Rec, EchoMamba4Rec, official parameters): trained for TRAIN_EPOCHS epochs
    with one backend (``--train-backend``, default mamba_ssm) through seqbench's trainer, then the
    valid and test splits ranked with BOTH backends on the same (best) weights: the fraction of
    users whose rank (items scored above the target, and tied with it) is identical, and every
    metric under each backend. Also, informational plus one check: the training loss and the
    gradients of one batch under both backends (dropout off), same weights.

Writes one JSON (``--out``): environment (seqbench.environment.describe), versions of torch, CUDA,
mamba_ssm and causal_conv1d, the tolerances, every measured value, and each check with its value,
limit and pass/fail. Exit status: 0 every check passes, 1 a check fails, 2 no CUDA device or no
kernels here (a message says which; nothing is written).

``--cpu-selftest`` (for seqbench's tests, no GPU): runs every step on the CPU with pure-PyTorch
stand-ins for the three kernel functions (the references of mamba_ssm and causal_conv1d,
re-stated in ``reference_kernels``), so that the script's code paths are exercised where no GPU
is; it measures nothing about the kernels and its record says so (``"selftest": true``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

# ---- tolerances (fixed before measuring) and the block: seqbench's, shared with `doctor` --------
from seqbench.parity import (  # noqa: E402  (after the sys.path entry above)
    BLOCK,
    FORWARD_MAX_ABS,
    GRAD_MAX_REL,
    SAME_RANK_MIN_FRACTION,
)
from seqbench.parity import relative_error as rel  # noqa: E402

# ---- settings ---------------------------------------------------------------------------------
BLOCK_BATCH = 64
BLOCK_LENGTHS = (50, 200)
MODELS = ("mamba4rec", "echomamba4rec")
TRAIN_EPOCHS = 2
SEED = 2020
METRICS = ["hr@10", "ndcg@10", "mrr@10", "hr@20", "ndcg@20"]


class Unavailable(Exception):
    """No CUDA device or no kernels: the script cannot measure anything here."""


def versions() -> dict[str, str | None]:
    import torch

    from seqbench.environment import package_versions

    out: dict[str, str | None] = {"torch": torch.__version__, "cuda": torch.version.cuda}
    return {**out, **package_versions()}


def require_gpu_and_kernels() -> None:
    import torch

    from seqbench.models.layers.kernels import load_kernels

    if not torch.cuda.is_available():
        raise Unavailable(
            f"parity.py needs a CUDA GPU, and torch {torch.__version__} sees none here; run it "
            "on a GPU machine with mamba-ssm and causal-conv1d built (docs/gpu.md)"
        )
    kernels = load_kernels()
    if isinstance(kernels, str):
        raise Unavailable(
            f"parity.py needs the mamba_ssm and causal_conv1d kernels, which cannot be loaded "
            f"here ({kernels}); build them with benchmarks/gpu/build_kernels.sh (docs/gpu.md)"
        )


def reference_kernels() -> Any:
    """Stand-ins for causal_conv1d_fn, selective_scan_fn and mamba_inner_fn in pure PyTorch,
    with the kernels' (batch, channels, L) layout and arguments (their ``*_ref`` functions)."""
    from types import SimpleNamespace

    import torch.nn.functional as F

    from seqbench.models.layers.scan_reference import selective_scan_reference

    def conv(x: Any, weight: Any, bias: Any = None, activation: Any = None) -> Any:
        width = weight.shape[-1]
        out = F.conv1d(x, weight.unsqueeze(1), bias, padding=width - 1, groups=weight.shape[0])
        out = out[..., : x.shape[-1]]
        return F.silu(out) if activation in ("silu", "swish") else out

    def scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False):  # type: ignore[no-untyped-def]
        delta = delta.float()
        if delta_bias is not None:
            delta = delta + delta_bias[None, :, None].float()
        if delta_softplus:
            delta = F.softplus(delta)
        t = lambda a: a.transpose(1, 2)  # noqa: E731
        y = t(selective_scan_reference(t(u), t(delta), A, t(B), t(C), D))
        return y * F.silu(z) if z is not None else y

    def inner(xz, conv1d_weight, conv1d_bias, x_proj_weight, delta_proj_weight,  # type: ignore[no-untyped-def]
              out_proj_weight, out_proj_bias, A, B=None, C=None, D=None, delta_bias=None,
              B_proj_bias=None, C_proj_bias=None, delta_softplus=True):  # fmt: skip
        batch, length = xz.shape[0], xz.shape[-1]
        rank, n = delta_proj_weight.shape[1], A.shape[-1]
        x, z = xz.chunk(2, dim=1)
        x = conv(x, conv1d_weight.squeeze(1), conv1d_bias, "silu")
        x_dbl = F.linear(x.transpose(1, 2), x_proj_weight)  # (batch, L, rank + 2n)
        delta = (x_dbl[..., :rank] @ delta_proj_weight.T).transpose(1, 2)
        B = x_dbl[..., rank : rank + n].transpose(1, 2)
        C = x_dbl[..., rank + n :].transpose(1, 2)
        y = scan(x, delta, A, B, C, D, z=z, delta_bias=delta_bias, delta_softplus=delta_softplus)
        assert y.shape[0] == batch and y.shape[-1] == length
        return F.linear(y.transpose(1, 2), out_proj_weight, out_proj_bias)

    return SimpleNamespace(causal_conv1d_fn=conv, selective_scan_fn=scan, mamba_inner_fn=inner)


# ---- (a) one block -------------------------------------------------------------------------------

CASES: dict[str, dict[str, Any]] = {  # the Mamba block's optional parts (constructor arguments)
    "fused": {},
    "delta_filter": {"delta_filter": lambda d: 0.5 * d + 0.1},
    "pre_activation": {"pre_activation": lambda x: x * torch_tanh(x)},
    "filters_and_norm": {
        "delta_filter": lambda d: 0.5 * d + 0.1,
        "pre_activation": lambda x: x * torch_tanh(x),
        "ssm_norm": True,
    },
}


def torch_tanh(x: Any) -> Any:
    import torch

    return torch.tanh(x)


def block_case(length: int, case: str, device: Any) -> dict[str, Any]:
    import torch

    from seqbench.models.layers.mamba import Mamba

    torch.manual_seed(SEED + length)
    block = Mamba(**BLOCK, **CASES[case]).to(device)
    h = torch.randn(BLOCK_BATCH, length, BLOCK["d_model"], device=device)
    at = torch.randint(0, length, (BLOCK_BATCH,), device=device)
    cotangent = torch.randn(BLOCK_BATCH, length, BLOCK["d_model"], device=device)
    names = ["input", *(name for name, _ in block.named_parameters())]
    outs, grads, readouts = {}, {}, {}
    for backend in ("torch", "mamba_ssm"):
        block.backend = backend  # type: ignore[assignment]
        x = h.clone().requires_grad_()
        out = block(x)
        grads[backend] = torch.autograd.grad((out * cotangent).sum(), [x, *block.parameters()])
        outs[backend] = out.detach()
        with torch.no_grad():
            readouts[backend] = block.readout(h, at)
    grad_rel = {
        name: rel(k, t)
        for name, k, t in zip(names, grads["mamba_ssm"], grads["torch"], strict=True)
    }
    return {
        "L": length,
        "case": case,
        "batch": BLOCK_BATCH,
        **BLOCK,
        "forward_max_abs": float((outs["mamba_ssm"] - outs["torch"]).abs().max()),
        "forward_scale": float(outs["torch"].abs().max()),
        "readout_max_abs": float((readouts["mamba_ssm"] - readouts["torch"]).abs().max()),
        "grad_max_rel": grad_rel,
        "grad_max_rel_worst": max(grad_rel.values()),
    }


# ---- (b) whole models ----------------------------------------------------------------------------


def load(args: argparse.Namespace) -> Any:
    from seqbench.data.load import DatasetSpec, load_dataset
    from seqbench.data.protocol import Protocol

    if args.data is None:
        spec = DatasetSpec(name="synthetic", options={"n_users": args.synthetic_users})
    else:
        spec = DatasetSpec(name=args.name, path=args.data, format=args.format)
    return load_dataset(spec, Protocol(k_core=5, max_len=args.max_len), cache_dir=args.cache_dir)


def model_case(name: str, dataset: Any, args: argparse.Namespace, device: Any) -> dict[str, Any]:
    import numpy as np
    import torch

    from seqbench import train
    from seqbench.batches import DeviceSplit
    from seqbench.cells import EvalSettings, TrainSettings
    from seqbench.models.layers.mamba import set_backend
    from seqbench.models.registry import get_model

    spec = get_model(name)
    torch.manual_seed(SEED)
    model = spec.cls(spec.params(), n_items=dataset.n_items, max_len=args.max_len).to(device)
    settings = train.Settings(
        TrainSettings(
            epochs=TRAIN_EPOCHS, batch_size=args.batch_size, lr=1e-3, stopping_step=TRAIN_EPOCHS
        ),
        EvalSettings(metrics=METRICS),
        eval_batch_size=args.eval_batch_size,
    )
    set_backend(model, args.train_backend)
    start = time.perf_counter()
    outcome = train.fit_and_evaluate(model, dataset, settings, seed=SEED, device=device)
    record: dict[str, Any] = {
        "model": name,
        "train_backend": args.train_backend,
        "epochs": TRAIN_EPOCHS,
        "batch_size": args.batch_size,
        "eval_batch_size": args.eval_batch_size,
        "train_seconds": outcome.train_seconds,
        "wall_seconds": time.perf_counter() - start,
        "curve": [
            {"epoch": c["epoch"], "loss": c["loss"], "valid": c["valid"]} for c in outcome.curve
        ],
        "best_epoch": outcome.best_epoch,
    }

    # the same (best, restored) weights ranked under both backends
    model.eval()
    counts: dict[str, dict[str, Any]] = {}
    for backend in ("torch", "mamba_ssm"):
        set_backend(model, backend)  # type: ignore[arg-type]
        counts[backend] = {}
        for split in ("valid", "test"):
            data = DeviceSplit(dataset, split, args.max_len, device)
            counts[backend][split] = train._rank(model, data, dataset, settings)
    for split in ("valid", "test"):
        a, b = counts["torch"][split], counts["mamba_ssm"][split]
        same = (a.higher == b.higher) & (a.tied == b.tied)
        rank_a, rank_b = a.higher + a.tied, b.higher + b.tied  # pessimistic rank − 1
        record[split] = {
            "users": len(same),
            "same_rank_fraction": float(same.mean()) if len(same) else 1.0,
            "different_users": int((~same).sum()),
            "max_rank_difference": int(np.abs(rank_a - rank_b).max()) if len(same) else 0,
            "metrics": {
                backend: train.metric_values(counts[backend][split], settings)
                for backend in ("torch", "mamba_ssm")
            },
        }

    # one training batch, dropout off, under both backends: loss and gradients
    batch = next(DeviceSplit(dataset, "train", args.max_len, device).batches(args.batch_size))
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    params = [p for p in model.parameters() if p.requires_grad]
    step: dict[str, Any] = {}
    for backend in ("torch", "mamba_ssm"):
        set_backend(model, backend)  # type: ignore[arg-type]
        loss = model.loss(batch.items, batch.lengths, batch.targets)
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        step[backend] = (float(loss.detach()), grads)
    grad_rel = {
        n: rel(k, t)
        for n, k, t in zip(names, step["mamba_ssm"][1], step["torch"][1], strict=True)
        if k is not None and t is not None
    }
    record["step"] = {
        "loss": {backend: step[backend][0] for backend in step},
        "loss_abs_diff": abs(step["mamba_ssm"][0] - step["torch"][0]),
        "grad_max_rel": grad_rel,
        "grad_max_rel_worst": max(grad_rel.values()),
    }
    return record


# ---- checks and main -------------------------------------------------------------------------


def checks_of(blocks: list[dict[str, Any]], models: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []

    def check(name: str, value: float, limit: float, at_least: bool = False) -> None:
        ok = value >= limit if at_least else value <= limit
        out.append({"name": name, "value": value, "limit": limit, "at_least": at_least, "pass": ok})

    for b in blocks:
        where = f"block L={b['L']} {b['case']}"
        check(f"{where}: forward max abs diff", b["forward_max_abs"], FORWARD_MAX_ABS)
        check(f"{where}: readout max abs diff", b["readout_max_abs"], FORWARD_MAX_ABS)
        for name, value in b["grad_max_rel"].items():
            check(f"{where}: grad {name} max rel diff", value, GRAD_MAX_REL)
    for m in models:
        check(
            f"{m['model']}: test users with identical rank",
            m["test"]["same_rank_fraction"],
            SAME_RANK_MIN_FRACTION,
            at_least=True,
        )
        check(
            f"{m['model']}: one-batch gradients, worst max rel diff",
            m["step"]["grad_max_rel_worst"],
            GRAD_MAX_REL,
        )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--data", type=Path, help="dataset file (default: synthetic data)")
    parser.add_argument("--format", default="sequences", help="reader format of --data")
    parser.add_argument("--name", default="data", help="dataset label (with --data)")
    parser.add_argument("--max-len", type=int, default=50)
    parser.add_argument("--synthetic-users", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--eval-batch-size", type=int, default=4096)
    parser.add_argument("--train-backend", choices=("torch", "mamba_ssm"), default="mamba_ssm")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--skip-blocks", action="store_true", help="whole models only")
    parser.add_argument("--skip-models", action="store_true", help="blocks only")
    parser.add_argument("--cache-dir", type=Path)
    parser.add_argument("--cpu-selftest", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    import torch

    from seqbench import environment

    if args.cpu_selftest:
        from seqbench.models.layers import kernels

        stand_ins = reference_kernels()
        kernels.load_kernels = lambda: stand_ins  # type: ignore[assignment]
        device = torch.device("cpu")
    else:
        try:
            require_gpu_and_kernels()
        except Unavailable as exc:
            print(f"parity: {exc}", file=sys.stderr)
            return 2
        device = torch.device("cuda")
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    blocks: list[dict[str, Any]] = []
    if not args.skip_blocks:
        for length in BLOCK_LENGTHS:
            for case in CASES:
                blocks.append(block_case(length, case, device))
                b = blocks[-1]
                print(
                    f"block L={length} {case}: forward {b['forward_max_abs']:.2e}, "
                    f"grad worst rel {b['grad_max_rel_worst']:.2e}",
                    flush=True,
                )
    models: list[dict[str, Any]] = []
    dataset_info: dict[str, Any] | None = None
    if not args.skip_models:
        dataset = load(args)
        dataset_info = {
            "name": dataset.name,
            "sha256": dataset.provenance["source"]["sha256"],
            "users": dataset.n_users,
            "items": dataset.n_items,
            "train_samples": len(dataset.data.train),
            "max_len": args.max_len,
        }
        for name in args.models.split(","):
            models.append(model_case(name, dataset, args, device))
            m = models[-1]
            print(
                f"{name}: test same rank {m['test']['same_rank_fraction']:.5f} "
                f"({m['test']['different_users']} users differ), "
                f"ndcg@10 torch {m['test']['metrics']['torch']['ndcg@10']:.5f} / "
                f"kernels {m['test']['metrics']['mamba_ssm']['ndcg@10']:.5f}; "
                f"step grad worst rel {m['step']['grad_max_rel_worst']:.2e}",
                flush=True,
            )
    checks = checks_of(blocks, models)
    failed = [c for c in checks if not c["pass"]]
    record = {
        "benchmark": "backend parity: pure-PyTorch Mamba vs mamba_ssm kernels",
        "environment": environment.describe(device),
        "versions": versions(),
        "selftest": args.cpu_selftest,
        "capability": (
            None
            if device.type != "cuda"
            else ".".join(map(str, torch.cuda.get_device_capability(device)))
        ),
        "tolerances": {
            "forward_max_abs": FORWARD_MAX_ABS,
            "grad_max_rel": GRAD_MAX_REL,
            "same_rank_min_fraction": SAME_RANK_MIN_FRACTION,
        },
        "settings": {
            "block": {**BLOCK, "batch": BLOCK_BATCH, "lengths": list(BLOCK_LENGTHS)},
            "train_epochs": TRAIN_EPOCHS,
            "seed": SEED,
        },
        "dataset": dataset_info,
        "blocks": blocks,
        "models": models,
        "checks": checks,
        "failed": [c["name"] for c in failed],
        "pass": not failed,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(f"parity: {len(checks) - len(failed)}/{len(checks)} checks pass; wrote {args.out}")
    for c in failed:
        print(f"  FAIL {c['name']}: {c['value']:.3g} (limit {c['limit']:.3g})", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
