"""Run a suite's pending cells, one worker process per cell, resumable and shareable.

The runner is a scheduler only: it resolves datasets (downloading and caching them once, before
any training), skips cells whose result is complete, claims each pending cell's lock, starts
``python -m seqbench.worker`` on it, shows its progress and publishes the finished cell
directory atomically. A cell that another process holds is deferred and waited for at the end,
so several ``seqbench run`` processes can share one results root; multi-GPU and cluster
executors will reuse the same claim/publish steps.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seqbench import store
from seqbench.cells import Cell, check_precision, source_fingerprint
from seqbench.data.load import load_dataset
from seqbench.errors import ConfigError
from seqbench.progress import BarFactory

log = logging.getLogger(__name__)

ONLY_KEYS = ("dataset", "model", "variant", "ablation", "seed", "role")


@dataclass(frozen=True)
class RunOptions:
    results: Path
    device: str = "auto"  # cpu | cuda | auto
    backend: str = "auto"  # auto | torch | mamba_ssm (Mamba blocks only)
    only: tuple[str, ...] = ()
    cache_dir: Path | None = None
    mirror: str | None = None
    eval_batch_size: int = 4096


@dataclass
class PlannedCell:
    cell: Cell
    hash: str
    identity: dict[str, Any]

    @property
    def relative(self) -> Any:
        return self.cell.directory(self.hash)

    @property
    def title(self) -> str:
        return f"{self.cell.dataset.name}/{self.cell.variant.label} seed {self.cell.seed}"


@dataclass
class RunSummary:
    selected: int = 0
    already_done: int = 0
    ran: list[tuple[PlannedCell, dict[str, Any]]] = field(default_factory=list)
    waited_for: int = 0

    @property
    def failed(self) -> list[tuple[PlannedCell, dict[str, Any]]]:
        return [(p, r) for p, r in self.ran if r.get("status") != "ok"]

    @property
    def ok(self) -> bool:
        return not self.failed


class Display:
    """What the runner shows; the CLI supplies a rich or a quiet implementation."""

    def cells(self, total: int) -> None: ...
    def cell_started(self, planned: PlannedCell) -> None: ...
    def event(self, planned: PlannedCell, event: dict[str, Any]) -> None: ...
    def cell_finished(self, planned: PlannedCell, result: dict[str, Any], path: Path) -> None: ...
    def message(self, text: str) -> None: ...


def select(cells: list[Cell], only: tuple[str, ...]) -> list[Cell]:
    """Cells matching any ``--only`` filter ``key=glob[,key=glob…]`` (all pairs must match)."""
    if not only:
        return cells
    filters = [_parse_filter(text) for text in only]
    chosen = [c for c in cells if any(all(_matches(c, k, v) for k, v in f) for f in filters)]
    if not chosen:
        raise ConfigError(
            f"--only {' / '.join(only)} matches none of the suite's {len(cells)} cells"
        )
    return chosen


def _parse_filter(text: str) -> list[tuple[str, str]]:
    pairs = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep or key not in ONLY_KEYS:
            raise ConfigError(
                f"--only {text!r}: expected KEY=PATTERN[,KEY=PATTERN…] with KEY one of "
                f"{', '.join(ONLY_KEYS)}"
            )
        pairs.append((key, value))
    return pairs


def _matches(cell: Cell, key: str, pattern: str) -> bool:
    value = {
        "dataset": cell.dataset.name,
        "model": cell.variant.model,
        "variant": cell.variant.label,
        "ablation": cell.variant.ablation,
        "seed": str(cell.seed),
        "role": cell.variant.role,
    }[key]
    return fnmatch.fnmatchcase(value, pattern)


def resolve_device(requested: str) -> str:
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: PyTorch sees no CUDA device here; use --device cpu")
    if requested not in ("cpu", "cuda") and not requested.startswith("cuda:"):
        raise ConfigError(f"--device {requested!r}: expected cpu, cuda, cuda:N or auto")
    return requested


def with_backends(cells: list[Cell], options: RunOptions) -> list[Cell]:
    """Each cell with the backend it will run on (part of its hash): for a model with Mamba
    blocks, ``--backend`` resolved on the device; ``torch`` for every other model."""
    from seqbench.models.layers.kernels import resolve_backend
    from seqbench.models.registry import get_model

    device = resolve_device(options.device)
    for cell in cells:  # [train] precision the device cannot run: refused before any work
        check_precision(cell, device)
    return [
        cell.model_copy(
            update={
                "backend": resolve_backend(
                    options.backend, device, get_model(cell.variant.model).kernels
                )
            }
        )
        for cell in cells
    ]


def plan(
    cells: list[Cell], options: RunOptions, bars: BarFactory | None = None
) -> list[PlannedCell]:
    """Hash every cell, preparing (downloading, processing, caching) each dataset it needs."""
    cells = with_backends(cells, options)
    sources: dict[str, dict[str, Any]] = {}
    prepared: set[str] = set()
    planned = []
    for cell in cells:
        spec_key = cell.dataset.model_dump_json()
        if spec_key not in sources:
            fingerprint = source_fingerprint(
                cell.dataset, cache_dir=options.cache_dir, mirror=options.mirror, download=True
            )
            assert fingerprint is not None  # download=True always resolves or raises
            sources[spec_key] = fingerprint
        protocol_key = spec_key + cell.protocol.model_dump_json()
        if protocol_key not in prepared:  # fill the cache once; workers then load it in ms
            load_dataset(
                cell.dataset,
                cell.protocol,
                cache_dir=options.cache_dir,
                mirror=options.mirror,
                bars=bars,
            )
            prepared.add(protocol_key)
        source = sources[spec_key]
        planned.append(PlannedCell(cell, cell.hash(source), cell.identity(source)))
    return planned


def run_cells(
    suite_name: str, planned: list[PlannedCell], options: RunOptions, display: Display
) -> RunSummary:
    """Run every planned cell that has no complete result; see the module docstring."""
    results = store.SuiteStore(options.results, suite_name)
    device = resolve_device(options.device)
    summary = RunSummary(selected=len(planned))
    pending = []
    for p in planned:
        if results.status(p.relative) == "ok":
            summary.already_done += 1
        else:
            pending.append(p)
    display.cells(len(pending))
    deferred = []
    for p in pending:
        try:
            with results.claim(p.hash):
                if results.status(p.relative) != "ok":  # finished by another process meanwhile
                    summary.ran.append(_run_one(results, p, options, device, display))
        except store.CellBusy:
            deferred.append(p)
    for p in deferred:
        display.message(f"waiting for another seqbench process to finish {p.title}")
        with results.claim(p.hash, wait=True):
            if results.status(p.relative) == "ok":
                summary.waited_for += 1
            else:  # the other process died or the cell failed there: run it here
                summary.ran.append(_run_one(results, p, options, device, display))
    return summary


def _run_one(
    results: store.SuiteStore,
    planned: PlannedCell,
    options: RunOptions,
    device: str,
    display: Display,
) -> tuple[PlannedCell, dict[str, Any]]:
    scratch = results.scratch(planned.hash)
    job = scratch / ".job.json"
    job.write_text(
        json.dumps(
            {
                "cell": planned.cell.to_json(),
                "hash": planned.hash,
                "identity": planned.identity,
                "device": device,
                "cache_dir": str(options.cache_dir) if options.cache_dir else None,
                "eval_batch_size": options.eval_batch_size,
            }
        ),
        encoding="utf-8",
    )
    display.cell_started(planned)
    try:
        code = _spawn(job, scratch, lambda event: display.event(planned, event))
    except BaseException:
        results.discard(scratch)
        raise
    job.unlink(missing_ok=True)
    result = store.read_result(scratch / store.RESULT)
    if result is None:  # the worker died without recording anything: record why
        result = _crash_result(planned, code, scratch / store.LOG)
        store.write_json(scratch / store.RESULT, result)
    final = results.publish(scratch, planned.relative, planned.hash)
    display.cell_finished(planned, result, final)
    return planned, result


def _spawn(job: Path, scratch: Path, on_event: Callable[[dict[str, Any]], None]) -> int:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with (
        (scratch / store.LOG).open("a", encoding="utf-8") as log_file,
        _worker(
            [sys.executable, "-m", "seqbench.worker", str(job), str(scratch)], log_file, env
        ) as process,
    ):
        assert process.stdout is not None
        for line in process.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                log_file.write(line)  # stray output of a library: keep it in the log
                continue
            if isinstance(event, dict) and "event" in event:
                on_event(event)
        return process.wait()


@contextmanager
def _worker(argv: list[str], log_file: Any, env: dict[str, str]) -> Iterator[subprocess.Popen]:
    env = {**env, "SEQBENCH_RUNNER_PID": str(os.getpid())}  # the worker dies with us
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=log_file, text=True, env=env)
    try:
        yield process
    except BaseException:
        # Interrupted (Ctrl-C reaches the worker too): give it a moment, then make sure.
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        raise


def _crash_result(planned: PlannedCell, code: int, log_path: Path) -> dict[str, Any]:
    if code < 0:
        name = signal.Signals(-code).name
        reason = f"the worker was killed by {name}"
        if -code == signal.SIGKILL:
            reason += " (often the out-of-memory killer: check dmesg and the cell's memory)"
    else:
        reason = f"the worker exited with status {code} without writing a result"
    try:
        tail = log_path.read_text(encoding="utf-8", errors="replace")[-4000:]
    except OSError:
        tail = ""
    return {
        "schema": store.SCHEMA,
        "status": "failed",
        "cell": {"hash": planned.hash, "identity": planned.identity, **planned.cell.to_json()},
        "error": {"type": "WorkerCrash", "message": reason, "traceback": tail},
        "timing": {"total_seconds": None},
        "recorded": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def summary_line(summary: RunSummary) -> str:
    failed = len(summary.failed)
    parts = [f"{summary.selected} cells"]
    if summary.already_done:
        parts.append(f"{summary.already_done} already complete (not re-run)")
    ran = len(summary.ran)
    parts.append(f"{ran} trained" + (f", {failed} failed" if failed else ""))
    if summary.waited_for:
        parts.append(f"{summary.waited_for} completed by another process")
    if not summary.ran and not summary.waited_for:
        return f"nothing to train: all {summary.selected} cells are complete"
    return "; ".join(parts)
