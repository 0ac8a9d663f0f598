"""`seqbench tune --executor ray|slurm` on real clusters: trials decided one at a time and run as
Ray tasks or Slurm jobs give the studies the local executor gives (the same trials, states and
values), validation only, with the executor named in every trial's attempts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.cluster.conftest import Wrap
from tests.cluster.test_cluster_executors import _seqbench

pytest.importorskip("optuna", reason="the tune extra is not installed (pip install '.[tune]')")

from tests.tune.helpers import counted, study_trials, trial_records, write_suite

pytestmark = pytest.mark.timeout(1200)

STUDY = "tn/gru4rec/synthetic"


def _tune(suite: Path, results: Path, *extra: str, wrap: Wrap | None = None) -> list[Any]:
    done = _seqbench("tune", str(suite), "--results", str(results), "--device", "cpu", "-q",
                     "--jobs", "2", *extra, wrap=wrap)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return study_trials(str(results / "tn" / "tune" / "journal.log"), STUDY)


def _same_study(local: list[Any], remote: list[Any], remote_root: Path, executor: str) -> None:
    from optuna.trial import TrialState

    assert len(counted(remote)) == len(counted(local)) == 3
    assert sorted(t.params["lr"] for t in remote) == sorted(t.params["lr"] for t in local)
    by_lr = {t.params["lr"]: t for t in local}
    for trial in remote:
        twin = by_lr[trial.params["lr"]]
        if trial.state == twin.state == TrialState.COMPLETE:
            assert trial.value == twin.value  # the same cell: the same validation metric
        else:  # a stop crosses the cluster later than a local pipe: pruned or run to the end
            assert {trial.state, twin.state} <= {TrialState.COMPLETE, TrialState.PRUNED}
    records = trial_records(remote_root / "tn")
    assert records
    for result in records:
        assert "test" not in result["metrics"]
        assert {a["executor"] for a in result["attempts"]} == {executor}
        if result["status"] == "pruned":
            assert result["stopped"]["requested_by"] == "pruner"


def test_tune_on_a_ray_cluster_gives_the_local_study(
    ray_head: str, loopback_netns: Wrap, tmp_path: Path
) -> None:
    suite = write_suite(tmp_path)
    local = _tune(suite, tmp_path / "L")
    remote = _tune(suite, tmp_path / "R", "--executor", "ray", "--address", ray_head,
                   wrap=loopback_netns)  # fmt: skip
    _same_study(local, remote, tmp_path / "R", "ray")


def test_tune_on_slurm_gives_the_local_study(slurm_partition: str, tmp_path: Path) -> None:
    suite = write_suite(tmp_path)
    local = _tune(suite, tmp_path / "L")
    remote = _tune(suite, tmp_path / "S", "--executor", "slurm", "--slurm-partition",
                   slurm_partition, "--slurm-time", "10m")  # fmt: skip
    _same_study(local, remote, tmp_path / "S", "slurm")
    assert list((tmp_path / "S" / "tn" / ".tune" / ".slurm").iterdir())  # one job per trial cell
