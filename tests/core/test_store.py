"""The store: complete-or-absent cells, claims shared between processes, fenced publishing,
retries of failures but not of outcomes, and the attempts of each cell."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path, PurePosixPath

import pytest

from seqbench import lease, store

CELL = PurePosixPath("synthetic/sasrec/seed-1-abcdef12")
HASH = "abcdef12" + "0" * 56


def _write_cell(scratch: Path, status: str) -> None:
    store.write_json(scratch / store.RESULT, {"schema": 2, "status": status})


def _publish(s: store.SuiteStore, status: str, **kwargs: object) -> Path:
    with s.claimed(HASH) as claim:
        scratch = s.scratch(HASH)
        _write_cell(scratch, status)
        return s.publish(claim, scratch, CELL, status, **kwargs)  # type: ignore[arg-type]


def test_publish_makes_a_complete_cell_appear_at_once(tmp_path: Path) -> None:
    s = store.SuiteStore(tmp_path, "suite")
    assert s.status(CELL) is None
    with s.claimed(HASH) as claim:
        scratch = s.scratch(HASH)
        _write_cell(scratch, "ok")
        assert s.status(CELL) is None  # still in .tmp
        final = s.publish(claim, scratch, CELL, "ok")
    assert final == tmp_path / "suite" / CELL
    assert s.status(CELL) == "ok"
    assert not list((tmp_path / "suite" / ".tmp").iterdir())
    assert not list((tmp_path / "suite" / ".leases").iterdir())  # released
    assert not list((tmp_path / "suite" / ".attempts").iterdir())  # moved into the record


def test_a_failed_cell_is_replaced_by_its_retry_and_both_tries_are_listed(tmp_path: Path) -> None:
    s = store.SuiteStore(tmp_path, "suite")
    for status in ("failed", "ok"):
        with s.claimed(HASH) as claim:
            scratch = s.scratch(HASH)
            _write_cell(scratch, status)
            (scratch / f"{status}.txt").write_text(status)
            s.publish(claim, scratch, CELL, status)
    assert s.status(CELL) == "ok"
    assert sorted(p.name for p in s.cell_dir(CELL).iterdir()) == ["ok.txt", store.RESULT]
    assert not list((tmp_path / "suite" / ".tmp").iterdir())
    attempts = store.read_result(s.cell_dir(CELL) / store.RESULT)["attempts"]  # type: ignore[index]
    assert [a["outcome"] for a in attempts] == ["failed", "ok"]
    assert all(a["host"] and a["pid"] and a["started"] and a["ended"] for a in attempts)


@pytest.mark.parametrize("outcome", ["oom", "timeout", "pruned"])
def test_outcomes_are_not_rerun_unless_asked(tmp_path: Path, outcome: str) -> None:
    assert store.should_run(None) and store.should_run("failed")
    assert not store.should_run("ok") and not store.should_run("ok", (outcome,))
    assert not store.should_run(outcome)
    assert store.should_run(outcome, (outcome,))
    s = store.SuiteStore(tmp_path, "suite")
    _publish(s, outcome)
    with pytest.raises(store.PublishRefused, match=f"already holds a '{outcome}' result"):
        _publish(s, "ok")
    assert s.status(CELL) == outcome
    _publish(s, "ok", retry=(outcome,))
    assert s.status(CELL) == "ok"


def test_a_finished_result_is_never_replaced(tmp_path: Path) -> None:
    s = store.SuiteStore(tmp_path, "suite")
    first = _publish(s, "ok")
    stamp = (first / store.RESULT).stat().st_mtime_ns
    with pytest.raises(store.PublishRefused):
        _publish(s, "ok")
    assert (first / store.RESULT).stat().st_mtime_ns == stamp
    assert not list((tmp_path / "suite" / ".tmp").iterdir())  # the refused scratch is gone


def test_a_fenced_publish_refuses_a_lost_lease(tmp_path: Path) -> None:
    now = [1000.0]
    slow = store.SuiteStore(tmp_path, "suite", lease_seconds=60, clock=lambda: now[0],
                            holder=lease.Holder("node-a", 11))  # fmt: skip
    fast = store.SuiteStore(tmp_path, "suite", lease_seconds=60, clock=lambda: now[0],
                            holder=lease.Holder("node-b", 22))  # fmt: skip
    stalled = slow.claim(HASH)
    scratch = slow.scratch(HASH)
    _write_cell(scratch, "ok")
    stalled.os_lock.release()  # type: ignore[union-attr]  # node-b is another machine
    now[0] += 61  # node-a stalled past its lease: node-b takes the cell over
    taker = fast.claim(HASH)
    with pytest.raises(lease.LeaseLost, match=r"no longer ours .*node-b"):
        slow.publish(stalled, scratch, CELL, "ok")
    assert not scratch.exists() and slow.status(CELL) is None
    scratch_b = fast.scratch(HASH)
    _write_cell(scratch_b, "ok")
    final = fast.publish(taker, scratch_b, CELL, "ok")
    fast.release(taker)
    attempts = store.read_result(final / store.RESULT)["attempts"]  # type: ignore[index]
    assert [(a["host"], a["outcome"]) for a in attempts] == [("node-a", "lost"), ("node-b", "ok")]
    assert "no heartbeat for 61 s" in attempts[0]["message"]


def test_a_dead_writers_leftovers_are_removed_by_the_next_claim(tmp_path: Path) -> None:
    s = store.SuiteStore(tmp_path, "suite")
    leftover = tmp_path / "suite" / ".tmp" / f"{HASH}-999-deadbeef"
    leftover.mkdir()
    (leftover / store.RESULT).write_text("{")  # half-written
    other = tmp_path / "suite" / ".tmp" / f"{'f' * 64}-1-x"
    other.mkdir()
    with s.claimed(HASH):
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
                with s.claimed({HASH!r}):
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
        with pytest.raises(store.CellBusy):
            s.claim(HASH)
        with s.claimed("1" * 64):  # other cells are free
            pass
    finally:
        holder.kill()
        holder.wait()
    # the OS released the dead holder's lock and its lease names a dead pid: taken at once
    with s.claimed(HASH) as claim:
        assert claim.lease.holder.pid != holder.pid
    assert not (tmp_path / "suite" / ".leases" / f"{HASH}.json").exists()  # released


def test_heartbeats_keep_a_lease_fresh(tmp_path: Path) -> None:
    now = [0.0]
    s = store.SuiteStore(tmp_path, "suite", lease_seconds=0.6, clock=lambda: now[0])
    claim = s.claim(HASH)
    path = tmp_path / "suite" / ".leases" / f"{HASH}.json"
    now[0] = 5.0
    s.heartbeat(claim)
    deadline = time.monotonic() + 10
    while json.loads(path.read_text())["heartbeat"] != 5.0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert json.loads(path.read_text())["heartbeat"] == 5.0
    s.release(claim, "ok")
    assert not path.exists()


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
