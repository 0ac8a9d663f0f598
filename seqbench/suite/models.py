"""``[[models]]``: each entry's model, parameters, ablations and sweep, checked against the
model registry; every sweep value is checked as if it were set."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from seqbench.cells import TrainSettings, canonical_json
from seqbench.data.protocol import Protocol
from seqbench.errors import closest
from seqbench.models.registry import ModelParams, ModelSpec
from seqbench.suite.context import Context
from seqbench.suite.locator import KeyPath
from seqbench.suite.problems import expected_of, show
from seqbench.suite.resolved import ModelPlan, SweepTarget
from seqbench.suite.schemas import ModelSection, expectations
from seqbench.suite.tune import check_space


def check_models(ctx: Context) -> list[tuple[int, ModelPlan]]:
    """Every good ``[[models]]`` entry, with its index, resolved (parameter defaults filled)."""
    registry = ctx.registry
    return [
        m for i, entry in ctx.array("models") if (m := _model(ctx, i, entry, registry)) is not None
    ]


def _model(
    ctx: Context, i: int, entry: dict[str, Any], models: Mapping[str, ModelSpec]
) -> tuple[int, ModelPlan] | None:
    where: KeyPath = ("models", i)
    problems = ctx.problems
    ok = len(problems)
    section = problems.validate(ModelSection, entry, where, expectations("models"))
    if not isinstance(section, ModelSection):
        return None
    spec = models.get(section.model)
    if spec is None:
        problems.add(
            (*where, "model"),
            f"unknown model {section.model!r}",
            f"one of {', '.join(sorted(models))}",
            closest(section.model, models),
        )
        return None
    params = _params(ctx, spec, section.params, (*where, "params"))
    for j, ablation in enumerate(section.ablations):
        if ablation not in spec.ablations:
            problems.add(
                (*where, "ablations", j),
                f"model {spec.name!r} has no ablation {ablation!r}",
                f"one of {', '.join(spec.ablations)}",
                closest(ablation, spec.ablations),
            )
    protocol: dict[str, Any] = ctx.resolved["protocol"]
    train: TrainSettings = ctx.resolved["train"]
    targets = _sweep(ctx, spec, section, protocol, train, (*where, "sweep"))
    _sweep_disabled(ctx, spec, section, targets, where)
    space, space_targets = check_space(ctx, spec, section, protocol, train, where, targets)
    if len(problems) > ok or params is None:
        return None
    return i, ModelPlan(
        model=spec.name,
        name=section.name,
        params=params.model_dump(mode="json"),
        overrides=dict(section.params),
        ablations=list(section.ablations),
        sweep={k: list(v) for k, v in section.sweep.items()},
        sweep_targets=targets,
        role=section.role,
        tune=space,
        tune_targets=space_targets,
    )


def _params(
    ctx: Context, spec: ModelSpec, values: dict[str, Any], where: KeyPath
) -> ModelParams | None:
    try:
        return spec.params.model_validate(values, strict=True)
    except ValidationError as exc:
        ctx.problems.add_errors(exc, where, spec.params.model_fields)
        return None


def _sweep_disabled(
    ctx: Context,
    spec: ModelSpec,
    section: ModelSection,
    targets: Mapping[str, str],
    where: KeyPath,
) -> None:
    """A swept parameter with an ablation that switches off what it configures would train
    the same model once per value under different labels: an error, not a duplicate."""
    for ablation in section.ablations:
        for key in spec.disables.get(ablation, ()):
            if targets.get(key) == "params":
                ctx.problems.add(
                    (*where, "sweep", key),
                    f"sweeping {key!r} with ablation {ablation!r}, which switches off what "
                    f"{key!r} configures (every value would train the same model)",
                    f"ablation {ablation!r} in a models entry of its own, without this sweep",
                )


def _sweep(
    ctx: Context,
    spec: ModelSpec,
    section: ModelSection,
    protocol: dict[str, Any],
    train: TrainSettings,
    where: KeyPath,
) -> dict[str, SweepTarget]:
    """Which section each sweep key belongs to; every value is checked as if set."""
    problems = ctx.problems
    targets: dict[str, SweepTarget] = {}
    param_fields = list(spec.params.model_fields)
    for key, values in section.sweep.items():
        path = (*where, key)
        target: SweepTarget
        if key in spec.params.model_fields:
            target = "params"
            if key in section.params:
                problems.add(
                    path,
                    f"{key!r} is both set in params and swept",
                    "it in one of them (a list-valued parameter is a single value in "
                    "params, a sweep only under sweep)",
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
                "unknown sweep key",
                f"a parameter of model {spec.name!r} ({', '.join(param_fields) or 'none'}), "
                f"a protocol key ({', '.join(Protocol.model_fields)}) or a train key "
                f"({', '.join(TrainSettings.model_fields)})",
                closest(key, known),
            )
            continue
        targets[key] = target
        seen: set[str] = set()
        for j, value in enumerate(values):
            text = canonical_json(value)
            if text in seen:
                problems.add((*path, j), f"{show(value)} is listed twice", "distinct values")
            seen.add(text)
            _sweep_value(ctx, spec, target, key, value, section, protocol, train, (*path, j))
    return targets


def _sweep_value(
    ctx: Context,
    spec: ModelSpec,
    target: str,
    key: str,
    value: Any,
    section: ModelSection,
    protocol: dict[str, Any],
    train: TrainSettings,
    path: KeyPath,
) -> None:
    schema: type[BaseModel]
    if target == "params":
        schema, base = spec.params, dict(section.params)
    elif target == "protocol":
        schema, base = Protocol, dict(protocol)
    else:
        schema, base = TrainSettings, train.model_dump()
    try:
        schema.model_validate({**base, key: value}, strict=True)
    except ValidationError as exc:
        for err in exc.errors():
            if tuple(err["loc"])[:1] == (key,):
                ctx.problems.add(path, f"got {show(value)}", expected_of(err))
