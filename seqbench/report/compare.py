"""Paired comparisons against a reference variant: who the reference is, which users pair up,
which comparisons form a family, and the marks and legend lines that state all of it.

Every comparison pairs the *same users* of two variants on one dataset (their ``users`` arrays
must be identical, else nothing is compared and a warning names the files), with each side's
per-user values averaged over its seeds by :func:`seqbench.stats.compare`. The reference of a
column is the one named with ``--reference``, else the ``role = "baseline"`` variant with the best
*validation* mean of the table's metric: choosing it on the test split would bias every test.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from seqbench import stats
from seqbench.errors import ConfigError
from seqbench.report.load import ResultFileError, Results, Split, VariantInfo
from seqbench.report.options import BETTER, REFERENCE, WORSE, ReportOptions, finite
from seqbench.report.tables import DECIMALS, Cell, Table, metric_title


@dataclass(eq=False)
class UserValues:
    """One variant's per-user values of one metric on one dataset, seeds × users."""

    variant: VariantInfo
    dataset: str
    metric: str
    seeds: tuple[int, ...]
    users: np.ndarray  # ids, the column order of ``values``
    history: np.ndarray | None  # each user's history length (None: not in ranks.npz)
    values: np.ndarray  # (n_seeds, n_users)
    files: tuple[Path, ...]  # the ranks.npz files read, by seed


class PerUser:
    """Per-user values read once per variant × dataset × metric (ranks.npz is read once per
    cell anyway); problems become warnings, and the variant is then left out of comparisons."""

    def __init__(self, results: Results, split: Split, warnings: list[str]) -> None:
        self.results, self.split, self.warnings = results, split, warnings
        self._cache: dict[tuple[str, str, str], UserValues | None] = {}

    def get(self, variant: VariantInfo, dataset: str, metric: str) -> UserValues | None:
        key = (variant.key, dataset, metric)
        if key not in self._cache:
            self._cache[key] = self._read(variant, dataset, metric)
        return self._cache[key]

    def _read(self, variant: VariantInfo, dataset: str, metric: str) -> UserValues | None:
        seeds, rows, files = [], [], []
        users: np.ndarray | None = None
        history: np.ndarray | None = None
        for cell in self.results.group(variant, dataset):
            try:
                ids, lengths = cell.split_users(self.split)
                values = cell.per_user(metric, self.split)
            except ResultFileError as exc:
                self.warnings.append(
                    f"{variant.display} on {dataset}, seed {cell.seed}: left out "
                    f"of the comparisons ({exc})"
                )
                continue
            if users is None:
                users, history = ids, lengths
            elif not np.array_equal(users, ids):
                self.warnings.append(
                    f"{variant.display} on {dataset}: seeds evaluated different users "
                    f"({files[0]} vs {cell.dir / 'ranks.npz'}); not compared"
                )
                return None
            seeds.append(cell.seed)
            rows.append(values)
            files.append(cell.dir / "ranks.npz")
        if users is None:
            return None
        return UserValues(
            variant, dataset, metric, tuple(seeds), users, history, np.vstack(rows), tuple(files)
        )


def same_users(a: UserValues, b: UserValues, warnings: list[str]) -> bool:
    """Whether ``a`` and ``b`` hold the same users in the same order (warns naming the files)."""
    if np.array_equal(a.users, b.users):
        return True
    message = (
        f"{a.variant.display} and {b.variant.display} on {a.dataset} were evaluated on "
        f"different users ({a.users.size} in {a.files[0]}, {b.users.size} in "
        f"{b.files[0]}); not compared: re-run them on the same data and protocol"
    )
    if message not in warnings:
        warnings.append(message)
    return False


# ---------------------------------------------------------------------------------------------
# The reference
# ---------------------------------------------------------------------------------------------


@dataclass
class Reference:
    """The variant a column's comparisons are made against, and why it was chosen."""

    metric: str
    dataset: str
    variant: VariantInfo | None
    rule: str  # "--reference", "best valid baseline" or "none"
    valid: dict[str, float | None] = field(default_factory=dict)  # baselines' valid means
    reason: str = ""  # why there is none

    def to_json(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "dataset": self.dataset,
            "variant": self.variant.display if self.variant else None,
            "rule": self.rule,
            "valid_means": self.valid,
            "reason": self.reason or None,
        }


def find_variant(results: Results, name: str, option: str = "--reference") -> VariantInfo:
    """The variant labelled (or displayed as) ``name``; a :class:`ConfigError` listing the
    labels otherwise."""
    found = [v for v in results.variants if name in (v.display, v.label)]
    exact = [v for v in found if v.display == name]
    if len(exact) == 1:
        return exact[0]
    if len(found) == 1:
        return found[0]
    shown = ", ".join(repr(v.display) for v in results.variants)
    if found:
        raise ConfigError(
            f"{option}: {name!r} names {len(found)} variants with different "
            f"settings; give one of {shown}"
        )
    raise ConfigError(f"{option}: no variant {name!r} in the results; expected one of {shown}")


def choose_reference(
    results: Results, metric: str, dataset: str, named: VariantInfo | None, warnings: list[str]
) -> Reference:
    """``named`` if given, else the baseline with the best validation mean of ``metric`` (the
    first in the suite's order on a tie); never a choice made on the test split."""
    if named is not None:
        if results.group(named, dataset):
            return Reference(metric, dataset, named, "--reference")
        reason = f"--reference {named.display} has no result on {dataset}"
        return Reference(metric, dataset, None, "none", reason=reason)
    valid: dict[str, float | None] = {}
    best: tuple[float, VariantInfo] | None = None
    for variant in results.variants:
        group = results.group(variant, dataset)
        if variant.role != "baseline" or not group:
            continue
        scores = []
        for cell in group:
            try:
                value, _ = cell.metric(metric, "valid")
            except ResultFileError as exc:
                warnings.append(
                    f"valid {metric} of {variant.display} on {dataset}, seed "
                    f"{cell.seed} unknown ({exc})"
                )
                continue
            if value is not None:
                scores.append(value)
        mean = float(np.mean(scores)) if scores else None
        valid[variant.display] = mean
        if mean is not None and (best is None or mean > best[0]):
            best = (mean, variant)
    if best is None:
        reason = (
            f"no variant with role baseline has results on {dataset}"
            if not valid
            else f"no baseline has a valid {metric} on {dataset}"
        )
        return Reference(metric, dataset, None, "none", valid, reason)
    return Reference(metric, dataset, best[1], "best valid baseline", valid)


# ---------------------------------------------------------------------------------------------
# Comparisons, families, marks
# ---------------------------------------------------------------------------------------------


@dataclass(eq=False)
class Paired:
    """One comparison shown in a table: where, what against what, its family and outcome."""

    table: str  # the table's key
    kind: str  # the table's kind: metric, strata, ablation
    metric: str
    split: str
    dataset: str
    column: str  # the table column it marks (dataset, history bucket, or "Δ")
    variant: str  # side a (display name)
    reference: str  # side b
    family: str  # comparisons sharing this id are corrected together
    comparison: stats.Comparison
    seeds_a: tuple[int, ...] = ()
    seeds_b: tuple[int, ...] = ()
    family_size: int = 0
    cell: Cell | None = field(default=None, repr=False)  # where its mark goes
    differences: np.ndarray | None = field(default=None, repr=False)  # per user, a − b

    def summary(self) -> dict[str, Any]:
        """Flat numbers for a cell and the CSV (the full record is :meth:`to_json`)."""
        effect, test = self.comparison.effect, self.comparison.test
        return {
            "reference": self.reference,
            "family": self.family,
            "family_size": self.family_size,
            "diff": finite(effect.diff),
            "diff_low": finite(effect.diff_ci.low),
            "diff_high": finite(effect.diff_ci.high),
            "rel": finite(effect.rel),
            "d_z": finite(effect.d_z),
            "test": test.test,
            "p_value": finite(test.p_value),
            "p_adjusted": finite(self.comparison.p_adjusted),
            "significant": self.comparison.significant,
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "kind": self.kind,
            "metric": self.metric,
            "split": self.split,
            "dataset": self.dataset,
            "column": self.column,
            "variant": self.variant,
            "reference": self.reference,
            "seeds_variant": list(self.seeds_a),
            "seeds_reference": list(self.seeds_b),
            "family": self.family,
            "family_size": self.family_size,
            **self.comparison.to_json(),
        }


def pair(
    a: UserValues,
    b: UserValues,
    options: ReportOptions,
    *,
    table: str,
    kind: str,
    split: str,
    column: str,
    family: str,
    cell: Cell | None = None,
    users: np.ndarray | None = None,
) -> Paired:
    """Compare ``a`` with ``b`` (restricted to the ``users`` mask if given): diff = a − b."""
    values_a, values_b = a.values, b.values
    if users is not None:
        values_a, values_b = values_a[:, users], values_b[:, users]
    comparison = stats.compare(
        values_a,
        values_b,
        test=options.test,
        alternative=options.alternative,
        level=options.level,
        n_resamples=options.n_resamples,
        seed=options.seed,
    )
    return Paired(
        table=table,
        kind=kind,
        metric=a.metric,
        split=split,
        dataset=a.dataset,
        column=column,
        variant=a.variant.display,
        reference=b.variant.display,
        family=family,
        comparison=comparison,
        seeds_a=a.seeds,
        seeds_b=b.seeds,
        cell=cell,
        differences=values_a.mean(axis=0) - values_b.mean(axis=0),
    )


def correct_families(pairs: list[Paired], options: ReportOptions) -> None:
    """Adjust the p-values of each family together; then mark each pair's cell (▲ better, ▼
    worse, when significant and marks are shown) and attach the numbers to it."""
    families: dict[str, list[Paired]] = defaultdict(list)
    for p in pairs:
        families[p.family].append(p)
    for members in families.values():
        corrected = stats.correct(
            [p.comparison for p in members],
            options.correction,
            options.alpha,
        )
        for p, comparison in zip(members, corrected, strict=True):
            p.comparison, p.family_size = comparison, len(members)
    for p in pairs:
        if p.cell is None:
            continue
        p.cell.comparison = p.summary()
        if options.marks and p.comparison.significant:
            p.cell.marks.append(BETTER if p.comparison.effect.diff > 0 else WORSE)


def family_id(table: str, column: str, options: ReportOptions) -> str:
    """All comparisons of a table form one family, or those of each column (``--family``)."""
    return table if options.family == "table" else f"{table} | {column}"


# ---------------------------------------------------------------------------------------------
# Metric tables
# ---------------------------------------------------------------------------------------------


def mark_metric_table(
    table: Table,
    results: Results,
    per_user: PerUser,
    named: VariantInfo | None,
    options: ReportOptions,
    warnings: list[str],
) -> tuple[list[Reference], list[Paired]]:
    """Compare every variant of each dataset column with that column's reference, correct the
    family, mark the cells and append the legend lines that explain the marks."""
    metric, split = table.key, table.split or "test"
    references, pairs = [], []
    for column, dataset in enumerate(table.header[1:], start=1):
        reference = choose_reference(results, metric, dataset, named, warnings)
        references.append(reference)
        if reference.variant is None:
            continue
        base = per_user.get(reference.variant, dataset, metric)
        for variant, row in zip(results.variants, table.rows, strict=True):
            cell = row[column]
            if variant is reference.variant:
                if options.marks and not cell.empty:
                    cell.marks.append(REFERENCE)
                continue
            if cell.empty or base is None:
                continue
            other = per_user.get(variant, dataset, metric)
            if other is None or not same_users(other, base, warnings) or base.users.size < 2:
                continue
            family = family_id(table.key, dataset, options)
            pairs.append(
                pair(
                    other,
                    base,
                    options,
                    table=table.key,
                    kind="metric",
                    split=split,
                    column=dataset,
                    family=family,
                    cell=cell,
                )
            )
    correct_families(pairs, options)
    table.legend += metric_legend(metric, references, pairs, per_user, options)
    return references, pairs


def metric_legend(
    metric: str,
    references: list[Reference],
    pairs: list[Paired],
    per_user: PerUser,
    options: ReportOptions,
) -> list[str]:
    """What the marks mean and how they were obtained: test, side, correction and family, α,
    and per column the reference (and why), its users and seeds."""
    title = metric_title(metric)
    missing = [r for r in references if r.variant is None]
    lines = []
    if missing:
        lines.append(
            "No marks on "
            + "; ".join(f"{r.dataset} ({r.reason})" for r in missing)
            + (": name a reference with --reference." if not options.reference else ".")
        )
    chosen = [r for r in references if r.variant is not None]
    if not chosen:
        return lines
    if options.marks and pairs:
        lines.append(marks_sentence(pairs, options, "dataset"))
    elif not options.marks:
        lines.append(
            "Significance marks hidden (--no-marks); every comparison, with its "
            "effect size, is in report.json and tables.csv."
        )
    parts = []
    for r in chosen:
        assert r.variant is not None
        base = per_user.get(r.variant, r.dataset, metric)
        sample = f"; {base.users.size} users, {len(base.seeds)} seeds" if base else ""
        if r.rule == "--reference":
            why = "named with --reference"
        else:
            name = r.variant.display
            others = [f"{other} {_fmt(v)}" for other, v in r.valid.items() if other != name]
            why = f"the best valid {title} among the baselines, {_fmt(r.valid.get(name))}"
            why += f" (vs {', '.join(others)})" if others else ""
        parts.append(f"{r.dataset}: {r.variant.display}, {why}{sample}")
    rule = (" (chosen on the validation split, never on test)"
            if any(r.rule != "--reference" for r in chosen) else "")  # fmt: skip
    lines.append(
        f"Reference {REFERENCE}{rule}: " + "; ".join(parts) + ". Each comparison pairs the "
        "reference's users with the variant's, whose seeds are the n in its cell."
    )
    return lines


def marks_sentence(
    pairs: list[Paired], options: ReportOptions, noun: str, against: str | None = None
) -> str:
    """``▲/▼: significantly better/worse than the reference …`` with test, side, correction,
    family size and α; ``noun`` names a column (a family with ``--family column``)."""
    test = stats.TESTS[options.test]
    against = against or f"the {noun}'s reference {REFERENCE}"
    side = {
        "two-sided": "two-sided",
        "greater": f"one-sided, H1: better than {against}",
        "less": f"one-sided, H1: worse than {against}",
    }[options.alternative]
    return (
        f"{BETTER}/{WORSE}: significantly better/worse than {against} ({test}; {side}; "
        f"{family_phrase(pairs, options, noun)}; α = {options.alpha:g})."
    )


def family_phrase(pairs: list[Paired], options: ReportOptions, noun: str) -> str:
    """How many comparisons were corrected together, and how."""
    sizes: dict[str, int] = {}
    for p in pairs:
        sizes[p.family] = p.family_size
    if options.correction == "none":
        return f"no correction for multiple comparisons ({len(pairs)} in this table)"
    method = stats.CORRECTIONS[options.correction]
    if options.family == "table":
        plural = "s" if len(pairs) != 1 else ""
        return f"{method} correction over a family of {len(pairs)} comparison{plural} (this table)"
    per_column = ", ".join(
        f"{p.column} {p.family_size}" for p in {p.family: p for p in pairs}.values()
    )
    return f"{method} correction within each {noun} (family sizes: {per_column})"


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.{DECIMALS}f}"
