"""SASRec training step: last-slot readout against the full last layer, per epoch-equivalent.

One epoch-equivalent = ml-100k under the default protocol (1,349 items, max_len 50, 96,458
training samples = 47 batches of 2,048 and one of 202) of forward + CE over the whole table +
backward on random right-padded batches; no optimizer step, no data loading. "fast" is the
model's own ``loss`` (the last transformer layer computed at slot length − 1 only); "full" is
``forward_all`` gathered at length − 1, the same numbers with the last layer at every slot (what
RecBole computes). With ``--recbole`` (an interpreter that has RecBole 1.2.0), "recbole" is
RecBole's own SASRec with the same weights (``calculate_loss``), with the autograd anomaly
detection that importing RecBole switches on turned off again (it is not part of the model).
The modes run batch by batch in rotation, so that other load on the machine hits them alike; the
load average is recorded::

    python benchmarks/sasrec_step.py --threads 2 --out benchmarks/results/sasrec_step.json
    /tmp/rbenv/bin/python benchmarks/sasrec_step.py --recbole --out …

Expected from FLOPs: the default SASRec spends ≈ 5.6 MFLOP per sample per layer forward, the
readout layer ≈ 0.9 (keys and values only, plus one query), so ≈ 40 % fewer FLOPs; elementwise
work (GELU, LayerNorm, dropout) over the last layer's L slots is saved too.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from seqbench.models.base import gather_last
from seqbench.models.sasrec import SASRec, SASRecParams

N_ITEMS, MAX_LEN, TRAIN_SAMPLES, BATCH = 1349, 50, 96_458, 2048


def batch(size: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    lengths = torch.randint(1, MAX_LEN + 1, (size,), generator=g)
    items = torch.randint(1, N_ITEMS + 1, (size, MAX_LEN), generator=g)
    items = items * (torch.arange(MAX_LEN)[None, :] < lengths[:, None])
    return items, lengths, torch.randint(1, N_ITEMS + 1, (size,), generator=g)


def recbole_twin(model: SASRec) -> torch.nn.Module:
    """RecBole's SASRec with ``model``'s weights (its module names are ours)."""
    import logging

    from recbole.config import Config
    from recbole.model.sequential_recommender.sasrec import SASRec as RecBoleSASRec

    torch.autograd.set_detect_anomaly(False)  # switched on by RecBole's sine.py at import
    logging.disable(logging.CRITICAL)
    overrides = {
        "use_gpu": False,
        "MAX_ITEM_LIST_LENGTH": MAX_LEN,
        "loss_type": "CE",
        "train_neg_sample_args": None,
    }
    config = Config(model="SASRec", dataset="bench", config_dict=overrides)

    class Stub:
        def num(self, field: str) -> int:
            return N_ITEMS + 1

    twin = RecBoleSASRec(config, Stub())
    twin.load_state_dict(model.state_dict())
    return twin.train()


def step(model: torch.nn.Module, data: tuple[torch.Tensor, ...], mode: str) -> float:
    items, lengths, targets = data
    start = time.perf_counter()
    model.zero_grad(set_to_none=True)
    if mode == "recbole":
        from recbole.data.interaction import Interaction

        inter = {"item_id_list": items, "item_length": lengths, "item_id": targets}
        loss = model.calculate_loss(Interaction(inter))
    elif mode == "fast":
        loss = model.loss(items, lengths, targets)
    else:
        user = gather_last(model.forward_all(items, lengths), lengths)
        loss = F.cross_entropy(model.score(user), targets)
    loss.backward()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--recbole", action="store_true", help="also time RecBole's SASRec")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(2020)
    model = SASRec(SASRecParams(), n_items=N_ITEMS, max_len=MAX_LEN).train()
    g = torch.Generator().manual_seed(0)
    sizes = [BATCH] * (TRAIN_SAMPLES // BATCH) + [TRAIN_SAMPLES % BATCH]
    modes = ["fast", "full", *(["recbole"] if args.recbole else [])]
    models = {"fast": model, "full": model}
    if args.recbole:
        models["recbole"] = recbole_twin(model)
    for mode in modes:  # warm-up (allocator, thread pool)
        step(models[mode], batch(BATCH, g), mode)
    load_before = os.getloadavg()
    epochs: dict[str, list[float]] = {m: [] for m in modes}
    per_batch: dict[str, list[float]] = {m: [] for m in modes}
    for _ in range(args.epochs):
        totals = dict.fromkeys(modes, 0.0)
        for i, size in enumerate(sizes):
            data = batch(size, g)
            for mode in modes[i % len(modes) :] + modes[: i % len(modes)]:
                seconds = step(models[mode], data, mode)
                totals[mode] += seconds
                if size == BATCH:
                    per_batch[mode].append(seconds)
        for mode, total in totals.items():
            epochs[mode].append(total)
        print({m: round(t, 1) for m, t in totals.items()}, flush=True)
    load_after = os.getloadavg()
    result = {
        mode: {
            "seconds_per_epoch": statistics.median(epochs[mode]),
            "epochs": [round(t, 2) for t in epochs[mode]],
            "seconds_per_batch_median": statistics.median(per_batch[mode]),
            "seconds_per_batch_min": min(per_batch[mode]),
        }
        for mode in modes
    }
    speedup = result["full"]["seconds_per_epoch"] / result["fast"]["seconds_per_epoch"]
    speedup_min = result["full"]["seconds_per_batch_min"] / result["fast"]["seconds_per_batch_min"]
    report = {
        "benchmark": "sasrec_step",
        "command": " ".join(["python", *sys.argv]),
        "what": "forward + CE + backward, SASRec defaults, random batches, no optimizer step",
        "sizes": {
            "n_items": N_ITEMS,
            "max_len": MAX_LEN,
            "train_samples": TRAIN_SAMPLES,
            "batch": BATCH,
            "batches": len(sizes),
        },
        "threads": args.threads,
        "torch": torch.__version__,
        "machine": platform.platform(),
        "cpu_count": os.cpu_count(),
        "load_average_before_after": [round(x, 2) for x in (*load_before, *load_after)],
        "expected_flops_ratio_fast_over_full": 0.59,
        **result,
        "speedup_epoch": round(speedup, 2),
        "speedup_best_batch": round(speedup_min, 2),
    }
    if args.recbole:
        import recbole

        report["recbole"] = {**result["recbole"], "version": recbole.__version__}
        ratio = result["recbole"]["seconds_per_epoch"] / result["fast"]["seconds_per_epoch"]
        report["speedup_fast_over_recbole_epoch"] = round(ratio, 2)
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
