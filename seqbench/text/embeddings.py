"""Item text embeddings aligned to a dataset's item ids, cached by what made them.

Encoding a catalogue with a large model takes minutes, and every cell of a suite that trains M2Rec
on the same dataset needs the same vectors, so they are cached under
``<cache root>/text-embeddings/<key>.npz`` (+ a ``.json`` record). The key covers the aligned texts
(item order included: it depends on the dataset and protocol), the encoder and its exact weights;
a per-key file lock makes concurrent cells encode once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import zipfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock

from seqbench import atomic
from seqbench.data.cache import cache_root, ensure_writable_dir, fingerprint_key, write_json_atomic
from seqbench.errors import ConfigError, DataFormatError
from seqbench.text.encoders import EncodeProgress, TextEncoder, load_encoder
from seqbench.text.sources import TextSpec, files_sha256

log = logging.getLogger("seqbench.text")

#: Bump when the same texts and encoder would give different cached arrays.
FORMAT_VERSION = 1


@dataclass(frozen=True, eq=False)
class ItemTextEmbeddings:
    """One fixed vector per item; row 0 (padding) and items without text are zero."""

    vectors: np.ndarray  # float32 (n_items + 1, dim)
    has_text: np.ndarray  # bool (n_items + 1,); [0] is False
    info: dict[str, Any]  # JSON-able record: encoder, weights_sha256, dim, text_sha256, ...


def embed_item_texts(
    texts: np.ndarray,
    encoder_spec: str,
    *,
    cache_dir: Path | str | None = None,
    encoder: TextEncoder | None = None,
    progress: EncodeProgress | None = None,
) -> ItemTextEmbeddings:
    """Embed the aligned ``texts`` ((n_items + 1,), [0] = "", "" = no text), cached.

    ``encoder`` replaces the one ``encoder_spec`` names (tests); its ``name`` is what is recorded.
    """
    texts = np.asarray(texts, dtype=str)
    if texts.ndim != 1 or texts.shape[0] < 1:
        raise ValueError(f"texts must be a (n_items + 1,) array, got shape {texts.shape}")
    items = [""] + [t.strip() for t in texts[1:].tolist()]  # row 0 is padding, whatever it holds
    has_text = np.array([bool(t) for t in items], dtype=bool)
    n_items, missing = len(items) - 1, int(len(items) - 1 - has_text.sum())
    if missing == n_items:
        raise ConfigError(
            f"none of the {n_items} items has text: there is nothing to embed (check the text "
            "table's id: it must match the item ids of the interaction file)"
        )
    _warn_missing(missing, n_items)
    encoder = encoder if encoder is not None else load_encoder(encoder_spec)
    text_sha256 = hashlib.sha256("\0".join(items).encode()).hexdigest()
    record = {
        "encoder": encoder.name,
        "weights_sha256": encoder.weights_sha256(),
        "text_sha256": text_sha256,
    }
    key = fingerprint_key({"format_version": FORMAT_VERSION, **record})
    folder = ensure_writable_dir(cache_root(cache_dir) / "text-embeddings")
    path = folder / f"{key}.npz"

    cached = _load(path, key, has_text)
    if cached is None:
        with FileLock(str(folder / f"{key}.lock")):
            cached = _load(path, key, has_text)  # another process may have just written it
            if cached is None:
                vectors = _encode(encoder, items, has_text, progress)
                info = {
                    **record,
                    "dim": int(vectors.shape[1]),
                    "items": n_items,
                    "items_without_text": missing,
                }
                _save(path, key, vectors, has_text, info)
                return ItemTextEmbeddings(
                    vectors, has_text, {**info, "cache": {"hit": False, "path": str(path)}}
                )
    vectors, info = cached
    return ItemTextEmbeddings(
        vectors, has_text, {**info, "cache": {"hit": True, "path": str(path)}}
    )


def load_precomputed(spec: TextSpec, item_tokens: np.ndarray) -> ItemTextEmbeddings:
    """Vectors from the file ``spec.embeddings`` names, aligned to ``item_tokens`` by raw id.

    A ``.npz`` holds arrays ``ids`` (n,) and ``embeddings`` (n, dim); a ``.npy`` holds the
    (n, dim) matrix and ``spec.ids`` its ids, one per line in row order.
    """
    if spec.embeddings is None:
        raise ConfigError("this text table names no embeddings file")
    path = spec.embeddings
    if not path.is_file():
        raise ConfigError(f"{path}: no such file (the text table's embeddings)")
    if spec.ids is None:
        ids, matrix = _read_npz(path)
    else:
        ids, matrix = _read_npy(path, spec.ids)
    row_of: dict[str, int] = {}
    for row, item in enumerate(ids):
        if item in row_of:
            where = spec.ids if spec.ids is not None else path
            line = row + 1 if spec.ids is not None else None
            raise DataFormatError(
                where, line, f"item id {item!r} repeats row {row_of[item] + 1}", "unique item ids"
            )
        row_of[item] = row
    bad = np.flatnonzero(~np.isfinite(matrix).all(axis=1))
    if bad.size:
        raise DataFormatError(
            path,
            None,
            f"non-finite values in {bad.size} row(s) (first: id {ids[bad[0]]!r})",
            "finite numbers",
        )

    tokens = [str(t) for t in np.asarray(item_tokens).tolist()[1:]]
    rows = np.array([row_of.get(t, -1) for t in tokens], dtype=np.int64)
    has_text = np.concatenate([[False], rows >= 0])
    vectors = np.zeros((len(tokens) + 1, matrix.shape[1]), dtype=np.float32)
    vectors[1:][rows >= 0] = matrix[rows[rows >= 0]]
    n_items, missing = len(tokens), int(len(tokens) - (rows >= 0).sum())
    if n_items and missing == n_items:
        raise ConfigError(
            f"{path}: none of its {len(ids)} ids is an item of the dataset (ids such as "
            f"{', '.join(map(repr, ids[:3]))}; items such as {', '.join(map(repr, tokens[:3]))})"
        )
    _warn_missing(missing, n_items)
    files = [path] + ([spec.ids] if spec.ids is not None else [])
    info = {
        "encoder": f"precomputed:{path.name}",
        "weights_sha256": files_sha256(files),
        "text_sha256": None,
        "dim": int(matrix.shape[1]),
        "items": n_items,
        "items_without_text": missing,
        "cache": {"hit": False, "path": None},
    }
    return ItemTextEmbeddings(vectors, has_text, info)


def _warn_missing(missing: int, n_items: int) -> None:
    if missing:
        log.warning(
            "%d of %d items have no text; their text embedding is zero (masked)", missing, n_items
        )


def _encode(
    encoder: TextEncoder, items: list[str], has_text: np.ndarray, progress: EncodeProgress | None
) -> np.ndarray:
    """Encode the non-empty texts in one call, in id order, and scatter them into rows."""
    rows = np.flatnonzero(has_text)
    encoded = np.asarray(encoder.encode([items[r] for r in rows], progress=progress))
    where = f"text encoder {encoder.name}"
    if encoded.ndim != 2 or encoded.shape[0] != rows.size or encoded.shape[1] < 1:
        raise DataFormatError(
            where, None, f"output of shape {encoded.shape}", f"({rows.size}, dim), one row per text"
        )
    bad = np.flatnonzero(~np.isfinite(encoded).all(axis=1))
    if bad.size:
        raise DataFormatError(
            where,
            None,
            f"non-finite values for {bad.size} text(s) (first: {items[rows[bad[0]]]!r})",
            "finite numbers",
        )
    vectors = np.zeros((len(items), encoded.shape[1]), dtype=np.float32)
    vectors[rows] = encoded
    return vectors


def _load(path: Path, key: str, has_text: np.ndarray) -> tuple[np.ndarray, dict[str, Any]] | None:
    """The cached (vectors, info) for ``key``, or None; a damaged entry is reported and ignored."""
    sidecar = path.with_suffix(".json")
    if not (path.is_file() and sidecar.is_file()):
        return None
    try:
        info = json.loads(sidecar.read_text())
        if info.pop("key", None) != key or info.pop("format_version", None) != FORMAT_VERSION:
            raise ValueError("key or format does not match")
        info.pop("created", None)
        with np.load(path, allow_pickle=False) as npz:
            vectors, cached_mask = npz["vectors"], npz["has_text"]
        if vectors.shape != (has_text.size, info["dim"]) or not np.array_equal(
            cached_mask, has_text
        ):
            raise ValueError("arrays do not match the texts")
        return vectors.astype(np.float32, copy=False), info
    except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as exc:
        log.warning("text embedding cache entry %s is damaged (%s); encoding again", path, exc)
        return None


def _save(
    path: Path, key: str, vectors: np.ndarray, has_text: np.ndarray, info: dict[str, Any]
) -> None:
    """Write the arrays, then the record (the record's presence marks a complete entry)."""
    atomic.write_with(path, lambda f: np.savez(f, vectors=vectors, has_text=has_text))
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    record = {**info, "key": key, "format_version": FORMAT_VERSION, "created": created}
    write_json_atomic(path.with_suffix(".json"), record)


def _read_npz(path: Path) -> tuple[list[str], np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            names = list(npz.files)
            if "ids" not in names or "embeddings" not in names:
                raise DataFormatError(
                    path,
                    None,
                    f"arrays {', '.join(names) or 'none'}",
                    "arrays 'ids' (n,) and 'embeddings' (n, dim)",
                )
            ids, matrix = npz["ids"], npz["embeddings"]
    except ValueError as exc:  # object arrays need pickle, which is never allowed
        raise DataFormatError(
            path,
            None,
            f"cannot read it without pickle ({exc})",
            "ids saved as a str or int array, e.g. np.array(ids, dtype=str)",
        ) from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DataFormatError(path, None, f"not a readable .npz ({exc})", "a NumPy .npz") from None
    if ids.ndim != 1 or ids.dtype.kind not in "UiuS":
        raise DataFormatError(
            path, None, f"ids of shape {ids.shape}, dtype {ids.dtype}", "a 1-D str or int array"
        )
    _check_matrix(path, matrix, ids.shape[0], "ids")
    values = ids.astype(str) if ids.dtype.kind != "S" else np.char.decode(ids, "utf-8")
    return [v.strip() for v in values.tolist()], matrix


def _read_npy(path: Path, ids_path: Path) -> tuple[list[str], np.ndarray]:
    try:
        matrix = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise DataFormatError(path, None, f"not a readable .npy ({exc})", "a NumPy .npy") from None
    if not ids_path.is_file():
        raise ConfigError(f"{ids_path}: no such file (the text table's ids)")
    try:
        lines = ids_path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise DataFormatError(ids_path, None, f"not UTF-8 ({exc.reason})", "UTF-8 text") from None
    while lines and not lines[-1].strip():
        lines.pop()
    ids = [line.strip() for line in lines]
    empty = next((i for i, item in enumerate(ids) if not item), None)
    if empty is not None:
        raise DataFormatError(ids_path, empty + 1, "an empty line", "one item id per line")
    if matrix.ndim == 2 and matrix.shape[0] != len(ids):
        raise DataFormatError(
            ids_path,
            None,
            f"{len(ids)} id(s) for the {matrix.shape[0]} row(s) of {path}",
            "one id per row of the embeddings, in row order",
        )
    _check_matrix(path, matrix, len(ids), f"ids in {ids_path}")
    return ids, matrix


def _check_matrix(path: Path, matrix: np.ndarray, n: int, ids_name: str) -> None:
    if matrix.ndim != 2 or matrix.shape[1] < 1 or matrix.dtype.kind not in "fiu":
        raise DataFormatError(
            path,
            None,
            f"embeddings of shape {matrix.shape}, dtype {matrix.dtype}",
            "a 2-D float array (n items, dim)",
        )
    if matrix.shape[0] != n:
        raise DataFormatError(
            path,
            None,
            f"{matrix.shape[0]} embedding row(s) for {n} {ids_name}",
            "one row per id",
        )
