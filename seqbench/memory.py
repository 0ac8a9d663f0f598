"""Resident-memory readings of this process, with a high-water mark that can be reset.

A worker serves several cells in turn, so the process-lifetime peak (``getrusage``) would carry
one cell's peak into the next. On Linux, writing ``5`` to ``/proc/self/clear_refs`` resets the
resident set's high-water mark (``VmHWM``) to the current RSS; after returning freed heap to the
OS (``malloc_trim``), each cell — and each phase of a cell — gets a peak of its own. Elsewhere
the readings fall back to the lifetime peak, and say so (``resettable()`` is False).
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import resource
import sys
from functools import cache
from pathlib import Path

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_kib(field: str) -> float | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return float(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def current_rss_mib() -> float | None:
    """Resident memory now (None where the OS does not tell)."""
    kib = _status_kib("VmRSS")
    return None if kib is None else kib / 1024


def peak_rss_mib() -> float:
    """Peak resident memory since the last :func:`reset_peak` (or since start)."""
    kib = _status_kib("VmHWM")
    if kib is not None:
        return kib / 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS


@cache
def resettable() -> bool:
    """Whether :func:`reset_peak` really resets the peak here."""
    return _CLEAR_REFS.exists() and _status_kib("VmHWM") is not None


def reset_peak() -> bool:
    """Reset the high-water mark to the current RSS; False where that is impossible."""
    if not resettable():
        return False
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


def release_free_memory() -> None:
    """Collect garbage and hand freed heap pages back to the OS (glibc), so that the next
    cell's peak starts from what is really in use."""
    gc.collect()
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").malloc_trim(0)
