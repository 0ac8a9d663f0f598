"""Write result stores exactly as docs/results.md describes them, for the report tests.

Metrics in result.json are computed here by hand from integer (pessimistic) ranks, independently
of seqbench.metrics, so that recomputing them from ranks.npz is a real check.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

METRICS = ("hr@10", "ndcg@10", "mrr@10")


def hand_metric(name: str, ranks: Sequence[float]) -> float:
    """HR/NDCG/MRR@K of targets at the given 1-based ranks (one relevant item per user)."""
    kind, k = name.split("@")
    gains = []
    for rank in ranks:
        if rank > int(k):
            gains.append(0.0)
        elif kind == "hr":
            gains.append(1.0)
        elif kind == "ndcg":
            gains.append(1.0 / math.log2(rank + 1))
        else:
            gains.append(1.0 / rank)
    return sum(gains) / len(gains)


def write_cell(
    root: Path,
    *,
    suite: str = "demo",
    dataset: str = "beauty",
    label: str = "sasrec",
    model: str | None = None,
    ablation: str = "full",
    params: dict[str, Any] | None = None,
    sweep: dict[str, Any] | None = None,
    order: Sequence[int] = (0, 0, 0),
    role: str = "baseline",
    seed: int = 1,
    test_rank: Sequence[int] = (1, 2, 3, 40),
    valid_rank: Sequence[int] | None = None,
    ties: str = "pessimistic",
    metrics: Sequence[str] = METRICS,
    status: str = "ok",
    date: str = "2025-01-01T00:00:00+00:00",
    timing: dict[str, Any] | None = None,
    memory: dict[str, Any] | None = None,
    parameters: int = 1000,
    best_epoch: int | None = None,
    epochs_run: int | None = None,
    device_name: str = "Test CPU",
    error: str = "RuntimeError: boom",
    history_len: Sequence[int] | None = None,
    users: Sequence[int] | None = None,
    protocol: dict[str, Any] | None = None,
) -> Path:
    """One cell folder ``ROOT/<suite>/<dataset>/<label>/seed-<seed>-<hash8>/``; returns it.

    Users default to ids 1…n, history lengths to 5 each, the protocol to k_core 5, max_len 50.
    """
    variant = {
        "label": label,
        "model": model or label.split("+")[0],
        "ablation": ablation,
        "sweep": sweep or {},
        "params": params or {"hidden_size": 64},
        "overrides": {},
        "role": role,
        "order": list(order),
    }
    identity = {"dataset": dataset, "variant": variant, "seed": seed, "date": date}
    cell_hash = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
    folder = root / suite / dataset / label / f"seed-{seed}-{cell_hash[:8]}"
    folder.mkdir(parents=True)
    valid = list(valid_rank) if valid_rank is not None else list(test_rank)
    result: dict[str, Any] = {
        "schema": 1,
        "status": status,
        "cell": {
            "hash": cell_hash,
            "identity": identity,
            "suite": suite,
            "dataset": {"name": dataset, "path": None, "format": None, "options": {}},
            "variant": variant,
            "seed": seed,
            "protocol": protocol or {"k_core": 5, "max_len": 50},
            "train": {"epochs": 3},
            "eval": {"metrics": list(metrics), "ties": ties, "mask_history": False},
            "backend": "torch",
            "precision": "fp32",
        },
        "environment": {
            "device": "cuda:0" if memory and memory.get("peak_device_mib") else "cpu",
            "device_name": device_name,
            "date": date,
        },
        "timing": timing
        or {
            "seconds_per_epoch": 2.0,
            "train_seconds": 6.0,
            "total_seconds": 10.0,
            "inference_seconds": 0.5,
            "users_per_second": 8.0,
        },
        "memory": memory or {"peak_rss_mib": 500.0, "peak_device_mib": None},
    }
    if status == "failed":
        kind, _, message = error.partition(": ")
        result["error"] = {"type": kind, "message": message, "traceback": "Traceback …"}
    else:
        result["dataset"] = {"name": dataset, "users": len(test_rank)}
        result["metrics"] = {
            "valid": {m: hand_metric(m, valid) for m in metrics},
            "test": {m: hand_metric(m, test_rank) for m in metrics},
        }
        result["parameters"] = parameters
        if best_epoch is not None:
            result["best_epoch"], result["epochs_run"] = best_epoch, epochs_run
        n = len(test_rank)
        np.savez_compressed(
            folder / "ranks.npz",
            users=np.asarray(users if users is not None else range(1, n + 1), dtype=np.int64),
            history_len=np.asarray(
                history_len if history_len is not None else [5] * n, dtype=np.int64
            ),
            valid_rank=np.asarray(valid, dtype=np.float64),
            test_rank=np.asarray(test_rank, dtype=np.float64),
            valid_tied=np.zeros(n, dtype=np.int64),
            test_tied=np.zeros(n, dtype=np.int64),
            ties=np.array(ties),
        )
    (folder / "result.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    (folder / "cell.log").write_text("log\n", encoding="utf-8")
    return folder


# Per variant, dataset and seed: the test ranks of four users. HR@10 per seed is 0.5, 0.25, 0.75
# for sasrec on beauty (mean 0.5, sample std 0.25).
RANKS = {
    ("sasrec", "beauty"): {1: (1, 2, 20, 30), 2: (1, 50, 20, 30), 3: (1, 2, 3, 30)},
    ("sasrec", "ml-1m"): {1: (1, 1, 1, 30), 2: (2, 3, 4, 30), 3: (5, 6, 7, 30)},
    ("mamba4rec", "beauty"): {1: (1, 1, 2, 30), 2: (1, 1, 3, 3)},
    ("mamba4rec", "ml-1m"): {1: (1, 1, 2, 30)},
    ("mamba4rec+no_ffn", "beauty"): {1: (4, 5, 20, 30)},
}
VARIANTS = {  # label: (model, ablation, order, role)
    "sasrec": ("sasrec", "full", (0, 0, 0), "baseline"),
    "mamba4rec": ("mamba4rec", "full", (1, 0, 0), "proposed"),
    "mamba4rec+no_ffn": ("mamba4rec", "no_ffn", (1, 1, 0), "proposed"),
}


def demo_store(root: Path) -> Path:
    """Suite "demo": 2 datasets × 3 variants, 1–3 seeds, one failed cell, one corrupt file, plus
    leftovers in .tmp/.locks/hidden folders that must be ignored. Returns ROOT/demo."""
    for (label, dataset), seeds in RANKS.items():
        model, ablation, order, role = VARIANTS[label]
        for seed, ranks in seeds.items():
            write_cell(root, dataset=dataset, label=label, model=model, ablation=ablation,
                       order=order, role=role, seed=seed, test_rank=ranks,
                       timing={"seconds_per_epoch": 1.0 + seed, "train_seconds": 3.0,
                               "total_seconds": 100.0 * seed, "inference_seconds": 0.5,
                               "users_per_second": 1000.0 * seed},
                       parameters=1_234_567 if model == "mamba4rec" else 765_432,
                       best_epoch=seed, epochs_run=seed + 3)  # fmt: skip
    model, ablation, order, role = VARIANTS["mamba4rec+no_ffn"]
    write_cell(root, dataset="ml-1m", label="mamba4rec+no_ffn", model=model, ablation=ablation,
               order=order, role=role, seed=1, status="failed",
               error="OutOfMemoryError: CUDA out of memory | tried 2 GiB")  # fmt: skip
    corrupt = root / "demo" / "ml-1m" / "sasrec" / "seed-9-deadbeef"
    corrupt.mkdir(parents=True)
    (corrupt / "result.json").write_text('{"schema": 1, "status": "ok", "cell": {', "utf-8")
    for leftover in (".tmp/abc-1-2", ".locks/x", ".hidden/y"):
        folder = root / "demo" / leftover
        folder.mkdir(parents=True)
        (folder / "result.json").write_text("not json at all", encoding="utf-8")
    return root / "demo"


# ---------------------------------------------------------------------------------------------
# Stores designed for the statistics, ablation, strata and plot tests
# ---------------------------------------------------------------------------------------------

#: 40 users; HR@10 alternates 1, 0 (ranks ≤ 10 at even positions), mean 0.5.
BASE_RANKS = tuple((2, 15, 5, 25, 9, 40, 1, 12)[i % 8] for i in range(40))
#: History lengths cycling through the default strata (≤5, 6–10, 11–20, 21–50, >50): 8 each.
HISTORY = tuple((3, 8, 15, 30, 80)[i % 5] for i in range(40))


def improved(ranks: Sequence[int], users: Sequence[int], rank: int = 1) -> tuple[int, ...]:
    """``ranks`` with the given users' targets moved to ``rank``."""
    return tuple(rank if i in set(users) else r for i, r in enumerate(ranks))


MISSES = [i for i, r in enumerate(BASE_RANKS) if r > 10]  # 20 users a model can gain
HITS = [i for i, r in enumerate(BASE_RANKS) if r <= 10]  # 20 users a model can lose


def marks_store(root: Path) -> Path:
    """Suite "marks": 2 datasets × 5 variants × 2 seeds × 40 users, built so that the outcome
    of every comparison is known.

    - Baselines ``sasrec`` and ``gru4rec``: on beauty sasrec has the better *valid* score and
      gru4rec the better *test* score (2 users better, not significant), so the reference is
      sasrec; on ml-1m the valid scores are swapped and the reference is gru4rec.
    - ``mamba4rec`` (proposed) turns every miss into a hit: significantly better.
    - ``fmlp`` (proposed) gains one user and loses another: no difference.
    - ``narm`` (proposed) turns every hit into a miss: significantly worse.
    """
    perfect, base = (1,) * 40, BASE_RANKS
    tests = {
        "sasrec": base,
        "gru4rec": improved(base, MISSES[:2]),
        "mamba4rec": improved(base, MISSES),
        "fmlp": improved(improved(base, MISSES[:1]), HITS[:1], 50),
        "narm": improved(base, HITS, 50),
    }
    roles = {"sasrec": "baseline", "gru4rec": "baseline"}
    for dataset, valid_best in (("beauty", "sasrec"), ("ml-1m", "gru4rec")):
        for index, (label, test) in enumerate(tests.items()):
            valid = perfect if label == valid_best else base
            for seed in (1, 2):
                # seed 2 moves one user's hit from rank 2 to rank 3: a small seed variance
                ranks = test if seed == 1 else tuple(3 if r == 2 else r for r in test)
                write_cell(root, suite="marks", dataset=dataset, label=label, order=(index, 0, 0),
                           role=roles.get(label, "proposed"), seed=seed, test_rank=ranks,
                           valid_rank=valid, history_len=HISTORY)  # fmt: skip
    return root / "marks"


def ablation_store(root: Path) -> Path:
    """Suite "abl": a ``sasrec`` baseline and mamba4rec with ablations full, no_filter (loses
    every hit the full model adds: significantly worse) and forward_only (one user worse: no
    significant difference), 2 seeds, 40 users, one dataset."""
    full = improved(BASE_RANKS, MISSES)
    variants = {  # label: (ablation, test ranks)
        "sasrec": ("full", BASE_RANKS),
        "mamba4rec": ("full", full),
        "mamba4rec+no_filter": ("no_filter", BASE_RANKS),
        "mamba4rec+forward_only": ("forward_only", improved(full, MISSES[:1], 30)),
    }
    for index, (label, (ablation, test)) in enumerate(variants.items()):
        model = label.split("+")[0]
        for seed in (1, 2):
            write_cell(root, suite="abl", label=label, model=model, ablation=ablation,
                       order=(min(index, 1), max(index - 1, 0), 0), seed=seed, test_rank=test,
                       role="baseline" if model == "sasrec" else "proposed",
                       params={"hidden_size": 64, "d_state": 16} if model == "mamba4rec"
                       else None, history_len=HISTORY)  # fmt: skip
    return root / "abl"


#: max_len → (seconds per epoch, peak GPU MiB): time linear, memory quadratic in max_len.
SCALING = {20: (0.2, 40.0), 50: (0.5, 250.0), 100: (1.0, 1000.0), 200: (2.0, 4000.0)}
D_STATES = {8: 0, 16: 5, 32: 10}  # d_state → users whose miss becomes a hit
NOISE = {0.0: 0, 0.1: 4, 0.2: 8}  # noise ratio → users whose hit becomes a miss


def sweep_store(root: Path) -> Path:
    """Suite "sweeps", one dataset, 2 seeds, 40 users: sasrec swept over ``max_len`` (timing and
    memory from :data:`SCALING`) and over ``noise_ratio`` (:data:`NOISE`), mamba4rec over
    ``d_state`` (:data:`D_STATES`; HR@10 = 0.5 + gained / 40)."""
    entries: list[tuple[str, str, dict[str, Any], tuple[int, ...], dict[str, Any]]] = []
    for max_len, (seconds, mib) in SCALING.items():
        extra = {"protocol": {"k_core": 5, "max_len": max_len},
                 "timing": {"seconds_per_epoch": seconds, "train_seconds": 10 * seconds,
                            "total_seconds": 20 * seconds, "inference_seconds": 0.1,
                            "users_per_second": 400.0},
                 "memory": {"peak_rss_mib": 900.0, "peak_device_mib": mib}}  # fmt: skip
        entries.append(("sasrec", f"sasrec@max_len={max_len}", {"max_len": max_len}, BASE_RANKS,
                        extra))  # fmt: skip
    for d_state, gained in D_STATES.items():
        test = improved(BASE_RANKS, MISSES[:gained])
        entries.append(("mamba4rec", f"mamba4rec@d_state={d_state}", {"d_state": d_state}, test,
                        {"params": {"d_state": d_state}}))  # fmt: skip
    for noise, lost in NOISE.items():
        entries.append(("sasrec", f"sasrec@noise_ratio={noise}", {"noise_ratio": noise},
                        improved(BASE_RANKS, HITS[:lost], 50), {}))  # fmt: skip
    for index, (model, label, sweep, test, extra) in enumerate(entries):
        for seed in (1, 2):
            # seed 2 loses one more hit: a seed spread, so that the plots have intervals
            hit = [i for i in HITS if test[i] <= 10][:1]
            ranks = test if seed == 1 else improved(test, hit, 50)
            write_cell(root, suite="sweeps", label=label, model=model, sweep=sweep,
                       order=(index, 0, 0), seed=seed, test_rank=ranks, history_len=HISTORY,
                       role="baseline" if model == "sasrec" else "proposed", **extra)  # fmt: skip
    return root / "sweeps"


def acceptance_store(root: Path, users: int = 300) -> Path:
    """Suite "accept": 2 models × 2 seeds on one dataset of ``users`` users, ranks drawn at
    random; the proposed mamba4rec moves a third of sasrec's misses to rank 1."""
    rng = np.random.default_rng(0)
    history = rng.integers(1, 120, size=users).tolist()
    for seed in (1, 2):
        base = rng.integers(1, 40, size=users)
        gain = (base > 10) & (rng.random(users) < 1 / 3)
        ranks = {"sasrec": base, "mamba4rec": np.where(gain, 1, base)}
        for index, (label, test) in enumerate(ranks.items()):
            write_cell(root, suite="accept", label=label, order=(index, 0, 0), seed=seed,
                       role="baseline" if label == "sasrec" else "proposed",
                       test_rank=test.tolist(), history_len=history)  # fmt: skip
    return root / "accept"
