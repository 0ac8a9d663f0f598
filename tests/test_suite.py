"""Suite files: strict validation that reports every problem at once, and expansion into cells.

The models here are fakes registered for the test (``fake_models``), so that these tests do not
depend on the real models' parameters; tests/cli/test_validate_cli.py checks the real ones.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Literal

import pytest
from pydantic import Field, model_validator

from seqbench.cells import Cell
from seqbench.errors import ConfigError, closest, suggestion
from seqbench.models import registry
from seqbench.models.registry import ModelParams, ModelSpec
from seqbench.suite import KeyLocator, Suite, SuiteError, load_suite, render_path


class FakeSeqParams(ModelParams):
    hidden_size: int = Field(64, ge=1)
    n_layers: int = Field(2, ge=1)
    n_heads: int = Field(2, ge=1)
    dropout_prob: float = Field(0.5, ge=0, le=1)
    hidden_act: Literal["gelu", "relu"] = "gelu"
    kernel_sizes: list[int] = Field(default_factory=lambda: [3, 5])
    init: str = "normal"

    @model_validator(mode="after")
    def _heads(self) -> FakeSeqParams:
        if self.hidden_size % self.n_heads:
            raise ValueError("hidden_size must be a multiple of n_heads")
        return self


class FakePopParams(ModelParams):
    pass


FAKE_MODELS = [
    ModelSpec(
        name="fakeseq",
        cls=object,  # type: ignore[arg-type]  # never instantiated here
        params=FakeSeqParams,
        summary="a fake sequential model",
        ablations={"full": "as published", "no_pos": "no positions", "no_ffn": "no FFN"},
    ),
    ModelSpec(
        name="fakepop",
        cls=object,  # type: ignore[arg-type]
        params=FakePopParams,
        summary="a fake popularity model",
        ablations={"full": "as published"},
    ),
]


@pytest.fixture
def fake_models(monkeypatch: pytest.MonkeyPatch) -> None:
    """Register the fake models (and only add them: the real ones may be there too)."""
    monkeypatch.setattr(registry, "_load_builtin_models", lambda: None)
    for spec in FAKE_MODELS:
        monkeypatch.setitem(registry.MODELS, spec.name, spec)


pytestmark = pytest.mark.usefixtures("fake_models")

GOOD = """\
[suite]
name = "smoke"
seeds = [2020, 2021]

[protocol]
k_core = 5
max_len = 50

[train]
epochs = 3

[[datasets]]
name = "synthetic"
options = { n_users = 100, n_items = 50 }
protocol = { max_len = 20 }

[[models]]
model = "fakeseq"
params = { hidden_size = 32 }
role = "proposed"

[[models]]
model = "fakepop"
"""


def write(folder: Path, text: str, name: str = "suite.toml") -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def problems(folder: Path, text: str) -> list[str]:
    """The lines of the error raised for ``text``."""
    path = write(folder, text)
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    lines = str(info.value).splitlines()
    assert len(lines) == len(info.value.problems)
    return lines


def loaded(folder: Path, text: str) -> Suite:
    return load_suite(write(folder, text))


# --------------------------------------------------------------------------- the acceptance case


def test_two_misspelt_keys_give_one_message_naming_both_with_suggestions(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        [suite]
        name = "smoke"
        seeds = [2020, 2021]

        [protocol]
        k_core = 5
        max_lenn = 50

        [[datasets]]
        name = "synthetic"

        [[models]]
        modle = "sasrec"
        """,
    )
    with pytest.raises(ConfigError) as info:
        load_suite(path)
    first, second = str(info.value).splitlines()  # one message, one line per problem
    assert first.startswith(f"{path}:7: protocol.max_lenn: unknown key; expected one of k_core")
    assert first.endswith("did you mean 'max_len'?")
    assert second.startswith(f"{path}:13: models[0].modle: unknown key; expected one of model")
    assert second.endswith("did you mean 'model'?")


# --------------------------------------------------------------------------- every section at once


def test_problems_in_every_section_are_reported_together_in_line_order(tmp_path: Path) -> None:
    lines = problems(
        tmp_path,
        """\
        [suite]
        name = "my suite"
        seeds = "2020"

        [protocol]
        dedup = "sometimes"

        [train]
        epochs = 1.5
        lr = -1e-3
        valid_metric = "ndcg10"

        [eval]
        metrics = ["hr@10", "auc@10"]
        ties = "optimistic"

        [[datasets]]
        name = "ml100k"

        [[models]]
        model = "fakeseq"
        params = { hidden_size = "64", n_layerz = 2 }
        role = "main"

        [trian]
        epochs = 2
        """,
    )
    expected = [
        (2, "suite.name", 'got "my suite"; expected a name of letters, digits'),
        (3, "suite.seeds", 'got "2020"; expected a non-empty list of unique integers ≥ 0'),
        (6, "protocol.dedup", "got \"sometimes\"; expected one of 'keep', 'first' or 'last'"),
        (9, "train.epochs", "got 1.5; expected an integer"),
        (10, "train.lr", "got -0.001; expected a number > 0"),
        (11, "train.valid_metric", 'got "ndcg10"; expected a metric NAME@K'),
        (14, "eval.metrics[1]", 'got "auc@10"; expected a metric NAME@K'),
        (15, "eval.ties", "got \"optimistic\"; expected one of 'pessimistic' or 'expected'"),
        (18, "datasets[0].name", "unknown dataset 'ml100k'; expected a registered dataset"),
        (22, "models[0].params.hidden_size", 'got "64"; expected an integer'),
        (22, "models[0].params.n_layerz", "unknown key; expected one of hidden_size"),
        (23, "models[0].role", "got \"main\"; expected one of 'baseline' or 'proposed'"),
        (25, "trian", "unknown table; expected one of suite, protocol, train"),
    ]
    assert len(lines) == len(expected)
    for line, (number, key, start) in zip(lines, expected, strict=True):
        assert line.startswith(f"{tmp_path / 'suite.toml'}:{number}: {key}: {start}"), line
    assert lines[8].endswith("did you mean 'ml-100k'?")
    assert lines[10].endswith("did you mean 'n_layers'?")
    assert lines[12].endswith("did you mean 'train'?")


def test_seeds_must_be_unique_non_negative_integers(tmp_path: Path) -> None:
    for seeds, message in [
        ("[]", "suite.seeds: got []; expected a non-empty list of unique integers"),
        ("[1, 1]", "suite.seeds: got [1, 1]; expected each seed once"),
        ("[1, -2]", "suite.seeds[1]: got -2; expected a number ≥ 0"),
        ("[1, 2.0]", "suite.seeds[1]: got 2.0; expected an integer"),
        ("[true]", "suite.seeds[0]: got true; expected an integer"),
    ]:
        text = GOOD.replace("seeds = [2020, 2021]", f"seeds = {seeds}")
        (line,) = problems(tmp_path, text)
        assert line.startswith(f"{tmp_path / 'suite.toml'}:3: {message}")


def test_missing_sections_and_keys(tmp_path: Path) -> None:
    lines = problems(tmp_path, "[train]\nepochs = 3\n")
    assert lines == [
        f"{tmp_path / 'suite.toml'}: suite: missing; expected a [suite] table with name and seeds",
        f"{tmp_path / 'suite.toml'}: datasets: missing; expected at least one [[datasets]] table",
        f"{tmp_path / 'suite.toml'}: models: missing; expected at least one [[models]] table",
    ]
    lines = problems(tmp_path, GOOD.replace('name = "smoke"\n', ""))
    assert lines == [
        f"{tmp_path / 'suite.toml'}:1: suite.name: missing; expected a suite name of letters, "
        "digits, '.', '_' and '-', not starting with '.' (it names a folder)"
    ]


def test_a_single_bracket_datasets_table_is_explained(tmp_path: Path) -> None:
    text = GOOD.replace("[[datasets]]", "[datasets]")
    (line,) = problems(tmp_path, text)
    assert line.endswith(
        "datasets: got [datasets]; expected one or more [[datasets]] tables (double brackets)"
    )
    assert ":12: " in line


def test_a_section_that_is_not_a_table(tmp_path: Path) -> None:
    (line,) = problems(tmp_path, 'train = "fast"\n' + GOOD.replace("[train]\nepochs = 3\n", ""))
    assert line == f'{tmp_path / "suite.toml"}:1: train: got "fast"; expected a table [train]'


def test_toml_syntax_error_names_file_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("epochs = 3", "epochs = = 3"))
    with pytest.raises(ConfigError, match=rf"^{path}:10:10: invalid TOML: .*expected TOML syntax"):
        load_suite(path)


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.toml: no such suite file"):
        load_suite(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="is a folder; expected a suite file"):
        load_suite(tmp_path)


# --------------------------------------------------------------------------- datasets


def test_unknown_dataset_name_suggests_the_registry_name(tmp_path: Path) -> None:
    (line,) = problems(tmp_path, GOOD.replace('name = "synthetic"', 'name = "synthetc"'))
    assert "datasets[0].name: unknown dataset 'synthetc'" in line
    assert line.endswith("did you mean 'synthetic'?")


def test_dataset_path_relative_to_the_suite_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "suites" / "data" / "Beauty.txt"
    data.parent.mkdir(parents=True)
    data.write_text("1 2 3 4\n")
    path = write(
        tmp_path / "suites",
        GOOD.replace(
            'name = "synthetic"\noptions = { n_users = 100, n_items = 50 }',
            'name = "beauty"\npath = "data/Beauty.txt"\nformat = "sequences"',
        ),
    )
    monkeypatch.chdir(tmp_path)  # elsewhere than the suite file
    suite = load_suite(path.relative_to(tmp_path))
    spec = suite.datasets[0].spec
    assert spec.path == data and spec.path.is_absolute()
    assert {c.dataset.path for c in suite.cells()} == {data}


def test_missing_path_unknown_format_and_path_without_format(tmp_path: Path) -> None:
    lines = problems(
        tmp_path,
        GOOD.replace(
            '[[models]]\nmodel = "fakeseq"',
            """\
            [[datasets]]
            name = "beauty"
            path = "nowhere/Beauty.txt"
            format = "sequence"

            [[datasets]]
            name = "video"
            path = "suite.toml"

            [[models]]
            model = "fakeseq\"""",
        ),
    )
    file = tmp_path / "suite.toml"
    assert lines[0].startswith(
        f"{file}:19: datasets[1].path: 'nowhere/Beauty.txt' does not exist "
        f"(looked for {tmp_path / 'nowhere' / 'Beauty.txt'}); expected an existing file"
    )
    assert lines[1].startswith(f"{file}:20: datasets[1].format: unknown format 'sequence'")
    assert lines[1].endswith("did you mean 'sequences'?")
    assert lines[2].startswith(
        f"{file}:22: datasets[2].format: missing; expected the format of the file at path"
    )
    assert len(lines) == 3


def test_dataset_options_and_protocol_are_validated(tmp_path: Path) -> None:
    lines = problems(
        tmp_path,
        GOOD.replace(
            "options = { n_users = 100, n_items = 50 }\nprotocol = { max_len = 20 }",
            "options = { n_user = 100 }\nprotocol = { max_len = 0, kcore = 3 }",
        ),
    )
    assert [line.split(": ", 2)[1] for line in lines] == [
        "datasets[0].options.n_user",
        "datasets[0].protocol.max_len",
        "datasets[0].protocol.kcore",
    ]
    assert lines[0].endswith("did you mean 'n_users'?")
    assert "got 0; expected a number ≥ 1" in lines[1]
    assert lines[2].endswith("did you mean 'k_core'?")


def test_dataset_names_must_be_unique_and_folder_safe(tmp_path: Path) -> None:
    text = GOOD.replace("[[models]]", '[[datasets]]\nname = "synthetic"\n\n[[models]]', 1)
    (line,) = problems(tmp_path, text)
    assert "datasets[1].name: 'synthetic' is also the name of datasets[0]" in line
    (line,) = problems(
        tmp_path, GOOD.replace('name = "synthetic"', 'name = ".tmp"\npath = "suite.toml"')
    )
    assert 'datasets[0].name: got ".tmp"; expected a name of letters' in line


# --------------------------------------------------------------------------- models


def test_unknown_model_ablation_and_params(tmp_path: Path) -> None:
    lines = problems(
        tmp_path,
        GOOD.replace('model = "fakepop"', 'model = "fakepopp"').replace(
            "params = { hidden_size = 32 }",
            'params = { hidden_size = 32, hidden_act = "tanh" }\n'
            'ablations = ["full", "no_pso", "full"]',
        ),
    )
    assert "models[0].params.hidden_act: got \"tanh\"; expected one of 'gelu' or 'relu'" in lines[0]
    assert (
        'models[0].ablations: got ["full", "no_pso", "full"]; expected each ablation once'
        in lines[1]
    )
    assert "models[1].model: unknown model 'fakepopp'" in lines[2]
    assert lines[2].endswith("did you mean 'fakepop'?")
    assert len(lines) == 3
    (line,) = problems(
        tmp_path, GOOD.replace("params = { hidden_size = 32 }", 'ablations = ["no_pso"]')
    )
    assert "models[0].ablations[0]: model 'fakeseq' has no ablation 'no_pso'" in line
    assert "expected one of full, no_pos, no_ffn; did you mean 'no_pos'?" in line


def test_model_level_parameter_check(tmp_path: Path) -> None:
    (line,) = problems(tmp_path, GOOD.replace("hidden_size = 32", "hidden_size = 33"))
    assert line.endswith(":19: models[0].params: hidden_size must be a multiple of n_heads")


def test_resolved_params_include_defaults_and_overrides_are_what_was_set(tmp_path: Path) -> None:
    suite = loaded(tmp_path, GOOD)
    variant = suite.cells()[0].variant
    assert variant.params == {
        "hidden_size": 32,
        "n_layers": 2,
        "n_heads": 2,
        "dropout_prob": 0.5,
        "hidden_act": "gelu",
        "kernel_sizes": [3, 5],
        "init": "normal",
    }
    assert variant.overrides == {"hidden_size": 32}
    assert (variant.label, variant.model, variant.ablation, variant.role) == (
        "fakeseq",
        "fakeseq",
        "full",
        "proposed",
    )
    assert suite.cells()[-1].variant.role == "baseline"


# --------------------------------------------------------------------------- sweeps


def test_sweep_problems(tmp_path: Path) -> None:
    lines = problems(
        tmp_path,
        GOOD.replace(
            "params = { hidden_size = 32 }",
            "params = { hidden_size = 32 }\n"
            "sweep = { hidden_size = [16, 64], n_layer = [1, 2], n_layers = 2, "
            "n_heads = [1, 1], dropout_prob = [0.1, 2.0], max_len = [0], lr = [-1.0] }",
        ),
    )
    keys = [line.split(": ", 2)[1] for line in lines]
    assert keys == [
        "models[0].sweep.hidden_size",
        "models[0].sweep.n_layer",
        "models[0].sweep.n_layers",
        "models[0].sweep.n_heads[1]",
        "models[0].sweep.dropout_prob[1]",
        "models[0].sweep.max_len[0]",
        "models[0].sweep.lr[0]",
    ]
    assert all(":20: " in line for line in lines)
    assert "'hidden_size' is both set in params and swept" in lines[0]
    assert "unknown sweep key; expected a parameter of model 'fakeseq'" in lines[1]
    assert lines[1].endswith("did you mean 'n_layers'?")
    assert "got 2; expected a non-empty list" in lines[2]  # a scalar is never a sweep
    assert "1 is listed twice" in lines[3]
    assert "got 2.0; expected a number ≤ 1" in lines[4]
    assert "got 0; expected a number ≥ 1" in lines[5]
    assert "got -1.0; expected a number > 0" in lines[6]


def test_a_list_valued_parameter_is_a_value_not_a_sweep(tmp_path: Path) -> None:
    suite = loaded(tmp_path, GOOD.replace("hidden_size = 32", "kernel_sizes = [2, 4]"))
    assert len(suite.cells()) == 4  # 2 models × 2 seeds: no sweep
    assert suite.cells()[0].variant.params["kernel_sizes"] == [2, 4]
    swept = loaded(
        tmp_path,
        GOOD.replace("params = { hidden_size = 32 }", "sweep = { kernel_sizes = [[2], [2, 4]] }"),
    )
    assert [c.variant.label for c in swept.cells()][::2] == [
        "fakeseq@kernel_sizes=_2_",
        "fakeseq@kernel_sizes=_2,4_",
        "fakepop",
    ]


def test_sweep_values_land_in_params_protocol_and_train(tmp_path: Path) -> None:
    suite = loaded(
        tmp_path,
        GOOD.replace(
            "params = { hidden_size = 32 }",
            "params = { hidden_size = 32 }\n"
            "sweep = { n_layers = [1, 3], max_len = [10], lr = [0.01, 0.1] }",
        ),
    )
    seq = [c for c in suite.cells() if c.variant.model == "fakeseq"]
    assert len(seq) == 2 * 1 * 2 * 2  # n_layers × max_len × lr × seeds
    points = [(c.variant.params["n_layers"], c.protocol.max_len, c.train.lr) for c in seq[::2]]
    assert points == [(1, 10, 0.01), (1, 10, 0.1), (3, 10, 0.01), (3, 10, 0.1)]
    first = seq[0]
    assert first.variant.sweep == {"n_layers": 1, "max_len": 10, "lr": 0.01}
    assert first.variant.label == "fakeseq@n_layers=1,max_len=10,lr=0.01"
    assert first.variant.overrides == {"hidden_size": 32, "n_layers": 1}
    assert first.train.epochs == 3  # the rest of [train] stays
    pop = [c for c in suite.cells() if c.variant.model == "fakepop"]
    assert {(c.protocol.max_len, c.train.lr) for c in pop} == {(20, 1e-3)}


def test_protocol_overrides_stack_suite_then_dataset_then_sweep(tmp_path: Path) -> None:
    suite = loaded(
        tmp_path,
        GOOD.replace("k_core = 5", 'k_core = 3\ndedup = "first"').replace(
            "params = { hidden_size = 32 }", 'sweep = { dedup = ["last"] }'
        ),
    )
    assert suite.protocol.k_core == 3 and suite.protocol.max_len == 50
    assert suite.datasets[0].protocol.max_len == 20
    seq, pop = suite.cells()[0], suite.cells()[-1]
    assert (seq.protocol.k_core, seq.protocol.max_len, seq.protocol.dedup) == (3, 20, "last")
    assert (pop.protocol.k_core, pop.protocol.max_len, pop.protocol.dedup) == (3, 20, "first")


def test_a_sweep_point_that_breaks_a_model_check(tmp_path: Path) -> None:
    (line,) = problems(
        tmp_path, GOOD.replace("params = { hidden_size = 32 }", "sweep = { n_heads = [2, 3] }")
    )
    assert "models[0].sweep: sweep point {n_heads = 3}: hidden_size must be a multiple" in line


# --------------------------------------------------------------------------- expansion


EXPANSION = """\
[suite]
name = "grid"
seeds = [1, 2, 3]

[[datasets]]
name = "synthetic"

[[datasets]]
name = "small"
path = "suite.toml"
format = "pairs"

[[models]]
model = "fakeseq"
ablations = ["full", "no_pos"]
sweep = { n_layers = [1, 2] }

[[models]]
model = "fakepop"
"""


def test_expansion_is_datasets_x_models_x_ablations_x_sweep_x_seeds_in_that_order(
    tmp_path: Path,
) -> None:
    cells = loaded(tmp_path, EXPANSION).cells()
    assert len(cells) == 2 * (2 * 2 + 1) * 3
    keys = [(c.dataset.name, c.variant.order, c.seed) for c in cells]
    assert keys == [
        (d, order, seed)
        for d in ("synthetic", "small")
        for order in [(0, 0, 0), (0, 0, 1), (0, 1, 0), (0, 1, 1), (1, 0, 0)]
        for seed in (1, 2, 3)
    ]
    labels = [c.variant.label for c in cells[:15:3]]
    assert labels == [
        "fakeseq@n_layers=1",
        "fakeseq@n_layers=2",
        "fakeseq+no_pos@n_layers=1",
        "fakeseq+no_pos@n_layers=2",
        "fakepop",
    ]
    assert all(isinstance(c, Cell) and c.suite == "grid" for c in cells)
    assert {(c.backend, c.precision) for c in cells} == {("torch", "fp32")}


def test_same_label_with_other_settings_asks_for_a_name(tmp_path: Path) -> None:
    text = GOOD + '\n[[models]]\nmodel = "fakeseq"\nparams = { n_layers = 1 }\n'
    (line,) = problems(tmp_path, text)
    assert line.startswith(
        f"{tmp_path / 'suite.toml'}:25: models[2]: its variant 'fakeseq' has the same name as one"
        " of models[0] but other settings; expected a distinct name: add name = "
    )
    named = loaded(
        tmp_path,
        text.replace("params = { n_layers = 1 }", 'name = "shallow"\nparams = { n_layers = 1 }'),
    )
    assert [c.variant.label for c in named.cells()[::2]] == ["fakeseq", "fakepop", "shallow"]


def test_identical_cells_are_an_error(tmp_path: Path) -> None:
    text = GOOD + '\n[[models]]\nmodel = "fakepop"\nname = "popularity"\nrole = "proposed"\n'
    (line,) = problems(tmp_path, text)
    assert line.endswith(
        ":25: models[2]: variant 'popularity' gives the same cells as variant 'fakepop' of "
        "models[1] (same model, ablation, parameters and settings); expected each "
        "configuration once: remove one"
    )
    (line,) = problems(tmp_path, GOOD + '\n[[models]]\nmodel = "fakepop"\n')
    assert "models[2]: variant 'fakepop' gives the same cells as variant 'fakepop'" in line
    # a sweep value equal to what the dataset sets anyway: the same cells under another label
    swept = GOOD + '\n[[models]]\nmodel = "fakepop"\nsweep = { max_len = [20] }\n'
    (line,) = problems(tmp_path, swept)
    assert "variant 'fakepop@max_len=20' gives the same cells as variant 'fakepop'" in line


def test_sweep_values_that_give_the_same_folder_name(tmp_path: Path) -> None:
    text = GOOD.replace("params = { hidden_size = 32 }", 'sweep = { init = ["a b", "a_b"] }')
    (line,) = problems(tmp_path, text)
    assert line.endswith(
        ":19: models[0].sweep: sweep points {init = a b} and {init = a_b} both give the folder "
        "name 'fakeseq@init=a_b'; expected values that still differ once characters outside "
        "[A-Za-z0-9._=,+@-] become '_'"
    )


def test_names_cannot_hold_label_syntax(tmp_path: Path) -> None:
    (line,) = problems(
        tmp_path, GOOD.replace('model = "fakepop"', 'model = "fakepop"\nname = "a@b"')
    )
    assert 'models[1].name: got "a@b"; expected a name of letters' in line


def test_the_suite_keeps_resolved_sections(tmp_path: Path) -> None:
    suite = loaded(tmp_path, GOOD)
    assert (suite.name, suite.seeds, suite.description) == ("smoke", [2020, 2021], "")
    assert suite.train.epochs == 3 and suite.train.batch_size == 2048
    assert suite.eval.metrics == ["hr@10", "ndcg@10", "mrr@10"]
    assert suite.protocol_overrides == {"k_core": 5, "max_len": 50}
    assert suite.datasets[0].overrides == {"max_len": 20}
    assert [m.model for m in suite.models] == ["fakeseq", "fakepop"]
    assert suite.models[0].params["n_heads"] == 2
    assert len(suite.variants()) == 2
    described = suite.describe()
    assert described["models"][0]["overrides"] == {"hidden_size": 32}
    assert suite.file == (tmp_path / "suite.toml").absolute()


def test_metric_names_are_normalised(tmp_path: Path) -> None:
    suite = loaded(
        tmp_path,
        GOOD.replace("[train]", '[eval]\nmetrics = ["HR@5", "ndcg@20"]\n\n[train]').replace(
            "epochs = 3", 'epochs = 3\nvalid_metric = "NDCG@10"'
        ),
    )
    assert suite.eval.metrics == ["hr@5", "ndcg@20"]
    assert suite.train.valid_metric == "ndcg@10"
    (line,) = problems(
        tmp_path, GOOD.replace("[train]", '[eval]\nmetrics = ["hr@5", "HR@5"]\n\n[train]')
    )
    assert 'eval.metrics: got ["hr@5", "HR@5"]; expected each metric once' in line


# --------------------------------------------------------------------------- line locator


def test_locator_finds_headers_keys_inline_tables_and_array_elements() -> None:
    text = textwrap.dedent(
        """\
        # a comment with [brackets] and key = value
        [suite]
        name = "x # not a comment"
        seeds = [
            1,  # one
            2,
        ]

        [[models]]
        model = 'a'

        [[models]]
        "model" = "b"
        params = { hidden_size = 64, inner = { depth = 2 } }
        text = \"\"\"
        [fake]
        key = 1
        \"\"\"
        sweep.n_layers = [1, 2]

        [models.extra]
        x = 1
        """
    )
    lines = KeyLocator(text).lines
    assert lines[("suite",)] == 2
    assert lines[("suite", "name")] == 3
    assert lines[("suite", "seeds")] == 4
    assert lines[("suite", "seeds", 0)] == 5
    assert lines[("suite", "seeds", 1)] == 6
    assert lines[("models", 0)] == 9 and lines[("models", 1)] == 12
    assert lines[("models", 0, "model")] == 10 and lines[("models", 1, "model")] == 13
    assert lines[("models", 1, "params", "hidden_size")] == 14
    assert lines[("models", 1, "params", "inner", "depth")] == 14
    assert ("fake",) not in lines
    assert lines[("models", 1, "sweep", "n_layers")] == 19
    assert lines[("models", 1, "extra", "x")] == 22
    locator = KeyLocator(text)
    assert locator.line(("models", 1, "params", "nope")) == 14  # nearest known key
    assert locator.line(("models", 0, "role")) == 9  # a missing key: its table
    assert locator.line(("nothing",)) is None


def test_render_path_quotes_odd_keys() -> None:
    assert render_path(("models", 0, "params", "hidden_size")) == "models[0].params.hidden_size"
    assert render_path(("datasets", 1, "options", "a.b")) == 'datasets[1].options."a.b"'


def test_one_did_you_mean_rule_for_suites_and_other_messages(tmp_path: Path) -> None:
    """Suite problems and the CLI's unknown-name errors share seqbench.errors.closest."""
    assert closest("max_lenn", ["k_core", "max_len"]) == "max_len"
    assert closest("zzz", ["k_core", "max_len"]) is None
    assert closest(3, ["k_core"]) is None  # a key of the wrong type gets no hint
    assert suggestion("sasrc", ["gru4rec", "sasrec"]) == (
        "; did you mean 'sasrec'? (available: gru4rec, sasrec)"
    )
    (line,) = problems(tmp_path, GOOD.replace("[train]", "[trian]"))
    assert line.endswith(f"did you mean {closest('trian', ['suite', 'train', 'eval'])!r}?")
