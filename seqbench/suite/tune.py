"""Tuning in the suite file: search spaces on ``[[models]]`` entries and the ``[tune]`` table.

A models entry says what to search with ``tune = { key = SPACE, … }`` over the namespace of
``sweep`` (a parameter of the model, a protocol key or a train key). A SPACE is a list of
values (a categorical choice) or a range table ``{ low, high[, log][, step] }`` (over integers
for an integer key, floats otherwise). Every value a space can produce is checked as
if it were set, so that a bad space fails here, with its line, and never mid-study: the list's
values one by one, a range's two ends.

``[tune]`` sets the budget and the search of every study (one study per models entry × ablation
× sweep point × dataset): ``trials``, ``timeout``, ``sampler``, ``seed``, ``pruner``, ``warmup``,
``startup_trials``, ``metric`` and the ``seeds`` a trial trains. This module stays light (no
Optuna): ``seqbench validate`` and ``seqbench run`` check tuning settings without importing it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from seqbench.cells import TrainSettings, _canonical_metric, canonical_json
from seqbench.data.protocol import Protocol
from seqbench.errors import closest
from seqbench.models.registry import ModelSpec
from seqbench.suite.context import Context
from seqbench.suite.locator import KeyPath
from seqbench.suite.problems import show
from seqbench.suite.schemas import ModelSection

SpaceTarget = Literal["params", "protocol", "train"]
Sampler = Literal["tpe", "random", "grid"]
Pruner = Literal["median", "hyperband", "none"]

#: Trials per study when ``[tune] trials`` is unset (the grid sampler: the whole grid).
DEFAULT_TRIALS = 20
#: Complete trials before the median pruner starts judging (Optuna's default).
DEFAULT_STARTUP_TRIALS = 5
RANGE_KEYS = ("low", "high", "log", "step")
SPACE_EXPECTED = (
    "a list of values to choose from, e.g. [32, 64, 128], or a range table "
    "{ low = 1e-4, high = 1e-2, log = true } (optional step = …)"
)


class Dimension(BaseModel):
    """One searched key: a categorical ``choices`` list, or a range ``low``..``high``
    (``integer`` when its ends and step are integers; ``log`` for a log-uniform search)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    choices: list[Any] | None = None
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    integer: bool = False

    def grid(self) -> list[Any] | None:
        """Every value of a finite dimension in order (None for a continuous range)."""
        if self.choices is not None:
            return list(self.choices)
        assert self.low is not None and self.high is not None
        if self.integer:
            step = int(self.step or 1)
            return list(range(int(self.low), int(self.high) + 1, step))
        if self.step is None:
            return None
        n = round((self.high - self.low) / self.step)
        return [_tidy(self.low + i * self.step) for i in range(n + 1)]

    def describe(self) -> str:
        """The space as the suite spells it (tables, legends)."""
        if self.choices is not None:
            return "{" + ", ".join(_text(v) for v in self.choices) + "}"
        ends = f"[{_text(self.low)}, {_text(self.high)}]"
        extra = " log" if self.log else ""
        extra += f" step {_text(self.step)}" if self.step is not None else ""
        return ends + extra


def _tidy(value: float) -> float:
    """A grid value without binary round-off (0.1 * 3 → 0.3)."""
    return float(f"{value:.12g}")


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return repr(value)
    return str(value) if not isinstance(value, str) else value


class RangeSpace(BaseModel):
    """The shape of a range table (values are checked afterwards)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    low: int | float
    high: int | float
    log: bool = False
    step: int | float | None = None


def _duration(value: Any) -> float | None:
    """``timeout``: seconds (a number) or a text such as 90s, 30m, 2h."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError("a duration: seconds, or a text such as 90s, 30m, 2h")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        match = re.fullmatch(r"\s*([0-9.]+)\s*([smh]?)\s*", str(value).lower())
        if match is None:
            raise ValueError("a duration: seconds, or a text such as 90s, 30m, 2h")
        try:
            seconds = float(match[1]) * {"": 1, "s": 1, "m": 60, "h": 3600}[match[2]]
        except ValueError:
            raise ValueError("a duration: seconds, or a text such as 90s, 30m, 2h") from None
    if not (seconds > 0 and math.isfinite(seconds)):
        raise ValueError("a positive duration")
    return seconds


class TuneSettings(BaseModel):
    """``[tune]``: the budget and search of each study (resolved by :func:`check_tune`: the
    ``None`` defaults below are filled in from ``[suite]``, ``[train]`` and the spaces)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    trials: int | None = Field(
        None,
        ge=1,
        description="complete + pruned trials per study (failed ones do not count); default "
        f"{DEFAULT_TRIALS}, the whole grid for the grid sampler",
    )
    timeout: Annotated[float | None, Field(description="seconds per study")] = None
    sampler: Sampler = Field("tpe", description="tpe (default), random or grid")
    seed: int | None = Field(None, ge=0, description="sampler seed; default the first seed")
    pruner: Pruner = Field("median", description="median (default), hyperband or none")
    warmup: int | None = Field(
        None, ge=0, description="epochs before the pruner judges; ≥ [train] stopping_step"
    )
    startup_trials: int = Field(
        DEFAULT_STARTUP_TRIALS, ge=0, description="complete trials before the pruner judges"
    )
    metric: str | None = Field(None, description="validation metric; default valid_metric")
    seeds: list[Annotated[int, Field(ge=0)]] | None = Field(
        None, min_length=1, description="seeds each trial trains; default the first seed"
    )

    @field_validator("timeout", mode="before")
    @classmethod
    def _timeout(cls, value: Any) -> float | None:
        return _duration(value)

    @field_validator("metric")
    @classmethod
    def _metric(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return _canonical_metric(value)  # one spelling: [train] valid_metric's

    @field_validator("seeds")
    @classmethod
    def _unique(cls, seeds: list[int] | None) -> list[int] | None:
        if seeds is not None and len(set(seeds)) != len(seeds):
            raise ValueError("each seed once")
        return seeds

    def describe_budget(self) -> str:
        """``20 trials, 30 min`` — what each study may spend."""
        text = f"{self.trials} trials" if self.trials is not None else "the whole grid"
        if self.timeout is not None:
            text += f", at most {_seconds_text(self.timeout)}"
        return text


def _seconds_text(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g} h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"


# ------------------------------------------------------------------------- models entries


def check_space(
    ctx: Context,
    spec: ModelSpec,
    section: ModelSection,
    protocol: dict[str, Any],
    train: TrainSettings,
    where: KeyPath,
    sweep_targets: Mapping[str, str],
) -> tuple[dict[str, Dimension], dict[str, SpaceTarget]]:
    """A models entry's ``tune`` table: every key placed (params, protocol or train) and
    every value it can take checked as if set; ablations that switch a searched parameter
    off are errors, as for sweeps."""
    from seqbench.suite.models import _sweep_value  # one rule for "checked as if set"

    problems = ctx.problems
    space: dict[str, Dimension] = {}
    targets: dict[str, SpaceTarget] = {}
    param_fields = list(spec.params.model_fields)
    for key, value in section.tune.items():
        path = (*where, "tune", key)
        target: SpaceTarget
        if key in spec.params.model_fields:
            target = "params"
            if key in section.params:
                problems.add(
                    path,
                    f"{key!r} is both set in params and tuned",
                    "it in one of them (tuning searches it; params fixes it)",
                )
                continue
        elif key in Protocol.model_fields:
            target = "protocol"
        elif key in TrainSettings.model_fields:
            target = "train"
        else:
            known = [*param_fields, *Protocol.model_fields, *TrainSettings.model_fields]
            problems.add(
                path,
                "unknown key to tune",
                f"a parameter of model {spec.name!r} ({', '.join(param_fields) or 'none'}), "
                f"a protocol key ({', '.join(Protocol.model_fields)}) or a train key "
                f"({', '.join(TrainSettings.model_fields)})",
                closest(key, known),
            )
            continue
        if key in sweep_targets:
            problems.add(
                path,
                f"{key!r} is both swept and tuned",
                "it under sweep (every value trained) or under tune (searched), not both",
            )
            continue
        dimension = _dimension(ctx, value, path, _is_integer(spec, target, key))
        if dimension is None:
            continue

        def check(v: Any, at: KeyPath, target: str = target, key: str = key) -> None:
            _sweep_value(ctx, spec, target, key, v, section, protocol, train, at)

        if dimension.choices is not None:
            for j, choice in enumerate(dimension.choices):
                check(choice, (*path, j))
        else:
            check(value["low"], (*path, "low"))  # as written: 5.0 for an integer is an error
            check(value["high"], (*path, "high"))
        space[key], targets[key] = dimension, target
    for ablation in section.ablations:
        for key in spec.disables.get(ablation, ()):
            if targets.get(key) == "params":
                problems.add(
                    (*where, "tune", key),
                    f"tuning {key!r} with ablation {ablation!r}, which switches off what "
                    f"{key!r} configures (every value would train the same model)",
                    f"ablation {ablation!r} in a models entry of its own, without {key!r} in "
                    "its tune table",
                )
    return space, targets


def _is_integer(spec: ModelSpec, target: str, key: str) -> bool:
    """Whether the key holds integers only (its range is then searched over integers; a
    float key is searched over floats even when the range's ends are written as integers)."""
    import types
    import typing

    schema: type[BaseModel] = {
        "params": spec.params,
        "protocol": Protocol,
        "train": TrainSettings,
    }[target]
    annotation = schema.model_fields[key].annotation
    union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
    kinds = set(typing.get_args(annotation)) if union else {annotation}
    return int in kinds and float not in kinds


def _dimension(ctx: Context, value: Any, path: KeyPath, integer: bool) -> Dimension | None:
    problems = ctx.problems
    if isinstance(value, list):
        if not value:
            problems.add(path, "got []", SPACE_EXPECTED)
            return None
        seen: set[str] = set()
        ok = True
        for j, choice in enumerate(value):
            text = canonical_json(choice)
            if text in seen:
                problems.add((*path, j), f"{show(choice)} is listed twice", "distinct values")
                ok = False
            seen.add(text)
        return Dimension(choices=list(value)) if ok else None
    if not isinstance(value, dict):
        problems.add(path, f"got {show(value)}", SPACE_EXPECTED)
        return None
    try:
        shape = RangeSpace.model_validate(value, strict=True)
    except ValidationError as exc:
        problems.add_errors(exc, path, RANGE_KEYS, expected={"low": "a number", "high": "a number"})
        return None
    low, high, step = shape.low, shape.high, shape.step
    bad = len(problems)
    if not math.isfinite(low) or not math.isfinite(high) or not low < high:
        problems.add(path, f"low = {show(low)}, high = {show(high)}", "finite numbers, low < high")
    if shape.log and low <= 0:
        problems.add((*path, "low"), f"got {show(low)} with log = true", "a number > 0")
    if step is not None:
        if shape.log:
            problems.add((*path, "step"), "step with log = true", "one of them")
        elif not step > 0:
            problems.add((*path, "step"), f"got {show(step)}", "a number > 0")
        elif low < high and not _divides(high - low, step):
            problems.add(
                (*path, "step"),
                f"step {show(step)} does not divide high − low = {show(high - low)}",
                "a step that reaches high from low in whole steps",
            )
    if len(problems) > bad:
        return None
    if integer and step is not None and not float(step).is_integer():
        problems.add((*path, "step"), f"got {show(step)}", "an integer step for an integer key")
        return None
    return Dimension(
        low=float(low),
        high=float(high),
        log=shape.log,
        step=None if step is None else float(step),
        integer=integer,
    )


def _divides(span: float, step: float) -> bool:
    n = span / step
    return abs(n - round(n)) <= 1e-9 * max(1.0, abs(n))


# ------------------------------------------------------------------------- [tune]


def check_tune(ctx: Context) -> TuneSettings | None:
    """``[tune]`` checked and resolved: the defaults filled in from ``[suite]`` (seed, seeds)
    and ``[train]`` (metric, warm-up); the grid sampler's spaces must be finite and hold at
    least ``trials`` points. None when the suite has no search space and no ``[tune]``."""
    spaces = [(i, plan) for i, plan in ctx.resolved.get("models") or [] if plan.tune]
    if "tune" not in ctx.data and not spaces:
        return None
    problems = ctx.problems
    settings = problems.validate(TuneSettings, ctx.table("tune"), ("tune",))
    if not isinstance(settings, TuneSettings):
        return None
    head = ctx.resolved.get("suite")
    train: TrainSettings = ctx.resolved["train"]
    evaluation = ctx.resolved.get("eval")
    metric = settings.metric or train.valid_metric
    computed = [train.valid_metric, *(evaluation.metrics if evaluation is not None else [])]
    if metric not in computed:
        problems.add(
            ("tune", "metric"),
            f"{metric!r} is not computed on validation",
            f"[train] valid_metric or one of [eval] metrics ({', '.join(dict.fromkeys(computed))})",
            closest(metric, computed),
        )
    warmup = settings.warmup if settings.warmup is not None else train.stopping_step
    if warmup < train.stopping_step:
        problems.add(
            ("tune", "warmup"),
            f"{warmup} epochs is shorter than the early-stopping patience ([train] "
            f"stopping_step = {train.stopping_step}): the pruner would end trials that early "
            "stopping still waits for",
            f"warmup ≥ {train.stopping_step}",
        )
    trials = settings.trials
    if settings.sampler == "grid":
        for i, plan in spaces:
            sizes = {key: dim.grid() for key, dim in plan.tune.items()}
            continuous = [key for key, values in sizes.items() if values is None]
            if continuous:
                for key in continuous:
                    problems.add(
                        ("models", i, "tune", key),
                        "a continuous range cannot be searched by the grid sampler",
                        "a list of values, an integer range, or a range with step",
                    )
                continue
            size = math.prod(len(values or []) for values in sizes.values())
            if trials is not None and trials > size:
                problems.add(
                    ("tune", "trials"),
                    f"{trials} trials, and the grid of models[{i}] has {size} points (the grid "
                    "sampler never repeats a point)",
                    f"trials ≤ {size}, or leave trials unset (the whole grid)",
                )
    elif trials is None:
        trials = DEFAULT_TRIALS
    seeds = settings.seeds or (head.seeds[:1] if head is not None else [0])
    seed = settings.seed if settings.seed is not None else seeds[0]
    return settings.model_copy(
        update={"trials": trials, "metric": metric, "warmup": warmup, "seeds": seeds, "seed": seed}
    )


def grid_points(space: Mapping[str, Dimension]) -> list[dict[str, Any]]:
    """Every point of a finite space, first key slowest (the grid sampler's points)."""
    import itertools

    keys = list(space)
    values = [space[k].grid() or [] for k in keys]
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*values)]
