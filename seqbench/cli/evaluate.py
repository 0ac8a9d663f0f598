"""``seqbench evaluate RESULTS_DIR --noise …``: score finished cells under new evaluation
conditions from their stored weights, without retraining (:mod:`seqbench.robustness.stored`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from seqbench.cli.common import err, out, parse_duration, reports_errors
from seqbench.cli.validate import DataDirOption
from seqbench.errors import ConfigError

if TYPE_CHECKING:
    from seqbench.data.noise.spec import NoiseSpec

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


@reports_errors
def evaluate(
    directory: Annotated[
        Path,
        typer.Argument(
            metavar="RESULTS_DIR",
            help="A results root, a suite's folder (ROOT/<suite>) or any folder below it.",
        ),
    ],
    noise: Annotated[
        list[str] | None,
        typer.Option(
            "--noise",
            metavar="SPEC",
            help="A condition: kind=delete,ratio=0.1|0.2,where=end ('|' lists values: one "
            'condition each) or a TOML table {kind = "embedding", std = 0.1}; repeat for '
            "several. See docs/noise.md.",
        ),
    ] = None,
    suite_file: Annotated[
        Path | None,
        typer.Option(
            "--suite", metavar="SUITE.toml", help="Also every condition of its [eval] noise."
        ),
    ] = None,
    only: Annotated[
        list[str] | None,
        typer.Option(
            "--only",
            metavar="KEY=GLOB[,KEY=GLOB]",
            help="Only matching cells (keys: dataset, model, variant, ablation, seed, role).",
        ),
    ] = None,
    device: Annotated[
        str | None,
        typer.Option(help="cpu, cuda or cuda:N (default: the device type each cell trained on)."),
    ] = None,
    eval_batch_size: Annotated[
        int, typer.Option(min=1, help="Users scored at once (as `seqbench run` used: 4096).")
    ] = 4096,
    lease: Annotated[
        str, typer.Option(help="Lease on each cell while it is updated (as `seqbench run`).")
    ] = "5m",
    cache_dir: Annotated[
        Path | None,
        typer.Option(help="Dataset cache (default: $SEQBENCH_CACHE_DIR or the user cache)."),
    ] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Add evaluation conditions (test-time noise) to finished cells without retraining.

    Each ok cell under RESULTS_DIR is rebuilt from its result.json and weights.safetensors,
    scored under every condition it lacks, and updated in place (ranks.npz gains
    test_rank@NAME, result.json its evaluations entry; both replaced atomically while the
    cell's claim is held). A cell without weights is refused: retrain it with [train]
    save_weights = true. Exit status 0 only if every selected cell has every condition.
    """
    from seqbench import runner
    from seqbench.report.load import find_result_files
    from seqbench.robustness.stored import NoWeightsError, add_conditions

    specs = _conditions(noise or [], suite_file, data_dir)
    if not specs:
        raise ConfigError("no condition given; pass --noise SPEC (repeatable) or --suite FILE")
    root = directory.expanduser()
    if not root.is_dir():
        raise ConfigError(f"{root}: no such results folder")
    cells = _ok_cells(find_result_files(root))
    if not cells:
        raise ConfigError(f"no finished (ok) cell under {root}")
    chosen = runner.select([cell for _, cell in cells], tuple(only or ()))
    seconds = parse_duration(lease, "--lease")
    problems = added = 0
    for path, cell in cells:
        if cell not in chosen:
            continue
        title = f"{cell.dataset.name}/{cell.variant.label} seed {cell.seed}"
        try:
            outcome = add_conditions(path.parent, specs, device=device, cache_dir=cache_dir,
                                     eval_batch_size=eval_batch_size,
                                     lease_seconds=seconds)  # fmt: skip
        except NoWeightsError as exc:
            problems += 1
            err.print(f"[red]refused[/] {escape(title)}: {escape(str(exc))}", highlight=False)
            continue
        except Exception as exc:  # one cell's problem must not stop the others
            problems += 1
            err.print(f"[red]failed[/] {escape(title)}: {escape(f'{type(exc).__name__}: {exc}')}",
                      highlight=False)  # fmt: skip
            continue
        added += bool(outcome.added)
        done = f"added {', '.join(outcome.added)}" if outcome.added else "nothing to add"
        out.print(escape(f"{title}: {done} ({outcome.seconds:.1f} s)"), highlight=False)
    total = sum(1 for _, c in cells if c in chosen)
    out.print(f"{total} cells: {added} updated, {problems} refused or failed", highlight=False)
    if problems:
        raise typer.Exit(1)


def _ok_cells(paths: Any) -> list[tuple[Path, Any]]:
    from seqbench import record
    from seqbench.robustness.stored import cell_of

    found = []
    for path in paths:
        try:
            parsed = record.read(path)
        except (OSError, record.RecordError) as exc:
            err.print(f"[yellow]warning:[/] skipped {escape(str(path))}: {escape(str(exc))}")
            continue
        if parsed.status == "ok" and parsed.tune is None and parsed.throughput is None:
            found.append((path, cell_of(parsed)))
    return found


def _conditions(
    texts: list[str], suite_file: Path | None, data_dir: Path | None
) -> list[NoiseSpec]:
    """The conditions of ``--noise`` and of the suite's ``[eval] noise``, each name once."""
    from seqbench.cells import EvalSettings

    specs = []
    if suite_file is not None:
        from seqbench.suite import load_suite

        specs += list(load_suite(suite_file, data_dir=data_dir).eval.noise)
    for text in texts:
        specs += parse_noise(text)
    try:
        return list(EvalSettings(noise=specs).noise)  # names unique
    except ValueError as exc:
        raise ConfigError(f"--noise: {exc}") from None


def parse_noise(text: str) -> list[NoiseSpec]:
    """``kind=delete,ratio=0.1|0.2,where=end`` or ``{kind = "delete", ratio = [0.1, 0.2]}`` as
    its conditions (lists expanded)."""
    from pydantic import ValidationError

    from seqbench.cells import EvalSettings
    from seqbench.suite.problems import expected_of

    stripped = text.strip()
    try:
        if stripped.startswith("{"):
            data = tomllib.loads(f"noise = {stripped}")["noise"]
        else:
            data = {}
            for part in filter(None, (p.strip() for p in stripped.split(","))):
                key, sep, value = part.partition("=")
                if not sep or not key.strip():
                    raise ValueError(f"{part!r} is not KEY=VALUE")
                values = [_scalar(v) for v in value.split("|")]
                data[key.strip()] = values if len(values) > 1 else values[0]
        return list(EvalSettings.model_validate({"noise": [data]}, strict=True).noise)
    except ValidationError as exc:
        why = "; ".join(
            ".".join(str(p) for p in e["loc"][2:]) + f": {expected_of(e)}" for e in exc.errors()
        )
        raise ConfigError(f"--noise {text!r}: {why}") from None
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(
            f"--noise {text!r}: {exc}; expected e.g. kind=delete,ratio=0.1|0.2,where=end"
        ) from None


def _scalar(text: str) -> Any:
    """A command-line value as TOML would read it: integers, numbers, booleans, else text."""
    value = text.strip()
    for convert in (int, float):
        try:
            return convert(value)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(value.lower(), value)
