"""On-disk cache: where it lives, source hashes, and processed datasets keyed by what made them.

Layout under the cache root (``--cache-dir``, else ``$SEQBENCH_CACHE_DIR``, else the user cache
folder, e.g. ``~/.cache/seqbench``)::

    downloads/<dataset>/…          official files as downloaded (and members extracted from them)
    downloads/trusted-sha256.json  sha256 recorded on first download where no checksum is published
    source-sha256.json             sha256 of local source files, remembered per (path, size, mtime)
    processed/<key>/               arrays.npz + meta.json of one (source, reader, protocol)

A processed entry appears only when complete (written to a temporary folder, then renamed) and is
built under a per-key OS file lock, so concurrent runs neither duplicate nor corrupt work.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
import uuid
import zipfile
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock
from platformdirs import user_cache_dir

from seqbench import atomic
from seqbench.data.protocol import Processed, Split
from seqbench.errors import ConfigError

log = logging.getLogger(__name__)

ENV_CACHE_DIR = "SEQBENCH_CACHE_DIR"
#: Bump when the on-disk layout of a processed entry changes.
CACHE_FORMAT = 1

_SPLITS = ("train", "valid", "test")


def cache_root(explicit: Path | str | None = None) -> Path:
    """The cache folder: the explicit argument, else $SEQBENCH_CACHE_DIR, else the user cache."""
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get(ENV_CACHE_DIR)
    return Path(env).expanduser() if env else Path(user_cache_dir("seqbench"))


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def source_sha256(path: Path, root: Path) -> str:
    """sha256 of ``path``, remembered per (absolute path, size, inode, mtime, ctime).

    ctime changes whenever the content does, even when a tool restores the old mtime.
    """
    stat = path.stat()
    key = str(path.resolve())
    identity = [stat.st_size, stat.st_ino, stat.st_mtime_ns, stat.st_ctime_ns]
    memo_file = root / "source-sha256.json"
    seen = read_json(memo_file).get(key)
    if isinstance(seen, dict) and seen.get("identity") == identity:
        return str(seen["sha256"])
    digest = file_sha256(path)
    with FileLock(str(memo_file) + ".lock"):
        memo = read_json(memo_file)
        memo[key] = {"identity": identity, "sha256": digest}
        write_json_atomic(memo_file, memo)
    return digest


def ensure_writable_dir(root: Path) -> Path:
    """``root`` as a folder seqbench can write to, created if needed; a ConfigError otherwise."""
    if root.exists() and not root.is_dir():
        raise ConfigError(f"cache folder {root}: exists and is not a folder")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cache folder {root}: cannot create it ({exc.strerror})") from None
    try:  # os.access says yes to root everywhere; only a real write tells
        with tempfile.TemporaryFile(dir=root):
            pass
    except OSError as exc:
        raise ConfigError(
            f"cache folder {root}: cannot write in it ({exc.strerror}); choose another with "
            "--cache-dir or $SEQBENCH_CACHE_DIR"
        ) from None
    return root


def fingerprint_key(fingerprint: dict[str, Any]) -> str:
    """Hex sha256 of a canonical JSON rendering of ``fingerprint``."""
    text = json.dumps(fingerprint, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class ProcessedCache:
    """Processed datasets under ``<root>/processed/<key>/``."""

    def __init__(self, root: Path) -> None:
        self.dir = root / "processed"

    def entry(self, key: str) -> Path:
        return self.dir / key[:24]

    @contextlib.contextmanager
    def locked(self, key: str) -> Iterator[None]:
        """Hold the per-key OS lock (released by the OS if the process dies)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.entry(key)) + ".lock"):
            yield

    def load(self, key: str) -> tuple[Processed, dict[str, Any]] | None:
        """The entry for ``key``, or None if absent; a damaged entry is removed and reported."""
        path = self.entry(key)
        if not path.is_dir():
            return None
        try:
            meta = json.loads((path / "meta.json").read_text())
            if meta.get("key") != key or meta.get("cache_format") != CACHE_FORMAT:
                raise ValueError("key or format does not match")
            with np.load(path / "arrays.npz", allow_pickle=False) as npz:
                arrays = {name: npz[name] for name in npz.files}
            return _unpack(arrays, meta), meta
        except (OSError, ValueError, KeyError, TypeError, AttributeError, EOFError,
                zipfile.BadZipFile) as exc:  # fmt: skip
            log.warning("cache entry %s is damaged (%s); rebuilding it", path, exc)
            shutil.rmtree(path, ignore_errors=True)
            return None

    def save(self, key: str, processed: Processed, meta: dict[str, Any]) -> Path:
        """Write the entry atomically: a temporary folder renamed into place when complete.

        Call it while holding :meth:`locked` for the key.
        """
        final = self.entry(key)
        tmp = self.dir / f".tmp-{final.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir(parents=True)
        try:
            np.savez(tmp / "arrays.npz", **_pack(processed))
            meta = {
                **meta,
                "key": key,
                "cache_format": CACHE_FORMAT,
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "k_core_passes": processed.k_core_passes,
            }
            (tmp / "meta.json").write_text(json.dumps(meta, indent=2, default=str))
            atomic.fsync_tree(tmp)  # complete on disk before it becomes visible
            shutil.rmtree(final, ignore_errors=True)  # a refresh replaces the old entry
            os.rename(tmp, final)
            atomic.fsync_folder(self.dir)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return final


def _pack(p: Processed) -> dict[str, np.ndarray]:
    arrays = {
        "items": p.items,
        "offsets": p.offsets,
        "user_tokens": p.user_tokens,
        "item_tokens": p.item_tokens,
    }
    for name in _SPLITS:
        split: Split = getattr(p, name)
        arrays[f"{name}_user"] = split.user
        arrays[f"{name}_end"] = split.end
    if p.timestamps is not None:
        arrays["timestamps"] = p.timestamps
    if p.item_text is not None:
        arrays["item_text"] = p.item_text
    return arrays


def _unpack(a: dict[str, np.ndarray], meta: dict[str, Any]) -> Processed:
    splits = {name: Split(user=a[f"{name}_user"], end=a[f"{name}_end"]) for name in _SPLITS}
    return Processed(
        items=a["items"],
        offsets=a["offsets"],
        timestamps=a.get("timestamps"),
        user_tokens=a["user_tokens"],
        item_tokens=a["item_tokens"],
        item_text=a.get("item_text"),
        k_core_passes=int(meta["k_core_passes"]),
        **splits,
    )


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_json_atomic(path: Path, data: Any) -> None:
    """Small JSON bookkeeping files (memo, trust records), through the one atomic writer."""
    atomic.write_json(path, data, sort_keys=True)
