"""A point of a search space applied to a suite cell: the one rule shared by tuning trials and
``seqbench run --tuned``, so that a tuned cell has exactly the hash of a hand-written suite that
sets the same values (in ``params``, ``[protocol]``/``[train]`` or a one-value ``sweep``).

Each value goes where ``sweep`` would put it (``ModelPlan.tune_targets``): model parameters are
validated with the entry's own overrides and resolved with their defaults (as
:mod:`seqbench.suite.expand` does), protocol and train keys replace the cell's resolved values.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from seqbench.cells import Cell, TrainSettings, canonical_json, variant_label
from seqbench.data.protocol import Protocol

#: Added to a trial's identity: a validation-only cell is never the same result as a final
#: cell with the same settings (it has no test metrics and no ranks).
TRIAL_MARK = {"validation_only": True}


def split_point(point: Mapping[str, Any], targets: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """``{"params": …, "protocol": …, "train": …}`` parts of a point."""
    parts: dict[str, dict[str, Any]] = {"params": {}, "protocol": {}, "train": {}}
    for key, value in point.items():
        parts[targets[key]][key] = value
    return parts


def apply_point(
    cell: Cell,
    point: Mapping[str, Any],
    targets: Mapping[str, str],
    *,
    label: str | None = None,
) -> Cell:
    """``cell`` with the point's values; ``label`` (default: unchanged) names its folder."""
    from seqbench.models.registry import get_model

    parts = split_point(point, targets)
    spec = get_model(cell.variant.model)
    overrides = {**cell.variant.overrides, **parts["params"]}
    params = spec.params.model_validate(overrides, strict=True)
    variant = cell.variant.model_copy(
        update={
            "label": label or cell.variant.label,
            "params": params.model_dump(mode="json"),
            "overrides": overrides,
            "uses_text": spec.needs_text(params, cell.variant.ablation),
        }
    )
    protocol = cell.protocol
    if parts["protocol"]:
        protocol = Protocol.model_validate(
            {**cell.protocol.model_dump(), **parts["protocol"]}, strict=True
        )
    train = cell.train
    if parts["train"]:
        train = TrainSettings.model_validate({**cell.train.model_dump(), **parts["train"]})
    return cell.model_copy(update={"variant": variant, "protocol": protocol, "train": train})


def trial_label(cell: Cell, point: Mapping[str, Any]) -> str:
    """A trial's folder name: its variant's label with the point's values."""
    variant = cell.variant
    name = variant.label.split("@", 1)[0].split("+", 1)[0]
    return variant_label(variant.model, name, variant.ablation, {**variant.sweep, **point})


def trial_identity(cell: Cell, source: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    """A trial cell's identity and hash: the cell's own, marked validation-only."""
    identity = {**cell.identity(source), **TRIAL_MARK}
    return identity, hashlib.sha256(canonical_json(identity).encode()).hexdigest()


def default_point(cell: Cell, targets: Mapping[str, str]) -> dict[str, Any]:
    """The suite's own values of the searched keys (the baseline of "default vs tuned")."""
    values: dict[str, Any] = {}
    for key, target in targets.items():
        if target == "params":
            values[key] = cell.variant.params.get(key)
        else:
            values[key] = getattr(cell.protocol if target == "protocol" else cell.train, key)
    return values


def tidy(space: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """A sampled point as seqbench uses it everywhere (cells, summary.json, best.toml): a
    stepped float range's value without binary round-off (0.30000000000000004 → 0.3)."""
    point = dict(params)
    for key, value in point.items():
        dim = space.get(key)
        step = getattr(dim, "step", None)
        if step is not None and isinstance(value, float) and not getattr(dim, "integer", False):
            point[key] = float(f"{value:.12g}")
    return point
