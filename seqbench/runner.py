"""Plan a suite's cells and hand the pending ones to an executor.

The runner is the planner: it resolves datasets (downloading and caching them once, before any
training), hashes every cell, skips cells whose result is final, and turns the rest into
:class:`~seqbench.executors.base.CellJob` s for an executor (:mod:`seqbench.executors`), which
computes them — locally with ``--jobs N`` workers, or on Ray or Slurm — through the same
claim/publish steps of :mod:`seqbench.store`. A cell another process holds is waited for, so
several ``seqbench run`` processes can share one results root.
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seqbench import lease, store
from seqbench.cells import Cell, check_precision, source_fingerprint
from seqbench.data.load import load_dataset
from seqbench.errors import ConfigError
from seqbench.executors.base import CellJob, CellOutcome, Executor, Reporter
from seqbench.progress import BarFactory

log = logging.getLogger(__name__)

ONLY_KEYS = ("dataset", "model", "variant", "ablation", "seed", "role")


@dataclass(frozen=True)
class RunOptions:
    results: Path
    device: str = "auto"  # cpu | cuda | cuda:N | auto, or a comma-separated list of devices
    backend: str = "auto"  # auto | torch | mamba_ssm (Mamba blocks only)
    only: tuple[str, ...] = ()
    cache_dir: Path | None = None
    mirror: str | None = None
    eval_batch_size: int = 4096
    jobs: int = 1  # cells at once (local executor)
    threads: int | None = None  # CPU threads per worker; None: the cores divided among jobs
    retry: tuple[str, ...] = ()  # outcomes (oom, timeout, pruned) to run again
    lease_seconds: float = lease.DEFAULT_LEASE_SECONDS
    # caps per cell (seqbench.limits): MiB, "auto" (a share of the available memory per worker)
    # or None; seconds or None
    memory_limit: float | str | None = None
    time_limit: float | None = None
    cluster: ClusterOptions = field(default_factory=lambda: ClusterOptions())


@dataclass(frozen=True)
class ClusterOptions:
    """Where cells run: ``local`` (``RunOptions.jobs`` workers here), ``ray`` or ``slurm``."""

    executor: str = "local"
    address: str | None = None  # ray: join this cluster; None starts one for the run
    cpus_per_cell: float = 1.0
    gpus_per_cell: float = 0.0
    max_retries: int = 2  # ray/slurm: tries after the process running a cell died
    slurm_partition: str | None = None
    slurm_minutes: int = 60
    slurm_gpus_per_task: int = 0
    slurm_cpus_per_task: int = 1
    array_parallelism: int = 64
    slurm_cluster: str = "slurm"  # "local": submitit's local executor (no Slurm)


@dataclass
class PlannedCell:
    cell: Cell
    hash: str
    identity: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)  # the job's extra (e.g. tuned_from)

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
    ran: list[tuple[CellJob, dict[str, Any]]] = field(default_factory=list)
    waited_for: int = 0
    not_published: list[CellOutcome] = field(default_factory=list)

    @property
    def failed(self) -> list[tuple[CellJob, dict[str, Any]]]:
        return [(j, r) for j, r in self.ran if r.get("status") != "ok"]

    @property
    def ok(self) -> bool:
        return not self.failed and not self.not_published


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
    """One device: ``auto`` → cuda where PyTorch sees one, else cpu."""
    import torch

    requested = requested.strip()
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested not in ("cpu", "cuda") and not _is_cuda_index(requested):
        raise ConfigError(
            f"--device {requested!r}: expected cpu, cuda, cuda:N, auto, or a comma-separated "
            "list such as cuda:0,cuda:1"
        )
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(
                f"--device {requested}: PyTorch sees no CUDA device here; use --device cpu"
            )
        index = int(requested.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise ConfigError(
                f"--device {requested}: PyTorch sees {torch.cuda.device_count()} CUDA "
                f"device(s), cuda:0 … cuda:{torch.cuda.device_count() - 1}"
            )
    return requested


def resolve_devices(requested: str) -> list[str]:
    """``--device``, possibly a comma-separated list, as devices of one type (the device type
    is part of each cell's identity, so a list cannot mix cpu and cuda)."""
    devices = [resolve_device(d) for d in requested.split(",") if d.strip()]
    if not devices:
        raise ConfigError("--device is empty; expected cpu, cuda, cuda:N or auto")
    types = {device_type(d) for d in devices}
    if len(types) > 1:
        raise ConfigError(
            f"--device {requested}: all devices must be of one type (cpu or cuda), since the "
            "device type is part of each cell's identity"
        )
    return devices


def planned_device(options: RunOptions) -> str:
    """The device cells will run on: ``--device`` here, or on a cluster what each cell
    reserves (cuda with GPUs per cell, else cpu)."""
    cluster = options.cluster
    if cluster.executor == "ray":
        return "cuda" if cluster.gpus_per_cell > 0 else "cpu"
    if cluster.executor == "slurm":
        return "cuda" if cluster.slurm_gpus_per_task > 0 else "cpu"
    return resolve_devices(options.device)[0]


def device_type(device: str) -> str:
    return device.partition(":")[0]


def _is_cuda_index(text: str) -> bool:
    kind, sep, index = text.partition(":")
    return kind == "cuda" and bool(sep) and index.isdigit()


def with_backends(cells: list[Cell], options: RunOptions) -> list[Cell]:
    """Each cell with the device type and backend it will run on (both part of its hash): for
    a model with Mamba blocks, ``--backend`` resolved on the device; ``torch`` for every other
    model."""
    from seqbench.models.layers.kernels import resolve_backend
    from seqbench.models.registry import get_model

    device = planned_device(options)
    for cell in cells:  # [train] precision the device cannot run: refused before any work
        check_precision(cell, device)
    return [
        cell.model_copy(
            update={
                "device": device_type(device),
                "backend": resolve_backend(
                    options.backend, device, get_model(cell.variant.model).kernels
                ),
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


def jobs_for(suite_name: str, planned: list[PlannedCell], options: RunOptions) -> list[CellJob]:
    """The executor's view of planned cells, with their caps."""
    from seqbench.limits import cell_limits

    memory = options.memory_limit
    if memory == "auto" and options.cluster.executor != "local":
        memory = None  # this host's memory says nothing of the nodes': their scheduler's limits
    caps = {
        kind: cell_limits(memory, kind, options.jobs) for kind in {p.cell.device for p in planned}
    }
    return [
        CellJob(
            suite=suite_name,
            results=str(Path(options.results).expanduser().absolute()),
            relative=str(p.relative),
            cell=p.cell.to_json(),
            hash=p.hash,
            identity=p.identity,
            title=p.title,
            cache_dir=str(options.cache_dir) if options.cache_dir else None,
            eval_batch_size=options.eval_batch_size,
            lease_seconds=options.lease_seconds,
            retry=options.retry,
            extra=dict(p.extra),
            memory_limit_mib=caps[p.cell.device][0],
            device_memory_limit_mib=caps[p.cell.device][1],
            time_limit_seconds=options.time_limit,
        )
        for p in planned
    ]


def make_executor(options: RunOptions) -> Executor:
    """The executor ``options`` ask for (local by default)."""
    cluster = options.cluster
    if cluster.executor == "ray":
        from seqbench.executors.ray_tasks import RayExecutor

        return RayExecutor(
            address=cluster.address,
            cpus_per_cell=cluster.cpus_per_cell,
            gpus_per_cell=cluster.gpus_per_cell,
            max_retries=cluster.max_retries,
            max_attempts=cluster.max_retries + 1,
        )
    if cluster.executor == "slurm":
        from seqbench.executors.slurm import SlurmExecutor

        return SlurmExecutor(
            partition=cluster.slurm_partition,
            time_minutes=cluster.slurm_minutes,
            gpus_per_task=cluster.slurm_gpus_per_task,
            cpus_per_task=cluster.slurm_cpus_per_task,
            array_parallelism=cluster.array_parallelism,
            max_attempts=cluster.max_retries + 1,
            cluster=cluster.slurm_cluster,
        )
    from seqbench.executors.local import LocalExecutor

    return LocalExecutor(options.jobs, resolve_devices(options.device), options.threads)


def run_cells(
    suite_name: str,
    planned: list[PlannedCell],
    options: RunOptions,
    reporter: Reporter,
    executor: Executor | None = None,
) -> RunSummary:
    """Run every planned cell whose result is not final (missing, failed, or an outcome named
    in ``options.retry``) on ``executor`` (default: the one ``options.cluster`` names)."""
    results = store.SuiteStore(options.results, suite_name, lease_seconds=options.lease_seconds)
    summary = RunSummary(selected=len(planned))
    pending = []
    for p in planned:
        if store.should_run(results.status(p.relative), options.retry):
            pending.append(p)
        else:
            summary.already_done += 1
    reporter_cells = getattr(reporter, "cells", None)
    if callable(reporter_cells):
        reporter_cells(len(pending))
    if not pending:
        return summary
    outcomes = (executor or make_executor(options)).run(
        jobs_for(suite_name, pending, options), reporter
    )
    summarize(outcomes, summary)
    return summary


def summarize(outcomes: Sequence[CellOutcome], summary: RunSummary) -> RunSummary:
    for outcome in outcomes:
        if outcome.published and outcome.result is not None:
            summary.ran.append((outcome.job, outcome.result))
        elif outcome.status == "done":
            if outcome.message:
                summary.waited_for += 1
            else:
                summary.already_done += 1
        else:
            summary.not_published.append(outcome)
    return summary


def summary_line(summary: RunSummary) -> str:
    failed = len(summary.failed)
    statuses: dict[str, int] = {}
    for _, result in summary.failed:
        statuses[str(result.get("status"))] = statuses.get(str(result.get("status")), 0) + 1
    parts = [f"{summary.selected} cells"]
    if summary.already_done:
        parts.append(f"{summary.already_done} already complete (not re-run)")
    ran = len(summary.ran)
    ended = ", ".join(f"{n} {status}" for status, n in sorted(statuses.items()))
    parts.append(f"{ran} trained" + (f", {ended}" if failed else ""))
    if summary.waited_for:
        parts.append(f"{summary.waited_for} completed by another process")
    if summary.not_published:
        parts.append(f"{len(summary.not_published)} not published")
    if not summary.ran and not summary.waited_for and not summary.not_published:
        return f"nothing to train: all {summary.selected} cells are complete"
    return "; ".join(parts)
