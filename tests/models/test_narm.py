"""NARM: RecBole's parameters and initialisation, the attention written out by hand, padding
semantics, non-causality, and learning.

benchmarks/recbole_baseline_parity.py compares it with RecBole's own class (weights, outputs,
loss, gradients, Adam steps: all equal).
"""

from __future__ import annotations

import math

import pytest
import torch

from seqbench.errors import ConfigError
from seqbench.models.narm import NARM, NARMParams
from seqbench.models.registry import get_model
from tests.models.util import build, later_items_effect, random_batch

NO_DROPOUT = {"dropout_probs": [0.0, 0.0]}


def test_parameter_names_shapes_and_count_at_the_defaults() -> None:
    model = NARM(NARMParams(), n_items=100, max_len=50)
    shapes = {n: tuple(p.shape) for n, p in model.named_parameters()}
    assert shapes == {
        "item_embedding.weight": (101, 64),
        "gru.weight_ih_l0": (3 * 128, 64),  # no biases (bias=False, as RecBole)
        "gru.weight_hh_l0": (3 * 128, 128),
        "a_1.weight": (128, 128),  # every Linear is bias-free
        "a_2.weight": (128, 128),
        "v_t.weight": (1, 128),
        "b.weight": (64, 256),
    }
    # 101·64 + 384·64 + 384·128 + 2·128·128 + 128 + 64·256
    total = 6464 + 24576 + 49152 + 2 * 16384 + 128 + 16384
    assert sum(p.numel() for p in model.parameters()) == total == 129472


def test_defaults_are_recboles_and_dropout_probs_is_a_pair() -> None:
    spec = get_model("narm")
    assert spec.params().model_dump() == {  # recbole/properties/model/NARM.yaml, v1.2.0
        "embedding_size": 64, "hidden_size": 128, "n_layers": 1, "dropout_probs": [0.25, 0.5],
    }  # fmt: skip
    assert all(f.description for f in spec.params.model_fields.values())
    assert spec.reference.startswith("RecBole v1.2.0")
    for bad in ([0.1], [0.1, 0.2, 0.3], [0.1, 1.0]):
        with pytest.raises(ConfigError, match="dropout_probs"):
            spec.validate_params({"dropout_probs": bad}, "narm")
    model = build("narm", dropout_probs=[0.1, 0.3])
    assert (model.emb_dropout.p, model.ct_dropout.p) == (0.1, 0.3)


def test_recbole_initialisation() -> None:
    """xavier-normal embedding (padding row included) and Linear weights; the GRU keeps
    PyTorch's default U(±1/√hidden)."""
    model = build("narm", n_items=5000, n_layers=2)
    table = model.item_embedding.weight.detach()
    assert table.std().item() == pytest.approx(math.sqrt(2 / (64 + 5001)), rel=0.02)
    assert table[0].abs().sum() > 0
    for layer, (fan_out, fan_in) in (
        (model.a_1, (128, 128)), (model.a_2, (128, 128)), (model.b, (64, 256))
    ):  # fmt: skip
        assert layer.weight.std().item() == pytest.approx(
            math.sqrt(2 / (fan_in + fan_out)), rel=0.03
        )
    assert model.v_t.weight.std().item() == pytest.approx(math.sqrt(2 / 129), rel=0.2)
    bound = 1 / math.sqrt(128)
    for name, weight in model.gru.named_parameters():
        assert weight.abs().max().item() == pytest.approx(bound, rel=0.01), name


def naive_narm(model: NARM, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Per sample in float64: the GRU recurrence (PyTorch's gate equations, no biases) over ALL
    L slots; c_global = h at length − 1; α_j = Σ_k v_k · m_j · σ(A₁h_j + A₂c_global)_k with
    m_j = 1 if slot j holds an item (id > 0) else 0; c_local = Σ_j α_j h_j;
    output b·[c_local; c_global]."""
    p = {n: t.detach().double() for n, t in model.named_parameters()}
    hidden = model.params.hidden_size
    out = []
    for row, length in zip(items.tolist(), lengths.tolist(), strict=True):
        states = [torch.zeros(hidden, dtype=torch.float64) for _ in range(model.params.n_layers)]
        top = []
        for item in row:
            x = p["item_embedding.weight"][item]
            for layer in range(model.params.n_layers):
                gi = p[f"gru.weight_ih_l{layer}"] @ x
                gh = p[f"gru.weight_hh_l{layer}"] @ states[layer]
                r = torch.sigmoid(gi[:hidden] + gh[:hidden])
                z = torch.sigmoid(gi[hidden : 2 * hidden] + gh[hidden : 2 * hidden])
                n = torch.tanh(gi[2 * hidden :] + r * gh[2 * hidden :])
                states[layer] = (1 - z) * n + z * states[layer]
                x = states[layer]
            top.append(x)
        c_global = top[length - 1]
        c_local = torch.zeros(hidden, dtype=torch.float64)
        for j, (item, h) in enumerate(zip(row, top, strict=True)):
            m = 1.0 if item > 0 else 0.0
            gate = torch.sigmoid(p["a_1.weight"] @ h + p["a_2.weight"] @ c_global)
            alpha = sum(p["v_t.weight"][0, k] * m * gate[k] for k in range(hidden))
            c_local = c_local + alpha * top[j]
        out.append(p["b.weight"] @ torch.cat([c_local, c_global]))
    return torch.stack(out)


@pytest.mark.parametrize("n_layers", [1, 2])
def test_output_equals_the_attention_written_out_by_hand(n_layers: int) -> None:
    model = build("narm", n_items=30, max_len=7, n_layers=n_layers, hidden_size=8).double().eval()
    items, lengths, _ = random_batch(30, 6, 7, seed=1)
    items[0, lengths[0] :] = 0  # (already) padding after the history
    with torch.no_grad():
        got = model(items, lengths)
    torch.testing.assert_close(got, naive_narm(model, items, lengths), rtol=0, atol=1e-12)


def test_junk_after_length_is_attended_but_the_padding_row_never_reaches_the_readout() -> None:
    """RecBole's attention mask is ``item > 0`` over every slot, not ``slot < length``: item ids
    after slot length − 1 change the output (RecBole's NARM does the same:
    recbole_baseline_parity.json, padding_semantics_recbole). Padding slots get α = 0 and the
    GRU is causal, so the padding row's embedding cannot move the output at all."""
    model = build("narm", n_items=40, max_len=12).eval()
    items, lengths, _ = random_batch(40, 32, 12, seed=2, min_length=2)
    lengths[0], items[0] = 12, torch.arange(1, 13)  # a full row: no slot for junk
    padded = torch.arange(12)[None, :] >= lengths[:, None]
    with torch.no_grad():
        clean = model(items, lengths)
        model.item_embedding.weight[0] = torch.randn(64)
        torch.testing.assert_close(model(items, lengths), clean, rtol=0, atol=0)
        junk = torch.where(padded, torch.randint(1, 41, items.shape), items)
        moved = (model(junk, lengths) - clean).abs().amax(-1)
    assert torch.all(moved[lengths < 12] > 1e-5) and moved[0] == 0


def test_padding_row_random_frozen_on_input_trained_on_output() -> None:
    model = build("narm", n_items=40, max_len=12, **NO_DROPOUT)
    items, lengths, targets = random_batch(40, 16, 12, seed=3)
    assert (items == 0).any() and model.item_embedding.weight[0].abs().sum() > 0
    model(items, lengths).sum().backward()  # input side only
    assert torch.all(model.item_embedding.weight.grad[0] == 0)
    model.zero_grad()
    model.loss(items, lengths, targets).backward()  # CE over the whole table, row 0 included
    assert model.item_embedding.weight.grad[0].abs().sum() > 0


@pytest.mark.parametrize("t", [0, 4, 10])
def test_non_causal_later_items_change_the_output_at_slot_t(t: int) -> None:
    assert torch.all(later_items_effect("narm", t, seed=4) > 1e-5)
