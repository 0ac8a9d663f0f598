"""The model registry: one decorator per model declares everything the rest of seqbench needs.

Each entry names the model's typed parameters (a pydantic model whose defaults are the official
ones), its ablation switches, whether it is causal (its output at slot t never depends on a slot
to the right of t, even when those slots hold items) and whether it can give an output at every
slot (``forward_all``). Causality may depend on the ablation and the parameters (a bidirectional
model made forward-only is causal), so it is a bool or a function of both. Only a variant that is
causal *and* outputs every slot may train with the all-positions objective: for any other, the
target of one slot would be visible from another (model-reference §7.3–§7.4). A model may also
need item text (M2Rec's semantic branch; again per ablation), and an ablation may switch off the
part that some parameters configure (``disables``): a suite that sweeps such a parameter together
with that ablation would train identical models under different labels, so it is refused. The
model listing, "did you mean" hints and every "available: …" message come from here.

Each built-in model registers itself in its own module; :data:`BUILTIN` only says which module
that is, so that :func:`get_model` imports the one module it needs (and torch only then), and
:func:`all_models` imports them all (the listing). Nothing in this module imports a model at
import time, so the model modules can import it without a cycle.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict

from seqbench.errors import ConfigError, UnknownNameError, suggestion
from seqbench.validation import validate_options

if TYPE_CHECKING:
    from seqbench.models.base import SequentialRecommender

FULL = "full"
PLUGINS = "SEQBENCH_PLUGINS"

#: The built-in models: name → the module whose ``@register_model`` registers it.
BUILTIN: dict[str, str] = {
    name: f"seqbench.models.{name}"
    for name in (
        "bert4rec", "bimamba4rec", "bimambaformer4rec", "echomamba4rec", "fmlprec", "gru4rec",
        "m2rec", "m2rec_code", "mamba4rec", "narm", "pop", "sasrec",
    )
}  # fmt: skip

#: Whether a variant is causal (or needs item text): fixed, or decided from its parameters and
#: ablation.
Causality = bool | Callable[["ModelParams", str], bool]


class ModelParams(BaseModel):
    """Base of every model's parameters: strict (unknown keys are errors) and immutable.

    ``late_defaults`` names parameters a model gained after results existed, with the value
    that reproduces the model as it was: :meth:`resolved` leaves them out at that value, so that
    a cell's parameters, and so its hash and the report's grouping, stay what they were."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    late_defaults: ClassVar[dict[str, Any]] = {}

    def resolved(self) -> dict[str, Any]:
        """Every parameter (JSON values), but a late-added one at its old behaviour."""
        values = self.model_dump(mode="json")
        for key, default in self.late_defaults.items():
            if key in values and values[key] == default:
                del values[key]
        return values


@dataclass(frozen=True)
class ModelSpec:
    """What the registry knows about one model."""

    name: str
    cls: type[SequentialRecommender]
    params: type[ModelParams]
    summary: str
    ablations: dict[str, str] = field(default_factory=dict)  # name → what it switches off
    causal: Causality = True
    all_positions: bool = True  # the class has ``forward_all`` (an output at every slot)
    reference: str = ""  # the official code and paper it follows
    kernels: bool = False  # has Mamba blocks, which can run on the mamba_ssm kernels
    text: Causality = False  # reads item-text embeddings (constructor keyword ``item_text``)
    disables: dict[str, tuple[str, ...]] = field(default_factory=dict)  # ablation → unused params

    def is_causal(self, params: ModelParams | None = None, ablation: str = FULL) -> bool:
        """Whether the variant's output at slot t depends on slots ≤ t only."""
        if callable(self.causal):
            return bool(self.causal(params or self.params(), ablation))
        return self.causal

    def allows_all_positions(self, params: ModelParams | None = None, ablation: str = FULL) -> bool:
        """Whether the variant may train with a loss at every slot (causal and outputs all)."""
        return self.all_positions and self.is_causal(params, ablation)

    def needs_text(self, params: ModelParams | None = None, ablation: str = FULL) -> bool:
        """Whether the variant reads item-text embeddings (its dataset must have item text)."""
        if callable(self.text):
            return bool(self.text(params or self.params(), ablation))
        return self.text

    def causality(self, params: ModelParams | None = None) -> dict[str, bool]:
        """Causality of every ablation (with ``params``, default: the official defaults)."""
        return {a: self.is_causal(params, a) for a in self.ablations}

    def validate_params(self, values: dict[str, Any], where: str) -> ModelParams:
        return validate_options(self.params, values, where)

    def check_ablation(self, ablation: str, where: str) -> None:
        if ablation not in self.ablations:
            raise ConfigError(
                f"{where}: model {self.name!r} has no ablation {ablation!r}"
                + suggestion(ablation, self.ablations)
            )


MODELS: dict[str, ModelSpec] = {}

C = TypeVar("C", bound="type[SequentialRecommender]")


def register_model(
    name: str,
    *,
    params: type[ModelParams],
    summary: str,
    ablations: dict[str, str] | None = None,
    causal: Causality = True,
    all_positions: bool = True,
    reference: str = "",
    kernels: bool = False,
    text: Causality = False,
    disables: dict[str, tuple[str, ...]] | None = None,
) -> Callable[[C], C]:
    """Class decorator adding a model to :data:`MODELS`; ``full`` is always an ablation.

    ``disables`` maps an ablation to the parameters it makes irrelevant (e.g. M2Rec's
    ``no_affm`` → ``theta``); each must be a parameter and the ablation a declared one."""

    def decorate(cls: C) -> C:
        if name in MODELS:
            raise ValueError(f"model {name!r} is registered twice")
        if name in BUILTIN and cls.__module__ != BUILTIN[name]:
            raise ValueError(
                f"model {name!r} is a built-in name, registered by {BUILTIN[name]}, not by "
                f"{cls.__module__}"
            )
        switches = {FULL: "the model as published", **(ablations or {})}
        for ablation, names in (disables or {}).items():
            unknown = [n for n in names if n not in params.model_fields]
            if ablation not in switches or unknown:
                raise ValueError(
                    f"model {name!r}: disables names ablation {ablation!r} and parameters "
                    f"{list(names)}; unknown: {[ablation] if ablation not in switches else unknown}"
                )
        MODELS[name] = ModelSpec(
            name=name,
            cls=cls,
            params=params,
            summary=summary,
            ablations=switches,
            causal=causal,
            all_positions=all_positions,
            reference=reference,
            kernels=kernels,
            text=text,
            disables=dict(disables or {}),
        )
        cls.spec_name = name
        return cls

    return decorate


def get_model(name: str) -> ModelSpec:
    """The registry entry of ``name`` (importing its module on first use); an error listing the
    models (with a hint) otherwise."""
    if name not in MODELS:
        if name in BUILTIN:
            importlib.import_module(BUILTIN[name])
        else:  # a plugin's model, or a typo: load everything, to find it or to list them all
            _load_builtin_models()
    try:
        return MODELS[name]
    except KeyError:
        raise UnknownNameError("model", name, MODELS) from None


def all_models() -> dict[str, ModelSpec]:
    """Every model: the built-in ones and those of ``$SEQBENCH_PLUGINS``."""
    _load_builtin_models()
    return dict(MODELS)


def _load_builtin_models() -> None:
    """Import every built-in model module (each registers its model; torch is imported only
    here) and the plugins.

    ``$SEQBENCH_PLUGINS`` names further modules (comma-separated, importable from the working
    directory or ``PYTHONPATH``) that register models of their own; worker processes inherit it.
    """
    for module in BUILTIN.values():
        importlib.import_module(module)
    for module in filter(None, (m.strip() for m in os.environ.get(PLUGINS, "").split(","))):
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ConfigError(
                f"${PLUGINS}: cannot import model plugin {module!r} ({exc})"
            ) from None
