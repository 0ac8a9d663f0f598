"""One trained model scored under evaluation conditions (``[eval] noise``).

Each condition ranks the test users' targets with corrupted inputs (or noisy input embeddings)
exactly as the clean test pass ranks them (same evaluator, batch size, history masking, tie
policy and precision), so a zero level gives the clean ranks bit for bit. Its result enters
the record as ``evaluations[NAME] = {condition, metrics, ranks, seconds, recorded}`` and
ranks.npz as ``test_rank@NAME`` and ``test_tied@NAME`` (docs/results.md).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seqbench import precision, record
from seqbench.cells import Cell
from seqbench.data.dataset import SequentialDataset, SplitName
from seqbench.data.noise.spec import NoiseSpec
from seqbench.evaluate import RankCounts, rank_split
from seqbench.metrics import ranks_from_counts
from seqbench.models.base import SequentialRecommender
from seqbench.robustness.embedding import embedding_noise
from seqbench.robustness.split import noisy_split
from seqbench.train import Settings, metric_values

SPLIT: SplitName = "test"  # conditions score the test users (valid is for model selection)


@dataclass(frozen=True)
class ConditionResult:
    """One condition's per-user counts on the test split, in split order."""

    spec: NoiseSpec
    seed: int
    counts: RankCounts
    seconds: float


def score_condition(
    model: SequentialRecommender,
    dataset: SequentialDataset,
    spec: NoiseSpec,
    *,
    seed: int,
    settings: Settings,
    device: torch.device,
) -> ConditionResult:
    """Rank the test targets of ``dataset`` with ``model`` under ``spec`` (noise drawn with
    ``seed``: the cell's seed, so every model of that seed sees the same noise)."""
    start = time.perf_counter()
    split = noisy_split(dataset, SPLIT, spec, seed, device)
    with (
        precision.numerics(settings.train.precision, device),
        _maybe_embedding(model, split, spec, seed),
    ):
        counts = rank_split(
            model,
            split,
            dataset.n_items,
            batch_size=settings.eval_batch_size,
            mask_history=settings.eval.mask_history,
            precision=settings.train.precision,
        )
    return ConditionResult(spec, seed, counts, time.perf_counter() - start)


def _maybe_embedding(model: SequentialRecommender, split: Any, spec: NoiseSpec, seed: int) -> Any:
    import contextlib

    if spec.kind != "embedding":
        return contextlib.nullcontext()
    return embedding_noise(model, split, spec, seed, SPLIT)


def score_conditions(
    model: SequentialRecommender,
    dataset: SequentialDataset,
    specs: list[NoiseSpec],
    *,
    seed: int,
    settings: Settings,
    device: torch.device,
) -> list[ConditionResult]:
    """:func:`score_condition` for each spec, in order."""
    return [
        score_condition(model, dataset, spec, seed=seed, settings=settings, device=device)
        for spec in specs
    ]


def rank_names(name: str) -> dict[str, str]:
    """The ranks.npz arrays of condition ``name``, by role."""
    return {SPLIT: f"{SPLIT}_rank@{name}", f"{SPLIT}_tied": f"{SPLIT}_tied@{name}"}


def entries(
    results: list[ConditionResult], settings: Settings
) -> tuple[dict[str, dict[str, Any]], dict[str, np.ndarray]]:
    """The record's ``evaluations`` entries and the ranks.npz arrays of ``results``."""
    found: dict[str, dict[str, Any]] = {}
    arrays: dict[str, np.ndarray] = {}
    for result in results:
        name = result.spec.label
        names = rank_names(name)
        found[name] = {
            "condition": {**result.spec.condition(), "split": SPLIT, "seed": result.seed},
            "metrics": {"test": metric_values(result.counts, settings)},
            "ranks": names,
            "seconds": result.seconds,
            "recorded": record.now(),
        }
        ties = settings.eval.ties
        arrays[names[SPLIT]] = ranks_from_counts(result.counts.higher, result.counts.tied, ties)
        arrays[names[f"{SPLIT}_tied"]] = result.counts.tied.astype(np.int64)
    return found, arrays


def saves_weights(cell: Cell) -> bool:
    """``[train] save_weights``, which defaults to on for cells with evaluation conditions."""
    chosen = cell.train.save_weights
    return bool(cell.eval.noise) if chosen is None else chosen


def after_training(
    model: SequentialRecommender,
    dataset: SequentialDataset,
    cell: Cell,
    cell_hash: str,
    settings: Settings,
    device: torch.device,
    out: Path,
    data: dict[str, Any],
) -> dict[str, np.ndarray]:
    """The worker's step after the test pass: store the weights (if asked) and score the
    cell's evaluation conditions, their entries added to ``data`` (the record being written);
    returns the arrays to add to ranks.npz."""
    from seqbench.robustness.weights import save_weights

    if saves_weights(cell):
        save_weights(model, out / record.WEIGHTS, cell_hash=cell_hash, model=cell.variant.model)
    if not cell.eval.noise or data.get("tune") is not None:
        return {}  # a tuning trial never reads the test split
    results = score_conditions(
        model, dataset, list(cell.eval.noise), seed=cell.seed, settings=settings, device=device
    )
    found, arrays = entries(results, settings)
    data["evaluations"] = found
    return arrays
