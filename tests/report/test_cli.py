"""``seqbench report`` through Typer's test runner: files written, terminal output, errors."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from typer.testing import CliRunner

from seqbench.cli.main import app
from tests.report.store import demo_store, write_cell

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
    assert written == ["tables.csv", "tables.md", "tables.tex"]  # no temporary files left
    assert "**0.8750 ± 0.1768** (n=2)" in (tmp_path / "out" / "tables.md").read_text()
    assert "\\toprule" in (tmp_path / "out" / "tables.tex").read_text()
    rows = list(csv.DictReader(io.StringIO((tmp_path / "out" / "tables.csv").read_text())))
    assert {r["table"] for r in rows} == {"metric", "efficiency", "failed"}
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
