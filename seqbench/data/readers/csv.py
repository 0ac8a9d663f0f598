"""``csv``: a delimited file with a header row; user, item and time columns are named by options.

Timestamps may be numbers (any unit; only their order matters) or ISO-8601 date-times, which are
converted to POSIX seconds (naive ones read as UTC).
"""

from __future__ import annotations

import csv
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator

from seqbench.data.raw import InteractionAccumulator, RawInteractions
from seqbench.data.readers.base import (
    ProgressFn,
    Reader,
    ReaderOptions,
    Separator,
    find_columns,
    iter_lines,
    parse_number,
    register_reader,
)
from seqbench.errors import DataFormatError


def _one_character(value: str) -> str:
    if len(value) != 1:
        raise ValueError(f"the csv separator must be one character, got {value!r}")
    return value


class CsvOptions(ReaderOptions):
    sep: Annotated[Separator, AfterValidator(_one_character)] = ","
    user_col: str = "user_id"
    item_col: str = "item_id"
    time_col: str = "timestamp"
    rating_col: str | None = None


@register_reader
class CsvReader(Reader):
    name = "csv"
    summary = "delimited file with a header; columns named by options user_col, item_col, time_col"
    Options = CsvOptions

    def read(
        self, path: Path, options: CsvOptions, progress: ProgressFn | None = None
    ) -> RawInteractions:
        numbered = iter_lines(path, options.encoding, progress)
        lineno = 0

        def lines():
            nonlocal lineno
            for lineno, line in numbered:  # noqa: B007 - read by the error messages below
                yield line

        rows = csv.reader(lines(), delimiter=options.sep)
        header = next(rows, None)
        if header is None:
            raise DataFormatError(path, 1, "the file is empty", "a header row")
        wanted = {
            "user_col": options.user_col,
            "item_col": options.item_col,
            "time_col": options.time_col,
        }
        if options.rating_col is not None:
            wanted["rating_col"] = options.rating_col
        col = find_columns(path, header, wanted)
        u, i, t, r = col["user_col"], col["item_col"], col["time_col"], col.get("rating_col")
        acc = InteractionAccumulator(has_time=True, has_rating=r is not None)
        first_kind = None
        n = len(header)
        for row in rows:
            if not row:
                continue
            if len(row) != n:
                raise DataFormatError(
                    path, lineno, f"{len(row)} field(s)", f"{n}, as in the header"
                )
            if not row[u] or not row[i]:
                raise DataFormatError(path, lineno, "an empty user or item id", "non-empty ids")
            rating = 0.0
            if r is not None:
                rating = parse_number(row[r], path, lineno, options.rating_col or "rating")
            time, kind = _time(row[t], path, lineno)
            first_kind = first_kind or kind
            if kind != first_kind:
                raise DataFormatError(
                    path,
                    lineno,
                    f"{kind} timestamp {row[t]!r} among {first_kind} ones",
                    f"{first_kind}s throughout (mixed, they would sort wrongly)",
                )
            acc.add(row[u], row[i], time, rating)
        return acc.finish()


def _time(value: str, path: Path, lineno: int) -> tuple[float, str]:
    """(POSIX-like seconds, "number" or "date-time"); mixing the two would misorder the log."""
    try:
        float(value)
    except ValueError:
        pass
    else:
        return parse_number(value, path, lineno, "timestamp"), "number"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise DataFormatError(
            path, lineno, f"timestamp {value!r}", "a number or an ISO-8601 date-time"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp(), "date-time"
