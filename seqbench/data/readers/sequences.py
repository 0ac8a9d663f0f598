"""``sequences``: one line per user, ``user item item …``, items oldest first.

The S3-Rec / FMLP-Rec files (Beauty.txt, Video_Games.txt) and ml-1m.seq.txt use it. There are
no timestamps: the order on the line is the chronological order.
"""

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


class SequencesOptions(ReaderOptions):
    sep: Separator | None = None  # None: any run of whitespace (S3-Rec lines may end with a space)


@register_reader
class SequencesReader(Reader):
    name = "sequences"
    summary = "one line per user: 'user item item …', oldest first (S3-Rec/FMLP-Rec files)"
    Options = SequencesOptions

    def read(
        self, path: Path, options: SequencesOptions, progress: ProgressFn | None = None
    ) -> RawInteractions:
        acc = InteractionAccumulator()
        first_line: dict[str, int] = {}
        for lineno, line in iter_lines(path, options.encoding, progress):
            tokens = [t for t in line.split(options.sep) if t]
            if not tokens:
                continue
            if len(tokens) < 2:
                raise DataFormatError(
                    path, lineno, f"user {tokens[0]!r} has no items", "'user item [item …]'"
                )
            user = tokens[0]
            if user in first_line:
                raise DataFormatError(
                    path,
                    lineno,
                    f"user {user!r} already has a line (line {first_line[user]})",
                    "one line per user",
                )
            first_line[user] = lineno
            acc.add_sequence(user, tokens[1:])
        return acc.finish()
