"""A throw-away PostgreSQL server for the tuning tests: initdb into a temporary folder, listen on
127.0.0.1 on a free port, password authentication; stopped and removed after the session.

``$SEQBENCH_TEST_POSTGRES`` (a postgresql:// URL) names an existing server instead. Where no
server can be started (no initdb/pg_ctl, no driver, root without a ``postgres`` user) the tests
are skipped with the reason, and fail instead when the ``CI`` variable is set.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"CI is set but no PostgreSQL server can be started: {reason}")
    pytest.skip(f"no PostgreSQL server: {reason}")


def _binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    candidates.append(f"/usr/local/bin/{name}")
    return next((c for c in candidates if os.access(c, os.X_OK)), None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def postgres() -> Iterator[str]:
    """A postgresql:// URL (user, password, 127.0.0.1, port, database) of a live server."""
    given = os.environ.get("SEQBENCH_TEST_POSTGRES")
    if given:
        yield given
        return
    import importlib.util

    if not any(importlib.util.find_spec(m) for m in ("psycopg", "psycopg2")):
        _unavailable("no PostgreSQL driver is installed (pip install '.[tune]')")
    initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
    if initdb is None or pg_ctl is None:
        _unavailable("initdb/pg_ctl not found (apt-get install postgresql)")
    prefix: list[str] = []
    owner = None
    if os.geteuid() == 0:  # initdb refuses root: run the server as the postgres user
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            _unavailable("running as root and there is no 'postgres' user to run the server")
        prefix = ["runuser", "-u", "postgres", "--"]
    base = Path(tempfile.mkdtemp(prefix="seqbench-pg-"))
    password = "pw-" + secrets.token_hex(12)
    (base / "pw").write_text(password + "\n")
    if owner is not None:
        for path in (base, base / "pw"):
            os.chown(path, owner.pw_uid, owner.pw_gid)
    port = _free_port()
    data = base / "data"
    try:
        subprocess.run(
            [*prefix, initdb, "-D", str(data), "-U", "seqbench", "--auth=scram-sha-256",
             f"--pwfile={base / 'pw'}", "-E", "UTF8", "--no-instructions"],
            check=True, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {base} -c fsync=off"
        subprocess.run(
            [*prefix, pg_ctl, "-D", str(data), "-l", str(base / "log"), "-w", "-t", "60",
             "-o", options, "start"],
            check=True, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        detail = getattr(exc, "stderr", "") or str(exc)
        shutil.rmtree(base, ignore_errors=True)
        _unavailable(f"initdb/pg_ctl failed: {detail.strip()[:300]}")
    try:
        yield f"postgresql://seqbench:{password}@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*prefix, pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"],
            capture_output=True, timeout=60,
        )  # fmt: skip
        shutil.rmtree(base, ignore_errors=True)
