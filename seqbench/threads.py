"""CPU threads per worker: N workers on one host share its cores and never oversubscribe them.

The spawner divides the cores it may use (its CPU affinity) among the workers and passes each
one its share in the environment; the worker applies it before and after importing torch:
OpenMP, MKL, OpenBLAS and friends read their variables when they load, and torch's own pools
are set right after import. The counts are recorded in each result (``threads``) and are not part
of a cell's identity: on CPU the same cell gives the same metrics and ranks with any count (the
learning curve's losses may differ in their last digits, summed in another order).
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

THREADS = "SEQBENCH_THREADS"
WORKERS = "SEQBENCH_WORKERS"
#: Variables that size the thread pools of the numeric libraries torch and numpy load.
POOL_VARIABLES = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


def available_cores() -> int:
    """Cores this process may run on (its affinity, where the OS reports one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def per_worker(workers: int, cores: int | None = None, explicit: int | None = None) -> int:
    """Threads for each of ``workers`` workers: ``explicit``, else an equal share (≥ 1)."""
    if explicit is not None:
        return max(1, explicit)
    return max(1, (cores or available_cores()) // max(1, workers))


def worker_environment(threads: int, workers: int) -> dict[str, str]:
    """Environment variables that give a worker ``threads`` threads."""
    env = {name: str(threads) for name in POOL_VARIABLES}
    env[THREADS] = str(threads)
    env[WORKERS] = str(workers)
    return env


def apply_in_worker() -> dict[str, Any]:
    """In a worker, after importing torch: size torch's pools from the environment; returns
    the ``threads`` section of the record."""
    import torch

    threads = int(os.environ.get(THREADS) or torch.get_num_threads())
    torch.set_num_threads(threads)
    with contextlib.suppress(RuntimeError):  # only once per process, before inter-op work
        torch.set_num_interop_threads(threads)
    return {
        "torch": torch.get_num_threads(),
        "interop": torch.get_num_interop_threads(),
        "workers": int(os.environ.get(WORKERS) or 1),
        "env": {name: os.environ[name] for name in POOL_VARIABLES if name in os.environ},
    }
