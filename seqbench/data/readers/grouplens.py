"""``grouplens``: MovieLens rating files, ``user item rating timestamp`` per line.

ml-100k ``u.data`` is tab-separated, ml-1m ``ratings.dat`` uses ``::``. The separator follows
from the file name unless the ``sep`` option sets it; a folder is searched for those two names.
"""

from __future__ import annotations

from pathlib import Path

from seqbench.data.raw import InteractionAccumulator, RawInteractions
from seqbench.data.readers.base import (
    Encoding,
    ProgressFn,
    Reader,
    ReaderOptions,
    Separator,
    iter_lines,
    parse_number,
    register_reader,
)
from seqbench.errors import ConfigError, DataFormatError

_KNOWN_FILES = {"u.data": "\t", "ratings.dat": "::"}


class GroupLensOptions(ReaderOptions):
    sep: Separator | None = None  # None: by file name (u.data: tab, *.dat: '::')
    encoding: Encoding = (
        "latin-1"  # MovieLens files predate UTF-8; ids and numbers are ASCII anyway
    )


@register_reader
class GroupLensReader(Reader):
    name = "grouplens"
    summary = (
        "MovieLens 'user item rating timestamp' (ml-100k u.data: tab; ml-1m ratings.dat: '::')"
    )
    Options = GroupLensOptions

    def resolve(self, path: Path, options: GroupLensOptions) -> Path:
        if path.is_dir():
            found = [path / n for n in _KNOWN_FILES if (path / n).is_file()]
            if len(found) != 1:
                raise ConfigError(
                    f"{path}: expected exactly one of {', '.join(_KNOWN_FILES)} in this folder, "
                    f"found {len(found)}; give the file's path instead"
                )
            return found[0]
        return super().resolve(path, options)

    def read(
        self, path: Path, options: GroupLensOptions, progress: ProgressFn | None = None
    ) -> RawInteractions:
        sep = options.sep or _separator_for(path)
        acc = InteractionAccumulator(has_time=True, has_rating=True)
        expected = f"'user{sep}item{sep}rating{sep}timestamp'".replace("\t", "<TAB>")
        for lineno, line in iter_lines(path, options.encoding, progress):
            if not line.strip():
                continue
            fields = line.split(sep)
            if len(fields) != 4 or not fields[0] or not fields[1]:
                raise DataFormatError(path, lineno, f"{len(fields)} field(s) in {line!r}", expected)
            rating = parse_number(fields[2], path, lineno, "rating")
            time = parse_number(fields[3], path, lineno, "timestamp")
            acc.add(fields[0], fields[1], time, rating)
        return acc.finish()


def _separator_for(path: Path) -> str:
    if path.name in _KNOWN_FILES:
        return _KNOWN_FILES[path.name]
    if path.suffix == ".dat":
        return "::"
    raise ConfigError(
        f"{path}: cannot tell the separator from the file name (u.data: tab, *.dat: '::'); "
        "set the reader option sep, e.g. -o sep=::"
    )
