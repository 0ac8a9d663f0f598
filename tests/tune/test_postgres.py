"""Studies on a real PostgreSQL server: two processes, exactly N trials, no grid point twice,
and the password in the storage URL written nowhere."""

from __future__ import annotations

import urllib.parse
from pathlib import Path

import pytest

from tests.tune.helpers import counted, start, study_trials, write_suite

SIX = "{ lr = [1e-2, 5e-3, 2e-3, 1e-3, 7e-3, 4e-3] }"

pytestmark = pytest.mark.postgres


def test_two_processes_on_one_postgresql_study_and_no_password_anywhere(
    tmp_path: Path, postgres: str, cache_dir: Path
) -> None:
    from seqbench.tune.storage import mask

    password = urllib.parse.urlsplit(postgres).password
    assert password
    suite = write_suite(
        tmp_path, name="pg", space=SIX, tune='sampler = "grid"\ntrials = 5', epochs=3
    )
    results = tmp_path / "results"
    args = ("tune", str(suite), "--results", str(results), "--device", "cpu", "-q",
            "--storage", postgres)  # fmt: skip
    first, second = start(*args), start(*args)
    outputs = [p.communicate(timeout=280)[0] for p in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, outputs
    trials = study_trials(postgres, "pg/gru4rec/synthetic")
    assert len(counted(trials)) == 5 and len(trials) == 5, outputs
    assert len({t.params["lr"] for t in trials}) == 5
    assert {t.user_attrs["seqbench:holder"]["pid"] for t in trials} == {first.pid, second.pid}

    # the password appears in no written file (results, summaries, logs, cache) nor output
    shown = mask(postgres)
    assert password not in shown and ":***@" in shown
    assert all(password not in text for text in outputs)
    written = [p for root in (tmp_path, cache_dir) for p in root.rglob("*") if p.is_file()]
    assert len(written) > 20
    for path in written:
        assert password.encode() not in path.read_bytes(), path
    summary = (results / "pg" / "tune" / "summary.json").read_text()
    assert shown in summary


def test_mask_hides_every_password() -> None:
    from seqbench.tune.storage import mask, scrub

    assert mask("postgresql://u:s3cret@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert mask("postgresql+psycopg2://u:p%40ss@h/db?sslmode=require") == (
        "postgresql+psycopg2://u:***@h/db?sslmode=require"
    )
    assert mask("postgresql://h/db?user=u&password=xyz") == "postgresql://h/db?user=u&password=***"
    assert mask("postgresql://u@h/db") == "postgresql://u@h/db"
    assert mask("results/x/tune/journal.log") == "results/x/tune/journal.log"
    assert scrub("FATAL: p@ss rejected", "postgresql://u:p%40ss@h/db") == "FATAL: *** rejected"
