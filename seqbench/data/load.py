"""From a dataset reference (registry name, or path + format) to a cached dataset.

This is the one entry point the CLI, suites and benchmarks use::

    ds = load_dataset(DatasetSpec(name="ml-100k"), Protocol(max_len=50))

The processed arrays are cached under a key covering the sha256 of the bytes read, the reader
and its options, and the protocol with its version; nothing else (not the path, not the name).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

import seqbench
from seqbench.data import synthetic
from seqbench.data.cache import (
    CACHE_FORMAT,
    ProcessedCache,
    cache_root,
    ensure_writable_dir,
    fingerprint_key,
)
from seqbench.data.cache import source_sha256 as cached_sha256
from seqbench.data.dataset import SequentialDataset
from seqbench.data.download import check_local_copy, fetch, member_file
from seqbench.data.folder import where_to_put
from seqbench.data.protocol import Processed, Protocol, process
from seqbench.data.raw import RawInteractions
from seqbench.data.readers import READERS, ProgressFn, get_reader, parse_options
from seqbench.data.registry import DATASETS
from seqbench.errors import ConfigError, SeqbenchError, UnknownNameError
from seqbench.progress import BarFactory, byte_progress
from seqbench.text.sources import TextSpec
from seqbench.validation import validate_options

log = logging.getLogger(__name__)

SYNTHETIC = "synthetic"


class DatasetSpec(BaseModel):
    """A dataset as a suite or the command line names it.

    ``name`` alone picks a registry entry; with ``path`` it labels a local copy, read with
    ``format`` (default: the registry entry's format when the name is registered). ``file``
    is a file of the data folder (:mod:`seqbench.data.folder`): ``path`` is where it was
    found, None while it is missing (then the dataset cannot be read, and nothing falls back
    to the registry's download of the same name).
    ``options`` are the reader's options (or the synthetic generator's). ``text`` names the
    items' text (or precomputed text embeddings) for models that read it; it is read only by
    them (:mod:`seqbench.text`), never by the interaction readers.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    path: Path | None = None
    file: str | None = None
    format: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    text: TextSpec | None = None

    @property
    def missing(self) -> bool:
        """A data-folder file that was not found: nothing to read yet."""
        return self.file is not None and self.path is None


@dataclass(frozen=True)
class Source:
    """What will be read: enough to key the cache, and a function that reads it."""

    format: str
    version: int  # of the reader (or generator): a fix that changes what is read bumps it
    options: dict[str, Any]
    sha256: str
    describe: dict[str, Any]
    read: Callable[[ProgressFn | None], RawInteractions]


def load_dataset(
    spec: DatasetSpec,
    protocol: Protocol | None = None,
    *,
    cache_dir: Path | str | None = None,
    mirror: str | None = None,
    bars: BarFactory | None = None,
    refresh: bool = False,
) -> SequentialDataset:
    """Read (downloading if needed), process and cache ``spec`` under ``protocol``.

    ``refresh`` rebuilds the processed entry even when one is cached.
    """
    protocol = protocol or Protocol()
    root = ensure_writable_dir(cache_root(cache_dir))
    source = resolve_source(spec, root, mirror=mirror, bars=bars)
    fingerprint = {
        "cache_format": CACHE_FORMAT,
        "protocol": protocol.fingerprint(),
        "source": {
            "sha256": source.sha256,
            "format": source.format,
            "format_version": source.version,
            "options": source.options,
        },
    }
    key = fingerprint_key(fingerprint)
    cache = ProcessedCache(root)
    with cache.locked(key):
        cached = None if refresh else cache.load(key)
        if cached is not None:
            processed, meta = cached
            log.info("dataset %r: loaded from cache %s", spec.name, cache.entry(key))
        else:
            label = Path(source.describe.get("file", spec.name)).name
            with _reading(source.describe.get("file")):
                raw = source.read(byte_progress(bars, f"reading {label}"))
            processed = _process(spec.name, raw, protocol)
            meta = {
                "fingerprint": fingerprint,
                "raw": {
                    "users": int(np.unique(raw.user).size),
                    "items": int(np.unique(raw.item).size),
                    "interactions": len(raw),
                },
                "seqbench_version": seqbench.__version__,
                "numpy_version": np.__version__,
            }
            try:
                cache.save(key, processed, meta)
            except OSError as exc:
                raise SeqbenchError(
                    f"cannot write the cache entry {cache.entry(key)} ({exc.strerror})"
                ) from None
    provenance = {
        "source": {
            **source.describe,
            "format": source.format,
            "options": source.options,
            "sha256": source.sha256,
        },
        "raw": meta["raw"],
        "k_core_passes": processed.k_core_passes,
        "cache": {"key": key, "hit": cached is not None, "path": str(cache.entry(key))},
    }
    return SequentialDataset(spec.name, processed, protocol, provenance)


def resolve_source(
    spec: DatasetSpec,
    root: Path,
    *,
    mirror: str | None = None,
    bars: BarFactory | None = None,
) -> Source:
    """Find the bytes behind ``spec`` (downloading registry data) and validate the options."""
    where = f"dataset {spec.name!r}"
    if spec.missing:
        assert spec.file is not None
        raise ConfigError(
            f"{where}: its file {spec.file!r} was not found in the data folder; expected "
            f"{where_to_put(spec.name, spec.file)} (seqbench validate SUITE.toml says where "
            "to get it)"
        )
    entry = DATASETS.get(spec.name)
    fmt = spec.format or (entry.format if entry else None)
    if entry is None and spec.path is None:
        raise UnknownNameError("dataset", spec.name, DATASETS)
    if fmt is None:
        raise ConfigError(
            f"{where}: a local path needs a format (available: {', '.join(sorted(READERS))})"
        )
    if fmt == SYNTHETIC:
        if spec.path is not None:
            raise ConfigError(f"{where}: the synthetic dataset is generated; it takes no path")
        return _synthetic_source(spec, where)

    reader = get_reader(fmt)
    entry_options = entry.options if entry and spec.path is None and fmt == entry.format else {}
    options = parse_options(reader, {**entry_options, **spec.options}, where)
    if spec.path is not None:
        file = reader.resolve(spec.path.expanduser(), options)
        describe: dict[str, Any] = {"file": str(file.resolve())}
        copied = _copied_member(entry, spec, fmt, file)
        if entry is not None and copied is not None:
            check_local_copy(entry, copied, file)  # a local copy of the registry's file
            describe["copy_of"] = copied
    else:
        assert entry is not None  # checked above: no path means a registry entry
        file = fetch(entry, root, mirror=mirror, bars=bars)
        describe = {"file": str(file), "url": entry.remote.url if entry.remote else None}
    with _reading(str(file)):
        sha256 = cached_sha256(file, root)
    return Source(
        format=fmt,
        version=reader.version,
        options=options.model_dump(),
        sha256=sha256,
        describe=describe,
        read=lambda progress: reader.read(file, options, progress),
    )


def _copied_member(entry: Any, spec: DatasetSpec, fmt: str, file: Path) -> str | None:
    """The registry member that ``file`` stands in for (a data-folder copy named like it, read
    in the registry's format), or None."""
    if entry is None or entry.remote is None or fmt != entry.format:
        return None
    return entry.remote.member if file.name == entry.remote.local_name() else None


def own_text_member(
    spec: DatasetSpec, member: str, source_file: Path, root: Path, mirror: str | None = None
) -> Path:
    """The file behind ``member`` of a dataset's own download (its item text): beside a local
    copy (the data-folder file named like the member, checked against the registry's sha256),
    else extracted from the downloaded archive."""
    entry = DATASETS.get(spec.name)
    if entry is None or entry.remote is None:
        raise ConfigError(
            f"dataset {spec.name!r}: text member {member!r} names a file of the dataset's own "
            "download, and this dataset is not downloaded (give the text a path)"
        )
    local_name = entry.remote.local_name(member)
    if spec.path is not None and local_name is not None:
        beside = source_file.parent / local_name
        if not beside.is_file():
            raise ConfigError(
                f"dataset {spec.name!r}: a local copy is used ({source_file}) and its item text "
                f"{local_name} is not beside it; put it there, or remove the copy to download"
            )
        check_local_copy(entry, member, beside)
        return beside
    return member_file(entry, member, root, mirror=mirror)


def _synthetic_source(spec: DatasetSpec, where: str) -> Source:
    config = validate_options(synthetic.SyntheticConfig, spec.options, where)
    raw = synthetic.generate(config)  # cheap; hashing the content keys the cache honestly
    return Source(
        format=SYNTHETIC,
        version=synthetic.GENERATOR_VERSION,
        options=config.fingerprint(),
        sha256=synthetic.content_sha256(raw),
        describe={"generator_version": synthetic.GENERATOR_VERSION},
        read=lambda progress: raw,
    )


def _process(name: str, raw: RawInteractions, protocol: Protocol) -> Processed:
    where = f"dataset {name!r}"
    if protocol.min_rating is not None and raw.rating is None:
        raise ConfigError(f"{where}: protocol min_rating is set but this source has no ratings")
    processed = process(raw, protocol)
    knobs = f"k_core={protocol.k_core}, min_rating={protocol.min_rating}, dedup={protocol.dedup}"
    if processed.items.size == 0:
        raise ConfigError(
            f"{where}: no interaction of {len(raw)} is left after filtering ({knobs}); "
            "loosen the protocol"
        )
    if len(processed.test) == 0:
        raise ConfigError(
            f"{where}: {processed.items.size} interactions are left ({knobs}) but no user has "
            "the 3 interactions a test sample needs (one to predict, one for validation, one "
            "as input)"
        )
    return processed


@contextlib.contextmanager
def _reading(file: str | None) -> Iterator[None]:
    """Turn an OS error on the source (permissions, a vanished file) into a one-line error."""
    try:
        yield
    except OSError as exc:
        raise ConfigError(f"{exc.filename or file}: cannot read it ({exc.strerror})") from None
