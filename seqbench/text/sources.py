"""Item text files: read them into ``{raw item id: text}`` and align that to a dataset's items.

Ids are kept as the interaction file spells them (strings), because the processed dataset knows
its items only by those raw tokens. An item's fields are joined into one line ("name: X; category:
Y"), as the M2Rec paper feeds an item's title, category and description to its text encoder.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import json
import logging
import zipfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, model_validator

from seqbench.data.readers.base import Encoding, iter_lines
from seqbench.data.readers.recbole import parse_header
from seqbench.errors import ConfigError, DataFormatError

log = logging.getLogger(__name__)

TEXT_FORMATS = ("movielens", "grouplens-item", "recbole", "csv", "jsonl")
TextFormat = Literal["movielens", "grouplens-item", "recbole", "csv", "jsonl"]

#: ml-100k u.item genre flags, in column order (the dataset's u.genre).
GROUPLENS_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance",
    "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip
_LATIN1_FORMATS = ("movielens", "grouplens-item")  # MovieLens files predate UTF-8
_FIELD_FORMATS = ("recbole", "csv", "jsonl")  # the formats that `id` and `fields` apply to


class TextSpec(BaseModel):
    """A dataset's item text as a suite's [[datasets]] `text` table gives it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: Path | None = None  # None: the dataset's own text (generated data, or its own archive)
    format: TextFormat | None = None
    member: str | None = None  # a member of the .zip at `path` (or of the dataset's download)
    id: str = "item_id"
    fields: list[str] | None = None  # None: every column but the id
    sep: str | None = None  # csv only; default ',' (a tab for *.tsv)
    encoding: Encoding | None = None  # None: latin-1 for MovieLens files, utf-8 otherwise
    embeddings: Path | None = None  # precomputed vectors instead of text (.npy + ids, or .npz)
    ids: Path | None = None  # for a .npy: one raw item id per line, in row order

    @model_validator(mode="after")
    def _consistent(self) -> TextSpec:
        if self.path is not None and self.embeddings is not None:
            raise ValueError("give either path (item text) or embeddings (vectors), not both")
        if self.path is not None and self.format is None:
            raise ValueError(f"path needs a format, one of {', '.join(TEXT_FORMATS)}")
        if self.path is None and self.format is not None and self.member is None:
            raise ValueError(
                "format is set but path is not (which file has the text?); without a path, "
                "member names a file inside the dataset's own download"
            )
        if self.member is not None and self.path is None and self.format is None:
            raise ValueError(f"member needs a format, one of {', '.join(TEXT_FORMATS)}")
        if self.member is not None and self.embeddings is not None:
            raise ValueError("member names item text; it does not go with embeddings")
        set_here = self.model_fields_set
        if self.format in _LATIN1_FORMATS and set_here & {"id", "fields", "sep"}:
            keys = ", ".join(sorted(set_here & {"id", "fields", "sep"}))
            raise ValueError(f"{keys}: not used by format {self.format!r}")
        if self.format != "csv" and self.sep is not None:
            raise ValueError("sep applies to format 'csv' only")
        if self.fields is not None and not self.fields:
            raise ValueError("fields is empty; leave it out to join every column but the id")
        if self.embeddings is None:
            if self.ids is not None:
                raise ValueError("ids applies to embeddings given as a .npy file")
            return self
        suffix = self.embeddings.suffix.lower()
        if suffix not in (".npy", ".npz"):
            raise ValueError(f"embeddings {self.embeddings}: expected a .npy or .npz file")
        if suffix == ".npy" and self.ids is None:
            raise ValueError("embeddings in a .npy file need ids (a file, one item id per line)")
        if suffix == ".npz" and self.ids is not None:
            raise ValueError("ids applies to a .npy file; a .npz holds its own 'ids' array")
        if set_here & {"id", "fields", "encoding"}:
            keys = ", ".join(sorted(set_here & {"id", "fields", "encoding"}))
            raise ValueError(f"{keys}: not used with embeddings")
        return self

    @property
    def text_encoding(self) -> str:
        if self.encoding:
            return self.encoding
        return "latin-1" if self.format in _LATIN1_FORMATS else "utf-8"


def read_item_text(spec: TextSpec) -> dict[str, str]:
    """``{raw item id: text}`` from the file ``spec`` names; items with empty text are absent."""
    if spec.path is None or spec.format is None:
        raise ConfigError(
            "this text table names no text file (path); the dataset's own text is used, or "
            "load_precomputed reads its embeddings"
        )
    if not spec.path.is_file():
        raise ConfigError(f"{spec.path}: no such file (the item text's path)")
    return _READERS[spec.format](spec)


def text_source_sha256(spec: TextSpec) -> str | None:
    """sha256 of the bytes behind ``spec`` (the whole file at path, or embeddings then ids).

    None for the dataset's own text, which the dataset's fingerprint already covers.
    """
    if spec.path is not None:
        return files_sha256([spec.path])
    if spec.embeddings is not None:
        return files_sha256([spec.embeddings] + ([spec.ids] if spec.ids else []))
    return None


def files_sha256(paths: Iterable[Path], extra: bytes = b"") -> str:
    """One sha256 over the bytes of ``paths`` in order, then ``extra`` (one file: its sha256)."""
    digest = hashlib.sha256()
    for path in paths:
        try:
            with Path(path).open("rb") as f:
                for block in iter(lambda f=f: f.read(1 << 20), b""):
                    digest.update(block)
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read it ({exc.strerror})") from None
    digest.update(extra)
    return digest.hexdigest()


def align_texts(table: dict[str, str], item_tokens: np.ndarray) -> np.ndarray:
    """Texts in the dataset's item order: ``item_tokens`` is (n_items + 1,) with [0] the padding.

    Row 0 and items the table lacks get "" (no text).
    """
    tokens = np.asarray(item_tokens).tolist()
    return np.array([""] + [table.get(str(t), "") for t in tokens[1:]], dtype=str)


# --- formats ---------------------------------------------------------------------------------


def _read_movielens(spec: TextSpec) -> dict[str, str]:
    """``MovieID::Title::Genres`` (ml-1m, ml-10m movies.dat), genres '|'-separated."""
    where, lines = _lines(spec)
    table = _Table(where)
    for lineno, line in lines:
        if not line.strip():
            continue
        fields = line.split("::")
        if len(fields) != 3 or not fields[0].strip():
            raise DataFormatError(
                where,
                lineno,
                f"{len(fields)} '::'-separated field(s) in {line!r}",
                "'MovieID::Title::Genres'",
            )
        genres = [g for g in fields[2].strip().split("|") if g and g != "(no genres listed)"]
        table.add(fields[0].strip(), _title_with_genres(fields[1], genres), lineno)
    return table.finish()


def _read_grouplens_item(spec: TextSpec) -> dict[str, str]:
    """ml-100k u.item: ``id|title|release date|video release date|IMDb URL|19 genre flags``."""
    where, lines = _lines(spec)
    table = _Table(where)
    n = len(GROUPLENS_GENRES)
    for lineno, line in lines:
        if not line.strip():
            continue
        fields = line.split("|")
        if len(fields) < 4 + n or not fields[0].strip():
            raise DataFormatError(
                where,
                lineno,
                f"{len(fields)} '|'-separated field(s)",
                f"{4 + n}: id|title|release date|video release date|IMDb URL|{n} genre flags",
            )
        flags = [f.strip() for f in fields[-n:]]
        bad = next((f for f in flags if f not in ("0", "1")), None)
        if bad is not None:
            raise DataFormatError(where, lineno, f"genre flag {bad!r}", "0 or 1")
        title = "|".join(fields[1 : len(fields) - n - 3])  # a '|' inside a title survives
        genres = [g for g, f in zip(GROUPLENS_GENRES, flags, strict=True) if f == "1"]
        table.add(fields[0].strip(), _title_with_genres(title, genres), lineno)
    return table.finish()


def _read_recbole(spec: TextSpec) -> dict[str, str]:
    """RecBole atomic ``.item`` file: tab-separated, header of ``name:type`` fields."""
    where, lines = _lines(spec)
    first = next(lines, None)
    if first is None:
        raise DataFormatError(where, 1, "the file is empty", "a header line of 'name:type' fields")
    header = parse_header(where, first[1])
    id_col, cols = _columns(spec, where, header, "fields")
    table = _Table(where)
    for lineno, line in lines:
        if not line.strip():
            continue
        row = line.split("\t")
        if len(row) != len(header):
            raise DataFormatError(
                where,
                lineno,
                f"{len(row)} tab-separated field(s)",
                f"{len(header)}, as in the header",
            )
        item = row[id_col].strip()
        if not item:
            raise DataFormatError(where, lineno, f"an empty {spec.id}", "a non-empty item id")
        table.add(item, _join((header[c], row[c]) for c in cols), lineno)
    return table.finish()


def _read_csv(spec: TextSpec) -> dict[str, str]:
    """A delimited file with a header row; ``id`` names the id column, ``fields`` the text."""
    where, numbered = _lines(spec)
    lineno = 0

    def lines() -> Iterator[str]:
        nonlocal lineno
        for lineno, line in numbered:  # noqa: B007 - read by the error messages below
            yield line

    name = spec.member or str(spec.path)
    sep = spec.sep or ("\t" if name.lower().endswith(".tsv") else ",")
    sep = {"\\t": "\t", "tab": "\t"}.get(sep, sep)
    if len(sep) != 1:
        raise ConfigError(f"{where}: sep {spec.sep!r}: expected one character (e.g. ',' or tab)")
    rows = csv.reader(lines(), delimiter=sep)
    header = next(rows, None)
    if header is None:
        raise DataFormatError(where, 1, "the file is empty", "a header row")
    header = [h.strip() for h in header]
    id_col, cols = _columns(spec, where, header, "columns")
    table = _Table(where)
    for row in rows:
        if not row or not any(v.strip() for v in row):
            continue
        if len(row) != len(header):
            raise DataFormatError(
                where, lineno, f"{len(row)} field(s)", f"{len(header)}, as in the header"
            )
        item = row[id_col].strip()
        if not item:
            raise DataFormatError(where, lineno, f"an empty {spec.id!r}", "a non-empty item id")
        table.add(item, _join((header[c], row[c]) for c in cols), lineno)
    return table.finish()


def _read_jsonl(spec: TextSpec) -> dict[str, str]:
    """One JSON object per line; a field missing from one object is simply empty for it."""
    where, lines = _lines(spec)
    table = _Table(where)
    seen: dict[str, None] = {}  # every key met, in order, for the error messages
    expected = f"a JSON object with the key {spec.id!r}"
    for lineno, line in lines:
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            hint = ""
            if line.lstrip().startswith("{'"):
                hint = " (Python literals, as in the Amazon 2014 metadata? convert them to JSON)"
            raise DataFormatError(
                where, lineno, f"invalid JSON ({exc.msg}){hint}", "one JSON object per line"
            ) from None
        if not isinstance(record, dict):
            raise DataFormatError(where, lineno, f"a JSON {type(record).__name__}", expected)
        seen.update(dict.fromkeys(record))
        if spec.id not in record:
            if table.lines == 0:
                raise ConfigError(
                    f"{where}: no key {spec.id!r} for the item id (keys: {', '.join(record)}); "
                    "set the text table's id"
                )
            raise DataFormatError(where, lineno, f"no key {spec.id!r}", expected)
        item = _value_text(record[spec.id])
        if not item or isinstance(record[spec.id], (list, dict)):
            raise DataFormatError(
                where, lineno, f"item id {record[spec.id]!r}", "a non-empty string or number"
            )
        names = spec.fields if spec.fields is not None else [k for k in record if k != spec.id]
        table.add(item, _join((k, _value_text(record.get(k))) for k in names), lineno)
    missing = [f for f in spec.fields or [] if f not in seen]
    if missing:
        raise ConfigError(
            f"{where}: no object has the key(s) {', '.join(missing)} named in fields "
            f"(keys: {', '.join(seen) or 'none'})"
        )
    return table.finish()


_READERS: dict[str, Callable[[TextSpec], dict[str, str]]] = {
    "movielens": _read_movielens,
    "grouplens-item": _read_grouplens_item,
    "recbole": _read_recbole,
    "csv": _read_csv,
    "jsonl": _read_jsonl,
}


# --- helpers ---------------------------------------------------------------------------------


class _Table:
    """Collects texts; a repeated id keeps its first text (metadata dumps repeat items)."""

    def __init__(self, where: Path) -> None:
        self.where = where
        self.texts: dict[str, str] = {}
        self.first_line: dict[str, int] = {}
        self.lines = 0
        self.repeated: list[tuple[str, int]] = []

    def add(self, item: str, text: str, lineno: int) -> None:
        self.lines += 1
        if item in self.first_line:
            self.repeated.append((item, lineno))
            return
        self.first_line[item] = lineno
        text = text.strip()
        if text:
            self.texts[item] = text

    def finish(self) -> dict[str, str]:
        if self.repeated:
            item, lineno = self.repeated[0]
            log.warning(
                "%s: %d repeated item id(s) (first: %r on line %d, first seen on line %d); "
                "kept the first text of each",
                self.where,
                len(self.repeated),
                item,
                lineno,
                self.first_line[item],
            )
        return self.texts


def _title_with_genres(title: str, genres: list[str]) -> str:
    title = title.strip()
    return f"{title}; genres: {', '.join(genres)}" if genres and title else title


def _join(pairs: Iterable[tuple[str, str]]) -> str:
    """``"name: X; category: Y"``; empty values are left out."""
    return "; ".join(f"{name}: {value.strip()}" for name, value in pairs if value.strip())


def _value_text(value: Any) -> str:
    """A JSON value as text: lists joined with ', ' (flattened), null as empty."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ", ".join(t for t in (_value_text(v) for v in value) if t)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value).strip()


def _columns(spec: TextSpec, where: Path, header: list[str], noun: str) -> tuple[int, list[int]]:
    """Positions of the id column and the text columns; a ConfigError lists the header."""
    wanted = [spec.id, *(spec.fields or [])]
    missing = [name for name in wanted if name not in header]
    if missing:
        raise ConfigError(
            f"{where}: no {noun} {', '.join(repr(m) for m in missing)} in the header "
            f"({noun}: {', '.join(header)}); set the text table's id and fields"
        )
    id_col = header.index(spec.id)
    if spec.fields is None:
        return id_col, [c for c in range(len(header)) if c != id_col]
    return id_col, [header.index(f) for f in spec.fields]


def _lines(spec: TextSpec) -> tuple[Path, Iterator[tuple[int, str]]]:
    """(the name errors give, numbered lines) of the file, or of the zip member spec names."""
    assert spec.path is not None
    encoding = spec.text_encoding
    if spec.member is None:
        return spec.path, iter_lines(spec.path, encoding)
    where = Path(f"{spec.path} (member {spec.member})")
    try:
        archive = zipfile.ZipFile(spec.path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataFormatError(
            spec.path, None, f"not a readable zip file ({exc})", "a .zip"
        ) from None
    names = archive.namelist()
    if spec.member not in names:
        archive.close()
        shown = ", ".join(n for n in names if not n.endswith("/"))
        raise ConfigError(f"{spec.path}: no member {spec.member!r} (members: {shown})")
    return where, _member_lines(archive, spec.member, encoding, where)


def _member_lines(
    archive: zipfile.ZipFile, member: str, encoding: str, where: Path
) -> Iterator[tuple[int, str]]:
    with archive, archive.open(member) as stream:
        for lineno, raw in enumerate(stream, 1):
            if lineno == 1 and raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8) :]
            try:
                text = raw.decode(encoding)
            except UnicodeDecodeError as exc:
                raise DataFormatError(
                    where,
                    lineno,
                    f"byte {raw[exc.start]:#04x} is not valid {encoding}",
                    f"text in {encoding} (set the text table's encoding, e.g. latin-1)",
                ) from None
            yield lineno, text.rstrip("\r\n")
