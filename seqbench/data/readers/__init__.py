"""File formats seqbench reads; each module registers one reader under its format name."""

from seqbench.data.readers import amazon, csv, grouplens, pairs, recbole, sequences  # noqa: F401
from seqbench.data.readers.base import (
    READERS,
    ProgressFn,
    Reader,
    ReaderOptions,
    get_reader,
    parse_options,
)

__all__ = ["READERS", "ProgressFn", "Reader", "ReaderOptions", "get_reader", "parse_options"]
