"""``amazon``: Amazon review files, one JSON object per line, plain or gzip.

The 2014 files (McAuley et al.; ``reviews_<Category>_5.json.gz`` are the 5-core subsets) and the
2018 files name the fields ``reviewerID``, ``asin``, ``unixReviewTime`` and ``overall``.
"""

from __future__ import annotations

import json
from pathlib import Path

from seqbench.data.raw import InteractionAccumulator, RawInteractions
from seqbench.data.readers.base import (
    ProgressFn,
    Reader,
    ReaderOptions,
    iter_lines,
    register_reader,
)
from seqbench.errors import DataFormatError


class AmazonOptions(ReaderOptions):
    user_field: str = "reviewerID"
    item_field: str = "asin"
    time_field: str = "unixReviewTime"
    rating_field: str = "overall"


@register_reader
class AmazonReader(Reader):
    name = "amazon"
    summary = "Amazon review JSON lines, plain or .gz (reviewerID, asin, unixReviewTime, overall)"
    Options = AmazonOptions

    def read(
        self, path: Path, options: AmazonOptions, progress: ProgressFn | None = None
    ) -> RawInteractions:
        acc = InteractionAccumulator(has_time=True, has_rating=True)
        keys = (options.user_field, options.item_field, options.time_field, options.rating_field)
        expected = "a JSON object with " + ", ".join(keys)
        for lineno, line in iter_lines(path, options.encoding, progress):
            if not line.strip():
                continue
            try:
                review = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataFormatError(path, lineno, f"invalid JSON ({exc.msg})", expected) from None
            if not isinstance(review, dict):
                raise DataFormatError(path, lineno, f"a JSON {type(review).__name__}", expected)
            missing = [k for k in keys if k not in review]
            if missing:
                raise DataFormatError(path, lineno, f"no field {', '.join(missing)}", expected)
            user, item, time, rating = (review[k] for k in keys)
            if not isinstance(time, (int, float)) or not isinstance(rating, (int, float)):
                raise DataFormatError(
                    path, lineno, f"{keys[2]}={time!r}, {keys[3]}={rating!r}", "numbers"
                )
            acc.add(str(user), str(item), float(time), float(rating))
        return acc.finish()
