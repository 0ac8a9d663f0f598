"""GRU4Rec: RecBole's parameters and initialisation, and the recurrence written out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from seqbench.models.gru4rec import GRU4Rec, GRU4RecParams
from tests.models.util import build, random_batch


def test_parameter_names_shapes_and_count_at_the_defaults() -> None:
    model = GRU4Rec(GRU4RecParams(), n_items=100, max_len=50)
    shapes = {n: tuple(p.shape) for n, p in model.named_parameters()}
    assert shapes == {
        "item_embedding.weight": (101, 64),
        "gru_layers.weight_ih_l0": (3 * 128, 64),  # no biases (bias=False, as RecBole)
        "gru_layers.weight_hh_l0": (3 * 128, 128),
        "dense.weight": (64, 128),
        "dense.bias": (64,),
    }
    # 101·64 + 384·64 + 384·128 + 128·64 + 64
    assert sum(p.numel() for p in model.parameters()) == 6464 + 24576 + 49152 + 8256 == 88448


def test_two_layers_add_a_second_gru_layer() -> None:
    model = GRU4Rec(GRU4RecParams(num_layers=2), n_items=10, max_len=5)
    shapes = {n: tuple(p.shape) for n, p in model.named_parameters() if "l1" in n}
    assert shapes == {"gru_layers.weight_ih_l1": (384, 128), "gru_layers.weight_hh_l1": (384, 128)}


def test_recbole_initialisation() -> None:
    """xavier-normal embedding (padding row included), xavier-uniform on layer 0 of the GRU only,
    PyTorch's defaults elsewhere (layer 1 of the GRU, the dense layer and its bias)."""
    model = build("gru4rec", n_items=5000, num_layers=2)
    table = model.item_embedding.weight.detach()
    assert table.std().item() == pytest.approx(math.sqrt(2 / (64 + 5001)), rel=0.02)
    assert table[0].abs().sum() > 0
    gru = model.gru_layers
    for weight, fan_in in ((gru.weight_ih_l0, 64), (gru.weight_hh_l0, 128)):
        bound = math.sqrt(6 / (fan_in + 384))  # xavier-uniform
        assert weight.abs().max().item() == pytest.approx(bound, rel=0.01)
    default = 1 / math.sqrt(128)  # nn.GRU's own U(±1/√hidden), which RecBole leaves on layer 1
    for weight in (gru.weight_ih_l1, gru.weight_hh_l1):
        assert weight.abs().max().item() == pytest.approx(default, rel=0.01)
    assert model.dense.weight.abs().max().item() <= 1 / math.sqrt(128)
    assert model.dense.bias.abs().sum() > 0  # default init, not zeroed


def naive_gru4rec(model: GRU4Rec, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Per sample, per step, per layer in float64: r, z, n gates without biases (PyTorch's
    order and equations), h ← (1 − z)·n + z·h from h = 0; dense on the state at length − 1."""
    p = {n: t.detach().double() for n, t in model.named_parameters()}
    hidden = model.params.hidden_size
    out = []
    for row, length in zip(items.tolist(), lengths.tolist(), strict=True):
        states = [torch.zeros(hidden, dtype=torch.float64) for _ in range(model.params.num_layers)]
        for item in row[:length]:
            x = p["item_embedding.weight"][item]
            for layer in range(model.params.num_layers):
                gi = p[f"gru_layers.weight_ih_l{layer}"] @ x
                gh = p[f"gru_layers.weight_hh_l{layer}"] @ states[layer]
                r = torch.sigmoid(gi[:hidden] + gh[:hidden])
                z = torch.sigmoid(gi[hidden : 2 * hidden] + gh[hidden : 2 * hidden])
                n = torch.tanh(gi[2 * hidden :] + r * gh[2 * hidden :])
                states[layer] = (1 - z) * n + z * states[layer]
                x = states[layer]
        out.append(p["dense.weight"] @ states[-1] + p["dense.bias"])
    return torch.stack(out)


@pytest.mark.parametrize("num_layers", [1, 2])
def test_output_equals_the_recurrence_written_by_hand(num_layers: int) -> None:
    model = build("gru4rec", n_items=30, max_len=9, num_layers=num_layers, hidden_size=16)
    model = model.double().eval()
    items, lengths, _ = random_batch(30, 12, 9, seed=7)
    with torch.no_grad():
        got = model(items, lengths)
    torch.testing.assert_close(got, naive_gru4rec(model, items, lengths), rtol=0, atol=1e-12)
