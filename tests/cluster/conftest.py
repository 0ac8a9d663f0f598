"""Real clusters for the executor tests: a Ray head started with `ray start`, and the single-node
Slurm of `.ci/slurm-up.sh`.

Ray advertises a machine's primary address, never the loopback one, so everything Ray is run in
a network namespace of its own that holds only `lo` (127.0.0.1): no test traffic leaves the
loopback. That needs root (CI runs as root); without it the Ray tests are skipped here and fail
when the CI variable is set, as the PostgreSQL and shared-data tests do.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO

Wrap = Callable[[list[str]], list[str]]
#: The clusters live in a loopback-only namespace: no token needed (and none shared through
#: ~/.ray between concurrent test runs).
RAY_ENV = {"RAY_AUTH_MODE": "disabled"}


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"CI is set but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def loopback_netns() -> Iterator[Wrap]:
    """A network namespace with only the loopback interface; the fixture's value turns a
    command into one that runs inside it."""
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("nsenter"):
        _unavailable("a loopback-only network namespace needs root, unshare and nsenter")
    holder = subprocess.Popen(["unshare", "--net", "sleep", "infinity"])
    try:
        time.sleep(0.2)
        wrap: Wrap = lambda cmd: ["nsenter", "-t", str(holder.pid), "-n", *cmd]  # noqa: E731
        subprocess.run(wrap(["ip", "link", "set", "lo", "up"]), check=True, timeout=30)
        yield wrap
    finally:
        holder.kill()
        holder.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ray_processes() -> set[int]:
    """Pids of Ray's own daemons (raylet, gcs_server) and workers on this machine."""
    found = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if b"raylet" in command or b"gcs_server" in command or b"ray::" in command:
            found.add(int(proc.name))
    return found


@pytest.fixture
def ray_head(loopback_netns: Wrap) -> Iterator[str]:
    """`ray start --head` on 127.0.0.1 (2 CPUs, a small object store); its address."""
    ray = shutil.which("ray") or str(Path(sys.executable).parent / "ray")
    if not Path(ray).exists():
        _unavailable('Ray is not installed (pip install "seqbench[cluster]")')
    port = free_port()
    short = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # Unix socket paths hold ≤ 107 bytes
    start = [ray, "start", "--head", f"--port={port}", "--num-cpus=2",
             "--object-store-memory=80000000", "--include-dashboard=false",
             "--disable-usage-stats", f"--temp-dir={short}"]  # fmt: skip
    env = {**os.environ, **RAY_ENV, "PYTHONPATH": str(REPO)}
    for _ in range(3):  # Ray gives the head 30 s to register, too little on a busy machine
        done = subprocess.run(loopback_netns(start), capture_output=True, text=True, env=env,
                              timeout=300)  # fmt: skip
        if done.returncode == 0:
            break
        subprocess.run(loopback_netns([ray, "stop", "--force"]), capture_output=True, env=env,
                       timeout=120)  # fmt: skip
    if done.returncode != 0:
        pytest.fail(f"ray start failed: {done.stdout}{done.stderr}")
    assert "127.0.0.1" in done.stdout + done.stderr, "Ray left the loopback"
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run(loopback_netns([ray, "stop", "--force"]), capture_output=True, timeout=120,
                       env=env)  # fmt: skip
        shutil.rmtree(short, ignore_errors=True)


@pytest.fixture(scope="session")
def slurm_partition() -> str:
    """The partition of a running Slurm (`.ci/slurm-up.sh` starts one on 127.0.0.1)."""
    reason = os.environ.get("SEQBENCH_SLURM_UNAVAILABLE")
    if reason:  # CI tried and said why (.ci/run); the job-array path is tested without Slurm
        pytest.skip(f"Slurm: {reason}")
    if not shutil.which("sinfo"):
        _unavailable("Slurm is not installed (apt-get install slurmctld slurmd munge)")
    state = subprocess.run(["sinfo", "-h", "-o", "%P %t"], capture_output=True, text=True,
                           timeout=30)  # fmt: skip
    up = [line.split()[0].rstrip("*") for line in state.stdout.splitlines()
          if line.split()[-1] in ("idle", "mix", "alloc")]  # fmt: skip
    if state.returncode != 0 or not up:
        _unavailable(f"no Slurm node is up (run .ci/slurm-up.sh as root): {state.stderr.strip()}")
    return up[0]
