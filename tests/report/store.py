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
    device_name: str = "Test CPU",
    error: str = "RuntimeError: boom",
) -> Path:
    """One cell folder ``ROOT/<suite>/<dataset>/<label>/seed-<seed>-<hash8>/``; returns it."""
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
            "protocol": {"k_core": 5, "max_len": 50},
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
        n = len(test_rank)
        np.savez_compressed(
            folder / "ranks.npz",
            users=np.arange(1, n + 1, dtype=np.int64),
            history_len=np.full(n, 5, dtype=np.int64),
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
                       parameters=1_234_567 if model == "mamba4rec" else 765_432)  # fmt: skip
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
