"""FMLP-Rec: the official parameters and initialisation, the encoder written out by hand, its
TF-style LayerNorm, padding semantics (the filters read the padding), non-causality, learning.

benchmarks/recbole_baseline_parity.py compares it with the official ``FMLPRecModel`` (weights,
outputs, gradients, Adam steps: equal within float rounding).
"""

from __future__ import annotations

import math

import pytest
import torch

from seqbench.models.fmlprec import FMLPRec, FMLPRecParams
from seqbench.models.registry import get_model
from tests.models.util import build, later_items_effect, random_batch


def layer_shapes(i: int) -> dict[str, tuple[int, ...]]:
    p = f"item_encoder.layer.{i}."
    return {
        f"{p}filterlayer.complex_weight": (1, 26, 64, 2),  # 50 // 2 + 1 frequencies
        f"{p}filterlayer.LayerNorm.weight": (64,),
        f"{p}filterlayer.LayerNorm.bias": (64,),
        f"{p}intermediate.dense_1.weight": (256, 64),
        f"{p}intermediate.dense_1.bias": (256,),
        f"{p}intermediate.dense_2.weight": (64, 256),
        f"{p}intermediate.dense_2.bias": (64,),
        f"{p}intermediate.LayerNorm.weight": (64,),
        f"{p}intermediate.LayerNorm.bias": (64,),
    }


def test_parameter_names_shapes_and_count_at_the_defaults() -> None:
    model = FMLPRec(FMLPRecParams(), n_items=100, max_len=50)
    shapes = {n: tuple(p.shape) for n, p in model.named_parameters()}
    assert shapes == {
        "item_embeddings.weight": (101, 64),
        "position_embeddings.weight": (50, 64),
        "LayerNorm.weight": (64,),
        "LayerNorm.bias": (64,),
        **layer_shapes(0),
        **layer_shapes(1),
    }  # the official FMLPRecModel's state-dict keys
    # per block: 26·64·2 + 128 + (64·256 + 256) + (256·64 + 64) + 128 = 36672
    block = 3328 + 128 + 16640 + 16448 + 128
    assert sum(p.numel() for p in model.parameters()) == 6464 + 3200 + 128 + 2 * block == 83136


def test_defaults_are_the_official_ones() -> None:
    spec = get_model("fmlprec")
    assert spec.params().model_dump() == {  # Woeee/FMLP-Rec main.py
        "hidden_size": 64, "num_hidden_layers": 2, "hidden_dropout_prob": 0.5,
        "hidden_act": "gelu", "initializer_range": 0.02,
    }  # fmt: skip
    assert all(f.description for f in spec.params.model_fields.values())
    assert spec.reference.startswith("Woeee/FMLP-Rec") and list(spec.ablations) == ["full"]


def test_official_initialisation() -> None:
    """N(0, 0.02²) on Linear and Embedding weights (padding row included), zero biases,
    LayerNorm (1, 0); the filters keep randn · 0.02 and, as the layers are deep copies of one
    block, start equal in every layer."""
    model = build("fmlprec", n_items=5000, max_len=50, num_hidden_layers=3)
    table = model.item_embeddings.weight.detach()
    assert table.std().item() == pytest.approx(0.02, rel=0.02)
    assert table[0].std().item() == pytest.approx(0.02, rel=0.3)
    weights = [layer.filterlayer.complex_weight for layer in model.item_encoder.layer]
    assert all(torch.equal(weights[0], w) for w in weights[1:])
    assert weights[0].std().item() == pytest.approx(0.02, rel=0.05)
    dense = [layer.intermediate.dense_1.weight for layer in model.item_encoder.layer]
    assert not torch.equal(dense[0], dense[1])  # re-drawn per layer by the init
    for name, p in model.named_parameters():
        if "LayerNorm.weight" in name:
            assert torch.all(p == 1), name
        elif name.endswith("bias"):
            assert torch.all(p == 0), name
        else:
            assert p.std().item() == pytest.approx(0.02, rel=0.06), name


def tf_layer_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """The official TF-style LayerNorm: (x − u) / √(s + ε), s the biased variance, ε = 1e-12."""
    u = x.mean(-1, keepdim=True)
    s = (x - u).pow(2).mean(-1, keepdim=True)
    return weight * (x - u) / torch.sqrt(s + 1e-12) + bias


def test_tf_style_layernorm_is_nn_layernorm_with_eps_1e_12() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(512, 64, generator=g, dtype=torch.float64) * 3 + 1
    w, b = (torch.randn(64, generator=g, dtype=torch.float64) for _ in range(2))
    ours = torch.nn.LayerNorm(64, eps=1e-12).double()
    with torch.no_grad():
        ours.weight.copy_(w)
        ours.bias.copy_(b)
        torch.testing.assert_close(ours(x), tf_layer_norm(x, w, b), rtol=0, atol=1e-13)
        ours32 = ours.float()(x.float())  # float32: the same formula, rounding apart
        torch.testing.assert_close(ours32, tf_layer_norm(x, w, b).float(), rtol=0, atol=5e-6)


def naive_fmlprec(model: FMLPRec, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """The official forward in float64, written out: TF-style LayerNorms, the filter as
    irfft(rfft(x) ⊙ W) (both ortho), the erf GELU, every slot computed, then slot length − 1."""
    p = {n: t.detach().double() for n, t in model.named_parameters()}
    length = items.shape[1]
    x = p["item_embeddings.weight"][items] + p["position_embeddings.weight"][:length]
    x = tf_layer_norm(x, p["LayerNorm.weight"], p["LayerNorm.bias"])
    for i in range(model.params.num_hidden_layers):
        q = f"item_encoder.layer.{i}."
        spectrum = torch.fft.rfft(x, dim=1, norm="ortho")
        spectrum = spectrum * torch.view_as_complex(p[q + "filterlayer.complex_weight"])
        filtered = torch.fft.irfft(spectrum, n=length, dim=1, norm="ortho")
        x = tf_layer_norm(
            filtered + x, p[q + "filterlayer.LayerNorm.weight"], p[q + "filterlayer.LayerNorm.bias"]
        )
        h = x @ p[q + "intermediate.dense_1.weight"].T + p[q + "intermediate.dense_1.bias"]
        h = h * 0.5 * (1.0 + torch.erf(h / math.sqrt(2.0)))
        h = h @ p[q + "intermediate.dense_2.weight"].T + p[q + "intermediate.dense_2.bias"]
        x = tf_layer_norm(
            h + x, p[q + "intermediate.LayerNorm.weight"], p[q + "intermediate.LayerNorm.bias"]
        )
    return x[torch.arange(items.shape[0]), lengths - 1]


@pytest.mark.parametrize("max_len", [9, 12])
def test_output_equals_the_official_forward_written_out(max_len: int) -> None:
    model = build("fmlprec", n_items=30, max_len=max_len, hidden_size=16, num_hidden_layers=3)
    model = model.double().eval()
    with torch.no_grad():  # distinct filters per layer, so that a mix-up would show
        for layer in model.item_encoder.layer:
            layer.filterlayer.complex_weight.normal_(0, 0.3)
        items, lengths, _ = random_batch(30, 8, max_len, seed=1)
        got = model(items, lengths)
    torch.testing.assert_close(got, naive_fmlprec(model, items, lengths), rtol=0, atol=1e-10)


def test_filters_read_the_padding_slots_and_the_padding_row() -> None:
    """RecBole semantics for the padding (a random row, frozen on the input side) with a filter
    over all L slots: the padding row's embedding and junk after the history both move the
    readout (the official model does the same: recbole_baseline_parity.json,
    padding_semantics_official)."""
    model = build("fmlprec", n_items=40, max_len=12).eval()
    items, lengths, _ = random_batch(40, 32, 12, seed=2, min_length=1)
    has_padding = lengths < 12
    assert has_padding.any()
    padded = torch.arange(12)[None, :] >= lengths[:, None]
    with torch.no_grad():
        clean = model(items, lengths)
        junk = torch.where(padded, torch.randint(1, 41, items.shape), items)
        moved_by_junk = (model(junk, lengths) - clean).abs().amax(-1)
        model.item_embeddings.weight[0] = torch.randn(64) * 0.02
        moved_by_row = (model(items, lengths) - clean).abs().amax(-1)
    assert torch.all(moved_by_junk[has_padding] > 1e-4)
    assert torch.all(moved_by_row[has_padding] > 1e-4)
    assert torch.all(moved_by_row[~has_padding] == 0)


def test_padding_row_random_frozen_on_input_trained_on_output() -> None:
    model = build("fmlprec", n_items=40, max_len=12, hidden_dropout_prob=0.0)
    items, lengths, targets = random_batch(40, 16, 12, seed=3)
    assert (items == 0).any() and model.item_embeddings.weight[0].abs().sum() > 0
    model(items, lengths).sum().backward()  # the padding is read, but its lookup has no grad
    assert torch.all(model.item_embeddings.weight.grad[0] == 0)
    assert model.position_embeddings.weight.grad[-1].abs().sum() > 0  # a padding slot's position
    model.zero_grad()
    model.loss(items, lengths, targets).backward()  # CE over the whole table, row 0 included
    assert model.item_embeddings.weight.grad[0].abs().sum() > 0


def test_fast_readout_equals_the_full_encoder_gathered() -> None:
    model = build("fmlprec", n_items=40, max_len=12).eval()
    items, lengths, _ = random_batch(40, 32, 12, seed=4)
    with torch.no_grad():
        every_slot = model.item_encoder(model._embed(items))
        expected = every_slot[torch.arange(32), lengths - 1]
        torch.testing.assert_close(model(items, lengths), expected, rtol=0, atol=2e-6)


@pytest.mark.parametrize("t", [0, 4, 10])
def test_non_causal_later_items_change_the_output_at_slot_t(t: int) -> None:
    assert torch.all(later_items_effect("fmlprec", t, seed=5) > 1e-4)


def test_inputs_must_have_exactly_max_len_slots() -> None:
    model = build("fmlprec", n_items=40, max_len=12)
    items, lengths, _ = random_batch(40, 4, 12, seed=6, min_length=1)
    with pytest.raises(ValueError, match="tied to max_len = 12 slots; got inputs of 11 slots"):
        model(items[:, :11], lengths.clamp(max=11))
