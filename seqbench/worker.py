"""A worker process: ``python -m seqbench.worker`` computes the cells it is sent, one at a time.

Executors start workers through :class:`seqbench.executors.worker_process.WorkerProcess` and
talk to them with JSON lines: commands on stdin, events on stdout.

- ``{"op": "run", "job": CellJob, "out": DIR, "device": "cpu"}``: train and evaluate the cell,
  writing ``result.json`` (:mod:`seqbench.record`), ``ranks.npz`` and ``cell.log`` into DIR
  (the executor publishes DIR into the store); events ``cell_start``, ``epoch_start``,
  ``batch``, ``epoch``, ``warning`` and finally ``{"event": "done", "status": …}``.
- ``{"op": "stop", "hash": H, "status": S, "reason": R}``: end cell H now with status S
  (``pruned``, ``timeout``, ``oom`` or ``failed``); honoured at the next batch or epoch
  boundary, with the curve so far in the record — or at once, mid-step, where the cell runs
  interruptible code (a throughput cell's steps: the command reader signals the main thread,
  SIGUSR1, whose handler raises there).
- ``{"op": "exit"}`` (or end of input): leave.

A worker serves many cells to save its start-up (importing torch), yet each cell is on its own:
the random generators are seeded per cell, the cell's log (and anything written to stderr,
C libraries included) goes to its own ``cell.log``, and the resident-memory high-water mark is
reset when it starts (:mod:`seqbench.memory`), so its peak memory is its own. A crash kills only
the cell being computed: the executor records it and starts a fresh worker for the next.
Threads come from the environment the executor sets (:mod:`seqbench.threads`).

Exit status: 0 after ``exit``; 130 when interrupted by SIGINT or SIGTERM (the cell in progress
records nothing; the signal is honoured at the cell's next event, never inside torch's code).

A job's ``extra`` may ask for a validation-only cell (a tuning trial, ``seqbench tune``):
``{"validation_only": true, "tune": {study, trial, storage, sampler, params, metric}}``. The
cell then trains with early stopping as usual but never builds or ranks the test split, writes
no ranks.npz (a trial's per-user ranks serve no report), and records ``tune`` with ``value``
(``metric`` at the best epoch) and validation metrics only.

``$SEQBENCH_FAULT`` injects faults for tests: ``kill-runner@epoch=N`` SIGKILLs the parent and
this worker at the end of epoch N, ``kill-runner@before-result`` just before result.json is
written, ``kill-worker@epoch=N`` this worker alone; ``…:PATH`` fires only if PATH does not exist
yet (and creates it), so a rerun proceeds.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import signal
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seqbench import atomic, checkpoint, environment, memory, record
from seqbench import threads as thread_settings
from seqbench import throughput as throughput_cells
from seqbench.cells import Cell
from seqbench.data.load import load_dataset
from seqbench.executors.base import CellJob
from seqbench.models.item_text import ItemText
from seqbench.models.layers import scan_cpu
from seqbench.models.layers.mamba import set_backend
from seqbench.models.registry import get_model
from seqbench.train import Outcome, Settings, fit_and_evaluate, metric_values

log = logging.getLogger("seqbench.worker")


class CellStopped(Exception):
    """The executor asked to end the cell with ``status``."""

    def __init__(self, status: str, reason: str, requested_by: str | None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.requested_by = requested_by


class Channel:
    """Commands from stdin, read by a thread so that a stop request arrives mid-cell."""

    def __init__(self) -> None:
        self.runs: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._stops: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self.current: CellState | None = None  # the cell being computed (main thread's)
        threading.Thread(target=self._read, name="commands", daemon=True).start()

    def _read(self) -> None:
        for line in sys.stdin:
            try:
                command = json.loads(line)
            except ValueError:
                continue
            op = command.get("op") if isinstance(command, dict) else None
            if op == "run":
                self.runs.put(command)
            elif op == "stop":
                with self._lock:
                    self._stops[str(command.get("hash"))] = command
                current = self.current
                if current is not None and current.hash == str(command.get("hash")):
                    current.interrupt()
            elif op == "exit":
                break
        self.runs.put(None)

    def stop_request(self, cell_hash: str) -> dict[str, Any] | None:
        with self._lock:
            return self._stops.get(cell_hash)

    def forget(self, cell_hash: str) -> None:
        with self._lock:
            self._stops.pop(cell_hash, None)


class CellState:
    """What the event hook needs to know about the cell in progress."""

    def __init__(self, channel: Channel, cell_hash: str) -> None:
        self.channel = channel
        self.hash = cell_hash
        self.last_batch_event = 0.0
        self.rss_peaks: list[float] = []  # of the phases already reset
        self.device_peaks: list[float] = []
        self.progress: throughput_cells.Progress | None = None  # a throughput cell's place
        self.interruptible = False  # the main thread is where a stop may raise at once

    def check_stop(self) -> None:
        """Raise :class:`CellStopped` if the executor asked to end this cell (KeyboardInterrupt
        if SIGINT/SIGTERM arrived)."""
        if INTERRUPTED.is_set():
            raise KeyboardInterrupt
        request = self.channel.stop_request(self.hash)
        if request is not None:
            raise CellStopped(
                str(request.get("status") or "failed"),
                str(request.get("reason") or "stopped on request"),
                request.get("requested_by"),
            )

    @contextlib.contextmanager
    def interruptible_region(self) -> Iterator[None]:
        """Inside, a stop request ends the cell at once (:func:`_on_interrupt` raises in the
        main thread at its next Python instruction) rather than at the next event. Only code
        whose partial work is thrown away anyway runs here (never an event or a record)."""
        self.check_stop()
        self.interruptible = True
        try:
            yield
        finally:
            self.interruptible = False

    def interrupt(self) -> None:
        """From the command reader: a stop for this cell arrived; wake the main thread if it is
        in an interruptible region."""
        if self.interruptible and _STOP_SIGNAL is not None:
            signal.pthread_kill(threading.main_thread().ident or 0, _STOP_SIGNAL)

    def on_event(self, event: dict[str, Any]) -> None:
        self.check_stop()
        if event["event"] == "batch":  # throttled: the runner's display needs no more
            now = time.monotonic()
            if now - self.last_batch_event < 0.2 and event["batch"] != event["batches"]:
                return
            self.last_batch_event = now
        if event["event"] == "epoch":  # train logged the epoch, before its checkpoint
            _fault(f"epoch={event['epoch']}")
        emit(event)


#: Set by SIGINT/SIGTERM. Raising KeyboardInterrupt asynchronously could land inside torch's
#: C++ code, which aborts the process; the cell checks this flag at its next event instead.
INTERRUPTED = threading.Event()


def _interrupt(signum: int, frame: Any) -> None:
    INTERRUPTED.set()


#: The signal that interrupts the main thread for a stop request (None where there is none).
_STOP_SIGNAL: int | None = getattr(signal, "SIGUSR1", None)
_CHANNEL: Channel | None = None


def _on_interrupt(signum: int, frame: Any) -> None:
    """SIGUSR1 handler: end the cell in progress if it is interruptible and asked to stop."""
    state = _CHANNEL.current if _CHANNEL is not None else None
    if state is not None and state.interruptible:
        state.interruptible = False
        state.check_stop()


def main(argv: list[str]) -> int:
    global _CHANNEL
    _die_with_parent()
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    threads = thread_settings.apply_in_worker()
    if _STOP_SIGNAL is not None and hasattr(signal, "pthread_kill"):
        signal.signal(_STOP_SIGNAL, _on_interrupt)
    channel = _CHANNEL = Channel()
    emit({"event": "ready", "pid": os.getpid(), "threads": threads})
    try:
        while (command := _next_command(channel)) is not None:
            job = CellJob.from_json(command["job"])
            status = run_cell(job, Path(command["out"]), str(command["device"]), channel, threads)
            channel.forget(job.hash)
            emit({"event": "done", "hash": job.hash, "status": status})
    except KeyboardInterrupt:
        return 130
    return 0


def _next_command(channel: Channel) -> dict[str, Any] | None:
    while True:
        if INTERRUPTED.is_set():
            raise KeyboardInterrupt
        try:
            return channel.runs.get(timeout=0.2)
        except queue.Empty:
            continue


def run_cell(
    job: CellJob, out: Path, device_name: str, channel: Channel, threads: dict[str, Any]
) -> str:
    """Compute one cell into ``out``; returns its status. KeyboardInterrupt propagates (the
    cell then records nothing)."""
    memory.release_free_memory()
    memory.reset_peak()
    state = CellState(channel, job.hash)
    channel.current = state
    cell = Cell.from_json(job.cell)
    device = torch.device(device_name)
    data: dict[str, Any] = {
        "schema": record.SCHEMA,
        "status": "failed",
        "cell": {"hash": job.hash, "identity": job.identity, **cell.to_json()},
        "threads": threads,
        "memory": {"start_rss_mib": memory.current_rss_mib()},
    }
    tune = job.extra.get("tune")
    if isinstance(tune, dict):  # a tuning trial: validation only (see the module docstring)
        data["tune"] = dict(tune)
    tuned_from = job.extra.get("tuned_from")
    if isinstance(tuned_from, dict):  # seqbench run --tuned: where the settings came from
        data["tuned_from"] = dict(tuned_from)
    outcome = Outcome()
    started = time.perf_counter()
    with _cell_output(out / record.LOG):
        emit({"event": "cell_start", "hash": job.hash, "pid": os.getpid()})
        try:
            _run(cell, job, device, out, data, outcome, state)
            data["status"] = "ok"
        except KeyboardInterrupt:
            raise
        except CellStopped as stop:
            log.info("cell ended %s: %s", stop.status, stop.reason)
            reason = _placed(stop.reason, state)
            _record_stop(data, outcome, stop.status, reason, stop.requested_by)
        except (MemoryError, torch.OutOfMemoryError) as exc:
            log.exception("cell ran out of memory")
            reason = _placed(f"{type(exc).__name__}: {exc}", state)
            capped = device.type == "cuda" and job.device_memory_limit_mib is not None
            _record_stop(data, outcome, "oom", reason, "memory-limit" if capped else "allocator")
        except BaseException as exc:  # the cell failed: record why, let the suite go on
            log.exception("cell failed")
            data["status"] = "failed"
            data["error"] = {
                "type": type(exc).__name__,
                "message": str(exc) or type(exc).__name__,
                "traceback": traceback.format_exc(),
            }
        finally:
            channel.current = None
        if not data.get("throughput"):
            data.pop("throughput", None)
        if "environment" in data:  # which CPU scan ran is known only once a scan has run
            data["environment"]["kernels"]["cpu-scan"] = scan_cpu.status()
        elapsed = time.perf_counter() - started + outcome.carried_seconds  # + earlier tries'
        data.setdefault("timing", {})["total_seconds"] = elapsed
        if "tune" in data:
            valid = (data.get("metrics") or {}).get("valid") or {}
            data["tune"]["value"] = valid.get(data["tune"].get("metric"))
        if data["status"] != "ok":
            data.setdefault("memory", {}).update(_memory(device, state))
        data["recorded"] = record.now()
        if INTERRUPTED.is_set():  # arrived after the last event: the cell is not recorded
            raise KeyboardInterrupt
        _fault("before-result")
        write_record(out / record.RESULT, data)
    return str(data["status"])


def _placed(reason: str, state: CellState) -> str:
    """A stop reason with where a throughput cell was (``… (timed training step 3 of 5)``)."""
    return f"{reason} ({state.progress.where})" if state.progress is not None else reason


def write_record(path: Path, data: dict[str, Any]) -> None:
    """Validate and write the record; a record that does not validate is a bug in seqbench,
    recorded as the cell's failure rather than lost."""
    try:
        result = record.ResultRecord.model_validate(data)
    except ValueError as exc:
        log.exception("the cell's record does not validate")
        data = {
            key: data[key] for key in ("schema", "cell", "threads", "recorded") if key in data
        } | {
            "status": "failed",
            "error": {
                "type": "RecordError",
                "message": f"seqbench wrote an invalid record (a bug; please report): {exc}",
                "traceback": traceback.format_exc(),
            },
        }
        result = record.ResultRecord.model_validate(data)
    atomic.write_json(path, result.to_json())


def _record_stop(
    data: dict[str, Any], outcome: Outcome, status: str, reason: str, by: str | None
) -> None:
    """The record of a cell ended on purpose: the curve so far and why."""
    if status not in record.STATUSES or status == "ok":
        status = "failed"
    data["status"] = status
    last = outcome.curve[-1]["epoch"] if outcome.curve else None
    if status == "failed":
        data["error"] = {"type": "Stopped", "message": reason, "traceback": ""}
    else:
        data["stopped"] = {"reason": reason, "epoch": last, "requested_by": by}
    data.update(
        curve=outcome.curve,
        best_epoch=outcome.best_epoch,
        epochs_run=outcome.epochs_run,
        stopped_early=outcome.stopped_early,
    )
    if outcome.best_epoch is not None and outcome.curve:
        best = next(r for r in outcome.curve if r["epoch"] == outcome.best_epoch)
        data["metrics"] = {"valid": best["valid"]}
    data.setdefault("timing", {}).update(
        train_seconds=outcome.train_seconds, resumed_from_epoch=outcome.resumed_from_epoch
    )


def _run(
    cell: Cell,
    job: CellJob,
    device: torch.device,
    out: Path,
    data: dict[str, Any],
    outcome: Outcome,
    state: CellState,
) -> None:
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    if device.type == "cuda":
        _cap_device_memory(device, job.device_memory_limit_mib)
    data["environment"] = environment.describe(device)
    log.info("cell %s on %s", job.hash[:8], device)

    dataset = load_dataset(cell.dataset, cell.protocol, cache_dir=job.cache_dir)
    data["dataset"] = {
        "name": dataset.name,
        "sha256": dataset.provenance["source"]["sha256"],
        "users": dataset.n_users,
        "items": dataset.n_items,
        "interactions": dataset.n_interactions,
        "train_samples": len(dataset.data.train),
        "valid_samples": len(dataset.data.valid),
        "test_samples": len(dataset.data.test),
        "provenance": dataset.provenance,
    }
    spec = get_model(cell.variant.model)
    params = spec.params.model_validate(cell.variant.params)
    extra: dict[str, Any] = {}
    if spec.needs_text(params, cell.variant.ablation):
        extra["item_text"] = _item_text(cell, dataset, job, data)
    torch.manual_seed(cell.seed)
    model = spec.cls(
        params,
        n_items=dataset.n_items,
        max_len=cell.protocol.max_len,
        ablation=cell.variant.ablation,
        **extra,
    ).to(device)
    set_backend(model, cell.backend)  # type: ignore[arg-type]  # resolved by the runner
    data["parameters"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
    settings = Settings(cell.train, cell.eval, eval_batch_size=job.eval_batch_size)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    if cell.train.mode == "throughput":
        state.progress = throughput_cells.Progress()
        throughput_cells.measure(
            model,
            dataset,
            settings,
            seed=cell.seed,
            device=device,
            section=data.setdefault("throughput", {}),
            on_event=state.on_event,
            interruptible=state.interruptible_region,
            progress=state.progress,
        )
        phases = data["throughput"].get("memory") or {}  # peaks of phases reset since
        peaks = [phases.get(key) for key in ("train_peak", "score_peak")]
        kept = [p for p in peaks if p is not None]
        (state.device_peaks if device.type == "cuda" else state.rss_peaks).extend(kept)
        data["memory"] = {**data.get("memory", {}), **_memory(device, state)}
        return
    fit_and_evaluate(
        model,
        dataset,
        settings,
        seed=cell.seed,
        device=device,
        on_event=state.on_event,
        memory_probe=lambda: _phase_memory(device, state),
        outcome=outcome,
        test=not validation_only(job),
        checkpoint=_checkpoint(job, out),
    )
    if outcome.test is not None:  # a tuning trial: no test split, no conditions, no ranks
        from seqbench.robustness.conditions import after_training  # weights, [eval] noise

        conditions = after_training(model, dataset, cell, job.hash, settings, device, out, data)
        _save_ranks(out / record.RANKS, dataset, outcome, cell.eval.ties, conditions)
    summary = _summary(outcome, settings, device, state)
    summary["memory"] = {**data.get("memory", {}), **summary["memory"]}
    data.update(summary)


def _checkpoint(job: CellJob, out: Path) -> checkpoint.EpochCheckpoint | None:
    """The cell's epoch checkpoint in its store (none for a tuning trial)."""
    if validation_only(job):
        return None
    path = checkpoint.path_for(Path(job.results) / job.suite, job.hash)
    return checkpoint.EpochCheckpoint(path, job.hash, log_path=out / record.LOG)


def validation_only(job: CellJob) -> bool:
    """Whether the job is a tuning trial, which must never read the test split."""
    return bool(job.extra.get("validation_only")) or "tune" in job.extra


def _cap_device_memory(device: torch.device, limit_mib: float | None) -> None:
    """The CUDA allocator's cap for this cell (``--memory-limit`` on a GPU): past it an
    allocation raises ``torch.OutOfMemoryError`` and the cell ends ``oom``. Each cell sets its
    own (a worker serves several), starting from an emptied cache."""
    torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(device).total_memory / 2**20
    fraction = 1.0 if limit_mib is None else min(1.0, limit_mib / total)
    torch.cuda.set_per_process_memory_fraction(fraction, device)
    if limit_mib is not None:
        log.info("CUDA allocator capped at %.0f MiB (%.3f of %.0f MiB)", limit_mib, fraction, total)


def _item_text(cell: Cell, dataset: Any, job: CellJob, data: dict[str, Any]) -> ItemText:
    """The dataset's item-text embeddings (cached per text and encoder), recorded in the result
    with the encoder's name and weights hash; items without text are counted and warned about."""
    from seqbench.errors import ConfigError
    from seqbench.text.embeddings import embed_item_texts, load_precomputed
    from seqbench.text.sources import align_texts, read_item_text

    text = cell.dataset.text
    tokens = dataset.data.item_tokens
    if text is not None and text.embeddings is not None:
        embedded = load_precomputed(text, tokens)
    else:
        if text is None:
            texts = dataset.data.item_text
            if texts is None:
                raise ConfigError(
                    f"dataset {dataset.name!r} has no item text; give it a text table"
                )
        else:
            if text.path is None and text.member is not None:  # of the dataset's own download
                from seqbench.data.cache import cache_root
                from seqbench.data.load import own_text_member

                source = Path(dataset.provenance["source"]["file"])
                member = own_text_member(
                    cell.dataset, text.member, source, cache_root(job.cache_dir)
                )
                text = text.model_copy(update={"path": member, "member": None})
            texts = align_texts(read_item_text(text), tokens)
        embedded = embed_item_texts(
            texts, str(cell.variant.params["text_encoder"]), cache_dir=job.cache_dir
        )
    missing = int(embedded.info.get("items_without_text", 0))
    if missing:
        emit(
            {
                "event": "warning",
                "message": f"{missing} of {dataset.n_items} items have no text; their text "
                "embedding is zero (masked)",
            }
        )
    data["text"] = embedded.info
    return ItemText.from_arrays(embedded.vectors, embedded.has_text)


def _summary(
    outcome: Outcome, settings: Settings, device: torch.device, state: CellState
) -> dict[str, Any]:
    assert outcome.valid is not None
    trained = [r["seconds"] for r in outcome.curve]
    metrics = {"valid": metric_values(outcome.valid, settings)}
    users_per_second = None
    if outcome.test is not None:  # validation-only cells (tuning trials) have no test
        metrics["test"] = metric_values(outcome.test, settings)
        users_per_second = len(outcome.test.higher) / max(outcome.inference_seconds, 1e-9)
    return {
        "metrics": metrics,
        "curve": outcome.curve,
        "best_epoch": outcome.best_epoch,
        "epochs_run": outcome.epochs_run,
        "stopped_early": outcome.stopped_early,
        "timing": {
            "seconds_per_epoch": float(np.mean(trained)) if trained else 0.0,
            "train_seconds": outcome.train_seconds,
            "inference_seconds": outcome.inference_seconds if outcome.test is not None else None,
            "users_per_second": users_per_second,
            "resumed_from_epoch": outcome.resumed_from_epoch,
        },
        "memory": {
            **_memory(device, state),
            # the peak of each phase alone (RSS: where the high-water mark can be reset)
            "train_rss_mib": outcome.train_peak.get("peak_rss_mib"),
            "eval_rss_mib": outcome.eval_peak.get("peak_rss_mib"),
            "train_device_mib": outcome.train_peak.get("peak_device_mib"),
            "eval_device_mib": outcome.eval_peak.get("peak_device_mib"),
        },
    }


def _save_ranks(
    path: Path,
    dataset: Any,
    outcome: Outcome,
    ties: str,
    conditions: dict[str, np.ndarray] | None = None,
) -> None:
    """Per-user ranks in test-user order; a user without a valid sample gets NaN / −1 there.
    ``conditions``: the arrays of evaluation conditions (``test_rank@NAME``, …), same order."""
    from seqbench.metrics import ranks_from_counts

    assert outcome.valid is not None and outcome.test is not None
    users, valid_users = dataset.split("test").user, dataset.split("valid").user
    at = np.searchsorted(users, valid_users)  # both in user order; valid users ⊆ test users
    valid_rank = np.full(users.shape, np.nan)
    valid_tied = np.full(users.shape, -1, dtype=np.int64)
    valid_rank[at] = ranks_from_counts(outcome.valid.higher, outcome.valid.tied, ties)
    valid_tied[at] = outcome.valid.tied
    arrays = {
        "users": users.astype(np.int64),
        "history_len": dataset.history_lengths("test").astype(np.int64),
        "valid_rank": valid_rank,
        "test_rank": ranks_from_counts(outcome.test.higher, outcome.test.tied, ties),
        "valid_tied": valid_tied,
        "test_tied": outcome.test.tied.astype(np.int64),
        "ties": np.array(ties),
        **(conditions or {}),
    }
    atomic.write_with(path, lambda f: np.savez_compressed(f, **arrays))


def _memory(device: torch.device, state: CellState) -> dict[str, float | None]:
    """The cell's peaks so far (RSS since the cell began; device over every phase)."""
    gpu = None
    if device.type == "cuda":
        gpu = max([torch.cuda.max_memory_allocated(device) / 2**20, *state.device_peaks])
    rss = max([memory.peak_rss_mib(), *state.rss_peaks])
    return {"peak_rss_mib": rss, "peak_device_mib": gpu}


def _phase_memory(device: torch.device, state: CellState) -> dict[str, float | None]:
    """This phase's peaks, then a reset so that the next phase's peak is its own."""
    rss = memory.peak_rss_mib()
    reading: dict[str, float | None] = {"peak_rss_mib": rss}
    state.rss_peaks.append(rss)
    memory.reset_peak()
    if device.type == "cuda":
        reading["peak_device_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
        state.device_peaks.append(reading["peak_device_mib"])
        torch.cuda.reset_peak_memory_stats(device)
    return reading


def emit(event: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


@contextlib.contextmanager
def _cell_output(path: Path) -> Iterator[None]:
    """Send the cell's log records and this process's stderr (fd 2, so C libraries' output
    too) to the cell's log for the duration of the cell."""
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("seqbench")
    root.setLevel(logging.INFO)
    root.addHandler(handler)
    sys.stderr.flush()
    saved = os.dup(2)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(fd, 2)
    os.close(fd)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        root.removeHandler(handler)
        handler.close()


def _fault(point: str) -> None:
    spec = os.environ.get("SEQBENCH_FAULT", "")
    for who in ("kill-runner@", "kill-worker@"):
        if spec.startswith(who):
            break
    else:
        return
    where, _, marker = spec.removeprefix(who).partition(":")
    if where != point:
        return
    if marker:
        if Path(marker).exists():
            return
        Path(marker).touch()
    if who == "kill-runner@":
        os.kill(os.getppid(), signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)


def _die_with_parent() -> None:
    """Linux: SIGKILL this worker when the process that started it dies, so no orphan keeps
    computing a cell whose claim is gone. Set here, after exec, rather than in a fork hook of
    the (threaded) spawner."""
    parent = os.environ.get("SEQBENCH_RUNNER_PID")
    if parent is None or not sys.platform.startswith("linux"):
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != int(parent):  # the parent died before the line above
        os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
