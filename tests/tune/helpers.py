"""Small suites and a ``seqbench`` runner in real processes, for the tuning tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO

pytest.importorskip("optuna", reason="the tune extra is not installed (pip install '.[tune]')")

#: A study that takes seconds: 60 users, 30 items, a one-layer GRU4Rec of width 16.
SUITE = """
[suite]
name = "{name}"
seeds = [7, 8]

[protocol]
max_len = 10
k_core = 0

[train]
epochs = {epochs}
batch_size = 64
stopping_step = 1
lr = 3e-3

[[datasets]]
{dataset}

[[models]]
model = "gru4rec"
params = {{ embedding_size = 16, hidden_size = 16 }}
tune = {space}

[tune]
{tune}
"""

SYNTHETIC = 'name = "synthetic"\noptions = { n_users = 60, n_items = 30, seed = 5 }'
#: lr 1e-2 learns the synthetic chains; 1e-7 does not move: after the first trial completes,
#: the median pruner (one complete trial suffices here) stops it at the warm-up.
GRID = "{ lr = [1e-2, 1e-7, 3e-3, 1e-3] }"


def write_suite(
    folder: Path,
    *,
    name: str = "tn",
    space: str = GRID,
    tune: str = 'sampler = "grid"\ntrials = 3\nstartup_trials = 1',
    dataset: str = SYNTHETIC,
    epochs: int = 4,
    file: str = "suite.toml",
) -> Path:
    path = folder / file
    text = SUITE.format(name=name, space=space, tune=tune, dataset=dataset, epochs=epochs)
    path.write_text(text, encoding="utf-8")
    return path


def seqbench(
    *args: str, env: dict[str, str] | None = None, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "seqbench", *args],
        capture_output=True,
        text=True,
        env=environ,
        timeout=timeout,
    )


def start(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    environ = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.Popen(
        [sys.executable, "-m", "seqbench", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=environ,
    )


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def trial_records(suite_dir: Path) -> list[dict[str, Any]]:
    """Every result.json of the hidden trial store, default cells included."""
    return [
        json.loads(p.read_text(encoding="utf-8"))
        for p in sorted((suite_dir / ".tune").rglob("result.json"))
        if ".tmp" not in p.parts
    ]


def study_trials(storage: str, name: str) -> list[Any]:
    """The trials of study ``name`` in a journal file or a database URL."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if "://" in storage:
        from seqbench.tune.storage import open_storage

        store: Any = open_storage(storage, Path("."), Path(".")).optuna
    else:
        from optuna.storages.journal import JournalFileBackend

        store = optuna.storages.JournalStorage(JournalFileBackend(storage))
    return optuna.load_study(study_name=name, storage=store).get_trials(deepcopy=False)


def counted(trials: list[Any]) -> list[Any]:
    """The trials that count toward N: complete and pruned."""
    from optuna.trial import TrialState

    return [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
