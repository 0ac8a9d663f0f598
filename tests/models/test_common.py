"""Behaviour every trained model must have: causality, padding invariance, exact fast readout,
RecBole's CE over the whole table, deterministic evaluation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from seqbench.models.base import gather_last
from seqbench.models.registry import get_model
from tests.models.util import NO_DROPOUT, build, random_batch

TRAINED = ["sasrec", "gru4rec"]
N_ITEMS, MAX_LEN = 40, 12


@pytest.mark.parametrize("name", TRAINED)
def test_spec_declares_causal_and_all_positions(name: str) -> None:
    spec = get_model(name)
    assert spec.is_causal() and spec.all_positions
    assert spec.cls.trainable


@pytest.mark.parametrize("name", TRAINED)
@pytest.mark.parametrize("t", [0, 4, MAX_LEN - 2])
def test_later_items_never_change_earlier_slots(name: str, t: int) -> None:
    model = build(name, N_ITEMS, MAX_LEN).eval()
    items, lengths, _ = random_batch(N_ITEMS, 16, MAX_LEN, seed=1, min_length=MAX_LEN)
    changed = items.clone()
    changed[:, t + 1 :] = torch.randint(1, N_ITEMS + 1, changed[:, t + 1 :].shape)
    changed[:, t + 1] = items[:, t + 1] % N_ITEMS + 1  # surely another item at slot t + 1
    with torch.no_grad():
        before = model.forward_all(items, lengths)
        after = model.forward_all(changed, lengths)
    torch.testing.assert_close(after[:, : t + 1], before[:, : t + 1], rtol=0, atol=1e-6)
    assert (after[:, t + 1] - before[:, t + 1]).abs().max() > 1e-3  # the test can see changes


@pytest.mark.parametrize("name", TRAINED)
def test_padding_slots_do_not_change_the_readout(name: str) -> None:
    model = build(name, N_ITEMS, MAX_LEN).eval()
    items, lengths, _ = random_batch(N_ITEMS, 32, MAX_LEN, seed=2)
    junk = torch.randint(1, N_ITEMS + 1, items.shape)
    padded = torch.arange(MAX_LEN)[None, :] >= lengths[:, None]
    assert padded.any()
    with torch.no_grad():
        clean = model(items, lengths)
        dirty = model(torch.where(padded, junk, items), lengths)
    torch.testing.assert_close(dirty, clean, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", TRAINED)
def test_fast_readout_equals_every_slot_gathered_in_eval(name: str) -> None:
    model = build(name, N_ITEMS, MAX_LEN).eval()
    items, lengths, _ = random_batch(N_ITEMS, 64, MAX_LEN, seed=3)
    with torch.no_grad():
        fast = model(items, lengths)
        full = gather_last(model.forward_all(items, lengths), lengths)
    assert fast.shape == (64, model.output_embeddings().shape[1])
    torch.testing.assert_close(fast, full, rtol=0, atol=2e-6)


@pytest.mark.parametrize("name", TRAINED)
def test_fast_readout_equals_every_slot_in_training_without_dropout(name: str) -> None:
    """Outputs and gradients: the fast path is the same function, not only the same values."""
    model = build(name, N_ITEMS, MAX_LEN, **NO_DROPOUT[name]).train()
    items, lengths, targets = random_batch(N_ITEMS, 64, MAX_LEN, seed=4)
    fast_loss = model.loss(items, lengths, targets)
    fast_loss.backward()
    fast_grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    user = gather_last(model.forward_all(items, lengths), lengths)
    full_loss = F.cross_entropy(model.score(user), targets)
    full_loss.backward()
    torch.testing.assert_close(fast_loss, full_loss, rtol=0, atol=1e-6)
    for n, p in model.named_parameters():
        torch.testing.assert_close(fast_grads[n], p.grad, rtol=1e-4, atol=1e-7, msg=n)


@pytest.mark.parametrize("name", TRAINED)
def test_loss_is_cross_entropy_over_every_row_of_the_table(name: str) -> None:
    model = build(name, N_ITEMS, MAX_LEN).eval()
    items, lengths, targets = random_batch(N_ITEMS, 8, MAX_LEN, seed=5)
    targets[0] = 0  # the padding row is a class like any other in RecBole's CE
    with torch.no_grad():
        user = model(items, lengths).double()
        table = model.output_embeddings().double()
        assert table.shape[0] == N_ITEMS + 1
        expected = 0.0
        for b in range(8):
            logits = [float(user[b] @ table[i]) for i in range(N_ITEMS + 1)]
            top = max(logits)
            log_z = top + torch.tensor([v - top for v in logits]).exp().sum().log().item()
            expected += (log_z - logits[int(targets[b])]) / 8
        loss = model.loss(items, lengths, targets)
    assert loss.item() == pytest.approx(expected, abs=1e-5)
    assert model.score(model(items, lengths)).shape == (8, N_ITEMS + 1)


#: Every model with dropout (FMLP-Rec's filter needs exactly max_len slots: random_batch gives it).
WITH_DROPOUT = [*TRAINED, "bert4rec", "narm", "fmlprec", "mamba4rec", "echomamba4rec",
                "bimamba4rec", "bimambaformer4rec"]  # fmt: skip


@pytest.mark.parametrize("name", WITH_DROPOUT)
def test_eval_is_deterministic_and_training_uses_dropout(name: str) -> None:
    model = build(name, N_ITEMS, MAX_LEN)
    items, lengths, _ = random_batch(N_ITEMS, 32, MAX_LEN, seed=6)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(items, lengths), model(items, lengths), rtol=0, atol=0)
        model.train()
        assert not torch.equal(model(items, lengths), model(items, lengths))


@pytest.mark.parametrize("name", TRAINED)
def test_unknown_ablation_is_a_config_error(name: str) -> None:
    from seqbench.errors import ConfigError

    spec = get_model(name)
    with pytest.raises(ConfigError, match="has no ablation 'nope'"):
        spec.cls(spec.params(), n_items=5, max_len=4, ablation="nope")
