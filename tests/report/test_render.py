"""The renderers: Markdown, LaTeX (escaping, booktabs, compiles), tidy CSV that reads back."""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from seqbench.report import Report, build_report, load_results, to_csv, to_latex, to_markdown
from seqbench.report.analysis import analyse
from seqbench.report.options import ReportOptions
from seqbench.report.render import (
    CSV_COLUMNS,
    format_mib,
    format_p,
    format_seconds,
    latex_escape,
    md_escape,
    to_rich,
)
from tests.report.store import (
    ablation_store,
    acceptance_store,
    demo_store,
    marks_store,
    sweep_store,
    write_cell,
)


@pytest.fixture
def report(tmp_path: Path) -> Report:
    return build_report(load_results(demo_store(tmp_path)))


def test_markdown_pipe_tables_with_emphasis_and_n(report: Report) -> None:
    text = to_markdown(report)
    assert "## HR@10 (test)" in text
    assert "| variant | beauty | ml-1m |\n| :--- | ---: | ---: |" in text
    assert "| sasrec | <u>0.5000 ± 0.2500</u> (n=3) | **0.7500 ± 0.0000** (n=3) |" in text
    assert "| mamba4rec | **0.8750 ± 0.1768** (n=2) | **0.7500** (n=1) |" in text
    assert "| mamba4rec+no_ffn | <u>0.5000</u> (n=1) | – |" in text  # single seed: no ±
    efficiency = "| sasrec | beauty | 3 | 765,432 | 3.00 s | 3 | 5 | 3.3 min | 2,000 | 500 MiB"
    assert efficiency in text
    assert "## Failed cells (1, not aggregated)" in text
    assert "CUDA out of memory \\| tried 2 GiB" in text  # a pipe in a message stays in its cell
    assert "## Warnings" in text and "seed-9-deadbeef" in text
    for block in text.split("\n\n"):  # every row of a table has as many columns as its header
        if block.startswith("|"):
            widths = {len(re.findall(r"(?<!\\)\|", line)) for line in block.splitlines()}
            assert len(widths) == 1, block


def test_markdown_escaping() -> None:
    assert md_escape("a|b*c`d<e>[f]") == r"a\|b\*c\`d\<e\>\[f\]"
    assert md_escape("no_ffn") == "no_ffn"  # word-inner underscores are not emphasis
    assert md_escape("_x_") == r"\_x\_"


def test_latex_booktabs_emphasis_and_ascii(report: Report) -> None:
    text = to_latex(report)
    assert text.count("\\begin{table}") == 4 and text.count("\\end{table}") == 4
    assert text.count("\\toprule") == text.count("\\midrule") == text.count("\\bottomrule") == 4
    assert "\\begin{tabular}{lrr}" in text
    assert (
        "sasrec & \\underline{0.5000 $\\pm$ 0.2500} {\\scriptsize (n=3)} & "
        "\\textbf{0.7500 $\\pm$ 0.0000} {\\scriptsize (n=3)} \\\\"
    ) in text
    assert "mamba4rec+no\\_ffn & \\underline{0.5000} {\\scriptsize (n=1)} & -- \\\\" in text
    assert "\\label{tab:seqbench-ndcg-10}" in text
    body = [line for line in text.splitlines() if not line.startswith("%")]
    assert all(line.isascii() for line in body), "pdflatex's default input lacks these"
    assert all(line.count("{") == line.count("}") for line in body)


def test_latex_escapes_every_special_character() -> None:
    assert latex_escape(r"a_b%c&d#e$f{g}h~i^j\k") == (
        r"a\_b\%c\&d\#e\$f\{g\}h\textasciitilde{}i\textasciicircum{}j$\backslash$k"
    )
    assert latex_escape("x<y>z|w ± α") == r"x$<$y$>$z$|$w $\pm$ $\alpha$"


def test_latex_escapes_labels_and_dataset_names(tmp_path: Path) -> None:
    write_cell(tmp_path, dataset="my_data&co", label="sasrec@dropout=0.5")
    text = to_latex(build_report(load_results(tmp_path)))
    assert "variant & my\\_data\\&co \\\\" in text
    assert "sasrec@dropout=0.5 & \\textbf{" in text


def test_csv_is_tidy_and_reads_back_to_the_same_numbers(report: Report) -> None:
    rows = list(csv.DictReader(io.StringIO(to_csv(report))))
    assert tuple(rows[0]) == CSV_COLUMNS
    metric_rows = [r for r in rows if r["table"] == "metric"]
    assert len(metric_rows) == 3 * 3 * 2  # metrics × variants × datasets
    for table in report.tables:
        for row in table.rows:
            for cell in row[1:]:
                (got,) = [r for r in metric_rows if (r["quantity"], r["variant"], r["dataset"])
                          == (table.key, cell.variant, cell.dataset)]  # fmt: skip
                assert int(got["n"]) == cell.n
                assert (float(got["mean"]) if got["mean"] else None) == cell.mean
                assert (float(got["std"]) if got["std"] else None) == cell.std
                assert got["emphasis"] == ("best" if cell.bold else
                                           "second" if cell.underline else "")  # fmt: skip
                parsed = tuple(float(v) for v in got["values"].split(";") if v)
                assert parsed == cell.values
    (sasrec,) = [r for r in metric_rows if (r["quantity"], r["variant"], r["dataset"])
                 == ("hr@10", "sasrec", "beauty")]  # fmt: skip
    assert (sasrec["mean"], sasrec["std"], sasrec["n"], sasrec["seeds"]) == ("0.5", "0.25", "3",
                                                                            "1;2;3")  # fmt: skip
    assert (sasrec["model"], sasrec["ablation"], sasrec["role"]) == ("sasrec", "full", "baseline")
    efficiency = {(r["quantity"], r["variant"], r["dataset"]): r
                  for r in rows if r["table"] == "efficiency"}  # fmt: skip
    assert efficiency[("parameters", "sasrec", "beauty")]["mean"] == "765432"
    assert float(efficiency[("seconds_per_epoch", "sasrec", "beauty")]["mean"]) == 3.0
    assert float(efficiency[("total_seconds", "mamba4rec", "beauty")]["mean"]) == 150.0
    memory = efficiency[("peak_memory_mib", "sasrec", "beauty")]
    assert (float(memory["mean"]), memory["text"]) == (500.0, "RSS")
    assert efficiency[("device", "sasrec", "beauty")]["text"] == "Test CPU"
    (failed,) = [r for r in rows if r["table"] == "failed"]
    assert (failed["variant"], failed["dataset"], failed["seeds"]) == ("mamba4rec+no_ffn",
                                                                       "ml-1m", "1")  # fmt: skip
    assert failed["text"].startswith("OutOfMemoryError: CUDA out of memory")


def test_gpu_memory_is_labelled(tmp_path: Path) -> None:
    write_cell(tmp_path, memory={"peak_rss_mib": 3000.0, "peak_device_mib": 2048.0},
               device_name="NVIDIA H100")  # fmt: skip
    text = to_markdown(build_report(load_results(tmp_path)))
    assert "2.00 GiB (GPU) | NVIDIA H100 |" in text


def test_units() -> None:
    assert [format_seconds(s) for s in (0.1234, 2.5, 42.0, 250.0, 7200.0)] == [
        "0.123 s", "2.50 s", "42.0 s", "4.2 min", "2.00 h",
    ]  # fmt: skip
    assert [format_mib(m) for m in (3.21, 812.4, 3500.0)] == ["3.2 MiB", "812 MiB", "3.42 GiB"]


def test_rich_rendering_builds_tables(report: Report) -> None:
    from rich.console import Console

    console = Console(record=True, width=200)
    for renderable in to_rich(report):
        console.print(renderable)
    shown = console.export_text()
    assert "HR@10 (test)" in shown and "0.8750 ± 0.1768 (n=2)" in shown and "Efficiency" in shown


@pytest.fixture(scope="module")
def every_latex(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The LaTeX of every kind of table seqbench writes: plain, marked (each option that changes
    the legend), ablations, strata, sweeps, the acceptance store."""
    root = tmp_path_factory.mktemp("latex")
    marks = marks_store(root / "m")

    def latex(store: Path, metrics: list[str], **options: object) -> str:
        report = build_report(load_results(store), metrics)
        return to_latex(analyse(report, ReportOptions(**options)))  # type: ignore[arg-type]

    return {
        "plain": to_latex(build_report(load_results(demo_store(root / "d")))),
        "demo": latex(root / "d" / "demo", ["hr@10"]),
        "marks": latex(marks, ["hr@10", "ndcg@10"], strata=(10, 20)),
        "one-sided": latex(marks, ["mrr@10"], alternative="less", family="column",
                           correction="bh", strata=None),
        "no-marks": latex(marks, ["hr@10"], marks=False, reference="narm", strata=None),
        "ablation": latex(ablation_store(root / "a"), ["ndcg@10"]),
        "sweeps": latex(sweep_store(root / "s"), ["hr@10"], strata=None),
        "accept": latex(acceptance_store(root / "c"), ["ndcg@10"]),
    }  # fmt: skip


def test_every_generated_latex_is_ascii_and_balanced(every_latex: dict[str, str]) -> None:
    for name, text in every_latex.items():
        body = [line for line in text.splitlines() if not line.startswith("%")]
        assert all(line.isascii() for line in body), name
        assert all(line.count("{") == line.count("}") for line in body), name
        assert text.count("\\begin{table}") == text.count("\\bottomrule"), name
    marks = every_latex["marks"]
    assert "\\textsuperscript{$\\uparrow$}" in marks and "\\textsuperscript{$\\downarrow$}" in marks
    assert "\\textsuperscript{$\\dagger$}" in marks
    assert "$\\uparrow$/$\\downarrow$: significantly better/worse" in marks
    assert "\\begin{tabular}{lllrrrrrr}" in every_latex["ablation"]


def test_new_cell_kinds_and_csv_columns(every_latex: dict[str, str], tmp_path: Path) -> None:
    assert [format_p(p) for p in (0.5, 0.0123, 0.0004)] == ["0.500", "0.012", "<0.001"]
    report = analyse(build_report(load_results(marks_store(tmp_path)), ["hr@10"]),
                     ReportOptions(strata=(10,)))  # fmt: skip
    rows = list(csv.DictReader(io.StringIO(to_csv(report))))
    better = next(r for r in rows if (r["table"], r["variant"], r["dataset"])
                  == ("metric", "mamba4rec", "beauty"))  # fmt: skip
    assert (better["marks"], better["reference"], better["significant"]) == ("▲", "sasrec", "True")
    assert float(better["diff"]) == pytest.approx(0.5) and better["test"] == "t"
    assert float(better["diff_low"]) <= 0.5 <= float(better["diff_high"])
    assert float(better["p_adjusted"]) >= float(better["p_value"])
    assert float(better["ci_low"]) <= float(better["mean"]) <= float(better["ci_high"])
    reference = next(r for r in rows if (r["table"], r["variant"], r["dataset"])
                     == ("metric", "sasrec", "beauty"))  # fmt: skip
    assert (reference["marks"], reference["reference"], reference["diff"]) == ("†", "", "")
    strata = [r for r in rows if r["table"] == "strata" and r["variant"] == "mamba4rec"]
    assert sorted(r["column"] for r in strata) == sorted(["≤10 (n=16)", ">10 (n=24)"] * 2)


@pytest.mark.skipif(
    not (shutil.which("pdflatex") and os.environ.get("CI")),
    reason="compiling LaTeX needs pdflatex on PATH and the CI variable set (the CI step has both)",
)
def test_latex_compiles_with_pdflatex(
    report: Report, every_latex: dict[str, str], tmp_path: Path
) -> None:
    files = {"tables": to_latex(report), **every_latex}
    for name, text in files.items():
        (tmp_path / f"{name}.tex").write_text(text, encoding="utf-8")
    document = tmp_path / "doc.tex"
    document.write_text(
        "\\documentclass{article}\n\\usepackage{booktabs}\n\\begin{document}\n"
        + "".join(f"\\input{{{name}.tex}}\n\\clearpage\n" for name in files)
        + "\\end{document}\n",
        encoding="utf-8",
    )
    run = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", document.name],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:]
    assert (tmp_path / "doc.pdf").stat().st_size > 0
    log = (tmp_path / "doc.log").read_text(errors="replace")
    assert "Missing character" not in log and "Undefined control sequence" not in log
