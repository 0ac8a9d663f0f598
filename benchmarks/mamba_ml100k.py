"""Seconds per training epoch of the Mamba models on ml-100k on the CPU, and their peak memory.

    python benchmarks/mamba_ml100k.py --data ../shared/data/ml-100k-recbole \
        --out benchmarks/results/mamba_ml100k_cpu.json [--epochs 1] [--device cpu]

Protocol: 5-core, max_len 50, batch 2048, Adam 1e-3, official model configs (d 64, N 32, one
layer, dropout 0.2). Runs (each in a fresh process, through the real trainer, validation
excluded from the epoch time): Mamba4Rec and EchoMamba4Rec with RecBole's prefix objective,
Mamba4Rec with the all-positions objective. Peak RSS covers a full EchoMamba4Rec training step
at batch 2048 (the issue's 6 GiB target).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

RUNS = [("mamba4rec", "last"), ("echomamba4rec", "last"), ("mamba4rec", "all_positions")]


def one(data: Path, model_name: str, objective: str, epochs: int, device: str) -> dict:
    import torch

    from seqbench import train
    from seqbench.cells import EvalSettings, TrainSettings
    from seqbench.data.load import DatasetSpec, load_dataset
    from seqbench.data.protocol import Protocol
    from seqbench.models.layers.kernels import resolve_backend
    from seqbench.models.layers.mamba import set_backend
    from seqbench.models.registry import get_model

    ds = load_dataset(
        DatasetSpec(name="ml-100k", path=str(data), format="recbole"),
        Protocol(k_core=5, max_len=50),
    )
    spec = get_model(model_name)
    torch.manual_seed(2020)
    model = spec.cls(spec.params(), n_items=ds.n_items, max_len=50).to(device)
    backend = resolve_backend("auto", device, True)
    set_backend(model, backend)
    settings = train.Settings(
        TrainSettings(epochs=epochs, batch_size=2048, lr=1e-3, objective=objective),  # type: ignore[arg-type]
        EvalSettings(metrics=["ndcg@10"]),
    )
    start = time.perf_counter()
    outcome = train.fit_and_evaluate(model, ds, settings, seed=2020, device=torch.device(device))
    record = {
        "model": model_name, "objective": objective, "backend": backend,
        "train_samples": len(ds.data.train), "items": ds.n_items,
        "epoch_seconds": [c["seconds"] for c in outcome.curve],
        "valid_ndcg@10": [c["valid"]["ndcg@10"] for c in outcome.curve],
        "wall_seconds": time.perf_counter() - start,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "parameters": sum(p.numel() for p in model.parameters()),
    }  # fmt: skip
    if device.startswith("cuda"):
        record["peak_device_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="folder with ml-100k.inter")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        name, objective = args.one.split(",")
        print(json.dumps(one(args.data, name, objective, args.epochs, args.device)))
        return
    import torch

    from seqbench import environment

    runs = []
    for name, objective in RUNS:
        proc = subprocess.run(
            [sys.executable, __file__, "--data", str(args.data), "--out", str(args.out),
             "--epochs", str(args.epochs), "--device", args.device, "--one", f"{name},{objective}"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        runs.append(
            json.loads(proc.stdout.strip().splitlines()[-1])
            if proc.returncode == 0
            else {"model": name, "objective": objective, "error": proc.stderr[-2000:]}
        )
        print(json.dumps(runs[-1]), flush=True)
    record = {
        "benchmark": "Mamba models on ml-100k, seconds per training epoch",
        "environment": environment.describe(torch.device(args.device)),
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
