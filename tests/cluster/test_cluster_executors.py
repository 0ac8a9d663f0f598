"""`seqbench run --executor ray|slurm` on real clusters: the same cells, metrics and ranks as the
local executor, no Ray process left behind, and a killed process costs only a retry (the cell
published once, every attempt listed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.cluster.conftest import RAY_ENV, Wrap, ray_processes
from tests.conftest import REPO

# Each test starts clusters and runs a suite more than once: minutes on a busy 2-core machine.
pytestmark = pytest.mark.timeout(1200)

SUITE = """
[suite]
name = "tiny"
seeds = [1]

[train]
epochs = 3
batch_size = 128

[[datasets]]
name = "synthetic"
options = { n_users = 150, n_items = 40, seed = 3 }
protocol = { max_len = 10 }

[[models]]
model = "sasrec"
params = { hidden_size = 16, n_layers = 1, n_heads = 1, inner_size = 32 }

[[models]]
model = "pop"
"""


def _suite(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(SUITE, encoding="utf-8")
    return path


def _seqbench(
    *args: str, wrap: Wrap | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "seqbench", *args]
    environ = {**os.environ, **RAY_ENV, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run(
        wrap(command) if wrap else command, capture_output=True, text=True, env=environ,
        timeout=600,
    )  # fmt: skip


def _cells(root: Path) -> dict[str, tuple[dict[str, Any], Path]]:
    found = {}
    for path in sorted(root.glob("tiny/*/*/seed-*/result.json")):
        data = json.loads(path.read_text())
        found[data["cell"]["hash"]] = (data, path.parent)
    return found


def _same_cells(a: Path, b: Path) -> None:
    left, right = _cells(a), _cells(b)
    assert len(left) == 2 and left.keys() == right.keys()
    for cell_hash, (one, one_dir) in left.items():
        other, other_dir = right[cell_hash]
        assert one["status"] == other["status"] == "ok"
        assert one["metrics"] == other["metrics"]
        ranks_a, ranks_b = np.load(one_dir / "ranks.npz"), np.load(other_dir / "ranks.npz")
        for name in ("users", "valid_rank", "test_rank", "test_tied"):
            np.testing.assert_array_equal(ranks_a[name], ranks_b[name])


def _sasrec(root: Path) -> dict[str, Any]:
    (found,) = [d for d, _ in _cells(root).values() if d["cell"]["variant"]["model"] == "sasrec"]
    return found


def test_a_ray_cluster_computes_the_local_executors_cells(
    ray_head: str, tmp_path: Path, loopback_netns: Wrap
) -> None:
    suite = _suite(tmp_path)
    local = _seqbench("run", str(suite), "--results", str(tmp_path / "L"), "-q")
    assert local.returncode == 0, local.stderr
    remote = _seqbench("run", str(suite), "--results", str(tmp_path / "R"), "-q",
                       "--executor", "ray", "--address", ray_head, wrap=loopback_netns)  # fmt: skip
    assert remote.returncode == 0, remote.stdout + remote.stderr
    _same_cells(tmp_path / "L", tmp_path / "R")
    attempts = _sasrec(tmp_path / "R")["attempts"]
    assert [(a["executor"], a["outcome"]) for a in attempts] == [("ray", "ok")]
    assert "ray node" in attempts[0]["worker"]


def test_without_an_address_seqbench_starts_and_stops_its_own_ray(
    loopback_netns: Wrap, tmp_path: Path
) -> None:
    before = ray_processes()
    done = _seqbench("run", str(_suite(tmp_path)), "--results", str(tmp_path / "R"), "-q",
                     "--executor", "ray", wrap=loopback_netns)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(_cells(tmp_path / "R")) == 2
    deadline = time.monotonic() + 30
    while ray_processes() - before and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not ray_processes() - before, "Ray processes were left behind"


@pytest.mark.parametrize(
    ("fault", "first"),
    [("kill-worker", "crashed"), ("kill-runner", "lost")],
    ids=["sigkill-seqbench-worker", "sigkill-ray-worker"],
)
def test_a_sigkilled_process_costs_one_retry_under_ray(
    ray_head: str, loopback_netns: Wrap, tmp_path: Path, fault: str, first: str
) -> None:
    """kill-worker: the seqbench worker dies and the task starts a fresh one; kill-runner: the
    Ray worker running the task dies with it and Ray retries the task, which takes the cell's
    lease over from the dead pid at once."""
    marker = tmp_path / "fired"
    done = _seqbench("run", str(_suite(tmp_path)), "--results", str(tmp_path / "R"), "-q",
                     "--executor", "ray", "--address", ray_head, wrap=loopback_netns,
                     env={"SEQBENCH_FAULT": f"{fault}@epoch=1:{marker}"})  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert marker.exists()  # it did fire
    assert len(list((tmp_path / "R" / "tiny").glob("*/sasrec/seed-*"))) == 1  # published once
    sasrec = _sasrec(tmp_path / "R")
    assert sasrec["status"] == "ok" and sasrec["epochs_run"] == 3
    assert [a["outcome"] for a in sasrec["attempts"]] == [first, "ok"]
    assert all(a["executor"] == "ray" for a in sasrec["attempts"])


def test_slurm_runs_the_suite_as_a_job_array(slurm_partition: str, tmp_path: Path) -> None:
    suite = _suite(tmp_path)
    local = _seqbench("run", str(suite), "--results", str(tmp_path / "L"), "-q")
    assert local.returncode == 0, local.stderr
    done = _seqbench("run", str(suite), "--results", str(tmp_path / "S"), "-q",
                     "--executor", "slurm", "--slurm-partition", slurm_partition,
                     "--slurm-time", "10m")  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    _same_cells(tmp_path / "L", tmp_path / "S")
    attempts = _sasrec(tmp_path / "S")["attempts"]
    assert [(a["executor"], a["outcome"]) for a in attempts] == [("slurm", "ok")]
    assert attempts[0]["worker"].startswith("slurm job ")
    assert list((tmp_path / "S" / "tiny" / ".slurm").iterdir())  # submitit's folder, in the store


def test_the_job_array_path_through_submitits_local_executor(tmp_path: Path) -> None:
    """The same array path without Slurm (submitit runs the tasks as local processes): events
    cross through the store's event files and reach the reporter."""
    from seqbench import runner
    from seqbench.suite import load_suite

    suite = load_suite(_suite(tmp_path))
    options = runner.RunOptions(
        results=tmp_path / "S",
        device="cpu",
        cluster=runner.ClusterOptions(executor="slurm", slurm_cluster="local", slurm_minutes=10),
    )
    events: list[str] = []

    class Reporter:
        def cells(self, total: int) -> None: ...
        def started(self, handle: Any) -> None:
            events.append(f"started {handle.where}")

        def event(self, handle: Any, event: dict[str, Any]) -> None:
            events.append(str(event.get("event")))

        def finished(self, handle: Any, outcome: Any) -> None:
            events.append(f"finished {outcome.status}")

        def message(self, text: str) -> None: ...

    planned = runner.plan(suite.cells(), options)
    summary = runner.run_cells(suite.name, planned, options, Reporter())
    assert summary.ok and len(summary.ran) == 2
    assert "epoch" in events and events.count("finished ok") == 2
    assert any(e.startswith("started slurm job") for e in events)
