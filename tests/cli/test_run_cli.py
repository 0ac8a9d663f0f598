"""``seqbench run`` end to end, in real processes: resume, SIGKILL, failures, filters, repeats."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from seqbench.cells import source_fingerprint
from seqbench.store import SuiteStore
from seqbench.suite import load_suite
from tests.conftest import REPO

TINY = """
[suite]
name = "tiny"
seeds = [1, 2]

[train]
epochs = 3
batch_size = 128
stopping_step = 5

[[datasets]]
name = "synthetic"
options = {{ n_users = 150, n_items = 40, seed = 3 }}
protocol = {{ max_len = 10 }}

[[models]]
model = "sasrec"
params = {{ hidden_size = 16, n_layers = 1, n_heads = 1, inner_size = 32 }}

[[models]]
model = "pop"
{extra}
"""

BROKEN = """
[[models]]
model = "exploding"
"""


def write_suite(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(TINY.format(extra=extra), encoding="utf-8")
    return path


def seqbench(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    environ = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "seqbench", *args],
        capture_output=True,
        text=True,
        env=environ,
        timeout=300,
    )


def cell_dirs(root: Path) -> list[Path]:
    return sorted(p.parent for p in (root / "tiny").glob("*/*/seed-*/result.json"))


def results(root: Path) -> dict[str, dict]:
    return {
        str(d.relative_to(root)): json.loads((d / "result.json").read_text())
        for d in cell_dirs(root)
    }


def test_run_twice_trains_nothing_the_second_time(tmp_path: Path) -> None:
    suite, root = write_suite(tmp_path), tmp_path / "R"
    first = seqbench("run", str(suite), "--results", str(root), "--quiet")
    assert first.returncode == 0, first.stderr + first.stdout
    done = results(root)
    assert len(done) == 4 and all(r["status"] == "ok" for r in done.values())
    some = next(iter(done.values()))
    assert set(some["metrics"]["test"]) == {"hr@10", "ndcg@10", "mrr@10"}
    assert some["environment"]["torch"] and some["cell"]["hash"].startswith(
        Path(next(iter(done))).name.split("-")[-1]
    )
    stamps = {d: (d / "result.json").stat().st_mtime_ns for d in cell_dirs(root)}

    second = seqbench("run", str(suite), "--results", str(root), "--quiet")
    assert second.returncode == 0
    assert "nothing to train: all 4 cells are complete" in second.stdout
    assert {d: (d / "result.json").stat().st_mtime_ns for d in cell_dirs(root)} == stamps


@pytest.mark.parametrize("point", ["epoch=1", "before-result"])
def test_sigkill_mid_cell_then_rerun_completes_without_duplicates(
    tmp_path: Path, point: str
) -> None:
    suite, root = write_suite(tmp_path), tmp_path / "R"
    marker = tmp_path / "fired"
    killed = seqbench(
        "run", str(suite), "--results", str(root), "--quiet",
        env={"SEQBENCH_FAULT": f"kill-runner@{point}:{marker}"},
    )  # fmt: skip
    assert killed.returncode == -signal.SIGKILL
    assert marker.exists()
    assert len(cell_dirs(root)) < 4  # it really died mid-suite

    rerun = seqbench("run", str(suite), "--results", str(root), "--quiet")
    assert rerun.returncode == 0, rerun.stderr + rerun.stdout
    done = results(root)  # every result.json parses
    assert len(done) == 4 and all(r["status"] == "ok" for r in done.values())
    hashes = [r["cell"]["hash"] for r in done.values()]
    assert len(set(hashes)) == 4  # no cell twice
    assert not list((root / "tiny" / ".tmp").iterdir())  # the dead writer's scratch is gone


BERT = """
[[models]]
model = "bert4rec"
params = { hidden_size = 16, n_layers = 1, n_heads = 1, inner_size = 32 }
"""


@pytest.mark.parametrize("model", ["sasrec", "bert4rec"])
def test_a_cell_killed_mid_training_resumes_at_its_next_epoch_with_the_same_numbers(
    tmp_path: Path, model: str
) -> None:
    """The runner and worker are SIGKILLed after epoch 1 of 3; the rerun resumes the cell from
    its epoch-1 checkpoint (dropout and BERT4Rec's masks draw from the restored generators) and
    publishes what an uninterrupted run publishes, with the whole log; the checkpoint goes."""
    suite = write_suite(tmp_path, BERT)
    only = ("--only", f"model={model},seed=1", "--quiet")
    marker = tmp_path / "fired"
    killed = seqbench(
        "run", str(suite), "--results", str(tmp_path / "R"), *only,
        env={"SEQBENCH_FAULT": f"kill-runner@epoch=1:{marker}"},
    )  # fmt: skip
    assert killed.returncode == -signal.SIGKILL and not cell_dirs(tmp_path / "R")
    (saved,) = (tmp_path / "R" / "tiny" / ".checkpoints").glob("*.pt")
    dry = seqbench("run", str(suite), "--results", str(tmp_path / "R"), *only, "--dry-run")
    assert "resumes after epoch 1" in dry.stdout, dry.stdout + dry.stderr
    assert "1 to train (1 resume from a checkpoint)" in dry.stdout
    rerun = seqbench("run", str(suite), "--results", str(tmp_path / "R"), *only)
    assert rerun.returncode == 0, rerun.stderr + rerun.stdout
    assert "(3 epochs," in rerun.stdout and "resumed after epoch 1)" in rerun.stdout
    straight = seqbench("run", str(suite), "--results", str(tmp_path / "S"), *only)
    assert straight.returncode == 0, straight.stderr + straight.stdout

    (resumed_dir,), (resumed,) = cell_dirs(tmp_path / "R"), results(tmp_path / "R").values()
    (straight_dir,), (reference,) = cell_dirs(tmp_path / "S"), results(tmp_path / "S").values()
    assert resumed["timing"]["resumed_from_epoch"] == 1
    assert "resumed_from_epoch" not in reference["timing"]
    assert resumed["metrics"] == reference["metrics"]
    assert [(r["loss"], r["valid"]) for r in resumed["curve"]] == [
        (r["loss"], r["valid"]) for r in reference["curve"]
    ]
    assert resumed["epochs_run"] == reference["epochs_run"] == 3
    ranks, expected = np.load(resumed_dir / "ranks.npz"), np.load(straight_dir / "ranks.npz")
    np.testing.assert_array_equal(ranks["test_rank"], expected["test_rank"])
    log = (resumed_dir / "cell.log").read_text()
    for epoch in range(3):  # each epoch's line once, the checkpointed epoch's included
        assert log.count(f"epoch {epoch}: loss") == 1, (epoch, log)
    assert log.count("interrupted after epoch 1; resuming at epoch 2") == 1
    stamps = re.findall(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ", log, re.MULTILINE)
    assert len(stamps) > 6 and stamps == sorted(stamps)  # every try's lines, in order
    assert [a["outcome"] for a in resumed["attempts"]] == ["lost", "ok"]
    assert not saved.exists()  # published: the checkpoint is gone


MAMBA = """
[[models]]
model = "mamba4rec"
params = { hidden_size = 16, d_state = 4, expand = 1 }
"""


def test_a_mamba_cell_records_which_cpu_scan_it_ran_on(tmp_path: Path) -> None:
    """environment.kernels["cpu-scan"] is read after training, once the scan has been chosen
    (read at the cell's start it was always null)."""
    suite, root = write_suite(tmp_path, MAMBA), tmp_path / "R"
    done = seqbench(
        "run", str(suite), "--results", str(root), "-q", "--only", "model=mamba4rec,seed=1"
    )
    assert done.returncode == 0, done.stderr + done.stdout
    (record,) = results(root).values()
    used = record["environment"]["kernels"]["cpu-scan"]
    assert used == "compiled" or str(used).startswith("torch"), used


def test_a_failing_cell_is_recorded_and_the_others_go_on(tmp_path: Path) -> None:
    suite, root = write_suite(tmp_path, BROKEN), tmp_path / "R"
    env = {"SEQBENCH_PLUGINS": "tests.plugins.broken_models"}
    run = seqbench("run", str(suite), "--results", str(root), "--quiet", env=env)
    assert run.returncode == 1
    assert "FAILED synthetic/exploding seed 1: exploding model: boom" in run.stdout
    done = results(root)
    failed = {k: r for k, r in done.items() if r["status"] == "failed"}
    assert len(done) == 6 and len(failed) == 2
    for key, r in failed.items():
        assert r["error"]["type"] == "RuntimeError"
        assert "boom" in r["error"]["traceback"]
        assert "boom" in (root / key / "cell.log").read_text()

    again = seqbench("run", str(suite), "--results", str(root), "--quiet", env=env)
    assert again.returncode == 1  # failed cells are retried (and fail again), the rest skipped
    assert "4 already complete" in again.stdout and "2 trained, 2 failed" in again.stdout


def _dry_states(suite: Path, root: Path) -> tuple[dict[str, str], str]:
    """``run --dry-run``: each cell's "in the store" column by ``model seed``, and the count."""
    dry = seqbench("run", str(suite), "--results", str(root), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    rows = re.findall(r"│ (\w+)\s+│\s+(\d)\s+│ \w{8} │ (.+?)\s*$", dry.stdout, re.MULTILINE)
    (count,) = re.findall(r"^(?:in the store|nothing to train).*$", dry.stdout, re.MULTILINE)
    return {f"{model} {seed}": state for model, seed, state in rows}, count


def test_only_and_dry_run(tmp_path: Path) -> None:
    """--dry-run trains nothing, writes nothing, and says what a run would do with each cell."""
    suite, root = write_suite(tmp_path), tmp_path / "R"
    states, count = _dry_states(suite, root)
    assert states == dict.fromkeys(["sasrec 1", "sasrec 2", "pop 1", "pop 2"], "to train")
    assert count == f"in the store ({root / 'tiny'}): 4 to train"
    assert not root.exists()

    only = seqbench("run", str(suite), "--results", str(root), "--quiet", "--only", "model=pop")
    assert only.returncode == 0, only.stderr
    assert [r["cell"]["variant"]["model"] for r in results(root).values()] == ["pop", "pop"]
    (sasrec_1,) = [
        c for c in load_suite(suite).cells() if c.variant.model == "sasrec" and c.seed == 1
    ]
    held = SuiteStore(root, "tiny").claim(
        sasrec_1.hash(source_fingerprint(sasrec_1.dataset, download=True))
    )
    states, count = _dry_states(suite, root)  # this test process holds sasrec seed 1
    assert states == {
        "sasrec 1": f"in training by pid {os.getpid()} on {socket.gethostname()}",
        "sasrec 2": "to train",
        "pop 1": "ok",
        "pop 2": "ok",
    }
    assert count.endswith(": 2 complete, 1 in training by another process, 1 to train")
    SuiteStore(root, "tiny").release(held)
    assert seqbench("run", str(suite), "--results", str(root), "--quiet").returncode == 0
    assert (
        _dry_states(suite, root)[1]
        == f"nothing to train ({root / 'tiny'}): all 4 cells are complete"
    )

    bad = seqbench("run", str(suite), "--results", str(root), "--only", "modle=pop")
    assert bad.returncode == 1 and "KEY one of dataset, model" in bad.stderr
    none = seqbench("run", str(suite), "--results", str(root), "--only", "model=gru*")
    assert none.returncode == 1 and "matches none" in none.stderr


def test_cells_are_bit_for_bit_repeatable_across_processes(tmp_path: Path) -> None:
    suite = write_suite(tmp_path)
    for root in ("A", "B"):
        args = ["run", str(suite), "--results", str(tmp_path / root), "--quiet"]
        assert seqbench(*args, "--only", "model=sasrec,seed=1").returncode == 0
    a, b = (results(tmp_path / r) for r in ("A", "B"))
    assert a.keys() == b.keys() and len(a) == 1  # the same cell, the same hash
    key = next(iter(a))
    assert [e["loss"] for e in a[key]["curve"]] == [e["loss"] for e in b[key]["curve"]]
    assert a[key]["metrics"] == b[key]["metrics"]
    ranks_a = np.load(tmp_path / "A" / key / "ranks.npz")
    ranks_b = np.load(tmp_path / "B" / key / "ranks.npz")
    for name in ("users", "valid_rank", "test_rank", "test_tied"):
        np.testing.assert_array_equal(ranks_a[name], ranks_b[name])


def test_two_runs_share_one_results_root_without_duplicating_work(tmp_path: Path) -> None:
    suite, root = write_suite(tmp_path), tmp_path / "R"
    environ = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "seqbench", "run", str(suite), "--results", str(root), "-q"]
    runs = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=environ)
        for _ in range(2)
    ]  # fmt: skip
    outputs = [run.communicate(timeout=300) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    done = results(root)
    assert len(done) == 4 and all(r["status"] == "ok" for r in done.values())
    trained = sum(out.count("\nok ") + out.startswith("ok ") for out, _ in outputs)
    assert trained == 4  # every cell trained exactly once, by one of the two processes


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_worker_dies_with_its_runner(tmp_path: Path) -> None:
    import time

    suite, root = write_suite(tmp_path), tmp_path / "R"
    runner = subprocess.Popen(
        [sys.executable, "-m", "seqbench", "run", str(suite), "--results", str(root), "-q"],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    tasks = Path(f"/proc/{runner.pid}/task")  # workers are started by the executor's threads
    deadline = time.monotonic() + 120
    workers: list[int] = []
    while not workers and time.monotonic() < deadline:
        for children in tasks.glob("*/children"):
            with contextlib.suppress(OSError):
                workers += [int(pid) for pid in children.read_text().split()]
        time.sleep(0.05)
    assert workers, "no worker process started"
    time.sleep(1.0)  # let it get past its start-up
    runner.kill()
    runner.wait()
    while time.monotonic() < deadline and any(Path(f"/proc/{pid}").exists() for pid in workers):
        time.sleep(0.05)
    alive = [p for p in workers if Path(f"/proc/{p}").exists() and "Z" not in _state(p)]
    assert not alive, f"orphaned workers {alive}"  # PR_SET_PDEATHSIG, or the broken pipe


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return "Z"


def test_sigterm_ends_the_run_like_ctrl_c_and_releases_every_claim(tmp_path: Path) -> None:
    import time

    suite, root = write_suite(tmp_path), tmp_path / "R"
    runner = subprocess.Popen(
        [sys.executable, "-m", "seqbench", "run", str(suite), "--results", str(root), "-q"],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    leases = root / "tiny" / ".leases"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (leases.is_dir() and any(leases.iterdir())):
        time.sleep(0.05)
    assert leases.is_dir() and any(leases.iterdir()), "no cell was claimed"
    runner.send_signal(signal.SIGTERM)
    out, err = runner.communicate(timeout=120)
    assert runner.returncode == 130, out + err
    assert "interrupted" in err
    assert not list(leases.iterdir())  # every claim released
    assert not list((root / "tiny" / ".tmp").iterdir())  # nothing half-written left
    for attempt in (root / "tiny" / ".attempts").glob("*/*.json"):
        assert json.loads(attempt.read_text())["outcome"] == "interrupted"
    rerun = seqbench("run", str(suite), "--results", str(root), "--quiet")
    assert rerun.returncode == 0, rerun.stderr
    done = results(root)
    assert len(done) == 4 and all(r["status"] == "ok" for r in done.values())
