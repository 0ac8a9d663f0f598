"""``[train] mode = "throughput"`` and its step counts: defaults, validation with the file and
line, sweeps, and cell identities (fit cells keep the hashes they had before the keys existed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from seqbench.cells import THROUGHPUT_DEFAULTS, TrainSettings
from tests.test_cells import SOURCE, base_cell
from tests.test_suite import loaded, problems

GRU = '\n[[models]]\nmodel = "gru4rec"\n'
HEAD = """\
[suite]
name = "s"
seeds = [1]

[[datasets]]
name = "synthetic"
"""


def test_a_throughput_cell_gets_the_default_step_counts() -> None:
    settings = TrainSettings(mode="throughput")
    assert (settings.warmup_steps, settings.steps, settings.score_users) == (2, 5, 256)
    assert TrainSettings(mode="throughput", steps=3).steps == 3
    fit = TrainSettings()
    assert fit.mode == "fit" and fit.steps is None and fit.warmup_steps is None


def test_step_counts_are_refused_in_fit_mode_and_checked_in_throughput_mode() -> None:
    with pytest.raises(ValueError, match="steps applies to mode 'throughput' only, mode is 'fit'"):
        TrainSettings(steps=3)
    with pytest.raises(ValueError, match="warmup_steps, score_users applies to mode"):
        TrainSettings(warmup_steps=0, score_users=9)
    with pytest.raises(ValueError, match="greater than or equal to 1"):
        TrainSettings(mode="throughput", steps=0)
    assert TrainSettings(mode="throughput", warmup_steps=0).warmup_steps == 0


def test_fit_cells_keep_their_hash_and_throughput_settings_change_it() -> None:
    cell = base_cell()
    identity = cell.identity(SOURCE)["train"]
    assert not {"mode", *THROUGHPUT_DEFAULTS} & set(identity)

    def with_train(**values: object) -> str:
        return cell.model_copy(update={"train": TrainSettings(**values)}).hash(SOURCE)  # type: ignore[arg-type]

    assert with_train(mode="fit") == cell.hash(SOURCE)
    throughput = with_train(mode="throughput")
    # an explicit default is the same cell as an unset one
    assert throughput == with_train(mode="throughput", warmup_steps=2, steps=5, score_users=256)
    hashes = {
        cell.hash(SOURCE),
        throughput,
        with_train(mode="throughput", steps=6),
        with_train(mode="throughput", warmup_steps=0),
        with_train(mode="throughput", score_users=8),
    }
    assert len(hashes) == 5


def test_the_suite_names_the_line_of_a_misplaced_or_bad_step_count(tmp_path: Path) -> None:
    lines = problems(tmp_path, HEAD + "\n[train]\nepochs = 3\nsteps = 4\n" + GRU)
    assert len(lines) == 1
    assert "suite.toml:8: train: steps applies to mode 'throughput' only" in lines[0]
    lines = problems(tmp_path, HEAD + '\n[train]\nmode = "throughput"\nsteps = 0\n' + GRU)
    assert len(lines) == 1 and "suite.toml:10: train.steps" in lines[0]
    lines = problems(tmp_path, HEAD + '\n[train]\nmode = "fast"\n' + GRU)
    assert "suite.toml:9: train.mode" in lines[0] and "'fit' or 'throughput'" in lines[0]


def test_step_counts_and_lengths_are_sweepable(tmp_path: Path) -> None:
    suite = loaded(
        tmp_path,
        HEAD
        + """
[train]
mode = "throughput"
batch_size = 4

[[models]]
model = "gru4rec"
sweep = { max_len = [8, 16], steps = [2, 3] }
""",
    )
    cells = suite.cells()
    points = [(c.protocol.max_len, c.train.steps) for c in cells]
    assert points == [(8, 2), (8, 3), (16, 2), (16, 3)]
    assert all(c.train.mode == "throughput" and c.train.warmup_steps == 2 for c in cells)
    assert len({c.hash(SOURCE) for c in cells}) == 4
