"""``seqbench validate`` through Typer's test runner: the plan of a good suite, every problem of
a bad one, no download; and the shipped suites against the real models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from seqbench.cells import source_fingerprint
from seqbench.cli.main import app
from seqbench.suite import load_suite
from tests.conftest import REPO
from tests.test_cells import no_network  # noqa: F401
from tests.test_suite import GOOD, fake_models, write  # noqa: F401

runner = CliRunner()


def invoke(*args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, list(args))


@pytest.mark.usefixtures("fake_models")
def test_a_good_suite_prints_settings_and_cells(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    result = invoke("validate", str(path))
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "suite smoke" in text and "epochs=3" in text and "max_len=20" in text
    assert "hidden_size=32" in text and "role proposed" in text
    assert "4 cells = 1 dataset × 2 variants × 2 seeds" in text
    suite = load_suite(path)
    for cell in suite.cells():
        source = source_fingerprint(cell.dataset, download=False)
        assert source is not None
        assert cell.hash(source)[:8] in text
    assert text.count("fakeseq") >= 3 and "(after download)" not in text


@pytest.mark.usefixtures("fake_models")
def test_json_lists_every_cell_with_hash_and_directory(tmp_path: Path) -> None:
    result = invoke("validate", str(write(tmp_path, GOOD)), "--json")
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert plan["count"] == 4 and len(plan["cells"]) == 4
    assert plan["suite"]["name"] == "smoke" and plan["suite"]["train"]["epochs"] == 3
    first = plan["cells"][0]
    assert first["variant"]["label"] == "fakeseq" and first["seed"] == 2020
    assert first["directory"] == f"synthetic/fakeseq/seed-2020-{first['hash'][:8]}"
    assert [c["index"] for c in plan["cells"]] == [0, 1, 2, 3]


@pytest.mark.usefixtures("fake_models", "no_network")
def test_a_dataset_not_downloaded_yet_is_not_downloaded(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        GOOD.replace(
            'name = "synthetic"\noptions = { n_users = 100, n_items = 50 }', 'name = "ml-1m"'
        ),
    )
    result = invoke("validate", str(path))
    assert result.exit_code == 0, result.output
    assert "(after download)" in result.stdout
    plan = json.loads(invoke("validate", str(path), "--json").stdout)
    assert {c["hash"] for c in plan["cells"]} == {None}


@pytest.mark.usefixtures("fake_models")
def test_a_bad_suite_exits_1_with_one_line_per_problem(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        GOOD.replace("max_len = 50", "max_lenn = 50").replace(
            'model = "fakepop"', 'modle = "fakepop"'
        ),
    )
    result = invoke("validate", str(path))
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert lines == [
        f"error: {path}:7: protocol.max_lenn: unknown key; expected one of k_core, max_len, "
        "min_rating, dedup, time_precision, time_scaling, split, padding; did you mean "
        "'max_len'?",
        f"{path}:23: models[1].modle: unknown key; expected one of model, name, params, "
        "ablations, sweep, role, tune; did you mean 'model'?",
    ]


def test_a_missing_file(tmp_path: Path) -> None:
    result = invoke("validate", str(tmp_path / "none.toml"))
    assert result.exit_code == 1 and "none.toml: no such suite file" in result.stderr


# --------------------------------------------------------------------------- the real models


@pytest.fixture
def real_models() -> None:
    from seqbench.models.registry import all_models

    assert {"sasrec", "gru4rec", "pop"} <= set(all_models())


@pytest.mark.usefixtures("real_models")
def test_the_smoke_suite_validates() -> None:
    result = invoke("validate", str(REPO / "suites" / "smoke.toml"), "--json")
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert plan["count"] == 8
    assert [c["variant"]["label"] for c in plan["cells"][::2]] == [
        "sasrec", "gru4rec", "pop", "mamba4rec@objective=all_positions"
    ]  # fmt: skip
    sasrec = plan["cells"][0]
    assert sasrec["variant"]["params"]["hidden_size"] == 64
    assert sasrec["variant"]["params"]["n_layers"] == 2
    assert sasrec["variant"]["role"] == "proposed"
    assert all(c["hash"] for c in plan["cells"])


@pytest.mark.usefixtures("real_models")
def test_real_models_acceptance_and_sweep(tmp_path: Path) -> None:
    bad = write(
        tmp_path,
        """\
        [suite]
        name = "smoke"
        seeds = [2020]

        [protocol]
        max_lenn = 50

        [[datasets]]
        name = "synthetic"

        [[models]]
        modle = "sasrec"
        """,
    )
    result = invoke("validate", str(bad))
    assert result.exit_code == 1
    message = result.stderr
    assert "protocol.max_lenn" in message and "did you mean 'max_len'?" in message
    assert "models[0].modle" in message and "did you mean 'model'?" in message
    good = write(
        tmp_path,
        """\
        [suite]
        name = "sweep"
        seeds = [1]

        [[datasets]]
        name = "synthetic"

        [[models]]
        model = "sasrec"
        sweep = { n_layers = [1, 2], max_len = [10] }
        ablations = ["full"]

        [[models]]
        model = "gru4rec"
        params = { hidden_size = 32 }
        """,
        "good.toml",
    )
    cells = load_suite(good).cells()
    assert [
        (c.variant.label, c.variant.params.get("n_layers"), c.protocol.max_len) for c in cells
    ] == [
        ("sasrec@n_layers=1,max_len=10", 1, 10),
        ("sasrec@n_layers=2,max_len=10", 2, 10),
        ("gru4rec", None, 50),
    ]
    assert cells[2].variant.params["hidden_size"] == 32
