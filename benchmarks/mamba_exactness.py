"""Does this seqbench give an older one's numbers? ml-100k at full size, the same seed and
weights through an older seqbench (e.g. every slot and the step-by-step scan, before the readout;
or the pure-PyTorch scans, before the compiled CPU loops) and through this one.

    git archive bfbb8ec | tar -x -C /tmp/seqbench-old     # the code before the readout
    python benchmarks/mamba_exactness.py --data ../shared/data/ml-100k-recbole \
        --old-src /tmp/seqbench-old --out benchmarks/results/mamba_exactness_ml100k.json

For each model (``--models``, official configs) and each code version, in a fresh process: the
model built after ``torch.manual_seed(2020)``, the training loss of the first batch (train mode,
dropout drawn after ``torch.manual_seed(1)``), then one epoch through seqbench's trainer (batch
2048, Adam 1e-3, seed 2020) and every test user's rank (items above the target, and tied with
it). Compared: the two first-batch losses (limit 1e-5) and the share of users whose test rank
is identical (limit 99.9 %), and the epoch's seconds (the old code's is what it cost before).

Ranks after an epoch differ where float rounding, amplified by training (Adam divides tiny
gradients by their tiny running scale), moved the weights; the scan itself is checked apart
from that by ranking the test users with the old code's trained weights through this code
(``same_weights_same_rank_fraction``): the readout path against the old every-slot path on
identical weights.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
LOSS_LIMIT = 1e-5
SAME_RANK_LIMIT = 0.999


def dataset_and_model(data: Path, name: str) -> tuple[Any, Any]:
    """ml-100k under the RecBole protocol, and the official-config model built after
    ``torch.manual_seed(2020)`` (APIs common to the old and the new code)."""
    import torch

    from seqbench.data.load import DatasetSpec, load_dataset
    from seqbench.data.protocol import Protocol
    from seqbench.models.registry import get_model

    spec = DatasetSpec(name="ml-100k", path=str(data), format="recbole")
    dataset = load_dataset(spec, Protocol(k_core=5, max_len=50))
    model_spec = get_model(name)
    torch.manual_seed(2020)
    return dataset, model_spec.cls(model_spec.params(), n_items=dataset.n_items, max_len=50)


def one(data: Path, name: str, ranks_out: Path) -> dict[str, Any]:
    import torch

    from seqbench import train
    from seqbench.batches import DeviceSplit
    from seqbench.cells import EvalSettings, TrainSettings

    dataset, model = dataset_and_model(data, name)
    split = DeviceSplit(dataset, "train", 50, torch.device("cpu"))
    batch = next(iter(split.batches(2048, torch.Generator().manual_seed(7))))
    torch.manual_seed(1)
    first = model.train().loss(batch.items, batch.lengths, batch.targets).item()
    settings = train.Settings(
        TrainSettings(epochs=1, batch_size=2048, lr=1e-3), EvalSettings(metrics=["ndcg@10"])
    )
    outcome = train.fit_and_evaluate(
        model, dataset, settings, seed=2020, device=torch.device("cpu")
    )
    assert outcome.test is not None
    np.savez(ranks_out, higher=outcome.test.higher, tied=outcome.test.tied)
    torch.save(model.state_dict(), ranks_out.with_suffix(".pt"))
    try:  # what the scans ran on (code before the compiled CPU scan has no such module)
        from seqbench.models.layers import scan_cpu

        cpu_scan = scan_cpu.status()
    except ImportError:
        cpu_scan = None
    return {
        "model": name,
        "cpu_scan": cpu_scan,
        "first_batch_loss": first,
        "epoch_seconds": outcome.curve[0]["seconds"],
        "epoch_loss": outcome.curve[0]["loss"],
        "test_ndcg@10": train.metric_values(outcome.test, settings)["ndcg@10"],
    }


def rank_with(data: Path, name: str, weights: Path, ranks_out: Path) -> dict[str, Any]:
    """Test ranks of a model whose weights were trained elsewhere (eval mode, no training)."""
    import torch

    from seqbench.batches import DeviceSplit
    from seqbench.evaluate import rank_split

    dataset, model = dataset_and_model(data, name)
    model.load_state_dict(torch.load(weights))
    split = DeviceSplit(dataset, "test", 50, torch.device("cpu"))
    with torch.no_grad():
        test = rank_split(model.eval(), split, dataset.n_items)
    np.savez(ranks_out, higher=test.higher, tied=test.tied)
    return {"model": name, "weights": str(weights)}


def run(args: argparse.Namespace, src: Path, name: str, ranks: Path,
        weights: Path | None = None) -> dict[str, Any]:  # fmt: skip
    extra = ["--weights", str(weights)] if weights is not None else []
    proc = subprocess.run(
        [sys.executable, __file__, "--data", str(args.data), "--out", str(args.out),
         "--one", name, "--ranks", str(ranks), *extra],
        capture_output=True, text=True, check=False, env={**os.environ, "PYTHONPATH": str(src)},
    )  # fmt: skip
    if proc.returncode:
        raise SystemExit(f"{name} with {src} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--old-src", type=Path, required=False)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--models", default="mamba4rec,echomamba4rec")
    parser.add_argument("--old-label", default="an older seqbench", help="what --old-src is")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--ranks", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--weights", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one and args.weights:
        print(json.dumps(rank_with(args.data, args.one, args.weights, args.ranks)))
        return
    if args.one:
        print(json.dumps(one(args.data, args.one, args.ranks)))
        return
    if args.old_src is None:
        parser.error("--old-src is required")
    sys.path.insert(0, str(REPO))
    import torch

    from seqbench import environment

    comparisons = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            result: dict[str, Any] = {"model": name}
            for version, src in (("old", args.old_src), ("new", REPO)):
                result[version] = run(args, src, name, Path(tmp) / f"{name}-{version}.npz")
                print(json.dumps(result[version]), flush=True)
            swapped = Path(tmp) / f"{name}-new-with-old-weights.npz"
            run(args, REPO, name, swapped, weights=Path(tmp) / f"{name}-old.pt")
            versions = ("old", "new", "new-with-old-weights")
            old, new, both = (np.load(Path(tmp) / f"{name}-{v}.npz") for v in versions)
            same = (old["higher"] == new["higher"]) & (old["tied"] == new["tied"])
            same_weights = (old["higher"] == both["higher"]) & (old["tied"] == both["tied"])
            diff = abs(result["new"]["first_batch_loss"] - result["old"]["first_batch_loss"])
            result.update(
                first_batch_loss_abs_diff=diff,
                users=int(same.size),
                same_rank_fraction=float(same.mean()),
                max_rank_diff=int(np.abs(old["higher"] - new["higher"]).max()),
                same_weights_same_rank_fraction=float(same_weights.mean()),
                same_weights_max_rank_diff=int(np.abs(old["higher"] - both["higher"]).max()),
                epoch_speedup=result["old"]["epoch_seconds"] / result["new"]["epoch_seconds"],
                passed=bool(diff <= LOSS_LIMIT and same.mean() >= SAME_RANK_LIMIT),
            )
            comparisons.append(result)
            print(json.dumps({k: v for k, v in result.items() if k not in ("old", "new")}))
    record = {
        "benchmark": "this seqbench vs an older one on ml-100k: first-batch loss, test ranks "
        "after one epoch (same seed and weights)",
        "old": {"src": str(args.old_src), "label": args.old_label},
        "command": " ".join(sys.argv),
        "environment": environment.describe(torch.device("cpu")),
        "limits": {"first_batch_loss_abs_diff": LOSS_LIMIT, "same_rank_fraction": SAME_RANK_LIMIT},
        "comparisons": comparisons,
        "passed": all(c["passed"] for c in comparisons),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
