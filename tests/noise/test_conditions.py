"""Evaluation conditions on trained models: the zero level gives the clean ranks bit for bit,
every model sees the same corrupted inputs, embedding noise hits only real slots at its scale
and does not depend on the batching, and training noise trains on the corrupted inputs."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from seqbench.batches import DeviceSplit
from seqbench.cells import EvalSettings, TrainSettings
from seqbench.data.noise.apply import corrupt_split
from seqbench.data.noise.spec import NoiseSpec
from seqbench.evaluate import rank_split
from seqbench.models.registry import get_model
from seqbench.robustness.conditions import entries, score_condition
from seqbench.robustness.embedding import BLOCK, EmbeddingNoise, embedding_noise
from seqbench.robustness.split import noisy_split
from seqbench.train import Settings, fit_and_evaluate
from tests.core.fixtures import random_dataset

CPU = torch.device("cpu")
SETTINGS = Settings(TrainSettings(), EvalSettings(metrics=["hr@10", "ndcg@10"]))
MODELS: dict[str, dict[str, Any]] = {
    "sasrec": {"hidden_size": 16, "n_layers": 1, "n_heads": 1, "inner_size": 32},
    "gru4rec": {"embedding_size": 16, "hidden_size": 16},
    "fmlprec": {"hidden_size": 16, "num_hidden_layers": 1},
}


def build(name: str, n_items: int, max_len: int, seed: int = 0) -> Any:
    spec = get_model(name)
    torch.manual_seed(seed)
    return spec.cls(spec.params.model_validate(MODELS[name]), n_items=n_items, max_len=max_len)


@pytest.fixture(scope="module")
def dataset() -> Any:
    return random_dataset(n_users=120, n_items=40, max_len=8, seed=4)


ZERO = [
    NoiseSpec(kind="replace", ratio=0.0, where="end"),
    NoiseSpec(kind="insert", ratio=0.0),
    NoiseSpec(kind="delete", ratio=0.0, where="beginning"),
    NoiseSpec(kind="shuffle", ratio=0.0, window=2),
    NoiseSpec(kind="truncate", keep=8),
    NoiseSpec(kind="embedding", std=0.0),
]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_the_zero_level_gives_exactly_the_clean_ranks(dataset: Any, name: str) -> None:
    model = build(name, dataset.n_items, 8)
    clean = rank_split(model, DeviceSplit(dataset, "test", 8, CPU), dataset.n_items)
    for spec in ZERO:
        got = score_condition(model, dataset, spec, seed=3, settings=SETTINGS, device=CPU)
        assert np.array_equal(got.counts.higher, clean.higher), spec.label
        assert np.array_equal(got.counts.tied, clean.tied), spec.label
    noisy = score_condition(model, dataset, NoiseSpec(kind="replace", ratio=0.5, where="end"),
                            seed=3, settings=SETTINGS, device=CPU)  # fmt: skip
    assert not np.array_equal(noisy.counts.higher, clean.higher)


class Recorder(torch.nn.Module):
    """Wraps a model and keeps every input batch it is given."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model
        self.seen: list[np.ndarray] = []

    def forward(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        real = torch.arange(items.shape[1])[None, :] < lengths[:, None]
        self.seen.append(torch.where(real, items, -1).numpy().copy())
        return self.model(items, lengths)

    def score(self, user: torch.Tensor, start: int = 0, end: int | None = None) -> torch.Tensor:
        return self.model.score(user, start, end)


@pytest.mark.parametrize(
    "spec",
    [
        NoiseSpec(kind="replace", ratio=0.3, where="end", sample="popularity"),
        NoiseSpec(kind="insert", ratio=0.4),
        NoiseSpec(kind="delete", ratio=0.3, where="beginning"),
    ],
    ids=lambda s: s.label,
)
def test_every_model_sees_the_same_corrupted_inputs(dataset: Any, spec: NoiseSpec) -> None:
    seen = {}
    for name, batch_size in (("sasrec", 4096), ("gru4rec", 7), ("fmlprec", 50)):
        recorder = Recorder(build(name, dataset.n_items, 8))
        settings = Settings(SETTINGS.train, SETTINGS.eval, eval_batch_size=batch_size)
        score_condition(recorder, dataset, spec, seed=11, settings=settings, device=CPU)
        seen[name] = np.concatenate(recorder.seen)
    assert np.array_equal(seen["sasrec"], seen["gru4rec"])
    assert np.array_equal(seen["sasrec"], seen["fmlprec"])
    inputs, lengths = corrupt_split(dataset, "test", spec, 11)  # what they all saw
    real = np.arange(8)[None, :] < lengths[:, None]
    assert np.array_equal(seen["sasrec"], np.where(real, inputs, -1))
    clean = dataset.inputs("test")[0]
    assert not np.array_equal(inputs, clean)


def test_condition_entries_and_rank_arrays(dataset: Any) -> None:
    model = build("sasrec", dataset.n_items, 8)
    spec = NoiseSpec(kind="truncate", keep=2)
    result = score_condition(model, dataset, spec, seed=1, settings=SETTINGS, device=CPU)
    found, arrays = entries([result], SETTINGS)
    entry = found["truncate-2"]
    assert entry["condition"] == {"kind": "truncate", "keep": 2, "name": "truncate-2",
                                  "split": "test", "seed": 1}  # fmt: skip
    assert entry["ranks"] == {"test": "test_rank@truncate-2", "test_tied": "test_tied@truncate-2"}
    assert set(entry["metrics"]["test"]) == {"hr@10", "ndcg@10"}
    ranks = arrays["test_rank@truncate-2"]
    assert ranks.shape == (len(dataset.split("test")),)
    hits = float(np.mean(ranks <= 10))
    assert entry["metrics"]["test"]["hr@10"] == pytest.approx(hits)


# ------------------------------------------------------------------ embedding noise


def test_embedding_noise_hits_real_slots_only_at_its_relative_scale(dataset: Any) -> None:
    model = build("sasrec", dataset.n_items, 8)
    module = model.input_item_embedding()
    assert module is model.item_embedding
    split = noisy_split(dataset, "test", None, 0, CPU)
    spec = NoiseSpec(kind="embedding", std=0.5)
    batch = split.batch(torch.arange(len(split)))
    clean = module(batch.items)
    with embedding_noise(model, split, spec, 3, "test") as noise:
        assert noise is not None
        split.batch(torch.arange(len(split)))  # announces the rows
        noisy = module(batch.items)
    delta = (noisy - clean).detach()
    real = batch.items != 0
    assert (delta[~real] == 0).all() and (delta[real] != 0).all()
    rms = float(module.weight.detach()[1:].pow(2).mean().sqrt())
    assert float(delta[real].std()) == pytest.approx(0.5 * rms, rel=0.05)
    assert module(batch.items).equal(clean)  # the hook is gone afterwards
    assert build("gru4rec", 5, 4).input_item_embedding() is not None
    assert build("fmlprec", 5, 4).input_item_embedding() is not None


def test_embedding_draws_do_not_depend_on_the_batching() -> None:
    spec = NoiseSpec(kind="embedding", std=1.0)
    table = torch.randn(11, 4)
    one = EmbeddingNoise(spec, 5, "test", table, 10)
    one.set_rows(torch.arange(2 * BLOCK + 5))
    whole = one.draws(6, 4)
    other = EmbeddingNoise(spec, 5, "test", table, 10)
    parts = []
    for start in range(0, 2 * BLOCK + 5, 37):
        other.set_rows(torch.arange(start, min(start + 37, 2 * BLOCK + 5)))
        parts.append(other.draws(6, 4))
    assert torch.equal(torch.cat(parts), whole)
    shuffled = torch.randperm(2 * BLOCK + 5)
    other.set_rows(shuffled)
    assert torch.equal(other.draws(6, 4), whole[shuffled])
    third = EmbeddingNoise(spec, 6, "test", table, 10)  # another seed: other draws
    third.set_rows(torch.arange(3))
    assert not torch.equal(third.draws(6, 4), whole[:3])


def test_pop_has_no_input_embedding_and_is_unaffected(dataset: Any) -> None:
    spec = get_model("pop")
    pop = spec.cls(spec.params(), n_items=dataset.n_items, max_len=8)
    pop.fit_statistics(dataset)
    assert pop.input_item_embedding() is None
    clean = rank_split(pop, DeviceSplit(dataset, "test", 8, CPU), dataset.n_items)
    noisy = score_condition(pop, dataset, NoiseSpec(kind="embedding", std=1.0), seed=1,
                            settings=SETTINGS, device=CPU)  # fmt: skip
    assert np.array_equal(noisy.counts.higher, clean.higher)


# ------------------------------------------------------------------ training noise


def test_training_noise_trains_on_the_corrupted_inputs(dataset: Any) -> None:
    spec = NoiseSpec(kind="truncate", keep=1)
    train = TrainSettings(epochs=1, batch_size=64, noise=spec)
    recorder = Recorder(build("gru4rec", dataset.n_items, 8))
    recorder.set_loss = lambda *a: None  # type: ignore[method-assign]
    recorder.loss = lambda items, lengths, targets: (  # type: ignore[method-assign]
        recorder(items, lengths).sum() * 0.0 + recorder.model.loss(items, lengths, targets)
    )
    recorder.trainable = True  # type: ignore[attr-defined]
    recorder.allows_all_positions = False  # type: ignore[attr-defined]
    fit_and_evaluate(recorder, dataset, Settings(train, SETTINGS.eval), seed=1, device=CPU)
    n_train = len(dataset.split("train"))
    trained = np.concatenate(recorder.seen[: -(-n_train // 64)])
    assert trained.shape[0] == n_train
    assert (trained[:, 1:] == -1).all()  # every training input is one item long
    evaluated = np.concatenate(recorder.seen[-(-n_train // 64) :])
    assert (evaluated[:, 1:] != -1).any()  # valid and test inputs stay clean
