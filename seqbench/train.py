"""Training loop with RecBole's early stopping, and the final valid/test evaluation.

One explicit loop, no trainer framework (style-anchors §2): Adam with the suite's lr and weight
decay, no schedule (model-reference §1.8); the model's criterion at the last real position of
every prefix sample (the model's ``loss``), or with ``objective = "all_positions"`` at every slot
of one window per sequence (``loss_all_positions``, causal variants only); validation after every
epoch on ``valid_metric``; a value ≥ the best so far counts as an improvement (ties reset the
counter, as RecBole's ``early_stopping``) and snapshots the weights; training stops once
``stopping_step + 1`` epochs in a row did not improve (§1.7); the best weights are restored
before the test pass.

The criterion is ``[train] loss``, set on the model (``set_loss``) before the first epoch:
"ce", softmax cross-entropy over the whole item table (RecBole's CE, the default), or "bce" /
"bpr" against ``negatives`` (unset: 1) uniform negatives per target, drawn from torch's global
generator of the training device (which the worker seeds), see :mod:`seqbench.losses`.

After every epoch a model with a ``diagnostics()`` method (returning ``{name: float}``, e.g.
learned gate scalars) has it recorded in that epoch's curve record (and event) under
``"diagnostics"``; the key is absent for any other model.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from seqbench import cells, metrics, precision
from seqbench.batches import DeviceSplit
from seqbench.checkpoint import EpochCheckpoint, restore_rng, rng_state
from seqbench.data.dataset import SequentialDataset
from seqbench.errors import SeqbenchError
from seqbench.evaluate import RankCounts, rank_split
from seqbench.models.base import SequentialRecommender

log = logging.getLogger("seqbench.train")

#: Receives progress events: {"event": "epoch_start" | "batch" | "epoch", ...}.
EventFn = Callable[[dict[str, Any]], None]


class NonFiniteLossError(SeqbenchError):
    """The training loss became NaN or infinite."""


class ObjectiveError(SeqbenchError):
    """The all-positions objective was asked of a variant that would see its targets."""


@dataclass(frozen=True)
class Settings:
    """A cell's ``[train]`` and ``[eval]`` sections, and the evaluation batch size (which
    changes no number, so it is a run option rather than a suite key)."""

    train: cells.TrainSettings
    eval: cells.EvalSettings
    eval_batch_size: int = 4096


@dataclass
class Outcome:
    curve: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int | None = None
    epochs_run: int = 0
    stopped_early: bool = False
    train_seconds: float = 0.0
    valid: RankCounts | None = None
    test: RankCounts | None = None
    inference_seconds: float = 0.0
    train_peak: dict[str, float] = field(default_factory=dict)
    eval_peak: dict[str, float] = field(default_factory=dict)
    resumed_from_epoch: int | None = None  # the checkpoint's epoch this try trained on from
    # the interrupted tries' training and validation seconds up to that checkpoint, so that a
    # resumed cell's total time is what an uninterrupted run would have taken
    carried_seconds: float = 0.0


def fit_and_evaluate(
    model: SequentialRecommender,
    dataset: SequentialDataset,
    settings: Settings,
    *,
    seed: int,
    device: torch.device,
    on_event: EventFn | None = None,
    memory_probe: Callable[[], dict[str, float]] | None = None,
    outcome: Outcome | None = None,
    test: bool = True,
    checkpoint: EpochCheckpoint | None = None,
) -> Outcome:
    """Train ``model`` on ``dataset`` (early stopping on valid), then rank valid and test,
    in the arithmetic of ``[train] precision`` (:mod:`seqbench.precision`). ``test=False``
    (a tuning trial) ranks valid only: the test split is never built, let alone scored.

    ``outcome`` (default: a new one) is filled in as training goes, so that a caller whose
    ``on_event`` ends the cell early (a stop request raises out of it) keeps the curve so far.
    ``checkpoint``: resume from it if it holds a trusted state, and save to it after every epoch
    that does not end training (:mod:`seqbench.checkpoint`).
    """
    outcome = outcome if outcome is not None else Outcome()
    with precision.numerics(settings.train.precision, device):
        return _fit_and_evaluate(
            model,
            dataset,
            settings,
            seed,
            device,
            on_event,
            memory_probe,
            outcome,
            test,
            checkpoint,
        )


def _fit_and_evaluate(
    model: SequentialRecommender,
    dataset: SequentialDataset,
    settings: Settings,
    seed: int,
    device: torch.device,
    on_event: EventFn | None,
    memory_probe: Callable[[], dict[str, float]] | None,
    outcome: Outcome,
    test: bool = True,
    checkpoint: EpochCheckpoint | None = None,
) -> Outcome:
    emit = on_event or (lambda event: None)
    probe = memory_probe or (lambda: {})
    max_len = dataset.protocol.max_len
    valid = DeviceSplit(dataset, "valid", max_len, device)
    if model.trainable:
        _fit(model, dataset, valid, settings, seed, device, emit, outcome, checkpoint)
    else:
        start = time.perf_counter()
        model.fit_statistics(dataset)
        outcome.train_seconds = time.perf_counter() - start
    outcome.train_peak = probe()

    outcome.valid = _rank(model, valid, dataset, settings)
    if not test:  # validation only (a tuning trial): no test split, no test ranks
        outcome.eval_peak = probe()
        return outcome
    test_split = DeviceSplit(dataset, "test", max_len, device)
    _synchronize(device)
    start = time.perf_counter()
    outcome.test = _rank(model, test_split, dataset, settings)
    _synchronize(device)
    outcome.inference_seconds = time.perf_counter() - start
    outcome.eval_peak = probe()
    return outcome


def _fit(
    model: SequentialRecommender,
    dataset: SequentialDataset,
    valid: DeviceSplit,
    settings: Settings,
    seed: int,
    device: torch.device,
    emit: EventFn,
    outcome: Outcome,
    checkpoint: EpochCheckpoint | None = None,
) -> None:
    all_positions = settings.train.objective == "all_positions"
    if all_positions and not model.allows_all_positions:
        raise ObjectiveError(
            f"{type(model).__name__} (this variant) is not declared causal with an output at "
            "every slot, so the all-positions objective would show it its own targets; use "
            '[train] objective = "last"'
        )
    if settings.train.noise is None:
        max_len = dataset.protocol.max_len
        train = DeviceSplit(dataset, "train", max_len, device, windows=all_positions)
    else:  # corrupted training inputs, fixed for the cell (seqbench.data.noise)
        from seqbench.robustness.split import noisy_split

        train = noisy_split(dataset, "train", settings.train.noise, seed, device)
    model.set_loss(settings.train.loss, settings.train.negatives or 1)
    step_loss = model.loss_all_positions if all_positions else model.loss
    autocast = functools.partial(precision.autocast, settings.train.precision, device)
    optimizer = torch.optim.Adam(
        model.parameters(), lr=settings.train.lr, weight_decay=settings.train.weight_decay
    )
    shuffle = torch.Generator().manual_seed(seed)
    best_score = -math.inf
    best_state: dict[str, torch.Tensor] | None = None
    misses = 0
    n_batches = train.n_batches(settings.train.batch_size)
    first_epoch = 0
    saved = checkpoint.load() if checkpoint is not None else None
    if saved is not None and checkpoint is not None:  # resume after the saved epoch
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        best_state, best_score, misses = saved["best_state"], saved["best_score"], saved["misses"]
        shuffle.set_state(saved["shuffle"])
        restore_rng(saved["rng"], device)
        outcome.curve = list(saved["curve"])
        outcome.best_epoch, outcome.train_seconds = saved["best_epoch"], saved["train_seconds"]
        outcome.resumed_from_epoch, outcome.epochs_run = saved["epoch"], saved["epoch"] + 1
        outcome.carried_seconds = saved["train_seconds"] + sum(
            float(r.get("eval_seconds") or 0.0) for r in saved["curve"]
        )
        first_epoch = saved["epoch"] + 1
        checkpoint.restore_log(saved)
        log.info("resumed from the checkpoint of epoch %d (%s)", saved["epoch"], checkpoint.path)
    for epoch in range(first_epoch, settings.train.epochs):
        emit({"event": "epoch_start", "epoch": epoch, "batches": n_batches})
        model.train()
        _synchronize(device)
        start = time.perf_counter()
        total, seen = torch.zeros((), device=device), 0
        for i, batch in enumerate(train.batches(settings.train.batch_size, shuffle)):
            with autocast():
                loss = step_loss(batch.items, batch.lengths, batch.targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if settings.train.clip_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), settings.train.clip_grad_norm)
            optimizer.step()
            count = batch.lengths.sum() if all_positions else batch.targets.shape[0]
            total += loss.detach() * count
            seen += count  # a tensor with all positions: no device sync per batch
            emit({"event": "batch", "batch": i + 1, "batches": n_batches})
        mean_loss = float(total) / max(float(seen), 1.0)  # one device sync per epoch, not per batch
        _synchronize(device)
        seconds = time.perf_counter() - start
        outcome.train_seconds += seconds
        if not math.isfinite(mean_loss):
            raise NonFiniteLossError(
                f"the training loss is {mean_loss} in epoch {epoch}; lower the learning rate "
                f"(lr = {settings.train.lr}) or set [train] clip_grad_norm"
            )
        eval_start = time.perf_counter()
        scores = metric_values(_rank(model, valid, dataset, settings), settings)
        score = scores[settings.train.valid_metric]
        improved = score >= best_score  # RecBole: a tie counts as an improvement
        if improved:
            best_score, misses, outcome.best_epoch = score, 0, epoch
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            misses += 1
        outcome.epochs_run = epoch + 1
        record = {
            "epoch": epoch,
            "loss": mean_loss,
            "valid": scores,
            "seconds": seconds,
            "eval_seconds": time.perf_counter() - eval_start,
        }
        diagnostics = getattr(model, "diagnostics", None)
        if callable(diagnostics):
            with torch.no_grad():  # plain floats (JSON), whatever the method returns
                record["diagnostics"] = {str(k): float(v) for k, v in diagnostics().items()}
        outcome.curve.append(record)
        ends = misses > settings.train.stopping_step or epoch + 1 == settings.train.epochs
        log.info(  # before the checkpoint, whose copy of the log must hold this epoch's line
            "epoch %d: loss %.4f, valid %s (%.1f s)",
            epoch,
            mean_loss,
            ", ".join(f"{k} {v:.4f}" for k, v in scores.items()),
            seconds,
        )
        if checkpoint is not None and not ends:  # before the event, which may end the cell
            checkpoint.save(
                {
                    "epoch": epoch,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "best_state": best_state,
                    "best_score": best_score,
                    "misses": misses,
                    "shuffle": shuffle.get_state(),
                    "rng": rng_state(device),
                    "curve": outcome.curve,
                    "best_epoch": outcome.best_epoch,
                    "train_seconds": outcome.train_seconds,
                }
            )
        emit({"event": "epoch", **record, "best_epoch": outcome.best_epoch, "improved": improved})
        if misses > settings.train.stopping_step:
            outcome.stopped_early = True
            break
    if best_state is not None:
        model.load_state_dict(best_state)


def _rank(
    model: SequentialRecommender,
    split: DeviceSplit,
    dataset: SequentialDataset,
    settings: Settings,
) -> RankCounts:
    return rank_split(
        model,
        split,
        dataset.n_items,
        batch_size=settings.eval_batch_size,
        mask_history=settings.eval.mask_history,
        precision=settings.train.precision,
    )


def metric_values(counts: RankCounts, settings: Settings) -> dict[str, float]:
    """The suite's metrics (and the validation metric) averaged over a split's users."""
    names = dict.fromkeys((*settings.eval.metrics, settings.train.valid_metric))
    return {
        name: metrics.mean(name, counts.higher, counts.tied, settings.eval.ties) for name in names
    }


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
