"""Leases: created once, taken over at once from a dead local holder, after expiry from a silent
remote one (a controllable clock), never from a live one; the fence and the heartbeat."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from seqbench import lease

HERE = lease.Holder.this_process()


def _lease_of(path: Path, **holder: object) -> None:
    content = {"token": "t" * 32, "host": "elsewhere", "pid": 1, "pid_start": None, "boot": None,
               "duration": 60.0, "started": 0.0, "heartbeat": 0.0, **holder}  # fmt: skip
    path.write_text(json.dumps(content))


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_exactly_one_claimant_creates_a_lease(tmp_path: Path) -> None:
    path = tmp_path / "cell.json"
    first = lease.acquire(path, holder=lease.Holder("a", 1))
    with pytest.raises(lease.LeaseBusy, match="held by a pid 1"):
        lease.acquire(path, holder=lease.Holder("b", 2), clock=lambda: first.heartbeat + 59)
    assert json.loads(path.read_text())["token"] == first.token


def test_a_dead_holder_on_this_host_is_taken_over_at_once(tmp_path: Path) -> None:
    path = tmp_path / "cell.json"
    _lease_of(path, host=socket.gethostname(), pid=_dead_pid(), heartbeat=1e12)  # fresh
    taken: list[str] = []
    mine = lease.acquire(path, clock=lambda: 1e12, on_take_over=lambda s, why: taken.append(why))
    assert json.loads(path.read_text())["token"] == mine.token
    assert len(taken) == 1 and "is gone" in taken[0]


def test_a_live_holder_is_never_taken_over_even_when_silent(tmp_path: Path) -> None:
    path = tmp_path / "cell.json"
    _lease_of(path, host=HERE.host, pid=os.getpid(), pid_start=HERE.pid_start, boot=HERE.boot)
    with pytest.raises(lease.LeaseBusy):  # silent for "ages", but this host says it is alive
        lease.acquire(path, holder=lease.Holder(HERE.host, 999, None, HERE.boot), clock=lambda: 1e9)


def test_a_reused_pid_counts_as_dead(tmp_path: Path) -> None:
    path = tmp_path / "cell.json"
    if HERE.pid_start is None:
        pytest.skip("process start times need /proc")
    _lease_of(path, host=HERE.host, pid=os.getpid(), pid_start=HERE.pid_start - 1, boot=HERE.boot,
              heartbeat=1e12)  # fmt: skip
    lease.acquire(path, clock=lambda: 1e12)


def test_a_silent_remote_holder_is_taken_over_only_after_expiry(tmp_path: Path) -> None:
    path = tmp_path / "cell.json"
    now = [100.0]
    remote = lease.acquire(path, duration=60, holder=lease.Holder("node-a", 7),
                           clock=lambda: now[0])  # fmt: skip
    me = lease.Holder("node-b", 8)
    for later in (30.0, 60.0):  # inside the lease (a heartbeat exactly at the limit still holds)
        now[0] = 100.0 + later
        with pytest.raises(lease.LeaseBusy):
            lease.acquire(path, holder=me, clock=lambda: now[0])
    lease.renew(remote, clock=lambda: 150.0)  # a heartbeat moves the expiry on
    now[0] = 200.0
    with pytest.raises(lease.LeaseBusy):
        lease.acquire(path, holder=me, clock=lambda: now[0])
    now[0] = 210.5  # 60.5 s after the last heartbeat
    mine = lease.acquire(path, holder=me, clock=lambda: now[0])
    with pytest.raises(lease.LeaseLost, match="node-b pid 8"):
        lease.check(remote)
    with pytest.raises(lease.LeaseLost):
        lease.renew(remote)
    lease.check(mine)
    lease.release(remote)  # not ours any more: leaves the new lease alone
    assert json.loads(path.read_text())["token"] == mine.token
    lease.release(mine)
    assert not path.exists()


def test_another_host_rebooted_is_not_judged_by_our_boot(tmp_path: Path) -> None:
    path = tmp_path / "cell.json"
    _lease_of(path, host="node-a", pid=os.getpid(), boot="other-boot", heartbeat=100.0)
    with pytest.raises(lease.LeaseBusy):  # node-a's processes are not ours to judge
        lease.acquire(path, clock=lambda: 120.0)
