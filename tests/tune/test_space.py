"""Search spaces and [tune] in the suite: validated like the rest of the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from seqbench.suite import SuiteError, load_suite

HEAD = """
[suite]
name = "s"
seeds = [3, 4]

[train]
stopping_step = 2

[[datasets]]
name = "synthetic"
"""


def load(tmp_path: Path, body: str) -> object:
    path = tmp_path / "s.toml"
    path.write_text(HEAD + body, encoding="utf-8")
    return load_suite(path)


def problems(tmp_path: Path, body: str) -> list[str]:
    with pytest.raises(SuiteError) as caught:
        load(tmp_path, body)
    return str(caught.value).splitlines()


def test_a_space_resolves_choices_and_ranges(tmp_path: Path) -> None:
    suite = load(
        tmp_path,
        """
[[models]]
model = "sasrec"

[models.tune]
lr = { low = 1e-4, high = 1e-2, log = true }
hidden_size = [32, 64, 128]
hidden_dropout_prob = { low = 0, high = 0.5, step = 0.1 }
n_layers = { low = 1, high = 3 }
max_len = [10, 20]
""",
    )
    plan = suite.models[0]  # type: ignore[attr-defined]
    assert plan.tune_targets == {
        "lr": "train",
        "hidden_size": "params",
        "hidden_dropout_prob": "params",
        "n_layers": "params",
        "max_len": "protocol",
    }
    assert plan.tune["lr"].log and plan.tune["lr"].grid() is None
    assert plan.tune["hidden_dropout_prob"].grid() == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]
    assert not plan.tune["hidden_dropout_prob"].integer  # a float key stays float with int ends
    assert plan.tune["n_layers"].integer and plan.tune["n_layers"].grid() == [1, 2, 3]
    tune = suite.tune  # type: ignore[attr-defined]
    # defaults: 20 trials, TPE seeded with the first seed, median pruner warming up for the
    # early-stopping patience, the suite's validation metric, the first seed only
    assert (tune.trials, tune.sampler, tune.seed, tune.pruner) == (20, "tpe", 3, "median")
    assert (tune.warmup, tune.metric, tune.seeds) == (2, "ndcg@10", [3])


def test_every_bad_space_is_reported_with_its_line(tmp_path: Path) -> None:
    lines = problems(
        tmp_path,
        """
[[models]]
model = "sasrec"
params = { hidden_size = 64 }
sweep = { n_layers = [1, 2] }

[models.tune]
hiden_size = [1]
hidden_size = [32]
n_layers = [1]
lr = { low = 0, high = 1e-2, log = true }
n_heads = { low = 1.0, high = 4 }
inner_size = { low = 8, high = 64, stp = 8 }
hidden_act = ["gelu", "tanhh"]
batch_size = []
""",
    )
    text = "\n".join(lines)
    # one problem per key, each with the line of its key (the sub-table starts on line 17)
    assert [line.split(": ")[0].rsplit(":", 1)[1] for line in lines] == [
        str(n) for n in range(18, 26)
    ], text
    assert "tune.hiden_size: unknown key to tune" in text and "did you mean 'hidden_size'?" in text
    assert "tune.hidden_size: 'hidden_size' is both set in params and tuned" in text
    assert "tune.n_layers: 'n_layers' is both swept and tuned" in text
    assert "tune.lr.low: got 0 with log = true; expected a number > 0" in text
    assert "tune.n_heads.low: got 1.0; expected an integer" in text
    assert "tune.inner_size.stp: unknown key" in text and "did you mean 'step'?" in text
    assert 'tune.hidden_act[1]: got "tanhh"' in text  # each choice is checked as if set
    assert "tune.batch_size: got []" in text
    assert len(lines) == 8, text


def test_a_space_over_a_parameter_the_ablation_switches_off_is_an_error(tmp_path: Path) -> None:
    lines = problems(
        tmp_path,
        """
[[models]]
model = "echomamba4rec"
ablations = ["full", "forward_only"]
tune = { flip = ["full", "per_length"] }
""",
    )
    assert len(lines) == 1
    assert "models[0].tune.flip: tuning 'flip' with ablation 'forward_only'" in lines[0]


def test_tune_table_checks(tmp_path: Path) -> None:
    lines = problems(
        tmp_path,
        """
[[models]]
model = "sasrec"
tune = { lr = { low = 1e-4, high = 1e-2 }, n_layers = [1, 2] }

[tune]
sampler = "grid"
trials = 3
warmup = 1
metric = "hr@20"
pruner = "medain"
timeout = "soon"
""",
    )
    text = "\n".join(lines)
    assert "models[0].tune.lr: a continuous range cannot be searched by the grid sampler" in text
    assert "tune.warmup: 1 epochs is shorter than the early-stopping patience" in text
    assert "tune.metric: 'hr@20' is not computed on validation" in text
    assert "did you mean 'hr@10'?" in text
    assert 'tune.pruner: got "medain"' in text
    assert "tune.timeout:" in text and "30m" in text


def test_a_grid_smaller_than_the_trials_is_an_error(tmp_path: Path) -> None:
    lines = problems(
        tmp_path,
        """
[[models]]
model = "sasrec"
tune = { n_layers = [1, 2], hidden_dropout_prob = { low = 0.1, high = 0.3, step = 0.1 } }

[tune]
sampler = "grid"
trials = 7
""",
    )
    assert lines == [lines[0]] and "7 trials, and the grid of models[0] has 6 points" in lines[0]
    ok = load(tmp_path, lines and '\n[[models]]\nmodel = "sasrec"\ntune = { n_layers = [1, 2] }'
              '\n\n[tune]\nsampler = "grid"\ntimeout = "2m"\n')  # fmt: skip
    assert ok.tune.trials is None and ok.tune.timeout == 120.0  # type: ignore[attr-defined]
