"""Per-cell caps on memory and time (``seqbench run --memory-limit/--time-limit``): a cell past
one ends as an *outcome* (``oom`` or ``timeout``, with ``stopped`` saying where), recorded and
not retried, and the suite goes on.

Memory on a CPU is capped from outside the worker: the process that drives it (the executor's,
:class:`seqbench.executors.worker_process.WorkerProcess`) reads the worker's resident set every
:data:`POLL_SECONDS` (:class:`MemoryWatch`) and kills it the moment it passes the cap; the cell
is recorded ``oom``, and the next cell gets a fresh worker. Why not inside the worker:

- ``RLIMIT_AS`` caps *virtual* memory, which a torch process reserves far beyond what it uses
  (thread stacks, allocator arenas, mapped libraries), so its numbers mean nothing a user could
  set, and a failed reservation in a native thread aborts the process instead of raising;
- cgroups (``memory.max``) need a delegated hierarchy, which containers and clusters seldom give;
- an allocation that overcommits does not fail at all: Linux's OOM killer picks a victim later,
  possibly not the worker. A watcher that kills at the cap keeps the machine up whatever the
  cell allocates, and needs nothing from the worker (a cell stuck in one native call is caught
  too). The price: a poll period's worth of overshoot (tens of MiB at memory-bandwidth speed).

On CUDA the cap is the allocator's: the worker sets ``torch.cuda.set_per_process_memory_fraction``
for the cell, and an allocation past it raises ``torch.OutOfMemoryError``, which the worker
records as ``oom``; the host's resident memory is still watched, at the default share.

Time is capped through the executor seam's stop request (``handle.stop("timeout", …)``, see
:mod:`seqbench.executors.attempt`): the worker ends the cell at its next event or at once inside
interruptible code, and is killed if it does not within the grace time.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from pathlib import Path

from seqbench.errors import ConfigError

#: Seconds between two readings of a worker's resident memory.
POLL_SECONDS = 0.05
#: The default cap: this share of the memory available when the run starts, divided among the
#: workers running at once.
DEFAULT_SHARE = 0.8
AUTO = "auto"

_UNITS = {"": 1.0, "k": 1 / 1024, "m": 1.0, "g": 1024.0, "t": 1024.0**2}
_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)


def parse_memory(text: str, option: str = "--memory-limit") -> float | str | None:
    """``"4GiB"``, ``"4G"``, ``"512MiB"``, ``"1500"`` (MiB), ``"50%"`` (of the machine's
    memory) → MiB; ``"auto"`` → :data:`AUTO`; ``"none"`` → None. Units are binary."""
    value = text.strip().lower()
    if value in ("none", "off", "no"):
        return None
    if value == AUTO:
        return AUTO
    if value.endswith("%"):
        total = total_memory_mib()
        try:
            share = float(value[:-1])
        except ValueError:
            share = -1.0
        if total is None or not 0 < share <= 100:
            raise ConfigError(
                f"{option} {text!r}: expected a share of the machine's memory in (0, 100] %"
                + ("" if total is not None else " (unknown here: give a size such as 4GiB)")
            )
        return total * share / 100
    match = _SIZE.match(value)
    mib = float(match.group(1)) * _UNITS[match.group(2).lower()] if match else -1.0
    if not mib > 0:
        raise ConfigError(
            f"{option} {text!r}: expected a size such as 4GiB, 512MiB or 1500 (MiB), a share "
            "such as 50%, auto (a share of the available memory per worker) or none"
        )
    return mib


def default_memory_limit(workers: int = 1) -> float | None:
    """:data:`DEFAULT_SHARE` of the memory available now, divided among ``workers`` (None where
    the OS does not tell)."""
    available = _meminfo_mib("MemAvailable")
    return None if available is None else DEFAULT_SHARE * available / max(1, workers)


def cell_limits(
    memory_limit: float | str | None, device_type: str, workers: int
) -> tuple[float | None, float | None]:
    """(resident-memory cap watched from outside, CUDA allocator cap) of a cell, in MiB.

    On a CPU the cell's memory is its worker's resident set: capped at ``memory_limit`` (or
    the default share for :data:`AUTO`). On CUDA ``memory_limit`` (when a size) caps the
    allocator, and the host's resident memory is watched at the default share."""
    share = default_memory_limit(workers)
    given = memory_limit if isinstance(memory_limit, (int, float)) else None
    if device_type == "cuda":
        host = share if memory_limit is not None else None
        return host, given
    return (share if memory_limit == AUTO else given), None


def total_memory_mib() -> float | None:
    return _meminfo_mib("MemTotal")


def _meminfo_mib(field: str) -> float | None:
    return _kib_field(Path("/proc/meminfo"), field)


def rss_mib(pid: int) -> float | None:
    """Resident memory of process ``pid`` (None once it is gone, or where /proc is absent)."""
    return _kib_field(Path(f"/proc/{pid}/status"), "VmRSS")


def _kib_field(path: Path, field: str) -> float | None:
    try:
        for line in path.read_text().splitlines():
            if line.startswith(field + ":"):
                return float(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def format_mib(mib: float) -> str:
    """``812 MiB``, ``3.42 GiB``."""
    return f"{mib / 1024:.2f} GiB" if mib >= 1024 else f"{mib:.0f} MiB"


def format_seconds(seconds: float) -> str:
    """``45 s``, ``2.5 min``, ``1.25 h``."""
    if seconds < 120:
        return f"{seconds:g} s"
    return f"{seconds / 60:.3g} min" if seconds < 7200 else f"{seconds / 3600:.3g} h"


def watchable() -> bool:
    """Whether a process's resident memory can be read here (Linux /proc)."""
    return Path("/proc/self/status").exists()


class MemoryWatch:
    """Reads process ``pid``'s resident memory every ``interval`` seconds from a thread and
    calls ``on_exceed(rss_mib)`` once when it passes ``limit_mib``."""

    def __init__(
        self,
        pid: int,
        limit_mib: float,
        on_exceed: Callable[[float], None],
        interval: float = POLL_SECONDS,
    ) -> None:
        self.pid, self.limit_mib, self.interval = pid, limit_mib, interval
        self._on_exceed = on_exceed
        self._done = threading.Event()
        self.peak_mib = 0.0
        self._thread = threading.Thread(target=self._watch, name=f"memory-watch-{pid}",
                                        daemon=True)  # fmt: skip

    def start(self) -> MemoryWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._done.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def _watch(self) -> None:
        while not self._done.is_set():
            rss = rss_mib(self.pid)
            if rss is None:  # the process is gone
                return
            self.peak_mib = max(self.peak_mib, rss)
            if rss > self.limit_mib:
                self._done.set()
                self._on_exceed(rss)
                return
            self._done.wait(self.interval)
