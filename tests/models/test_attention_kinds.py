"""``attention = "sdpa" | "naive"`` (SASRec, BERT4Rec): the fused kernel seqbench uses and
RecBole's explicit L×L score matrix give the same outputs and gradients within 1e-5, run
different code, and the default keeps every existing cell's parameters and hash."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from seqbench.errors import ConfigError
from seqbench.models.layers import transformer
from tests.models.util import build, random_batch
from tests.test_cells import SOURCE
from tests.test_suite import loaded

NO_DROPOUT = {"hidden_dropout_prob": 0.0, "attn_dropout_prob": 0.0}
SMALL = {"hidden_size": 32, "n_heads": 4, "inner_size": 64}


def _pair(name: str, max_len: int, **params: object) -> tuple[torch.nn.Module, torch.nn.Module]:
    fused = build(name, n_items=60, max_len=max_len, **SMALL, **params)
    naive = build(name, n_items=60, max_len=max_len, **SMALL, attention="naive", **params)
    naive.load_state_dict(fused.state_dict())  # no parameter of its own: the same weights
    return fused, naive


@pytest.mark.parametrize("name", ["sasrec", "bert4rec"])
@pytest.mark.parametrize("max_len", [7, 37])
def test_naive_and_fused_attention_give_the_same_outputs(name: str, max_len: int) -> None:
    fused, naive = _pair(name, max_len)
    fused.eval()
    naive.eval()
    items, lengths, _ = random_batch(60, 16, max_len, seed=max_len)
    with torch.no_grad():
        a, b = fused(items, lengths), naive(items, lengths)
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
        torch.testing.assert_close(fused.score(a), naive.score(b), rtol=0, atol=1e-5)
        if name == "sasrec":  # every slot too (the readout computes the last layer at one)
            torch.testing.assert_close(
                fused.forward_all(items, lengths), naive.forward_all(items, lengths),
                rtol=0, atol=1e-5,
            )  # fmt: skip


@pytest.mark.parametrize("name", ["sasrec", "bert4rec"])
def test_naive_and_fused_attention_give_the_same_loss_and_gradients(name: str) -> None:
    fused, naive = _pair(name, 23, **NO_DROPOUT)
    items, lengths, targets = random_batch(60, 12, 23, seed=1)
    losses = []
    for model in (fused, naive):
        model.train()
        torch.manual_seed(5)  # BERT4Rec draws its cloze masks: the same ones for both
        loss = model.loss(items, lengths, targets)
        loss.backward()
        losses.append(loss.detach())
    torch.testing.assert_close(losses[0], losses[1], rtol=0, atol=1e-5)
    grads = dict(naive.named_parameters())
    for key, param in fused.named_parameters():
        assert param.grad is not None, key
        torch.testing.assert_close(param.grad, grads[key].grad, rtol=0, atol=1e-5, msg=key)


def test_naive_attention_never_calls_the_fused_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    fused, naive = _pair("sasrec", 9)
    calls = []
    original = F.scaled_dot_product_attention

    def spy(*args: object, **kwargs: object) -> torch.Tensor:
        calls.append(1)
        return original(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(transformer.F, "scaled_dot_product_attention", spy, raising=False)
    items, lengths, _ = random_batch(60, 4, 9)
    with torch.no_grad():
        naive.eval()(items, lengths)
        assert not calls
        fused.eval()(items, lengths)
        assert calls


def test_unknown_attention_is_refused() -> None:
    with pytest.raises(ConfigError, match="'sdpa' or 'naive'"):
        build("sasrec", attention="flash")


HEAD = """\
[suite]
name = "a"
seeds = [1]

[[datasets]]
name = "synthetic"
"""


def test_the_default_keeps_cell_parameters_and_hashes(tmp_path: Path) -> None:
    models = """
[[models]]
model = "sasrec"

[[models]]
model = "sasrec"
name = "sasrec-naive"
params = { attention = "naive" }

[[models]]
model = "bert4rec"
name = "bert4rec-kinds"
sweep = { attention = ["sdpa", "naive"] }
"""
    cells = {c.variant.label: c for c in loaded(tmp_path, HEAD + models).cells()}
    assert "attention" not in cells["sasrec"].variant.params
    assert cells["sasrec-naive"].variant.params["attention"] == "naive"
    assert cells["sasrec-naive"].hash(SOURCE) != cells["sasrec"].hash(SOURCE)
    sdpa, naive = cells["bert4rec-kinds@attention=sdpa"], cells["bert4rec-kinds@attention=naive"]
    assert "attention" not in sdpa.variant.params and sdpa.variant.sweep == {"attention": "sdpa"}
    assert naive.hash(SOURCE) != sdpa.hash(SOURCE)
    # the default, unset or set explicitly, is the cell it always was
    plain = loaded(tmp_path / "b", HEAD + '[[models]]\nmodel = "bert4rec"\n').cells()[0]
    explicit = loaded(
        tmp_path / "c", HEAD + '[[models]]\nmodel = "bert4rec"\nparams = { attention = "sdpa" }\n'
    ).cells()[0]
    assert plain.variant.params == explicit.variant.params == sdpa.variant.params
    assert plain.hash(SOURCE) == explicit.hash(SOURCE) == sdpa.hash(SOURCE)
