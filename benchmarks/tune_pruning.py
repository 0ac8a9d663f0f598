"""Median pruner against no pruner, same sampler and seed: epochs trained and best validation.

Runs ``seqbench tune`` twice per dataset (``pruner = "median"`` and ``pruner = "none"``, TPE with
seed 0, the same space and budget), each into a fresh results folder, and reads
``tune/summary.json``: trials complete / pruned, epochs trained by the trials (the default cell
excluded), the best validation value and its parameters, and the wall time.

    python benchmarks/tune_pruning.py --ml100k ../shared/data/ml-100k-recbole/ml-100k.inter \
        --out benchmarks/results/tune_pruning.json

Datasets: the synthetic set (SASRec, 20 trials of at most 10 epochs) and, with ``--ml100k``,
RecBole's ml-100k (SASRec, 6 trials of at most 10 epochs). Everything runs on the CPU, one trial
at a time (``--jobs 1``), so that the wall times compare.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

SUITE = """
[suite]
name = "{name}"
seeds = [2020]

[protocol]
max_len = {max_len}

[train]
epochs = {epochs}
batch_size = {batch_size}
stopping_step = {stopping_step}
valid_metric = "ndcg@10"

[eval]
metrics = ["hr@10", "ndcg@10"]

[[datasets]]
{dataset}

[[models]]
model = "sasrec"
params = {{ n_layers = 1, n_heads = 1 }}

[models.tune]
lr = {{ low = 3e-4, high = 1e-2, log = true }}
hidden_size = [16, 32]
hidden_dropout_prob = {{ low = 0.1, high = 0.5, step = 0.1 }}

[tune]
trials = {trials}
sampler = "tpe"
seed = 0
pruner = "{pruner}"
startup_trials = {startup}
"""

CASES = {
    "synthetic": {
        "dataset": 'name = "synthetic"\noptions = { n_users = 200, n_items = 60 }',
        "max_len": 10,
        "epochs": 10,
        "batch_size": 256,
        "stopping_step": 2,
        "trials": 20,
        "startup": 5,
    },
    "ml-100k": {
        "dataset": 'name = "ml-100k"\npath = "{path}"\nformat = "recbole"',
        "max_len": 50,
        "epochs": 10,
        "batch_size": 2048,
        "stopping_step": 2,
        "trials": 6,
        "startup": 2,
    },
}


def run_case(name: str, case: dict, pruner: str, folder: Path) -> dict:
    suite = folder / f"{name}-{pruner}.toml"
    values = {**case, "name": f"bench-{name}-{pruner}", "pruner": pruner}
    suite.write_text(SUITE.format(**values), encoding="utf-8")
    results = folder / f"results-{name}-{pruner}"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "seqbench", "tune", str(suite), "--results", str(results),
         "--device", "cpu", "--quiet"],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{name} {pruner} failed:\n{done.stdout}\n{done.stderr}")
    summary = json.loads((results / values["name"] / "tune" / "summary.json").read_text())
    study = summary["studies"][0]
    return {
        "pruner": pruner,
        "trials": study["trials"],
        "epochs_trained": study["epochs"],
        "best_value": study["best"]["value"] if study["best"] else None,
        "best_trial": study["best"]["trial"] if study["best"] else None,
        "best_params": study["best"]["params"] if study["best"] else None,
        "default_value": study["default"]["value"],
        "wall_seconds": round(seconds, 1),
        "history": [
            {k: h.get(k) for k in ("trial", "state", "value", "epochs", "params")}
            for h in study["history"]
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ml100k", type=Path, help="RecBole's ml-100k.inter")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/tune_pruning.json")
    parser.add_argument("--only", choices=sorted(CASES), help="one dataset only")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from seqbench import environment

    report: dict = {
        "benchmark": "tune_pruning",
        "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "environment": environment.describe(None),
        "cases": {},
    }
    if args.out.exists():  # keep the other dataset's figures when re-running one
        report["cases"] = json.loads(args.out.read_text()).get("cases", {})
    names = [args.only] if args.only else list(CASES)
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            case = dict(CASES[name])
            if name == "ml-100k":
                if args.ml100k is None:
                    continue
                case["dataset"] = case["dataset"].format(path=args.ml100k.resolve())
            settings = {k: v for k, v in case.items() if k != "dataset"}
            runs = [run_case(name, case, pruner, Path(tmp)) for pruner in ("median", "none")]
            report["cases"][name] = {"settings": settings, "runs": runs}
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(report, indent=2) + "\n")
            for run in runs:
                print(
                    f"{name} {run['pruner']}: {run['epochs_trained']} epochs, best "
                    f"{run['best_value']:.4f}, {run['trials']}, {run['wall_seconds']} s"
                )


if __name__ == "__main__":
    main()
