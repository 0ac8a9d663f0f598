"""Reading a result store: discovery, validation, skipped and failed cells, duplicates, ranks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from seqbench.errors import SeqbenchError
from seqbench.report.load import ResultFileError, load_results, read_result_file
from tests.report.store import METRICS, RANKS, demo_store, hand_metric, write_cell


def test_finds_every_cell_and_skips_tmp_locks_hidden_and_corrupt(tmp_path: Path) -> None:
    results = load_results(demo_store(tmp_path))
    assert len(results.cells) == sum(len(seeds) for seeds in RANKS.values()) == 10
    assert results.files == 12 and results.skipped == 1  # 10 ok + 1 failed + 1 corrupt
    assert [v.label for v in results.variants] == ["sasrec", "mamba4rec", "mamba4rec+no_ffn"]
    assert results.datasets == ["beauty", "ml-1m"]
    assert len(results.warnings) == 1
    assert "seed-9-deadbeef" in results.warnings[0] and "not valid JSON" in results.warnings[0]
    assert all(".tmp" not in str(c.path) and ".hidden" not in str(c.path) for c in results.cells)


def test_a_root_of_suites_is_read_too(tmp_path: Path) -> None:
    demo_store(tmp_path)
    write_cell(tmp_path, suite="other", label="gru4rec", order=(0, 0, 0))
    results = load_results(tmp_path)
    assert results.suites == ["demo", "other"]
    assert [v.label for v in results.variants][-1] == "gru4rec"  # suites in name order


def test_failed_cells_are_listed_not_aggregated(tmp_path: Path) -> None:
    results = load_results(demo_store(tmp_path))
    (failed,) = results.failed
    assert (failed.variant.label, failed.dataset, failed.seed) == ("mamba4rec+no_ffn", "ml-1m", 1)
    assert failed.error == "OutOfMemoryError: CUDA out of memory | tried 2 GiB"
    assert all(c.status == "ok" for c in results.cells)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.update(schema=3), "schema 3 (written by a newer seqbench?"),
        (lambda d: d.update(status="running"), "status is 'running'; expected 'ok', 'failed', "),
        (lambda d: d["cell"]["variant"].pop("label"), "cell.variant.label is missing"),
        (lambda d: d["cell"].update(seed="1"), "cell.seed is '1'; expected a valid integer"),
        (lambda d: d["metrics"].pop("test"), "metrics.test is missing; expected an object"),
        (lambda d: d["cell"]["variant"].update(order="first"), "cell.variant.order is 'first'"),
    ],
)
def test_invalid_result_files_are_named_with_the_problem(
    tmp_path: Path, edit: object, message: str
) -> None:
    path = write_cell(tmp_path) / "result.json"
    data = json.loads(path.read_text())
    edit(data)  # type: ignore[operator]
    path.write_text(json.dumps(data))
    with pytest.raises(ResultFileError) as caught:
        read_result_file(path)
    assert str(caught.value).startswith(f"{path}: ") and message in str(caught.value)


def test_an_invalid_file_is_skipped_with_a_warning(tmp_path: Path) -> None:
    write_cell(tmp_path, seed=1)
    path = write_cell(tmp_path, seed=2) / "result.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "schema": 7}))
    results = load_results(tmp_path)
    assert [c.seed for c in results.cells] == [1]
    assert results.warnings == [f"skipped {path}: schema 7 (written by a newer seqbench? upgrade "
                                "to read it); expected schema 1 or 2"]  # fmt: skip


def test_duplicate_seeds_keep_the_newest_by_date(tmp_path: Path) -> None:
    # the newer result is written first, so the file times would pick the other one
    new = write_cell(tmp_path, seed=1, test_rank=(1, 1, 1, 1), date="2025-03-02T10:00:00+00:00")
    old = write_cell(tmp_path, seed=1, test_rank=(50, 50, 50, 50), date="2025-03-01T10:00:00Z")
    results = load_results(tmp_path)
    (kept,) = results.cells
    assert kept.dir == new
    (warning,) = results.warnings
    assert "sasrec on beauty, seed 1: 2 results" in warning
    assert f"kept the newest, {new}" in warning and f"ignored {old}" in warning


def test_a_failed_retry_that_is_newer_wins_over_an_old_success(tmp_path: Path) -> None:
    write_cell(tmp_path, seed=1, date="2025-01-01T00:00:00+00:00")
    write_cell(tmp_path, seed=1, status="failed", date="2025-01-02T00:00:00+00:00")
    results = load_results(tmp_path)
    assert not results.cells and len(results.failed) == 1
    assert "(failed, 2025-01-02T00:00:00+00:00)" in results.warnings[0]


def test_variants_sharing_a_label_are_told_apart(tmp_path: Path) -> None:
    write_cell(tmp_path, params={"hidden_size": 64})
    write_cell(tmp_path, params={"hidden_size": 32}, seed=2)
    results = load_results(tmp_path)
    assert sorted(v.display for v in results.variants) == [
        "sasrec [hidden_size=32]",
        "sasrec [hidden_size=64]",
    ]
    assert "2 variants are labelled 'sasrec'" in results.warnings[0]
    assert {c.variant.display for c in results.cells} == {v.display for v in results.variants}


def test_missing_or_empty_folders_are_errors(tmp_path: Path) -> None:
    with pytest.raises(SeqbenchError, match="does not exist"):
        load_results(tmp_path / "nope")
    (tmp_path / "suite" / ".tmp" / "x").mkdir(parents=True)
    (tmp_path / "suite" / ".tmp" / "x" / "result.json").write_text("{}")
    with pytest.raises(SeqbenchError, match=r"no results found under .*suite: no result\.json"):
        load_results(tmp_path / "suite")


def test_only_unreadable_files_is_an_error_naming_the_first(tmp_path: Path) -> None:
    path = write_cell(tmp_path) / "result.json"
    path.write_text("[1, 2]")
    with pytest.raises(SeqbenchError, match=r"none of the 1 result\.json .* holds a JSON list"):
        load_results(tmp_path)


def test_metrics_recomputed_from_ranks_equal_result_json(tmp_path: Path) -> None:
    results = load_results(demo_store(tmp_path))
    for cell in results.cells:
        for split in ("valid", "test"):
            for name in METRICS:
                stored, source = cell.metric(name, split)  # type: ignore[arg-type]
                recomputed, again = cell.metric(name, split, from_ranks=True)  # type: ignore[arg-type]
                assert (source, again) == ("result.json", "ranks.npz")
                assert recomputed == pytest.approx(stored, abs=1e-12)


def test_a_metric_missing_from_result_json_comes_from_ranks(tmp_path: Path) -> None:
    cell = read_result_file(write_cell(tmp_path, test_rank=(1, 12, 19, 25)) / "result.json")
    value, source = cell.metric("ndcg@20", "test")
    assert source == "ranks.npz"
    assert value == pytest.approx(hand_metric("ndcg@20", (1, 12, 19, 25)))


def test_expected_ties_and_missing_validation_users(tmp_path: Path) -> None:
    folder = write_cell(tmp_path, ties="expected")
    # user 1: 2 items above, 3 tied → expected rank 4.5; user 2: no validation sample
    np.savez(
        folder / "ranks.npz",
        users=np.array([1, 2]),
        history_len=np.array([3, 1]),
        valid_rank=np.array([4.5, np.nan]),
        valid_tied=np.array([3, -1]),
        test_rank=np.array([4.5, 1.0]),
        test_tied=np.array([3, 0]),
        ties=np.array("expected"),
    )
    cell = read_result_file(folder / "result.json")
    # target equally likely at positions 3, 4, 5, 6: HR@4 = 2/4
    assert cell.per_user("hr@4", "test").tolist() == [0.5, 1.0]
    assert cell.per_user("hr@4", "valid").tolist() == [0.5]


def test_a_damaged_ranks_file_is_an_error_naming_it(tmp_path: Path) -> None:
    folder = write_cell(tmp_path)
    (folder / "ranks.npz").write_bytes(b"PK\x03\x04 truncated")
    cell = read_result_file(folder / "result.json")
    with pytest.raises(ResultFileError, match=r"ranks\.npz: cannot be read"):
        cell.metric("ndcg@20", "test")
    (folder / "ranks.npz").unlink()
    cell = read_result_file(folder / "result.json")
    with pytest.raises(ResultFileError, match=r"ranks\.npz: is missing"):
        cell.per_user("hr@10", "test")


def test_split_users_pair_with_per_user_values(tmp_path: Path) -> None:
    folder = write_cell(tmp_path, test_rank=(1, 20), users=(7, 3), history_len=(4, 60))
    np.savez(
        folder / "ranks.npz",
        users=np.array([7, 3, 9]),
        history_len=np.array([4, 60, 12]),
        valid_rank=np.array([1.0, np.nan, 2.0]),
        valid_tied=np.array([0, -1, 0]),
        test_rank=np.array([1.0, 20.0, 2.0]),
        test_tied=np.array([0, 0, 0]),
        ties=np.array("pessimistic"),
    )
    cell = read_result_file(folder / "result.json")
    users, history = cell.split_users("test")
    assert users.tolist() == [7, 3, 9] and history is not None and history.tolist() == [4, 60, 12]
    users, history = cell.split_users("valid")  # the user without a validation sample is dropped
    assert users.tolist() == [7, 9] and history is not None and history.tolist() == [4, 12]
    assert cell.per_user("hr@10", "valid").tolist() == [1.0, 1.0]


def test_a_history_of_the_wrong_length_is_an_error(tmp_path: Path) -> None:
    folder = write_cell(tmp_path)
    arrays = dict(np.load(folder / "ranks.npz"))
    arrays["history_len"] = np.array([1, 2])
    np.savez(folder / "ranks.npz", **arrays)
    cell = read_result_file(folder / "result.json")
    with pytest.raises(ResultFileError, match="arrays of different shapes"):
        cell.split_users("test")
