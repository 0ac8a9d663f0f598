"""The report as one plain object: tables of cells that keep their numbers, and what renderers need.

A :class:`Cell` holds numbers (per-seed values, mean, sample std, n), not strings, so every
renderer formats them its own way and the tidy CSV gets machine-readable values. Cells carry
``marks`` (superscripts, e.g. significance against a reference variant) and tables a ``legend``
that explains them, so the statistics layer can annotate a :class:`Report` without touching the
renderers' structure.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from typing import Any, Literal

import numpy as np

from seqbench.errors import ConfigError
from seqbench.metrics import parse_metric
from seqbench.report.load import CellResult, ResultFileError, Results, Split, VariantInfo
from seqbench.stats import seed_summary

DECIMALS = 4  # metric values are shown, and best/second decided, at this precision
CI_LEVEL = 0.95  # of the t-based interval over seeds kept with each metric cell
CellKind = Literal[
    "text", "metric", "count", "seconds", "rate", "mib", "delta", "percent", "effect", "pvalue",
    "exponent",
]  # fmt: skip
TableKind = Literal[
    "metric", "efficiency", "ablation", "strata", "robustness", "scaling", "summary"
]
Align = Literal["left", "right"]


@dataclass
class Cell:
    """One table cell: a label (``kind == "text"``) or a statistic over seeds."""

    kind: CellKind = "text"
    text: str = ""
    mean: float | None = None
    std: float | None = None  # sample std (ddof=1); None for n < 2
    ci_low: float | None = None  # t-based interval over seeds (metrics, n ≥ 2), or of a delta
    ci_high: float | None = None
    n: int = 0  # seeds behind the numbers
    values: tuple[float, ...] = ()  # per seed, in ``seeds`` order
    seeds: tuple[int, ...] = ()
    bold: bool = False  # best in its column
    underline: bool = False  # second best in its column
    marks: list[str] = field(default_factory=list)  # superscripts, explained in the legend
    qualifier: str = ""  # shown after the number, e.g. "GPU" / "RSS" for memory
    comparison: dict[str, Any] | None = None  # the paired test against the reference, as JSON
    # coordinates, for tidy exports: which variant, dataset and quantity the numbers are
    variant: str | None = None
    dataset: str | None = None
    quantity: str | None = None

    @property
    def empty(self) -> bool:
        """A statistic with no value (no successful seed)."""
        return self.kind != "text" and self.mean is None


@dataclass
class Table:
    """A titled grid of cells with column headers and a legend (one line per item)."""

    key: str  # stable name: the metric ("ndcg@10"), "efficiency", "ablation:…", "strata:…"
    kind: TableKind
    title: str
    header: list[str]
    align: list[Align]
    rows: list[list[Cell]]
    legend: list[str] = field(default_factory=list)
    split: str | None = None

    def column(self, index: int) -> list[Cell]:
        return [row[index] for row in self.rows]


@dataclass
class FailedCell:
    """A failed cell, listed in the report and left out of every aggregate."""

    variant: str
    dataset: str
    seed: int
    error: str
    path: str


@dataclass
class Report:
    """Metric tables, an efficiency table, failed cells, notes and warnings."""

    title: str
    source: str  # the folder read
    split: str
    tables: list[Table]  # one per metric
    efficiency: Table | None
    failed: list[FailedCell] = field(default_factory=list)
    variants: list[VariantInfo] = field(default_factory=list)  # rows' identities, in order
    notes: list[str] = field(default_factory=list)  # what the numbers are
    warnings: list[str] = field(default_factory=list)  # what was skipped or doubtful
    results: Results | None = field(default=None, repr=False, compare=False)  # for statistics
    # filled by seqbench.report.analysis.analyse (empty for a plain report)
    ablations: list[Table] = field(default_factory=list)  # one per metric with ablations
    strata: list[Table] = field(default_factory=list)  # per metric × dataset
    robustness: list[Table] = field(default_factory=list)  # per metric with noise conditions
    scaling: list[Table] = field(default_factory=list)  # throughput cells over lengths
    summaries: list[Table] = field(default_factory=list)  # per dataset, every metric (analysed)
    analysis: dict[str, Any] = field(default_factory=dict)  # settings, references, comparisons
    pairs: list[Any] = field(default_factory=list, repr=False, compare=False)  # compare.Paired

    @property
    def all_tables(self) -> list[Table]:
        efficiency = [self.efficiency] if self.efficiency else []
        return [
            *self.summaries, *self.tables, *efficiency, *self.ablations, *self.strata,
            *self.robustness, *self.scaling,
        ]  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        """Every number behind every table, JSON-able (the loaded results are left out)."""
        skipped = ("results", "pairs")  # the loaded store; the comparisons are in ``analysis``
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)
                if f.name not in skipped}  # fmt: skip


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def normalize_metric(name: str) -> str:
    """``" NDCG@10"`` → ``"ndcg@10"``; a :class:`ConfigError` listing what is accepted."""
    try:
        kind, k = parse_metric(name)
    except ValueError as exc:
        raise ConfigError(f"--metric: {exc}") from None
    return f"{kind}@{k}"


def metric_title(name: str) -> str:
    kind, k = parse_metric(name)
    return f"{kind.upper()}@{k}"


def build_report(
    results: Results,
    metrics: Sequence[str] | None = None,
    split: Split = "test",
    from_ranks: bool = False,
) -> Report:
    """Aggregate ``results`` over seeds into one table per metric plus the efficiency table.

    ``metrics`` default to those recorded in result.json; a metric not recorded there (or every
    metric, with ``from_ranks``) is recomputed from ranks.npz.
    """
    names = list(dict.fromkeys(normalize_metric(m) for m in metrics or ()))
    names = names or results.metric_names(split)
    warnings = list(results.warnings)
    ties = sorted({_tie_policy(c) for c in results.cells})
    if len(ties) > 1:
        warnings.append(f"the results mix tie policies ({', '.join(ties)}); their metrics are "
                        "not comparable (set eval.ties alike and re-run)")  # fmt: skip
    tables = [metric_table(results, name, split, from_ranks, warnings) for name in names]
    suites = results.suites
    return Report(
        title="seqbench report" + (f": {', '.join(suites)}" if any(suites) else ""),
        source=str(results.root),
        split=split,
        tables=tables,
        efficiency=efficiency_table(results) if results.cells else None,
        failed=[
            FailedCell(c.variant.display, c.dataset, c.seed, c.error, _relative(c, results))
            for c in results.failed
        ],
        variants=list(results.variants),
        notes=_notes(results),
        warnings=warnings,
        results=results,
    )


def metric_table(
    results: Results, name: str, split: Split, from_ranks: bool, warnings: list[str]
) -> Table:
    """Rows = variants, columns = datasets, cells = mean ± std over seeds; best and second
    marked per column."""
    sources: set[str] = set()
    rows = []
    for variant in results.variants:
        row = [Cell(text=variant.display, variant=variant.display)]
        for dataset in results.datasets:
            seeds, values = [], []
            for cell in results.group(variant, dataset):
                value = _metric_value(cell, name, split, from_ranks, warnings, sources)
                if value is not None:
                    seeds.append(cell.seed)
                    values.append(value)
            row.append(aggregate(values, seeds, "metric", variant.display, dataset, name))
        rows.append(row)
    table = Table(
        key=name,
        kind="metric",
        title=f"{metric_title(name)} ({split})",
        header=["variant", *results.datasets],
        align=["left", *["right"] * len(results.datasets)],
        rows=rows,
        split=split,
    )
    for column in range(1, len(table.header)):
        emphasize(table.column(column))
    table.legend = _metric_legend(name, split, sources, table)
    return table


def efficiency_table(results: Results) -> Table:
    """One row per variant × dataset: size, speed, memory and device, averaged over seeds."""
    header = ["variant", "dataset", "seeds", "parameters", "s/epoch", "to best", "epochs",
              "total time", "inference users/s", "peak memory", "device"]  # fmt: skip
    rows = []
    for variant in results.variants:
        for dataset in results.datasets:
            group = results.group(variant, dataset)
            if not group:
                continue
            coords = (variant.display, dataset)
            seeds = [c.seed for c in group]
            row = [
                Cell(text=variant.display, variant=variant.display),
                Cell(text=dataset, dataset=dataset),
                Cell(kind="count", mean=len(group), n=len(group), seeds=tuple(seeds),
                     variant=variant.display, dataset=dataset, quantity="seeds"),
            ]  # fmt: skip
            for quantity, kind, read in _EFFICIENCY:
                pairs = [(c.seed, read(c)) for c in group]
                kept = [(s, v) for s, v in pairs if v is not None]
                row.append(aggregate([v for _, v in kept], [s for s, _ in kept], kind, *coords,
                                     quantity))  # fmt: skip
            row.append(_memory_cell(group, *coords))
            names = dict.fromkeys(_device_name(c) for c in group)
            row.append(Cell(text=", ".join(names), variant=variant.display, dataset=dataset,
                            quantity="device"))  # fmt: skip
            rows.append(row)
    legend = [
        "Means over the seeds of each row.",
        "s/epoch: training seconds per epoch; to best: epochs trained up to the best "
        "validation score, whose weights were tested (result.json's best_epoch + 1); epochs: "
        "epochs trained in all (early stopping ends a run stopping_step + 1 epochs after its "
        "best); total time: the cell's wall time "
        "(data, training, evaluation); inference users/s: test users scored per second.",
        "Peak memory: GPU = peak CUDA memory allocated by PyTorch; RSS = peak resident "
        "memory of the cell's process (CPU runs).",
    ]
    return Table(
        key="efficiency",
        kind="efficiency",
        title="Efficiency",
        header=header,
        align=["left", "left", *["right"] * 8, "left"],
        rows=rows,
        legend=legend,
    )


def aggregate(
    values: Sequence[float],
    seeds: Sequence[int],
    kind: CellKind,
    variant: str | None = None,
    dataset: str | None = None,
    quantity: str | None = None,
) -> Cell:
    """Mean and sample std (ddof=1) of per-seed ``values``; no std for a single seed."""
    cell = Cell(kind=kind, variant=variant, dataset=dataset, quantity=quantity)
    if not values:
        return cell
    array = np.asarray(values, dtype=np.float64)
    cell.values, cell.seeds, cell.n = tuple(float(v) for v in array), tuple(seeds), array.size
    cell.mean = float(array.mean())
    cell.std = float(array.std(ddof=1)) if array.size > 1 else None
    if kind == "metric" and array.size > 1:
        interval = seed_summary(array, level=CI_LEVEL).ci
        if interval is not None:
            cell.ci_low, cell.ci_high = float(interval.low), float(interval.high)
    return cell


def emphasize(cells: Sequence[Cell], decimals: int = DECIMALS) -> None:
    """Bold the best mean (higher is better) and underline the second, compared at the shown
    precision so that ties share the emphasis; one value alone gets no underline."""
    filled = [c for c in cells if c.mean is not None]
    shown = {id(c): round(c.mean, decimals) for c in filled}  # type: ignore[arg-type]
    levels = sorted(set(shown.values()), reverse=True)
    if not levels:
        return
    for cell in filled:
        cell.bold = shown[id(cell)] == levels[0]
        cell.underline = len(filled) >= 2 and len(levels) >= 2 and shown[id(cell)] == levels[1]


def _metric_value(
    cell: CellResult,
    name: str,
    split: Split,
    from_ranks: bool,
    warnings: list[str],
    sources: set[str],
) -> float | None:
    try:
        value, source = cell.metric(name, split, from_ranks)
    except ResultFileError as exc:
        warnings.append(f"{name} of {cell.variant.display} on {cell.dataset}, seed {cell.seed} "
                        f"left out: {exc}")  # fmt: skip
        return None
    sources.add(source)
    return value


def _metric_legend(name: str, split: str, sources: set[str], table: Table) -> list[str]:
    where = {
        frozenset({"result.json"}): "as recorded in result.json",
        frozenset({"ranks.npz"}): "recomputed from each user's rank in ranks.npz",
    }.get(frozenset(sources), "from result.json where recorded, else recomputed from ranks.npz")
    legend = [
        f"{metric_title(name)} on the {split} split, {where}.",
        "Mean ± sample standard deviation (ddof=1) over seeds; n = number of seeds "
        "(n=1: the single value, no std; t-based 95% intervals over seeds in the CSV and JSON).",
        "Bold: best per dataset; underlined: second best (higher is better; equal values at "
        f"{DECIMALS} decimals share the emphasis).",
    ]
    if any(c.empty for row in table.rows for c in row):
        legend.append("–: no successful run.")
    return legend


def _timing(key: str) -> Any:
    def read(cell: CellResult) -> float | None:
        timing = cell.data.get("timing")
        return _number(timing.get(key)) if isinstance(timing, dict) else None

    return read


_EFFICIENCY: tuple[tuple[str, CellKind, Any], ...] = (
    ("parameters", "count", lambda c: _number(c.data.get("parameters"))),
    ("seconds_per_epoch", "seconds", _timing("seconds_per_epoch")),
    ("epochs_to_best", "count", lambda c: _plus_one(c.data.get("best_epoch"))),
    ("epochs_run", "count", lambda c: _number(c.data.get("epochs_run"))),
    ("total_seconds", "seconds", _timing("total_seconds")),
    ("users_per_second", "rate", _timing("users_per_second")),
)


def _plus_one(value: Any) -> float | None:
    number = _number(value)
    return None if number is None else number + 1


def _memory_cell(group: list[CellResult], variant: str, dataset: str) -> Cell:
    """Peak device memory where the cells ran on a GPU, else peak RSS; the qualifier says which."""
    seeds, values, kinds = [], [], set()
    for cell in group:
        memory = cell.data.get("memory")
        memory = memory if isinstance(memory, dict) else {}
        device, rss = _number(memory.get("peak_device_mib")), _number(memory.get("peak_rss_mib"))
        value = device if device is not None else rss
        if value is not None:
            seeds.append(cell.seed)
            values.append(value)
            kinds.add("GPU" if device is not None else "RSS")
    memory_cell = aggregate(values, seeds, "mib", variant, dataset, "peak_memory_mib")
    memory_cell.qualifier = "/".join(sorted(kinds)) + (" mixed" if len(kinds) > 1 else "")
    return memory_cell


def _device_name(cell: CellResult) -> str:
    environment = cell.data.get("environment")
    if not isinstance(environment, dict):
        return "?"
    return str(environment.get("device_name") or environment.get("device") or "?")


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _relative(cell: CellResult, results: Results) -> str:
    """The cell's folder under the folder read (absolute if it is elsewhere)."""
    try:
        return str(cell.dir.relative_to(results.root))
    except ValueError:
        return str(cell.dir)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _tie_policy(cell: CellResult) -> str:
    settings = cell.data["cell"].get("eval")
    return str(settings.get("ties", "?")) if isinstance(settings, dict) else "?"


def _notes(results: Results) -> list[str]:
    parts = [_count(len(results.cells), "cell")]
    if results.failed:
        parts.append(f"{len(results.failed)} failed (listed, not aggregated)")
    if results.skipped:
        parts.append(f"{_count(results.skipped, 'unreadable file')} skipped")
    files = _count(results.files, "result.json file")
    notes = [f"{', '.join(parts)}, from {files} under {results.root}."]
    ties = sorted({_tie_policy(c) for c in results.cells})
    if len(ties) == 1:
        where = {
            "pessimistic": "last among the items scored like it",
            "expected": "metrics averaged over its positions among the items scored like it",
        }
        notes.append(f"Tie policy: {ties[0]} (a target tied with other items counts "
                     f"{where.get(ties[0], 'as the results say')}).")  # fmt: skip
    elif ties:
        notes.append(f"Results mix tie policies ({', '.join(ties)}): compare with care.")
    return notes


__all__ = [
    "DECIMALS",
    "Cell",
    "FailedCell",
    "Report",
    "Table",
    "VariantInfo",
    "aggregate",
    "build_report",
    "efficiency_table",
    "emphasize",
    "metric_table",
    "normalize_metric",
]
