"""BERT4Rec: RecBole's parameters, initialisation, cloze masking, inference input and learning.

benchmarks/recbole_baseline_parity.py compares it with RecBole's own class (weights, outputs,
the loss given RecBole's masks, gradients); these tests pin the rules without RecBole.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from seqbench.errors import ConfigError
from seqbench.models.base import gather_last
from seqbench.models.bert4rec import BERT4Rec, BERT4RecParams
from seqbench.models.registry import get_model
from tests.models.util import build, later_items_effect, random_batch, transformer_layer_shapes

NO_DROPOUT = {"hidden_dropout_prob": 0.0, "attn_dropout_prob": 0.0}


def test_parameter_names_shapes_and_count_at_the_defaults() -> None:
    model = BERT4Rec(BERT4RecParams(), n_items=100, max_len=50)
    shapes = {n: tuple(p.shape) for n, p in model.named_parameters()}
    assert shapes == {
        "output_bias": (101,),  # one per scored row: padding + 100 items (not the mask)
        "item_embedding.weight": (102,  64),  # padding, 100 items, the mask token (id 101)
        "position_embedding.weight": (50, 64),
        **transformer_layer_shapes(0),
        **transformer_layer_shapes(1),
        "LayerNorm.weight": (64,),
        "LayerNorm.bias": (64,),
        "output_ffn.weight": (64, 64),
        "output_ffn.bias": (64,),
        "output_ln.weight": (64,),
        "output_ln.bias": (64,),
    }  # fmt: skip
    # 101 + 102·64 + 50·64 + 128 + 2·49984 (as SASRec's layers) + (64·64 + 64) + 128
    total = 101 + 6528 + 3200 + 128 + 2 * 49984 + 4160 + 128
    assert sum(p.numel() for p in model.parameters()) == total == 114213
    assert model.mask_token == 101 and model.mask_item_length == 10  # int(0.2 · 50)


def test_defaults_are_recboles_and_every_parameter_is_described() -> None:
    spec = get_model("bert4rec")
    assert spec.params().resolved() == {  # recbole/properties/model/BERT4Rec.yaml, v1.2.0
        "n_layers": 2, "n_heads": 2, "hidden_size": 64, "inner_size": 256,
        "hidden_dropout_prob": 0.2, "attn_dropout_prob": 0.2, "hidden_act": "gelu",
        "layer_norm_eps": 1e-12, "initializer_range": 0.02, "mask_ratio": 0.2, "ft_ratio": 0.5,
    }  # fmt: skip
    assert all(f.description for f in spec.params.model_fields.values())
    assert spec.reference.startswith("RecBole v1.2.0") and spec.ablations == {
        "full": "the model as published"
    }
    with pytest.raises(ConfigError, match=r"multiple of n_heads \(3\)"):
        spec.validate_params({"n_heads": 3}, "bert4rec")
    with pytest.raises(ConfigError, match="mask_ratio"):
        spec.validate_params({"mask_ratio": 0.0}, "bert4rec")


def test_recbole_initialisation_including_the_padding_and_mask_rows() -> None:
    model = build("bert4rec", n_items=5000, max_len=50)
    table = model.item_embedding.weight.detach()
    assert table.std().item() == pytest.approx(0.02, rel=0.02)
    for row in (0, 5001):  # padding and mask rows: drawn like the others, not zero
        assert table[row].std().item() == pytest.approx(0.02, rel=0.3)
    assert torch.all(model.output_bias == 0)
    for name, p in model.named_parameters():
        if "LayerNorm.weight" in name or name == "output_ln.weight":
            assert torch.all(p == 1), name
        elif name.endswith("bias"):
            assert torch.all(p == 0), name
        else:
            assert p.std().item() == pytest.approx(0.02, rel=0.1), name


def test_scores_cover_padding_and_items_with_the_bias_never_the_mask() -> None:
    model = build("bert4rec", n_items=30)
    with torch.no_grad():
        model.output_bias.normal_()
        user = torch.randn(4, 64)
        table = model.item_embedding.weight
        expected = user @ table[:31].T + model.output_bias
        assert model.output_embeddings().shape == (31, 64)
        torch.testing.assert_close(model.score(user), expected)
        chunks = torch.cat([model.score(user, s, min(s + 7, 31)) for s in range(0, 31, 7)], 1)
        torch.testing.assert_close(chunks, expected)
        assert model.score(user, 25, 40).shape == (4, 6)  # clipped at the last item


def test_inference_input_is_recboles_reconstruct_test_data() -> None:
    """Append a 0, put the mask (n_items + 1 = 31) at slot length, drop the first column."""
    model = build("bert4rec", n_items=30, max_len=4, mask_ratio=0.5)
    items = torch.tensor([[5, 6, 7, 0], [1, 2, 3, 4], [9, 0, 0, 0]])
    got = model.inference_input(items, torch.tensor([3, 4, 1]))
    assert got.tolist() == [[6, 7, 31, 0], [2, 3, 4, 31], [31, 0, 0, 0]]  # oldest item dropped


def test_forward_reads_the_head_at_the_mask_slot() -> None:
    model = build("bert4rec", n_items=40, max_len=12).eval()
    items, lengths, _ = random_batch(40, 32, 12, seed=1)
    with torch.no_grad():
        seq = model.inference_input(items, lengths)
        hidden, mask = model._encoder_input(seq)
        every_slot = model.trm_encoder(hidden, mask)  # the whole encoder, RecBole's way
        expected = model.output_ln(F.gelu(model.output_ffn(gather_last(every_slot, lengths))))
        torch.testing.assert_close(model(items, lengths), expected, rtol=0, atol=2e-6)
    assert torch.all(seq.gather(1, (lengths - 1)[:, None]) == model.mask_token)


def test_draw_masks_random_branch_masks_only_real_items() -> None:
    model = build("bert4rec", n_items=40, max_len=12, mask_ratio=0.5, ft_ratio=0.0)
    items, lengths, _ = random_batch(40, 400, 12, seed=2)
    torch.manual_seed(0)
    masked = model.draw_masks(items, lengths)
    real = items != 0
    assert not (masked & ~real).any()  # padding slots are never masked
    assert masked.sum().item() / real.sum().item() == pytest.approx(0.5, abs=0.03)
    torch.manual_seed(0)
    assert torch.equal(model.draw_masks(items, lengths), masked)  # torch's global generator


def test_draw_masks_fine_tuning_branch_masks_exactly_the_last_real_item() -> None:
    model = build("bert4rec", n_items=40, max_len=12, ft_ratio=1.0)
    items, lengths, _ = random_batch(40, 64, 12, seed=3)
    masked = model.draw_masks(items, lengths)
    expected = torch.zeros_like(masked)
    expected[torch.arange(64), lengths - 1] = True
    assert torch.equal(masked, expected)


def test_one_branch_per_batch_with_probability_ft_ratio() -> None:
    model = build("bert4rec", n_items=40, max_len=12, mask_ratio=0.9)  # ft_ratio 0.5
    items, lengths, _ = random_batch(40, 16, 12, seed=4, min_length=6)
    torch.manual_seed(1)
    fine_tuning = 0
    for _ in range(400):
        per_row = model.draw_masks(items, lengths).sum(1)
        assert per_row.eq(1).all() or per_row.gt(1).any()  # never a mix: one mode per batch
        fine_tuning += int(per_row.eq(1).all())
    assert fine_tuning / 400 == pytest.approx(0.5, abs=0.08)


def test_trained_slots_keep_the_last_masked_slots_and_never_slot_zero() -> None:
    """max_len 10, mask_ratio 0.2 → at most int(0.2 · 10) = 2 slots per row get a loss."""
    model = build("bert4rec", n_items=40, max_len=10)
    rows = [[0, 3, 5, 8], [0, 4], [0], [], [2, 9]]
    masked = torch.zeros(len(rows), 10, dtype=torch.bool)
    for r, slots in enumerate(rows):
        masked[r, slots] = True
    slots, weight = model.trained_slots(masked)
    assert slots.shape == weight.shape == (5, 2)
    trained = [sorted(s for s, w in zip(sr, wr, strict=True) if w)
               for sr, wr in zip(slots.tolist(), weight.tolist(), strict=True)]  # fmt: skip
    assert trained == [[5, 8], [4], [], [], [2, 9]]


def naive_cloze_loss(model: BERT4Rec, items: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
    """RecBole's rules row by row: mask ids in the input, losses at the last
    int(mask_ratio · max_len) masked slots other than slot 0, CE over rows 0..n_items + bias,
    averaged over every such slot of the batch."""
    inputs = torch.where(masked, model.mask_token, items)
    hidden, mask = model._encoder_input(inputs)
    out = model.trm_encoder(hidden, mask)
    table = model.item_embedding.weight[: model.n_items + 1]
    terms = []
    for b in range(items.shape[0]):
        slots = [j for j in range(items.shape[1]) if masked[b, j]][-model.mask_item_length :]
        for j in slots:
            if j == 0:
                continue
            h = model.output_ln(F.gelu(model.output_ffn(out[b, j])))
            logits = h @ table.T + model.output_bias
            terms.append(torch.logsumexp(logits, 0) - logits[items[b, j]])
    return torch.stack(terms).mean()


@pytest.mark.parametrize(("mask_ratio", "ft_ratio"), [(0.2, 0.0), (0.6, 0.0), (0.2, 1.0)])
def test_cloze_loss_follows_recboles_rules(mask_ratio: float, ft_ratio: float) -> None:
    model = build("bert4rec", n_items=40, max_len=12, mask_ratio=mask_ratio, ft_ratio=ft_ratio)
    model.eval()
    items, lengths, targets = random_batch(40, 24, 12, seed=5)
    lengths[:3] = torch.tensor([1, 12, 12])  # slot 0 is the last item; full rows
    items[0, 1:] = 0
    items[1:3] = torch.randint(1, 41, (2, 12), generator=torch.Generator().manual_seed(0))
    torch.manual_seed(7)
    masked = model.draw_masks(items, lengths)
    if ft_ratio == 0.0:
        masked[1] = True  # a full row: more masks than the cap
        masked[0, 0] = True  # the only item, at slot 0: masked in the input, never trained
    expected = naive_cloze_loss(model, items, masked)
    torch.testing.assert_close(model.cloze_loss(items, masked), expected, rtol=1e-5, atol=1e-6)
    torch.manual_seed(7)
    changed_targets = targets % 40 + 1  # the sample's own target is not used
    drawn = model.loss(items, lengths, changed_targets)
    torch.manual_seed(7)
    assert drawn.item() == model.cloze_loss(items, model.draw_masks(items, lengths)).item()


def test_masked_inputs_carry_the_mask_id_and_only_trained_slots_get_a_loss() -> None:
    """Gradient of the loss w.r.t. each slot's output: nonzero exactly at the trained slots."""
    model = build("bert4rec", n_items=40, max_len=10, **NO_DROPOUT)
    items, _, _ = random_batch(40, 6, 10, seed=6, min_length=10)
    masked = torch.zeros_like(items, dtype=torch.bool)
    masked[:, [0, 2, 5, 7]] = True  # cap 2: slots 5 and 7 are trained; 0 and 2 only masked
    captured: dict[str, torch.Tensor] = {}

    def ids(module: torch.nn.Module, args: tuple, out: torch.Tensor) -> None:
        captured["ids"] = args[0]

    def keep(module: torch.nn.Module, args: tuple, out: torch.Tensor) -> None:
        out.retain_grad()
        captured["out"] = out

    model.item_embedding.register_forward_hook(ids)
    model.trm_encoder.register_forward_hook(keep)
    model.cloze_loss(items, masked).backward()
    assert torch.equal(captured["ids"], torch.where(masked, 41, items))
    grad_per_slot = captured["out"].grad.abs().sum(-1)
    trained = torch.zeros(6, 10, dtype=torch.bool)
    trained[:, [5, 7]] = True
    assert torch.equal(grad_per_slot > 0, trained)


def test_a_batch_without_trained_slots_has_loss_zero() -> None:
    """RecBole divides 0 by 0 (NaN) here; seqbench returns 0 (a documented deviation)."""
    model = build("bert4rec", n_items=40, max_len=10)
    items, _, _ = random_batch(40, 4, 10, seed=8)
    masked = torch.zeros_like(items, dtype=torch.bool)
    masked[:, 0] = True  # slot 0 only: masked, never trained
    loss = model.cloze_loss(items, masked)
    assert loss.item() == 0.0
    loss.backward()


def test_too_few_masked_slots_is_a_config_error() -> None:
    spec = get_model("bert4rec")
    with pytest.raises(ConfigError, match=r"int\(mask_ratio · max_len\) = int\(0.2 · 4\) = 0"):
        spec.cls(spec.params(), n_items=10, max_len=4)


def test_padding_row_random_frozen_on_input_trained_on_output() -> None:
    model = build("bert4rec", n_items=40, max_len=12, **NO_DROPOUT)
    assert model.item_embedding.weight[0].abs().sum() > 0  # RecBole re-draws row 0
    items, lengths, targets = random_batch(40, 16, 12, seed=9)
    model(items, lengths).sum().backward()  # input side only: padding slots are looked up
    assert torch.all(model.item_embedding.weight.grad[0] == 0)
    assert model.item_embedding.weight.grad[41].abs().sum() > 0  # the mask row is learned
    model.zero_grad()
    torch.manual_seed(0)
    model.loss(items, lengths, targets).backward()  # CE over rows 0..n_items
    assert model.item_embedding.weight.grad[0].abs().sum() > 0


def test_readout_ignores_the_padding_row_but_not_items_after_length() -> None:
    """RecBole's mask is ``item != 0``: padding keys get −10000 (weight exactly 0), so the padding
    row never reaches the readout; item ids placed after slot length − 1 are attended (RecBole
    does the same: recbole_baseline_parity.json, padding_semantics_recbole)."""
    model = build("bert4rec", n_items=40, max_len=12).eval()
    items, lengths, _ = random_batch(40, 32, 12, seed=10)
    padded = torch.arange(12)[None, :] >= lengths[:, None]
    with torch.no_grad():
        clean = model(items, lengths)
        model.item_embedding.weight[0] = torch.randn(64)
        torch.testing.assert_close(model(items, lengths), clean, rtol=0, atol=0)
        junk = torch.where(padded, torch.randint(1, 41, items.shape), items)
        moved = (model(junk, lengths) - clean).abs().amax(-1)
    assert torch.all(moved[lengths < 11] > 1e-4)  # ≥ 1 junk item left after the shifted mask
    assert torch.all(moved[lengths >= 11] <= 1e-6)  # the mask overwrites the only junk slot


@pytest.mark.parametrize("t", [0, 4, 9])
def test_non_causal_later_items_change_the_output_at_slot_t(t: int) -> None:
    assert torch.all(later_items_effect("bert4rec", t, seed=11) > 1e-4)
