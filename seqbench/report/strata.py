"""Metrics and paired tests per user-history-length bucket: do the gains hold for cold users?

Users are bucketed by ``history_len`` in ranks.npz (the untruncated number of items before the
test target), with upper edges such as 5, 10, 20, 50 giving ≤5, 6–10, 11–20, 21–50, >50. Per
metric and dataset, a table has the variants as rows and the buckets as columns (with the number
of users in each); each cell is the mean over seeds of the bucket's mean, marked against the
column's reference of the main table, tested on the bucket's users only. The buckets' comparisons
form their own family (the table's, or each bucket's with ``--family column``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from seqbench.report.compare import (
    Paired,
    PerUser,
    Reference,
    correct_families,
    family_id,
    marks_sentence,
    pair,
    same_users,
)
from seqbench.report.load import Results
from seqbench.report.options import REFERENCE, ReportOptions
from seqbench.report.tables import Cell, Table, aggregate, emphasize, metric_title

MIN_USERS = 2  # a paired test needs at least two users


def bucket_labels(edges: Sequence[int]) -> list[str]:
    """``(5, 10, 20, 50)`` → ``["≤5", "6–10", "11–20", "21–50", ">50"]``."""
    labels, low = [], 0
    for edge in edges:
        labels.append(
            f"≤{edge}" if low == 0 else f"{low + 1}–{edge}" if edge > low + 1 else str(edge)
        )
        low = edge
    return [*labels, f">{edges[-1]}"]


def bucket_of(history: np.ndarray, edges: Sequence[int]) -> np.ndarray:
    """Each user's bucket index: 0 for history ≤ edges[0], …, len(edges) above the last."""
    return np.searchsorted(np.asarray(edges), np.asarray(history), side="left")


def strata_tables(
    results: Results,
    metric_table: Table,
    references: list[Reference],
    per_user: PerUser,
    options: ReportOptions,
    warnings: list[str],
) -> tuple[list[Table], list[Paired]]:
    """One table per dataset of ``metric_table``'s metric (rows: variants; columns: buckets)."""
    assert options.strata is not None
    edges, labels = options.strata, bucket_labels(options.strata)
    metric, split = metric_table.key, metric_table.split or "test"
    tables, all_pairs = [], []
    for reference in references:
        dataset = reference.dataset
        present = [v for v in results.variants if per_user.get(v, dataset, metric) is not None]
        if not present:
            continue
        base = per_user.get(reference.variant, dataset, metric) if reference.variant else None
        anchor = base or per_user.get(present[0], dataset, metric)
        assert anchor is not None
        if anchor.history is None:
            warnings.append(
                f"no history_len in {anchor.files[0]}: no stratified table for {dataset}"
            )
            continue
        counts = np.bincount(bucket_of(anchor.history, edges), minlength=len(labels))
        shown = [b for b in range(len(labels)) if counts[b] > 0]
        key = f"strata:{metric}:{dataset}"
        header = ["variant", *(f"{labels[b]} (n={counts[b]})" for b in shown)]
        rows, pairs = [], []
        for variant in present:
            values = per_user.get(variant, dataset, metric)
            assert values is not None
            row = [Cell(text=variant.display, variant=variant.display)]
            if values.history is None:
                row += [
                    Cell(kind="metric", variant=variant.display, dataset=dataset, quantity=metric)
                    for _ in shown
                ]
                rows.append(row)
                continue
            buckets = bucket_of(values.history, edges)
            comparable = (
                base is not None
                and variant is not reference.variant
                and same_users(values, base, warnings)
                and _same_history(values.history, base.history, variant.display, dataset, warnings)
            )
            for b in shown:
                mask = buckets == b
                means = values.values[:, mask].mean(axis=1) if mask.any() else []
                cell = aggregate(
                    list(means), values.seeds, "metric", variant.display, dataset, metric
                )
                row.append(cell)
                if variant is reference.variant and options.marks and not cell.empty:
                    cell.marks.append(REFERENCE)
                if comparable and mask.sum() >= MIN_USERS:
                    pairs.append(
                        pair(
                            values,
                            base,
                            options,
                            table=key,
                            kind="strata",
                            split=split,
                            column=labels[b],
                            cell=cell,
                            users=mask,
                            family=family_id(key, labels[b], options),
                        )
                    )
            rows.append(row)
        table = Table(
            key=key,
            kind="strata",
            split=split,
            header=header,
            rows=rows,
            title=f"{metric_title(metric)} ({split}) by history length: {dataset}",
            align=["left", *["right"] * len(shown)],
        )
        for column in range(1, len(header)):
            emphasize(table.column(column))
        correct_families(pairs, options)
        table.legend = _legend(metric, split, labels, counts, shown, reference, pairs, options)
        tables.append(table)
        all_pairs += pairs
    return tables, all_pairs


def _same_history(
    a: np.ndarray, b: np.ndarray | None, variant: str, dataset: str, warnings: list[str]
) -> bool:
    if b is not None and np.array_equal(a, b):
        return True
    warnings.append(
        f"{variant} on {dataset}: history lengths differ from the reference's for "
        "the same users; not compared per history bucket"
    )
    return False


def _legend(
    metric: str,
    split: str,
    labels: list[str],
    counts: np.ndarray,
    shown: list[int],
    reference: Reference,
    pairs: list[Paired],
    options: ReportOptions,
) -> list[str]:
    lines = [
        f"{metric_title(metric)} on the {split} split of the users whose history (items before "
        "the test target, untruncated) falls in each bucket; n = users in the bucket. Cells: "
        "mean ± std over seeds of the bucket's mean (n in the cell = seeds).",
    ]
    empty = [labels[b] for b in range(len(labels)) if b not in shown]
    if empty:
        lines.append(f"No users in {', '.join(empty)}.")
    if reference.variant is None:
        lines.append(f"No marks: {reference.reason}.")
    elif not options.marks:
        lines.append(
            f"Reference {reference.variant.display}; marks hidden (--no-marks), the "
            "comparisons are in report.json."
        )
    elif pairs:
        lines.append(
            marks_sentence(pairs, options, "bucket")
            + f" Reference {REFERENCE}: {reference.variant.display}, as in the main "
            "table, tested on each bucket's users only; these comparisons are a family "
            "of their own."
        )
    if any(counts[b] < 2 for b in shown):
        lines.append("Buckets with fewer than 2 users are not tested.")
    return lines
