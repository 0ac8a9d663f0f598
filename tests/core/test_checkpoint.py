"""Epoch checkpoints (seqbench.checkpoint): training interrupted after epoch k and resumed from the
checkpoint gives the numbers of the uninterrupted run, bit for bit; a checkpoint that is not to be
trusted is discarded and training starts from epoch 0."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from seqbench import train
from seqbench.checkpoint import EpochCheckpoint
from tests.core.fixtures import LastItem, random_dataset
from tests.core.test_train import settings


class DroppedLastItem(LastItem):
    """LastItem with dropout: its training draws from torch's global generator every batch, so
    a resume that did not restore that generator would train differently."""

    def forward(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.dropout(super().forward(items, lengths), 0.3, self.training)


class Interrupt(Exception):
    pass


def _fit(checkpoint: EpochCheckpoint | None, stop_after: int | None = None, init_seed: int = 0):
    dataset = random_dataset(n_users=60)
    torch.manual_seed(init_seed)
    model = DroppedLastItem(dataset.n_items)

    def on_event(event: dict) -> None:
        if event["event"] == "epoch" and event["epoch"] == stop_after:
            raise Interrupt

    outcome = train.fit_and_evaluate(
        model,
        dataset,
        settings(epochs=6, stopping_step=10, lr=0.05),
        seed=7,
        device=torch.device("cpu"),
        on_event=on_event,
        checkpoint=checkpoint,
    )
    return model, outcome


def _numbers(outcome: train.Outcome) -> tuple:
    curve = [{k: v for k, v in r.items() if "seconds" not in k} for r in outcome.curve]
    assert outcome.test is not None
    return curve, outcome.best_epoch, outcome.epochs_run, outcome.test.higher.tolist()


@pytest.mark.parametrize("stop_after", [0, 3])
def test_a_resumed_run_equals_the_uninterrupted_one(tmp_path: Path, stop_after: int) -> None:
    reference_model, reference = _fit(None)
    path = tmp_path / ".checkpoints" / "abc.pt"
    log_path = tmp_path / "cell.log"
    log_path.write_text("first try's line\n", encoding="utf-8")
    with pytest.raises(Interrupt):
        _fit(EpochCheckpoint(path, "abc", log_path=log_path), stop_after=stop_after)
    assert path.is_file()

    log_path.write_text("second try's line\n", encoding="utf-8")
    torch.manual_seed(12345)  # the generator state is the checkpoint's, not this one
    model, resumed = _fit(EpochCheckpoint(path, "abc", log_path=log_path), init_seed=99)
    assert resumed.resumed_from_epoch == stop_after
    assert reference.resumed_from_epoch is None
    assert _numbers(resumed) == _numbers(reference)
    assert len(resumed.curve) == 6 and resumed.train_seconds > 0
    # the interrupted try's epochs are carried into the total time, the others are this try's
    earlier = resumed.curve[: stop_after + 1]
    carried = sum(r["seconds"] + r["eval_seconds"] for r in earlier)
    assert resumed.carried_seconds == pytest.approx(carried) and carried > 0
    assert reference.carried_seconds == 0.0
    for name, value in reference_model.state_dict().items():
        assert torch.equal(model.state_dict()[name], value), name
    text = log_path.read_text(encoding="utf-8")
    marker = f"interrupted after epoch {stop_after}; resuming at epoch {stop_after + 1}"
    # in order: the first try's lines, where the second took over, the second try's lines
    assert text.index("first try's line") < text.index(marker) < text.index("second try's line")


def test_training_without_the_restored_generator_would_differ(tmp_path: Path) -> None:
    """The check above can fail: resuming weights and optimizer alone (generators not restored)
    changes the numbers."""
    _, reference = _fit(None)
    path = tmp_path / "abc.pt"
    with pytest.raises(Interrupt):
        _fit(EpochCheckpoint(path, "abc"), stop_after=2)
    state = torch.load(path, weights_only=True)
    state["rng"] = {"cpu": torch.manual_seed(5).get_state()}
    torch.save(state, path)
    _, resumed = _fit(EpochCheckpoint(path, "abc"))
    assert resumed.resumed_from_epoch == 2
    assert _numbers(resumed)[0][3:] != _numbers(reference)[0][3:]


@pytest.mark.parametrize("damage", ["other-cell", "other-torch", "garbage"])
def test_an_untrusted_checkpoint_is_discarded_and_training_starts_at_epoch_0(
    tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "abc.pt"
    with pytest.raises(Interrupt):
        _fit(EpochCheckpoint(path, "abc"), stop_after=2)
    assert EpochCheckpoint(path, "abc").saved_epoch() == 2  # what --dry-run reports
    if damage == "garbage":
        path.write_bytes(b"not a checkpoint")
    else:
        state = torch.load(path, weights_only=True)
        state["key"] = {**state["key"], "cell" if damage == "other-cell" else "torch": "x"}
        torch.save(state, path)
    assert EpochCheckpoint(path, "abc").saved_epoch() is None  # not resumable: not reported,
    assert path.exists()  # and only read
    _, reference = _fit(None)
    with caplog.at_level(logging.WARNING, logger="seqbench.checkpoint"):
        _, fresh = _fit(EpochCheckpoint(path, "abc"))
    assert fresh.resumed_from_epoch is None
    assert _numbers(fresh) == _numbers(reference)
    assert "training from epoch 0" in caplog.text


def test_an_unwritable_folder_costs_the_resume_not_the_cell(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("", encoding="utf-8")  # a file where the folder should be
    with caplog.at_level(logging.WARNING, logger="seqbench.checkpoint"):
        _, outcome = _fit(EpochCheckpoint(blocker / "sub" / "abc.pt", "abc"))
    assert outcome.epochs_run == 6
    assert caplog.text.count("cannot write checkpoint") == 1
