"""Every Mamba-family variant learns the synthetic data: test NDCG@10 a pinned factor above
popularity, through the real trainer (fixed data, seed, epochs; thresholds well under the
measured values, which the comments give, so that the test is not flaky)."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from seqbench import train
from seqbench.cells import EvalSettings, TrainSettings
from seqbench.data.dataset import SequentialDataset
from seqbench.data.load import DatasetSpec, load_dataset
from seqbench.data.protocol import Protocol
from seqbench.models.registry import get_model

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
    model = spec.cls(
        spec.validate_params(params, name), n_items=dataset.n_items, max_len=20, ablation=ablation
    )
    settings = train.Settings(
        TrainSettings(epochs=3, batch_size=256, lr=5e-3, stopping_step=3, objective=objective),  # type: ignore[arg-type]
        EvalSettings(metrics=["ndcg@10"]),
    )
    outcome = train.fit_and_evaluate(
        model, dataset, settings, seed=SEED, device=torch.device("cpu")
    )
    assert outcome.test is not None
    return train.metric_values(outcome.test, settings)["ndcg@10"]


@pytest.fixture(scope="module")
def pop(synthetic: SequentialDataset) -> float:
    return trained_ndcg(synthetic, "pop")


#: (model, ablation, objective, params, factor over Pop). Measured (2-core CPU, torch 2.13):
#: Pop 0.0944; Mamba4Rec 0.283 (3.0×), all positions 0.212 (2.2×); EchoMamba4Rec 0.267 (2.8×);
#: Bi-Mamba4Rec 0.277 (2.9×); Bi-Mambaformer4Rec 0.253 (2.7×).
#: Every ablation of every model also trains through `seqbench run` in tests/cli.
CASES = [
    ("mamba4rec", "full", "last", {}, 2.5),
    ("mamba4rec", "full", "all_positions", {}, 2.0),
    ("echomamba4rec", "full", "last", {}, 2.5),
    ("bimamba4rec", "full", "last", {}, 2.5),
    ("bimambaformer4rec", "full", "last", {}, 2.0),
]


@pytest.mark.parametrize(("name", "ablation", "objective", "params", "factor"), CASES)
def test_beats_popularity(
    synthetic: SequentialDataset, pop: float, name: str, ablation: str, objective: str,
    params: dict[str, Any], factor: float,
) -> None:  # fmt: skip
    ndcg = trained_ndcg(synthetic, name, ablation, objective, **params)
    print(f"{name}+{ablation} {objective} {params}: ndcg@10 {ndcg:.4f}, pop {pop:.4f}")
    assert ndcg >= factor * pop
