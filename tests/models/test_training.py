"""Every Mamba-family variant learns the synthetic data: test NDCG@10 a pinned factor above
popularity, through the real trainer (fixed data, seed, epochs; thresholds well under the
measured values, which the comments give, so that the test is not flaky)."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from seqbench import metrics, train
from seqbench.cells import EvalSettings, TrainSettings
from seqbench.data.dataset import SequentialDataset
from seqbench.data.load import DatasetSpec, load_dataset
from seqbench.data.protocol import Protocol, process
from seqbench.data.synthetic import SyntheticConfig, generate
from seqbench.models.item_text import ItemText
from seqbench.models.registry import get_model
from seqbench.text.embeddings import embed_item_texts
from seqbench.text.encoders import HashingEncoder
from tests.models.util import build

SEED = 2020


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> SequentialDataset:
    cache = tmp_path_factory.mktemp("cache")
    spec = DatasetSpec(name="synthetic", options={"n_users": 200})
    return load_dataset(spec, Protocol(k_core=5, max_len=20), cache_dir=cache)


def trained_ndcg(dataset: SequentialDataset, name: str, ablation: str = "full",
              objective: str = "last", **params: Any) -> float:  # fmt: skip
    spec = get_model(name)
    torch.manual_seed(SEED)
    if name != "pop":  # small blocks: the test is about learning, not capacity
        params = {"hidden_size": 32, "d_state": 8, **params}
    values = spec.validate_params(params, name)
    extra = {"item_text": hashed_item_text(dataset)} if spec.needs_text(values, ablation) else {}
    model = spec.cls(values, n_items=dataset.n_items, max_len=20, ablation=ablation, **extra)
    settings = train.Settings(
        TrainSettings(epochs=3, batch_size=256, lr=5e-3, stopping_step=3, objective=objective),  # type: ignore[arg-type]
        EvalSettings(metrics=["ndcg@10"]),
    )
    outcome = train.fit_and_evaluate(
        model, dataset, settings, seed=SEED, device=torch.device("cpu")
    )
    assert outcome.test is not None
    return train.metric_values(outcome.test, settings)["ndcg@10"]


def hashed_item_text(dataset: SequentialDataset) -> ItemText:
    """The generator's item text ("<name>: a <adjective> <genre> <noun>", the genre shared within
    a cluster) through the dependency-free hashing encoder."""
    assert dataset.data.item_text is not None
    embedded = embed_item_texts(dataset.data.item_text, "hashing:64", encoder=HashingEncoder(64))
    return ItemText.from_arrays(embedded.vectors, embedded.has_text)


@pytest.fixture(scope="module")
def pop(synthetic: SequentialDataset) -> float:
    return trained_ndcg(synthetic, "pop")


#: (model, ablation, objective, params, factor over Pop). Measured (2-core CPU, torch 2.13):
#: Pop 0.0944; Mamba4Rec 0.283 (3.0×), all positions 0.212 (2.2×); EchoMamba4Rec 0.267 (2.8×);
#: Bi-Mamba4Rec 0.277 (2.9×); Bi-Mambaformer4Rec 0.253 (2.7×); M2Rec (hashed item text) 0.280
#: (3.0×), without its filter 0.265 (2.8×), without text 0.294 (3.1×); with the RecBole-normal
#: fusion init instead of the identity 0.170 and 0.161 (1.7–1.8×); m2rec_code 0.283 (3.0×, the
#: same NDCG@10 as Mamba4Rec to 4 decimals: under RecBole's init the pre-bias Δ it filters is ≈ 0).
#: Every ablation of every model also trains through `seqbench run` in tests/cli.
CASES = [
    ("mamba4rec", "full", "last", {}, 2.5),
    ("mamba4rec", "full", "all_positions", {}, 2.0),
    ("echomamba4rec", "full", "last", {}, 2.5),
    ("bimamba4rec", "full", "last", {}, 2.5),
    ("bimambaformer4rec", "full", "last", {}, 2.0),
    ("m2rec", "full", "last", {"text_encoder": "hashing:64"}, 2.5),
    ("m2rec", "no_affm", "last", {"text_encoder": "hashing:64"}, 2.5),
    ("m2rec_code", "full", "last", {}, 2.5),
]


@pytest.mark.parametrize(("name", "ablation", "objective", "params", "factor"), CASES)
def test_beats_popularity(
    synthetic: SequentialDataset, pop: float, name: str, ablation: str, objective: str,
    params: dict[str, Any], factor: float,
) -> None:  # fmt: skip
    ndcg = trained_ndcg(synthetic, name, ablation, objective, **params)
    print(f"{name}+{ablation} {objective} {params}: ndcg@10 {ndcg:.4f}, pop {pop:.4f}")
    assert ndcg >= factor * pop


def small_synthetic() -> SequentialDataset:
    """300 users, 150 items, max_len 10: the baselines' own training check."""
    protocol = Protocol(k_core=5, max_len=10)
    raw = generate(SyntheticConfig(n_users=300, n_items=150, text=False))
    return SequentialDataset("synthetic", process(raw, protocol), protocol)


#: (model, params, train settings, factor over Pop). Measured (2 CPU threads, torch 2.13), Pop
#: 0.129: BERT4Rec (one layer for speed; its cloze objective learns slowly, and at lr 5e-3 some
#: seeds stall near popularity, so lr 2e-3 in batches of 64) 0.354 (2.7×), seeds 1–3 gave
#: 0.362, 0.344, 0.320; NARM (RecBole's default sizes) 0.506 (3.9×), seeds 1 and 2 gave 0.511
#: and 0.525; FMLP-Rec (official sizes) 0.490 (3.8×), seeds 1 and 2 gave 0.507 and 0.480.
BASELINES = [
    ("bert4rec", {"n_layers": 1}, {"epochs": 6, "batch_size": 64, "lr": 2e-3, "stopping_step": 6},
     2.0),
    ("narm", {}, {"epochs": 5, "batch_size": 128, "lr": 5e-3, "stopping_step": 5}, 3.0),
    ("fmlprec", {}, {"epochs": 5, "batch_size": 128, "lr": 5e-3, "stopping_step": 5}, 3.0),
]  # fmt: skip


@pytest.mark.parametrize(("name", "params", "train_settings", "factor"), BASELINES)
def test_baselines_beat_popularity(
    name: str, params: dict[str, Any], train_settings: dict[str, Any], factor: float
) -> None:
    """Through the real trainer, seed 0."""
    dataset = small_synthetic()
    settings = train.Settings(TrainSettings(**train_settings), EvalSettings(metrics=["ndcg@10"]))

    def ndcg(model_name: str, **values: Any) -> float:
        model = build(model_name, n_items=dataset.n_items, max_len=10, **values)
        out = train.fit_and_evaluate(model, dataset, settings, seed=0, device=torch.device("cpu"))
        assert out.test is not None
        return metrics.mean("ndcg@10", out.test.higher, out.test.tied, "pessimistic")

    pop, ours = ndcg("pop"), ndcg(name, **params)
    assert ours >= factor * pop, (ours, pop)
