"""Robustness to noise: each trained model's metric under its evaluation conditions, compared with
its own clean test.

A *condition* is an ``evaluations`` entry of a cell (``[eval] noise`` or ``seqbench evaluate``;
docs/noise.md) with per-user ranks in ranks.npz. Conditions that differ only in their level
(``ratio``, ``keep`` or ``std``) form a *series*, e.g. "replace at the end" at 0.1, 0.2, 0.3.
Per dataset, variant and series:

- a curve: the metric at each level, mean over seeds with a t-based interval over seeds (the
  clean test is level 0 of ratio and σ series);
- a row of the robustness table: the clean metric, then at each level the relative change
  (condition − clean) / clean of each seed, averaged over seeds, marked ▼/▲ where the condition
  is significantly worse/better than the clean test of the same trained models — paired over
  users on per-user values averaged over seeds (:func:`seqbench.stats.compare` through
  :func:`seqbench.report.compare.pair`), the levels of the row corrected together (Holm, or
  ``--correction``).

The data are pure functions of the results (:func:`noise_curves`, :func:`robustness_tables`);
:func:`write_noise_plots` draws them.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from seqbench import metrics
from seqbench.data.noise.spec import NoiseSpec
from seqbench.report.compare import Paired, UserValues, correct_families, pair
from seqbench.report.load import CellResult, ResultFileError, Results, VariantInfo
from seqbench.report.options import ReportOptions
from seqbench.report.tables import Cell, Report, Table, aggregate, metric_title
from seqbench.stats import seed_summary

CLEAN = "clean"
TITLES = {"ratio": "evaluation noise", "keep": "truncation", "std": "embedding noise"}
NOT_SETTINGS = ("name", "split", "seed", "device")
TRAIN_NOISE = "noise"  # the [train] key; a sweep over it is drawn against its level


# ---------------------------------------------------------------------------------------------
# Conditions
# ---------------------------------------------------------------------------------------------


def condition_spec(name: str, condition: dict[str, Any]) -> NoiseSpec | None:
    """The settings of a recorded condition (None if they are not a noise setting)."""
    values = {k: v for k, v in condition.items() if k not in NOT_SETTINGS}
    try:
        return NoiseSpec.model_validate({**values, "name": name})
    except ValidationError:
        return None


def recorded_conditions(results: Results, warnings: list[str]) -> dict[str, NoiseSpec]:
    """Every condition of the ok cells by name (a name recorded with different settings in
    different cells is left out, with a warning)."""
    found: dict[str, NoiseSpec] = {}
    clashes: set[str] = set()
    for cell in results.cells:
        evaluations = cell.data.get("evaluations") or {}
        for name, entry in evaluations.items():
            spec = condition_spec(name, entry.get("condition") or {})
            if spec is None:
                continue
            other = found.setdefault(name, spec)
            if other.identity() != spec.identity():
                clashes.add(name)
    for name in sorted(clashes):
        warnings.append(f"condition {name!r} is recorded with different settings in different "
                        "cells; left out of the robustness analysis")  # fmt: skip
        found.pop(name)
    return found


def series_key(spec: NoiseSpec) -> str:
    return json.dumps(spec.series(), sort_keys=True)


def series_label(spec: NoiseSpec) -> str:
    """``replace end``, ``insert popularity uniform``, ``shuffle end w3``, ``truncate``."""
    parts = [spec.kind]
    if spec.sample == "popularity":
        parts.append("popularity")
    if spec.where is not None:
        parts.append(spec.where)
    if spec.window is not None:
        parts.append(f"w{spec.window}")
    return " ".join(parts)


def level_label(spec: NoiseSpec | None, level: float) -> str:
    """A column header: ``10%`` (ratio), ``keep 5``, ``σ 0.1``."""
    key = spec.level_key if spec is not None else "ratio"
    if key == "ratio":
        return f"{100 * level:g}%"
    if key == "keep":
        return f"keep {int(level)}"
    return f"σ {level:g}"


def condition_values(cell: CellResult, name: str, metric: str) -> np.ndarray | None:
    """Each test user's ``metric`` under condition ``name`` (users order), None if absent."""
    entry = (cell.data.get("evaluations") or {}).get(name)
    if entry is None:
        return None
    names = entry.get("ranks") or {}
    ranks = cell.ranks()
    rank_name, tied_name = names.get("test"), names.get("test_tied")
    if rank_name not in ranks or tied_name not in ranks:
        raise ResultFileError(cell.dir / "ranks.npz", f"lacks the arrays of condition {name!r}",
                              f"{rank_name} and {tied_name}")  # fmt: skip
    rank, tied = ranks[rank_name], ranks[tied_name]
    ties = str(ranks["ties"])
    offset = tied if ties == "pessimistic" else tied / 2.0
    higher = np.rint(rank - 1.0 - offset).astype(np.int64)
    return metrics.per_user(metric, higher, tied, ties)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# Curves
# ---------------------------------------------------------------------------------------------


@dataclass
class Point:
    """One level of a curve: the metric over seeds, and the per-user values behind it."""

    level: float
    condition: str | None  # None: the clean test
    seeds: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)  # per seed: the mean over users
    users: np.ndarray | None = field(default=None, repr=False)
    per_user: list[np.ndarray] = field(default_factory=list, repr=False)  # per seed

    def summary(self, level: float = 0.95) -> dict[str, Any]:
        s = seed_summary(self.values, level)
        return {
            "level": self.level,
            "condition": self.condition,
            "mean": s.mean,
            "low": s.ci.low if s.ci else None,
            "high": s.ci.high if s.ci else None,
            "n": s.n,
            "seeds": list(self.seeds),
            "values": list(self.values),
        }


@dataclass
class Curve:
    """A variant's metric along one series of conditions on one dataset."""

    dataset: str
    variant: VariantInfo
    series: str  # series_label
    spec: NoiseSpec  # one member (kind, where, level key)
    metric: str
    clean: Point
    points: list[Point] = field(default_factory=list)  # conditions, by level

    def to_json(self, level: float = 0.95) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "variant": self.variant.display,
            "series": self.series,
            "kind": self.spec.kind,
            "where": self.spec.where,
            "level_key": self.spec.level_key,
            "metric": self.metric,
            "clean": self.clean.summary(level),
            "points": [p.summary(level) for p in self.points],
        }


def noise_curves(results: Results, metric: str, warnings: list[str]) -> list[Curve]:
    """Every (dataset, variant, series) with at least one condition: its clean test and each
    condition's level, from each seed's ranks (seeds without a condition are left out of it)."""
    conditions = recorded_conditions(results, warnings)
    order = {name: i for i, name in enumerate(conditions)}
    curves: list[Curve] = []
    for variant in results.variants:
        for dataset in results.datasets:
            cells = results.group(variant, dataset)
            by_series: dict[str, Curve] = {}
            for name, spec in sorted(conditions.items(), key=lambda kv: order[kv[0]]):
                point = Point(spec.level, name)
                for cell in cells:
                    try:
                        values = condition_values(cell, name, metric)
                    except ResultFileError as exc:
                        warnings.append(f"{variant.display} on {dataset}, seed {cell.seed}: "
                                        f"{exc}")  # fmt: skip
                        continue
                    if values is not None:
                        _add(point, cell, values)
                if not point.seeds:
                    continue
                key = series_key(spec)
                if key not in by_series:
                    clean = Point(0.0, None)
                    for cell in cells:
                        try:
                            _add(clean, cell, cell.per_user(metric, "test"))
                        except ResultFileError:
                            continue
                    by_series[key] = Curve(dataset, variant, series_label(spec), spec, metric,
                                           clean)  # fmt: skip
                by_series[key].points.append(point)
            for curve in by_series.values():
                curve.points.sort(key=lambda p: p.level)
                curves.append(curve)
    return curves


def _add(point: Point, cell: CellResult, values: np.ndarray) -> None:
    users, _ = cell.split_users("test")
    point.seeds.append(cell.seed)
    point.values.append(float(values.mean()) if values.size else float("nan"))
    point.per_user.append(values)
    point.users = users if point.users is None else point.users


# ---------------------------------------------------------------------------------------------
# Tables and tests
# ---------------------------------------------------------------------------------------------


def robustness_tables(
    report: Report, options: ReportOptions
) -> tuple[list[Table], list[Paired], dict[str, Any]]:
    """Per metric table of ``report`` (and per level key), the robustness table; the paired
    comparisons of every level with the clean test; the curves as JSON."""
    results = report.results
    if results is None:
        return [], [], {}
    tables, pairs, curves_json = [], [], []
    for metric_table in report.tables:
        metric = metric_table.key
        curves = noise_curves(results, metric, report.warnings)
        curves_json += [c.to_json(options.level) for c in curves]
        for level_key in dict.fromkeys(c.spec.level_key for c in curves):
            chosen = [c for c in curves if c.spec.level_key == level_key]
            table, found = _table(metric, level_key, chosen, options)
            tables.append(table)
            pairs += found
    return tables, pairs, {"curves": curves_json}


def _table(
    metric: str, level_key: str, curves: list[Curve], options: ReportOptions
) -> tuple[Table, list[Paired]]:
    key = f"robustness:{metric}" + ("" if level_key == "ratio" else f":{level_key}")
    levels = sorted({p.level for c in curves for p in c.points})
    header = ["dataset", "variant", "noise", CLEAN,
              *(level_label(curves[0].spec, x) for x in levels)]  # fmt: skip
    rows, pairs = [], []
    for curve in curves:
        name = curve.variant.display
        clean = aggregate(curve.clean.values, curve.clean.seeds, "metric", name, curve.dataset,
                          f"{metric}:{CLEAN}")  # fmt: skip
        row = [
            Cell(text=curve.dataset, dataset=curve.dataset),
            Cell(text=name, variant=name),
            Cell(text=curve.series),
            clean,
        ]
        at = {p.level: p for p in curve.points}
        family = f"{key} | {curve.dataset} | {name} | {curve.series}"
        for level in levels:
            point = at.get(level)
            quantity = f"{metric}:{point.condition}" if point else None
            if point is None:
                row.append(Cell(kind="percent", variant=name, dataset=curve.dataset))
                continue
            seeds, relative = _relative(point, curve.clean)
            cell = aggregate(relative, seeds, "percent", name, curve.dataset, quantity)
            row.append(cell)
            compared = _pair(point, curve, metric, key, family, cell, options)
            if compared is not None:
                pairs.append(compared)
        rows.append(row)
    correct_families(pairs, options)
    table = Table(
        key=key,
        kind="robustness",  # type: ignore[arg-type]
        title=f"Robustness: {metric_title(metric)} (test) under {TITLES[level_key]}",
        header=header,
        align=["left", "left", "left", *["right"] * (len(header) - 3)],
        rows=rows,
        split="test",
    )
    table.legend = _legend(metric, pairs, options)
    return table, pairs


def _relative(point: Point, clean: Point) -> tuple[list[int], list[float]]:
    """Per seed present on both: (condition − clean) / clean of the means over users."""
    base = dict(zip(clean.seeds, clean.values, strict=True))
    seeds, values = [], []
    for seed, value in zip(point.seeds, point.values, strict=True):
        if base.get(seed):
            seeds.append(seed)
            values.append((value - base[seed]) / base[seed])
    return seeds, values


def _pair(
    point: Point,
    curve: Curve,
    metric: str,
    key: str,
    family: str,
    cell: Cell,
    options: ReportOptions,
) -> Paired | None:
    """The condition against the clean test of the same seeds (same trained models)."""
    clean = dict(zip(curve.clean.seeds, curve.clean.per_user, strict=True))
    seeds = [s for s in point.seeds if s in clean]
    if not seeds or point.users is None or point.users.size < 2:
        return None
    noisy = dict(zip(point.seeds, point.per_user, strict=True))

    def side(values: list[np.ndarray], label: str) -> UserValues:
        info = VariantInfo(label=label, model=curve.variant.model, ablation=curve.variant.ablation,
                           sweep={}, params={}, display=label)  # fmt: skip
        return UserValues(info, curve.dataset, metric, tuple(seeds), point.users,  # type: ignore[arg-type]
                          None, np.vstack(values), ())  # fmt: skip

    name = curve.variant.display
    a = side([noisy[s] for s in seeds], f"{name} @ {point.condition}")
    b = side([clean[s] for s in seeds], f"{name} @ {CLEAN}")
    return pair(a, b, options, table=key, kind="robustness", split="test", column=str(point.level),
                family=family, cell=cell)  # fmt: skip


def _legend(metric: str, pairs: list[Paired], options: ReportOptions) -> list[str]:
    title = metric_title(metric)
    lines = [
        f"{CLEAN}: {title} of the clean test (mean ± std over seeds). Each level: the relative "
        f"change of {title} under that evaluation condition, (noisy − clean) / clean for each "
        "seed's trained model, mean ± std over seeds; the same trained models throughout.",
    ]
    if pairs and options.marks:
        from seqbench import stats

        method = stats.CORRECTIONS[options.correction] if options.correction != "none" else "no"
        side = {"two-sided": "two-sided", "greater": "one-sided, H1: better than clean",
                "less": "one-sided, H1: worse than clean"}[options.alternative]  # fmt: skip
        lines.append(
            f"▲/▼: significantly better/worse than the clean test of the same models "
            f"({stats.TESTS[options.test]}; {side}; {method} correction over the levels of "
            f"each row; α = {options.alpha:g})."
        )
    lines.append("Every comparison, with its interval, is in report.json and tables.csv.")
    return lines


# ---------------------------------------------------------------------------------------------
# Training noise
# ---------------------------------------------------------------------------------------------


@dataclass
class TrainCurve:
    """Clean test metric of one model configuration against its training-noise level."""

    dataset: str
    label: str
    series: str
    level_key: str
    levels: list[float] = field(default_factory=list)
    mean: list[float] = field(default_factory=list)
    low: list[float | None] = field(default_factory=list)
    high: list[float | None] = field(default_factory=list)


def training_curves(results: Results, metric: str, level: float = 0.95) -> list[TrainCurve]:
    """Variants swept over ``[train] noise``, each series with the same configuration without
    training noise (if present) at level 0: the clean test metric over seeds."""
    groups: dict[tuple[str, str, str], dict[float, list[float]]] = defaultdict(dict)
    specs: dict[tuple[str, str, str], NoiseSpec] = {}
    bases: dict[str, VariantInfo] = {}
    for variant in results.variants:
        if TRAIN_NOISE not in variant.sweep:
            bases.setdefault(_identity_without_noise(variant), variant)
    labels: dict[tuple[str, str, str], str] = {}
    for variant in results.variants:
        raw = variant.sweep.get(TRAIN_NOISE)
        if not isinstance(raw, dict):
            continue
        spec = condition_spec("train", raw)
        if spec is None:
            continue
        ident = _identity_without_noise(variant)
        for dataset in results.datasets:
            values = _clean_values(results, variant, dataset, metric)
            if not values:
                continue
            key = (dataset, ident, series_key(spec))
            groups[key][spec.level] = values
            specs[key] = spec
            labels[key] = variant.display.split("@")[0]
            base = bases.get(ident)
            if base is not None and 0.0 not in groups[key] and spec.level_key != "keep":
                base_values = _clean_values(results, base, dataset, metric)
                if base_values:
                    groups[key][0.0] = base_values
    curves = []
    for key, by_level in groups.items():
        curve = TrainCurve(key[0], labels[key], series_label(specs[key]), specs[key].level_key)
        for x in sorted(by_level):
            s = seed_summary(by_level[x], level)
            curve.levels.append(x)
            curve.mean.append(s.mean)
            curve.low.append(s.ci.low if s.ci else None)
            curve.high.append(s.ci.high if s.ci else None)
        curves.append(curve)
    return curves


def _identity_without_noise(variant: VariantInfo) -> str:
    sweep = {k: v for k, v in variant.sweep.items() if k != TRAIN_NOISE}
    return json.dumps([variant.model, variant.ablation, variant.params, sweep], sort_keys=True,
                      default=str)  # fmt: skip


def _clean_values(results: Results, variant: VariantInfo, dataset: str, metric: str) -> list[float]:
    found = []
    for cell in results.group(variant, dataset):
        try:
            value, _ = cell.metric(metric, "test")
        except ResultFileError:
            continue
        if value is not None:
            found.append(value)
    return found


# ---------------------------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------------------------

LINESTYLES = {"end": "-", "beginning": "--", "middle": "-.", "uniform": ":", None: "-"}


def write_noise_plots(report: Report, options: ReportOptions, folder: Path) -> list[Path]:
    """``noise-<kind>-<metric>``: per dataset (rows) and position (columns), each variant's
    metric against the noise level (mean over seeds, t-based interval over seeds; level 0 the
    clean test); ``noise-train-<kind>-<metric>``: the clean test against the training-noise
    level. Returns the files written."""
    from seqbench.report.plots import _name, _save

    results = report.results
    if results is None:
        return []
    written: list[Path] = []
    for table in report.tables:
        metric = table.key
        curves = noise_curves(results, metric, [])
        families: dict[str, list[Curve]] = defaultdict(list)
        for curve in curves:
            spec = curve.spec
            family = spec.kind + ("-popularity" if spec.sample == "popularity" else "")
            family += f"-w{spec.window}" if spec.window else ""
            families[family].append(curve)
        for family, members in families.items():
            figure = _noise_figure(members, metric, family, options.level)
            written += _save(figure, folder / _name(f"noise-{family}-{metric}"))
        trained = training_curves(results, metric, options.level)
        by_kind: dict[str, list[TrainCurve]] = defaultdict(list)
        for curve in trained:
            by_kind[curve.series.split()[0]].append(curve)
        for kind, members in by_kind.items():
            figure = _train_figure(members, metric)
            written += _save(figure, folder / _name(f"noise-train-{kind}-{metric}"))
    return written


def _noise_figure(curves: list[Curve], metric: str, family: str, level: float) -> Any:
    from matplotlib.figure import Figure

    datasets = list(dict.fromkeys(c.dataset for c in curves))
    places = list(dict.fromkeys(c.spec.where for c in curves))
    variants = list(dict.fromkeys(c.variant.display for c in curves))
    figure = Figure(figsize=(4.4 * len(places), 3.6 * len(datasets)), layout="constrained")
    axes = figure.subplots(len(datasets), len(places), squeeze=False, sharey="row")
    colours = {v: f"C{i % 10}" for i, v in enumerate(variants)}
    key = curves[0].spec.level_key
    for r, dataset in enumerate(datasets):
        for c, where in enumerate(places):
            ax = axes[r][c]
            for curve in (x for x in curves if x.dataset == dataset and x.spec.where == where):
                points = [p for p in curve.points if not (p.level == 0 and key != "keep")]
                if key != "keep":
                    points = [curve.clean, *points]
                xs = [p.level * (100 if key == "ratio" else 1) for p in points]
                stats = [seed_summary(p.values, level) for p in points]
                mean = np.array([s.mean for s in stats])
                below = [s.mean - s.ci.low if s.ci else 0.0 for s in stats]
                above = [s.ci.high - s.mean if s.ci else 0.0 for s in stats]
                ax.errorbar(xs, mean, yerr=[below, above], marker="o", capsize=3,
                            color=colours[curve.variant.display],
                            linestyle=LINESTYLES.get(where, "-"),
                            label=curve.variant.display)  # fmt: skip
            ax.set_title(f"{dataset}: {family} at {where}" if where else f"{dataset}: {family}",
                         fontsize="medium")  # fmt: skip
            ax.set_xlabel({"ratio": "noise level (% of items)", "keep": "items kept",
                           "std": "σ relative to the embeddings' RMS"}[key])  # fmt: skip
            ax.set_ylabel(f"{metric_title(metric)} (test)")
            ax.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", fontsize="small",
                  ncol=min(len(labels), 3 if len(places) == 1 else 4))  # fmt: skip
    figure.suptitle(
        f"{metric_title(metric)} under {family} noise at evaluation\n(mean over seeds, "
        f"{level:.0%} CI over seeds; level 0: the clean test)",
        fontsize="medium",
    )
    return figure


def _train_figure(curves: list[TrainCurve], metric: str) -> Any:
    from matplotlib.figure import Figure

    datasets = list(dict.fromkeys(c.dataset for c in curves))
    figure = Figure(figsize=(max(6.0, 4.6 * len(datasets)), 3.8), layout="constrained")
    axes = figure.subplots(1, len(datasets), squeeze=False)[0]
    for ax, dataset in zip(axes, datasets, strict=True):
        for curve in (c for c in curves if c.dataset == dataset):
            mean = np.asarray(curve.mean)
            below = [m - lo if lo is not None else 0.0
                     for m, lo in zip(curve.mean, curve.low, strict=True)]  # fmt: skip
            above = [hi - m if hi is not None else 0.0
                     for m, hi in zip(curve.mean, curve.high, strict=True)]  # fmt: skip
            scale = 100 if curve.level_key == "ratio" else 1
            ax.errorbar([x * scale for x in curve.levels], mean, yerr=[below, above],
                        marker="o", capsize=3, label=f"{curve.label} ({curve.series})")  # fmt: skip
        ax.set_title(dataset)
        keys = {c.level_key for c in curves}
        ax.set_xlabel("training noise level" + (" (% of items)" if keys == {"ratio"} else ""))
        ax.set_ylabel(f"{metric_title(metric)} (clean test)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    figure.suptitle(
        f"{metric_title(metric)} vs noise in the training inputs\n(mean and 95% CI over "
        "seeds; level 0: trained without noise)",
        fontsize="medium",
    )
    return figure
