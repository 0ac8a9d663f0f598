"""SASRec: RecBole's parameters, initialisation, mask and attention, checked by hand."""

from __future__ import annotations

import math

import pytest
import torch

from seqbench.errors import ConfigError
from seqbench.models.layers.transformer import MASKED, attention, attention_mask
from seqbench.models.registry import get_model
from seqbench.models.sasrec import SASRec, SASRecParams
from tests.models.util import NO_DROPOUT, build, random_batch, transformer_layer_shapes


def test_parameter_names_shapes_and_count_at_the_defaults() -> None:
    model = SASRec(SASRecParams(), n_items=100, max_len=50)
    shapes = {n: tuple(p.shape) for n, p in model.named_parameters()}
    expected = {
        "item_embedding.weight": (101, 64),
        "position_embedding.weight": (50, 64),
        **transformer_layer_shapes(0),
        **transformer_layer_shapes(1),
        "LayerNorm.weight": (64,),
        "LayerNorm.bias": (64,),
    }
    assert shapes == expected  # RecBole's state-dict keys, so its checkpoints load unchanged
    # 101·64 + 50·64 + 128 + 2 · (4·(64·64 + 64) + 128 + (64·256 + 256 + 256·64 + 64) + 128)
    assert sum(p.numel() for p in model.parameters()) == 6464 + 3200 + 128 + 2 * 49984 == 109760


def test_recbole_initialisation_including_the_padding_row() -> None:
    model = build("sasrec", n_items=5000, max_len=50)
    table = model.item_embedding.weight.detach()
    assert table.std().item() == pytest.approx(0.02, rel=0.02)
    assert abs(table.mean().item()) < 1e-3
    assert table[0].abs().sum() > 0 and table[0].std().item() == pytest.approx(0.02, rel=0.3)
    for name, p in model.named_parameters():
        if "LayerNorm.weight" in name:
            assert torch.all(p == 1), name
        elif name.endswith("bias"):
            assert torch.all(p == 0), name
        else:
            assert p.std().item() == pytest.approx(0.02, rel=0.06), name


def test_initializer_range_is_the_std() -> None:
    model = build("sasrec", n_items=3000, initializer_range=0.05)
    assert model.item_embedding.weight.std().item() == pytest.approx(0.05, rel=0.03)


def test_padding_row_is_updated_only_through_the_tied_output() -> None:
    """RecBole's padding_idx=0 zeroes the lookup gradient of row 0, but CE over the whole table
    still trains it: row 0 is neither zero nor frozen in RecBole's SASRec."""
    model = build("sasrec", **NO_DROPOUT["sasrec"])
    items, lengths, targets = random_batch(50, 16, 12, seed=0)
    model(items, lengths).sum().backward()  # input side only: lookups of padding slots
    assert (items == 0).any()
    assert torch.all(model.item_embedding.weight.grad[0] == 0)
    model.zero_grad()
    model.loss(items, lengths, targets).backward()
    assert model.item_embedding.weight.grad[0].abs().sum() > 0


def test_attention_mask_is_recboles() -> None:
    mask = attention_mask(torch.tensor([[3, 5, 0]]))
    allowed = [[1, 0, 0], [1, 1, 0], [1, 1, 0]]  # causal AND key is a real item
    expected = torch.tensor([[[0.0 if a else MASKED for a in row] for row in allowed]])
    assert mask.shape == (1, 1, 3, 3) and torch.equal(mask[0], expected)
    both_ways = attention_mask(torch.tensor([[3, 5, 0]]), causal=False)
    assert torch.equal(both_ways, torch.tensor([[[[0.0, 0.0, MASKED]]]]))


def test_attention_equals_recboles_formula_in_float64() -> None:
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(3, 2, 7, 8, generator=g, dtype=torch.float64) for _ in range(3))
    items = torch.tensor([[1, 2, 3, 0, 0, 0, 0], [4, 5, 6, 7, 8, 9, 1], [2, 0, 0, 0, 0, 0, 0]])
    mask = attention_mask(items, dtype=torch.float64)
    scores = q @ k.transpose(-1, -2) / math.sqrt(8) + mask
    expected = torch.softmax(scores, dim=-1) @ v
    torch.testing.assert_close(attention(q, k, v, mask, 0.0), expected, rtol=0, atol=1e-12)


def test_attention_dropout_path_keeps_the_expectation() -> None:
    """With dropout the (CPU) path zeroes probabilities at rate p and rescales the others."""
    torch.manual_seed(0)
    q = torch.zeros(1, 1, 1, 4)  # uniform attention over 4 keys
    k = torch.zeros(1, 1, 4, 4)
    v = torch.eye(4).view(1, 1, 4, 4)
    mask = torch.zeros(1, 1, 1, 4)
    draws = torch.cat([attention(q, k, v, mask, 0.5).view(-1) for _ in range(4000)])
    assert set(draws.tolist()) == {0.0, 0.5}  # 0.25 / (1 − 0.5), or dropped
    assert (draws == 0).float().mean().item() == pytest.approx(0.5, abs=0.02)


@pytest.mark.parametrize("act", ["gelu", "relu", "swish", "tanh", "sigmoid"])
def test_every_recbole_activation_runs(act: str) -> None:
    model = build("sasrec", hidden_act=act).eval()
    items, lengths, _ = random_batch(50, 4, 12)
    assert torch.isfinite(model(items, lengths)).all()


def test_gelu_is_the_exact_erf_gelu() -> None:
    from seqbench.models.layers.transformer import ACTIVATIONS

    x = torch.linspace(-6, 6, 1001, dtype=torch.float64)
    recbole = x * 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))
    torch.testing.assert_close(ACTIVATIONS["gelu"](x), recbole, rtol=0, atol=1e-12)


def test_positions_count_from_the_left() -> None:
    """Slot j gets position row j (oldest item first) whatever the length: two sequences that
    share a prefix share the outputs over it (positions counted from the end would differ)."""
    model = build("sasrec").eval()
    items = torch.tensor([[7, 8, 9] + [0] * 9, [7, 8, 9, 1, 2, 3, 4, 5, 6, 7, 8, 9]])
    with torch.no_grad():
        out = model.forward_all(items, torch.tensor([3, 12]))
        torch.testing.assert_close(out[0, :3], out[1, :3], rtol=0, atol=1e-6)
        model.position_embedding.weight[1] += torch.randn(64)  # (a constant would cancel in LN)
        moved = model.forward_all(items, torch.tensor([3, 12]))
    assert (moved[:, 1:3] - out[:, 1:3]).abs().amax(-1).amin() > 1e-3  # slot 1 uses row 1
    torch.testing.assert_close(moved[:, 0], out[:, 0], rtol=0, atol=1e-6)


def test_params_are_validated_with_recboles_names() -> None:
    spec = get_model("sasrec")
    with pytest.raises(ConfigError, match=r"multiple of n_heads \(3\)"):
        spec.validate_params({"n_heads": 3}, "sasrec")
    with pytest.raises(ConfigError, match="did you mean 'n_layers'"):
        spec.validate_params({"n_layer": 3}, "sasrec")
    with pytest.raises(ConfigError, match="hidden_act"):
        spec.validate_params({"hidden_act": "elu"}, "sasrec")
    assert spec.validate_params({"n_heads": 4}, "sasrec").n_heads == 4
