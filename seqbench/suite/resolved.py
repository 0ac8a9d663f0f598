"""A validated suite: the resolved settings of every section, and its cells."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, PrivateAttr

from seqbench.cells import Cell, EvalSettings, Role, TrainSettings, Variant
from seqbench.data.load import DatasetSpec
from seqbench.data.protocol import Protocol

SweepTarget = Literal["params", "protocol", "train"]


class DatasetPlan(BaseModel):
    """A resolved ``[[datasets]]`` entry."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    spec: DatasetSpec
    protocol: Protocol  # suite + dataset overrides (sweeps may change it per cell)
    overrides: dict[str, Any]  # the dataset's own protocol overrides


class ModelPlan(BaseModel):
    """A resolved ``[[models]]`` entry."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str
    name: str | None
    params: dict[str, Any]  # every parameter, defaults included (before sweeps)
    overrides: dict[str, Any]  # what the entry set in params
    ablations: list[str]
    sweep: dict[str, list[Any]]
    sweep_targets: dict[str, SweepTarget]
    role: Role


class Suite(BaseModel):
    """A validated suite: resolved settings of every section, and its cells."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    file: Path
    name: str
    seeds: list[int]
    description: str
    protocol: Protocol
    protocol_overrides: dict[str, Any]
    train: TrainSettings
    eval: EvalSettings
    datasets: list[DatasetPlan]
    models: list[ModelPlan]
    _cells: tuple[Cell, ...] = PrivateAttr(default=())

    def cells(self) -> list[Cell]:
        """Datasets × models entries × ablations × sweep points × seeds, in that order."""
        return list(self._cells)

    def variants(self) -> list[Variant]:
        """The distinct variants, in suite order."""
        seen: dict[str, Variant] = {}
        for cell in self._cells:
            seen.setdefault(cell.variant.label, cell.variant)
        return list(seen.values())

    def describe(self) -> dict[str, Any]:
        """The resolved suite as JSON-able data (``seqbench validate --json``)."""
        return self.model_dump(mode="json")
