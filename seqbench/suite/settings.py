"""Checks of the single tables: ``[suite]``, ``[protocol]``, ``[train]`` and ``[eval]``."""

from __future__ import annotations

from typing import Any

from seqbench.cells import EvalSettings, TrainSettings
from seqbench.suite.context import Context
from seqbench.suite.schemas import SuiteSection, expectations


def check_head(ctx: Context) -> SuiteSection | None:
    """``[suite]``: name and seeds (None when it is missing or unusable)."""
    if "suite" not in ctx.data:
        ctx.problems.add(("suite",), "missing", "a [suite] table with name and seeds")
        return None
    head = ctx.problems.validate(
        SuiteSection, ctx.table("suite"), ("suite",), expectations("suite")
    )
    return head if isinstance(head, SuiteSection) else None


def check_protocol(ctx: Context) -> dict[str, Any]:
    """``[protocol]``: the suite-wide overrides of the protocol's defaults (the good ones)."""
    return ctx.protocol_overrides(ctx.table("protocol"), {}, ("protocol",))


def check_train(ctx: Context) -> TrainSettings:
    """``[train]`` (its defaults where it has problems, so that sweeps can still be checked)."""
    train = ctx.problems.validate(TrainSettings, ctx.table("train"), ("train",))
    return train if isinstance(train, TrainSettings) else TrainSettings()


def check_eval(ctx: Context) -> EvalSettings | None:
    """``[eval]`` (None when unusable: then no cells are built)."""
    evaluation = ctx.problems.validate(
        EvalSettings, ctx.table("eval"), ("eval",), expectations("eval")
    )
    return evaluation if isinstance(evaluation, EvalSettings) else None
