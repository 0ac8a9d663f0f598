"""Figures of a report (``seqbench report --plots``), each as PNG and PDF under OUTDIR/plots/.

- ``sweep-<key>-<metric>``: the metric against each swept parameter (a key of the variants'
  ``sweep``), one line per group of variants equal in everything but that key, one panel per
  dataset; points are means over seeds, bars t-based 95% intervals over seeds (none for n=1).
- ``noise-<key>-<metric>``: the same for sweep keys that name a noise level (contain "noise").
- ``noise-<kind>-<metric>``: each variant's metric against the level of its evaluation
  conditions of one kind, a panel per dataset and position (end, beginning, …); and
  ``noise-train-<kind>-<metric>``: the clean test against a ``[train] noise`` sweep's level
  (:mod:`seqbench.report.robustness`).
- ``scaling-max_len``: seconds per epoch and peak memory against the sequence length ``max_len``,
  log-log, with the fitted slope of each line (1: linear, 2: quadratic).
- ``scaling-throughput``: for throughput cells, seconds per training step and training memory
  above the baseline against ``max_len``, log-log, with each line's slope over lengths ≥ 512
  (:mod:`seqbench.report.scaling`) and a cross with "OOM" / "timeout" where a cap ended it.
- ``differences-<metric>-<dataset>-<variant>-vs-<reference>``: the histogram of per-user
  differences (each side averaged over its seeds) for each comparison of the first metric's
  table with its reference, or for the ``--compare A,B`` pair.

The data of every figure comes from a pure function (:func:`sweep_series`,
:func:`scaling_series`, :func:`difference_histogram`) so that what is drawn can be checked
without looking at pixels. Figures are drawn on :class:`matplotlib.figure.Figure` directly (no
pyplot, no global backend switch), so plotting is safe in any process.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter, ScalarFormatter

from seqbench import atomic
from seqbench.report import scaling
from seqbench.report.compare import Paired, PerUser, find_variant, same_users
from seqbench.report.load import CellResult, ResultFileError, Results, VariantInfo
from seqbench.report.options import ReportOptions
from seqbench.report.robustness import TRAIN_NOISE, write_noise_plots
from seqbench.report.tables import Report, metric_title
from seqbench.stats import seed_summary

FORMATS = ("png", "pdf")
NOISE = "noise"  # a sweep key containing this is plotted as a noise level
SCALING_KEY = "max_len"


@dataclass
class Series:
    """One line of a figure: y (mean over seeds, interval) at each x."""

    label: str
    dataset: str
    x: list[Any] = field(default_factory=list)
    mean: list[float] = field(default_factory=list)
    low: list[float | None] = field(default_factory=list)  # None: a single seed
    high: list[float | None] = field(default_factory=list)
    n: list[int] = field(default_factory=list)  # seeds behind each point

    def add(self, x: Any, values: Sequence[float], level: float = 0.95) -> None:
        summary = seed_summary(values, level)
        self.x.append(x)
        self.mean.append(summary.mean)
        self.low.append(summary.ci.low if summary.ci else None)
        self.high.append(summary.ci.high if summary.ci else None)
        self.n.append(summary.n)


# ---------------------------------------------------------------------------------------------
# The data (pure functions)
# ---------------------------------------------------------------------------------------------


def sweep_keys(results: Results) -> list[str]:
    """Every key swept by some variant, in the order first seen."""
    return list(dict.fromkeys(k for v in results.variants for k in v.sweep))


def group_label(variant: VariantInfo, key: str) -> str:
    """The variant's label without its sweep point, plus its other swept values."""
    base = variant.label.split("@")[0] if variant.sweep else variant.label
    rest = [f"{k}={v}" for k, v in variant.sweep.items() if k != key]
    return base + ("@" + ",".join(rest) if rest else "")


def _without(variant: VariantInfo, key: str) -> str:
    """Identity of ``variant`` with ``key`` removed from its sweep and parameters."""
    sweep = {k: v for k, v in variant.sweep.items() if k != key}
    params = {k: v for k, v in variant.params.items() if k != key}
    identity = [variant.model, variant.ablation, variant.role, sweep, params]
    return json.dumps(identity, sort_keys=True, default=str)


def sweep_series(
    results: Results, key: str, metric: str, split: str = "test", level: float = 0.95
) -> list[Series]:
    """Per group of variants equal but for ``key``, and per dataset: the metric at each value of
    ``key`` (x sorted; numbers before other values), from each seed's result."""
    groups: dict[tuple[str, str], Series] = {}
    for variant in results.variants:
        if key not in variant.sweep:
            continue
        for dataset in results.datasets:
            seeds = (_metric(c, metric, split) for c in results.group(variant, dataset))
            values = [v for v in seeds if v is not None]
            if not values:
                continue
            series = groups.setdefault(
                (_without(variant, key), dataset), Series(group_label(variant, key), dataset)
            )
            series.add(variant.sweep[key], values, level)
    return [_sorted(s) for s in groups.values()]


def _metric(cell: CellResult, metric: str, split: str) -> float | None:
    try:
        return cell.metric(metric, split)[0]  # type: ignore[arg-type]
    except ResultFileError:
        return None


def _sorted(series: Series) -> Series:
    order = sorted(range(len(series.x)), key=lambda i: _order_key(series.x[i]))
    for name in ("x", "mean", "low", "high", "n"):
        values = getattr(series, name)
        setattr(series, name, [values[i] for i in order])
    return series


def _order_key(value: Any) -> tuple[int, float, str]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, float(value), "")
    return (1, 0.0, str(value))


@dataclass
class Scaling:
    """Seconds per epoch and peak memory of one group of variants at each ``max_len``."""

    label: str
    dataset: str
    memory_kind: str  # "GPU" (peak device memory) or "RSS"
    max_len: list[float] = field(default_factory=list)
    seconds: list[float | None] = field(default_factory=list)  # mean over seeds
    memory: list[float | None] = field(default_factory=list)  # MiB, mean over seeds


def scaling_series(results: Results) -> list[Scaling]:
    """Per group of variants equal but for ``max_len`` and per dataset, with ≥ 2 lengths: the
    means over seeds of ``timing.seconds_per_epoch`` and of peak memory (the GPU's when any seed
    recorded one, else RSS), x sorted."""
    found: dict[tuple[str, str], dict[float, list[CellResult]]] = {}
    labels: dict[tuple[str, str], str] = {}
    for variant in results.variants:
        for dataset in results.datasets:
            for cell in results.group(variant, dataset):
                length = _max_len(cell)
                if length is None or scaling.is_throughput(cell):  # drawn by their own figure
                    continue
                key = (_without(variant, SCALING_KEY), dataset)
                found.setdefault(key, {}).setdefault(length, []).append(cell)
                labels.setdefault(key, group_label(variant, SCALING_KEY))
    lines = []
    for key, by_length in found.items():
        if len(by_length) < 2:
            continue
        cells = [c for group in by_length.values() for c in group]
        kind = "GPU" if any(_memory(c, "peak_device_mib") is not None for c in cells) else "RSS"
        field_name = "peak_device_mib" if kind == "GPU" else "peak_rss_mib"
        line = Scaling(labels[key], key[1], kind)
        for length in sorted(by_length):
            group = by_length[length]
            line.max_len.append(length)
            line.seconds.append(_mean([_timing(c, "seconds_per_epoch") for c in group]))
            line.memory.append(_mean([_memory(c, field_name) for c in group]))
        lines.append(line)
    return lines


def loglog_slope(x: Sequence[float], y: Sequence[float | None]) -> float | None:
    """Least-squares slope of log y on log x (the exponent of a power law), None with fewer than
    two positive points."""
    points = [(a, b) for a, b in zip(x, y, strict=True) if b is not None and a > 0 and b > 0]
    if len({a for a, _ in points}) < 2:
        return None
    logs = np.log(np.asarray(points, dtype=np.float64))
    return float(np.polyfit(logs[:, 0], logs[:, 1], 1)[0])


def _max_len(cell: CellResult) -> float | None:
    protocol = cell.data.get("cell", {}).get("protocol")
    value = protocol.get(SCALING_KEY) if isinstance(protocol, dict) else None
    value = cell.variant.sweep.get(SCALING_KEY, value)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _timing(cell: CellResult, key: str) -> float | None:
    timing = cell.data.get("timing")
    return _finite(timing.get(key)) if isinstance(timing, dict) else None


def _memory(cell: CellResult, key: str) -> float | None:
    memory = cell.data.get("memory")
    return _finite(memory.get(key)) if isinstance(memory, dict) else None


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _mean(values: Sequence[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return float(np.mean(kept)) if kept else None


def difference_histogram(differences: np.ndarray, bins: int = 41) -> tuple[np.ndarray, np.ndarray]:
    """(counts, edges) of per-user differences over bins symmetric about 0 (so 0 is a bin's
    centre and gains and losses are drawn alike); counts sum to the number of users."""
    d = np.asarray(differences, dtype=np.float64)
    reach = float(np.abs(d).max()) if d.size else 0.0
    reach = reach if reach > 0 else 1.0
    edges = np.linspace(-reach, reach, bins + 1)
    edges[0], edges[-1] = -reach * (1 + 1e-9), reach * (1 + 1e-9)  # the extremes fall inside
    counts, _ = np.histogram(d, bins=edges)
    return counts, edges


@dataclass
class Differences:
    """Per-user differences of one pair of variants on one dataset, and what the test said."""

    metric: str
    dataset: str
    variant: str
    reference: str
    values: np.ndarray
    p_adjusted: float | None = None
    diff: float | None = None
    low: float | None = None
    high: float | None = None


def difference_sets(report: Report, options: ReportOptions) -> list[Differences]:
    """The ``--compare`` pair on each dataset where both have results, else every comparison of
    the first metric table against its reference; both for the first metric."""
    if not report.tables or report.results is None:
        return []
    metric = report.tables[0].key
    if options.compare is not None:
        results = report.results
        a, b = (find_variant(results, name, "--compare") for name in options.compare)
        per_user = PerUser(results, report.split, report.warnings)  # type: ignore[arg-type]
        found = []
        for dataset in results.datasets:
            va, vb = per_user.get(a, dataset, metric), per_user.get(b, dataset, metric)
            if va is not None and vb is not None and same_users(va, vb, report.warnings):
                where = ("metric", metric, dataset, a.display, b.display)
                tested = [p for p in report.pairs if _where(p) == where]
                if tested:  # the table compared this pair: show its test too
                    found.append(_differences(tested[0]))
                    continue
                values = va.values.mean(axis=0) - vb.values.mean(axis=0)
                found.append(Differences(metric, dataset, a.display, b.display, values))
        return found
    return [
        _differences(p)
        for p in report.pairs
        if p.kind == "metric" and p.metric == metric and p.differences is not None
    ]


def _where(p: Paired) -> tuple[str, str, str, str, str]:
    return (p.kind, p.metric, p.dataset, p.variant, p.reference)


def _differences(p: Paired) -> Differences:
    effect = p.comparison.effect
    assert p.differences is not None
    return Differences(p.metric, p.dataset, p.variant, p.reference, p.differences,
                       p.comparison.p_adjusted, effect.diff, effect.diff_ci.low,
                       effect.diff_ci.high)  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Drawing
# ---------------------------------------------------------------------------------------------


def write_plots(report: Report, options: ReportOptions, folder: Path) -> list[Path]:
    """Draw every figure the results allow into ``folder``; returns the files written."""
    results = report.results
    if results is None:
        return []
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    metrics = [t.key for t in report.tables]
    for key in sweep_keys(results):
        if key == TRAIN_NOISE:  # noise settings, drawn against their level below
            continue
        prefix = "noise" if NOISE in key.lower() else "sweep"
        for metric in metrics:
            series = sweep_series(results, key, metric, report.split, options.level)
            if series:
                figure = _sweep_figure(series, key, metric, report.split, prefix == "noise")
                written += _save(figure, folder / _name(f"{prefix}-{key}-{metric}"))
    written += write_noise_plots(report, options, folder)  # evaluation and training noise
    series = scaling_series(results)
    if series:
        written += _save(_scaling_figure(series), folder / f"scaling-{SCALING_KEY}")
    lines = scaling.scaling_lines(results)
    if lines:
        written += _save(_throughput_figure(lines), folder / "scaling-throughput")
    for found in difference_sets(report, options):
        name = f"differences-{found.metric}-{found.dataset}-{found.variant}-vs-{found.reference}"
        written += _save(_difference_figure(found, report.split), folder / _name(name))
    return written


def _sweep_figure(series: list[Series], key: str, metric: str, split: str, noise: bool) -> Figure:
    datasets = list(dict.fromkeys(s.dataset for s in series))
    figure = Figure(figsize=(4.2 * len(datasets), 3.4), layout="constrained")
    axes = figure.subplots(1, len(datasets), squeeze=False)[0]
    numeric = all(_order_key(x)[0] == 0 for s in series for x in s.x)
    categories = list(dict.fromkeys(x for s in series for x in s.x))
    for ax, dataset in zip(axes, datasets, strict=True):
        for s in (s for s in series if s.dataset == dataset):
            x = s.x if numeric else [categories.index(v) for v in s.x]
            mean = np.asarray(s.mean)
            below = [m - lo if lo is not None else 0.0 for m, lo in zip(s.mean, s.low, strict=True)]
            above = [
                hi - m if hi is not None else 0.0 for m, hi in zip(s.mean, s.high, strict=True)
            ]
            ax.errorbar(x, mean, yerr=[below, above], marker="o", capsize=3, label=s.label)
        if not numeric:
            ax.set_xticks(range(len(categories)), [str(c) for c in categories])
        ax.set_title(dataset)
        ax.set_xlabel(f"{key} (noise level)" if noise else key)
        ax.set_ylabel(f"{metric_title(metric)} ({split})")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    figure.suptitle(
        f"{metric_title(metric)} vs {key}: mean over seeds, 95% CI over seeds", fontsize="medium"
    )
    return figure


def _scaling_figure(lines: list[Scaling]) -> Figure:
    figure = Figure(figsize=(9.0, 3.6), layout="constrained")
    time_ax, memory_ax = figure.subplots(1, 2)
    several = len({line.dataset for line in lines}) > 1
    for line in lines:
        name = line.label + (f" on {line.dataset}" if several else "")
        for ax, values in ((time_ax, line.seconds), (memory_ax, line.memory)):
            x = [a for a, b in zip(line.max_len, values, strict=True) if b is not None]
            y = [b for b in values if b is not None]
            if not y:
                continue
            slope = loglog_slope(x, y)
            label = name + (f" (slope {slope:.2f})" if slope is not None else "")
            ax.plot(x, y, marker="o", label=label)
    kinds = sorted({line.memory_kind for line in lines})
    for ax, ylabel in (
        (time_ax, "seconds per epoch"),
        (memory_ax, f"peak memory, MiB ({'/'.join(kinds)})"),
    ):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.xaxis.set_major_formatter(ScalarFormatter())  # plain lengths, no crowded labels
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xticks(sorted({x for line in lines for x in line.max_len}))
        ax.set_xlabel("max_len (log)")
        ax.set_ylabel(f"{ylabel} (log)")
        ax.grid(alpha=0.3, which="both")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
    figure.suptitle(
        "Training time and memory vs sequence length (means over seeds)", fontsize="medium"
    )
    return figure


def _throughput_figure(lines: list[scaling.Line]) -> Figure:
    figure = Figure(figsize=(10.0, 4.0), layout="constrained")
    time_ax, memory_ax = figure.subplots(1, 2)
    several = len({line.dataset for line in lines}) > 1
    colours = [f"C{i % 10}" for i in range(len(lines))]
    stacked: dict[tuple[int, int], int] = {}  # (panel, length) → caps drawn there so far
    for line, colour in zip(lines, colours, strict=True):
        name = line.label + (f" on {line.dataset}" if several else "")
        for ax, quantity in ((time_ax, "seconds"), (memory_ax, "memory")):
            points = [p for p in line.completed() if (getattr(p, quantity) or 0) > 0]
            x = [p.length for p in points]
            y = [getattr(p, quantity) for p in points]
            fitted = [(a, b) for a, b in zip(x, y, strict=True) if a >= scaling.MIN_LENGTH]
            slope = scaling.loglog_fit([a for a, _ in fitted], [b for _, b in fitted])
            label = name + (f" (slope {slope:.2f})" if slope is not None else "")
            if y:
                ax.plot(x, y, marker="o", color=colour, label=label)
            for p in line.points:
                if p.capped:  # the cap, at the top of the panel (stacked where several meet)
                    k = stacked.get((id(ax), p.length), 0)
                    stacked[(id(ax), p.length)] = k + 1
                    y = 0.96 - 0.07 * k
                    ax.plot([p.length], [y], marker="x", markersize=8, color=colour,
                            transform=ax.get_xaxis_transform(), clip_on=False)  # fmt: skip
                    ax.annotate(scaling.CAPS[p.status], (p.length, y), xytext=(-6, 0),
                                textcoords="offset points", xycoords=ax.get_xaxis_transform(),
                                color=colour, fontsize="x-small", ha="right",
                                va="center")  # fmt: skip
    kinds = sorted({"CUDA" if line.memory_kind == "cuda" else "RSS" for line in lines})
    lengths = sorted({p.length for line in lines for p in line.points})
    for ax, ylabel in (
        (time_ax, "seconds per training step"),
        (memory_ax, f"memory above baseline, MiB ({'/'.join(kinds)})"),
    ):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xticks(lengths)
        ax.tick_params(axis="x", labelrotation=45, labelsize="small")
        ax.set_xlabel("sequence length L = max_len (log)")
        ax.set_ylabel(f"{ylabel} (log)")
        ax.grid(alpha=0.3, which="both")
        if stacked:  # head room for the caps' crosses above the highest point (log axis)
            low, high = ax.get_ylim()
            ax.set_ylim(low, high * (high / low) ** (0.08 * max(stacked.values()) + 0.05))
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="x-small", loc="lower right")
    figure.suptitle(
        f"Throughput vs sequence length (slopes over L ≥ {scaling.MIN_LENGTH}; × = cap reached)",
        fontsize="medium",
    )
    return figure


def _difference_figure(found: Differences, split: str) -> Figure:
    counts, edges = difference_histogram(found.values)
    figure = Figure(figsize=(5.5, 3.6), layout="constrained")
    ax = figure.subplots()
    ax.bar(edges[:-1], counts, width=np.diff(edges), align="edge", color="tab:blue", alpha=0.8)
    ax.axvline(0.0, color="black", linewidth=0.8)
    mean = float(found.values.mean()) if found.values.size else 0.0
    ax.axvline(mean, color="tab:red", linestyle="--", label=f"mean {mean:+.4f}")
    if found.low is not None and found.high is not None:
        ax.axvspan(found.low, found.high, color="tab:red", alpha=0.15, label="95% CI of the mean")
    ax.set_xlabel(f"per-user difference in {metric_title(found.metric)} ({split})")
    ax.set_ylabel("users")
    ax.legend(fontsize="small")
    tail = f", adjusted p = {found.p_adjusted:.3g}" if found.p_adjusted is not None else ""
    ax.set_title(
        f"{found.variant} − {found.reference}\n{found.dataset}: {found.values.size} users{tail}",
        fontsize="medium",
    )
    return figure


#: How every figure seqbench draws is named (here, in seqbench.report.robustness and .tuning).
FIGURE_PREFIXES = ("sweep-", "noise-", "scaling-", "differences-", "tune-")


def remove_stale(folder: Path, written: list[Path]) -> list[Path]:
    """Remove the figures an earlier report left in ``folder`` that this one did not draw (a
    comparison whose reference changed, a variant gone), so that the folder shows this report
    only; files not named like seqbench's figures are kept. Returns the files removed."""
    keep = {path.name for path in written}
    stale = [
        path
        for path in sorted(folder.glob("*"))
        if path.is_file()
        and path.suffix.lstrip(".") in FORMATS
        and path.name.startswith(FIGURE_PREFIXES)
        and path.name not in keep
    ]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def _save(figure: Figure, stem: Path) -> list[Path]:
    paths = []
    for fmt in FORMATS:
        path = stem.with_name(f"{stem.name}.{fmt}")
        metadata = {"CreationDate": None} if fmt == "pdf" else {"Software": None}
        atomic.write_with(
            path, lambda f, fmt=fmt, m=metadata: figure.savefig(f, format=fmt, dpi=150, metadata=m)
        )
        paths.append(path)
    return paths


def _name(text: str) -> str:
    """A file name from labels: anything but letters, digits and ``.=_-@`` becomes ``_``."""
    return re.sub(r"[^A-Za-z0-9.=_@-]+", "_", text)
