"""The store: complete-or-absent cells, OS locks shared between processes, retries of failures."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path, PurePosixPath

import pytest

from seqbench import store

CELL = PurePosixPath("synthetic/sasrec/seed-1-abcdef12")
HASH = "abcdef12" + "0" * 56


def _write_cell(scratch: Path, status: str) -> None:
    store.write_json(scratch / store.RESULT, {"schema": 1, "status": status})


def test_publish_makes_a_complete_cell_appear_at_once(tmp_path: Path) -> None:
    s = store.SuiteStore(tmp_path, "suite")
    assert s.status(CELL) is None
    with s.claim(HASH):
        scratch = s.scratch(HASH)
        _write_cell(scratch, "ok")
        assert s.status(CELL) is None  # still in .tmp
        final = s.publish(scratch, CELL, HASH)
    assert final == tmp_path / "suite" / CELL
    assert s.status(CELL) == "ok"
    assert not list((tmp_path / "suite" / ".tmp").iterdir())


def test_a_failed_cell_is_replaced_by_its_retry(tmp_path: Path) -> None:
    s = store.SuiteStore(tmp_path, "suite")
    for status in ("failed", "ok"):
        with s.claim(HASH):
            scratch = s.scratch(HASH)
            _write_cell(scratch, status)
            (scratch / f"{status}.txt").write_text(status)
            s.publish(scratch, CELL, HASH)
    assert s.status(CELL) == "ok"
    assert sorted(p.name for p in s.cell_dir(CELL).iterdir()) == ["ok.txt", store.RESULT]
    assert not list((tmp_path / "suite" / ".tmp").iterdir())


def test_a_dead_writers_leftovers_are_removed_by_the_next_claim(tmp_path: Path) -> None:
    s = store.SuiteStore(tmp_path, "suite")
    leftover = tmp_path / "suite" / ".tmp" / f"{HASH}-999-deadbeef"
    leftover.mkdir()
    (leftover / store.RESULT).write_text("{")  # half-written
    other = tmp_path / "suite" / ".tmp" / f"{'f' * 64}-1-x"
    other.mkdir()
    with s.claim(HASH):
        assert not leftover.exists()
        assert other.exists()  # another cell's scratch is not ours to remove


def test_claim_is_exclusive_across_processes_and_freed_when_the_holder_dies(
    tmp_path: Path,
) -> None:
    s = store.SuiteStore(tmp_path, "suite")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys, time
                from seqbench import store
                s = store.SuiteStore({str(tmp_path)!r}, "suite")
                with s.claim({HASH!r}):
                    print("held", flush=True)
                    time.sleep(60)
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(store.CellBusy), s.claim(HASH):
            pass
        with s.claim("1" * 64):  # other cells are free
            pass
    finally:
        holder.kill()
        holder.wait()
    with s.claim(HASH):  # the OS released the dead holder's lock
        pass


def test_unreadable_results_count_as_absent(tmp_path: Path) -> None:
    s = store.SuiteStore(tmp_path, "suite")
    s.cell_dir(CELL).mkdir(parents=True)
    (s.cell_dir(CELL) / store.RESULT).write_text('{"status": ')
    assert s.status(CELL) is None
    store.write_json(s.cell_dir(CELL) / store.RESULT, {"status": "ok", "x": [float("nan")]})
    strict = json.loads(
        (s.cell_dir(CELL) / store.RESULT).read_text(), parse_constant=lambda c: 1 / 0
    )
    assert strict == {"status": "ok", "x": [None]}  # strict JSON: NaN is written as null
    assert s.status(CELL) == "ok"


def test_an_unwritable_results_root_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(store.SeqbenchError, match="cannot create the results folder"):
        store.SuiteStore(blocker, "suite")
