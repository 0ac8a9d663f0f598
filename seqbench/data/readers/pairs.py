"""``pairs``: one ``user item`` pair per line, in chronological order (SASRec's data files)."""

from __future__ import annotations

from pathlib import Path

from seqbench.data.raw import InteractionAccumulator, RawInteractions
from seqbench.data.readers.base import (
    ProgressFn,
    Reader,
    ReaderOptions,
    Separator,
    iter_lines,
    register_reader,
)
from seqbench.errors import DataFormatError


class PairsOptions(ReaderOptions):
    sep: Separator | None = None  # None: any run of whitespace


@register_reader
class PairsReader(Reader):
    name = "pairs"
    summary = "one 'user item' pair per line, chronological (SASRec's files, e.g. Video.txt)"
    Options = PairsOptions

    def read(
        self, path: Path, options: PairsOptions, progress: ProgressFn | None = None
    ) -> RawInteractions:
        acc = InteractionAccumulator()
        for lineno, line in iter_lines(path, options.encoding, progress):
            if not line.strip():
                continue
            fields = line.split(options.sep)
            if len(fields) != 2 or not all(fields):
                raise DataFormatError(
                    path, lineno, f"{len(fields)} field(s) in {line!r}", "exactly 'user item'"
                )
            acc.add(fields[0], fields[1])
        return acc.finish()
