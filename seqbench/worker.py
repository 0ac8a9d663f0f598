"""Run one cell in this process: ``python -m seqbench.worker JOB.json OUT_DIR``.

The runner starts one worker process per cell, so that a crash, an out-of-memory kill or a leak
stays inside the cell, and peak memory is the cell's own. The worker writes ``result.json``,
``ranks.npz`` and ``cell.log`` into OUT_DIR (the runner renames it into the store) and reports
progress to its stdout as JSON lines. Exit status: 0 = ok, 1 = the cell failed (recorded in
result.json), 130 = interrupted (nothing recorded).

``$SEQBENCH_FAULT`` injects faults for tests: ``kill-runner@epoch=N`` SIGKILLs the runner and this
worker at the end of epoch N, ``kill-runner@before-result`` just before result.json is written;
``…:PATH`` fires only if PATH does not exist yet (and creates it), so a re-run proceeds.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seqbench import environment, store
from seqbench.cells import Cell
from seqbench.data.load import load_dataset
from seqbench.models.item_text import ItemText
from seqbench.models.layers.mamba import set_backend
from seqbench.models.registry import get_model
from seqbench.train import Outcome, Settings, fit_and_evaluate, metric_values

log = logging.getLogger("seqbench.worker")


def main(argv: list[str]) -> int:
    _die_with_runner()
    job_path, out = Path(argv[0]), Path(argv[1])
    job = json.loads(job_path.read_text(encoding="utf-8"))
    _log_to(out / store.LOG)
    started = time.perf_counter()
    cell = Cell.from_json(job["cell"])
    result: dict[str, Any] = {
        "schema": store.SCHEMA,
        "status": "running",
        "cell": {
            "hash": job["hash"],
            "identity": job["identity"],
            **cell.to_json(),
        },
    }
    try:
        _run(cell, job, out, result)
        result["status"] = "ok"
    except KeyboardInterrupt:
        return 130
    except BaseException as exc:  # the cell failed: record why, let the suite go on
        log.exception("cell failed")
        result["status"] = "failed"
        result["error"] = {
            "type": type(exc).__name__,
            "message": str(exc) or type(exc).__name__,
            "traceback": traceback.format_exc(),
        }
    result.setdefault("timing", {})["total_seconds"] = time.perf_counter() - started
    _fault("before-result")
    store.write_json(out / store.RESULT, result)
    _emit({"event": "done", "status": result["status"]})
    return 0 if result["status"] == "ok" else 1


def _run(cell: Cell, job: dict[str, Any], out: Path, result: dict[str, Any]) -> None:
    device = torch.device(job["device"])
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    result["environment"] = environment.describe(device)
    log.info("cell %s on %s", job["hash"][:8], device)

    dataset = load_dataset(cell.dataset, cell.protocol, cache_dir=job.get("cache_dir"))
    result["dataset"] = {
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
        extra["item_text"] = _item_text(cell, dataset, job, result)
    torch.manual_seed(cell.seed)
    model = spec.cls(
        params,
        n_items=dataset.n_items,
        max_len=cell.protocol.max_len,
        ablation=cell.variant.ablation,
        **extra,
    ).to(device)
    set_backend(model, cell.backend)  # type: ignore[arg-type]  # resolved by the runner
    result["parameters"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
    settings = Settings(
        cell.train, cell.eval, eval_batch_size=int(job.get("eval_batch_size", 4096))
    )
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    outcome = fit_and_evaluate(
        model,
        dataset,
        settings,
        seed=cell.seed,
        device=device,
        on_event=_on_event,
        memory_probe=lambda: _phase_memory(device),
    )
    _save_ranks(out / store.RANKS, dataset, outcome, cell.eval.ties)
    result.update(_summary(outcome, settings, dataset.n_users, device))


def _item_text(cell: Cell, dataset: Any, job: dict[str, Any], result: dict[str, Any]) -> ItemText:
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
            if text.path is None:  # a member of the dataset's own download
                text = text.model_copy(update={"path": Path(dataset.provenance["source"]["file"])})
            texts = align_texts(read_item_text(text), tokens)
        embedded = embed_item_texts(
            texts, str(cell.variant.params["text_encoder"]), cache_dir=job.get("cache_dir")
        )
    missing = int(embedded.info.get("items_without_text", 0))
    if missing:
        _emit(
            {
                "event": "warning",
                "message": f"{missing} of {dataset.n_items} items have no text; their text "
                "embedding is zero (masked)",
            }
        )
    result["text"] = embedded.info
    return ItemText.from_arrays(embedded.vectors, embedded.has_text)


def _summary(
    outcome: Outcome, settings: Settings, n_users: int, device: torch.device
) -> dict[str, Any]:
    assert outcome.valid is not None and outcome.test is not None
    trained = [r["seconds"] for r in outcome.curve]
    return {
        "metrics": {
            "valid": metric_values(outcome.valid, settings),
            "test": metric_values(outcome.test, settings),
        },
        "curve": outcome.curve,
        "best_epoch": outcome.best_epoch,
        "epochs_run": outcome.epochs_run,
        "stopped_early": outcome.stopped_early,
        "timing": {
            "seconds_per_epoch": float(np.mean(trained)) if trained else 0.0,
            "train_seconds": outcome.train_seconds,
            "inference_seconds": outcome.inference_seconds,
            "users_per_second": len(outcome.test.higher) / max(outcome.inference_seconds, 1e-9),
        },
        "memory": {
            **_memory(device),
            # per phase: the peak of that phase alone on GPU; on CPU the running peak RSS
            "train_rss_mib": outcome.train_peak.get("peak_rss_mib"),
            "eval_rss_mib": outcome.eval_peak.get("peak_rss_mib"),
            "train_device_mib": outcome.train_peak.get("peak_device_mib"),
            "eval_device_mib": outcome.eval_peak.get("peak_device_mib"),
        },
    }


def _save_ranks(path: Path, dataset: Any, outcome: Outcome, ties: str) -> None:
    """Per-user ranks in test-user order; a user without a valid sample gets NaN / −1 there."""
    from seqbench.metrics import ranks_from_counts

    assert outcome.valid is not None and outcome.test is not None
    users, valid_users = dataset.split("test").user, dataset.split("valid").user
    at = np.searchsorted(users, valid_users)  # both in user order; valid users ⊆ test users
    valid_rank = np.full(users.shape, np.nan)
    valid_tied = np.full(users.shape, -1, dtype=np.int64)
    valid_rank[at] = ranks_from_counts(outcome.valid.higher, outcome.valid.tied, ties)
    valid_tied[at] = outcome.valid.tied
    tmp = path.with_name(".ranks.tmp.npz")
    np.savez_compressed(
        tmp,
        users=users.astype(np.int64),
        history_len=dataset.history_lengths("test").astype(np.int64),
        valid_rank=valid_rank,
        test_rank=ranks_from_counts(outcome.test.higher, outcome.test.tied, ties),
        valid_tied=valid_tied,
        test_tied=outcome.test.tied.astype(np.int64),
        ties=np.array(ties),
    )
    os.replace(tmp, path)


def _memory(device: torch.device) -> dict[str, float | None]:
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    scale = 1 / 1024 / 1024 if sys.platform == "darwin" else 1 / 1024  # macOS reports bytes
    gpu = None
    if device.type == "cuda":
        gpu = max([torch.cuda.max_memory_allocated(device) / 2**20, *_peaks])
    return {"peak_rss_mib": rss_kib * scale, "peak_device_mib": gpu}


def _phase_memory(device: torch.device) -> dict[str, float | None]:
    """Peaks so far, then (on GPU) a reset so that the next phase's peak is its own."""
    reading = _memory(device)
    if device.type == "cuda":
        reading["peak_device_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
        _peaks.append(reading["peak_device_mib"])
        torch.cuda.reset_peak_memory_stats(device)
    return reading


_peaks: list[float] = []  # device peaks of the phases already reset
_last_batch_event = 0.0


def _on_event(event: dict[str, Any]) -> None:
    global _last_batch_event
    if event["event"] == "batch":  # throttled: the runner's bar needs no more
        now = time.monotonic()
        if now - _last_batch_event < 0.2 and event["batch"] != event["batches"]:
            return
        _last_batch_event = now
    if event["event"] == "epoch":
        log.info(
            "epoch %d: loss %.4f, valid %s (%.1f s)",
            event["epoch"],
            event["loss"],
            ", ".join(f"{k} {v:.4f}" for k, v in event["valid"].items()),
            event["seconds"],
        )
        _fault(f"epoch={event['epoch']}")
    _emit(event)


def _emit(event: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def _fault(point: str) -> None:
    spec = os.environ.get("SEQBENCH_FAULT", "")
    if not spec.startswith("kill-runner@"):
        return
    where, _, marker = spec.removeprefix("kill-runner@").partition(":")
    if where != point:
        return
    if marker:
        if Path(marker).exists():
            return
        Path(marker).touch()
    os.kill(os.getppid(), signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)


def _die_with_runner() -> None:
    """Linux: SIGKILL this worker when the runner dies, so no orphan keeps computing a cell
    whose lock is gone. Set here, after exec, rather than in a fork hook of the (threaded) runner.
    """
    runner = os.environ.get("SEQBENCH_RUNNER_PID")
    if runner is None or not sys.platform.startswith("linux"):
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != int(runner):  # the runner died before the line above
        os.kill(os.getpid(), signal.SIGKILL)


def _log_to(path: Path) -> None:
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("seqbench")
    root.setLevel(logging.INFO)
    root.addHandler(handler)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
