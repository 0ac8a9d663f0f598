"""The result record (schema 2): documented as generated, schema-1 stores still load, statuses
carry their sections, and what a worker writes validates."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from seqbench import record
from seqbench.report.load import load_results
from tests.conftest import REPO

SCHEMA1 = REPO / "tests" / "fixtures" / "schema1"


def test_the_documented_json_schema_is_the_models() -> None:
    documented = record.documented_schema((REPO / "docs" / "results.md").read_text("utf-8"))
    assert documented is not None, "docs/results.md lost its generated-schema markers"
    assert json.loads(documented) == json.loads(record.json_schema_text()), (
        "docs/results.md is stale: run `python -m seqbench.record docs/results.md`"
    )


def test_a_schema1_store_written_by_an_older_seqbench_still_loads() -> None:
    results = load_results(SCHEMA1)
    assert len(results.cells) == 2 and not results.failed and not results.warnings
    by_model = {c.variant.model: c for c in results.cells}
    pop = by_model["pop"]
    assert pop.parsed is not None and pop.parsed.schema_ == 2  # upgraded on reading
    assert pop.data["cell"]["backend"] == "torch" and pop.seed == 2020
    stored, _ = pop.metric("ndcg@10", "test")
    recomputed, source = pop.metric("ndcg@10", "test", from_ranks=True)
    assert source == "ranks.npz" and stored == pytest.approx(recomputed, abs=1e-12)
    assert stored == pytest.approx(0.0821, abs=5e-5)  # what that run printed


def test_seqbench_report_reads_the_schema1_store(tmp_path: Path) -> None:
    store = tmp_path / "store"
    shutil.copytree(SCHEMA1, store)
    done = subprocess.run(
        [sys.executable, "-m", "seqbench", "report", str(store / "smoke"), "--out",
         str(tmp_path / "out"), "--quiet"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "mamba4rec" in (tmp_path / "out" / "tables.md").read_text()


def _minimal(status: str, **sections: object) -> dict:
    variant = {"label": "sasrec", "model": "sasrec", "ablation": "full"}
    cell = {"hash": "ab" * 32, "identity": {}, "dataset": {"name": "d"}, "variant": variant,
            "seed": 1}  # fmt: skip
    return {"schema": 2, "status": status, "cell": cell, **sections}


@pytest.mark.parametrize(
    ("status", "sections", "problem"),
    [
        ("ok", {"metrics": {"valid": {"ndcg@10": 0.1}}}, "metrics.test is missing"),
        ("failed", {}, "a failed cell records its error"),
        ("pruned", {"metrics": {"valid": {}}}, "records why under 'stopped'"),
        ("timeout", {}, "records why under 'stopped'"),
        ("running", {}, "status is 'running'"),
    ],
)
def test_each_status_needs_its_sections(status: str, sections: dict, problem: str) -> None:
    with pytest.raises(record.RecordError, match=problem):
        record.parse(_minimal(status, **sections))


def test_statuses_with_their_sections_parse_and_round_trip() -> None:
    cases = [
        _minimal("ok", metrics={"valid": {"ndcg@10": 0.2}, "test": {"ndcg@10": 0.1}}),
        _minimal("failed", error={"type": "RuntimeError", "message": "boom"}),
        _minimal("pruned", stopped={"reason": "median pruner", "epoch": 3},
                 tune={"study": "s", "trial": 4, "storage": "postgresql://u:***@h/db"}),
        _minimal("oom", stopped={"reason": "cap 1 GiB"}),
        _minimal("ok", throughput={"batch_size": 8, "max_len": 64, "warmup_steps": 1,
                                   "steps": 2, "step_seconds": [0.1, 0.2]}),
    ]  # fmt: skip
    for data in cases:
        parsed = record.parse(data)
        assert record.parse(parsed.to_json()) == parsed
        assert parsed.to_json()["schema"] == 2 and next(iter(parsed.to_json())) == "schema"


def test_unknown_keys_and_wrong_types_are_refused() -> None:
    with pytest.raises(record.RecordError, match="resutls is"):
        record.parse(_minimal("failed", error={"type": "E", "message": "m"}, resutls=1))
    data = _minimal("failed", error={"type": "E", "message": "m"})
    data["cell"]["seed"] = "1"
    with pytest.raises(record.RecordError, match=r"cell\.seed is '1'"):
        record.parse(data)
    with pytest.raises(record.RecordError, match=r"schema 3 .*newer seqbench"):
        record.parse({**_minimal("ok"), "schema": 3})
