"""Conditions added to finished cells without retraining: ``seqbench evaluate``, a rerun of a
suite that gained conditions, refusals, and the claim that keeps two evaluators apart."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from seqbench import record
from seqbench.data.noise.spec import NoiseSpec
from seqbench.robustness.stored import add_conditions, cell_of, suite_store
from seqbench.robustness.weights import WeightsError, load_weights, save_weights
from tests.cli.test_run_cli import seqbench

SUITE = """
[suite]
name = "robust"
seeds = [1]

[train]
epochs = 2
batch_size = 128
{train}

[eval]
metrics = ["hr@10", "ndcg@10"]
{conditions}

[[datasets]]
name = "synthetic"
options = {{ n_users = 120, n_items = 40, seed = 3 }}
protocol = {{ max_len = 10 }}

[[models]]
model = "sasrec"
params = {{ hidden_size = 16, n_layers = 1, n_heads = 1, inner_size = 32 }}
"""
IN_RUN = 'noise = [{ kind = "delete", ratio = 0.3, where = "end" }]'


def write(tmp_path: Path, conditions: str = IN_RUN, train: str = "") -> Path:
    path = tmp_path / "robust.toml"
    path.write_text(SUITE.format(conditions=conditions, train=train), encoding="utf-8")
    return path


def only_cell(root: Path) -> Path:
    (found,) = sorted((root / "robust").glob("*/*/seed-*/result.json"))
    return found.parent


def ranks(cell: Path) -> dict[str, np.ndarray]:
    with np.load(cell / record.RANKS) as npz:
        return {name: npz[name] for name in npz.files}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished cell with one in-run condition (a template: tests copy it)."""
    tmp = tmp_path_factory.mktemp("trained")
    done = seqbench("run", str(write(tmp)), "--results", str(tmp / "R"), "--quiet",
                    env={"SEQBENCH_CACHE_DIR": str(tmp / "cache")})  # fmt: skip
    assert done.returncode == 0, done.stderr + done.stdout
    return tmp


@pytest.fixture
def copy(trained: Path, tmp_path: Path) -> Path:
    import shutil

    shutil.copytree(trained / "R", tmp_path / "R")
    return tmp_path / "R"


def test_a_run_stores_weights_and_its_conditions(trained: Path) -> None:
    cell = only_cell(trained / "R")
    result = record.read(cell / record.RESULT)
    assert (cell / record.WEIGHTS).is_file()
    assert result.evaluations is not None
    entry = result.evaluations["delete-end-0.3"]
    assert entry.ranks == {"test": "test_rank@delete-end-0.3",
                           "test_tied": "test_tied@delete-end-0.3"}  # fmt: skip
    arrays = ranks(cell)
    assert arrays["test_rank@delete-end-0.3"].shape == arrays["test_rank"].shape
    assert entry.metrics.test is not None
    assert entry.metrics.test["hr@10"] == pytest.approx(
        float(np.mean(arrays["test_rank@delete-end-0.3"] <= 10))
    )


def test_evaluate_adds_a_condition_from_the_weights_without_retraining(copy: Path) -> None:
    cell = only_cell(copy)
    before = json.loads((cell / record.RESULT).read_text())
    old = ranks(cell)
    # the in-run condition under another name: the same ranks only from the trained weights
    done = seqbench("evaluate", str(copy), "--noise", "kind=delete,ratio=0.3,where=end,name=again",
                    "--noise", "kind=replace,ratio=0.0|0.2,where=beginning")  # fmt: skip
    assert done.returncode == 0, done.stderr + done.stdout
    assert "added again, replace-beginning-0.0, replace-beginning-0.2" in done.stdout
    after = json.loads((cell / record.RESULT).read_text())
    record.parse(after)  # still a valid record
    for key in ("curve", "metrics", "best_epoch", "timing", "cell", "attempts"):
        assert after[key] == before[key], key
    assert set(after["evaluations"]) == {"delete-end-0.3", "again", "replace-beginning-0.0",
                                         "replace-beginning-0.2"}  # fmt: skip
    new = ranks(cell)
    for name, array in old.items():
        assert np.array_equal(new[name], array), name
    assert np.array_equal(new["test_rank@again"], old["test_rank@delete-end-0.3"])
    assert np.array_equal(new["test_rank@replace-beginning-0.0"], old["test_rank"])
    assert not (copy / "robust" / ".attempts" / before["cell"]["hash"]).exists()
    again = seqbench("evaluate", str(copy), "--noise", "kind=replace,ratio=0.2,where=beginning")
    assert again.returncode == 0 and "nothing to add" in again.stdout
    clash = seqbench("evaluate", str(copy), "--noise", "kind=truncate,keep=2,name=again")
    assert clash.returncode == 1 and "recorded with other settings" in clash.stderr


def test_evaluate_reads_the_weights_file(copy: Path) -> None:
    cell = only_cell(copy)
    weights = (cell / record.WEIGHTS).read_bytes()
    (cell / record.WEIGHTS).write_bytes(weights[: len(weights) // 2])
    done = seqbench("evaluate", str(copy), "--noise", "kind=truncate,keep=2")
    assert done.returncode == 1 and "weights.safetensors cannot be read" in done.stderr


def test_a_cell_without_weights_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    suite = write(tmp_path, conditions="", train="save_weights = false")
    done = seqbench("run", str(suite), "--results", str(tmp_path / "R"), "--quiet")
    assert done.returncode == 0, done.stderr
    cell = only_cell(tmp_path / "R")
    assert not (cell / record.WEIGHTS).exists()
    refused = seqbench("evaluate", str(tmp_path / "R"), "--noise", "kind=truncate,keep=2")
    assert refused.returncode == 1
    message = " ".join(refused.stderr.split())
    assert "refused" in message and "no weights.safetensors" in message
    assert "save_weights = true" in message
    assert "evaluations" not in json.loads((cell / record.RESULT).read_text())


def test_a_rerun_of_a_suite_with_new_conditions_adds_them_without_training(
    copy: Path, tmp_path: Path
) -> None:
    cell = only_cell(copy)
    curve = json.loads((cell / record.RESULT).read_text())["curve"]
    more = IN_RUN.replace("]", ', { kind = "embedding", std = 0.5 }]')
    done = seqbench("run", str(write(tmp_path, conditions=more)), "--results", str(copy),
                    "--quiet")  # fmt: skip
    assert done.returncode == 0, done.stderr + done.stdout
    assert "added 1 condition(s)" in done.stdout and "nothing to train" in done.stdout
    after = json.loads((cell / record.RESULT).read_text())
    assert after["curve"] == curve and "embedding-0.5" in after["evaluations"]


def test_weights_round_trip_and_belong_to_their_cell(tmp_path: Path) -> None:
    module = torch.nn.Linear(3, 2)
    save_weights(module, tmp_path / "w.safetensors", cell_hash="abc", model="linear")
    other = torch.nn.Linear(3, 2)
    load_weights(other, tmp_path / "w.safetensors", cell_hash="abc")
    assert torch.equal(other.weight, module.weight) and torch.equal(other.bias, module.bias)
    with pytest.raises(WeightsError, match="belongs to cell 'abc'"):
        load_weights(other, tmp_path / "w.safetensors", cell_hash="def")
    assert not (tmp_path / "w.safetensors").read_bytes().startswith(b"\x80")  # not a pickle


def test_two_evaluators_never_interleave(copy: Path) -> None:
    cell = only_cell(copy)
    parsed = record.read(cell / record.RESULT)
    results = suite_store(cell, cell_of(parsed), parsed.cell.hash, 60.0)
    claim = results.claim(parsed.cell.hash)  # someone else is updating the cell
    finished: list[float] = []
    spec = NoiseSpec(kind="truncate", keep=3)

    def evaluate() -> None:
        add_conditions(cell, [spec], poll=0.05)
        finished.append(time.monotonic())

    thread = threading.Thread(target=evaluate)
    thread.start()
    time.sleep(1.0)
    assert not finished  # waits for the claim
    released = time.monotonic()
    results.release(claim, "ok")
    thread.join(timeout=120)
    assert finished and finished[0] >= released
    assert "truncate-3" in (record.read(cell / record.RESULT).evaluations or {})
    other = results.claim(parsed.cell.hash)  # the evaluator's claim is gone (else CellBusy)
    results.release(other, "ok")
