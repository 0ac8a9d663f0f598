"""Every Mamba-family variant computes its last layer at the readout slot only (``forward``), and
that must be the full computation (``forward_all``) read at slot length − 1: the same values,
the same dropout masks (so the same random numbers afterwards) and the same gradients; and one
epoch of training must give the ranks of the path before (every slot, the reference scan)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from seqbench import train
from seqbench.batches import DeviceSplit
from seqbench.cells import EvalSettings, TrainSettings
from seqbench.data.dataset import SequentialDataset
from seqbench.data.protocol import Protocol, process
from seqbench.data.synthetic import SyntheticConfig, generate
from seqbench.models.base import gather_last
from seqbench.models.layers.mamba import Mamba
from seqbench.models.layers.scan_reference import selective_scan_reference
from seqbench.models.mamba_family import MambaRecommender
from seqbench.models.registry import get_model
from tests.models.test_causality import IDS, VARIANTS, build
from tests.models.util import random_batch

N_ITEMS, MAX_LEN = 40, 10
MAMBA = [(v, i) for v, i in zip(VARIANTS, IDS, strict=True) if get_model(v[0]).kernels]
READINGS = {  # more layers: earlier layers (and EchoMamba4Rec's earlier pairs) run at every slot
    "mamba4rec": {"num_layers": 2},
    "echomamba4rec": {"num_layers": 2},
    "bimamba4rec": {"num_layers": 2},
    "m2rec": {"num_layers": 2},
}


def both_paths(
    name: str, ablation: str, reading: dict[str, Any], train: bool
) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
    model = build(name, ablation, reading).double().train(train)
    items, lengths, targets = random_batch(N_ITEMS, 12, MAX_LEN, seed=2)
    outs, grads = [], []
    for path in ("readout", "every slot"):
        torch.manual_seed(11)  # the same dropout draws, if the masks are drawn alike
        if path == "readout":
            user = model(items, lengths)
        else:
            user = gather_last(model.forward_all(items, lengths), lengths)
        after = torch.rand(3)  # the random stream after the forward pass
        outs.append(torch.cat([user.flatten(), after.double()]))
        loss = torch.nn.functional.cross_entropy(model.score(user), targets)
        params = [p for p in model.parameters() if p.requires_grad]
        grads.append(list(torch.autograd.grad(loss, params, allow_unused=True)))
    return outs[0], outs[1], grads[0], grads[1]


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize(("variant"), [v for v, _ in MAMBA], ids=[i for _, i in MAMBA])
def test_readout_is_the_full_computation_at_the_last_slot(
    variant: tuple[str, str, dict[str, Any]], train: bool
) -> None:
    name, ablation, reading = variant
    readout, full, grads, full_grads = both_paths(name, ablation, reading, train)
    torch.testing.assert_close(readout, full, rtol=1e-10, atol=1e-12)
    for mine, theirs in zip(grads, full_grads, strict=True):
        assert (mine is None) == (theirs is None)
        if mine is not None:
            torch.testing.assert_close(mine, theirs, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", sorted(READINGS))
def test_stacked_layers_read_out_the_last_one_only(name: str) -> None:
    reading = {**READINGS[name], **({"text_encoder": "hashing:16"} if name == "m2rec" else {})}
    readout, full, grads, full_grads = both_paths(name, "full", reading, True)
    torch.testing.assert_close(readout, full, rtol=1e-10, atol=1e-12)
    for mine, theirs in zip(grads, full_grads, strict=True):
        if mine is not None:
            torch.testing.assert_close(mine, theirs, rtol=1e-9, atol=1e-12)


# -- the path before the readout existed, rebuilt: one epoch on both, the same ranks ----------


def old_block_forward(self: Mamba, hidden: torch.Tensor) -> torch.Tensor:
    """The Mamba block as it computed before the readout and the fast scans: oneDNN's
    convolution, softplus outside the scan, the step-by-step reference scan, every slot."""
    x, z = self.in_proj(hidden).chunk(2, dim=-1)
    conv = F.conv1d(
        x.transpose(1, 2), self.conv1d.weight, self.conv1d.bias,
        padding=self.d_conv - 1, groups=self.d_inner,
    )[..., : x.shape[1]].transpose(1, 2)  # fmt: skip
    if self.filters.pre_activation is not None:
        conv = self.filters.pre_activation(conv)
    x = F.silu(conv)
    dt, B, C = self.project(x)
    delta = F.softplus(self.delta_pre_bias(dt) + self.dt_proj.bias)
    return self.gate(selective_scan_reference(x, delta, self.A(), B, C, self.D), z)


def old_forward(self: MambaRecommender, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    return gather_last(self.forward_all(items, lengths), lengths)


def first_loss_and_ranks_after_one_epoch(
    name: str, dataset: SequentialDataset
) -> tuple[float, np.ndarray]:
    spec = get_model(name)
    torch.manual_seed(2020)
    model = spec.cls(
        spec.validate_params({"hidden_size": 16, "d_state": 4}, name),
        n_items=dataset.n_items,
        max_len=dataset.protocol.max_len,
    )
    split = DeviceSplit(dataset, "train", dataset.protocol.max_len, torch.device("cpu"))
    batch = next(iter(split.batches(256, torch.Generator().manual_seed(1))))
    torch.manual_seed(3)
    first = model.train().loss(batch.items, batch.lengths, batch.targets).item()
    settings = train.Settings(
        TrainSettings(epochs=1, batch_size=256, lr=5e-3), EvalSettings(metrics=["ndcg@10"])
    )
    outcome = train.fit_and_evaluate(
        model, dataset, settings, seed=2020, device=torch.device("cpu")
    )
    assert outcome.test is not None
    return first, np.stack([outcome.test.higher, outcome.test.tied])


@pytest.mark.parametrize("name", ["mamba4rec", "echomamba4rec"])
def test_one_epoch_gives_the_old_paths_loss_and_ranks(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same seed and weights through the old path (every slot, reference scan) and the new
    one: the first batch's loss within 1e-5 and, after one epoch, the same test rank for at
    least 99.9 % of users (here: all of them, 150 users)."""
    protocol = Protocol(k_core=5, max_len=20)
    raw = generate(SyntheticConfig(n_users=150, n_items=100, text=False))
    dataset = SequentialDataset("synthetic", process(raw, protocol), protocol)
    new_loss, new_ranks = first_loss_and_ranks_after_one_epoch(name, dataset)
    monkeypatch.setattr(Mamba, "forward", old_block_forward)
    monkeypatch.setattr(MambaRecommender, "forward", old_forward)
    old_loss, old_ranks = first_loss_and_ranks_after_one_epoch(name, dataset)
    assert abs(new_loss - old_loss) <= 1e-5 * max(1.0, abs(old_loss))
    same = (new_ranks == old_ranks).all(0).mean()
    assert same >= 0.999, f"{same:.4f} of the users keep their test rank"
