"""``recbole``: RecBole atomic ``.inter`` files (tab-separated, header ``name:type``).

A folder is searched for its single ``*.inter`` file (RecBole's ``<name>/<name>.inter``). The
user, item and time columns are named by options with RecBole's defaults (``USER_ID_FIELD``,
``ITEM_ID_FIELD``, ``TIME_FIELD``); a rating column is read when present (blank = missing).
As in RecBole, rows whose user or item id pandas would read as missing are dropped, with a
warning. Unlike RecBole, a missing or non-numeric timestamp is an error, not filled with the mean.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

from seqbench.data.raw import InteractionAccumulator, RawInteractions
from seqbench.data.readers.base import (
    ProgressFn,
    Reader,
    ReaderOptions,
    find_columns,
    iter_lines,
    parse_number,
    register_reader,
)
from seqbench.errors import ConfigError, DataFormatError

log = logging.getLogger(__name__)

_TYPES = ("token", "token_seq", "float", "float_seq")
# What pandas.read_csv reads as missing by default: RecBole then drops such rows
# (Dataset._filter_nan_user_or_item), so an item literally named "NA" is not an item there.
_MISSING = frozenset(
    ["", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
     "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"]
)  # fmt: skip


class RecBoleOptions(ReaderOptions):
    user_field: str = "user_id"
    item_field: str = "item_id"
    time_field: str = "timestamp"
    rating_field: str = "rating"  # read if the file has it; never required


@register_reader
class RecBoleReader(Reader):
    name = "recbole"
    summary = "RecBole atomic .inter file (or a folder holding one), with timestamps"
    Options = RecBoleOptions

    def resolve(self, path: Path, options: RecBoleOptions) -> Path:
        if path.is_dir():
            found = sorted(path.glob("*.inter"))
            if len(found) != 1:
                names = ", ".join(p.name for p in found) or "none"
                raise ConfigError(
                    f"{path}: expected exactly one *.inter file in this folder, found {names}; "
                    "give the file's path instead"
                )
            return found[0]
        return super().resolve(path, options)

    def read(
        self, path: Path, options: RecBoleOptions, progress: ProgressFn | None = None
    ) -> RawInteractions:
        lines = iter_lines(path, options.encoding, progress)
        header = next(lines, None)
        if header is None:
            raise DataFormatError(
                path, 1, "the file is empty", "a header line of 'name:type' fields"
            )
        columns = parse_header(path, header[1])
        wanted = {
            "user_field": options.user_field,
            "item_field": options.item_field,
            "time_field": options.time_field,
        }
        if options.rating_field in columns:  # optional: read when present
            wanted["rating_field"] = options.rating_field
        col = find_columns(path, columns, wanted)
        u, i, t = col["user_field"], col["item_field"], col["time_field"]
        r = col.get("rating_field")
        acc = InteractionAccumulator(has_time=True, has_rating=r is not None)
        n = len(columns)
        dropped = 0
        for lineno, line in lines:
            if not line:
                continue
            fields = line.split("\t")
            if len(fields) != n:
                raise DataFormatError(
                    path, lineno, f"{len(fields)} tab-separated field(s)", f"{n}, as in the header"
                )
            if fields[u] in _MISSING or fields[i] in _MISSING:
                dropped += 1
                continue
            time = parse_number(fields[t], path, lineno, options.time_field)
            rating = 0.0
            if r is not None:  # a blank rating is missing, not an error (RecBole reads NaN)
                rating = (
                    parse_number(fields[r], path, lineno, options.rating_field)
                    if fields[r]
                    else math.nan
                )
            acc.add(fields[u], fields[i], time, rating)
        if dropped:
            log.warning(
                "%s: dropped %d row(s) whose user or item id is missing (empty, NA, null, …), "
                "as RecBole does",
                path,
                dropped,
            )
        return acc.finish()


def parse_header(path: Path, line: str) -> list[str]:
    """The field names of an atomic file's header line of ``name:type`` fields."""
    names = []
    for field in line.split("\t"):
        name, _, kind = field.partition(":")
        if not name or kind not in _TYPES:
            raise DataFormatError(
                path,
                1,
                f"header field {field!r}",
                f"'name:type' with type one of {', '.join(_TYPES)}",
            )
        names.append(name)
    return names
