"""``seqbench report`` reads tune/summary.json: a tuning table per dataset in every format,
report.json, plots of the history and importances; trial cells (.tune/) never mix in."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

from typer.testing import CliRunner

from seqbench.cli.main import app
from tests.report.store import demo_store

SUMMARY = {
    "schema": 1,
    "suite": "demo",
    "storage": "postgresql://tuner:***@127.0.0.1:5432/studies",
    "budget": {
        "trials": 4,
        "timeout": 600.0,
        "sampler": "tpe",
        "seed": 0,
        "pruner": "median",
        "warmup": 2,
        "metric": "ndcg@10",
        "seeds": [1],
        "equal": True,
        "text": "4 trials, at most 10 min",
    },
    "studies": [
        {
            "study": "demo/sasrec/ml-1m",
            "dataset": "ml-1m",
            "variant": "sasrec",
            "model": "sasrec",
            "entry": 0,
            "space": {
                "lr": {
                    "low": 1e-4,
                    "high": 1e-2,
                    "log": True,
                    "text": "[0.0001, 0.01] log",
                    "target": "train",
                }
            },
            "trials": {"complete": 3, "pruned": 1, "failed": 1, "running": 0, "waiting": 0},
            "epochs": 31,
            "best": {"trial": 2, "value": 0.25, "params": {"lr": 0.002}},
            "default": {"params": {"lr": 0.001}, "value": 0.2},
            "tuned": {"value": 0.25},
            "importances": {"lr": 1.0},
            "history": [
                {"trial": 0, "state": "COMPLETE", "value": 0.21, "params": {"lr": 0.001}},
                {"trial": 1, "state": "PRUNED", "value": 0.05, "params": {"lr": 0.0001}},
                {"trial": 2, "state": "COMPLETE", "value": 0.25, "params": {"lr": 0.002}},
                {"trial": 3, "state": "FAIL", "value": None, "params": {"lr": 0.01}},
                {"trial": 4, "state": "COMPLETE", "value": 0.22, "params": {"lr": 0.004}},
            ],
        }
    ],
}


def test_the_report_has_a_tuning_table_and_plots_and_never_reads_trials(tmp_path: Path) -> None:
    suite = demo_store(tmp_path / "R")
    (suite / "tune").mkdir()
    (suite / "tune" / "summary.json").write_text(json.dumps(SUMMARY))
    # a trial cell in the hidden store: a copy of a final cell that the report must not count
    final = next(suite.rglob("result.json"))
    trial = suite / ".tune" / "ml-1m" / "sasrec@lr=0.5" / "seed-1-aaaaaaaa"
    shutil.copytree(final.parent, trial)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["report", str(suite), "--out", str(out), "--plots"])
    assert result.exit_code == 0, result.output
    markdown = (out / "tables.md").read_text()
    assert "## Tuning (validation)" in markdown and "### demo: ml-1m (valid ndcg@10)" in markdown
    assert "| sasrec | lr [0.0001, 0.01] log | 3 + 1 pruned, 1 failed | 0.2000 | 0.2500 |" in (
        markdown
    )
    assert "budget per study: 4 trials, at most 10 min, equal for every model" in markdown
    assert "Tuning on ml-1m" in (out / "tables.tex").read_text()
    rows = list(csv.DictReader(io.StringIO((out / "tuning.csv").read_text())))
    assert [(r["variant"], r["tuned"], r["default"]) for r in rows] == [("sasrec", "0.25", "0.2")]
    report = json.loads((out / "report.json").read_text())
    assert report["tuning"]["studies"][0]["delta"] == 0.25 - 0.2
    plots = {p.name for p in (out / "plots").iterdir()}
    assert {"tune-history-demo_sasrec_ml-1m.png", "tune-importance-demo_sasrec_ml-1m.pdf"} <= plots
    # the trial's copy is not read: the table counts are those of the final cells alone
    plain = CliRunner().invoke(app, ["report", str(suite), "--out", str(tmp_path / "o2"), "-q"])
    shutil.rmtree(suite / ".tune")
    again = CliRunner().invoke(app, ["report", str(suite), "--out", str(tmp_path / "o3"), "-q"])
    first = json.loads((tmp_path / "o2" / "report.json").read_text())
    second = json.loads((tmp_path / "o3" / "report.json").read_text())
    assert plain.exit_code == again.exit_code == 0
    assert first["tables"] == second["tables"]


def test_a_folder_with_only_tuning_reports_the_tuning_tables(tmp_path: Path) -> None:
    suite = tmp_path / "R" / "demo"
    (suite / "tune").mkdir(parents=True)
    (suite / "tune" / "summary.json").write_text(json.dumps(SUMMARY))
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["report", str(suite), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == [
        "report.json", "tables.md", "tables.tex", "tuning.csv"
    ]  # fmt: skip
    assert "| sasrec | lr [0.0001, 0.01] log |" in (out / "tables.md").read_text()
    assert json.loads((out / "report.json").read_text())["tuning"]["studies"][0]["tuned"] == 0.25
    assert "no final cells yet" in result.stderr
    empty = CliRunner().invoke(app, ["report", str(tmp_path / "R"), "--out", str(out)])
    assert empty.exit_code == 0  # a root of suites finds the suite's summary too
    nothing = tmp_path / "nothing"
    nothing.mkdir()
    missing = CliRunner().invoke(app, ["report", str(nothing)])
    assert missing.exit_code == 1 and "no results found" in missing.stderr
