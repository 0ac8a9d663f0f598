"""What a noise setting says: the kind of corruption, how much, where, and its name.

One :class:`NoiseSpec` is ``[train] noise = {…}`` (corrupts the training inputs; swept like any
train key) or one entry of ``[eval] noise = [{…}, …]`` (an evaluation condition of a trained
model). It is light (pydantic only), because :mod:`seqbench.cells` hashes it.

Kinds and their keys (any other key is an error):

=============  =========================================  =====================================
kind           keys                                       what happens to a sample's input
=============  =========================================  =====================================
``replace``    ``ratio``, ``where``, ``sample``           chosen items become random items
``insert``     ``ratio``, ``where``, ``sample``           random items are inserted
``delete``     ``ratio``, ``where``                       chosen items are removed (one stays)
``shuffle``    ``ratio``, ``where``, ``window``           chosen items are permuted among their
                                                          slots (within groups of ``window``)
``truncate``   ``keep``                                   only the most recent ``keep`` stay
``embedding``  ``std``                                    Gaussian noise on the input item
                                                          embeddings (evaluation only)
=============  =========================================  =====================================

``ratio`` is the probability of each item being chosen (so the number chosen in a sequence of n
items is Binomial(n, ratio)); ``where`` places them: ``uniform`` (anywhere), ``beginning``
(the oldest), ``middle`` or ``end`` (the most recent, just before the target); ``sample`` draws
new items ``uniform``-ly over the catalog or by ``popularity`` in the training interactions;
``std`` is relative to the root mean square of the model's item embeddings. docs/noise.md has
the details and a worked example.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

NoiseKind = Literal["replace", "insert", "delete", "shuffle", "truncate", "embedding"]
Where = Literal["uniform", "beginning", "middle", "end"]
Sample = Literal["uniform", "popularity"]

#: The keys each kind takes, its level key first (what a noise curve puts on its x axis).
KIND_KEYS: dict[str, tuple[str, ...]] = {
    "replace": ("ratio", "where", "sample"),
    "insert": ("ratio", "where", "sample"),
    "delete": ("ratio", "where"),
    "shuffle": ("ratio", "where", "window"),
    "truncate": ("keep",),
    "embedding": ("std",),
}
#: Defaults filled in where a kind takes the key (so that spelling them out changes nothing).
DEFAULTS: dict[str, Any] = {"where": "uniform", "sample": "uniform"}
SETTINGS = ("ratio", "where", "sample", "window", "keep", "std")
#: Keys an ``[eval] noise`` entry may give as a list: one condition per combination.
LISTABLE = ("ratio", "where", "keep", "std")
SAFE_CONDITION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._=,+-]*$")


class NoiseSpec(BaseModel):
    """One noise setting; see the module docstring for the kinds and their keys."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: NoiseKind
    ratio: float | None = Field(None, ge=0, le=1, description="chance of each item being hit")
    where: Where | None = Field(None, description="uniform, beginning, middle or end")
    sample: Sample | None = Field(None, description="new items: uniform or by popularity")
    window: int | None = Field(None, ge=2, description="shuffle: permute within groups of this")
    keep: int | None = Field(None, ge=1, description="truncate: the most recent items kept")
    std: float | None = Field(None, ge=0, description="embedding: σ relative to the RMS")
    name: str | None = Field(None, description="the condition's name (default: derived)")

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any) -> Any:
        """Fill ``where``/``sample`` defaults for the kinds that take them."""
        if isinstance(data, dict) and data.get("kind") in KIND_KEYS:
            keys = KIND_KEYS[data["kind"]]
            data = {**{k: v for k, v in DEFAULTS.items() if k in keys}, **data}
            for key, value in DEFAULTS.items():
                if key in keys and data.get(key) is None:
                    data[key] = value
        return data

    @model_validator(mode="after")
    def _keys_of_kind(self) -> NoiseSpec:
        keys = KIND_KEYS[self.kind]
        extra = [k for k in SETTINGS if k not in keys and getattr(self, k) is not None]
        if extra:
            raise ValueError(
                f"noise kind {self.kind!r} takes {', '.join(keys)}, not {', '.join(extra)}"
            )
        if getattr(self, keys[0]) is None:
            raise ValueError(f"noise kind {self.kind!r} needs {keys[0]}")
        if self.name is not None and not SAFE_CONDITION.fullmatch(self.name):
            raise ValueError(
                f"name {self.name!r}: letters, digits and . _ = , + - (not first), it names "
                "arrays of ranks.npz"
            )
        return self

    # ------------------------------------------------------------------ derived

    @property
    def level_key(self) -> str:
        """``ratio``, ``keep`` or ``std``: the key a noise curve varies."""
        return KIND_KEYS[self.kind][0]

    @property
    def level(self) -> float:
        """The amount of noise (ratio, kept items or relative σ)."""
        return float(getattr(self, self.level_key))

    @property
    def label(self) -> str:
        """The condition's name: ``name``, else e.g. ``replace-end-0.1``,
        ``insert-popularity-uniform-0.2``, ``shuffle-end-0.3-w3``, ``truncate-5``,
        ``embedding-0.1``."""
        if self.name is not None:
            return self.name
        parts: list[str] = [self.kind]
        if self.sample == "popularity":
            parts.append("popularity")
        if self.where is not None:
            parts.append(self.where)
        level = getattr(self, self.level_key)
        parts.append(repr(float(level)) if isinstance(level, float) else str(level))
        if self.window is not None:
            parts.append(f"w{self.window}")
        return "-".join(parts)

    def identity(self) -> dict[str, Any]:
        """The settings that change numbers (no name), defaults included: what is hashed and
        what seeds the noise."""
        return {
            k: v for k, v in self.model_dump(mode="json", exclude={"name"}).items() if v is not None
        }

    def series(self) -> dict[str, Any]:
        """:meth:`identity` without the level: specs that differ only in level form a curve."""
        return {k: v for k, v in self.identity().items() if k != self.level_key}

    def digest(self) -> bytes:
        """sha256 of the canonical JSON of :meth:`identity` (seeds the noise)."""
        from seqbench.cells import canonical_json

        return hashlib.sha256(canonical_json(self.identity()).encode()).digest()

    def condition(self) -> dict[str, Any]:
        """The record's ``evaluations[NAME].condition``: the settings and the name."""
        return {**self.identity(), "name": self.label}


def expand_conditions(entries: Any) -> Any:
    """``[eval] noise`` entries with lists (``ratio = [0.1, 0.2]``, ``where = ["end",
    "beginning"]``, …) as one condition per combination, first listed key slowest. Every
    condition is validated here, so that each problem names its entry (one ValueError lists
    them all)."""
    if not isinstance(entries, list):
        return entries
    found: list[Any] = []
    problems: list[str] = []
    for i, entry in enumerate(entries):
        if isinstance(entry, NoiseSpec):
            found.append(entry)
            continue
        if not isinstance(entry, dict):
            problems.append(f"noise[{i}] is {entry!r}, not a table such as {{ kind = ... }}")
            continue
        listed = {k: v for k, v in entry.items() if k in LISTABLE and isinstance(v, list)}
        if listed and "name" in entry:
            problems.append(f"noise[{i}]: a name with listed values would name every condition")
            continue
        for values in itertools.product(*listed.values()):
            one = {**entry, **dict(zip(listed, values, strict=True))}
            try:
                found.append(NoiseSpec.model_validate(one, strict=True))
            except ValidationError as exc:
                for err in exc.errors():
                    key = ".".join(str(p) for p in err["loc"])
                    text = str(err["msg"]).removeprefix("Value error, ")
                    shown = f".{key} = {err['input']!r}" if key else ""
                    problems.append(f"noise[{i}]{shown}: {text}")
    if problems:
        raise ValueError("; ".join(dict.fromkeys(problems)))
    return found


def check_unique(conditions: list[NoiseSpec]) -> list[NoiseSpec]:
    """Condition names are unique (they name arrays of ranks.npz)."""
    seen: dict[str, NoiseSpec] = {}
    for spec in conditions:
        other = seen.setdefault(spec.label, spec)
        if other is not spec:
            raise ValueError(f"two noise conditions are named {spec.label!r}; each once")
    return conditions
