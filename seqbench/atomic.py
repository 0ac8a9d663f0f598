"""The one atomic writer: a file is either its old content or its new content, never torn.

Every file seqbench writes for later reading (results, ranks, caches, embeddings, downloads,
reports, leases) goes through :func:`replace_atomically`: the content is written to a temporary
file in the target's own folder (a rename is atomic only within one filesystem), flushed and
fsynced, renamed over the target, and the folder is fsynced so that the rename itself survives a
power cut. A process killed at any point leaves at most a hidden ``.<name>.*.tmp`` file, which
readers never look at and the next writer's folder-level cleanup may remove.

``$SEQBENCH_FAULT=kill@mid-write`` (tests only) SIGKILLs the writing process when only half of
the bytes reached the disk: what a crash mid-write looks like.
"""

from __future__ import annotations

import json
import math
import os
import signal
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

FAULT = "SEQBENCH_FAULT"


def temporary_path(path: Path) -> Path:
    """A fresh hidden name beside ``path`` (same folder, same filesystem)."""
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


@contextmanager
def replace_atomically(path: Path | str, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file to write ``path``'s new content into; on a clean exit it is fsynced
    and renamed over ``path`` (and the folder fsynced); on an exception it is removed and
    ``path`` keeps its old content."""
    path = Path(path)
    tmp = temporary_path(path)
    encoding = None if "b" in mode else "utf-8"
    newline = None if "b" in mode else ""
    try:
        with open(tmp, mode, encoding=encoding, newline=newline) as f:
            yield f
            f.flush()
            _fault_mid_write(f)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_folder(path.parent)


def write_bytes(path: Path | str, data: bytes) -> None:
    """Replace ``path``'s content with ``data`` atomically and durably."""
    with replace_atomically(path, "wb") as f:
        f.write(data)


def write_text(path: Path | str, text: str) -> None:
    """Replace ``path``'s content with ``text`` (UTF-8, line ends kept) atomically."""
    write_bytes(path, text.encode("utf-8"))


def write_json(
    path: Path | str, data: Any, *, indent: int | None = 2, sort_keys: bool = False
) -> None:
    """Strict JSON (NaN and ±inf become null, as no JSON reader accepts them), atomically."""
    text = json.dumps(finite(data), indent=indent, sort_keys=sort_keys, allow_nan=False)
    write_text(path, text + "\n")


def write_with(path: Path | str, write: Callable[[IO[bytes]], None]) -> None:
    """Replace ``path`` with what ``write(file)`` writes into a binary file object (e.g.
    ``numpy.savez``), atomically."""
    with replace_atomically(path, "wb") as f:
        write(f)


def fsync_folder(folder: Path | str) -> None:
    """Make a rename or a new entry in ``folder`` durable (a no-op where folders cannot be
    opened, e.g. on Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_tree(folder: Path | str) -> None:
    """fsync every file under ``folder`` and the folders themselves: before a folder written
    aside (a cell, a cache entry) is renamed into place."""
    for root, _, files in os.walk(folder):
        for name in files:
            try:
                fd = os.open(os.path.join(root, name), os.O_RDONLY)
            except OSError:
                continue
            try:
                os.fsync(fd)
            except OSError:
                pass
            finally:
                os.close(fd)
        fsync_folder(root)


def finite(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None (recursively)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def _fault_mid_write(f: IO[Any]) -> None:
    """The fault hook: keep half of what was written, make it durable, die."""
    if os.environ.get(FAULT) != "kill@mid-write":
        return
    size = os.fstat(f.fileno()).st_size
    os.ftruncate(f.fileno(), size // 2)
    os.fsync(f.fileno())
    os.kill(os.getpid(), signal.SIGKILL)
