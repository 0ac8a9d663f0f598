"""The strict shapes of the suite's own tables (``extra="forbid"``: an unknown key is an error).

``[protocol]``, ``[train]`` and ``[eval]`` are the pipeline's own settings models
(:class:`~seqbench.data.protocol.Protocol`, :class:`~seqbench.cells.TrainSettings`,
:class:`~seqbench.cells.EvalSettings`): a key added there is accepted, validated, swept and
hashed with no change here. ``FIELD_EXPECTED`` says what a key expects when it is missing or
of the wrong shape, where pydantic's own words would not help.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from seqbench.cells import SAFE_NAME, SAFE_NAME_TEXT, Role
from seqbench.models.registry import FULL
from seqbench.suite.locator import KeyPath


def safe_name(value: str) -> str:
    if not SAFE_NAME.fullmatch(value):
        raise ValueError(f"a name of {SAFE_NAME_TEXT}")
    return value


def _sweep_values(value: Any) -> Any:
    if not isinstance(value, list) or not value:
        raise ValueError(
            "a non-empty list of values to try (a single value is set, not swept: in params, "
            "[protocol] or [train])"
        )
    return value


class SuiteSection(BaseModel):
    """``[suite]``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="results go to <results root>/<name>/")
    seeds: Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1)]
    description: str = ""

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return safe_name(value)

    @field_validator("seeds")
    @classmethod
    def _unique(cls, seeds: list[int]) -> list[int]:
        if len(set(seeds)) != len(seeds):
            raise ValueError("each seed once")
        return seeds


class DatasetSection(BaseModel):
    """One ``[[datasets]]`` table (its shape; names and files are checked afterwards)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    path: str | None = None  # relative to the suite file
    file: str | None = None  # in the data folder (seqbench.data.folder)
    fetch: str | None = None  # where to get ``file`` (shown while it is missing)
    format: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    protocol: dict[str, Any] = Field(default_factory=dict)
    text: dict[str, Any] | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return safe_name(value)


class ModelSection(BaseModel):
    """One ``[[models]]`` table (its shape; names are checked against the model registry)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str
    name: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    ablations: Annotated[list[str], Field(min_length=1)] = Field(default_factory=lambda: [FULL])
    sweep: dict[str, Annotated[list[Any], BeforeValidator(_sweep_values)]] = Field(
        default_factory=dict
    )
    role: Role = "baseline"
    tune: dict[str, Any] = Field(default_factory=dict)  # search space (seqbench.suite.tune)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        return None if value is None else safe_name(value)

    @field_validator("ablations")
    @classmethod
    def _unique(cls, values: list[str]) -> list[str]:
        if len(set(values)) != len(values):
            raise ValueError("each ablation once")
        return values


# What a key expects, for "missing" and for a wrong type of the key itself.
FIELD_EXPECTED: dict[KeyPath, str] = {
    ("suite", "name"): f"a suite name of {SAFE_NAME_TEXT}",
    ("suite", "seeds"): "a non-empty list of unique integers ≥ 0, e.g. [2020, 2021]",
    ("eval", "metrics"): 'a non-empty list of metrics NAME@K, e.g. ["hr@10", "ndcg@10"]',
    ("datasets", "name"): "a registered dataset name, or a label for a local path",
    ("datasets", "file"): 'a file name in the data folder, e.g. "Beauty.txt"',
    ("datasets", "fetch"): "a text saying where to get the file, e.g. a URL",
    ("datasets", "options"): "a table of reader (or generator) options",
    ("datasets", "protocol"): "a table of protocol overrides, e.g. { max_len = 20 }",
    (
        "datasets",
        "text",
    ): 'a table of item text, e.g. { path = "movies.dat", format = "movielens" }',
    ("models", "model"): "a model name",
    ("models", "params"): "a table of model parameters, e.g. { hidden_size = 64 }",
    ("models", "ablations"): 'a non-empty list of ablation names, e.g. ["full"]',
    ("models", "sweep"): "a table of parameter → list of values, e.g. { n_layers = [1, 2] }",
    ("models", "tune"): "a table of key → search space, e.g. { lr = { low = 1e-4, high = 1e-2, "
    "log = true }, hidden_size = [32, 64] }",
}


def expectations(section: str) -> dict[str, str]:
    """``FIELD_EXPECTED`` of one section, by key."""
    return {path[1]: text for path, text in FIELD_EXPECTED.items() if path[0] == section}
