"""The suite's top-level tables, in the order they are checked: the one list to extend.

Each :class:`Section` names a table and the function that checks it. A check reads
``ctx.data[name]`` (through ``ctx.table``/``ctx.array``), records every problem in
``ctx.problems`` and returns the resolved value, which later checks find in
``ctx.resolved[name]``. The order matters only for that: a check may use the sections above it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from seqbench.suite.context import Context
from seqbench.suite.datasets import check_datasets
from seqbench.suite.models import check_models
from seqbench.suite.settings import check_eval, check_head, check_protocol, check_train
from seqbench.suite.tune import check_tune


@dataclass(frozen=True)
class Section:
    name: str  # the TOML table
    check: Callable[[Context], Any]  # records problems; returns the resolved section


SECTIONS: tuple[Section, ...] = (
    Section("suite", check_head),
    Section("protocol", check_protocol),
    Section("train", check_train),
    Section("eval", check_eval),
    Section("datasets", check_datasets),
    Section("models", check_models),
    Section("tune", check_tune),
)

#: The names of the tables a suite may hold (anything else is an unknown table).
NAMES = tuple(section.name for section in SECTIONS)
