"""The statistics layer of a report: marks against references, ablation and stratified tables.

:func:`build_report` aggregates over seeds; :func:`analyse` then compares, per metric table and
dataset column, every variant with the column's reference on the same users, corrects each family
of comparisons, marks the cells and writes the legend, and adds one ablation table per metric and
one history-length table per metric × dataset, and per dataset a summary of every metric
(:mod:`seqbench.report.summary`). Everything it computes is kept in
``Report.analysis`` (and so in report.json), marks hidden or not.
"""

from __future__ import annotations

from seqbench.report.ablation import ablation_table
from seqbench.report.compare import PerUser, find_variant, mark_metric_table
from seqbench.report.options import ReportOptions
from seqbench.report.robustness import robustness_tables
from seqbench.report.scaling import add_scaling
from seqbench.report.strata import bucket_labels, strata_tables
from seqbench.report.summary import summary_tables
from seqbench.report.tables import Report


def analyse(report: Report, options: ReportOptions | None = None) -> Report:
    """Add comparisons, marks, legends, ablation and strata tables to ``report`` (in place).

    Raises :class:`~seqbench.errors.ConfigError` when ``--reference`` or ``--compare`` names no
    variant of the results.
    """
    options = options or ReportOptions()
    results = report.results
    if results is None:
        raise ValueError("analyse() needs a report built by build_report() (it keeps the results)")
    named = find_variant(results, options.reference) if options.reference else None
    for name in options.compare or ():
        find_variant(results, name, "--compare")
    per_user = PerUser(results, report.split, report.warnings)  # type: ignore[arg-type]
    references, pairs = [], []
    for table in report.tables:
        chosen, found = mark_metric_table(table, results, per_user, named, options, report.warnings)
        references += chosen
        pairs += found
        ablations, found = ablation_table(results, table, per_user, options, report.warnings)
        if ablations is not None:
            report.ablations.append(ablations)
            pairs += found
        if options.strata is not None:
            tables, found = strata_tables(
                results, table, chosen, per_user, options, report.warnings
            )
            report.strata += tables
            pairs += found
    tables, found, curves = robustness_tables(report, options)  # evaluation conditions
    report.robustness += tables
    pairs += found
    report.pairs = pairs
    report.analysis = {
        "options": options.to_json(),
        "references": [r.to_json() for r in references],
        "comparisons": [p.to_json() for p in pairs],
        "strata": None
        if options.strata is None
        else {
            "edges": list(options.strata),
            "buckets": bucket_labels(options.strata),
            "rule": "bucket i holds users with edges[i-1] < history_len <= edges[i]",
        },
        **({"robustness": curves} if tables else {}),
    }
    add_scaling(report, options)  # throughput cells over lengths: tables and analysis.scaling
    report.summaries = summary_tables(report)  # after the marks: summaries copy marked cells
    return report
