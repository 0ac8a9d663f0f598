"""``seqbench tune`` end to end in real processes: exactly N trials, validation only, pruned
trials recorded as such, best.toml and ``run --tuned`` giving a hand-written suite's hashes."""

from __future__ import annotations

import json
from pathlib import Path

from tests.tune.helpers import counted, ok, seqbench, study_trials, trial_records, write_suite

STUDY = "tn/gru4rec/synthetic"


def test_a_study_is_exactly_n_validation_only_trials_and_tuned_cells_match_best_toml(
    tmp_path: Path,
) -> None:
    from optuna.trial import TrialState

    from seqbench.cells import source_fingerprint
    from seqbench.suite import load_suite

    suite = write_suite(tmp_path)
    results = tmp_path / "results"
    run = ok(seqbench("tune", str(suite), "--results", str(results), "--device", "cpu", "-q"))
    suite_dir = results / "tn"
    journal = suite_dir / "tune" / "journal.log"
    trials = study_trials(str(journal), STUDY)
    assert len(counted(trials)) == 3 and len(trials) == 3, run.stdout
    # grid order: lr 1e-2 first (complete), then 1e-7, which learns nothing: pruned after the
    # warm-up (= stopping_step, 1 epoch) by the median of the one complete trial
    assert [t.params["lr"] for t in trials] == [1e-2, 1e-7, 3e-3]
    assert trials[0].state == TrialState.COMPLETE
    assert trials[1].state == TrialState.PRUNED
    assert "PRUNED trial 1 of gru4rec/synthetic" in run.stdout

    records = trial_records(suite_dir)
    by_trial = {r["tune"]["trial"]: r for r in records}
    # the default cell (-1: the suite's lr 3e-3) and trials 0 and 1; trial 2 is the same
    # point as the default: it reuses that cell's result instead of training it again
    assert sorted(by_trial) == [-1, 0, 1]
    assert trials[2].user_attrs["seqbench:reused"] is True
    assert trials[2].value == by_trial[-1]["metrics"]["valid"]["ndcg@10"]
    assert trials[0].user_attrs["seqbench:reused"] is False
    for result in records:
        assert "test" not in result["metrics"]  # validation only: never a test metric
        assert result["tune"]["study"] == STUDY and result["tune"]["storage"] == str(journal)
        assert result["cell"]["identity"]["validation_only"] is True
    for path in (suite_dir / ".tune").rglob("result.json"):
        assert not (path.parent / "ranks.npz").exists()
    pruned = by_trial[1]
    assert pruned["status"] == "pruned" and pruned["stopped"]["requested_by"] == "pruner"
    # the verdict on epoch 1 reaches the worker asynchronously (honoured at its next batch or
    # epoch boundary): on a loaded machine epoch 2 may finish first; pruned before the 4th
    assert pruned["stopped"]["epoch"] == pruned["curve"][-1]["epoch"] >= 1
    assert pruned["epochs_run"] == pruned["stopped"]["epoch"] + 1 < 4
    complete = by_trial[0]
    assert complete["status"] == "ok"
    assert trials[0].value == complete["tune"]["value"] == complete["metrics"]["valid"]["ndcg@10"]

    summary = json.loads((suite_dir / "tune" / "summary.json").read_text())
    study = summary["studies"][0]
    assert study["study"] == STUDY and study["trials"]["complete"] + study["trials"]["pruned"] == 3
    assert study["best"]["params"] == {"lr": max((t for t in trials if t.value is not None
                                                   and t.state == TrialState.COMPLETE),
                                                  key=lambda t: t.value).params["lr"]}  # fmt: skip
    assert study["default"]["params"] == {"lr": 3e-3}
    assert study["default"]["value"] == by_trial[-1]["metrics"]["valid"]["ndcg@10"]
    assert [h["trial"] for h in study["history"]] == [0, 1, 2]
    assert summary["budget"]["trials"] == 3 and summary["budget"]["equal"] is True

    # a second run finds the study complete: nothing is trained, still exactly 3 trials
    again = ok(seqbench("tune", str(suite), "--results", str(results), "--device", "cpu", "-q"))
    assert "trial 3" not in again.stdout
    assert len(study_trials(str(journal), STUDY)) == 3

    # best.toml pasted into the suite in place of the tuned entry: the cells of
    # `seqbench run --tuned` have exactly its hashes, and record where the values came from
    best = (suite_dir / "tune" / "best.toml").read_text()
    text = suite.read_text()
    hand = tmp_path / "hand.toml"
    hand.write_text(text.split("[[models]]")[0] + best, encoding="utf-8")
    hand_suite = load_suite(hand)
    assert hand_suite.tune is None and not hand_suite.models[0].tune
    source = source_fingerprint(hand_suite.cells()[0].dataset, download=True)
    assert source is not None
    expected = {c.seed: c.hash(source) for c in hand_suite.cells()}
    ok(seqbench("run", str(suite), "--tuned", "--results", str(results), "--device", "cpu", "-q"))
    finals = [json.loads(p.read_text()) for p in (suite_dir / "synthetic").rglob("result.json")]
    assert {r["cell"]["seed"]: r["cell"]["hash"] for r in finals} == expected
    for result in finals:
        assert result["tuned_from"]["study"] == STUDY
        assert result["tuned_from"]["trial"] == study["best"]["trial"]
        assert result["tuned_from"]["params"] == study["best"]["params"]
        assert result["metrics"]["test"]  # final cells are evaluated on test as usual
        assert "tune" not in result
