"""Pop: exact counts on hand-made logs; valid and test targets are never counted."""

from __future__ import annotations

import pytest
import torch

from seqbench.data.dataset import SequentialDataset
from seqbench.data.protocol import Protocol, process
from seqbench.models.pop import Pop, PopParams, training_counts
from seqbench.models.registry import get_model
from tests.data.test_protocol import LOG, make_raw


def dataset(rows: list[tuple]) -> SequentialDataset:
    protocol = Protocol(k_core=0, max_len=3)
    return SequentialDataset("hand", process(make_raw(rows), protocol), protocol)


def fitted(ds: SequentialDataset) -> Pop:
    model = Pop(PopParams(), n_items=ds.n_items, max_len=3)
    model.fit_statistics(ds)
    return model


def test_counts_on_the_protocol_test_log() -> None:
    # Sequences (ids x,y,z,w = 1..4): A = y x z w, B = x y z, C = x y, D = w x y z, E = x.
    # Training part: A: y x (valid z, test w); B: x y (test z); C: x y (its one sample is a
    # train sample); D: w x (valid y, test z); E: nothing (no sample at all).
    ds = dataset(LOG)
    assert ds.data.item_tokens.tolist() == ["[PAD]", "x", "y", "z", "w"]
    assert training_counts(ds).tolist() == [0, 4, 3, 0, 1]
    assert fitted(ds).item_cnt.tolist() == [0, 4, 3, 0, 1]


def test_valid_and_test_targets_are_never_counted_and_repeats_are() -> None:
    rows = []
    for u, history in enumerate([["a", "b", "a", "c"], ["a", "a", "b"], ["d", "b", "b", "b"]]):
        rows += [(f"u{u}", item, t) for t, item in enumerate([*history, f"v{u}", f"t{u}"])]
    ds = dataset(rows)
    counts = dict(zip(ds.data.item_tokens.tolist(), training_counts(ds).tolist(), strict=True))
    assert counts == {
        "[PAD]": 0,
        "a": 4,
        "b": 5,
        "c": 1,
        "d": 1,
        **{f"{s}{u}": 0 for s in "vt" for u in range(3)},
    }
    model = fitted(ds)
    valid = torch.as_tensor(ds.data.items[ds.data.valid.end])
    test = torch.as_tensor(ds.data.items[ds.data.test.end])
    assert torch.all(model.item_cnt[valid] == 0) and torch.all(model.item_cnt[test] == 0)


def test_every_user_gets_the_counts_as_scores() -> None:
    ds = dataset(LOG)
    model = fitted(ds)
    items = torch.tensor([[1, 2, 0], [4, 0, 0]])
    user = model(items, torch.tensor([2, 1]))
    assert user.shape == (2, 1) and torch.all(user == 1)
    table = model.output_embeddings()
    assert table.shape == (5, 1) and table.dtype == torch.float32
    assert model.score(user).tolist() == [[0.0, 4.0, 3.0, 0.0, 1.0]] * 2
    assert model.score(user, 1, 3).tolist() == [[4.0, 3.0]] * 2


def test_pop_is_registered_untrained_and_without_parameters() -> None:
    spec = get_model("pop")
    assert spec.cls is Pop and spec.causal and not spec.cls.trainable
    assert spec.params.model_fields == {}
    model = spec.cls(spec.params(), n_items=4, max_len=3)
    assert list(model.parameters()) == []
    assert "item_cnt" in model.state_dict()  # counts move with the model and its checkpoints


def test_fit_rejects_a_dataset_of_another_size() -> None:
    with pytest.raises(ValueError, match="built for 9 items, the dataset has 4"):
        Pop(PopParams(), n_items=9, max_len=3).fit_statistics(dataset(LOG))
