"""Mamba4Rec, EchoMamba4Rec, Bi-Mamba4Rec and Bi-Mambaformer4Rec: official state-dict keys and
parameter counts, RecBole's re-initialisation, the ablations and readings, and the arithmetic of
one layer written out by hand."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from seqbench.models.echomamba4rec import DEAD_BLOCK_PARAMETERS_D64
from seqbench.models.layers.bidirectional import flip
from seqbench.models.layers.fft_filter import circular_filter
from seqbench.models.layers.mamba import Mamba
from tests.models.util import build, random_batch

MAMBA = 38_784  # one block at d 64, N 32 (model-reference §2.1)
EMBEDDING = 101 * 64  # 100 items + padding
LN = 128
FFN = 64 * 256 + 256 + 256 * 64 + 64 + LN  # w_1, w_2, LayerNorm
GLU = 64 * 128 + 128 + 64 * 64 + 64 + LN
FILTER = 26 * 64 * 2 + LN  # max_len 50: 26 frequencies


def count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def mamba_keys(prefix: str) -> list[str]:
    names = ["A_log", "D", "in_proj.weight", "conv1d.weight", "conv1d.bias", "x_proj.weight",
             "dt_proj.weight", "dt_proj.bias", "out_proj.weight"]  # fmt: skip
    return [f"{prefix}.{n}" for n in names]


def test_mamba4rec_official_keys_and_count() -> None:
    model = build("mamba4rec", n_items=100, max_len=50)
    expected = ["item_embedding.weight", "LayerNorm.weight", "LayerNorm.bias",
                *mamba_keys("mamba_layers.0.mamba"),
                "mamba_layers.0.LayerNorm.weight", "mamba_layers.0.LayerNorm.bias",
                "mamba_layers.0.ffn.w_1.weight", "mamba_layers.0.ffn.w_1.bias",
                "mamba_layers.0.ffn.w_2.weight", "mamba_layers.0.ffn.w_2.bias",
                "mamba_layers.0.ffn.LayerNorm.weight",
                "mamba_layers.0.ffn.LayerNorm.bias"]  # fmt: skip
    assert list(model.state_dict()) == expected
    assert count(model) == EMBEDDING + LN + MAMBA + LN + FFN


def test_echomamba4rec_official_keys_and_count_without_the_dead_block() -> None:
    model = build("echomamba4rec", n_items=100, max_len=50)
    layer = "mamba_layers.0"
    expected = ["item_embedding.weight", "LayerNorm.weight", "LayerNorm.bias",
                f"{layer}.filter_layer.complex_weight",
                f"{layer}.filter_layer.LayerNorm.weight", f"{layer}.filter_layer.LayerNorm.bias",
                f"{layer}.norms_forward.0.weight", f"{layer}.norms_forward.0.bias",
                f"{layer}.norms_backward.0.weight", f"{layer}.norms_backward.0.bias",
                *mamba_keys(f"{layer}.mamba_forwards.0"), *mamba_keys(f"{layer}.mamba_backwards.0"),
                f"{layer}.glu.fc1.weight", f"{layer}.glu.fc1.bias", f"{layer}.glu.fc2.weight",
                f"{layer}.glu.fc2.bias", f"{layer}.glu.LayerNorm.weight",
                f"{layer}.glu.LayerNorm.bias"]  # fmt: skip
    assert list(model.state_dict()) == expected
    ours = EMBEDDING + LN + FILTER + 2 * LN + 2 * MAMBA + GLU
    assert count(model) == ours == 100_480
    # the official count adds the never-called attention block: 163,072 for this dataset size
    assert ours + DEAD_BLOCK_PARAMETERS_D64 == 163_072


def test_the_dead_attention_block_has_62592_parameters() -> None:
    """Rebuilt from torch modules as the official MultiQueryTransformerBlock(64, nhead=4,
    dim_feedforward=256) constructs it: MHA, GLU, linear1, linear2, norm1, norm2."""
    d = 64
    block = nn.ModuleList([
        nn.MultiheadAttention(d, 4), nn.Linear(d, 2 * d), nn.Linear(d, d), nn.LayerNorm(d),
        nn.Linear(d, 4 * d), nn.Linear(4 * d, d), nn.LayerNorm(d), nn.LayerNorm(d),
    ])  # fmt: skip
    assert count(block) == DEAD_BLOCK_PARAMETERS_D64


@pytest.mark.parametrize(
    ("ablation", "absent", "removed"),
    [
        ("no_filter", "filter_layer", FILTER),
        ("forward_only", "mamba_backwards", MAMBA + LN),
        ("no_glu", "glu", GLU),
    ],
)
def test_each_ablation_removes_its_part(ablation: str, absent: str, removed: int) -> None:
    full = build("echomamba4rec", n_items=100, max_len=50)
    spec_cls = type(full)
    torch.manual_seed(0)
    model = spec_cls(full.params, n_items=100, max_len=50, ablation=ablation)
    assert not any(absent in k for k in model.state_dict())
    assert count(full) - count(model) == removed


def test_nested_layers_square_the_pairs_and_flat_does_not() -> None:
    nested = build("echomamba4rec", n_items=100, max_len=50, num_layers=2)
    flat = build("echomamba4rec", n_items=100, max_len=50, num_layers=2, layers="flat")
    blocks = lambda m: sum(isinstance(x, Mamba) for x in m.modules())  # noqa: E731
    assert blocks(nested) == 2 * 2 * 2  # 2 layers × 2 pairs × (forward, backward)
    assert blocks(flat) == 2 * 2


@pytest.mark.parametrize("name", ["mamba4rec", "echomamba4rec", "bimamba4rec", "bimambaformer4rec"])
def test_recbole_reinitialises_mamba_internals_unless_told_not_to(name: str) -> None:
    model = build(name, n_items=100, max_len=50)
    kept = build(name, n_items=100, max_len=50, recbole_init=False)
    for m in (x for x in model.modules() if isinstance(x, Mamba)):
        assert m.dt_proj.bias.abs().max() == 0  # RecBole zeroes every Linear bias (§1.9)
        assert m.in_proj.weight.std().item() == pytest.approx(0.02, rel=0.1)
        assert torch.equal(m.D.detach(), torch.ones_like(m.D))  # not a Linear: untouched
    for m in (x for x in kept.modules() if isinstance(x, Mamba)):
        dt = F.softplus(m.dt_proj.bias.detach())
        assert dt.min() >= 0.9e-3 and dt.max() <= 0.11  # mamba_ssm's log-uniform init
    assert kept.item_embedding.weight.std().item() == pytest.approx(0.02, rel=0.1)


def test_flips_are_involutions_and_per_length_keeps_padding_in_place() -> None:
    x = torch.arange(2 * 5, dtype=torch.float32).view(2, 5, 1)
    lengths = torch.tensor([3, 5])
    assert flip(x, lengths, "per_length")[:, :, 0].tolist() == [[2, 1, 0, 3, 4], [9, 8, 7, 6, 5]]
    assert flip(x, lengths, "full")[:, :, 0].tolist() == [[4, 3, 2, 1, 0], [9, 8, 7, 6, 5]]
    for mode in ("full", "per_length"):
        assert torch.equal(flip(flip(x, lengths, mode), lengths, mode), x)  # type: ignore[arg-type]


def test_one_echomamba_layer_written_out_by_hand() -> None:
    """Dropout off: filter → (forward + flipped backward, each with residual + LN) → GLU."""
    model = build("echomamba4rec", n_items=30, max_len=12, dropout_prob=0.0)
    items, lengths, _ = random_batch(30, 5, 12, seed=1)
    layer = model.mamba_layers[0]
    with torch.no_grad():
        h = model.LayerNorm(model.item_embedding(items))
        f = layer.filter_layer
        x = f.LayerNorm(circular_filter(h, f.complex_weight) + h)
        fwd = layer.norms_forward[0](layer.mamba_forwards[0](x) + x)
        rev = torch.flip(layer.mamba_backwards[0](torch.flip(x, [1])), [1])
        x = fwd + layer.norms_backward[0](rev + x)
        value, gate = layer.glu.fc1(x).chunk(2, -1)
        x = layer.glu.LayerNorm(layer.glu.fc2(value * torch.sigmoid(gate)) + x)
        expected = x[torch.arange(5), lengths - 1]
        torch.testing.assert_close(model.eval()(items, lengths), expected, rtol=1e-5, atol=1e-6)


def test_mamba4rec_residual_only_when_stacking() -> None:
    """One layer: LN(Mamba(h)) with no residual; two layers: LN(Mamba(h) + h) (official)."""
    for layers in (1, 2):
        model = build("mamba4rec", n_items=30, max_len=8, num_layers=layers, dropout_prob=0.0)
        items, lengths, _ = random_batch(30, 4, 8, seed=2)
        with torch.no_grad():
            h = model.LayerNorm(model.item_embedding(items))
            for layer in model.mamba_layers:
                mixed = layer.mamba(h) + (h if layers > 1 else 0)
                h = layer.ffn(layer.LayerNorm(mixed))
            torch.testing.assert_close(model.eval().forward_all(items, lengths), h)


def test_the_filter_needs_exactly_max_len_slots() -> None:
    model = build("echomamba4rec", n_items=30, max_len=12)
    items, lengths, _ = random_batch(30, 2, 10)
    with pytest.raises(ValueError, match="max_len = 12"):
        model(items, lengths)
