"""The CI version of the scaling study (suites/scaling-ci.toml): two lengths run under caps
through the real command line, then the report with its slopes, crossovers and plots."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from seqbench.cli.main import app
from seqbench.suite import load_suite
from tests.conftest import REPO

SUITE = REPO / "suites" / "scaling-ci.toml"


def test_the_scaling_suites_are_throughput_studies_over_lengths() -> None:
    full = load_suite(REPO / "suites" / "scaling.toml").cells()
    assert len(full) == 48 and all(c.train.mode == "throughput" for c in full)
    assert sorted({c.protocol.max_len for c in full}) == [2**k for k in range(6, 14)]
    assert {c.variant.params.get("attention") for c in full if c.variant.model == "sasrec"} == {
        None,  # the default, "sdpa", is left out of a cell's parameters
        "naive",
    }
    ci = load_suite(SUITE).cells()
    assert sorted({c.protocol.max_len for c in ci}) == [512, 1024]


def test_the_ci_scaling_study_runs_and_reports(tmp_path: Path) -> None:
    runner = CliRunner()
    results = tmp_path / "results"
    # one thread per worker: on a busy machine two-thread OpenMP regions in GRU4Rec's 1,024
    # time steps cost seconds each, while a single thread never waits for another
    command = [
        "run",
        str(SUITE),
        "--results",
        str(results),
        "--device",
        "cpu",
        "--quiet",
        "--memory-limit",
        "2GiB",
        "--time-limit",
        "120s",
        "--jobs",
        "2",
        "--threads",
        "1",
    ]
    ran = runner.invoke(app, command)  # fmt: skip
    statuses = {}
    for path in (results / "scaling-ci").glob("synthetic/*/seed-*/result.json"):
        data = json.loads(path.read_text())
        statuses[data["cell"]["variant"]["label"]] = data["status"]
    assert len(statuses) == 8, ran.output
    assert set(statuses.values()) <= {"ok", "oom", "timeout"}, ran.output
    assert ran.exit_code == (0 if set(statuses.values()) == {"ok"} else 1)
    reported = runner.invoke(app, ["report", str(results / "scaling-ci"), "--plots", "--quiet"])
    assert reported.exit_code == 0, reported.output
    out = results / "scaling-ci" / "report"
    markdown = (out / "tables.md").read_text()
    assert "Scaling: time per training step" in markdown
    assert "Scaling: length from which the Mamba model is cheaper" in markdown
    scaling = json.loads((out / "report.json").read_text())["analysis"]["scaling"]
    lines = {line["label"]: line for line in scaling["lines"]}
    assert set(lines) == {"sasrec", "sasrec-naive", "gru4rec", "mamba4rec"}
    for label, line in lines.items():
        if all(p["status"] == "ok" for p in line["points"]):
            assert line["time_fit"]["slope"] is not None, label
            assert line["time_fit"]["lengths"] == [512, 1024]
    pairs = {(c["mamba"], c["attention"], c["quantity"]) for c in scaling["crossovers"]}
    assert ("mamba4rec", "sasrec-naive", "seconds") in pairs
    assert (out / "plots" / "scaling-throughput.png").is_file()
