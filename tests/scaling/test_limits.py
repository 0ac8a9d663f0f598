"""Caps per cell: past --memory-limit a cell ends ``oom`` (its worker killed at once), past
--time-limit ``timeout`` (a stop request); the suite goes on, and a rerun does not retry them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from seqbench import limits, runner
from seqbench.errors import ConfigError
from seqbench.executors.base import CellJob
from seqbench.executors.worker_process import WorkerExit, WorkerProcess, place_of
from seqbench.suite import load_suite
from tests.core.test_executors import Recorder

HEAD = """
[suite]
name = "caps"
seeds = [1]

[protocol]
max_len = {max_len}

[train]
mode = "throughput"
batch_size = {batch}
warmup_steps = 1
steps = {steps}
score_users = 8

[[datasets]]
name = "synthetic"
options = {{ n_users = 40, n_items = 60, min_length = 1100, mean_length = 1100, max_length = 1100, \
text = false }}
"""
BIG = """
[[models]]
model = "sasrec"
name = "big"
params = { attention = "naive" }
"""
SMALL = """
[[models]]
model = "gru4rec"
name = "small"
params = { embedding_size = 8, hidden_size = 8 }
sweep = { max_len = [16] }
"""


def _run(tmp_path: Path, text: str, **options: Any) -> runner.RunSummary:
    path = tmp_path / "caps.toml"
    path.write_text(text, encoding="utf-8")
    suite = load_suite(path)
    opts = runner.RunOptions(results=tmp_path / "R", device="cpu", **options)
    return runner.run_cells(suite.name, runner.plan(suite.cells(), opts), opts, Recorder())


def _by_label(summary: runner.RunSummary) -> dict[str, dict[str, Any]]:
    return {job.cell["variant"]["label"]: result for job, result in summary.ran}


def test_a_cell_past_the_memory_cap_ends_oom_the_suite_goes_on_and_is_not_retried(
    tmp_path: Path,
) -> None:
    # SASRec with RecBole's attention at L = 1024, batch 16: > 1 GiB of score matrices; the
    # small GRU fits in the cap with room to spare
    text = HEAD.format(max_len=1024, batch=16, steps=2) + BIG + SMALL
    summary = _run(tmp_path, text, memory_limit=700.0)
    results = _by_label(summary)
    big, small = results["big"], results["small@max_len=16"]
    assert big["status"] == "oom" and small["status"] == "ok" and not summary.ok
    assert big["stopped"]["requested_by"] == "memory-limit"
    assert "past the cell's limit of 700 MiB (--memory-limit)" in big["stopped"]["reason"]
    assert big["stopped"]["reason"].endswith("the worker was killed at once")
    assert "during warm-up step 1 of 1" in big["stopped"]["reason"]  # the first step is too big
    assert [a["outcome"] for a in big["attempts"]] == ["oom"]
    assert small["throughput"]["memory"]["train_peak"] < 700

    again = _run(tmp_path, text, memory_limit=700.0)
    assert again.already_done == 2 and not again.ran  # an outcome is not retried …
    retried = _run(tmp_path, text, memory_limit=700.0, retry=("oom",))
    (big_again,) = [r for _, r in retried.ran]  # … unless asked; still past the cap
    assert big_again["status"] == "oom"
    assert [a["outcome"] for a in big_again["attempts"]] == ["oom", "oom"]


def test_a_cell_past_the_time_cap_ends_timeout_with_the_steps_it_completed(
    tmp_path: Path,
) -> None:
    text = HEAD.format(max_len=16, batch=4, steps=100_000) + SMALL.replace(
        "sweep = { max_len = [16] }", ""
    )
    summary = _run(tmp_path, text, time_limit=8.0)
    ((_, result),) = summary.ran
    assert result["status"] == "timeout"
    stopped = result["stopped"]
    assert stopped["requested_by"] == "time-limit"
    assert stopped["reason"].startswith("the cell ran past its time limit of 8 s (--time-limit)")
    assert "killed" not in stopped["reason"]  # the worker ended the cell itself, and says where
    done = result["throughput"]["step_seconds"]
    assert len(done) < 100_000
    if "(timed training step" in stopped["reason"]:  # (a loaded machine may take 8 s to start)
        assert done and result["throughput"]["seconds_per_step"] > 0
    assert _run(tmp_path, text, time_limit=8.0).already_done == 1


def test_memory_sizes_parse_and_bad_ones_say_what_is_expected(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert limits.parse_memory("4GiB") == 4096
    assert limits.parse_memory("4g") == 4096
    assert limits.parse_memory("512MiB") == 512
    assert limits.parse_memory("1500") == 1500
    assert limits.parse_memory("1.5G") == 1536
    assert limits.parse_memory("2048k") == 2
    assert limits.parse_memory("auto") == limits.AUTO
    assert limits.parse_memory("none") is None
    monkeypatch.setattr(limits, "total_memory_mib", lambda: 8192.0)
    assert limits.parse_memory("25%") == 2048
    for bad in ("lots", "-1G", "0", "150%", "4 PB"):
        with pytest.raises(ConfigError, match="--memory-limit"):
            limits.parse_memory(bad)


def test_caps_per_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "default_memory_limit", lambda workers: 1000.0 / workers)
    assert limits.cell_limits(limits.AUTO, "cpu", 2) == (500.0, None)
    assert limits.cell_limits(3000.0, "cpu", 2) == (3000.0, None)
    assert limits.cell_limits(None, "cpu", 2) == (None, None)
    # on CUDA a size caps the allocator; the host is still watched at the default share
    assert limits.cell_limits(3000.0, "cuda", 1) == (1000.0, 3000.0)
    assert limits.cell_limits(limits.AUTO, "cuda", 1) == (1000.0, None)
    assert limits.cell_limits(None, "cuda", 1) == (None, None)


def test_auto_caps_local_cells_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``auto`` is a share of this host's memory: it caps local cells, never a cluster's, whose
    nodes have their own memory (an explicit size is passed on to them)."""
    monkeypatch.setattr(limits, "default_memory_limit", lambda workers: 1000.0 / workers)
    path = tmp_path / "caps.toml"
    path.write_text(HEAD.format(max_len=16, batch=2, steps=1) + SMALL, encoding="utf-8")
    suite = load_suite(path)
    local = runner.RunOptions(results=tmp_path / "R", device="cpu", memory_limit=limits.AUTO,
                              jobs=2)  # fmt: skip
    planned = runner.plan(suite.cells(), local)

    def caps(options: runner.RunOptions) -> set[float | None]:
        return {job.memory_limit_mib for job in runner.jobs_for(suite.name, planned, options)}

    assert caps(local) == {500.0}
    for executor in ("ray", "slurm"):
        cluster = runner.ClusterOptions(executor=executor)
        assert caps(runner.RunOptions(**{**vars(local), "cluster": cluster})) == {None}
        sized = runner.RunOptions(**{**vars(local), "cluster": cluster, "memory_limit": 3000.0})
        assert caps(sized) == {3000.0}


def test_a_stop_for_a_cell_the_worker_is_not_computing_is_ignored() -> None:
    worker = WorkerProcess("cpu", 1)
    job = CellJob(suite="s", results="r", relative="x", cell={}, hash="h", identity={},
                  title="t")  # fmt: skip
    worker.stop(job, "timeout", "late", "time-limit")
    worker.stop_at_once(job, "oom", "late", "memory-limit")
    assert worker._stop is None and worker._stop_timer is None


def test_places_from_events() -> None:
    assert place_of({"event": "step", "phase": "train", "step": 2, "steps": 5}) == (
        "after timed training step 2 of 5"
    )
    assert place_of({"event": "step_start", "phase": "warmup", "step": 1, "steps": 1}) == (
        "during warm-up step 1 of 1"
    )
    assert place_of({"event": "step_start", "phase": "score", "step": 8, "steps": 8}) == (
        "during the scoring of 8 users"
    )
    assert place_of({"event": "batch", "batch": 3, "batches": 9}) == ("after training batch 3 of 9")
    assert place_of({"event": "warning"}) == ""


def test_a_worker_that_dies_while_a_stop_is_in_force_ends_with_the_status_asked_for() -> None:
    stop = {"status": "timeout", "reason": "too slow", "requested_by": "time-limit"}
    died = WorkerExit(None, returncode=-6, stop=stop)  # e.g. aborted mid-step
    assert died.ended_by_stop
    assert died.crash_reason() == (
        "ended timeout: too slow; the worker died (exit status -6) before it had stopped"
    )
    at_once = WorkerExit(None, returncode=-9, stop={**stop, "status": "oom", "at_once": True},
                         killed_after_stop=True)  # fmt: skip
    assert at_once.ended_by_stop and at_once.crash_reason() == (
        "too slow; the worker was killed at once"
    )
    assert not WorkerExit(None, returncode=-9).ended_by_stop  # a plain crash stays a crash
    assert not WorkerExit(None, returncode=130, stop=stop).ended_by_stop  # Ctrl-C
