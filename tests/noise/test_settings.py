"""Noise settings: the keys of each kind, defaults, names, lists of conditions, and what joins a
cell's identity (training noise does; evaluation conditions and save_weights do not)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from seqbench.cells import EvalSettings, TrainSettings
from seqbench.data.noise.spec import NoiseSpec
from seqbench.suite import SuiteError, load_suite
from tests.test_suite import GOOD, fake_models, write  # noqa: F401

pytestmark = pytest.mark.usefixtures("fake_models")

SOURCE = {"sha256": "a" * 64, "format": "synthetic", "format_version": 1, "options": {}}


def spec(**values: object) -> NoiseSpec:
    return NoiseSpec.model_validate(values, strict=True)


def test_each_kind_takes_its_own_keys_with_defaults_filled_in() -> None:
    assert spec(kind="replace", ratio=0.1).identity() == {
        "kind": "replace", "ratio": 0.1, "where": "uniform", "sample": "uniform",
    }  # fmt: skip
    assert spec(kind="delete", ratio=0.1, where="end").identity() == {
        "kind": "delete", "ratio": 0.1, "where": "end",
    }  # fmt: skip
    assert spec(kind="truncate", keep=5).identity() == {"kind": "truncate", "keep": 5}
    assert spec(kind="embedding", std=0.1).label == "embedding-0.1"
    for bad, why in (
        ({"kind": "delete", "ratio": 0.1, "sample": "popularity"}, "not sample"),
        ({"kind": "truncate", "ratio": 0.1, "keep": 3}, "not ratio"),
        ({"kind": "replace"}, "needs ratio"),
        ({"kind": "replace", "ratio": 1.5}, "less than or equal to 1"),
        ({"kind": "shuffle", "ratio": 0.1, "window": 1}, "greater than or equal to 2"),
        ({"kind": "replace", "ratio": 0.1, "name": "a b"}, "names arrays"),
        ({"kind": "blur", "ratio": 0.1}, "'replace'"),
    ):
        with pytest.raises(ValidationError, match=why):
            spec(**bad)


def test_labels_name_kind_sampling_place_level_and_window() -> None:
    assert spec(kind="replace", ratio=0.1, where="end").label == "replace-end-0.1"
    assert spec(kind="replace", ratio=0, where="end").label == "replace-end-0.0"
    assert spec(kind="insert", ratio=0.2, sample="popularity").label == (
        "insert-popularity-uniform-0.2"
    )
    assert spec(kind="shuffle", ratio=0.3, where="end", window=3).label == "shuffle-end-0.3-w3"
    assert spec(kind="truncate", keep=5).label == "truncate-5"
    assert spec(kind="delete", ratio=0.1, name="mine").label == "mine"


def test_eval_lists_expand_into_conditions_with_unique_names() -> None:
    settings = EvalSettings.model_validate(
        {"noise": [{"kind": "delete", "ratio": [0.0, 0.1], "where": ["end", "beginning"]},
                   {"kind": "truncate", "keep": [3, 5]}]},
        strict=True,
    )  # fmt: skip
    assert [s.label for s in settings.noise] == [
        "delete-end-0.0", "delete-beginning-0.0", "delete-end-0.1", "delete-beginning-0.1",
        "truncate-3", "truncate-5",
    ]  # fmt: skip
    with pytest.raises(ValidationError, match=r"named 'replace-uniform-0\.1'"):
        EvalSettings(noise=[spec(kind="replace", ratio=0.1), spec(kind="replace", ratio=0.1)])
    with pytest.raises(ValidationError, match=r"noise\[0\].ratio = 2.0: .*less than or equal to 1"):
        EvalSettings.model_validate({"noise": [{"kind": "delete", "ratio": [0.1, 2.0]}]})


def test_training_noise_is_refused_where_it_cannot_work() -> None:
    with pytest.raises(ValidationError, match="evaluation condition"):
        TrainSettings(noise=spec(kind="embedding", std=0.1))
    with pytest.raises(ValidationError, match="objective 'last'"):
        TrainSettings(objective="all_positions", noise=spec(kind="delete", ratio=0.1))


NOISY = GOOD.replace(
    "[train]\nepochs = 3",
    """[train]
epochs = 3

[eval]
metrics = ["hr@10"]
noise = [
  { kind = "replace", ratio = [0.0, 0.2], where = ["end", "beginning"] },
  { kind = "embedding", std = 0.1 },
]""",
).replace(
    "params = { hidden_size = 32 }",
    "params = { hidden_size = 32 }\n"
    'sweep = { noise = [{ kind = "delete", ratio = 0.1, where = "end" }] }',
)


def test_a_suite_with_noise_keys(tmp_path: Path) -> None:
    suite = load_suite(write(tmp_path, NOISY))
    labels = [v.label for v in suite.variants()]
    assert labels == ["fakeseq@noise=delete-end-0.1", "fakepop"]
    conditions = [s.label for s in suite.eval.noise]
    assert conditions == ["replace-end-0.0", "replace-beginning-0.0", "replace-end-0.2",
                          "replace-beginning-0.2", "embedding-0.1"]  # fmt: skip
    first = suite.cells()[0]
    assert first.train.noise == spec(kind="delete", ratio=0.1, where="end")
    identity = first.identity(SOURCE)
    assert identity["train"]["noise"] == {"kind": "delete", "ratio": 0.1, "where": "end"}
    assert "noise" not in identity["eval"]


def test_conditions_and_save_weights_leave_hashes_alone_training_noise_does_not(
    tmp_path: Path,
) -> None:
    plain = GOOD.replace(
        "[train]\nepochs = 3", '[train]\nepochs = 3\n\n[eval]\nmetrics = ["hr@10"]'
    )
    with_conditions = plain.replace(
        'metrics = ["hr@10"]', 'metrics = ["hr@10"]\nnoise = [{ kind = "truncate", keep = 2 }]'
    ).replace("epochs = 3", "epochs = 3\nsave_weights = true")

    def hashes(text: str) -> list[str]:
        return [c.hash(SOURCE) for c in load_suite(write(tmp_path, text)).cells()]

    assert hashes(with_conditions) == hashes(plain)
    trained_noisy = plain.replace(
        "epochs = 3", 'epochs = 3\nnoise = { kind = "replace", ratio = 0.1, name = "n1" }'
    )
    renamed = trained_noisy.replace('name = "n1"', 'name = "n2", where = "uniform"')
    assert not set(hashes(trained_noisy)) & set(hashes(plain))
    assert hashes(renamed) == hashes(trained_noisy)  # the name and spelled-out defaults: same


def test_bad_noise_keys_are_suite_problems_with_lines(tmp_path: Path) -> None:
    text = NOISY.replace('{ kind = "embedding", std = 0.1 }', '{ kind = "embedding", ratio = 0.1 }')
    text = text.replace("epochs = 3", 'epochs = 3\nnoise = { kind = "shuffle" }')
    with pytest.raises(SuiteError) as caught:
        load_suite(write(tmp_path, text))
    message = str(caught.value)
    assert "train.noise" in message and "needs ratio" in message
    assert "eval.noise" in message and "takes std, not ratio" in message


def test_command_line_conditions() -> None:
    from seqbench.cli.evaluate import parse_noise
    from seqbench.errors import ConfigError

    got = parse_noise("kind=delete,ratio=0.1|0.2,where=end")
    assert [s.label for s in got] == ["delete-end-0.1", "delete-end-0.2"]
    (toml,) = parse_noise('{kind = "embedding", std = 0.5, name = "emb"}')
    assert toml.label == "emb" and toml.std == 0.5
    assert parse_noise("kind=truncate,keep=3")[0].keep == 3
    with pytest.raises(ConfigError, match="takes keep, not ratio"):
        parse_noise("kind=truncate,ratio=0.1")
    with pytest.raises(ConfigError, match="is not KEY=VALUE"):
        parse_noise("kind=delete,0.1")


def test_conditions_as_an_array_of_tables(tmp_path: Path) -> None:
    text = GOOD.replace(
        "[train]\nepochs = 3",
        '[train]\nepochs = 3\n\n[eval]\nmetrics = ["hr@10"]\n\n[[eval.noise]]\nkind = "delete"\n'
        'ratio = [0.1, 0.2]\nwhere = "end"\n\n[[eval.noise]]\nkind = "embedding"\nstd = 0.1\n',
    )
    suite = load_suite(write(tmp_path, text))
    assert [s.label for s in suite.eval.noise] == ["delete-end-0.1", "delete-end-0.2",
                                                   "embedding-0.1"]  # fmt: skip
