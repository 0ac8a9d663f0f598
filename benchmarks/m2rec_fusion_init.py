"""M2Rec's ``fusion_init``, decided on VALIDATION data only: the fusion Linear of
Ŷ = Linear(α·E(l) + β·E(m)) starting as the identity, or drawn N(0, 0.02²) as RecBole draws
every other Linear (the paper and its code say nothing else, so "recbole" is their reading).

    python benchmarks/m2rec_fusion_init.py --out benchmarks/results/m2rec_fusion_init.json \
        [--seeds 0,1,2,3,4] [--hidden 32 --d-state 8 --lr 5e-3] \
        [--ml100k ../shared/data/ml-100k-recbole --ml100k-epochs 6]

Each run trains m2rec (one layer, dropout 0.2, the paper's SSM LayerNorm, item text through the
offline ``wordllama`` encoder; ``--hidden``/``--d-state`` sizes, official 64/32) through
seqbench's trainer with early stopping on validation NDCG@10, and records the validation curve
and the best validation NDCG@10 only: test metrics are neither recorded nor looked at. Runs
alternate the two inits within a seed. Synthetic: the registry's generator (1000 users, 500
items, its item text), RecBole protocol at max_len 20, batch 256, Adam ``--lr``, at most
``--epochs`` epochs, stopping after ``--stopping-step`` + 1 epochs without improvement.
ml-100k (optional): RecBole's atomic files, max_len 50, batch 2048, Adam 1e-3, official sizes,
one seed, a fixed small number of epochs, titles, years and genres of ml-100k.item as text.
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
sys.path.insert(0, str(REPO))

INITS = ("identity", "recbole")


def item_text(dataset: Any, text_file: Path | None, encoder: str) -> Any:
    from seqbench.models.item_text import ItemText
    from seqbench.text.embeddings import embed_item_texts
    from seqbench.text.sources import TextSpec, align_texts, read_item_text

    if text_file is None:
        texts = dataset.data.item_text
    else:
        table = read_item_text(TextSpec(path=text_file, format="recbole"))
        texts = align_texts(table, dataset.data.item_tokens)
    embedded = embed_item_texts(texts, encoder)
    return ItemText.from_arrays(embedded.vectors, embedded.has_text), embedded.info


def run(
    dataset: Any, text: Any, init: str, seed: int, settings: Any, sizes: dict[str, int]
) -> dict[str, Any]:
    import torch

    from seqbench import train
    from seqbench.models.registry import get_model

    spec = get_model("m2rec")
    params = spec.validate_params({"fusion_init": init, **sizes}, "m2rec")
    torch.manual_seed(seed)
    model = spec.cls(
        params, n_items=dataset.n_items, max_len=dataset.protocol.max_len, item_text=text
    )
    start = time.perf_counter()
    outcome = train.fit_and_evaluate(
        model, dataset, settings, seed=seed, device=torch.device("cpu")
    )
    valid = [c["valid"]["ndcg@10"] for c in outcome.curve]
    return {
        "init": init,
        "seed": seed,
        "epochs_run": outcome.epochs_run,
        "best_epoch": outcome.best_epoch,
        "best_valid_ndcg@10": max(valid),
        "valid_ndcg@10_curve": valid,
        "final_gate": outcome.curve[-1].get("diagnostics"),
        "seconds": time.perf_counter() - start,
    }


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    by = {i: {r["seed"]: r["best_valid_ndcg@10"] for r in runs if r["init"] == i} for i in INITS}
    seeds = sorted(set(by["identity"]) & set(by["recbole"]))
    diffs = [by["identity"][s] - by["recbole"][s] for s in seeds]
    out: dict[str, Any] = {
        "mean_best_valid_ndcg@10": {i: statistics.mean(by[i].values()) for i in INITS},
        "identity_minus_recbole_per_seed": diffs,
        "identity_wins": sum(d > 0 for d in diffs),
        "seeds": seeds,
    }
    if len(diffs) > 1:
        out["mean_difference"] = statistics.mean(diffs)
        out["std_difference"] = statistics.stdev(diffs)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--stopping-step", type=int, default=3)
    parser.add_argument("--encoder", default="wordllama")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--d-state", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--ml100k", type=Path, help="folder with ml-100k.inter and ml-100k.item")
    parser.add_argument("--ml100k-epochs", type=int, default=6)
    args = parser.parse_args()
    import torch

    from seqbench import environment, train
    from seqbench.cells import EvalSettings, TrainSettings
    from seqbench.data.load import DatasetSpec, load_dataset
    from seqbench.data.protocol import Protocol

    eval_settings = EvalSettings(metrics=["ndcg@10"])
    record: dict[str, Any] = {
        "benchmark": "M2Rec fusion_init on validation NDCG@10 (test not looked at)",
        "environment": environment.describe(torch.device("cpu")),
        "command": " ".join(sys.argv),
        "datasets": {},
    }
    synthetic = load_dataset(DatasetSpec(name="synthetic"), Protocol(k_core=5, max_len=20))
    text, info = item_text(synthetic, None, args.encoder)
    settings = train.Settings(
        TrainSettings(
            epochs=args.epochs, batch_size=256, lr=args.lr, stopping_step=args.stopping_step
        ),
        eval_settings,
    )
    runs = []
    for seed in map(int, args.seeds.split(",")):
        for init in INITS:
            sizes = {"hidden_size": args.hidden, "d_state": args.d_state}
            runs.append(run(synthetic, text, init, seed, settings, sizes))
            print(json.dumps({k: v for k, v in runs[-1].items() if "curve" not in k}), flush=True)
    record["datasets"]["synthetic"] = {
        "settings": {"n_users": 1000, "max_len": 20, "batch_size": 256, "lr": args.lr,
                     "hidden_size": args.hidden, "d_state": args.d_state,
                     "epochs": args.epochs, "stopping_step": args.stopping_step},
        "text": info,
        "runs": runs,
        "summary": summary(runs),
    }  # fmt: skip
    if args.ml100k is not None:
        ml = load_dataset(
            DatasetSpec(name="ml-100k", path=str(args.ml100k), format="recbole"),
            Protocol(k_core=5, max_len=50),
        )
        text, info = item_text(ml, args.ml100k / "ml-100k.item", args.encoder)
        settings = train.Settings(
            TrainSettings(epochs=args.ml100k_epochs, batch_size=2048, lr=1e-3, stopping_step=10),
            eval_settings,
        )
        runs = [run(ml, text, init, 2020, settings, {}) for init in INITS]
        for r in runs:
            print(json.dumps({k: v for k, v in r.items() if "curve" not in k}), flush=True)
        record["datasets"]["ml-100k"] = {
            "settings": {"max_len": 50, "batch_size": 2048, "lr": 1e-3,
                         "epochs": args.ml100k_epochs, "seed": 2020},
            "text": info,
            "runs": runs,
            "summary": summary(runs),
        }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: v["summary"] for k, v in record["datasets"].items()}, indent=2))


if __name__ == "__main__":
    main()
