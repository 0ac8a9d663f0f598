"""Causality, padding and the two training objectives, for every registered model × ablation.

A variant's declared causality must be TRUE in both directions: declared causal, its output at
slot t never moves when items after t change; declared non-causal, it does move (so a wrong
declaration cannot pass). "Output at slot t" is ``forward_all`` where the model has it, else
``forward`` with length t + 1 and the later slots left holding items (what the all-positions
objective would feed it).
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F

from seqbench.models.base import SequentialRecommender
from seqbench.models.registry import ModelSpec, all_models, get_model
from tests.models.util import random_batch, random_item_text

N_ITEMS, MAX_LEN = 40, 10

#: Parameter readings that change what a variant sees (each also run with every ablation).
READINGS: dict[str, list[dict[str, Any]]] = {
    "echomamba4rec": [{}, {"flip": "per_length"}, {"num_layers": 2, "layers": "flat"}],
    "bimamba4rec": [{}, {"flip": "per_length"}],
    "bimambaformer4rec": [{}, {"flip": "per_length"}],
    "mamba4rec": [{}, {"num_layers": 2}, {"recbole_init": False}],
    "m2rec": [
        {},
        {"theta_mode": "learnable"},
        {"theta_mode": "soft"},
        {"affm_position": "input"},
        {"theta": 0.5},  # a fixed mask keeping every bin: the identity, declared causal
    ],
}


def variants() -> list[tuple[str, str, dict[str, Any]]]:
    out = []
    for name, spec in sorted(all_models().items()):
        if name.startswith("dummy") or spec.cls.__module__.startswith("tests."):
            continue
        for reading in READINGS.get(name, [{}]):
            out.extend((name, ablation, reading) for ablation in spec.ablations)
    return out


VARIANTS = variants()
IDS = [f"{n}+{a}" + "".join(f",{k}={v}" for k, v in r.items()) for n, a, r in VARIANTS]


def build(
    name: str, ablation: str, reading: dict[str, Any], seed: int = 0
) -> SequentialRecommender:
    spec = get_model(name)
    torch.manual_seed(seed)
    params = spec.validate_params(reading, name)
    extra = {"item_text": random_item_text(N_ITEMS)} if spec.needs_text(params, ablation) else {}
    return spec.cls(params, n_items=N_ITEMS, max_len=MAX_LEN, ablation=ablation, **extra).eval()


def declared_causal(name: str, ablation: str, reading: dict[str, Any]) -> bool:
    spec = get_model(name)
    return spec.is_causal(spec.validate_params(reading, name), ablation)


def slot_outputs(
    spec: ModelSpec, model: SequentialRecommender, items: torch.Tensor
) -> torch.Tensor:
    full = torch.full((items.shape[0],), items.shape[1])
    with torch.no_grad():
        if spec.all_positions:
            return model.forward_all(items, full)
        return torch.stack(
            [model(items, torch.full_like(full, t + 1)) for t in range(items.shape[1])], 1
        )


@pytest.mark.parametrize(("name", "ablation", "reading"), VARIANTS, ids=IDS)
def test_declared_causality_is_true(name: str, ablation: str, reading: dict[str, Any]) -> None:
    spec = get_model(name)
    model = build(name, ablation, reading)
    items, _, _ = random_batch(N_ITEMS, 12, MAX_LEN, seed=1, min_length=MAX_LEN)
    before = slot_outputs(spec, model, items)
    moved = []
    for t in (0, 3, MAX_LEN - 2):
        changed = items.clone()
        changed[:, t + 1 :] = torch.randint(1, N_ITEMS + 1, changed[:, t + 1 :].shape)
        changed[:, t + 1] = items[:, t + 1] % N_ITEMS + 1  # surely another item at slot t + 1
        after = slot_outputs(spec, model, changed)
        moved.append(float((after[:, : t + 1] - before[:, : t + 1]).abs().max()))
    if declared_causal(name, ablation, reading):
        assert max(moved) <= 1e-5, f"declared causal, but slots ≤ t moved by {moved}"
    else:
        assert max(moved) > 1e-4, f"declared non-causal, but no earlier slot moved ({moved})"


CAUSAL = [v for v in VARIANTS if declared_causal(*v)]


@pytest.mark.parametrize(("name", "ablation", "reading"), CAUSAL)
def test_right_padding_never_changes_a_causal_readout(
    name: str, ablation: str, reading: dict[str, Any]
) -> None:
    model = build(name, ablation, reading)
    items, lengths, _ = random_batch(N_ITEMS, 32, MAX_LEN, seed=2)
    padded = torch.arange(MAX_LEN)[None, :] >= lengths[:, None]
    assert padded.any()
    junk = torch.randint(1, N_ITEMS + 1, items.shape)
    with torch.no_grad():
        clean = model(items, lengths)
        dirty = model(torch.where(padded, junk, items), lengths)
    torch.testing.assert_close(dirty, clean, rtol=0, atol=1e-6)


#: Variants that read the padding by design (a filter over all slots, a backward scan starting
#: on the padding, unmasked attention) and the ones whose readout must ignore it.
READS_PADDING = [
    ("echomamba4rec", "full", {}),
    ("echomamba4rec", "no_filter", {}),  # full flip: the backward scan starts on the padding
    ("echomamba4rec", "forward_only", {}),  # the filter
    ("echomamba4rec", "no_glu", {}),
    ("echomamba4rec", "full", {"flip": "per_length"}),  # still the filter
    ("bimamba4rec", "full", {}),
    ("bimambaformer4rec", "full", {}),
    ("bimambaformer4rec", "full", {"flip": "per_length"}),  # attention without a mask
    ("fmlprec", "full", {}),
    ("m2rec", "full", {}),  # the Fourier filter reads every slot
    ("m2rec", "no_gate", {"affm_position": "input"}),
]
IGNORES_PADDING = [
    ("m2rec", "no_affm", {}),
    ("m2rec_code", "full", {}),  # the Δ filter mixes channels of one slot only
    ("echomamba4rec", "no_filter", {"flip": "per_length"}),
    ("bimamba4rec", "full", {"flip": "per_length"}),
    ("mamba4rec", "full", {}),
]


def pad_row_effect(name: str, ablation: str, reading: dict[str, Any]) -> float:
    model = build(name, ablation, reading)
    items, lengths, _ = random_batch(N_ITEMS, 32, MAX_LEN, seed=3, min_length=2)
    assert (lengths < MAX_LEN).any()
    table = model.output_embeddings()  # tied: the input table (a view of it)
    assert table[0].abs().sum() > 0, "RecBole's padding row is random, not zero"
    with torch.no_grad():
        before = model(items, lengths)
        table[0] = torch.randn(table.shape[1], generator=torch.Generator().manual_seed(8))
        after = model(items, lengths)
    return float((after - before).abs().max())


@pytest.mark.parametrize(("name", "ablation", "reading"), READS_PADDING)
def test_padding_readers_see_recboles_random_padding_row(
    name: str, ablation: str, reading: dict[str, Any]
) -> None:
    assert pad_row_effect(name, ablation, reading) > 1e-4


@pytest.mark.parametrize(("name", "ablation", "reading"), IGNORES_PADDING)
def test_per_length_flip_and_causal_models_ignore_the_padding(
    name: str, ablation: str, reading: dict[str, Any]
) -> None:
    assert pad_row_effect(name, ablation, reading) <= 1e-5


def test_the_padding_row_gets_no_gradient_from_the_input_side() -> None:
    """padding_idx = 0: only the output side (CE over the whole table) trains row 0."""
    model = build("echomamba4rec", "full", {})
    items, lengths, _ = random_batch(N_ITEMS, 16, MAX_LEN, seed=4)
    user = model(items, lengths)
    (user.sum()).backward()  # input side only: no scoring against the table
    assert model.item_embedding.weight.grad[0].abs().max() == 0
    assert model.item_embedding.weight.grad[1:].abs().max() > 0


NO_DROPOUT = {
    "sasrec": {"hidden_dropout_prob": 0.0, "attn_dropout_prob": 0.0},
    "gru4rec": {"dropout_prob": 0.0},
    "mamba4rec": {"dropout_prob": 0.0},
    "m2rec": {"dropout_prob": 0.0},
    "m2rec_code": {"dropout_prob": 0.0},
}
ALL_POSITIONS = [
    (n, a, r)
    for n, a, r in VARIANTS
    if get_model(n).cls.trainable
    and get_model(n).allows_all_positions(get_model(n).validate_params(r, n), a)
]


def test_every_causal_trainable_model_has_a_no_dropout_setting() -> None:
    assert {n for n, _, _ in ALL_POSITIONS} == set(NO_DROPOUT)


@pytest.mark.parametrize(("name", "ablation", "reading"), ALL_POSITIONS)
def test_both_objectives_give_the_same_loss_on_short_sequences(
    name: str, ablation: str, reading: dict[str, Any]
) -> None:
    """One pass with a loss at every slot = the mean loss of every prefix sample."""
    model = build(name, ablation, {**reading, **NO_DROPOUT[name]}).train()
    items, lengths, _ = random_batch(N_ITEMS, 6, MAX_LEN, seed=5, min_length=2)
    lengths = lengths.clamp(max=MAX_LEN - 1)  # shorter than max_len
    items = items * (torch.arange(MAX_LEN)[None, :] < lengths[:, None])
    nexts = torch.randint(1, N_ITEMS + 1, items.shape, generator=torch.Generator().manual_seed(6))
    real = torch.arange(MAX_LEN)[None, :] < lengths[:, None]
    nexts = nexts * real
    all_positions = model.loss_all_positions(items, lengths, nexts)
    prefixes, prefix_lengths, targets = [], [], []
    for row in range(items.shape[0]):
        for j in range(int(lengths[row])):
            prefixes.append(items[row] * (torch.arange(MAX_LEN) <= j))
            prefix_lengths.append(j + 1)
            targets.append(nexts[row, j])
    last = F.cross_entropy(
        model.score(model(torch.stack(prefixes), torch.tensor(prefix_lengths))),
        torch.stack(targets),
    )
    torch.testing.assert_close(all_positions, last, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("name", "ablation", "reading"), VARIANTS, ids=IDS)
def test_every_variant_trains_one_step(name: str, ablation: str, reading: dict[str, Any]) -> None:
    model = build(name, ablation, reading).train()
    if not model.trainable:
        pytest.skip(f"{name} is fitted from counts (fit_statistics), not by gradient steps")
    items, lengths, targets = random_batch(N_ITEMS, 8, MAX_LEN, seed=7)
    loss = model.loss(items, lengths, targets)
    loss.backward()
    assert torch.isfinite(loss)
    assert any(p.grad is not None and p.grad.abs().max() > 0 for p in model.parameters())
