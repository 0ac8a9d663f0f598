"""The data folder: ``file = "…"`` datasets found by name under ``--data-dir`` /
``$SEQBENCH_DATA_DIR``, suites that validate without their data (saying what is needed), runs
that stop before any work naming the file and where to get it, and shipped suites that pass
their tests in a checkout without the developers' shared folder beside it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from seqbench.cells import source_fingerprint
from seqbench.cli.main import app
from seqbench.data.folder import DATA_DIR_ENV
from seqbench.data.load import DatasetSpec, resolve_source
from seqbench.errors import ConfigError
from seqbench.suite import DataNeededError, SuiteError, load_suite
from tests.conftest import REPO

runner = CliRunner()

SEQUENCES = "".join(
    f"{u} " + " ".join(str(1 + (u + i) % 9) for i in range(8)) + "\n" for u in (1, 2, 3, 4, 5, 6)
)

SUITE = """\
[suite]
name = "folder"
seeds = [1]

[train]
epochs = 1

[[datasets]]
name = "tiny"
file = "tiny.txt"
format = "sequences"
fetch = "the tiny test file (https://example.org/tiny.txt)"
protocol = { k_core = 1, max_len = 5 }

[[datasets]]
name = "synthetic"
options = { n_users = 60, n_items = 30 }

[[models]]
model = "pop"
"""


@pytest.fixture(autouse=True)
def no_data_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's own data folder never reaches these tests."""
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)


def write_suite(folder: Path, text: str = SUITE) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "suite.toml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def data_file(root: Path, relative: str) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(SEQUENCES, encoding="utf-8")
    return path


def tiny(suite_path: Path, **kwargs: object) -> DatasetSpec:
    return load_suite(suite_path, **kwargs).datasets[0].spec  # type: ignore[arg-type]


# --------------------------------------------------------------------------- lookup


def test_a_file_is_found_flat_or_under_the_dataset_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    suite = write_suite(tmp_path / "suites")
    nested = data_file(tmp_path / "data", "tiny/tiny.txt")
    spec = tiny(suite, data_dir=tmp_path / "data")
    assert (spec.path, spec.file, spec.format, spec.missing) == (
        nested,
        "tiny.txt",
        "sequences",
        False,
    )
    flat = data_file(tmp_path / "data", "tiny.txt")  # DIR/FILE is looked at first
    assert tiny(suite, data_dir=tmp_path / "data").path == flat
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "data"))  # the environment variable
    assert tiny(suite).path == flat
    other = data_file(tmp_path / "other", "tiny.txt")  # an explicit folder wins over it
    assert tiny(suite, data_dir=tmp_path / "other").path == other
    monkeypatch.chdir(tmp_path)  # a relative folder starts at the working directory
    assert tiny(suite, data_dir="other").path == other


def test_where_the_file_was_found_does_not_change_the_hash(tmp_path: Path) -> None:
    suite = write_suite(tmp_path)
    data_file(tmp_path / "a", "tiny.txt")
    data_file(tmp_path / "b", "tiny/tiny.txt")
    data_file(tmp_path / "c", "copy.txt")
    text = SUITE.replace('file = "tiny.txt"', 'path = "../c/copy.txt"')
    by_path = write_suite(
        tmp_path / "p", "\n".join(t for t in text.split("\n") if "fetch" not in t)
    )

    def hashes(path: Path, data_dir: Path | None = None) -> list[str]:
        cells = load_suite(path, data_dir=data_dir).cells()
        out = []
        for cell in cells:
            source = source_fingerprint(cell.dataset, download=False)
            assert source is not None
            out.append(cell.hash(source))
        return out

    base = hashes(suite, tmp_path / "a")
    assert hashes(suite, tmp_path / "b") == base
    assert hashes(by_path) == base  # the same bytes given by path
    (cell, _) = load_suite(suite, data_dir=tmp_path / "a").cells()
    assert cell.dataset.path == tmp_path / "a" / "tiny.txt"


# --------------------------------------------------------------------------- missing data


def test_a_missing_file_leaves_the_suite_valid_and_says_what_to_get(tmp_path: Path) -> None:
    path = write_suite(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    suite = load_suite(path, data_dir=empty)
    assert len(suite.cells()) == 2
    spec = suite.datasets[0].spec
    assert spec.missing and spec.path is None and spec.file == "tiny.txt"
    (message,) = suite.missing_data()
    assert message == (
        f"{path}:10: datasets[0].file: 'tiny.txt' is not in the data folder {empty} (looked for "
        f"{empty / 'tiny.txt'}, {empty / 'tiny' / 'tiny.txt'}); expected the file as "
        "DIR/tiny.txt or DIR/tiny/tiny.txt, with --data-dir DIR or SEQBENCH_DATA_DIR=DIR; get "
        "it from: the tiny test file (https://example.org/tiny.txt)"
    )
    (unset,) = load_suite(path).missing_data()
    assert "datasets[0].file: 'tiny.txt' is read from the data folder, and none is set" in unset
    with pytest.raises(DataNeededError) as info:
        suite.require_data()
    assert str(info.value) == message
    synthetic_only = [c for c in suite.cells() if c.dataset.name == "synthetic"]
    suite.require_data(synthetic_only)  # cells that do not read the file need nothing
    assert suite.missing_data(synthetic_only) == []


def test_a_missing_file_is_hashed_only_once_found_and_never_read(tmp_path: Path) -> None:
    spec = load_suite(write_suite(tmp_path)).datasets[0].spec
    assert source_fingerprint(spec, download=False) is None
    with pytest.raises(ConfigError, match=r"dataset 'tiny': its file 'tiny.txt' was not found"):
        source_fingerprint(spec, download=True)
    with pytest.raises(ConfigError, match=r"DIR/tiny.txt or DIR/tiny/tiny.txt, with --data-dir"):
        resolve_source(spec, tmp_path)
    # a registry name whose file is missing never falls back to the registry's download
    registered = DatasetSpec(name="amazon-beauty", file="Beauty.txt", format="sequences")
    with pytest.raises(ConfigError, match=r"'Beauty\.txt' was not found in the data folder"):
        resolve_source(registered, tmp_path)


def test_file_entries_are_checked_strictly(tmp_path: Path) -> None:
    text = SUITE.replace('file = "tiny.txt"', 'file = "tiny.txt"\npath = "suite.toml"')
    text = text.replace(
        "options = { n_users = 60, n_items = 30 }",
        'options = { n_users = 60, n_items = 30 }\nfetch = "somewhere"\n\n'
        '[[datasets]]\nname = "abs"\nfile = "/etc/passwd"\nformat = "pairs"\n\n'
        '[[datasets]]\nname = "up"\nfile = "../x.txt"\nformat = "pairs"\n\n'
        '[[datasets]]\nname = "noformat"\nfile = "x.txt"\n\n'
        '[[datasets]]\nname = "gen"\nfile = "x.txt"\nformat = "synthetic"',
    )
    with pytest.raises(SuiteError) as info:
        load_suite(write_suite(tmp_path, text))
    keys_and_problems = [line.split(": ", 1)[1] for line in str(info.value).splitlines()]
    assert keys_and_problems == [
        "datasets[0].file: both path and file are set; expected one of them: path = a file "
        "relative to the suite file, or file = a file in the data folder",
        "datasets[1].fetch: fetch says where to get the data-folder file, and this entry has "
        'no file; expected file = "…" (or no fetch)',
        'datasets[2].file: got "/etc/passwd"; expected a file name relative to the data '
        "folder (no absolute path, '~' or '..')",
        'datasets[3].file: got "../x.txt"; expected a file name relative to the data folder '
        "(no absolute path, '~' or '..')",
        "datasets[4].format: missing; expected the format of the file (one of amazon, csv, "
        "grouplens, pairs, recbole, sequences)",
        "datasets[5].file: the synthetic dataset is generated and reads no file; expected no "
        "file (or a reader format)",
    ]


# --------------------------------------------------------------------------- the commands


def test_validate_without_the_data_succeeds_and_says_it_is_needed(tmp_path: Path) -> None:
    path = write_suite(tmp_path)
    result = runner.invoke(app, ["validate", str(path), "--data-dir", str(tmp_path / "none")])
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "tiny  (data folder: tiny.txt, not found, format sequences)" in text
    assert "(data needed)" in text and "seqbench run needs these files first:" in text
    assert "get it from: the tiny test file (https://example.org/tiny.txt)" in text
    plan = json.loads(
        runner.invoke(app, ["validate", str(path), "--json"], env={DATA_DIR_ENV: ""}).stdout
    )
    assert [c["hash"] is None for c in plan["cells"]] == [True, False]
    (message,) = plan["missing_data"]
    assert "'tiny.txt' is read from the data folder, and none is set" in message
    data_file(tmp_path / "data", "tiny.txt")
    found = runner.invoke(app, ["validate", str(path)], env={DATA_DIR_ENV: str(tmp_path / "data")})
    assert found.exit_code == 0, found.output
    assert (
        "(data needed)" not in found.stdout and str(tmp_path / "data" / "tiny.txt") in found.stdout
    )


def test_run_stops_before_any_work_and_dry_run_shows_the_plan(tmp_path: Path) -> None:
    path = write_suite(tmp_path)
    results = tmp_path / "results"
    args = ["run", str(path), "--results", str(results), "--device", "cpu", "--quiet"]
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert "datasets[0].file: 'tiny.txt' is read from the data folder, and none is set" in (
        result.stderr
    )
    assert "with --data-dir DIR or SEQBENCH_DATA_DIR=DIR; get it from: the tiny test" in (
        result.stderr
    )
    assert not results.exists()  # nothing planned, nothing written
    dry = runner.invoke(app, [*args, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "(data needed)" in dry.stdout
    only = runner.invoke(app, [*args, "--only", "dataset=synthetic"])  # needs no file
    assert only.exit_code == 0, only.output
    data_file(tmp_path / "data", "tiny/tiny.txt")
    done = runner.invoke(app, [*args, "--data-dir", str(tmp_path / "data")])
    assert done.exit_code == 0, done.output
    (result_file,) = (results / "folder" / "tiny").glob("pop/seed-1-*/result.json")
    recorded = json.loads(result_file.read_text())["cell"]["dataset"]
    assert recorded["file"] == "tiny.txt"
    assert recorded["path"] == str(tmp_path / "data" / "tiny" / "tiny.txt")


def test_data_stats_reads_a_file_of_the_data_folder(tmp_path: Path) -> None:
    data_file(tmp_path / "data", "tiny/tiny.txt")
    args = ["data", "stats", "tiny", "--file", "tiny.txt", "-f", "sequences", "--k-core", "1"]
    result = runner.invoke(app, [*args, "--json", "--quiet", "--data-dir", str(tmp_path / "data")])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["users"] == 6
    missing = runner.invoke(app, [*args, "--data-dir", str(tmp_path)])
    assert missing.exit_code == 1
    assert "--file 'tiny.txt' is not in the data folder" in missing.stderr
    both = runner.invoke(app, [*args, "--path", str(tmp_path)])
    assert both.exit_code == 1 and "--path and --file: give one of them" in both.stderr


# --------------------------------------------------------------------------- a fresh checkout


def test_the_shipped_suites_pass_their_tests_without_the_shared_folder(tmp_path: Path) -> None:
    """A checkout with nothing beside it (no ../shared) and empty data folders, as on a user's
    machine: the shipped-suite tests (validation, expansion, pinned hashes) still pass, and the
    reproduction suites say which files they need."""
    checkout = tmp_path / "checkout"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for part in ("seqbench", "suites", "tests"):
        shutil.copytree(REPO / part, checkout / part, ignore=ignore)
    shutil.copy(REPO / "pyproject.toml", checkout)
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("CI", DATA_DIR_ENV, "SEQBENCH_SHARED_DATA", "PYTHONPATH")
    }
    env.update(
        PYTHONPATH=str(checkout), SEQBENCH_SHARED_DATA=str(empty), SEQBENCH_CACHE_DIR=str(empty)
    )
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "tests/test_shipped_suites.py"],
        cwd=checkout, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert " passed" in proc.stdout and "failed" not in proc.stdout
    for path in sorted((checkout / "suites").glob("*.toml")):  # no path of our machines
        assert "shared/" not in path.read_text(encoding="utf-8"), path
    validate = subprocess.run(
        [sys.executable, "-m", "seqbench", "validate", "suites/reproduce-beauty.toml"],
        cwd=checkout, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert validate.returncode == 0, validate.stderr[-2000:]
    assert "'Beauty.txt' is read from the data folder, and none is set" in validate.stdout
    assert "https://github.com/RUCAIBox/CIKM2020-S3Rec" in validate.stdout
