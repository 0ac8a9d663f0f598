"""The one atomic writer: a writer SIGKILLed mid-write leaves the old file, never a torn one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from seqbench import atomic
from tests.conftest import REPO

WRITERS = {
    "json": "atomic.write_json(path, {'value': 'new' * 10000})",
    "npz": "atomic.write_with(path, lambda f: np.savez(f, value=np.full(50000, 2.0)))",
    "text": "atomic.write_text(path, 'new ' * 10000)",
}


def _write_in_child(path: Path, kind: str, fault: bool) -> subprocess.CompletedProcess:
    code = textwrap.dedent(
        f"""
        from pathlib import Path
        import numpy as np
        from seqbench import atomic
        path = Path({str(path)!r})
        {WRITERS[kind]}
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    if fault:
        env[atomic.FAULT] = "kill@mid-write"
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, timeout=60)


def _read(path: Path, kind: str) -> object:
    if kind == "json":
        return json.loads(path.read_text())["value"]
    if kind == "npz":
        with np.load(path) as npz:
            return float(npz["value"].mean())
    return path.read_text().split()[0]


@pytest.mark.parametrize("kind", sorted(WRITERS))
def test_a_writer_killed_mid_write_leaves_the_old_file(tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"target.{kind}"
    old = {"json": lambda: atomic.write_json(path, {"value": "old"}),
           "npz": lambda: atomic.write_with(path, lambda f: np.savez(f, value=np.ones(3))),
           "text": lambda: atomic.write_text(path, "old")}  # fmt: skip
    old[kind]()
    before = path.read_bytes()

    killed = _write_in_child(path, kind, fault=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert path.read_bytes() == before  # the old file, whole
    leftovers = [p for p in tmp_path.iterdir() if p != path]
    assert leftovers and all(p.name.startswith(".") for p in leftovers)  # hidden, half-written

    done = _write_in_child(path, kind, fault=False)
    assert done.returncode == 0, done.stderr
    torn = leftovers[0].stat().st_size
    assert 0 < torn < path.stat().st_size  # the killed writer got half-way: torn, and unseen
    assert _read(path, kind) == {"json": "new" * 10000, "npz": 2.0, "text": "new"}[kind]


def test_an_exception_while_writing_keeps_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    atomic.write_text(path, "old")

    def explode(f: object) -> None:
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        atomic.write_with(path, explode)
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_json_is_strict(tmp_path: Path) -> None:
    atomic.write_json(tmp_path / "x.json", {"a": float("nan"), "b": [float("inf"), 1.5]})
    assert json.loads((tmp_path / "x.json").read_text()) == {"a": None, "b": [None, 1.5]}
