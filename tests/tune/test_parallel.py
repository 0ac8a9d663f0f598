"""Several processes, dead processes and the test split: exactly N trials, no grid point twice,
a SIGKILLed study resumed where it stopped, and trials that never read the test split."""

from __future__ import annotations

import json
import random
import signal
from pathlib import Path

from tests.tune.helpers import (
    counted,
    ok,
    seqbench,
    start,
    study_trials,
    trial_records,
    write_suite,
)

STUDY = "tn/gru4rec/synthetic"
SIX = "{ lr = [1e-2, 5e-3, 2e-3, 1e-3, 7e-3, 4e-3] }"


def test_two_processes_share_one_study_with_exactly_n_trials_and_no_point_twice(
    tmp_path: Path,
) -> None:
    suite = write_suite(tmp_path, space=SIX, tune='sampler = "grid"\ntrials = 5', epochs=3)
    results = tmp_path / "results"
    args = ("tune", str(suite), "--results", str(results), "--device", "cpu", "-q")
    first, second = start(*args), start(*args)
    outputs = [p.communicate(timeout=280)[0] for p in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, outputs
    trials = study_trials(str(results / "tn" / "tune" / "journal.log"), STUDY)
    assert len(counted(trials)) == 5 and len(trials) == 5, outputs
    points = [t.params["lr"] for t in trials]
    assert len(set(points)) == 5  # the grid never runs a point twice, across processes too
    holders = {t.user_attrs["seqbench:holder"]["pid"] for t in trials}
    assert holders == {first.pid, second.pid}, outputs  # both processes ran trials


def test_a_killed_study_resumes_to_exactly_n_trials(tmp_path: Path) -> None:
    from optuna.trial import TrialState

    results = tmp_path / "results"
    one = write_suite(tmp_path, tune='sampler = "grid"\ntrials = 1', file="one.toml", epochs=3)
    three = write_suite(tmp_path, tune='sampler = "grid"\ntrials = 3', file="three.toml", epochs=3)
    ok(seqbench("tune", str(one), "--results", str(results), "--device", "cpu", "-q"))
    # trial 1 is computed next: SIGKILL the tune process and its worker after its epoch 1
    marker = tmp_path / "fired"
    killed = seqbench(
        "tune", str(three), "--results", str(results), "--device", "cpu", "-q",
        env={"SEQBENCH_FAULT": f"kill-runner@epoch=1:{marker}"},
    )  # fmt: skip
    assert killed.returncode == -signal.SIGKILL and marker.exists(), killed.stdout
    journal = str(results / "tn" / "tune" / "journal.log")
    assert [t.state for t in study_trials(journal, STUDY)] == [
        TrialState.COMPLETE,
        TrialState.RUNNING,  # its process is dead: only seqbench's lease can tell
    ]
    resumed = ok(seqbench("tune", str(three), "--results", str(results), "--device", "cpu", "-q"))
    assert "trial 1 was lost" in resumed.stderr + resumed.stdout
    trials = study_trials(journal, STUDY)
    assert len(counted(trials)) == 3, resumed.stdout
    lost = trials[1]
    assert lost.state == TrialState.FAIL and "gone" in lost.user_attrs["seqbench:lost"]
    retry = next(t for t in trials if t.user_attrs.get("seqbench:retry_of") == 1)
    assert retry.params == lost.params and retry.state in (TrialState.COMPLETE, TrialState.PRUNED)


def _sequences(path: Path, last: list[int]) -> None:
    """30 users; user 0 lists every item first (so ids are numbered the same whatever the last
    items are); each user's last item is ``last[u]`` (its test target)."""
    rng = random.Random(11)
    lines = []
    for u in range(30):
        items = list(range(1, 21)) if u == 0 else [rng.randint(1, 20) for _ in range(8)]
        lines.append(" ".join(map(str, [u + 1, *items, last[u]])))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_trials_never_read_the_test_split(tmp_path: Path) -> None:
    """Two datasets that differ only in each user's last item (the test target; item counts
    and numbering unchanged): every trial's curve, metrics and value are identical."""
    from seqbench.data.load import DatasetSpec, load_dataset
    from seqbench.data.protocol import Protocol

    last = [random.Random(u).randint(1, 20) for u in range(30)]
    shifted = last[1:] + last[:1]  # the same items, other users: the same counts
    _sequences(tmp_path / "a.txt", last)
    _sequences(tmp_path / "b.txt", shifted)
    protocol = Protocol(k_core=0, max_len=10)
    loaded = [
        load_dataset(DatasetSpec(name=n, path=tmp_path / f"{n}.txt", format="sequences"), protocol)
        for n in ("a", "b")
    ]
    a, b = (d.inputs("test") for d in loaded)
    assert (a[0] == b[0]).all() and (a[2] != b[2]).any()  # same inputs, other test targets
    valid = zip(loaded[0].inputs("valid"), loaded[1].inputs("valid"), strict=True)
    assert all((x == y).all() for x, y in valid)

    values = []
    for name in ("a", "b"):
        dataset = f'name = "{name}"\npath = "{name}.txt"\nformat = "sequences"'
        suite = write_suite(
            tmp_path, name=f"t{name}", dataset=dataset, file=f"{name}.toml", epochs=3,
            tune='sampler = "grid"\ntrials = 2\npruner = "none"',
            space="{ lr = [1e-2, 5e-3] }",
        )  # fmt: skip
        ok(seqbench("tune", str(suite), "--results", str(tmp_path / "r"), "--device", "cpu", "-q"))
        records = sorted(
            trial_records(tmp_path / "r" / f"t{name}"), key=lambda r: r["tune"]["trial"]
        )
        values.append(
            [
                (
                    r["tune"]["trial"],
                    r["tune"]["value"],
                    r["metrics"],
                    r["best_epoch"],
                    [(e["loss"], e["valid"]) for e in r["curve"]],
                )
                for r in records
            ]
        )
        summary = json.loads((tmp_path / "r" / f"t{name}" / "tune" / "summary.json").read_text())
        values[-1].append([h["value"] for h in summary["studies"][0]["history"]])
    assert len(values[0]) == 4  # default cell, 2 trials, the history
    assert values[0] == values[1]
