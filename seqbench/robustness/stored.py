"""Evaluation conditions added to finished cells, without retraining (``seqbench evaluate``, and
``seqbench run`` when a suite gains ``[eval] noise`` conditions).

A cell is rebuilt from its record: the dataset (checked against the sha256 it trained on), the
model with its resolved parameters, and the best weights from ``weights.safetensors`` (checked
against the cell hash). Each missing condition is scored as the worker scores it, then added
while holding the cell's claim (:meth:`seqbench.store.SuiteStore.claim`), so that two
evaluators never interleave: ranks.npz gains the condition's arrays, then result.json its
``evaluations`` entry, each file replaced atomically and the record validated as a
:class:`seqbench.record.ResultRecord`. The training curve, metrics and every other field stay
as they were. A condition already recorded under the same name with the same settings is left
alone; the same name with other settings is an error.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from seqbench import atomic, lease, record, store
from seqbench.cells import Cell
from seqbench.data.noise.spec import NoiseSpec
from seqbench.errors import ConfigError, SeqbenchError

#: Keys of a recorded condition that are not settings (what names and places it).
NOT_SETTINGS = ("name", "split", "seed", "device")


class NoWeightsError(SeqbenchError):
    """A cell without stored weights cannot be scored under a new condition."""


@dataclass
class Outcome:
    """What happened to one cell."""

    cell_dir: Path
    added: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0


def missing_conditions(parsed: record.ResultRecord, specs: Sequence[NoiseSpec]) -> list[NoiseSpec]:
    """The specs whose name the record lacks (a recorded name with other settings: a
    :class:`ConfigError`)."""
    existing = parsed.evaluations or {}
    missing = []
    for spec in specs:
        entry = existing.get(spec.label)
        if entry is None:
            missing.append(spec)
            continue
        settings = {k: v for k, v in entry.condition.items() if k not in NOT_SETTINGS}
        if settings != spec.identity():
            raise ConfigError(
                f"condition {spec.label!r} is recorded with other settings ({settings}) than "
                f"asked ({spec.identity()}); give the new one another name"
            )
    return missing


def cell_of(parsed: record.ResultRecord) -> Cell:
    """The :class:`Cell` a record was computed from."""
    data = parsed.to_json()["cell"]
    return Cell.from_json({k: v for k, v in data.items() if k not in ("hash", "identity")})


def suite_store(
    cell_dir: Path, cell: Cell, cell_hash: str, lease_seconds: float
) -> store.SuiteStore:
    """The store that holds ``cell_dir`` (ROOT/<suite>/<dataset>/<variant>/seed-…)."""
    relative = cell.directory(cell_hash)
    suite_dir = cell_dir
    for _ in PurePosixPath(relative).parts:
        suite_dir = suite_dir.parent
    results = store.SuiteStore(suite_dir.parent, suite_dir.name, lease_seconds=lease_seconds)
    if results.cell_dir(relative).resolve() != cell_dir.resolve():
        raise SeqbenchError(
            f"{cell_dir} is not where its record places it ({relative} under a suite folder)"
        )
    return results


def add_conditions(
    cell_dir: Path,
    specs: Sequence[NoiseSpec],
    *,
    device: str | None = None,
    cache_dir: Path | None = None,
    eval_batch_size: int = 4096,
    lease_seconds: float = lease.DEFAULT_LEASE_SECONDS,
    poll: float = 1.0,
) -> Outcome:
    """Score the ``specs`` a finished (``ok``) cell lacks and add them to it; raises
    :class:`NoWeightsError` for a cell without weights, :class:`SeqbenchError` for one that
    is not ok or whose data changed."""
    started = time.perf_counter()
    outcome = Outcome(cell_dir)
    parsed = record.read(cell_dir / record.RESULT)
    if parsed.status != "ok":
        raise SeqbenchError(
            f"{cell_dir}: its status is {parsed.status!r}; only ok cells are scored"
        )
    missing = missing_conditions(parsed, specs)
    outcome.present = [s.label for s in specs if s not in missing]
    if not missing:
        return outcome
    if not (cell_dir / record.WEIGHTS).is_file():
        raise NoWeightsError(
            f"{cell_dir}: no {record.WEIGHTS}, so it cannot be scored under "
            f"{', '.join(s.label for s in missing)} without retraining. Cells store their "
            "weights when [train] save_weights = true (the default in suites with [eval] "
            "noise): to retrain it, delete its folder and run its suite with that setting"
        )
    cell = cell_of(parsed)
    results = suite_store(cell_dir, cell, parsed.cell.hash, lease_seconds)
    claim = results.wait_for(parsed.cell.hash, lambda: False, poll=poll)
    assert claim is not None  # done() is never true: we wait for the claim itself
    results.heartbeat(claim)
    ok = False
    try:
        parsed = record.read(cell_dir / record.RESULT)  # another evaluator may have added some
        missing = missing_conditions(parsed, specs)
        if missing:
            _score_and_add(cell_dir, parsed, cell, missing, device, cache_dir, eval_batch_size,
                           claim)  # fmt: skip
        outcome.added = [s.label for s in missing]
        outcome.present = [s.label for s in specs if s not in missing]
        ok = True
    finally:
        _release(results, claim, ok)
    outcome.seconds = time.perf_counter() - started
    return outcome


def _release(results: store.SuiteStore, claim: store.Claim, ok: bool) -> None:
    """Drop the claim; our attempt note goes (the cell was not recomputed, nothing to list)."""
    if claim.attempt is not None:
        attempt = claim.attempt
        claim.attempt = None
        with contextlib.suppress(OSError):
            attempt.unlink()
            attempt.parent.rmdir()  # only when empty
    results.release(claim, "ok" if ok else "failed")


def _score_and_add(
    cell_dir: Path,
    parsed: record.ResultRecord,
    cell: Cell,
    missing: list[NoiseSpec],
    device_name: str | None,
    cache_dir: Path | None,
    eval_batch_size: int,
    claim: store.Claim,
) -> None:
    import torch

    from seqbench.robustness.conditions import entries, score_conditions
    from seqbench.train import Settings

    device = torch.device(device_name or _default_device(cell))
    model, dataset = rebuild(cell_dir, parsed, cell, device, cache_dir)
    settings = Settings(cell.train, cell.eval, eval_batch_size=eval_batch_size)
    scored = score_conditions(model, dataset, missing, seed=cell.seed, settings=settings,
                              device=device)  # fmt: skip
    found, arrays = entries(scored, settings)
    for entry in found.values():
        entry["condition"]["device"] = device.type
    lease.check(claim.lease)  # still ours: no one else may have taken the cell over
    ranks_path = cell_dir / record.RANKS
    with np.load(ranks_path, allow_pickle=False) as npz:
        stored = {name: npz[name] for name in npz.files}
    if not np.array_equal(stored["users"], dataset.split("test").user):
        raise SeqbenchError(f"{ranks_path}: its users are not the dataset's test users")
    merged = {**stored, **arrays}
    atomic.write_with(ranks_path, lambda f: np.savez_compressed(f, **merged))
    evaluations = {
        name: entry.model_dump(mode="json", exclude_none=True)
        for name, entry in (parsed.evaluations or {}).items()
    }
    updated = parsed.with_updates(evaluations={**evaluations, **found})
    atomic.write_json(cell_dir / record.RESULT, updated.to_json())


def _default_device(cell: Cell) -> str:
    """The device type the cell trained on (CUDA only where there is one)."""
    import torch

    if cell.device == "cuda" and not torch.cuda.is_available():
        raise SeqbenchError(
            "the cell trained on CUDA and PyTorch sees no GPU here; pass --device cpu (scores "
            "may then differ from a GPU's in their last digits)"
        )
    return cell.device


def rebuild(
    cell_dir: Path,
    parsed: record.ResultRecord,
    cell: Cell,
    device: Any,
    cache_dir: Path | None,
) -> tuple[Any, Any]:
    """The cell's trained model (its stored weights, on ``device``) and its dataset."""
    import types

    from seqbench.data.load import load_dataset
    from seqbench.models.layers.mamba import set_backend
    from seqbench.models.registry import get_model
    from seqbench.robustness.weights import load_weights

    dataset = load_dataset(cell.dataset, cell.protocol, cache_dir=cache_dir)
    trained_on = parsed.dataset.sha256 if parsed.dataset is not None else None
    found = dataset.provenance["source"]["sha256"]
    if trained_on is not None and found != trained_on:
        raise SeqbenchError(
            f"{cell_dir}: the dataset {cell.dataset.name!r} now has sha256 {found}, the cell "
            f"trained on {trained_on}; the stored model does not fit this data"
        )
    spec = get_model(cell.variant.model)
    params = spec.params.model_validate(cell.variant.params)
    extra: dict[str, Any] = {}
    if spec.needs_text(params, cell.variant.ablation):
        from seqbench.worker import _item_text  # the worker's own reading of the item text

        job = types.SimpleNamespace(cache_dir=str(cache_dir) if cache_dir else None)
        extra["item_text"] = _item_text(cell, dataset, job, {})  # type: ignore[arg-type]
    model = spec.cls(
        params,
        n_items=dataset.n_items,
        max_len=cell.protocol.max_len,
        ablation=cell.variant.ablation,
        **extra,
    ).to(device)
    set_backend(model, cell.backend)  # type: ignore[arg-type]
    load_weights(model, cell_dir / record.WEIGHTS, cell_hash=parsed.cell.hash)
    return model, dataset


def complete_suite(
    cell_dirs: Sequence[tuple[str, Path, Sequence[NoiseSpec]]],
    *,
    device: str | None,
    cache_dir: Path | None,
    eval_batch_size: int,
    lease_seconds: float,
    say: Callable[[str], None],
) -> list[Outcome]:
    """:func:`add_conditions` for each (title, cell folder, specs) whose folder holds an ok
    result; problems are reported through ``say`` and in the outcomes, never raised."""
    outcomes = []
    for title, cell_dir, specs in cell_dirs:
        result = store.read_result(cell_dir / record.RESULT)
        if not specs or result is None or result.get("status") != "ok":
            continue  # missing and failed cells are the run's to report
        try:
            outcome = add_conditions(cell_dir, specs, device=device, cache_dir=cache_dir,
                                     eval_batch_size=eval_batch_size,
                                     lease_seconds=lease_seconds)  # fmt: skip
        except SeqbenchError as exc:
            outcome = Outcome(cell_dir, error=str(exc))
            say(f"conditions not added to {title}: {exc}")
        else:
            if outcome.added:
                say(f"added {len(outcome.added)} condition(s) to {title}: "
                    f"{', '.join(outcome.added)} ({outcome.seconds:.1f} s)")  # fmt: skip
        outcomes.append(outcome)
    return outcomes


def complete_planned(planned: Sequence[Any], options: Any, say: Callable[[str], None]) -> bool:
    """After ``seqbench run``: every finished cell of ``planned`` (:class:`runner.PlannedCell`)
    gets the ``[eval] noise`` conditions of its suite that it lacks (a suite that gained
    conditions since it ran). Returns False when some cell could not get them."""
    from seqbench.runner import resolve_devices

    root = Path(options.results).expanduser()
    items = [
        (p.title, root / p.cell.suite / p.relative, list(p.cell.eval.noise))
        for p in planned
        if p.cell.eval.noise
    ]
    if not items:
        return True
    outcomes = complete_suite(
        items,
        device=resolve_devices(options.device)[0],
        cache_dir=options.cache_dir,
        eval_batch_size=options.eval_batch_size,
        lease_seconds=options.lease_seconds,
        say=say,
    )
    return all(o.error is None for o in outcomes)
