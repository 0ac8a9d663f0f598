"""A validated suite: the resolved settings of every section, and its cells."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, PrivateAttr

from seqbench.cells import Cell, EvalSettings, Role, TrainSettings, Variant
from seqbench.data.load import DatasetSpec
from seqbench.data.protocol import Protocol
from seqbench.suite.problems import DataNeededError
from seqbench.suite.tune import Dimension, SpaceTarget, TuneSettings

SweepTarget = Literal["params", "protocol", "train"]


class DatasetPlan(BaseModel):
    """A resolved ``[[datasets]]`` entry."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    spec: DatasetSpec
    protocol: Protocol  # suite + dataset overrides (sweeps may change it per cell)
    overrides: dict[str, Any]  # the dataset's own protocol overrides
    missing: str | None = None  # a data-folder file not found: what to get and where to put it


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
    tune: dict[str, Dimension] = {}  # search space (seqbench tune); empty: not tuned
    tune_targets: dict[str, SpaceTarget] = {}


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
    tune: TuneSettings | None = None  # [tune], resolved; None without spaces and [tune]
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

    def missing_data(self, cells: list[Cell] | None = None) -> list[str]:
        """One message per data-folder file that was not found (empty: all data is here);
        with ``cells``, only for the datasets they use."""
        used = None if cells is None else {cell.dataset.name for cell in cells}
        return [
            plan.missing
            for plan in self.datasets
            if plan.missing is not None and (used is None or plan.spec.name in used)
        ]

    def require_data(self, cells: list[Cell] | None = None) -> None:
        """Stop (:class:`DataNeededError`, naming each file, where to get it and where to put
        it) unless every data-folder file of ``cells`` (default: all) was found."""
        missing = self.missing_data(cells)
        if missing:
            raise DataNeededError("\n".join(missing))

    def describe(self) -> dict[str, Any]:
        """The resolved suite as JSON-able data (``seqbench validate --json``)."""
        return self.model_dump(mode="json")
