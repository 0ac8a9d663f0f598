"""Shared blocks: the faster CPU dropout and the encoder's one-slot readout."""

from __future__ import annotations

import pytest
import torch

from seqbench.models.layers.dropout import Dropout, dropout
from seqbench.models.layers.transformer import TransformerEncoder, attention_mask


@pytest.mark.parametrize("p", [0.2, 0.5])
def test_dropout_has_nn_dropouts_distribution(p: float) -> None:
    torch.manual_seed(0)
    x = torch.full((400_000,), 3.0, requires_grad=True)
    y = dropout(x, p, training=True)
    dropped = y == 0
    assert dropped.float().mean().item() == pytest.approx(p, abs=0.005)
    assert torch.allclose(y[~dropped], torch.tensor(3.0 / (1 - p)))
    y.sum().backward()
    torch.testing.assert_close(x.grad, (~dropped).float() / (1 - p))


def test_dropout_is_the_identity_in_eval_and_at_zero() -> None:
    x = torch.randn(10, 4)
    layer = Dropout(0.5).eval()
    assert layer(x) is x and dropout(x, 0.0, training=True) is x
    assert torch.equal(dropout(x, 1.0, training=True), torch.zeros_like(x))


def test_dropout_is_reproducible_under_a_seed() -> None:
    x = torch.randn(1000)
    torch.manual_seed(3)
    first = dropout(x, 0.3, training=True)
    torch.manual_seed(3)
    assert torch.equal(dropout(x, 0.3, training=True), first)


@pytest.mark.parametrize("causal", [True, False])
def test_readout_equals_the_full_encoder_at_that_slot(causal: bool) -> None:
    """Also for a bidirectional mask (BERT-style models will read one slot the same way)."""
    torch.manual_seed(0)
    encoder = TransformerEncoder(2, 2, 16, 32, 0.1, 0.1, "gelu", 1e-12).eval()
    items = torch.tensor([[4, 2, 7, 0, 0], [1, 1, 1, 1, 1], [9, 3, 0, 0, 0]])
    at = torch.tensor([1, 4, 0])  # any slot, not only the last real one
    hidden = torch.randn(3, 5, 16)
    mask = attention_mask(items, causal=causal)
    with torch.no_grad():
        full = encoder(hidden, mask)[torch.arange(3), at]
        torch.testing.assert_close(encoder.readout(hidden, mask, at), full, rtol=0, atol=1e-6)
