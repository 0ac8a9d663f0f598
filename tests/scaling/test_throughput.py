"""Throughput cells: timed steps and scoring recorded under ``throughput``, the longest samples
first, partial sections when a cell is stopped, and stops that interrupt a running step."""

from __future__ import annotations

import json
import signal
import statistics
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from seqbench import runner, worker
from seqbench.batches import DeviceSplit
from seqbench.cells import EvalSettings, TrainSettings
from seqbench.data.load import DatasetSpec, load_dataset
from seqbench.data.protocol import Protocol
from seqbench.models.registry import get_model
from seqbench.suite import load_suite
from seqbench.throughput import longest_rows, measure
from seqbench.train import Settings
from tests.core.test_executors import Recorder
from tests.test_suite import problems

SUITE = """
[suite]
name = "tp"
seeds = [1]

[protocol]
max_len = 16

[train]
mode = "throughput"
batch_size = 8
warmup_steps = 1
steps = 3
score_users = 20

[[datasets]]
name = "synthetic"
options = { n_users = 60, n_items = 40, min_length = 40, mean_length = 40, max_length = 40 }

[[models]]
model = "sasrec"
params = { hidden_size = 16, n_layers = 1, n_heads = 1, inner_size = 32 }
"""
OPTIONS = {"n_users": 60, "n_items": 40, "min_length": 40, "mean_length": 40, "max_length": 40}


def _run(tmp_path: Path, text: str = SUITE, **options: Any) -> runner.RunSummary:
    path = tmp_path / "tp.toml"
    path.write_text(text, encoding="utf-8")
    suite = load_suite(path)
    opts = runner.RunOptions(results=tmp_path / "R", device="cpu", **options)
    return runner.run_cells(suite.name, runner.plan(suite.cells(), opts), opts, Recorder())


def test_a_throughput_cell_records_its_steps_scoring_and_memory(tmp_path: Path) -> None:
    summary = _run(tmp_path)
    ((_, result),) = summary.ran
    assert result["status"] == "ok" and summary.ok
    section = result["throughput"]
    assert (section["batch_size"], section["max_len"]) == (8, 16)
    assert (section["warmup_steps"], section["steps"]) == (1, 3)
    assert len(section["step_seconds"]) == 3 and min(section["step_seconds"]) > 0
    assert section["seconds_per_step"] == statistics.median(section["step_seconds"])
    # every user has 40 items, so each timed batch holds 8 full windows of 16 items
    tokens = 3 * 8 * 16
    assert section["tokens_per_second"] == pytest.approx(tokens / sum(section["step_seconds"]))
    assert section["users_scored"] == 20 and section["users_per_second"] > 0
    memory = section["memory"]
    assert memory["kind"] == "rss"
    assert 0 < memory["baseline"] <= memory["train_peak"] and memory["score_peak"] > 0
    # the cell's peak covers both phases, although each phase's peak was reset at its start
    assert result["memory"]["peak_rss_mib"] >= max(memory["train_peak"], memory["score_peak"])
    assert "metrics" not in result and result["curve"] == []
    (cell_dir,) = (tmp_path / "R" / "tp").glob("synthetic/sasrec/seed-*")
    assert not (cell_dir / "ranks.npz").exists()
    again = _run(tmp_path)
    assert again.already_done == 1 and not again.ran


def test_a_model_without_training_steps_is_refused_before_any_work(tmp_path: Path) -> None:
    text = SUITE.split("[[models]]")[0] + '[[models]]\nmodel = "pop"\n'
    (line,) = problems(tmp_path, text)
    assert "model 'pop' is fitted from counts" in line and 'mode = "fit"' in line


def test_longest_rows_come_first_in_a_seeded_order() -> None:
    dataset = load_dataset(
        DatasetSpec(name="synthetic", options={"n_users": 30, "n_items": 20}), Protocol(max_len=8)
    )
    split = DeviceSplit(dataset, "train", 8, torch.device("cpu"))
    lengths = torch.clamp(split.ends - split.starts, max=8)
    rows = longest_rows(split, 50, torch.Generator().manual_seed(0))
    assert torch.equal(lengths[rows], torch.sort(lengths, descending=True).values[:50])
    again = longest_rows(split, 50, torch.Generator().manual_seed(0))
    assert torch.equal(rows, again)
    few = longest_rows(split.take(rows[:5]), 12, torch.Generator().manual_seed(1))
    assert few.shape == (12,) and set(few.tolist()) == set(range(5))  # starts over
    assert longest_rows(split.take(rows[:5]), 12, torch.Generator(), repeat=False).shape == (5,)


class Stop(Exception):
    pass


def test_a_stopped_cell_keeps_the_steps_it_completed() -> None:
    dataset = load_dataset(DatasetSpec(name="synthetic", options=OPTIONS), Protocol(max_len=16))
    spec = get_model("gru4rec")
    model = spec.cls(spec.params(embedding_size=8, hidden_size=8), n_items=dataset.n_items,
                     max_len=16)  # fmt: skip
    train = TrainSettings(mode="throughput", batch_size=4, warmup_steps=1, steps=5)
    section: dict[str, Any] = {}
    events: list[dict[str, Any]] = []

    def on_event(event: dict[str, Any]) -> None:
        events.append(event)
        if event == {**event, "event": "step", "phase": "train", "step": 2}:
            raise Stop

    with pytest.raises(Stop):
        measure(model, dataset, Settings(train, EvalSettings()), seed=0,
                device=torch.device("cpu"), section=section, on_event=on_event)  # fmt: skip
    ended = [e["phase"] for e in events if e["event"] == "step"]
    assert ended == ["warmup", "train", "train"]
    assert [e["event"] for e in events][:2] == ["step_start", "step"]
    assert len(section["step_seconds"]) == 2 and section["steps"] == 5
    assert section["memory"]["baseline"] > 0 and "users_scored" not in section


class _Channel:
    def __init__(self) -> None:
        self.request: dict[str, Any] | None = None
        self.current: worker.CellState | None = None

    def stop_request(self, cell_hash: str) -> dict[str, Any] | None:
        return self.request


def test_a_stop_interrupts_python_code_running_in_an_interruptible_region(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    channel = _Channel()
    state = worker.CellState(channel, "h")  # type: ignore[arg-type]
    channel.current = state
    monkeypatch.setattr(worker, "_CHANNEL", channel)
    previous = signal.signal(signal.SIGUSR1, worker._on_interrupt)
    try:

        def ask() -> None:
            time.sleep(0.2)
            channel.request = {"status": "timeout", "reason": "too slow", "requested_by": "t"}
            state.interrupt()

        threading.Thread(target=ask, daemon=True).start()
        deadline = time.monotonic() + 60

        def long_step() -> None:  # Python work that never emits an event
            with state.interruptible_region():
                while time.monotonic() < deadline:
                    np.sqrt(np.arange(1000.0)).sum()

        with pytest.raises(worker.CellStopped) as info:
            long_step()
        assert info.value.status == "timeout" and info.value.requested_by == "t"
        assert time.monotonic() < deadline and not state.interruptible
        # outside a region a signal changes nothing: the next event raises instead
        state.interrupt()
        signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGUSR1)
        with pytest.raises(worker.CellStopped):
            state.on_event({"event": "step"})
    finally:
        signal.signal(signal.SIGUSR1, previous)


def test_the_throughput_record_round_trips(tmp_path: Path) -> None:
    _run(tmp_path)
    (path,) = (tmp_path / "R" / "tp").glob("synthetic/sasrec/seed-*/result.json")
    from seqbench import record

    parsed = record.read(path)
    assert parsed.throughput is not None and parsed.throughput.memory is not None
    assert json.loads(path.read_text())["cell"]["train"]["mode"] == "throughput"
