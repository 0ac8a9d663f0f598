"""The result store: one directory per cell, complete or absent, shared safely by processes.

Layout and file formats are documented in docs/results.md. Two rules make it safe to kill a run
at any moment and to point several ``seqbench run`` processes (or, later, executors on other
GPUs and cluster nodes) at one results root:

- a cell is written under ``.tmp/`` and renamed into place only when complete, so a visible cell
  directory always holds a whole ``result.json``;
- a cell is run only by the process holding its OS file lock under ``.locks/``; the OS releases
  the lock when that process dies, and leftovers of a dead writer are removed by the next one.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Any

from filelock import FileLock, Timeout

from seqbench.errors import SeqbenchError

SCHEMA = 1
RESULT = "result.json"
RANKS = "ranks.npz"
LOG = "cell.log"


class CellBusy(Exception):
    """Another process holds this cell's lock."""


class SuiteStore:
    """The results of one suite: ``<root>/<suite>/``."""

    def __init__(self, root: Path | str, suite: str) -> None:
        self.root = Path(root).expanduser()
        self.dir = self.root / suite
        self._locks = self.dir / ".locks"
        self._tmp = self.dir / ".tmp"
        try:
            for folder in (self.dir, self._locks, self._tmp):
                folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SeqbenchError(
                f"cannot create the results folder {exc.filename or self.dir} ({exc.strerror}); "
                "pass a writable --results DIR"
            ) from None

    def cell_dir(self, relative: PurePosixPath) -> Path:
        return self.dir / relative

    def status(self, relative: PurePosixPath) -> str | None:
        """``"ok"``, ``"failed"``, or None when the cell has no readable result."""
        result = read_result(self.cell_dir(relative) / RESULT)
        return None if result is None else str(result.get("status"))

    @contextmanager
    def claim(self, cell_hash: str, wait: bool = False) -> Iterator[None]:
        """Hold the cell's lock (raising :class:`CellBusy` if taken and not ``wait``)."""
        lock = FileLock(self._locks / f"{cell_hash}.lock")
        try:
            lock.acquire(timeout=-1 if wait else 0)
        except Timeout:
            raise CellBusy(cell_hash) from None
        try:
            for leftover in self._tmp.glob(f"{cell_hash}-*"):  # a dead writer's partial cell
                shutil.rmtree(leftover, ignore_errors=True)
            yield
        finally:
            lock.release()

    def scratch(self, cell_hash: str) -> Path:
        """A fresh folder to write the cell into (call while holding its claim)."""
        path = self._tmp / f"{cell_hash}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        path.mkdir(parents=True)
        return path

    def publish(self, scratch: Path, relative: PurePosixPath, cell_hash: str) -> Path:
        """Move a finished cell into place, replacing an earlier failed attempt."""
        final = self.cell_dir(relative)
        final.parent.mkdir(parents=True, exist_ok=True)
        retired = None
        if final.exists():  # named so that the next claim of this cell cleans it up
            retired = self._tmp / f"{cell_hash}-retired-{uuid.uuid4().hex[:8]}"
            final.rename(retired)
        scratch.rename(final)
        if retired is not None:
            shutil.rmtree(retired, ignore_errors=True)
        return final

    def discard(self, scratch: Path) -> None:
        shutil.rmtree(scratch, ignore_errors=True)


def read_result(path: Path) -> dict[str, Any] | None:
    """A result.json's content, or None when it is missing or unreadable."""
    try:
        with path.open(encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write strict JSON (NaN and ±inf become null) durably: temporary file, fsync, rename."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        json.dump(_finite(data), f, indent=2, allow_nan=False)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
