"""Training throughput and per-phase peak memory of SASRec, Mamba4Rec and EchoMamba4Rec on a GPU.

    python benchmarks/gpu/throughput.py --out benchmarks/results/gpu_throughput.json \
        [--datasets beauty,ml-1m] [--models sasrec,mamba4rec,echomamba4rec] \
        [--backends torch,mamba_ssm] [--max-batches N] [--amp bf16] [--compile] [--profile]
    python benchmarks/gpu/throughput.py --device cpu --datasets synthetic --max-batches 2 --out X

Datasets: Amazon Beauty (S3-Rec's Beauty.txt, max_len 50) and ML-1M (ml-1m.seq.txt, max_len
200), read from .gpu/data/ (benchmarks/gpu/prepare_carry.sh) or ../shared/data/; ``synthetic``
(seqbench's generator, max_len 50) for a quick check anywhere. Protocol: 5-core, RecBole's
prefix samples; official model parameters (SASRec: RecBole's defaults); Adam lr 1e-3; train
batch 2048 (``--batch-size``), eval batch 4096 (``--eval-batch-size``, the papers' value).

Each run (dataset × model × backend; SASRec has no Mamba block, so it runs once, on "torch") is
a fresh subprocess, so its peak memory is its own. In it:
  * warm-up: ``--warmup-steps`` training steps (default 10) on the first batches of a shuffled
    pass, untimed (CUDA context, cuBLAS/cuDNN handles, allocator, torch.compile's compilation);
  * train phase: ``torch.cuda.reset_peak_memory_stats``, then a full shuffled epoch of the
    trainer's step (loss, zero_grad, backward, Adam step), ``torch.cuda.synchronize`` before the
    clock starts and before it stops; with ``--max-batches N`` only N batches are timed and the
    epoch time is extrapolated (``"extrapolated": true``); peak = max_memory_allocated;
  * eval phase: reset the peak, rank the valid split once (untimed warm-up), then the test split
    timed (full ranking as seqbench evaluates); peak = max_memory_allocated of the phase.
Every record carries the device name, the backend, torch/CUDA/mamba-ssm/causal-conv1d versions,
and the settings above. The JSON is rewritten after every run, so an interrupted session keeps
what finished.

Opt-in extras, recorded in each record: ``--amp bf16`` (torch.autocast around the forward and
loss) and ``--compile`` (torch.compile of the model's loss function; the compilation falls in the
warm-up). Neither is what seqbench's suites run (fp32, eager): before using either for results,
check that it keeps the metrics (e.g. benchmarks/gpu/parity.py-style rank comparison or a
reproduction run), since bf16 changes the scan's inputs and compile may reorder reductions.
``--profile`` re-runs the slowest run with torch.profiler over a few steps and adds its top ops.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

DATASETS: dict[str, dict[str, Any]] = {
    "beauty": {"file": "amazon-beauty/Beauty.txt", "format": "sequences", "max_len": 50},
    "ml-1m": {"file": "ml-1m/ml-1m.seq.txt", "format": "sequences", "max_len": 200},
    "synthetic": {"file": None, "format": None, "max_len": 50},
}
MODELS = ("sasrec", "mamba4rec", "echomamba4rec")
SEED = 2020
PROFILE_STEPS = 5
TOP_OPS = 25


def data_path(name: str, override: Path | None) -> Path | None:
    """.gpu/data/… first, then $SEQBENCH_SHARED_DATA/… and ../shared/data/…"""
    if override is not None or DATASETS[name]["file"] is None:
        return override
    rel = DATASETS[name]["file"]
    shared = os.environ.get("SEQBENCH_SHARED_DATA")
    for root in [REPO / ".gpu" / "data", *([Path(shared)] if shared else []),
                 REPO.parent / "shared" / "data"]:  # fmt: skip
        if (root / rel).is_file():
            return root / rel
    return REPO / ".gpu" / "data" / rel  # missing: the child says so


def versions() -> dict[str, str | None]:
    import torch

    import seqbench
    from seqbench.environment import package_versions

    out: dict[str, str | None] = {
        "seqbench": seqbench.__version__,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
    }
    return {**out, **package_versions()}


# ---- one run, in its own process -------------------------------------------------------------


def one(job: dict[str, Any]) -> dict[str, Any]:
    import contextlib

    import torch

    from seqbench.batches import DeviceSplit
    from seqbench.data.load import DatasetSpec, load_dataset
    from seqbench.data.protocol import Protocol
    from seqbench.evaluate import rank_split
    from seqbench.models.layers.kernels import resolve_backend
    from seqbench.models.layers.mamba import set_backend, uses_mamba
    from seqbench.models.registry import get_model

    device = torch.device(job["device"])
    cuda = device.type == "cuda"
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(device)

    def device_mib(fn: str) -> float | None:
        return getattr(torch.cuda, fn)(device) / 2**20 if cuda else None

    max_len = job["max_len"]
    if job["path"] is None:
        spec = DatasetSpec(name="synthetic", options={"n_users": job["synthetic_users"]})
    else:
        if not Path(job["path"]).is_file():
            raise FileNotFoundError(
                f"{job['path']} not found: run benchmarks/gpu/prepare_carry.sh (docs/gpu.md)"
            )
        spec = DatasetSpec(name=job["dataset"], path=Path(job["path"]), format=job["format"])
    start = time.perf_counter()
    dataset = load_dataset(spec, Protocol(k_core=5, max_len=max_len), cache_dir=job["cache_dir"])
    load_seconds = time.perf_counter() - start

    model_spec = get_model(job["model"])
    torch.manual_seed(job["seed"])
    model = model_spec.cls(model_spec.params(), n_items=dataset.n_items, max_len=max_len)
    model = model.to(device)
    backend = resolve_backend(job["backend"], str(device), uses_mamba(model))
    set_backend(model, backend)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.compile(model.loss) if job["compile"] else model.loss
    amp = (
        torch.autocast(device_type=device.type, dtype=torch.bfloat16)
        if job["amp"] == "bf16"
        else contextlib.nullcontext()
    )

    def step(batch: Any) -> Any:
        with amp:
            loss = loss_fn(batch.items, batch.lengths, batch.targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.detach()

    train = DeviceSplit(dataset, "train", max_len, device)
    batch_size = job["batch_size"]
    n_batches = train.n_batches(batch_size)
    shuffle = torch.Generator().manual_seed(job["seed"])
    model.train()

    # warm-up (untimed)
    sync()
    start = time.perf_counter()
    for i, batch in enumerate(train.batches(batch_size, shuffle)):
        if i >= job["warmup_steps"]:
            break
        step(batch)
    sync()
    warmup_seconds = time.perf_counter() - start

    if job["profile_steps"]:
        return profile(job, model, train, step, sync, shuffle, device)

    # train phase
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    static_mib = device_mib("memory_allocated")
    limit = job["max_batches"] or n_batches
    total = torch.zeros((), device=device)
    timed = 0
    sync()
    start = time.perf_counter()
    for batch in train.batches(batch_size, shuffle):
        if timed >= limit:
            break
        total += step(batch)
        timed += 1
    sync()
    epoch_seconds = time.perf_counter() - start
    mean_loss = float(total) / max(timed, 1)
    train_peak = device_mib("max_memory_allocated")
    train_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    # eval phase
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    eval_context = amp if job["amp"] else contextlib.nullcontext()
    valid = DeviceSplit(dataset, "valid", max_len, device)
    test = DeviceSplit(dataset, "test", max_len, device)
    with eval_context:
        rank_split(model, valid, dataset.n_items, batch_size=job["eval_batch_size"])  # warm-up
        sync()
        start = time.perf_counter()
        rank_split(model, test, dataset.n_items, batch_size=job["eval_batch_size"])
        sync()
    eval_seconds = time.perf_counter() - start
    full = timed == n_batches
    return {
        "dataset": job["dataset"],
        "max_len": max_len,
        "model": job["model"],
        "backend": backend,
        "requested_backend": job["backend"],
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if cuda else "cpu",
        "versions": versions(),
        "amp": job["amp"],
        "compile": job["compile"],
        "seed": job["seed"],
        "users": dataset.n_users,
        "items": dataset.n_items,
        "train_samples": len(train),
        "parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "batch_size": batch_size,
        "eval_batch_size": job["eval_batch_size"],
        "warmup_steps": job["warmup_steps"],
        "warmup_seconds": warmup_seconds,
        "load_seconds": load_seconds,
        "batches_per_epoch": n_batches,
        "batches_timed": timed,
        "timed_seconds": epoch_seconds,
        "seconds_per_step": epoch_seconds / max(timed, 1),
        "seconds_per_epoch": epoch_seconds if full else epoch_seconds / max(timed, 1) * n_batches,
        "extrapolated": not full,
        "samples_per_second": min(timed * batch_size, len(train)) / max(epoch_seconds, 1e-9),
        "mean_loss_timed": mean_loss,
        "static_device_mib": static_mib,
        "train_peak_device_mib": train_peak,
        "eval_peak_device_mib": device_mib("max_memory_allocated"),
        "eval_split": "test",
        "eval_users": len(test),
        "eval_seconds": eval_seconds,
        "users_per_second": len(test) / max(eval_seconds, 1e-9),
        "train_peak_rss_mib": train_rss,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def profile(job: dict[str, Any], model: Any, train: Any, step: Any, sync: Any, shuffle: Any,
            device: Any) -> dict[str, Any]:  # fmt: skip
    """Top ops of ``profile_steps`` training steps (after the warm-up)."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    activities = [ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    batches = train.batches(job["batch_size"], shuffle)
    with torch_profile(activities=activities) as prof:
        for _ in range(job["profile_steps"]):
            step(next(batches))
        sync()
    events = prof.key_averages()

    def device_us(e: Any) -> float:
        return float(getattr(e, "device_time_total", getattr(e, "cuda_time_total", 0.0)) or 0.0)

    def self_device_us(e: Any) -> float:
        value = getattr(e, "self_device_time_total", getattr(e, "self_cuda_time_total", 0.0))
        return float(value or 0.0)

    key = self_device_us if device.type == "cuda" else (lambda e: float(e.self_cpu_time_total))
    top = sorted(events, key=key, reverse=True)[:TOP_OPS]
    sort_by = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    try:
        table = events.table(sort_by=sort_by, row_limit=TOP_OPS)
    except Exception as exc:  # the column name differs between torch versions
        table = f"(no table: {exc})"
    return {
        "dataset": job["dataset"],
        "model": job["model"],
        "backend": job["backend"],
        "steps": job["profile_steps"],
        "sorted_by": "self device time" if device.type == "cuda" else "self CPU time",
        "top_ops": [
            {
                "name": e.key,
                "calls": e.count,
                "self_device_ms": self_device_us(e) / 1e3,
                "device_ms": device_us(e) / 1e3,
                "self_cpu_ms": e.self_cpu_time_total / 1e3,
                "cpu_ms": e.cpu_time_total / 1e3,
            }
            for e in top
        ],
        "table": table,
    }


# ---- the driver ------------------------------------------------------------------------------


def plan(args: argparse.Namespace) -> list[dict[str, Any]]:
    jobs = []
    for name in args.datasets.split(","):
        if name not in DATASETS:
            raise SystemExit(f"throughput: unknown dataset {name!r}; one of {', '.join(DATASETS)}")
        info = DATASETS[name]
        override = {"beauty": args.beauty, "ml-1m": args.ml1m}.get(name)
        path = data_path(name, override)
        for model in args.models.split(","):
            backends = ["torch"] if model == "sasrec" else args.backends.split(",")
            for backend in backends:
                jobs.append({
                    "dataset": name, "path": None if path is None else str(path),
                    "format": info["format"], "max_len": args.max_len or info["max_len"],
                    "model": model, "backend": backend, "device": args.device,
                    "batch_size": args.batch_size, "eval_batch_size": args.eval_batch_size,
                    "warmup_steps": args.warmup_steps, "max_batches": args.max_batches,
                    "amp": args.amp, "compile": args.compile, "seed": args.seed,
                    "synthetic_users": args.synthetic_users,
                    "cache_dir": None if args.cache_dir is None else str(args.cache_dir),
                    "profile_steps": 0,
                })  # fmt: skip
    return jobs


def skip_reason(job: dict[str, Any]) -> str | None:
    if job["backend"] != "mamba_ssm":
        return None
    if not job["device"].startswith("cuda"):
        return "the mamba_ssm kernels need a CUDA device"
    from seqbench.models.layers.kernels import load_kernels

    kernels = load_kernels()
    return f"kernels not loadable: {kernels}" if isinstance(kernels, str) else None


def spawn(job: dict[str, Any], timeout: float) -> dict[str, Any]:
    try:
        proc = subprocess.run(
            [sys.executable, __file__, "--one", json.dumps(job)],
            capture_output=True, text=True, check=False, timeout=timeout,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    if proc.returncode == 0:
        return json.loads(proc.stdout.strip().splitlines()[-1])
    return {"error": proc.stderr[-3000:] or f"exit status {proc.returncode}"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--datasets", default="beauty,ml-1m", help=f"of {', '.join(DATASETS)}")
    parser.add_argument("--beauty", type=Path, help="Beauty.txt (default: .gpu/data/…)")
    parser.add_argument("--ml1m", type=Path, help="ml-1m.seq.txt (default: .gpu/data/…)")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--backends", default="torch,mamba_ssm")
    parser.add_argument("--max-len", type=int, help="override the datasets' max_len")
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--eval-batch-size", type=int, default=4096)
    parser.add_argument("--warmup-steps", type=int, default=10)
    parser.add_argument("--max-batches", type=int, help="time only N batches, extrapolate")
    parser.add_argument("--amp", choices=("bf16",), help="opt-in: torch.autocast bf16")
    parser.add_argument("--compile", action="store_true", help="opt-in: torch.compile the loss")
    parser.add_argument("--profile", action="store_true", help="profile the slowest run")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--synthetic-users", type=int, default=500)
    parser.add_argument("--cache-dir", type=Path)
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per run")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(json.loads(args.one))))
        return 0
    if args.out is None:
        parser.error("--out is required")
    import torch

    from seqbench import environment

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print(
            f"throughput: --device {args.device} but torch {torch.__version__} sees no CUDA "
            "device; use --device cpu for a quick check (docs/gpu.md)",
            file=sys.stderr,
        )
        return 2
    record: dict[str, Any] = {
        "benchmark": "training throughput and per-phase peak memory",
        "environment": environment.describe(device),
        "versions": versions(),
        "settings": {
            "batch_size": args.batch_size,
            "eval_batch_size": args.eval_batch_size,
            "warmup_steps": args.warmup_steps,
            "warmup": f"{args.warmup_steps} untimed warm-up training steps before the timed "
            "epoch; the valid split ranked once (untimed warm-up) before the timed test ranking",
            "max_batches": args.max_batches,
            "amp": args.amp,
            "compile": args.compile,
            "seed": args.seed,
            "optimizer": "Adam lr 1e-3",
            "protocol": "5-core, RecBole prefix samples, full ranking",
        },
        "runs": [],
    }

    def write() -> None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")

    failures = 0
    for job in plan(args):
        label = f"{job['dataset']} {job['model']} {job['backend']}"
        reason = skip_reason(job)
        run = {"skipped": reason} if reason else spawn(job, args.timeout)
        run = {"dataset": job["dataset"], "model": job["model"], "backend": job["backend"], **run}
        record["runs"].append(run)
        write()
        if "error" in run:
            failures += 1
            print(f"{label}: FAILED\n{run['error']}", flush=True)
        elif "skipped" in run:
            print(f"{label}: skipped ({run['skipped']})", flush=True)
        else:
            peak = run["train_peak_device_mib"]
            print(
                f"{label}: {run['seconds_per_epoch']:.2f} s/epoch"
                f"{' (extrapolated)' if run['extrapolated'] else ''}, "
                f"train peak {'-' if peak is None else f'{peak:.0f} MiB'}, "
                f"eval {run['eval_seconds']:.2f} s",
                flush=True,
            )
    done = [r for r in record["runs"] if "seconds_per_epoch" in r]
    if args.profile and done:
        slowest = max(done, key=lambda r: r["seconds_per_epoch"])
        job = next(
            j
            for j in plan(args)
            if (j["dataset"], j["model"], j["backend"])
            == (slowest["dataset"], slowest["model"], slowest["requested_backend"])
        )
        job["profile_steps"] = PROFILE_STEPS
        record["profile"] = spawn(job, args.timeout)
        write()
        print(f"profile of {job['dataset']} {job['model']} {job['backend']}: written", flush=True)
    print(f"throughput: wrote {args.out}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
