"""The protocol against hand-computed cases and against a naive re-implementation of RecBole's."""

from __future__ import annotations

import numpy as np
import pytest

from seqbench.data.dataset import SequentialDataset, gather_inputs
from seqbench.data.protocol import PROTOCOL_VERSION, Protocol, k_core, process
from seqbench.data.raw import InteractionAccumulator, RawInteractions


def make_raw(rows: list[tuple], text: dict[str, str] | None = None) -> RawInteractions:
    """rows of (user, item[, time[, rating]]) in file order."""
    has_time, has_rating = len(rows[0]) > 2, len(rows[0]) > 3
    acc = InteractionAccumulator(has_time=has_time, has_rating=has_rating)
    for row in rows:
        acc.add(*[str(v) if i < 2 else float(v) for i, v in enumerate(row)])
    return acc.finish(item_text=text)


def sequences(p) -> dict[str, list[str]]:
    """Each user's items (as tokens) in processed order."""
    return {
        str(p.user_tokens[u]): p.item_tokens[p.items[p.offsets[u] : p.offsets[u + 1]]].tolist()
        for u in range(len(p.user_tokens))
    }


# Hand-made log: ties at t=10 (A) and t=4 (D) must keep file order; C has 1 sample, B 2, E none.
LOG = [
    ("A", "x", 10), ("B", "y", 5), ("A", "y", 3), ("A", "z", 10), ("B", "x", 1), ("A", "w", 20),
    ("B", "z", 7), ("C", "x", 1), ("C", "y", 2), ("D", "w", 4), ("D", "x", 4), ("D", "y", 5),
    ("D", "z", 6), ("E", "x", 1),
]  # fmt: skip


def test_prefix_samples_and_leave_one_out_exact_arrays() -> None:
    p = process(make_raw(LOG), Protocol(k_core=0))
    # ids by first appearance in the file: users A..E -> 0..4, items x,y,z,w -> 1..4
    assert p.user_tokens.tolist() == ["A", "B", "C", "D", "E"]
    assert p.item_tokens.tolist() == ["[PAD]", "x", "y", "z", "w"]
    assert p.items.tolist() == [2, 1, 3, 4, 1, 2, 3, 1, 2, 4, 1, 2, 3, 1]
    assert p.offsets.tolist() == [0, 4, 7, 9, 13, 14]
    # RecBole leaves min(2, samples - 1) out per user, test first
    assert (p.train.user.tolist(), p.train.end.tolist()) == ([0, 1, 2, 3], [1, 5, 8, 10])
    assert (p.valid.user.tolist(), p.valid.end.tolist()) == ([0, 3], [2, 11])
    assert (p.test.user.tolist(), p.test.end.tolist()) == ([0, 1, 3], [3, 6, 12])
    assert p.timestamps.tolist()[:4] == [3.0, 10.0, 10.0, 20.0]


def test_inputs_are_the_most_recent_items_right_padded() -> None:
    p = process(make_raw(LOG), Protocol(k_core=0))
    seq, length, target = gather_inputs(p.items, p.offsets, p.test.user, p.test.end, max_len=2)
    assert seq.tolist() == [[1, 3], [1, 2], [1, 2]]
    assert length.tolist() == [2, 2, 2] and target.tolist() == [4, 3, 3]
    seq, length, target = gather_inputs(p.items, p.offsets, p.test.user, p.test.end, max_len=3)
    assert seq.tolist() == [[2, 1, 3], [1, 2, 0], [4, 1, 2]]
    assert length.tolist() == [3, 2, 3]
    seq, length, _ = gather_inputs(p.items, p.offsets, p.train.user, p.train.end, max_len=4)
    assert seq.tolist() == [[2, 0, 0, 0], [1, 0, 0, 0], [1, 0, 0, 0], [4, 0, 0, 0]]


def test_without_timestamps_file_order_is_time_order() -> None:
    p = process(make_raw([(u, i) for u, i, _ in LOG]), Protocol(k_core=0))
    assert sequences(p)["A"] == ["x", "y", "z", "w"]
    assert p.timestamps is None


def test_k_core_needs_more_than_one_pass() -> None:
    # k=2: pass 1 drops (u3, c) because c is seen once; only then does u3 fall to one
    # interaction, so pass 2 drops (u3, a). One pass would keep u3.
    raw = make_raw([("u1", "a"), ("u1", "b"), ("u2", "a"), ("u2", "b"), ("u3", "a"), ("u3", "c")])
    keep, passes = k_core(raw.user, raw.item, 2)
    assert keep.tolist() == [True, True, True, True, False, False]
    assert passes == 2
    p = process(raw, Protocol(k_core=2))
    assert sequences(p) == {"u1": ["a", "b"], "u2": ["a", "b"]}
    assert p.k_core_passes == 2


def naive_k_core(pairs: list[tuple[int, int]], k: int) -> set[int]:
    """Remove one offending interaction at a time until every user and item has k: the k-core."""
    alive = set(range(len(pairs)))
    while True:
        users: dict[int, int] = {}
        items: dict[int, int] = {}
        for r in alive:
            users[pairs[r][0]] = users.get(pairs[r][0], 0) + 1
            items[pairs[r][1]] = items.get(pairs[r][1], 0) + 1
        bad = [r for r in sorted(alive) if users[pairs[r][0]] < k or items[pairs[r][1]] < k]
        if not bad:
            return alive
        alive.discard(bad[0])


@pytest.mark.parametrize("seed", range(5))
def test_k_core_matches_the_naive_definition(seed: int) -> None:
    rng = np.random.default_rng(seed)
    user = rng.integers(0, 40, size=300)
    item = (rng.zipf(1.6, size=300) - 1) % 60
    keep, _ = k_core(user, item, 3)
    assert set(np.flatnonzero(keep).tolist()) == naive_k_core(list(zip(user, item, strict=True)), 3)


def recbole_samples(raw: RawInteractions, max_len: int) -> dict[str, list[tuple]]:
    """RecBole's augmentation and split written as plain loops over sorted Python lists.

    Times are compared as float32, as RecBole's torch.FloatTensor holds them.
    """
    per_user: dict[int, list[tuple[float, int, int]]] = {}
    rows = zip(raw.user.tolist(), raw.item.tolist(), raw.timestamp, strict=True)
    for row, (u, i, t) in enumerate(rows):
        per_user.setdefault(u, []).append((float(np.float32(t)), row, i))
    out: dict[str, list[tuple]] = {"train": [], "valid": [], "test": []}
    for u in sorted(per_user, key=lambda u: min(r for _, r, _ in per_user[u])):
        items = [i for _, _, i in sorted(per_user[u])]  # (time, file row): a stable time sort
        samples = [(tuple(items[max(0, k - max_len) : k]), items[k]) for k in range(1, len(items))]
        held = min(2, len(samples) - 1)
        cut = len(samples) - held
        out["train"] += samples[:cut]
        if held == 2:
            out["valid"].append(samples[cut])
        if held >= 1:
            out["test"].append(samples[-1])
    return out


@pytest.mark.parametrize("seed", range(4))
def test_samples_match_a_naive_recbole_reimplementation(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 400
    users, items = rng.integers(0, 30, n), rng.integers(0, 25, n)
    times = 1.2e9 + rng.integers(0, 4000, n)  # float32 steps are 128 s here: many ties
    raw = make_raw([(f"u{u}", f"i{i}", t) for u, i, t in zip(users, items, times, strict=True)])
    max_len = 4
    p = process(raw, Protocol(k_core=0, max_len=max_len))
    ds = SequentialDataset("t", p, Protocol(k_core=0, max_len=max_len))
    expected = recbole_samples(raw, max_len)
    # translate expected item codes to processed ids through the tokens
    new_id = {tok: i for i, tok in enumerate(p.item_tokens.tolist())}
    to_new = [new_id[t] for t in raw.item_tokens.tolist()]
    for split in ("train", "valid", "test"):
        seq, length, target = ds.inputs(split)
        got = [(tuple(s[:n].tolist()), int(y)) for s, n, y in zip(seq, length, target, strict=True)]
        want = [(tuple(to_new[i] for i in x), to_new[y]) for x, y in expected[split]]
        assert got == want, split


def test_min_rating_filters_before_k_core() -> None:
    raw = make_raw([("u", "a", 1, 5), ("u", "b", 2, 2), ("u", "c", 3, 4), ("v", "a", 1, 3)])
    p = process(raw, Protocol(k_core=0, min_rating=4))
    assert sequences(p) == {"u": ["a", "c"]}


@pytest.mark.parametrize(
    ("dedup", "expected"), [("keep", ["a", "b", "a"]), ("first", ["a", "b"]), ("last", ["b", "a"])]
)
def test_dedup_of_repeated_pairs(dedup: str, expected: list[str]) -> None:
    raw = make_raw([("u", "a", 3), ("u", "a", 1), ("u", "b", 2)])  # time order: a(1), b(2), a(3)
    assert sequences(process(raw, Protocol(k_core=0, dedup=dedup)))["u"] == expected


def test_item_text_follows_the_remapped_ids() -> None:
    raw = make_raw([("u", "b", 1), ("u", "a", 2), ("v", "a", 1)], text={"a": "apple", "b": "bean"})
    p = process(raw, Protocol(k_core=0))
    assert p.item_tokens.tolist() == ["[PAD]", "b", "a"]
    assert p.item_text.tolist() == ["", "bean", "apple"]


def test_protocol_defaults_are_recboles_and_versioned() -> None:
    fp = Protocol().fingerprint()
    assert fp == {
        "version": PROTOCOL_VERSION,
        "k_core": 5,
        "max_len": 50,
        "min_rating": None,
        "dedup": "keep",
        "time_precision": "float32",
        "time_scaling": "none",
        "split": "leave_one_out",
        "padding": "right",
    }


def test_history_lengths_are_untruncated() -> None:
    p = process(make_raw(LOG), Protocol(k_core=0, max_len=2))
    ds = SequentialDataset("t", p, Protocol(k_core=0, max_len=2))
    assert ds.history_lengths("test").tolist() == [3, 2, 3]


def test_float32_times_tie_as_in_recbole() -> None:
    # near 1e9 s a float32 step is 64 s: 10 s apart is a tie, which keeps file order
    raw = make_raw([("u", "late", 1e9 + 10), ("u", "early", 1e9), ("u", "x", 2e9)])
    assert sequences(process(raw, Protocol(k_core=0)))["u"] == ["late", "early", "x"]
    exact = Protocol(k_core=0, time_precision="float64")
    assert sequences(process(raw, exact))["u"] == ["early", "late", "x"]


def test_minmax_scaling_ties_what_raw_float32_separates() -> None:
    # raw: 5e8 and 5e8+20 are distinct float32 values (step 32); scaled to [0, 1] over a 1e9 s
    # range they fall within one float32 step of 0.5 (6e-8) and tie, keeping file order
    rows = [("u", "b", 5e8 + 20), ("u", "a", 5e8), ("v", "a", 0), ("v", "b", 1e9)]
    raw = make_raw(rows)
    assert sequences(process(raw, Protocol(k_core=0)))["u"] == ["a", "b"]
    scaled = Protocol(k_core=0, time_scaling="minmax")
    assert sequences(process(raw, scaled))["u"] == ["b", "a"]


def test_dedup_puts_the_log_in_time_order_first_and_precedes_min_rating() -> None:
    # RecBole's _remove_duplication sorts the whole log by time before anything else, so ids
    # follow time order; and it runs before the rating filter.
    raw = make_raw([("u", "b", 2, 5), ("u", "a", 1, 1), ("u", "a", 3, 5), ("v", "c", 0, 5)])
    p = process(raw, Protocol(k_core=0, dedup="first"))
    assert p.item_tokens.tolist() == ["[PAD]", "c", "a", "b"]  # time order: c@0, a@1, b@2
    assert process(raw, Protocol(k_core=0)).item_tokens.tolist() == ["[PAD]", "b", "a", "c"]
    # the first (u, a) is rated 1: dedup keeps it, then min_rating drops it
    assert sequences(process(raw, Protocol(k_core=0, dedup="first", min_rating=4)))["u"] == ["b"]
    assert sequences(process(raw, Protocol(k_core=0, dedup="last", min_rating=4)))["u"] == [
        "b",
        "a",
    ]
