"""``seqbench validate SUITE.toml``: check a suite and show what it would run, training nothing.

The same plan is printed by ``seqbench run --dry-run`` (:func:`print_plan`). Neither downloads:
a cell whose dataset is not downloaded yet shows its hash as "(after download)", one whose
data-folder file is missing as "(data needed)", followed by what to get and where to put it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from seqbench.cli.common import out, reports_errors

if TYPE_CHECKING:
    from seqbench.cells import Cell
    from seqbench.store import StoredCell
    from seqbench.suite import Suite

AFTER_DOWNLOAD = "(after download)"
DATA_NEEDED = "(data needed)"

#: ``--data-dir``, shared by the commands that read suites.
DataDirOption = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        envvar="SEQBENCH_DATA_DIR",
        help='Data folder: a dataset given as file = "NAME" is read from DIR/NAME or '
        "DIR/<dataset>/NAME.",
    ),
]

#: Hashes of the cells: a list aligned with them, or a mapping from ``id(cell)``; None = unknown.
Hashes = Sequence[str | None] | Mapping[int, str | None]


@reports_errors
def validate(
    suite_file: Annotated[Path, typer.Argument(metavar="SUITE.toml", help="The suite to check.")],
    json_: Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")] = False,
    cache_dir: Annotated[
        Path | None,
        typer.Option(help="Dataset cache (default: $SEQBENCH_CACHE_DIR or the user cache)."),
    ] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Check a suite file and print the resolved suite and its cells (no training, no download).

    Every problem in the file is listed at once, one per line, with the line and key, what was
    expected and the closest valid name; the exit status is then 1. Hashes are those of
    `seqbench run` with its defaults (--device auto, --backend auto) on this machine. A
    data-folder file that is not found is no problem: the plan says what to get and where.
    """
    from seqbench import runner
    from seqbench.cells import source_fingerprint
    from seqbench.suite import load_suite

    suite = load_suite(suite_file, data_dir=data_dir)
    cells = runner.with_backends(suite.cells(), runner.RunOptions(results=Path(".")))
    sources: dict[str, dict[str, Any] | None] = {}
    hashes: list[str | None] = []
    for cell in cells:
        key = cell.dataset.model_dump_json()
        if key not in sources:
            sources[key] = source_fingerprint(cell.dataset, cache_dir=cache_dir, download=False)
        source = sources[key]
        hashes.append(cell.hash(source) if source is not None else None)
    if json_:
        out.print_json(json.dumps(plan_json(suite, cells, hashes)))
    else:
        print_plan(suite, cells, hashes)


def plan_json(suite: Suite, cells: list[Cell], hashes: Hashes) -> dict[str, Any]:
    """The resolved suite and its cells as JSON-able data (hash and directory null until the
    dataset is downloaded)."""
    listed = _hash_list(cells, hashes)
    return {
        "suite": suite.describe(),
        "cells": [
            {
                "index": i,
                "hash": h,
                "directory": str(cell.directory(h)) if h else None,
                **cell.to_json(),
            }
            for i, (cell, h) in enumerate(zip(cells, listed, strict=True))
        ],
        "count": len(cells),
        "missing_data": suite.missing_data(cells),
    }


def print_plan(
    suite: Suite,
    cells: list[Cell],
    hashes: Hashes,
    states: Sequence[StoredCell | None] | None = None,
    store_dir: Path | None = None,
) -> None:
    """Print the resolved suite (settings, datasets, models) and a table of ``cells``.

    ``hashes``: each cell's hash, as a list aligned with ``cells`` or a mapping from
    ``id(cell)``; None where the dataset still has to be downloaded. ``states`` (``run
    --dry-run``): what the run would do with each cell in the store at ``store_dir``.
    """
    listed = _hash_list(cells, hashes)
    line = _line
    line(f"[bold]suite {escape(suite.name)}[/]  ({escape(str(suite.file))})")
    if suite.description:
        line(f"  {escape(suite.description)}")
    line(f"  seeds     {', '.join(str(s) for s in suite.seeds)}")
    line(f"  protocol  {_settings(suite.protocol.model_dump())}")
    line(f"  train     {_settings(suite.train.model_dump())}")
    line(f"  eval      {_settings(suite.eval.model_dump(exclude={'noise'}))}")
    if suite.eval.noise:
        names = ", ".join(spec.label for spec in suite.eval.noise)
        line(f"  noise     {len(suite.eval.noise)} evaluation conditions: {escape(names)}")

    line("[bold]datasets[/]")
    for plan in suite.datasets:
        spec = plan.spec
        if spec.path is not None:
            source = str(spec.path)
        elif spec.missing:
            source = f"data folder: {spec.file}, not found"
        else:
            source = "registry"
        fmt = f", format {spec.format}" if spec.format else ""
        line(f"  {escape(spec.name)}  ({escape(source)}{escape(fmt)})")
        if spec.options:
            line(f"    options   {_settings(spec.options)}")
        line(f"    protocol  {_settings(plan.protocol.model_dump())}")

    line("[bold]models[/]")
    for i, model in enumerate(suite.models):
        named = f" (name {model.name})" if model.name else ""
        line(
            f"  [{i}] {escape(model.model)}{escape(named)}  role {model.role}; "
            f"ablations {', '.join(model.ablations)}"
        )
        if model.sweep:
            swept = "; ".join(
                f"{k} ∈ {_value(v)} ({model.sweep_targets[k]})" for k, v in model.sweep.items()
            )
            line(f"    sweep     {escape(swept)}")
        params = {k: "(swept)" if k in model.sweep else v for k, v in model.params.items()}
        line(f"    params    {_settings(params) or '(none)'}")
        if model.overrides:
            line(f"    set here  {_settings(model.overrides)}")

    table = Table(title=None, show_edge=False, pad_edge=False, header_style="bold")
    for column, justify in (("#", "right"), ("dataset", "left"), ("variant", "left")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    table.add_column("seed", justify="right")
    table.add_column("hash", no_wrap=True)
    if states is not None:
        table.add_column("in the store")
    for i, (cell, h) in enumerate(zip(cells, listed, strict=True)):
        row = [
            str(i),
            escape(cell.dataset.name),
            escape(cell.variant.label),
            str(cell.seed),
            h[:8] if h else DATA_NEEDED if cell.dataset.missing else AFTER_DOWNLOAD,
        ]
        if states is not None:
            state = states[i]
            row.append(escape(state.text) if state is not None else "?")
        table.add_row(*row)
    out.print(table)
    variants = len({c.variant.label for c in cells})
    datasets = len({c.dataset.name for c in cells})
    seeds = len({c.seed for c in cells})
    line(
        f"{len(cells)} cells = {datasets} dataset{_s(datasets)} × {variants} "
        f"variant{_s(variants)} × {seeds} seed{_s(seeds)}"
    )
    if any(h is None and not c.dataset.missing for c, h in zip(cells, listed, strict=True)):
        line(
            f"hash {AFTER_DOWNLOAD}: the dataset is not downloaded yet "
            "(seqbench data prepare NAME fetches it; seqbench run does too)"
        )
    if states is not None:
        line(escape(_store_line(states, store_dir)))
    missing = suite.missing_data(cells)
    if missing:
        line(f"hash {DATA_NEEDED}: seqbench run needs these files first:")
        for text in missing:
            line(f"  {escape(text)}")


def _store_line(states: Sequence[StoredCell | None], store_dir: Path | None) -> str:
    """One line counting what ``seqbench run`` would do, in the words of its summary line."""
    where = f" ({store_dir})" if store_dir is not None else ""
    kinds = [s.kind if s is not None else "unknown" for s in states]
    if kinds and all(k == "complete" for k in kinds):
        return f"nothing to train{where}: all {len(kinds)} cells are complete"
    resuming = sum(1 for s in states if s is not None and "resumes after epoch" in s.text)
    parts = []
    for kind, words in (
        ("complete", "complete"),
        ("held", "in training by another process"),
        ("to train", "to train"),
        ("unknown", "unknown until the dataset is prepared"),
    ):
        n = kinds.count(kind)
        if n:
            resumes = kind == "to train" and resuming
            parts.append(
                f"{n} {words}" + (f" ({resuming} resume from a checkpoint)" if resumes else "")
            )
    return f"in the store{where}: " + ", ".join(parts)


def _hash_list(cells: list[Cell], hashes: Hashes) -> list[str | None]:
    if isinstance(hashes, Mapping):
        return [hashes.get(id(cell)) for cell in cells]
    listed = list(hashes)
    if len(listed) != len(cells):
        raise ValueError(f"{len(listed)} hashes for {len(cells)} cells")
    return listed


def _line(text: str) -> None:
    out.print(text, highlight=False)


def _settings(values: Mapping[str, Any]) -> str:
    return escape(", ".join(f"{k}={_value(v)}" for k, v in values.items()))


def _value(value: Any) -> str:
    from seqbench.cells import format_value

    if value is None:
        return "unset"
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict) and "kind" in value:  # a noise setting: its name
        from pydantic import ValidationError

        from seqbench.data.noise.spec import NoiseSpec

        try:
            return NoiseSpec.model_validate(value).label
        except ValidationError:
            pass
    return format_value(value)


def _s(n: int) -> str:
    return "" if n == 1 else "s"
