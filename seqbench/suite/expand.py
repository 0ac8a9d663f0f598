"""Expansion of a checked suite into cells: datasets × models entries × ablations × sweep points
× seeds, in that order. Label clashes, sweep points that break a check, text-reading variants on
datasets without text and duplicate cells become problems (the expansion is where they show)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from typing import Any

from pydantic import ValidationError

from seqbench.cells import (
    SOURCE_KEYS,
    Cell,
    EvalSettings,
    TrainSettings,
    Variant,
    canonical_json,
    format_value,
    variant_label,
)
from seqbench.data.protocol import Protocol
from seqbench.models.registry import FULL, ModelSpec
from seqbench.suite.datasets import dataset_has_text
from seqbench.suite.locator import KeyPath
from seqbench.suite.problems import Problems, expected_of
from seqbench.suite.resolved import DatasetPlan, ModelPlan
from seqbench.suite.schemas import SuiteSection
from seqbench.text.sources import TEXT_FORMATS

#: A variant with the index of its models entry and its sweep point's protocol and train values.
Built = tuple[int, Variant, dict[str, Any], dict[str, Any]]


def expand(
    head: SuiteSection,
    datasets: list[tuple[int, DatasetPlan]],
    models: list[tuple[int, ModelPlan]],
    registry: Mapping[str, ModelSpec],
    protocol: dict[str, Any],
    train: TrainSettings,
    evaluation: EvalSettings,
    problems: Problems,
) -> list[Cell]:
    """All cells, in order; label clashes and duplicate cells become problems."""
    variants: list[Built] = []
    for i, plan in models:
        for a, ablation in enumerate(plan.ablations):
            for p, point in enumerate(points(plan.sweep)):
                built = _variant(registry, plan, i, a, ablation, p, point, train, problems)
                if built is not None:
                    variants.append((i, *built))
    _check_labels(variants, problems)
    cells = []
    for d, dataset in datasets:
        _check_text(d, dataset, variants, problems)
        for i, variant, proto_point, train_point in variants:
            try:
                cell_protocol = Protocol.model_validate(
                    {**protocol, **dataset.overrides, **proto_point}, strict=True
                )
            except ValidationError as exc:
                problems.add(
                    ("models", i, "sweep"),
                    f"sweep point {format_point(variant.sweep)} with datasets[{d}]: "
                    + "; ".join(expected_of(e) for e in exc.errors()),
                    "sweep values that work with every dataset's protocol",
                )
                continue
            cell_train = TrainSettings.model_validate(  # checked in _variant()
                {**train.model_dump(), **train_point}
            )
            for seed in head.seeds:
                cells.append(
                    Cell(
                        suite=head.name,
                        dataset=dataset.spec,
                        protocol=cell_protocol,
                        variant=variant,
                        seed=seed,
                        train=cell_train,
                        eval=evaluation,
                    )
                )
    _check_duplicates(cells, problems)
    return cells


def points(sweep: Mapping[str, list[Any]]) -> Iterator[dict[str, Any]]:
    """The cartesian product of the sweep's values, first key slowest."""
    keys = list(sweep)
    for values in itertools.product(*(sweep[k] for k in keys)):
        yield dict(zip(keys, values, strict=True))


def format_point(point: Mapping[str, Any]) -> str:
    return "{" + ", ".join(f"{k} = {format_value(v)}" for k, v in point.items()) + "}"


def _variant(
    registry: Mapping[str, ModelSpec],
    plan: ModelPlan,
    i: int,
    a: int,
    ablation: str,
    p: int,
    point: dict[str, Any],
    train: TrainSettings,
    problems: Problems,
) -> tuple[Variant, dict[str, Any], dict[str, Any]] | None:
    """The variant of one sweep point, with the point's protocol and train values."""
    spec = registry[plan.model]
    parts: dict[str, dict[str, Any]] = {"params": {}, "protocol": {}, "train": {}}
    for key, value in point.items():
        parts[plan.sweep_targets[key]][key] = value
    overrides = {**plan.overrides, **parts["params"]}
    try:
        params = spec.params.model_validate(overrides, strict=True)
    except ValidationError as exc:
        _sweep_point_problem(i, point, exc, "params", problems)
        return None
    dumped = params.model_dump(mode="json")
    resolved = params.resolved()  # late-added parameters at their old value left out
    try:
        train_values = TrainSettings.model_validate({**train.model_dump(), **parts["train"]})
    except ValidationError as exc:
        _sweep_point_problem(i, point, exc, "[train]", problems)
        return None
    if train_values.objective == "all_positions" and not spec.allows_all_positions(
        params, ablation
    ):
        why = "not causal" if not spec.is_causal(params, ablation) else "no output per slot"
        problems.add(
            ("models", i, "ablations", a) if ablation != FULL else ("models", i, "model"),
            f"model {spec.name!r} ablation {ablation!r} cannot train with objective "
            f"'all_positions' ({why}: a slot would see the target of another)",
            'objective = "last" in [train] (or a sweep), or a causal model such as '
            + ", ".join(n for n, m in sorted(registry.items()) if m.allows_all_positions()),
        )
        return None
    if train_values.mode == "throughput" and not spec.cls.trainable:
        problems.add(
            ("models", i, "model"),
            f"model {spec.name!r} is fitted from counts, not trained by steps, so a throughput "
            "cell would have nothing to time",
            'mode = "fit" in [train] (or a sweep), or a trained model',
        )
        return None
    protocol_values = Protocol.model_validate(parts["protocol"])
    shown = {
        key: dumped[key]
        if target == "params"
        else getattr(protocol_values if target == "protocol" else train_values, key)
        for key, target in plan.sweep_targets.items()
    }
    variant = Variant(
        label=variant_label(plan.model, plan.name, ablation, shown),
        model=plan.model,
        ablation=ablation,
        sweep=shown,
        params=resolved,
        overrides=overrides,
        role=plan.role,
        order=(i, a, p),
        uses_text=spec.needs_text(params, ablation),
    )
    return variant, parts["protocol"], parts["train"]


def _sweep_point_problem(
    i: int, point: Mapping[str, Any], exc: ValidationError, section: str, problems: Problems
) -> None:
    found = "; ".join(f"{e['msg']}" for e in exc.errors())
    problems.add(
        ("models", i, "sweep"),
        f"sweep point {format_point(point)}: {found.removeprefix('Value error, ')}",
        f"sweep values that work together with {section}",
    )


def _check_text(d: int, dataset: DatasetPlan, variants: list[Built], problems: Problems) -> None:
    """A variant that reads item text needs a dataset that has some."""
    if dataset_has_text(dataset.spec):
        return
    reported: set[tuple[int, str]] = set()
    for i, variant, _, _ in variants:
        if not variant.uses_text or (i, variant.ablation) in reported:
            continue
        reported.add((i, variant.ablation))
        where: KeyPath = ("models", i, "model")
        if variant.ablation != FULL:
            where = ("models", i, "ablations", variant.order[1])
        problems.add(
            where,
            f"model {variant.model!r} (ablation {variant.ablation!r}) reads item text, and "
            f"datasets[{d}] ({dataset.spec.name!r}) has none",
            f'a text table in datasets[{d}], e.g. text = {{ path = "movies.dat", format = '
            '"movielens" } (formats: ' + ", ".join(TEXT_FORMATS) + "), or an ablation "
            "without text (e.g. no_llm)",
        )


def _check_labels(variants: list[Built], problems: Problems) -> None:
    """A label names a folder: one label, one configuration."""
    by_label: dict[str, tuple[int, str, Variant]] = {}
    for i, variant, proto_point, train_point in variants:
        identity = canonical_json(
            {
                "model": variant.model,
                "ablation": variant.ablation,
                "params": variant.params,
                "protocol": proto_point,
                "train": train_point,
            }
        )
        where: KeyPath = ("models", i)
        if variant.label in by_label:
            j, other_identity, other = by_label[variant.label]
            if other_identity != identity:
                if j == i:
                    problems.add(
                        (*where, "sweep"),
                        f"sweep points {format_point(other.sweep)} and "
                        f"{format_point(variant.sweep)} both give the folder name "
                        f"{variant.label!r}",
                        "values that still differ once characters outside "
                        "[A-Za-z0-9._=,+@-] become '_'",
                    )
                else:
                    problems.add(
                        where,
                        f"its variant {variant.label!r} has the same name as one of "
                        f"models[{j}] but other settings",
                        f'a distinct name: add name = "{variant.model}-{i}" (or another '
                        "name) to one of them",
                    )
        else:
            by_label[variant.label] = (i, identity, variant)


def _check_duplicates(cells: list[Cell], problems: Problems) -> None:
    """No cell twice: the same dataset, numbers-changing settings and seed under two labels
    would be trained twice (dataset names are unique, so they stand for the source)."""
    blank = dict.fromkeys(SOURCE_KEYS, "")
    seen: dict[str, Variant] = {}
    for cell in cells:
        key = canonical_json([cell.dataset.name, cell.identity(blank)])
        other = seen.setdefault(key, cell.variant)
        if other is not cell.variant:
            problems.add(
                ("models", cell.variant.order[0]),
                f"variant {cell.variant.label!r} gives the same cells as variant "
                f"{other.label!r} of models[{other.order[0]}] (same model, ablation, "
                "parameters and settings)",
                "each configuration once: remove one",
            )
