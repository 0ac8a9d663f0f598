"""Sampled losses (bce, bpr), negative sampling, and the models' criterion."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from seqbench.losses import sample_negatives, sampled_loss
from tests.models.util import NO_DROPOUT, build, random_batch

N_ITEMS = 20

# -- sample_negatives ---------------------------------------------------------------------------


def test_negatives_are_real_items_other_than_the_target() -> None:
    g = torch.Generator().manual_seed(0)
    targets = torch.randint(1, 8, (2000,), generator=g)
    negatives = sample_negatives(targets, 7, 30, generator=g)
    assert negatives.shape == (2000, 30) and negatives.dtype == torch.int64
    assert (negatives != targets[:, None]).all()
    assert negatives.min() >= 1 and negatives.max() <= 7
    # every other item does occur (the shift reaches the top item)
    for t in range(1, 8):
        seen = set(negatives[targets == t].unique().tolist())
        assert seen == set(range(1, 8)) - {t}


@pytest.mark.parametrize("target", [1, 3, 5])
def test_negatives_are_uniform_over_the_other_items(target: int) -> None:
    g = torch.Generator().manual_seed(target)
    targets = torch.full((200_000,), target)
    negatives = sample_negatives(targets, 5, 1, generator=g)[:, 0]
    counts = torch.bincount(negatives, minlength=6).double()
    assert counts[0] == 0 and counts[target] == 0
    others = [i for i in range(1, 6) if i != target]
    freq = counts[others] / counts.sum()
    assert (freq - 0.25).abs().max() < 0.0025  # within 1 % of 1/4 (≈ 2.6 σ)
    expected = counts.sum() / 4
    chi2 = float(((counts[others] - expected) ** 2 / expected).sum())
    assert chi2 < 16.27  # χ²(3) at p = 0.001


def test_negatives_are_deterministic_under_a_seed() -> None:
    targets = torch.arange(1, 11)
    a = sample_negatives(targets, 50, 4, generator=torch.Generator().manual_seed(7))
    b = sample_negatives(targets, 50, 4, generator=torch.Generator().manual_seed(7))
    c = sample_negatives(targets, 50, 4, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    torch.manual_seed(3)  # the global generator, as in training
    d = sample_negatives(targets, 50, 4)
    torch.manual_seed(3)
    assert torch.equal(d, sample_negatives(targets, 50, 4))


def test_no_negative_exists_for_a_single_item() -> None:
    with pytest.raises(ValueError, match="no negative"):
        sample_negatives(torch.tensor([1, 1]), 1, 1)
    with pytest.raises(ValueError, match="k = 0"):
        sample_negatives(torch.tensor([1]), 5, 0)
    # two items: the negative is always the other one
    negatives = sample_negatives(torch.tensor([1, 2] * 50), 2, 3)
    assert torch.equal(negatives, torch.tensor([[2] * 3, [1] * 3] * 50))


# -- sampled_loss -------------------------------------------------------------------------------

POS = [1.5, -0.3]
NEG = [[0.2, -1.0], [2.0, 0.5]]


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _bce(pos: float, neg: list[float]) -> float:
    return -math.log(_sigmoid(pos)) - sum(math.log(1.0 - _sigmoid(n)) for n in neg)


def _bpr(pos: float, neg: list[float]) -> float:
    return sum(-math.log(_sigmoid(pos - n)) for n in neg) / len(neg)


@pytest.mark.parametrize(("kind", "formula"), [("bce", _bce), ("bpr", _bpr)])
def test_sampled_loss_by_hand(kind: str, formula) -> None:
    pos = torch.tensor(POS, dtype=torch.float64)
    neg = torch.tensor(NEG, dtype=torch.float64)
    per_sample = [formula(p, n) for p, n in zip(POS, NEG, strict=True)]
    got = sampled_loss(kind, pos, neg)
    assert got.dtype == torch.float64 and got.shape == ()
    assert float(got) == pytest.approx(sum(per_sample) / 2, rel=1e-12)
    # weighted: Σ w·l / max(Σ w, 1)
    weighted = sampled_loss(kind, pos, neg, torch.tensor([2.0, 1.0]))
    assert float(weighted) == pytest.approx((2 * per_sample[0] + per_sample[1]) / 3, rel=1e-12)
    only_first = sampled_loss(kind, pos, neg, torch.tensor([True, False]))
    assert float(only_first) == pytest.approx(per_sample[0], rel=1e-12)
    assert float(sampled_loss(kind, pos, neg, torch.zeros(2))) == 0.0
    # a k = 1 case: bce sums, bpr averages — so they differ by the negatives' count
    one = sampled_loss(kind, pos[:1], neg[:1, :1])
    assert float(one) == pytest.approx(formula(POS[0], NEG[0][:1]), rel=1e-12)


def test_bce_sums_and_bpr_averages_over_negatives() -> None:
    pos = torch.zeros(1, dtype=torch.float64)
    neg = torch.zeros(1, 4, dtype=torch.float64)
    assert float(sampled_loss("bce", pos, neg)) == pytest.approx(5 * math.log(2))
    assert float(sampled_loss("bpr", pos, neg)) == pytest.approx(math.log(2))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_extreme_logits_stay_finite_and_correct(dtype: torch.dtype) -> None:
    pos = torch.tensor([100.0, -100.0], dtype=dtype, requires_grad=True)
    neg = torch.tensor([[-100.0], [100.0]], dtype=dtype, requires_grad=True)
    for kind, worst in [("bce", 200.0), ("bpr", 200.0)]:
        # ranked right by 200: ≈ 0; ranked wrong by 200: ≈ 200
        per = [sampled_loss(kind, pos[i : i + 1], neg[i : i + 1]).detach() for i in range(2)]
        assert all(torch.isfinite(x) for x in per)
        assert float(per[0]) == pytest.approx(0.0, abs=1e-30)
        assert float(per[1]) == pytest.approx(worst, rel=1e-6)
        total = sampled_loss(kind, pos, neg)
        total.backward()
        assert torch.isfinite(pos.grad).all() and torch.isfinite(neg.grad).all()
        pos.grad = neg.grad = None


def test_unknown_sampled_loss() -> None:
    with pytest.raises(ValueError, match="unknown sampled loss 'ce'"):
        sampled_loss("ce", torch.zeros(1), torch.zeros(1, 1))


# -- the models' criterion ----------------------------------------------------------------------


def sasrec():
    return build("sasrec", n_items=N_ITEMS, max_len=8, hidden_size=16, **NO_DROPOUT["sasrec"])


def test_ce_criterion_is_the_old_formula_exactly() -> None:
    model = sasrec()
    items, lengths, targets = random_batch(N_ITEMS, 32, 8, seed=1)
    assert model.loss_kind == "ce"  # never set: today's CE
    old = F.cross_entropy(model.score(model(items, lengths)), targets)
    assert torch.equal(model.loss(items, lengths, targets), old)
    model.set_loss("bpr", 3)
    model.set_loss("ce")
    assert torch.equal(model.loss(items, lengths, targets), old)
    # weighted: Σ w·CE / max(Σ w, 1), as BERT4Rec's cloze loss
    user = model(items, lengths)
    weight = torch.arange(32) % 3 == 0
    losses = F.cross_entropy(model.score(user), targets, reduction="none")
    w = weight.to(losses.dtype)
    assert torch.equal(
        model.criterion(user, targets, weight), (losses * w).sum() / w.sum().clamp(min=1.0)
    )
    # all positions: CE over the real slots
    hidden = model.forward_all(items, lengths)
    real = torch.arange(8)[None, :] < lengths[:, None]
    all_targets = torch.randint(1, N_ITEMS + 1, (32, 8), generator=torch.Generator())
    old_all = F.cross_entropy(model.score(hidden[real]), all_targets[real])
    assert torch.equal(model.loss_all_positions(items, lengths, all_targets), old_all)


def test_score_items_agrees_with_score() -> None:
    for model in (sasrec(), build("bert4rec", n_items=N_ITEMS, max_len=8, hidden_size=16)):
        if hasattr(model, "output_bias"):
            with torch.no_grad():
                model.output_bias.normal_()  # a nonzero bias must be added too
        user = torch.randn(6, 16)
        items = torch.randint(0, N_ITEMS + 1, (6, 4))
        expected = model.score(user).gather(1, items)
        torch.testing.assert_close(model.score_items(user, items), expected)


@pytest.mark.parametrize("kind", ["bce", "bpr"])
@pytest.mark.parametrize("k", [1, 3])
def test_sampled_criterion_on_a_model(kind: str, k: int) -> None:
    model = sasrec()
    model.set_loss(kind, k)
    items, lengths, targets = random_batch(N_ITEMS, 32, 8, seed=2)
    torch.manual_seed(5)
    loss = model.loss(items, lengths, targets)
    assert loss.shape == () and torch.isfinite(loss)
    loss.backward()
    grad = model.item_embedding.weight.grad
    assert grad is not None and grad.abs().sum() > 0
    # the same seed draws the same negatives: the same loss
    torch.manual_seed(5)
    assert torch.equal(model.loss(items, lengths, targets), loss)
    torch.manual_seed(6)
    assert not torch.equal(model.loss(items, lengths, targets), loss)
    # exactly sampled_loss of the dot products with negatives drawn from the global generator
    with torch.no_grad():
        user = model(items, lengths)
        torch.manual_seed(5)
        negatives = sample_negatives(targets, N_ITEMS, k)
        table = model.item_embedding.weight
        pos = (user * table[targets]).sum(-1)
        neg = torch.einsum("nd,nkd->nk", user, table[negatives])
        torch.testing.assert_close(loss.detach(), sampled_loss(kind, pos, neg))
        # all positions use the criterion too
        all_targets = torch.randint(1, N_ITEMS + 1, (32, 8))
        assert torch.isfinite(model.loss_all_positions(items, lengths, all_targets))


def test_set_loss_refuses_what_it_cannot_do() -> None:
    model = sasrec()
    with pytest.raises(ValueError, match="unknown loss"):
        model.set_loss("hinge")
    with pytest.raises(ValueError, match="negatives = 0"):
        model.set_loss("bce", 0)
    with pytest.raises(ValueError, match="negatives applies to loss 'bce' or 'bpr' only"):
        model.set_loss("ce", 2)
    assert model.loss_kind == "ce" and model.loss_negatives == 1


def _old_cloze_loss(model, items: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
    """BERT4Rec's cloze CE as written before the criterion existed."""
    hidden, mask = model._encoder_input(torch.where(masked, model.mask_token, items))
    hidden = model.trm_encoder(hidden, mask)
    slots, weight = model.trained_slots(masked)
    at = hidden.gather(1, slots[:, :, None].expand(-1, -1, hidden.shape[-1]))
    logits = model.score(model._head(at))
    losses = F.cross_entropy(
        logits.flatten(0, 1), items.gather(1, slots).flatten(), reduction="none"
    )
    weight = weight.flatten().to(losses.dtype)
    return (losses * weight).sum() / weight.sum().clamp(min=1.0)


def test_bert4rec_cloze_ce_is_unchanged_and_sampled_losses_train_the_bias() -> None:
    model = build("bert4rec", n_items=N_ITEMS, max_len=8, hidden_size=16)
    items, lengths, _ = random_batch(N_ITEMS, 32, 8, seed=3)
    for seed in range(3):
        torch.manual_seed(seed)
        masked = model.draw_masks(items, lengths)
        torch.manual_seed(100 + seed)  # the same dropout draws
        new = model.cloze_loss(items, masked)
        torch.manual_seed(100 + seed)
        assert torch.equal(new, _old_cloze_loss(model, items, masked))
    for kind in ("bce", "bpr"):
        model.zero_grad()
        model.set_loss(kind, 2)
        torch.manual_seed(0)
        loss = model.loss(items, lengths, torch.zeros(32, dtype=torch.int64))
        assert torch.isfinite(loss)
        loss.backward()
        assert model.output_bias.grad.abs().sum() > 0
        assert model.item_embedding.weight.grad.abs().sum() > 0
