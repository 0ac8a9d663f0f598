"""Every Mamba-family variant computes its last layer at the readout slot only (``forward``), and
that must be the full computation (``forward_all``) read at slot length − 1: the same values,
the same dropout masks (so the same random numbers afterwards) and the same gradients."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from seqbench.models.base import gather_last
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
