"""What every reader shares: the registry, options validation, and line-numbered file reading."""

from __future__ import annotations

import codecs
import gzip
import math
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, ClassVar

from pydantic import AfterValidator, BaseModel, ConfigDict

from seqbench.data.raw import RawInteractions
from seqbench.errors import ConfigError, DataFormatError, UnknownNameError
from seqbench.validation import validate_options

#: Called now and then while a file is read, with (bytes read, total bytes).
ProgressFn = Callable[[int, int], None]

_PROGRESS_EVERY = 1 << 15  # lines


def _known_encoding(name: str) -> str:
    try:
        codecs.lookup(name)
    except LookupError:
        raise ValueError(f"unknown text encoding {name!r} (e.g. utf-8, latin-1)") from None
    return name


def _separator(value: str) -> str:
    """A field separator; '\\t' and 'tab' spell a tab (shells make a real one awkward)."""
    value = {"\\t": "\t", "tab": "\t"}.get(value, value)
    if not value:
        raise ValueError("a separator cannot be empty")
    return value


Encoding = Annotated[str, AfterValidator(_known_encoding)]
Separator = Annotated[str, AfterValidator(_separator)]


class ReaderOptions(BaseModel):
    """Options every reader accepts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    encoding: Encoding = "utf-8"


class Reader:
    """A file format. Subclasses set ``name``, ``summary``, ``Options`` and implement ``read``.

    ``resolve`` maps the user's path (a file, or a folder the format knows how to search) to the
    one file that is read; its bytes are what the cache key and the recorded sha256 cover.
    """

    name: ClassVar[str]
    summary: ClassVar[str]
    Options: ClassVar[type[ReaderOptions]] = ReaderOptions
    #: Bump when the same file and options would be read differently (part of the cache key).
    version: ClassVar[int] = 1

    def resolve(self, path: Path, options: ReaderOptions) -> Path:
        if path.is_dir():
            raise ConfigError(
                f"{path}: is a folder; the {self.name!r} format reads one file: give its path"
            )
        _must_exist(path)
        return path

    def read(
        self, path: Path, options: ReaderOptions, progress: ProgressFn | None = None
    ) -> RawInteractions:
        raise NotImplementedError


READERS: dict[str, Reader] = {}


def register_reader(cls: type[Reader]) -> type[Reader]:
    """Class decorator: make a format available under ``cls.name``."""
    if cls.name in READERS:
        raise RuntimeError(f"reader {cls.name!r} registered twice")
    READERS[cls.name] = cls()
    return cls


def get_reader(name: str) -> Reader:
    try:
        return READERS[name]
    except KeyError:
        raise UnknownNameError("format", name, READERS) from None


def parse_options(reader: Reader, options: dict[str, object], where: str) -> ReaderOptions:
    """Validate ``options`` for ``reader``; every problem is reported at once, naming the key."""
    return validate_options(reader.Options, options, f"{where}: format {reader.name!r}")


def iter_lines(
    path: Path, encoding: str, progress: ProgressFn | None = None
) -> Iterator[tuple[int, str]]:
    """Yield (1-based line number, line without its end-of-line) of a text file, gzip or not.

    Undecodable bytes and a truncated gzip stream become a :class:`DataFormatError` that names
    the line.
    """
    total = path.stat().st_size
    lineno = 0
    with path.open("rb") as raw:
        gzipped = raw.read(2) == b"\x1f\x8b"
        raw.seek(0)
        stream = gzip.GzipFile(fileobj=raw) if gzipped else raw
        try:
            for lineno, line in enumerate(stream, 1):
                if lineno == 1 and line.startswith(codecs.BOM_UTF8):
                    line = line[len(codecs.BOM_UTF8) :]  # a byte-order mark is not data
                try:
                    text = line.decode(encoding)
                except UnicodeDecodeError as exc:
                    raise DataFormatError(
                        path,
                        lineno,
                        f"byte {line[exc.start]:#04x} is not valid {encoding}",
                        f"text in {encoding} (set the reader option encoding, e.g. latin-1)",
                    ) from None
                if progress is not None and lineno % _PROGRESS_EVERY == 0:
                    progress(raw.tell(), total)
                text = text.rstrip("\r\n")
                if "\r" in text:
                    raise DataFormatError(
                        path,
                        lineno,
                        "a carriage return inside the line (old Mac line endings?)",
                        "lines that end with \\n or \\r\\n",
                    )
                yield lineno, text
        except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
            raise DataFormatError(
                path,
                lineno + 1,
                f"the gzip stream is truncated or corrupt ({exc})",
                "a whole gzip file",
            ) from None
    if progress is not None:
        progress(total, total)


def _must_exist(path: Path) -> None:
    if not path.exists():
        raise ConfigError(f"{path}: no such file")


def find_columns(path: Path, header: list[str], wanted: dict[str, str]) -> dict[str, int]:
    """Position of each wanted column ({option name: column name}) in the header on line 1."""
    for option, column in wanted.items():
        if column not in header:
            raise DataFormatError(
                path,
                1,
                f"no column {column!r} in the header (columns: {', '.join(header)})",
                f"a column named {column!r} (or set the reader option {option})",
            )
    return {option: header.index(column) for option, column in wanted.items()}


def parse_number(value: str, path: Path, lineno: int, column: str) -> float:
    """float(value) if finite, or a DataFormatError naming the line and the column."""
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise DataFormatError(path, lineno, f"{column} {value!r}", "a finite number")
    return number
