"""M2Rec through the suite and ``seqbench run``: item text from a local file, what validation
refuses, and which cells the item text reaches (hash)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from seqbench.cells import source_fingerprint
from seqbench.errors import ConfigError
from seqbench.suite import load_suite
from tests.cli.test_run_cli import seqbench
from tests.conftest import REPO

SUITE = """
[suite]
name = "m2"
seeds = [1]

[protocol]
max_len = 12

[train]
epochs = 2
batch_size = 256

[[datasets]]
name = "local"
path = "seq.txt"
format = "sequences"
{text}

[[models]]
model = "m2rec"
ablations = {ablations}
params = {{ hidden_size = 16, d_state = 4, text_encoder = "hashing:32" }}
{sweep}

[[models]]
model = "sasrec"
params = {{ hidden_size = 16, n_layers = 1, n_heads = 1, inner_size = 32 }}
"""


def write_data(folder: Path, n_users: int = 120, n_items: int = 30, described: int = 25) -> None:
    """Sequences of raw item ids 1..n_items, and a CSV describing the first ``described``."""
    rng = np.random.default_rng(0)
    lines = []
    for user in range(1, n_users + 1):
        start = rng.integers(1, n_items + 1)
        seq = [(start + k) % n_items + 1 for k in range(rng.integers(6, 15))]
        lines.append(" ".join(map(str, [user, *seq])))
    (folder / "seq.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    rows = ["item,name,category"] + [
        f"{i},movie {i},{'drama' if i % 2 else 'comedy'}" for i in range(1, described + 1)
    ]
    (folder / "items.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")


def suite(
    folder: Path,
    text: str = 'text = { path = "items.csv", format = "csv", id = "item" }',
    ablations: str = '["full", "no_gate"]',
    sweep: str = "",
) -> Path:
    path = folder / "m2.toml"
    path.write_text(SUITE.format(text=text, ablations=ablations, sweep=sweep), encoding="utf-8")
    return path


def test_m2rec_runs_on_local_text_and_records_encoder_and_missing_items(tmp_path: Path) -> None:
    write_data(tmp_path)
    root = tmp_path / "R"
    done = seqbench("run", str(suite(tmp_path)), "--results", str(root), "--quiet")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "5 of 30 items have no text" in done.stderr  # shown even with --quiet
    results = {
        r["cell"]["variant"]["label"]: r
        for r in (json.loads(p.read_text()) for p in root.glob("m2/*/*/*/result.json"))
    }
    assert set(results) == {"m2rec", "m2rec+no_gate", "sasrec"}
    text = results["m2rec"]["text"]
    assert text["encoder"] == "hashing:32" and text["dim"] == 32
    assert text["items_without_text"] == 5 and len(text["weights_sha256"]) == 64
    assert results["m2rec"]["cell"]["identity"]["source"]["text"]["read"]["format"] == "csv"
    assert "text" not in results["sasrec"]["cell"]["identity"]["source"]
    curve = results["m2rec"]["curve"]
    assert len(curve) == 2 and {"alpha", "beta"} == set(curve[-1]["diagnostics"])
    assert results["m2rec+no_gate"]["curve"][-1]["diagnostics"] == {"alpha": 0.5, "beta": 0.5}


def test_only_text_reading_cells_change_hash_with_the_text(tmp_path: Path) -> None:
    write_data(tmp_path)
    path = suite(tmp_path)

    def hashes() -> dict[str, str]:
        loaded = load_suite(path)
        cells = loaded.cells()
        source = source_fingerprint(cells[0].dataset, cache_dir=tmp_path / "c", download=False)
        assert source is not None
        return {c.variant.label: c.hash(source) for c in cells}

    before = hashes()
    csv = tmp_path / "items.csv"
    csv.write_text(csv.read_text().replace("movie 3", "film 3"), encoding="utf-8")
    after = hashes()
    assert after["sasrec"] == before["sasrec"]
    assert after["m2rec"] != before["m2rec"] and after["m2rec+no_gate"] != before["m2rec+no_gate"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"text": ""}, "datasets[0] ('local') has none; expected a text table"),
        (
            {"text": 'text = { path = "nowhere.csv", format = "csv" }'},
            "datasets[0].text.path: 'nowhere.csv' does not exist",
        ),
        (
            {"text": 'text = { path = "items.csv" }'},
            "path needs a format",
        ),
        (
            {"ablations": '["full", "no_affm"]', "sweep": "sweep = { theta = [0.1, 0.2] }"},
            "sweeping 'theta' with ablation 'no_affm'",
        ),
    ],
)
def test_validation_refuses(tmp_path: Path, kwargs: dict[str, str], message: str) -> None:
    write_data(tmp_path)
    with pytest.raises(ConfigError) as raised:
        load_suite(suite(tmp_path, **kwargs))
    assert message in " ".join(str(raised.value).split())


def test_no_llm_needs_no_text_and_a_member_needs_a_registered_archive(tmp_path: Path) -> None:
    write_data(tmp_path)
    assert len(load_suite(suite(tmp_path, text="", ablations='["no_llm"]')).cells()) == 2
    with pytest.raises(ConfigError) as raised:  # no_affm still reads text
        load_suite(suite(tmp_path, text="", ablations='["no_llm", "no_affm"]'))
    assert "models[0].ablations[1]: model 'm2rec' (ablation 'no_affm') reads" in str(raised.value)
    with pytest.raises(ConfigError, match="not a registered zip archive"):
        load_suite(suite(tmp_path, text='text = { format = "movielens", member = "a/movies.dat" }'))


def test_synthetic_data_brings_its_own_text(tmp_path: Path) -> None:
    text = (
        SUITE.format(text="", ablations='["full"]', sweep="")
        .replace('path = "seq.txt"\nformat = "sequences"', "")
        .replace('"local"', '"synthetic"')
    )
    (tmp_path / "s.toml").write_text(text, encoding="utf-8")
    assert len(load_suite(tmp_path / "s.toml").cells()) == 2
    with_table = text.replace('name = "synthetic"', 'name = "synthetic"\ntext = { path = "x" }')
    (tmp_path / "t.toml").write_text(with_table, encoding="utf-8")
    with pytest.raises(ConfigError, match="generates its own item text"):
        load_suite(tmp_path / "t.toml")
    no_text = text.replace('name = "synthetic"', 'name = "synthetic"\noptions = { text = false }')
    (tmp_path / "u.toml").write_text(no_text, encoding="utf-8")
    with pytest.raises(ConfigError, match="reads item text"):
        load_suite(tmp_path / "u.toml")


def test_shipped_m2rec_suite_lists_its_cells() -> None:
    done = seqbench("validate", str(REPO / "suites" / "m2rec.toml"))
    assert done.returncode == 0, done.stderr
    assert "60 cells = 1 dataset × 12 variants × 5 seeds" in " ".join(done.stdout.split())
    for label in ("m2rec+no_affm", "m2rec-theta@theta=0.05", "m2rec_code", "m2rec-bce@loss=bce"):
        assert label in done.stdout


def test_sweeping_a_parameter_an_ablation_switches_off_is_refused(tmp_path: Path) -> None:
    """EchoMamba4Rec's flip feeds only the backward branch: swept with forward_only, every value
    would train the same model under another label."""
    text = """
[suite]
name = "s"
seeds = [1]

[[datasets]]
name = "synthetic"

[[models]]
model = "echomamba4rec"
ablations = ["full", "forward_only"]
sweep = { flip = ["full", "per_length"] }
"""
    (tmp_path / "s.toml").write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load_suite(tmp_path / "s.toml")
    message = " ".join(str(raised.value).split())
    assert "s.toml:12: models[0].sweep.flip: sweeping 'flip' with ablation 'forward_only'" in (
        message
    )
    (tmp_path / "s.toml").write_text(text.replace(', "forward_only"', ""), encoding="utf-8")
    assert len(load_suite(tmp_path / "s.toml").cells()) == 2
