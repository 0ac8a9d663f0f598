"""`seqbench data …` end to end through Typer's test runner."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from seqbench.cli.main import app
from seqbench.data.protocol import Protocol
from seqbench.data.readers import READERS
from seqbench.data.registry import DATASETS
from seqbench.errors import UnknownNameError

runner = CliRunner()


def invoke(*args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, list(args))


def test_list_shows_every_registry_dataset() -> None:
    result = invoke("data", "list", "--json")
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert (
        set(rows)
        == set(DATASETS)
        == {
            "ml-100k",
            "ml-100k-recbole",
            "ml-1m",
            "amazon-beauty",
            "amazon-video-games",
            "synthetic",
        }
    )
    assert rows["ml-1m"]["checksum"] == "md5 published"
    assert rows["amazon-beauty"]["checksum"] == "sha256 recorded on first download"
    assert rows["synthetic"]["options"]["n_users"] == 1000
    human = invoke("data", "list")
    assert all(name in human.stdout for name in DATASETS)


def test_formats_lists_every_reader_with_options() -> None:
    result = invoke("data", "formats", "--json")
    rows = {row["format"]: row for row in json.loads(result.stdout)}
    assert set(rows) == set(READERS)
    assert rows["csv"]["options"]["time_col"] == "timestamp"


def test_stats_synthetic_json_then_from_cache() -> None:
    first = invoke("data", "stats", "synthetic", "--json", "-o", "n_users=300", "--max-len", "20")
    assert first.exit_code == 0, first.output
    s = json.loads(first.stdout)
    assert s["users"] == 300 and s["valid_samples"] == 300 and s["test_samples"] == 300
    assert s["train_samples"] == s["interactions"] - 3 * 300
    assert s["protocol"]["max_len"] == 20 and s["source"]["options"]["n_users"] == 300
    assert not s["cache"]["hit"]
    second = json.loads(
        invoke(
            "data", "stats", "synthetic", "--json", "-o", "n_users=300", "--max-len", "20"
        ).stdout
    )
    assert second["cache"]["hit"] and second["cache"]["key"] == s["cache"]["key"]


def test_stats_human_table(tmp_path: Path) -> None:
    result = invoke("data", "stats", "synthetic", "--quiet")
    assert result.exit_code == 0
    for label in (
        "users",
        "interactions",
        "density",
        "train samples",
        "protocol v1",
        "cache: built",
    ):
        assert label in result.stdout


def test_every_protocol_knob_is_a_cli_option() -> None:
    for command in ("stats", "prepare"):
        text = invoke("data", command, "--help").stdout
        text = re.sub(r"\x1b\[[0-9;]*m", "", text)
        for field in Protocol.model_fields:
            assert f"--{field.replace('_', '-')}" in text, (command, field)


def test_local_file_with_format_and_reader_options(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text(
        "who;what;when\n" + "".join(f"u{u};i{i};{i}\n" for u in range(6) for i in range(6))
    )
    result = invoke(
        "data",
        "stats",
        "mine",
        "--path",
        str(path),
        "--format",
        "csv",
        "--json",
        "-o",
        "sep=;",
        "-o",
        "user_col=who",
        "-o",
        "item_col=what",
        "-o",
        "time_col=when",
    )
    assert result.exit_code == 0, result.output
    s = json.loads(result.stdout)
    assert (s["users"], s["items"], s["interactions"]) == (6, 6, 36)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["data", "stats", "ml-10k"], "unknown dataset 'ml-10k'; did you mean 'ml-100k'?"),
        (
            ["data", "stats", "x", "--path", "f.txt"],
            "a local path needs a format (available: amazon, csv",
        ),
        (
            ["data", "stats", "x", "--path", "f.txt", "--format", "sequence"],
            "did you mean 'sequences'",
        ),
        (
            ["data", "stats", "synthetic", "-o", "n_user=5"],
            "unknown option 'n_user'; did you mean 'n_users'",
        ),
        (["data", "stats", "synthetic", "-o", "n_users"], "--option 'n_users': expected KEY=VALUE"),
        (
            ["data", "stats", "synthetic", "--k-core", "-1"],
            "option 'k_core': Input should be greater than or equal to 0",
        ),
        (["data", "stats", "synthetic", "--dedup", "some"], "option 'dedup'"),
        (["data", "stats", "synthetic", "--k-core", "500"], "is left after filtering (k_core=500"),
        (
            ["data", "stats", "synthetic", "--min-rating", "4"],
            "min_rating is set but this source has no ratings",
        ),
    ],
)
def test_bad_input_is_one_clear_line_and_exit_1(args: list[str], message: str) -> None:
    result = invoke(*args)
    assert result.exit_code == 1
    assert message in " ".join(result.stderr.split())  # rich may wrap; compare word by word
    assert "Traceback" not in result.output


def test_no_test_sample_is_explained(tmp_path: Path) -> None:
    path = tmp_path / "p.txt"
    path.write_text("1 a\n1 b\n2 a\n2 b\n")
    result = invoke("data", "stats", "x", "--path", str(path), "-f", "pairs", "--k-core", "0")
    assert result.exit_code == 1
    assert "no user has the 3 interactions a test sample needs" in " ".join(result.stderr.split())


def test_markup_characters_in_names_and_paths_are_printed_as_they_are(tmp_path: Path) -> None:
    folder = tmp_path / "d[red]"
    folder.mkdir()
    path = folder / "[b]x[red].txt"
    path.write_text("".join(f"{u} {i}\n" for u in range(3) for i in range(4)))
    result = invoke("data", "stats", "[/x]", "--path", str(path), "-f", "pairs", "--k-core", "0",
                    "--quiet", "--cache-dir", str(folder / "c[bold]"))  # fmt: skip
    assert result.exit_code == 0, result.output
    text = "".join(result.stdout.split())
    assert "[/x]" in text and "[b]x[red].txt" in text and "c[bold]" in text


def test_cache_dir_that_is_a_file(tmp_path: Path) -> None:
    blocker = tmp_path / "f"
    blocker.write_text("")
    result = invoke("data", "stats", "synthetic", "--cache-dir", str(blocker))
    assert result.exit_code == 1 and "exists and is not a folder" in result.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file")
def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "p.txt"
    path.write_text("1 a\n")
    path.chmod(0)
    result = invoke("data", "stats", "x", "--path", str(path), "-f", "pairs")
    assert result.exit_code == 1 and "cannot read it (Permission denied)" in result.stderr


def test_malformed_file_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "Beauty.txt"
    path.write_text("1 2 3\n2\n")
    result = invoke("data", "stats", "b", "--path", str(path), "--format", "sequences")
    assert result.exit_code == 1
    assert f"{path}:2: user '2' has no items" in " ".join(result.stderr.split())


def test_debug_shows_the_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SEQBENCH_DEBUG", raising=False)
    result = invoke("--debug", "data", "stats", "ml-10k")
    assert isinstance(result.exception, UnknownNameError)  # re-raised, not turned into one line
    assert invoke("data", "stats", "ml-10k").exit_code == 1  # and only for that invocation


def test_prepare_several_and_report_the_cache(tmp_path: Path) -> None:
    result = invoke("data", "prepare", "synthetic", "--quiet", "-o", "n_users=200")
    assert result.exit_code == 0, result.output
    assert "processed in" in result.stdout
    again = invoke("data", "prepare", "synthetic", "--quiet", "-o", "n_users=200")
    assert "cached already" in again.stdout


def test_prepare_path_takes_one_label(tmp_path: Path) -> None:
    result = invoke("data", "prepare", "a", "b", "--path", str(tmp_path), "--format", "pairs")
    assert result.exit_code == 1
    assert "--path reads one file" in result.stderr


def test_cache_dir_option_wins(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    result = invoke("data", "stats", "synthetic", "--json", "--quiet", "--cache-dir", str(target))
    assert json.loads(result.stdout)["cache"]["path"].startswith(str(target))


def test_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0 and result.stdout.startswith("seqbench ")
