"""SASRec on ml-100k through `seqbench run`, against RecBole 1.2.1's figures on this machine class.

RecBole 1.2.1 reference (2-core CPU, batch 2048, RecBole defaults, seed 2020): 137–164 s per
training epoch (median ≈ 148 s over 21 epochs); validation NDCG@10 for epochs 0–11 in
``RECBOLE_VALID_NDCG``. The samples are RecBole's, sample for sample
(benchmarks/recbole_parity.py), and the loss is the same CE over the whole item table.

    python benchmarks/sasrec_ml100k.py --data ../shared/data/ml-100k-recbole \
        --out benchmarks/results/sasrec_ml100k.json [--epochs N]

The suite is written to a temporary folder and run with `seqbench run --quiet --device cpu`, so
the figures include everything a user pays for (worker start, data from the cache, evaluation).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RECBOLE_SECONDS_PER_EPOCH = {"median": 148.0, "min": 137.0, "max": 164.0, "epochs": 21}
RECBOLE_VALID_NDCG = [
    0.0217, 0.0377, 0.0476, 0.0538, 0.0615, 0.0624, 0.0623, 0.0617, 0.0611, 0.0649, 0.0630, 0.0607
]  # fmt: skip

SUITE = """
[suite]
name = "bench-sasrec-ml100k"
seeds = [2020]

[protocol]
k_core = 5
max_len = 50

[train]
epochs = {epochs}
batch_size = 2048
lr = 1e-3
stopping_step = 10
valid_metric = "ndcg@10"

[eval]
metrics = ["hr@10", "ndcg@10", "mrr@10"]

[[datasets]]
name = "ml-100k"
path = "{path}"
format = "recbole"

[[models]]
model = "sasrec"
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="ml-100k-recbole folder")
    parser.add_argument("--epochs", type=int, default=300, help="cap (default: RecBole's 300)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        suite = Path(tmp) / "suite.toml"
        suite.write_text(SUITE.format(epochs=args.epochs, path=args.data.resolve()))
        root = Path(tmp) / "results"
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "seqbench", "run", str(suite), "--results", str(root),
             "--quiet", "--device", "cpu"],
            check=True, env={**os.environ},
        )  # fmt: skip
        wall = time.perf_counter() - started
        (result_file,) = root.glob("*/*/*/seed-*/result.json")
        result = json.loads(result_file.read_text())

    epoch_seconds = [e["seconds"] for e in result["curve"]]
    valid = [e["valid"]["ndcg@10"] for e in result["curve"]]
    median = statistics.median(epoch_seconds)
    record = {
        "benchmark": "sasrec_ml100k",
        "command": " ".join(sys.argv),
        "environment": result["environment"],
        "dataset": {k: v for k, v in result["dataset"].items() if k != "provenance"},
        "seconds_per_epoch": {
            "median": median,
            "min": min(epoch_seconds),
            "max": max(epoch_seconds),
            "all": epoch_seconds,
        },
        "speedup_vs_recbole_median": RECBOLE_SECONDS_PER_EPOCH["median"] / median,
        "recbole_reference": {
            "seconds_per_epoch": RECBOLE_SECONDS_PER_EPOCH,
            "valid_ndcg@10": RECBOLE_VALID_NDCG,
        },
        "valid_ndcg@10": valid,
        "eval_seconds_per_epoch": statistics.median(e["eval_seconds"] for e in result["curve"]),
        "best_epoch": result["best_epoch"],
        "epochs_run": result["epochs_run"],
        "stopped_early": result["stopped_early"],
        "test": result["metrics"]["test"],
        "timing": result["timing"],
        "memory": result["memory"],
        "parameters": result["parameters"],
        "wall_seconds": wall,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps({k: record[k] for k in ("seconds_per_epoch", "test", "best_epoch")}, indent=2))


if __name__ == "__main__":
    main()
