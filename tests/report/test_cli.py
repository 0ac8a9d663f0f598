"""``seqbench report`` through Typer's test runner: files written, terminal output, errors."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from seqbench.cli.main import app
from tests.report.store import acceptance_store, demo_store, marks_store, write_cell

runner = CliRunner()


def invoke(*args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, ["report", *args])


def flat(text: str) -> str:
    return " ".join(text.split())  # rich may wrap; compare word by word


def test_writes_markdown_latex_and_csv(tmp_path: Path) -> None:
    suite = demo_store(tmp_path / "R")
    result = invoke(str(suite), "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["report.json", "tables.csv", "tables.md", "tables.tex"]  # no temp files
    assert "**0.8750 ± 0.1768** (n=2)" in (tmp_path / "out" / "tables.md").read_text()
    assert "\\toprule" in (tmp_path / "out" / "tables.tex").read_text()
    rows = list(csv.DictReader(io.StringIO((tmp_path / "out" / "tables.csv").read_text())))
    assert {r["table"] for r in rows} == {"metric", "efficiency", "ablation", "strata", "failed"}
    shown = flat(result.stdout)
    assert "HR@10 (test)" in shown and "0.8750 ± 0.1768 (n=2)" in shown
    assert "failed mamba4rec+no_ffn on ml-1m, seed 1: OutOfMemoryError" in shown
    assert f"wrote {tmp_path / 'out' / 'tables.md'}" in shown
    assert "warning: skipped" in flat(result.stderr) and "seed-9-deadbeef" in result.stderr


def test_default_out_dir_one_format_quiet(tmp_path: Path) -> None:
    suite = demo_store(tmp_path / "R")
    result = invoke(str(suite), "--format", "latex", "--quiet")
    assert result.exit_code == 0, result.output
    assert [p.name for p in (suite / "report").iterdir()] == ["tables.tex"]
    assert "HR@10" not in result.stdout and "wrote" in result.stdout
    again = invoke(str(suite), "-f", "md", "-f", "csv", "-q")  # report/ is not read as results
    assert again.exit_code == 0, again.output
    assert sorted(p.name for p in (suite / "report").iterdir()) == [
        "tables.csv", "tables.md", "tables.tex",
    ]  # fmt: skip
    assert not (suite / "report" / "plots").exists()  # figures only with --plots


def test_metric_and_split_options(tmp_path: Path) -> None:
    root = tmp_path / "R"
    demo_store(root)  # a root holding suites works as well as a suite folder
    result = invoke(str(root), "--metric", "NDCG@20", "-m", "hr@10", "--split", "valid", "-q",
                    "--out", str(tmp_path / "out"))  # fmt: skip
    assert result.exit_code == 0, result.output
    text = (tmp_path / "out" / "tables.md").read_text()
    assert "## NDCG@20 (valid)" in text and "## HR@10 (valid)" in text and "MRR" not in text


def test_empty_folder_is_an_error_saying_where_it_looked(tmp_path: Path) -> None:
    result = invoke(str(tmp_path))
    assert result.exit_code == 1
    assert f"error: no results found under {tmp_path}" in flat(result.stderr)
    assert "Traceback" not in result.output
    assert not (tmp_path / "report").exists()


def test_missing_folder_and_bad_metric_are_errors(tmp_path: Path) -> None:
    missing = invoke(str(tmp_path / "nope"))
    assert missing.exit_code == 1 and "does not exist" in flat(missing.stderr)
    suite = demo_store(tmp_path / "R")
    bad = invoke(str(suite), "--metric", "recall@10")
    assert bad.exit_code == 1
    assert "error: --metric: unknown metric 'recall@10'" in flat(bad.stderr)


def test_bad_format_is_rejected_by_typer(tmp_path: Path) -> None:
    result = invoke(str(demo_store(tmp_path / "R")), "--format", "html")
    assert result.exit_code == 2


def test_a_store_of_failed_cells_still_reports_them(tmp_path: Path) -> None:
    write_cell(tmp_path / "R", status="failed", error="ValueError: bad input")
    result = invoke(str(tmp_path / "R"), "-q", "-f", "md")
    assert result.exit_code == 0, result.output
    text = (tmp_path / "R" / "report" / "tables.md").read_text()
    assert "## Failed cells (1, not aggregated)" in text
    assert "| sasrec | beauty | 1 | ValueError: bad input | demo/beauty/sasrec/seed-1-" in text


# ---------------------------------------------------------------------------------------------
# Statistics, JSON and plots
# ---------------------------------------------------------------------------------------------


def compile_latex(folder: Path, *tables: Path) -> subprocess.CompletedProcess[str]:
    """pdflatex on a document that \\input{}s each table file with only booktabs loaded."""
    body = "".join(f"\\input{{{t.resolve()}}}\n\\clearpage\n" for t in tables)
    (folder / "doc.tex").write_text(
        "\\documentclass{article}\n\\usepackage{booktabs}\n\\begin{document}\n"
        f"{body}\\end{{document}}\n",
        encoding="utf-8",
    )
    return subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "doc.tex"],
        cwd=folder, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


CAN_COMPILE = bool(shutil.which("pdflatex") and os.environ.get("CI"))


def test_acceptance_two_models_two_seeds(tmp_path: Path) -> None:
    suite = acceptance_store(tmp_path / "R")
    result = invoke(str(suite), "--plots", "--metric", "hr@10", "-m", "ndcg@10")
    assert result.exit_code == 0, result.output
    out = suite / "report"
    text = (out / "tables.md").read_text()
    for metric in ("HR@10", "NDCG@10"):
        table = text.split(f"## {metric} (test)")[1].split("##")[0]
        assert re.search(r"\| sasrec \| [^|]*<sup>†</sup> \(n=2\) \|", table), table
        assert re.search(r"\| mamba4rec \| [^|]*<sup>▲</sup> \(n=2\) \|", table), table
        assert "paired t-test on per-user values averaged over seeds; two-sided; " \
            "Holm–Bonferroni correction over a family of 1 comparison (this table); " \
            "α = 0.05" in table  # fmt: skip
        assert "sasrec, the best valid" in table and "300 users, 2 seeds" in table
    assert "## Efficiency" in text and "## HR@10 (test) by history length: beauty" in text
    data = json.loads((out / "report.json").read_text())
    assert len([c for c in data["analysis"]["comparisons"] if c["kind"] == "metric"]) == 2
    plots = sorted(p.name for p in (out / "plots").iterdir())
    assert "differences-hr@10-beauty-mamba4rec-vs-sasrec.png" in plots
    assert "differences-hr@10-beauty-mamba4rec-vs-sasrec.pdf" in plots
    assert (out / "plots" / plots[0]).stat().st_size > 0
    assert "wrote 2 plot files to" in flat(result.stdout)
    shown = flat(result.stdout)
    assert "▲" in shown and "†" in shown  # the terminal tables carry the marks too
    if CAN_COMPILE:
        run = compile_latex(out, out / "tables.tex")
        assert run.returncode == 0, run.stdout[-3000:]


def test_statistics_options_reach_the_json(tmp_path: Path) -> None:
    suite = marks_store(tmp_path / "R")
    result = invoke(str(suite), "-q", "-f", "json", "-m", "hr@10", "--test", "wilcoxon",
                    "--correction", "bh", "--alpha", "0.01", "--family", "column",
                    "--alternative", "greater", "--no-marks", "--strata", "10,20",
                    "--reference", "fmlp")  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads((suite / "report" / "report.json").read_text())
    assert data["analysis"]["options"] | {"level": 0, "seed": 0, "n_resamples": 0} == {
        "reference": "fmlp", "test": "wilcoxon", "alternative": "greater", "correction": "bh",
        "alpha": 0.01, "family": "column", "marks": False, "level": 0, "n_resamples": 0,
        "seed": 0, "strata": [10, 20], "compare": None,
    }  # fmt: skip
    assert {c["test"]["test"] for c in data["analysis"]["comparisons"]} == {"wilcoxon"}
    assert {c["reference"] for c in data["analysis"]["comparisons"]} == {"fmlp"}


def test_a_chosen_pair_is_plotted(tmp_path: Path) -> None:
    suite = marks_store(tmp_path / "R")
    result = invoke(str(suite), "-q", "-f", "md", "-m", "hr@10", "--strata", "none", "--plots",
                    "--compare", "narm,mamba4rec")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (suite / "report" / "plots").iterdir()) == [
        f"differences-hr@10-{d}-narm-vs-mamba4rec.{x}" for d in ("beauty", "ml-1m")
        for x in ("pdf", "png")
    ]  # fmt: skip


def test_figures_an_earlier_report_drew_are_removed_and_other_files_kept(tmp_path: Path) -> None:
    suite = marks_store(tmp_path / "R")
    args = ["-q", "-f", "md", "-m", "hr@10", "--strata", "none", "--plots"]
    assert invoke(str(suite), *args, "--compare", "narm,mamba4rec").exit_code == 0
    plots = suite / "report" / "plots"
    (plots / "my-notes.png").write_bytes(b"a user's file")
    result = invoke(str(suite), *args, "--compare", "sasrec,mamba4rec")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in plots.iterdir()) == [
        f"differences-hr@10-{d}-sasrec-vs-mamba4rec.{x}" for d in ("beauty", "ml-1m")
        for x in ("pdf", "png")
    ] + ["my-notes.png"]  # fmt: skip
    assert "removed 4 plot files of an earlier report" in flat(result.stdout)


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--test", "z"], 2, "'z' is not one of 't', 'randomization', 'bootstrap', "
                             "'two-level-bootstrap', 'wilcoxon'"),
        (["--correction", "x"], 2, "'x' is not one of 'holm', 'bh', 'none'"),
        (["--family", "all"], 2, "'all' is not one of 'table', 'column'"),
        (["--alternative", "up"], 2, "'up' is not one of 'two-sided', 'greater', 'less'"),
        (["--alpha", "2"], 1, "error: --alpha: 2.0 is not a probability; expected 0 < α < 1"),
        (["--strata", "5,x"], 1, "error: --strata: '5,x'; expected comma-separated"),
        (["--reference", "nope"], 1, "error: --reference: no variant 'nope' in the results; "
                                     "expected one of 'sasrec', 'mamba4rec'"),
        (["--compare", "sasrec"], 1, "error: --compare: 'sasrec'; expected two different"),
        (["--resamples", "50"], 1, "error: --resamples: 50; expected at least 10000"),
    ],
)  # fmt: skip
def test_bad_statistics_options_name_the_option(
    tmp_path: Path, args: list[str], code: int, message: str
) -> None:
    result = invoke(str(demo_store(tmp_path / "R")), "-q", *args)
    assert result.exit_code == code
    assert message in flat(re.sub("[│╭╮╰╯─]", " ", result.output)), result.output
    assert "Traceback" not in result.output


def test_cli_defaults_match_the_library() -> None:
    from seqbench.cli import report as cli
    from seqbench.report import options
    from seqbench.stats import MIN_RESAMPLES

    assert cli.MIN_RESAMPLES == MIN_RESAMPLES
    assert cli.DEFAULT_STRATA == options.DEFAULT_STRATA
