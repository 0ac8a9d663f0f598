"""``seqbench models``: the registered models, their flags, ablation switches and parameters.

Everything shown comes from the registry and the models' pydantic parameter classes (one source of
truth). The registry imports the model modules, hence torch, only when the command runs.
"""

from __future__ import annotations

import json
import types
import typing
from typing import Annotated, Any, Literal

import typer
from pydantic.fields import FieldInfo
from rich.markup import escape

from seqbench.cli.common import out, reports_errors
from seqbench.models.registry import ModelSpec, all_models, get_model

NameArg = Annotated[
    str | None, typer.Argument(help="Show only this model (default: every registered model).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")]

_BOUNDS = (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<"))


def type_name(annotation: Any) -> str:
    """A short, readable name for a parameter's type: ``int``, ``gelu|relu``, ``int|None``."""
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return "|".join(str(a) for a in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return "|".join(type_name(a) for a in typing.get_args(annotation))
    if annotation is type(None):
        return "None"
    return getattr(annotation, "__name__", str(annotation))


def bounds(info: FieldInfo) -> list[str]:
    """The numeric constraints of a field, e.g. ``["≥ 0.0", "< 1.0"]``."""
    found = []
    for constraint in info.metadata:
        for attr, symbol in _BOUNDS:
            value = getattr(constraint, attr, None)
            if value is not None:
                found.append(f"{symbol} {value}")
    return found


def describe(spec: ModelSpec) -> dict[str, Any]:
    """One model as plain data (the ``--json`` output, and what the text view prints)."""
    params = []
    for name, info in spec.params.model_fields.items():
        default = info.get_default(call_default_factory=True)
        params.append(
            {
                "name": name,
                "type": type_name(info.annotation),
                "default": default,
                "constraints": bounds(info),
                "description": info.description or "",
            }
        )
    return {
        "name": spec.name,
        "summary": spec.summary,
        "reference": spec.reference,
        "causal": spec.causality(),  # per ablation, at the default parameters
        "all_positions": spec.all_positions,
        "trainable": bool(getattr(spec.cls, "trainable", True)),
        "text": {a: spec.needs_text(ablation=a) for a in spec.ablations},  # reads item text
        "ablations": dict(spec.ablations),
        "params": params,
    }


def _print(model: dict[str, Any]) -> None:
    causal = model["causal"]
    if all(causal.values()):
        causality = "causal"
    elif not any(causal.values()):
        causality = "non-causal (sees later slots)"
    else:
        causality = "causal: " + ", ".join(a for a, c in causal.items() if c) + "; non-causal: "
        causality += ", ".join(a for a, c in causal.items() if not c)
    flags = [causality, "outputs every slot" if model["all_positions"] else "last slot only"]
    if not model["trainable"]:
        flags.append("not trained (fitted from counts)")
    readers = [a for a, reads in model["text"].items() if reads]
    if readers:
        flags.append("reads item text" + ("" if len(readers) == len(model["text"]) else
                                          " (" + ", ".join(readers) + ")"))  # fmt: skip
    out.print(f"[bold]{model['name']}[/]: {escape(model['summary'])}")
    out.print(f"  {', '.join(flags)}", highlight=False)
    if model["reference"]:
        out.print(f"  reference: {escape(model['reference'])}", highlight=False)
    switches = ", ".join(f"{k} ({v})" for k, v in model["ablations"].items())
    out.print(f"  ablations: {escape(switches)}", highlight=False)
    if not model["params"]:
        out.print("  parameters: none", highlight=False)
        return
    rows = [
        (p["name"], p["type"], repr(p["default"]), _help(p["description"], p["constraints"]))
        for p in model["params"]
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    out.print("  parameters:", highlight=False)
    for name, kind, default, text in rows:
        line = f"    {name:<{widths[0]}}  {kind:<{widths[1]}}  {default:<{widths[2]}}  {text}"
        out.print(escape(line), highlight=False)


def _help(description: str, constraints: list[str]) -> str:
    if not constraints:
        return description
    return f"{description.rstrip('.')} ({', '.join(constraints)})."


@reports_errors
def list_models(name: NameArg = None, json_: JsonOpt = False) -> None:
    """List the models: summary, causal / all-positions flags, ablations and parameters."""
    specs = [get_model(name)] if name is not None else list(all_models().values())
    models = [describe(spec) for spec in sorted(specs, key=lambda s: s.name)]
    if json_:
        out.print_json(json.dumps(models))
        return
    for i, model in enumerate(models):
        if i:
            out.print()
        _print(model)
