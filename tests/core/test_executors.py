"""The executor seam and the local executor, with real worker processes: several cells at once
give the same numbers as one at a time, workers serve several cells, a stop request ends a cell
with the status it names, a crash costs only its cell, and outcomes are not rerun unless asked."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from seqbench import runner
from seqbench.executors.base import CellHandle, CellOutcome
from seqbench.suite import load_suite

SUITE = """
[suite]
name = "tiny"
seeds = [1, 2]

[train]
epochs = 3
batch_size = 128
stopping_step = 5

[[datasets]]
name = "synthetic"
options = { n_users = 150, n_items = 40, seed = 3 }
protocol = { max_len = 10 }

[[models]]
model = "sasrec"
params = { hidden_size = 16, n_layers = 1, n_heads = 1, inner_size = 32 }

[[models]]
model = "gru4rec"
params = { embedding_size = 16, hidden_size = 16 }
"""


class Recorder:
    """A reporter that keeps everything, and may stop cells."""

    def __init__(self, stop_at_epoch: int | None = None, status: str = "pruned") -> None:
        self.places: list[str] = []
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.outcomes: list[CellOutcome] = []
        self.messages: list[str] = []
        self.stop_at_epoch = stop_at_epoch
        self.status = status

    def cells(self, total: int) -> None:
        self.total = total

    def started(self, handle: CellHandle) -> None:
        self.places.append(handle.where)

    def event(self, handle: CellHandle, event: dict[str, Any]) -> None:
        self.events.append((handle.job.hash, event))
        if event.get("event") == "epoch" and event.get("epoch") == self.stop_at_epoch:
            handle.stop(self.status, "the test's pruner", "pruner")

    def finished(self, handle: CellHandle, outcome: CellOutcome) -> None:
        self.outcomes.append(outcome)

    def message(self, text: str) -> None:
        self.messages.append(text)


def _run(tmp_path: Path, root: str, reporter: Any = None, only: tuple[str, ...] = (),
         **options: Any) -> runner.RunSummary:  # fmt: skip
    path = tmp_path / "tiny.toml"
    path.write_text(SUITE, encoding="utf-8")
    suite = load_suite(path)
    opts = runner.RunOptions(results=tmp_path / root, device="cpu", only=only, **options)
    cells = runner.select(suite.cells(), only)
    planned = runner.plan(cells, opts)
    return runner.run_cells(suite.name, planned, opts, reporter or Recorder())


def _cells(root: Path) -> dict[str, tuple[dict[str, Any], Path]]:
    found = {}
    for path in sorted(root.glob("tiny/*/*/seed-*/result.json")):
        data = json.loads(path.read_text())
        found[data["cell"]["hash"]] = (data, path.parent)
    return found


def test_jobs_2_and_jobs_1_give_the_same_cells_metrics_and_ranks(tmp_path: Path) -> None:
    one, two = Recorder(), Recorder()
    assert _run(tmp_path, "one", one, jobs=1).ok
    assert _run(tmp_path, "two", two, jobs=2).ok
    a, b = _cells(tmp_path / "one"), _cells(tmp_path / "two")
    assert len(a) == 4 and a.keys() == b.keys()  # the same hashes
    for cell_hash, (left, left_dir) in a.items():
        right, right_dir = b[cell_hash]
        assert left["metrics"] == right["metrics"]
        ranks_l, ranks_r = np.load(left_dir / "ranks.npz"), np.load(right_dir / "ranks.npz")
        for name in ("users", "valid_rank", "test_rank", "valid_tied", "test_tied"):
            np.testing.assert_array_equal(ranks_l[name], ranks_r[name])
        assert right["threads"]["workers"] == 2 and right["threads"]["torch"] >= 1
        assert left["threads"]["workers"] == 1
        assert right["threads"]["torch"] <= left["threads"]["torch"]
    # one worker process served every cell of the sequential run; two shared the parallel one
    workers_one = {d["attempts"][0]["worker"] for d, _ in a.values()}
    workers_two = {d["attempts"][0]["worker"].split(" (")[0] for d, _ in b.values()}
    assert len(workers_one) == 1 and workers_two == {"worker 1", "worker 2"}
    assert any(e.get("event") == "epoch" for _, e in two.events)


def test_a_stop_request_ends_the_cell_with_its_status_and_outcomes_are_not_rerun(
    tmp_path: Path,
) -> None:
    only = ("model=sasrec,seed=1",)
    pruner = Recorder(stop_at_epoch=0)
    summary = _run(tmp_path, "R", pruner, only=only)
    ((_, result),) = summary.ran
    assert result["status"] == "pruned" and not summary.ok
    assert result["stopped"]["reason"] == "the test's pruner"
    assert result["stopped"]["requested_by"] == "pruner"
    assert result["stopped"]["epoch"] in (0, 1)  # honoured at the next batch once it arrives
    assert len(result["curve"]) == result["epochs_run"] < 3
    assert set(result["metrics"]) == {"valid"}  # the best epoch's validation; no test split
    assert result["attempts"][0]["outcome"] == "pruned"
    (cell_dir,) = {p.parent for p in (tmp_path / "R").glob("tiny/*/*/seed-*/result.json")}
    assert not (cell_dir / "ranks.npz").exists()

    again = _run(tmp_path, "R", Recorder(), only=only)
    assert again.already_done == 1 and not again.ran  # an outcome is not rerun …
    retried = _run(tmp_path, "R", Recorder(), only=only, retry=("pruned",))
    ((_, result),) = retried.ran  # … unless asked
    assert result["status"] == "ok" and result["epochs_run"] == 3
    assert [a["outcome"] for a in result["attempts"]] == ["pruned", "ok"]


@pytest.mark.parametrize("status", ["timeout", "failed"])
def test_a_stop_can_name_any_ending(tmp_path: Path, status: str) -> None:
    summary = _run(tmp_path, "R", Recorder(stop_at_epoch=0, status=status),
                   only=("model=gru4rec,seed=2",))  # fmt: skip
    ((_, result),) = summary.ran
    assert result["status"] == status
    if status == "failed":
        assert result["error"] == {"type": "Stopped", "message": "the test's pruner",
                                   "traceback": ""}  # fmt: skip


def test_a_worker_crash_costs_only_its_cell(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEQBENCH_FAULT", f"kill-worker@epoch=1:{tmp_path / 'fired'}")
    summary = _run(tmp_path, "R", jobs=1)
    results = [r for _, r in summary.ran]
    assert len(results) == 4
    (crashed,) = [r for r in results if r["status"] == "failed"]
    assert crashed["error"]["type"] == "WorkerCrash"
    assert "killed by SIGKILL" in crashed["error"]["message"]
    assert crashed["attempts"][0]["outcome"] == "crashed"
    assert sum(r["status"] == "ok" for r in results) == 3  # the next cells got a fresh worker
    (kept,) = (tmp_path / "R").glob("*/.checkpoints/*.pt")  # the crash left its checkpoint
    assert kept.name.startswith(crashed["cell"]["hash"])
    monkeypatch.delenv("SEQBENCH_FAULT")
    rerun = _run(tmp_path, "R", jobs=1)
    ((_, fixed),) = rerun.ran
    assert fixed["status"] == "ok" and rerun.already_done == 3
    assert [a["outcome"] for a in fixed["attempts"]] == ["crashed", "ok"]
    assert fixed["timing"]["resumed_from_epoch"] == 1 and not kept.exists()


def test_a_cell_another_process_holds_is_set_aside_then_waited_for(tmp_path: Path) -> None:
    """Another live process holds the first cell's claim: the run computes the other cells
    first, then waits for that one (saying so); once the holder lets go without publishing,
    the run computes it itself."""
    import subprocess
    import sys
    import textwrap

    from seqbench.executors.local import LocalExecutor

    path = tmp_path / "tiny.toml"
    path.write_text(SUITE, encoding="utf-8")
    suite = load_suite(path)
    opts = runner.RunOptions(results=tmp_path / "r", device="cpu", only=("model=gru4rec",))
    planned = runner.plan(runner.select(suite.cells(), opts.only), opts)
    held, release = planned[0].hash, tmp_path / "release"
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import pathlib, time
            from seqbench import store
            s = store.SuiteStore({str(tmp_path / "r")!r}, "tiny")
            with s.claimed({held!r}):
                print("held", flush=True)
                while not pathlib.Path({str(release)!r}).exists():
                    time.sleep(0.05)
            """)],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip

    class LetGo(Recorder):
        def message(self, text: str) -> None:  # the run waits now: the holder may go
            super().message(text)
            release.touch()

    recorder = LetGo()
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        executor = LocalExecutor(1, poll_seconds=0.1)
        summary = runner.run_cells(suite.name, planned, opts, recorder, executor)
    finally:
        release.touch()
        holder.wait(timeout=30)
    assert not summary.failed and not summary.not_published
    order = [o.job.hash for o in recorder.outcomes]
    assert sorted(order) == sorted(p.hash for p in planned)
    assert order[-1] == held  # set aside while the other cell ran
    assert [m for m in recorder.messages if "waiting for another process" in m]
    assert {data["status"] for data, _ in _cells(tmp_path / "r").values()} == {"ok"}
