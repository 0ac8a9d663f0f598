"""Ablation tables: what each switched-off part costs, as a paired difference from the full model.

Variants of one model that differ only by their ablation (same parameters, same sweep point; the
full model has ``ablation = "full"``) form a group on each dataset. Per metric, one table lists
every ablation of every group with the full model's and the ablation's mean ± std over seeds, the
difference Δ = ablation − full with its 95% interval, the relative difference, the paired effect
size d_z and the corrected p-value; the table's comparisons are one family (or each dataset's,
with ``--family column``).
"""

from __future__ import annotations

import json
from dataclasses import replace

from seqbench.report.compare import (
    Paired,
    PerUser,
    correct_families,
    family_id,
    marks_sentence,
    pair,
    same_users,
)
from seqbench.report.load import Results, VariantInfo
from seqbench.report.options import ReportOptions
from seqbench.report.tables import Cell, Table, metric_title

FULL = "full"


def ablation_groups(results: Results, dataset: str) -> list[tuple[VariantInfo, list[VariantInfo]]]:
    """(full model, its ablations) for each group on ``dataset`` that has both, suite order."""
    groups: dict[str, list[VariantInfo]] = {}
    for variant in results.variants:
        if results.group(variant, dataset):
            key = json.dumps(
                [variant.model, variant.params, variant.sweep], sort_keys=True, default=str
            )
            groups.setdefault(key, []).append(variant)
    found = []
    for members in groups.values():
        full = [v for v in members if v.ablation == FULL]
        ablated = [v for v in members if v.ablation != FULL]
        if len(full) == 1 and ablated:
            found.append((full[0], ablated))
    return found


def ablation_table(
    results: Results,
    metric_table: Table,
    per_user: PerUser,
    options: ReportOptions,
    warnings: list[str],
) -> tuple[Table | None, list[Paired]]:
    """The ablation table of ``metric_table``'s metric (None when no model has ablations)."""
    metric, split = metric_table.key, metric_table.split or "test"
    key = f"ablation:{metric}"
    method = {"holm": "Holm", "bh": "BH", "none": "unadjusted"}[options.correction]
    header = [
        "model",
        "dataset",
        "ablation",
        "full",
        "ablated",
        "Δ [95% CI]",
        "rel. Δ",
        "d_z",
        f"p ({method})",
    ]
    rows, pairs = [], []
    for column, dataset in enumerate(metric_table.header[1:], start=1):
        for full, ablated in ablation_groups(results, dataset):
            base = per_user.get(full, dataset, metric)
            for variant in ablated:
                delta = Cell(
                    kind="delta", variant=variant.display, dataset=dataset, quantity="diff"
                )
                row = [
                    Cell(text=full.display, variant=full.display),
                    Cell(text=dataset, dataset=dataset),
                    Cell(text=variant.ablation),
                    _copy(_metric_cell(metric_table, results, full, column)),
                    _copy(_metric_cell(metric_table, results, variant, column)),
                    delta,
                ]
                rows.append(row)
                values = per_user.get(variant, dataset, metric)
                if (
                    base is None
                    or values is None
                    or not same_users(values, base, warnings)
                    or base.users.size < 2
                ):
                    continue
                pairs.append(
                    pair(
                        values,
                        base,
                        options,
                        table=key,
                        kind="ablation",
                        split=split,
                        column=dataset,
                        family=family_id(key, dataset, options),
                        cell=delta,
                    )
                )
    if not rows:
        return None, []
    correct_families(pairs, options)
    for p in pairs:
        assert p.cell is not None
        effect = p.comparison.effect
        p.cell.mean, p.cell.ci_low = effect.diff, effect.diff_ci.low
        p.cell.ci_high = effect.diff_ci.high
    by_cell = {id(p.cell): p for p in pairs}
    for row in rows:
        found = by_cell.get(id(row[5]))
        coords = {"variant": row[5].variant, "dataset": row[5].dataset}
        if found is None:
            row += [
                Cell(kind="percent", quantity="rel", **coords),
                Cell(kind="effect", quantity="d_z", **coords),
                Cell(kind="pvalue", quantity="p_adjusted", **coords),
            ]
            continue
        effect, rel_ci = found.comparison.effect, found.comparison.effect.rel_ci
        row += [
            Cell(
                kind="percent",
                mean=effect.rel,
                ci_low=rel_ci.low if rel_ci else None,
                ci_high=rel_ci.high if rel_ci else None,
                quantity="rel",
                **coords,
            ),
            Cell(kind="effect", mean=effect.d_z, quantity="d_z", **coords),
            Cell(kind="pvalue", mean=found.comparison.p_adjusted, quantity="p_adjusted", **coords),
        ]
    table = Table(
        key=key,
        kind="ablation",
        split=split,
        header=header,
        rows=rows,
        title=f"Ablations: {metric_title(metric)} ({split})",
        align=["left", "left", "left", *["right"] * 6],
    )
    table.legend = _legend(metric, split, pairs, options)
    return table, pairs


def _metric_cell(table: Table, results: Results, variant: VariantInfo, column: int) -> Cell:
    index = results.variants.index(variant)
    return table.rows[index][column]


def _copy(cell: Cell) -> Cell:
    """The main table's cell without its emphasis and marks (they belong to that table)."""
    return replace(cell, bold=False, underline=False, marks=[], comparison=None)


def _legend(metric: str, split: str, pairs: list[Paired], options: ReportOptions) -> list[str]:
    method = pairs[0].comparison.effect.ci_method if pairs else "bootstrap"
    lines = [
        f"{metric_title(metric)} on the {split} split: the full model and each ablation (mean ± "
        "std over seeds, n seeds), Δ = ablation − full: the mean over users of the per-user "
        f"difference (each side averaged over its seeds) with its {options.level:.0%} interval "
        f"({method}); rel. Δ = Δ / full; d_z = mean / std of the per-user differences.",
    ]
    if pairs and options.marks:
        lines.append(marks_sentence(pairs, options, "dataset", "the full model"))
    elif pairs:
        lines.append("Significance marks hidden (--no-marks); p is still shown.")
    lines.append(
        f"p: {'adjusted ' if options.correction != 'none' else ''}p-value of the "
        "comparison with the full model; –: not compared."
    )
    return lines
