"""The training loop: RecBole's early-stopping rule, best-state restore, determinism."""

from __future__ import annotations

import math

import pytest
import torch

from seqbench import train
from seqbench.cells import EvalSettings, TrainSettings
from tests.core.fixtures import LastItem, random_dataset


def settings(**overrides) -> train.Settings:
    values = {
        "epochs": 30, "batch_size": 16, "lr": 0.05, "weight_decay": 0.0, "stopping_step": 2,
        "valid_metric": "ndcg@10", "clip_grad_norm": None, "objective": "last",
    }  # fmt: skip
    evaluation = {"mask_history": False, "ties": "pessimistic", "metrics": ["hr@10", "ndcg@10"]}
    values.update((k, v) for k, v in overrides.items() if k in values)
    evaluation.update((k, v) for k, v in overrides.items() if k in evaluation)
    return train.Settings(TrainSettings(**values), EvalSettings(**evaluation))


def fit(seed: int = 0, scripted: list[float] | None = None, monkeypatch=None, **kw):
    ds = random_dataset()
    torch.manual_seed(seed)
    model = LastItem(ds.n_items)
    states: list[dict[str, torch.Tensor]] = []

    def on_event(event):
        if event["event"] == "epoch":
            states.append({k: v.clone() for k, v in model.state_dict().items()})

    if scripted is not None:
        values = iter(scripted)
        real = train.metric_values

        def fake(counts, s):
            out = real(counts, s)
            out[s.train.valid_metric] = next(values, 0.0)
            return out

        monkeypatch.setattr(train, "metric_values", fake)
    outcome = train.fit_and_evaluate(
        model, ds, settings(**kw), seed=seed, device=torch.device("cpu"), on_event=on_event
    )
    return model, outcome, states


@pytest.mark.parametrize(
    ("scores", "stopping_step", "epochs", "epochs_run", "best", "stopped"),
    [
        # a tie with the best counts as an improvement (RecBole), so the best moves to epoch 2
        ([0.1, 0.3, 0.3, 0.2, 0.2, 0.2, 0.9], 2, 30, 6, 2, True),
        # stop after stopping_step + 1 epochs without improvement
        ([0.5, 0.4, 0.4, 0.4, 0.9], 2, 30, 4, 0, True),
        ([0.5, 0.4, 0.9, 0.1], 0, 30, 2, 0, True),
        # keeps improving: runs every epoch
        ([0.1, 0.2, 0.3, 0.4], 1, 4, 4, 3, False),
    ],
)
def test_recbole_early_stopping_rule(
    monkeypatch, scores, stopping_step, epochs, epochs_run, best, stopped
) -> None:
    model, outcome, states = fit(
        scripted=scores, monkeypatch=monkeypatch, stopping_step=stopping_step, epochs=epochs
    )
    assert outcome.epochs_run == epochs_run
    assert outcome.best_epoch == best
    assert outcome.stopped_early == stopped
    assert [r["epoch"] for r in outcome.curve] == list(range(epochs_run))
    # the weights tested are the best epoch's, not the last epoch's
    for key, value in model.state_dict().items():
        assert torch.equal(value, states[best][key])
    if best != epochs_run - 1:
        assert any(not torch.equal(v, states[-1][k]) for k, v in model.state_dict().items())


def test_training_learns_and_is_bit_for_bit_repeatable() -> None:
    model_a, a, _ = fit(seed=1, epochs=5, stopping_step=10)
    model_b, b, _ = fit(seed=1, epochs=5, stopping_step=10)
    _, c, _ = fit(seed=2, epochs=5, stopping_step=10)
    assert [r["loss"] for r in a.curve] == [r["loss"] for r in b.curve]
    assert all(torch.equal(v, model_b.state_dict()[k]) for k, v in model_a.state_dict().items())
    assert (a.test.higher == b.test.higher).all()
    assert [r["loss"] for r in a.curve] != [r["loss"] for r in c.curve]
    assert a.curve[-1]["loss"] < a.curve[0]["loss"]


def test_non_finite_loss_fails_with_advice() -> None:
    with pytest.raises(train.NonFiniteLossError, match="lower the learning rate"):
        fit(lr=float("inf"))


def test_the_trainer_refuses_the_all_positions_objective_for_a_non_causal_variant() -> None:
    """The suite validator refuses it first; this is the trainer's own guard (e.g. for a model
    built by hand), raised before any training step."""
    from seqbench.models.registry import get_model

    ds = random_dataset(max_len=6)
    spec = get_model("echomamba4rec")
    params = spec.validate_params({"hidden_size": 8, "d_state": 2}, "test")
    model = spec.cls(params, n_items=ds.n_items, max_len=6, ablation="forward_only")
    with pytest.raises(train.ObjectiveError, match="all-positions objective would show it"):
        train.fit_and_evaluate(
            model, ds, settings(objective="all_positions"), seed=0, device=torch.device("cpu")
        )


def sampled_settings(epochs: int, **train_values) -> train.Settings:
    values = {"epochs": epochs, "batch_size": 16, "lr": 0.05, "stopping_step": 10, **train_values}
    return train.Settings(TrainSettings(**values), EvalSettings(metrics=["hr@10", "ndcg@10"]))


def fit_with(settings: train.Settings, model_class=LastItem, seed: int = 0):
    ds = random_dataset()
    torch.manual_seed(seed)  # the worker seeds the global generators: negatives come from them
    model = model_class(ds.n_items)
    outcome = train.fit_and_evaluate(model, ds, settings, seed=seed, device=torch.device("cpu"))
    return model, outcome


class CausalLastItem(LastItem):
    """LastItem with an output at every slot (slot j's own item): causal, so all positions
    may train it."""

    @property
    def allows_all_positions(self) -> bool:
        return True

    def forward_all(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.embedding(items)


@pytest.mark.parametrize("objective", ["last", "all_positions"])
def test_a_sampled_loss_trains_end_to_end_and_repeats(objective: str) -> None:
    settings = sampled_settings(2, loss="bpr", negatives=2, objective=objective)
    model, outcome = fit_with(settings, CausalLastItem)
    _, again = fit_with(settings, CausalLastItem)
    assert (model.loss_kind, model.loss_negatives) == ("bpr", 2)
    losses = [r["loss"] for r in outcome.curve]
    assert len(losses) == 2 and all(math.isfinite(x) and x > 0 for x in losses)
    assert losses == [r["loss"] for r in again.curve]  # same seed, same negatives
    assert "diagnostics" not in outcome.curve[0]  # LastItem has no diagnostics()
    # a CE run is another objective: other losses
    _, ce = fit_with(sampled_settings(2, objective=objective), CausalLastItem)
    assert [r["loss"] for r in ce.curve] != losses


def test_bce_learns() -> None:
    _, outcome = fit_with(sampled_settings(6, loss="bce", negatives=4))
    assert outcome.curve[-1]["loss"] < outcome.curve[0]["loss"]


class WithDiagnostics(LastItem):
    """LastItem reporting a learned scalar each epoch (as M2Rec does with its gates)."""

    def diagnostics(self) -> dict[str, float]:
        return {"norm": self.embedding.weight.norm(), "calls": 1.0}


def test_a_model_with_diagnostics_gets_them_in_every_epoch_record() -> None:
    events: list[dict] = []
    ds = random_dataset()
    torch.manual_seed(0)
    model = WithDiagnostics(ds.n_items)
    outcome = train.fit_and_evaluate(
        model, ds, sampled_settings(3), seed=0, device=torch.device("cpu"), on_event=events.append
    )
    assert len(outcome.curve) == 3
    norms = []
    for record in outcome.curve:
        assert set(record["diagnostics"]) == {"norm", "calls"}
        assert all(type(v) is float for v in record["diagnostics"].values())  # JSON-able
        norms.append(record["diagnostics"]["norm"])
    assert len(set(norms)) == 3  # measured after each epoch's training
    epochs = [e for e in events if e["event"] == "epoch"]
    assert [e["diagnostics"] for e in epochs] == [r["diagnostics"] for r in outcome.curve]
