"""Random right-padded batches and small helpers shared by the model tests."""

from __future__ import annotations

import torch

from seqbench.models.base import SequentialRecommender
from seqbench.models.item_text import ItemText
from seqbench.models.registry import get_model


def random_batch(
    n_items: int, batch: int, max_len: int, seed: int = 0, min_length: int = 1
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(items (B, L) right-padded with 0, lengths (B,), targets (B,)), lengths min_length..L."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(min_length, max_len + 1, (batch,), generator=g)
    items = torch.randint(1, n_items + 1, (batch, max_len), generator=g)
    items = items * (torch.arange(max_len)[None, :] < lengths[:, None])
    targets = torch.randint(1, n_items + 1, (batch,), generator=g)
    return items, lengths, targets


def random_item_text(n_items: int, dim: int = 24, seed: int = 0) -> ItemText:
    """Random text vectors for items 1..n_items (row 0 zero), every fifth item without text."""
    g = torch.Generator().manual_seed(seed)
    vectors = torch.randn(n_items + 1, dim, generator=g)
    has_text = torch.arange(n_items + 1) % 5 != 0
    return ItemText(vectors * has_text[:, None], has_text)


def build(
    name: str, n_items: int = 50, max_len: int = 12, seed: int = 0, **params: object
) -> SequentialRecommender:
    """The registered model ``name`` with ``params`` over its defaults, seeded."""
    spec = get_model(name)
    torch.manual_seed(seed)
    return spec.cls(spec.validate_params(params, name), n_items=n_items, max_len=max_len)


NO_DROPOUT = {
    "sasrec": {"hidden_dropout_prob": 0.0, "attn_dropout_prob": 0.0},
    "gru4rec": {"dropout_prob": 0.0},
}


def transformer_layer_shapes(i: int, d: int = 64, inner: int = 256) -> dict[str, tuple[int, ...]]:
    """RecBole's ``TransformerEncoder`` layer ``i``: parameter name → shape (SASRec, BERT4Rec)."""
    p = f"trm_encoder.layer.{i}."
    shapes: dict[str, tuple[int, ...]] = {}
    for lin in ("query", "key", "value", "dense"):
        shapes[f"{p}multi_head_attention.{lin}.weight"] = (d, d)
        shapes[f"{p}multi_head_attention.{lin}.bias"] = (d,)
    shapes[f"{p}multi_head_attention.LayerNorm.weight"] = (d,)
    shapes[f"{p}multi_head_attention.LayerNorm.bias"] = (d,)
    shapes[f"{p}feed_forward.dense_1.weight"] = (inner, d)
    shapes[f"{p}feed_forward.dense_1.bias"] = (inner,)
    shapes[f"{p}feed_forward.dense_2.weight"] = (d, inner)
    shapes[f"{p}feed_forward.dense_2.bias"] = (d,)
    shapes[f"{p}feed_forward.LayerNorm.weight"] = (d,)
    shapes[f"{p}feed_forward.LayerNorm.bias"] = (d,)
    return shapes


def later_items_effect(
    name: str, t: int, seed: int, n_items: int = 40, max_len: int = 12
) -> torch.Tensor:
    """How far each row's output for the history ending at slot t moves when every item after
    slot t changes (all slots hold items): (16,). A non-causal, last-slot-only model declares
    itself so, and this effect must be positive."""
    spec = get_model(name)
    assert not spec.is_causal() and not spec.all_positions
    model = build(name, n_items=n_items, max_len=max_len).eval()
    assert not model.allows_all_positions
    items, _, _ = random_batch(n_items, 16, max_len, seed=seed, min_length=max_len)
    lengths = torch.full((16,), t + 1)
    changed = items.clone()
    changed[:, t + 1 :] = items[:, t + 1 :] % n_items + 1
    with torch.no_grad():
        return (model(changed, lengths) - model(items, lengths)).abs().amax(-1)
