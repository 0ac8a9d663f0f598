"""Sequence-length scaling of throughput cells (``[train] mode = "throughput"``, issue 18).

From the cells of one variant at several ``max_len`` (a sweep, or one entry per length):

- **lines** (:func:`scaling_lines`): per variant (all but its length) and dataset, each length's
  status — ``ok``, or the cap that ended it (``oom``, ``timeout``) — the median seconds per
  timed training step (over every timed step of every seed), the training memory above the
  cell's baseline, scoring users per second;
- **slopes** (:func:`fit_time`, :func:`fit_memory`): the least-squares slope of log time per
  step, and of log memory above the baseline, on log length, over the lengths ≥
  :data:`MIN_LENGTH` that completed (1: linear, 2: quadratic); the time slope with a percentile
  bootstrap interval over repeated steps (each length's steps resampled, its median refitted);
  memory has one peak per length, hence no interval;
- **crossovers** (:func:`crossover`): per Mamba-family line and attention line on a dataset,
  the length from which the Mamba model is cheaper (time, memory) at every longer length both
  completed, interpolated in log-log between the two measured lengths around it — or the
  length at which the attention model reached a cap that the Mamba model did not.

A Mamba-family model is one with Mamba parameters (``d_state``) and no attention heads; an
attention model has heads (``n_heads``) and no ``d_state`` (the hybrid Bi-Mambaformer4Rec is
neither). Everything goes into tables (Markdown, LaTeX, CSV) and ``report.json``
(``analysis.scaling``); :mod:`seqbench.report.plots` draws the lines with their caps.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from seqbench.report.load import CellResult, Results, VariantInfo
from seqbench.report.options import ReportOptions
from seqbench.report.tables import Cell, Report, Table

#: Only lengths from here on enter the slopes: below, fixed costs (embedding lookups, the
#: output layer over every item, Python overhead) hide how a model scales with length.
MIN_LENGTH = 512
KEY = "max_len"
CAPS = {"oom": "OOM", "timeout": "timeout"}


@dataclass
class Point:
    """One length of a line."""

    length: int
    status: str  # ok, oom, timeout or failed (the best over seeds: ok if any seed is)
    seconds: float | None = None  # median seconds per timed training step
    step_seconds: list[float] = field(default_factory=list)  # every timed step, all seeds
    memory: float | None = None  # MiB above the baseline, training (mean over seeds)
    score_memory: float | None = None  # MiB above the baseline, scoring
    users_per_second: float | None = None
    tokens_per_second: float | None = None
    reason: str = ""  # why a cap ended it

    @property
    def capped(self) -> bool:
        return self.status in CAPS

    @property
    def cap_text(self) -> str:
        return f"{CAPS.get(self.status, self.status)} at L = {self.length}"


@dataclass
class Line:
    """A variant (all but its length) on one dataset, at each length it ran."""

    label: str
    dataset: str
    model: str
    family: str  # "mamba", "attention" or "other"
    memory_kind: str  # "rss" or "cuda"
    points: list[Point] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.label

    def completed(self) -> list[Point]:
        return [p for p in self.points if p.status == "ok"]

    def first_cap(self) -> Point | None:
        return next((p for p in self.points if p.capped), None)


@dataclass
class Fit:
    """A log-log slope: the exponent of a power law over ``lengths``."""

    slope: float | None
    low: float | None = None
    high: float | None = None
    lengths: list[int] = field(default_factory=list)


def family(variant: VariantInfo) -> str:
    params = variant.params
    if "d_state" in params and "n_heads" not in params:
        return "mamba"
    if "n_heads" in params and "d_state" not in params:
        return "attention"
    return "other"


def is_throughput(cell: CellResult) -> bool:
    train = cell.data.get("cell", {}).get("train")
    return isinstance(train, dict) and train.get("mode") == "throughput"


def scaling_lines(results: Results) -> list[Line]:
    """Every variant of throughput cells with at least two lengths, per dataset, in the
    results' order of variants; points sorted by length."""
    found: dict[tuple[str, str], dict[int, list[CellResult]]] = {}
    firsts: dict[tuple[str, str], VariantInfo] = {}
    for cell in [*results.cells, *results.failed]:
        length = _length(cell)
        if not is_throughput(cell) or length is None:
            continue
        key = (_without_length(cell.variant), cell.dataset)
        found.setdefault(key, {}).setdefault(length, []).append(cell)
        firsts.setdefault(key, cell.variant)
    order = {v.key: i for i, v in enumerate(results.variants)}
    keys = sorted(found, key=lambda k: (order.get(firsts[k].key, 0), k[1]))
    lines = []
    for key in keys:
        by_length = found[key]
        if len(by_length) < 2:
            continue
        variant = firsts[key]
        cells = [c for group in by_length.values() for c in group]
        kinds = {_section(c).get("memory", {}).get("kind") for c in cells} - {None}
        line = Line(_base_label(variant), key[1], variant.model, family(variant),
                    "cuda" if "cuda" in kinds else "rss")  # fmt: skip
        line.points = [_point(length, by_length[length]) for length in sorted(by_length)]
        lines.append(line)
    return lines


def _point(length: int, cells: list[CellResult]) -> Point:
    ok = [c for c in cells if c.status == "ok" and _section(c).get("step_seconds")]
    if not ok:
        ended = next((c for c in cells if c.status in CAPS), cells[0])
        stopped = ended.data.get("stopped") or {}
        return Point(length, ended.status, reason=str(stopped.get("reason") or ended.error))
    steps = [float(s) for c in ok for s in _section(c)["step_seconds"]]
    return Point(
        length,
        "ok",
        seconds=statistics.median(steps),
        step_seconds=steps,
        memory=_mean([_above(c, "train_peak") for c in ok]),
        score_memory=_mean([_above(c, "score_peak") for c in ok]),
        users_per_second=_mean([_section(c).get("users_per_second") for c in ok]),
        tokens_per_second=_mean([_section(c).get("tokens_per_second") for c in ok]),
    )


def loglog_fit(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Least-squares slope of log y on log x (None with fewer than two distinct x, or any
    value that is not positive)."""
    if len(set(x)) < 2 or any(v <= 0 for v in (*x, *y)):
        return None
    return float(np.polyfit(np.log(np.asarray(x, float)), np.log(np.asarray(y, float)), 1)[0])


def fit_time(
    line: Line, min_length: int = MIN_LENGTH, resamples: int = 10_000, level: float = 0.95,
    seed: int = 0,
) -> Fit:  # fmt: skip
    """The slope of log median step time on log length over completed lengths ≥
    ``min_length``, with a percentile bootstrap interval: each length's steps resampled with
    replacement, their median refitted."""
    points = [p for p in line.completed() if p.length >= min_length and p.step_seconds]
    lengths = [p.length for p in points]
    slope = loglog_fit(lengths, [p.seconds for p in points])  # type: ignore[misc]
    if slope is None:
        return Fit(None, lengths=lengths)
    rng = np.random.default_rng(seed)
    draws = np.empty((resamples, len(points)))
    for j, p in enumerate(points):
        steps = np.asarray(p.step_seconds, dtype=np.float64)
        picks = rng.integers(0, steps.size, size=(resamples, steps.size))
        draws[:, j] = np.median(steps[picks], axis=1)
    logx = np.log(np.asarray(lengths, dtype=np.float64))
    centred = logx - logx.mean()
    slopes = (np.log(draws) @ centred) / (centred @ centred)  # OLS slope of every resample
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(slopes, [tail, 100 - tail])
    return Fit(slope, float(low), float(high), lengths)


def fit_memory(line: Line, min_length: int = MIN_LENGTH, scoring: bool = False) -> Fit:
    """The slope of log memory above the baseline on log length over completed lengths ≥
    ``min_length`` with a positive reading (no interval: one peak per length)."""
    points = [p for p in line.completed() if p.length >= min_length]
    values = [(p.length, p.score_memory if scoring else p.memory) for p in points]
    kept = [(x, y) for x, y in values if y is not None and y > 0]
    lengths = [x for x, _ in kept]
    return Fit(loglog_fit(lengths, [y for _, y in kept]), lengths=lengths)


def crossover(mamba: Line, attention: Line, quantity: str = "seconds") -> dict[str, Any]:
    """From which length ``mamba`` is cheaper than ``attention`` in ``quantity`` ("seconds" or
    "memory"), on the lengths both completed: the smallest length from which it is cheaper at
    every longer common length, interpolated in log-log with the length before it; or the first
    length at which the attention model hit a cap the Mamba model did not."""
    ours = {p.length: p for p in mamba.points}
    theirs = {p.length: p for p in attention.points}
    common = sorted(
        length for length in ours.keys() & theirs.keys()
        if ours[length].status == theirs[length].status == "ok"
        and getattr(ours[length], quantity) and getattr(theirs[length], quantity)
    )  # fmt: skip
    ratios = [getattr(ours[x], quantity) / getattr(theirs[x], quantity) for x in common]
    found: dict[str, Any] = {"mamba": mamba.label, "attention": attention.label,
                             "dataset": mamba.dataset, "quantity": quantity, "length": None,
                             "how": "none", "lengths": common, "ratios": ratios}  # fmt: skip
    start = len(ratios)
    while start > 0 and ratios[start - 1] <= 1:
        start -= 1
    if start < len(ratios):  # cheaper from common[start] on
        if start == 0:
            found.update(length=common[0], how="below")
        else:
            x0, x1 = math.log(common[start - 1]), math.log(common[start])
            r0, r1 = math.log(ratios[start - 1]), math.log(ratios[start])
            found.update(length=math.exp(x0 + (0 - r0) * (x1 - x0) / (r1 - r0)),
                         how="interpolated")  # fmt: skip
        return found
    capped = sorted(
        length for length, p in theirs.items()
        if p.capped and length in ours and ours[length].status == "ok"
    )  # fmt: skip
    if capped:
        found.update(length=capped[0], how="cap", cap=theirs[capped[0]].status)
    return found


def crossover_text(found: dict[str, Any]) -> str:
    length, how = found["length"], found["how"]
    if how == "interpolated":
        return f"≈ {length:,.0f}"
    if how == "below":
        return f"≤ {length:,}"
    if how == "cap":
        return f"{length:,} ({found['attention']}: {CAPS.get(found['cap'], found['cap'])})"
    measured = found["lengths"]
    return f"none up to {measured[-1]:,}" if measured else "no common length"


# ------------------------------------------------------------------------------------ tables


def add_scaling(report: Report, options: ReportOptions) -> None:
    """Add the scaling tables to ``report`` and everything behind them to
    ``report.analysis["scaling"]`` (nothing when the results hold no scaling lines)."""
    if report.results is None:
        return
    lines = scaling_lines(report.results)
    if not lines:
        return
    several = len({line.dataset for line in lines}) > 1
    fits = {
        id(line): (
            fit_time(line, resamples=options.n_resamples, level=options.level, seed=options.seed),
            fit_memory(line),
        )
        for line in lines
    }
    pairs = [
        crossover(m, a, quantity)
        for m in lines if m.family == "mamba"
        for a in lines if a.family == "attention" and a.dataset == m.dataset
        for quantity in ("seconds", "memory")
    ]  # fmt: skip
    lengths = sorted({p.length for line in lines for p in line.points})
    report.scaling = [
        _length_table(lines, lengths, "seconds", fits, several, options),
        _length_table(lines, lengths, "memory", fits, several, options),
    ]
    if pairs:
        report.scaling.append(_crossover_table(pairs, several))
    report.analysis["scaling"] = {
        "min_length": MIN_LENGTH,
        "level": options.level,
        "resamples": options.n_resamples,
        "lines": [
            {**asdict(line), "time_fit": asdict(fits[id(line)][0]),
             "memory_fit": asdict(fits[id(line)][1]),
             "first_cap": line.first_cap().cap_text if line.first_cap() else None}
            for line in lines
        ],
        "crossovers": [{**c, "text": crossover_text(c)} for c in pairs],
    }  # fmt: skip


def _length_table(
    lines: list[Line],
    lengths: list[int],
    quantity: str,
    fits: dict[int, tuple[Fit, Fit]],
    several: bool,
    options: ReportOptions,
) -> Table:
    time = quantity == "seconds"
    rows = []
    for line in lines:
        name = line.label + (f" ({line.dataset})" if several else "")
        coords = {"variant": line.label, "dataset": line.dataset}
        row = [Cell(text=name, **coords)]
        at = {p.length: p for p in line.points}
        for length in lengths:
            point = at.get(length)
            q = f"{'seconds_per_step' if time else 'memory_above_baseline_mib'}@{length}"
            if point is None:
                row.append(Cell(kind="seconds" if time else "mib", quantity=q, **coords))
            elif point.status != "ok":
                row.append(Cell(text=CAPS.get(point.status, point.status), quantity=q, **coords))
            else:
                value = point.seconds if time else point.memory
                kind = "seconds" if time else "mib"
                row.append(Cell(kind=kind, mean=value, n=1 if value is not None else 0,
                                values=(value,) if value is not None else (), quantity=q,
                                **coords))  # fmt: skip
        fit = fits[id(line)][0 if time else 1]
        slope = Cell(kind="exponent", mean=fit.slope, n=len(fit.lengths), quantity="slope",
                     ci_low=fit.low, ci_high=fit.high, **coords)  # fmt: skip
        cap = line.first_cap()
        row += [slope, Cell(text=cap.cap_text if cap else "–", quantity="first_cap", **coords)]
        rows.append(row)
    level = round(options.level * 100)
    legend = [
        "Median seconds per timed training step (every timed step of every seed)."
        if time
        else f"Peak {_kinds(lines)} memory while training, minus the cell's memory before the "
        "first step (its baseline).",
        "OOM / timeout: the cell passed its memory or time cap at that length (status oom or "
        "timeout; the reason is in its result.json); –: not run.",
        f"Slope: least-squares slope of log {'time per step' if time else 'memory'} on log "
        f"length over the completed lengths ≥ {MIN_LENGTH} (1 = linear, 2 = quadratic)"
        + (
            f", with its {level}% percentile bootstrap interval over repeated steps "
            f"({options.n_resamples:,} resamples of each length's steps)."
            if time
            else " (one peak per length: no interval)."
        ),
    ]
    return Table(
        key=f"scaling:{quantity}",
        kind="scaling",
        title="Scaling: " + ("time per training step" if time else "memory above the baseline"),
        header=["variant", *[f"L = {x:,}" for x in lengths], "slope", "first cap"],
        align=["left", *["right"] * (len(lengths) + 1), "left"],
        rows=rows,
        legend=legend,
    )


def _crossover_table(pairs: list[dict[str, Any]], several: bool) -> Table:
    rows = []
    seen: dict[tuple[str, str, str], dict[str, Any]] = {}
    for found in pairs:
        seen.setdefault((found["mamba"], found["attention"], found["dataset"]), {})[
            found["quantity"]
        ] = found
    for (mamba, attention, dataset), both in seen.items():
        coords = {"variant": mamba, "dataset": dataset}
        pair = f"{mamba} vs {attention}" + (f" ({dataset})" if several else "")
        row = [Cell(text=pair, **coords)]
        for quantity in ("seconds", "memory"):
            found = both.get(quantity)
            text = crossover_text(found) if found else "–"
            row.append(Cell(text=text, quantity=f"crossover_{quantity}", **coords))
        rows.append(row)
    return Table(
        key="scaling:crossover",
        kind="scaling",
        title="Scaling: length from which the Mamba model is cheaper",
        header=["Mamba vs attention model", "time per step", "memory above baseline"],
        align=["left", "right", "right"],
        rows=rows,
        legend=[
            "The length from which the Mamba-family model costs less than the attention model at "
            "every longer length both completed: ≈ interpolated in log-log between the two "
            "measured lengths around it; ≤: already at the shortest common length; (OOM / "
            "timeout): the attention model reached its cap at a length the Mamba model "
            "completed; none: not within the lengths measured.",
        ],
    )


def _kinds(lines: list[Line]) -> str:
    kinds = sorted({"CUDA allocator" if line.memory_kind == "cuda" else "resident (RSS)"
                    for line in lines})  # fmt: skip
    return "/".join(kinds)


# ------------------------------------------------------------------------------------ helpers


def _section(cell: CellResult) -> dict[str, Any]:
    section = cell.data.get("throughput")
    return section if isinstance(section, dict) else {}


def _above(cell: CellResult, peak: str) -> float | None:
    memory = _section(cell).get("memory") or {}
    top, base = memory.get(peak), memory.get("baseline")
    if not isinstance(top, (int, float)) or not isinstance(base, (int, float)):
        return None
    return float(top) - float(base)


def _length(cell: CellResult) -> int | None:
    protocol = cell.data.get("cell", {}).get("protocol")
    value = protocol.get(KEY) if isinstance(protocol, dict) else None
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


def _without_length(variant: VariantInfo) -> str:
    import json

    sweep = {k: v for k, v in variant.sweep.items() if k != KEY}
    identity = [variant.model, variant.ablation, variant.role, sweep, variant.params,
                _base_label(variant)]  # fmt: skip
    return json.dumps(identity, sort_keys=True, default=str)


def _base_label(variant: VariantInfo) -> str:
    """The variant's label without its length (``sasrec@max_len=512`` → ``sasrec``)."""
    base, _, point = variant.display.partition("@")
    rest = [part for part in point.split(",") if part and not part.startswith(f"{KEY}=")]
    return base + ("@" + ",".join(rest) if rest else "")


def _mean(values: Sequence[float | None]) -> float | None:
    kept = [float(v) for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    return float(np.mean(kept)) if kept else None
