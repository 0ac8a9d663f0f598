"""Throughput cells (``[train] mode = "throughput"``): how fast a model trains and scores at one
batch size and sequence length, and how much memory that takes, without training to
convergence.

A throughput cell builds the model and its optimizer as a fit cell would, then

1. reads the memory in use (``baseline``: data, model and everything before the first step);
2. runs ``warmup_steps`` untimed and ``steps`` timed training steps (forward, loss, backward,
   optimizer step: the trainer's step, with the cell's loss, objective and precision), each on
   its own ``batch_size`` training samples, the longest the split has (so that every slot of
   the ``max_len`` window is real wherever the data allows);
3. scores ``score_users`` test users against every item, as the evaluator does, in batches of
   ``batch_size`` (one untimed batch first when there are warm-up steps).

Time is wall time around each step (``torch.cuda.synchronize`` before and after on CUDA, so
that queued kernels are counted in their own step). Memory is read per phase with its peak reset
at the phase's start: on CUDA the allocator's ``max_memory_allocated``, on a CPU the resident
set's high-water mark (:mod:`seqbench.memory`); both in MiB. ``baseline`` lets a study fit the
memory a length costs *above* what the cell holds anyway.

The ``throughput`` section of the record is filled in as the cell goes (``section``, a dict the
worker writes), so that a cell stopped by a time or memory cap keeps the steps it completed;
``where`` says which step was running (the worker puts it into the stop reason).
"""

from __future__ import annotations

import contextlib
import functools
import math
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from seqbench import memory, precision
from seqbench.batches import DeviceSplit
from seqbench.cells import THROUGHPUT_DEFAULTS
from seqbench.data.dataset import SequentialDataset
from seqbench.evaluate import rank_split
from seqbench.models.base import SequentialRecommender
from seqbench.train import EventFn, NonFiniteLossError, ObjectiveError, Settings

#: A context manager factory inside which the worker may end the cell at once (a stop request
#: raises there, mid-step, instead of at the next event).
Interruptible = Callable[[], contextlib.AbstractContextManager[Any]]


class Progress:
    """Where a throughput cell is, in words (for stop reasons)."""

    def __init__(self) -> None:
        self.where = "before the first step"

    def at(self, phase: str, step: int, of: int) -> None:
        if phase == "score":
            self.where = f"the scoring of {of} users"
            return
        names = {"warmup": "warm-up step", "train": "timed training step"}
        self.where = f"{names[phase]} {step} of {of}"


def measure(
    model: SequentialRecommender,
    dataset: SequentialDataset,
    settings: Settings,
    *,
    seed: int,
    device: torch.device,
    section: dict[str, Any],
    on_event: EventFn | None = None,
    interruptible: Interruptible = contextlib.nullcontext,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Time ``model``'s training steps and scoring per the cell's ``[train]`` settings, filling
    ``section`` (the record's ``throughput``) as it goes; returns it."""
    with precision.numerics(settings.train.precision, device):
        return _measure(
            model,
            dataset,
            settings,
            seed,
            device,
            section,
            on_event or (lambda event: None),
            interruptible,
            progress or Progress(),
        )


def _measure(
    model: SequentialRecommender,
    dataset: SequentialDataset,
    settings: Settings,
    seed: int,
    device: torch.device,
    section: dict[str, Any],
    emit: EventFn,
    interruptible: Interruptible,
    progress: Progress,
) -> dict[str, Any]:
    train = settings.train
    warmup = (
        THROUGHPUT_DEFAULTS["warmup_steps"] if train.warmup_steps is None else train.warmup_steps
    )
    steps = train.steps or THROUGHPUT_DEFAULTS["steps"]
    users = train.score_users or THROUGHPUT_DEFAULTS["score_users"]
    max_len = dataset.protocol.max_len
    section.update(
        batch_size=train.batch_size, max_len=max_len, warmup_steps=warmup, steps=steps,
        step_seconds=[],
    )  # fmt: skip
    if not model.trainable:
        raise ObjectiveError(
            f"{type(model).__name__} is fitted from counts, not trained by steps: a throughput "
            'cell has nothing to time; use [train] mode = "fit"'
        )
    all_positions = train.objective == "all_positions"
    if all_positions and not model.allows_all_positions:
        raise ObjectiveError(
            f"{type(model).__name__} (this variant) may not train with the all-positions "
            'objective; use [train] objective = "last"'
        )
    split = DeviceSplit(dataset, "train", max_len, device, windows=all_positions)
    generator = torch.Generator().manual_seed(seed)
    rows = longest_rows(split, train.batch_size * (warmup + steps), generator)
    model.set_loss(train.loss, train.negatives or 1)
    step_loss = model.loss_all_positions if all_positions else model.loss
    autocast = functools.partial(precision.autocast, train.precision, device)
    optimizer = torch.optim.Adam(model.parameters(), lr=train.lr, weight_decay=train.weight_decay)
    model.train()

    reading = _Memory(device)
    memory_section: dict[str, Any] = {"kind": reading.kind, "baseline": reading.start()}
    section["memory"] = memory_section
    tokens = 0
    last_loss = torch.zeros(())
    for i in range(warmup + steps):
        timed = i >= warmup
        phase, number, of = ("train", i - warmup + 1, steps) if timed else ("warmup", i + 1, warmup)
        progress.at(phase, number, of)
        emit({"event": "step_start", "phase": phase, "step": number, "steps": of})
        batch = split.batch(rows[i * train.batch_size : (i + 1) * train.batch_size])
        _synchronize(device)
        start = time.perf_counter()
        with interruptible():
            with autocast():
                loss = step_loss(batch.items, batch.lengths, batch.targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if train.clip_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), train.clip_grad_norm)
            optimizer.step()
            _synchronize(device)
        seconds = time.perf_counter() - start
        last_loss = loss.detach()
        if timed:
            tokens += int(batch.lengths.sum())
            section["step_seconds"].append(seconds)
            section["seconds_per_step"] = statistics.median(section["step_seconds"])
            section["tokens_per_second"] = tokens / max(sum(section["step_seconds"]), 1e-12)
        emit({"event": "step", "phase": phase, "step": number, "steps": of, "seconds": seconds})
    memory_section["train_peak"] = reading.peak()
    if not math.isfinite(float(last_loss)):
        raise NonFiniteLossError(
            f"the training loss is {float(last_loss)} after {warmup + steps} steps; lower the "
            f"learning rate (lr = {train.lr}) or set [train] clip_grad_norm"
        )
    del optimizer, loss, last_loss, batch

    test = DeviceSplit(dataset, "test", max_len, device)
    chosen = longest_rows(test, min(users, len(test)), generator, repeat=False)
    scored = test.take(chosen)
    reading.start()
    score = functools.partial(
        rank_split,
        model,
        n_items=dataset.n_items,
        batch_size=train.batch_size,
        mask_history=settings.eval.mask_history,
        precision=train.precision,
    )
    emit({"event": "step_start", "phase": "score", "step": len(scored), "steps": len(scored)})
    if warmup:
        progress.where = "scoring (warm-up batch)"
        with interruptible():
            score(test.take(chosen[: train.batch_size]))
    progress.at("score", len(scored), len(scored))
    _synchronize(device)
    start = time.perf_counter()
    with interruptible():
        score(scored)
        _synchronize(device)
    seconds = time.perf_counter() - start
    memory_section["score_peak"] = reading.peak()
    section.update(users_scored=len(scored), users_per_second=len(scored) / max(seconds, 1e-12))
    emit({"event": "step", "phase": "score", "step": len(scored), "steps": len(scored),
          "seconds": seconds})  # fmt: skip
    return section


def longest_rows(
    split: DeviceSplit, count: int, generator: torch.Generator, repeat: bool = True
) -> torch.Tensor:
    """``count`` sample positions of ``split``, longest inputs first (ties in a seeded random
    order); the order starts over when the split has fewer samples (unless not ``repeat``)."""
    n = len(split)
    if n == 0:
        raise ValueError("the split has no samples to time")
    length = torch.clamp(split.ends - split.starts, max=split.max_len).cpu()
    shuffled = torch.randperm(n, generator=generator)
    order = shuffled[torch.argsort(length[shuffled], descending=True, stable=True)]
    if count > n and repeat:
        order = order.repeat(-(-count // n))
    return order[:count].to(split.device)


class _Memory:
    """Per-phase memory of this process on ``device``: a start (the peak reset, the current use
    returned) and the phase's peak, in MiB."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.kind = "cuda" if device.type == "cuda" else "rss"

    def start(self) -> float | None:
        if self.kind == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            return torch.cuda.memory_allocated(self.device) / 2**20
        memory.release_free_memory()
        memory.reset_peak()
        return memory.current_rss_mib()

    def peak(self) -> float:
        if self.kind == "cuda":
            torch.cuda.synchronize(self.device)
            return torch.cuda.max_memory_allocated(self.device) / 2**20
        return memory.peak_rss_mib()


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
