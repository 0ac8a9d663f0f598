"""Noise transforms on hand-made sequences: exact outputs, untouched targets, the padding id
never an item, realised ratios within their binomial bands."""

from __future__ import annotations

import numpy as np
import pytest

from seqbench.data.noise import transforms as t
from seqbench.data.noise.apply import corrupt, corrupt_split, noise_generator
from seqbench.data.noise.spec import NoiseSpec
from tests.core.fixtures import random_dataset

# Four sequences as a model sees them: right-padded, oldest first.
INPUTS = np.array(
    [
        [1, 2, 3, 4, 5, 6, 0, 0],
        [7, 8, 9, 0, 0, 0, 0, 0],
        [10, 0, 0, 0, 0, 0, 0, 0],
        [11, 12, 13, 14, 15, 16, 17, 18],
    ]
)
LENGTHS = np.array([6, 3, 1, 8])
N_ITEMS = 20
POPULARITY = np.zeros(N_ITEMS + 1, dtype=np.int64)
POPULARITY[[11, 12, 20]] = [5, 1, 10]  # only these three have training counts


def noisy(seed: int = 7, **settings: object) -> tuple[list[list[int]], list[int]]:
    spec = NoiseSpec.model_validate(settings, strict=True)
    rng = noise_generator(spec, seed, "test")
    out, lengths = corrupt(spec, INPUTS, LENGTHS, rng, n_items=N_ITEMS, popularity=POPULARITY)
    check_well_formed(out, lengths, INPUTS.shape[1])
    return out.tolist(), lengths.tolist()


def check_well_formed(out: np.ndarray, lengths: np.ndarray, width: int) -> None:
    """Every real slot holds an item id ≥ 1, every padding slot 0, every length in 1..width."""
    real = t.real_slots(lengths, width)
    assert out.shape[1] == width
    assert (lengths >= 1).all() and (lengths <= width).all()
    assert (out[real] >= 1).all() and (out[real] <= N_ITEMS).all()
    assert (out[~real] == 0).all()


# ------------------------------------------------------------------ placement needs no randomness


def test_truncate_keeps_the_most_recent_items() -> None:
    assert noisy(kind="truncate", keep=2) == (
        [[5, 6, 0, 0, 0, 0, 0, 0], [8, 9, 0, 0, 0, 0, 0, 0], [10, 0, 0, 0, 0, 0, 0, 0],
         [17, 18, 0, 0, 0, 0, 0, 0]],
        [2, 2, 1, 2],
    )  # fmt: skip


def test_deleting_everything_at_the_end_leaves_the_oldest_item() -> None:
    assert noisy(kind="delete", ratio=1.0, where="end") == (
        [[1] + [0] * 7, [7] + [0] * 7, [10] + [0] * 7, [11] + [0] * 7],
        [1, 1, 1, 1],
    )


def test_deleting_everything_at_the_beginning_leaves_the_most_recent_item() -> None:
    out, lengths = noisy(kind="delete", ratio=1.0, where="beginning")
    assert [row[0] for row in out] == [6, 9, 10, 18] and lengths == [1, 1, 1, 1]


def test_inserting_at_the_end_pushes_out_the_oldest() -> None:
    spec = NoiseSpec(kind="insert", ratio=1.0, where="end")
    rng = noise_generator(spec, 7, "test")
    out, lengths = corrupt(spec, INPUTS, LENGTHS, rng, n_items=1000)
    new = out > 18  # with 1000 items, the new ones are (almost surely) above the old ids
    assert lengths.tolist() == [8, 6, 2, 8]
    assert out[0, :2].tolist() == [5, 6] and new[0, 2:].all()  # 6 + 6: the newest 8
    assert out[1, :3].tolist() == [7, 8, 9] and new[1, 3:6].all() and out[2, 0] == 10
    assert new[3].all()  # 8 + 8: only new items are left


def test_positions_of_a_block() -> None:
    counts = np.array([2, 1, 0, 3])
    rng = np.random.default_rng(0)
    chosen = {w: t.choose(LENGTHS, counts, w, rng, 8) for w in ("beginning", "middle", "end")}
    slots = {w: [np.flatnonzero(row).tolist() for row in m] for w, m in chosen.items()}
    assert slots["beginning"] == [[0, 1], [0], [], [0, 1, 2]]
    assert slots["middle"] == [[2, 3], [1], [], [2, 3, 4]]
    assert slots["end"] == [[4, 5], [2], [], [5, 6, 7]]
    uniform = t.choose(LENGTHS, counts, "uniform", rng, 8)
    assert uniform.sum(axis=1).tolist() == [2, 1, 0, 3]
    assert not (uniform & ~t.real_slots(LENGTHS, 8)).any()  # never a padding slot


def test_insert_at_given_gaps_keeps_order_within_a_gap() -> None:
    out, lengths = t.insert(
        np.array([[1, 2, 3, 0, 0, 0]]),
        np.array([3]),
        np.array([3]),
        gaps=np.array([[0, 3, 3]]),
        new_items=np.array([[50, 60, 70]]),
    )
    assert out.tolist() == [[50, 1, 2, 3, 60, 70]] and lengths.tolist() == [6]


def test_shuffle_within_windows_permutes_inside_each_group_only() -> None:
    inputs = np.arange(1, 41).reshape(5, 8)
    lengths = np.full(5, 8)
    out = t.shuffle(inputs, t.real_slots(lengths, 8), 2, np.random.default_rng(1))
    for row, original in zip(out, inputs, strict=True):
        for g in range(4):
            assert sorted(row[2 * g : 2 * g + 2]) == sorted(original[2 * g : 2 * g + 2])
    assert (out != inputs).any()
    everything = t.shuffle(inputs, t.real_slots(lengths, 8), None, np.random.default_rng(1))
    assert (np.sort(everything, axis=1) == inputs).all()


# ------------------------------------------------------------------ exact outputs for a seed


def test_exact_outputs_for_seed_7() -> None:
    """Pinned: the corrupted inputs of stored results must be reproducible by later versions
    (a change of these numbers changes the noise, and so every noisy result)."""
    assert noisy(kind="replace", ratio=0.5) == (
        [[9, 2, 3, 6, 14, 7, 0, 0], [6, 18, 9, 0, 0, 0, 0, 0], [10, 0, 0, 0, 0, 0, 0, 0],
         [11, 7, 13, 11, 12, 16, 17, 9]],
        [6, 3, 1, 8],
    )  # fmt: skip
    assert noisy(kind="replace", ratio=0.5, where="end", sample="popularity") == (
        [[1, 2, 3, 4, 20, 20, 0, 0], [7, 8, 20, 0, 0, 0, 0, 0], [11, 0, 0, 0, 0, 0, 0, 0],
         [11, 12, 13, 14, 15, 11, 20, 11]],
        [6, 3, 1, 8],
    )  # fmt: skip
    assert noisy(kind="delete", ratio=0.5) == (
        [[1, 2, 5, 6, 0, 0, 0, 0], [8, 0, 0, 0, 0, 0, 0, 0], [10, 0, 0, 0, 0, 0, 0, 0],
         [11, 13, 16, 17, 18, 0, 0, 0]],
        [4, 1, 1, 5],
    )  # fmt: skip
    assert noisy(kind="insert", ratio=0.5) == (
        [[20, 6, 2, 3, 4, 3, 5, 6], [11, 7, 8, 15, 9, 0, 0, 0], [19, 10, 0, 0, 0, 0, 0, 0],
         [14, 7, 8, 15, 16, 18, 17, 18]],
        [8, 5, 2, 8],
    )  # fmt: skip
    assert noisy(kind="shuffle", ratio=0.5) == (
        [[6, 2, 3, 4, 5, 1, 0, 0], [9, 8, 7, 0, 0, 0, 0, 0], [10, 0, 0, 0, 0, 0, 0, 0],
         [11, 12, 13, 14, 15, 16, 17, 18]],
        [6, 3, 1, 8],
    )  # fmt: skip


def test_the_noise_depends_on_seed_split_and_settings_only() -> None:
    a = noisy(kind="replace", ratio=0.5)
    assert noisy(kind="replace", ratio=0.5, where="uniform", name="renamed") == a  # same setting
    assert noisy(seed=8, kind="replace", ratio=0.5) != a
    assert noisy(kind="replace", ratio=0.51) != a
    spec = NoiseSpec(kind="replace", ratio=0.5)
    valid = corrupt(spec, INPUTS, LENGTHS, noise_generator(spec, 7, "valid"), n_items=N_ITEMS)
    assert valid[0].tolist() != a[0]


def test_popularity_draws_only_items_seen_in_training() -> None:
    out, _lengths = noisy(kind="insert", ratio=1.0, sample="popularity")
    new = {item for row in out for item in row if item} - set(range(1, 19))
    assert new <= {20} and any(20 in row for row in out)


def test_zero_level_changes_nothing() -> None:
    for settings in (
        {"kind": "replace", "ratio": 0.0}, {"kind": "insert", "ratio": 0.0, "where": "end"},
        {"kind": "delete", "ratio": 0.0, "where": "beginning"}, {"kind": "shuffle", "ratio": 0.0},
    ):  # fmt: skip
        assert noisy(**settings) == (INPUTS.tolist(), LENGTHS.tolist()), settings
    assert noisy(kind="truncate", keep=8) == (INPUTS.tolist(), LENGTHS.tolist())


# ------------------------------------------------------------------ realised ratios


def many(seed: int = 3, n: int = 4000, length: int = 20, width: int = 64) -> tuple:
    rng = np.random.default_rng(seed)
    lengths = np.full(n, length)
    inputs = np.where(t.real_slots(lengths, width), rng.integers(1, 10**6, (n, width)), 0)
    return inputs, lengths


def band(total: int, ratio: float) -> tuple[float, float]:
    """±4 standard deviations of a Binomial(total, ratio) count."""
    sd = (total * ratio * (1 - ratio)) ** 0.5
    return total * ratio - 4 * sd, total * ratio + 4 * sd


@pytest.mark.parametrize("where", ["uniform", "beginning", "middle", "end"])
@pytest.mark.parametrize("kind", ["replace", "delete", "insert"])
def test_realised_ratio_lies_in_its_binomial_band(kind: str, where: str) -> None:
    inputs, lengths = many()
    spec = NoiseSpec(kind=kind, ratio=0.2, where=where)  # type: ignore[arg-type]
    out, new_lengths = corrupt(spec, inputs, lengths, noise_generator(spec, 1, "test"),
                               n_items=10**6)  # fmt: skip
    if kind == "replace":
        hit = int((out != inputs).sum())  # a same-item draw: probability 1e-6 per hit
    elif kind == "delete":
        hit = int((lengths - new_lengths).sum())
    else:
        hit = int((new_lengths - lengths).sum())
    low, high = band(int(lengths.sum()), 0.2)
    assert low <= hit <= high, (hit, low, high)


def test_chosen_shuffle_slots_lie_in_their_binomial_band() -> None:
    _, lengths = many()
    rng = np.random.default_rng(5)
    counts = t.draw_counts(lengths, 0.3, rng)
    low, high = band(int(lengths.sum()), 0.3)
    assert low <= int(t.choose(lengths, counts, "uniform", rng, 64).sum()) <= high


# ------------------------------------------------------------------ a whole split


def test_a_split_keeps_its_targets_and_never_shows_padding_as_an_item() -> None:
    dataset = random_dataset(n_users=60, n_items=25, max_len=6)
    inputs, _lengths, targets = dataset.inputs("test")
    for spec in (
        NoiseSpec(kind="replace", ratio=0.4, sample="popularity"),
        NoiseSpec(kind="insert", ratio=0.5, where="end"),
        NoiseSpec(kind="delete", ratio=0.5),
        NoiseSpec(kind="shuffle", ratio=0.5, window=2),
    ):
        out, new_lengths = corrupt_split(dataset, "test", spec, seed=3)
        assert out.shape == inputs.shape
        real = t.real_slots(new_lengths, out.shape[1])
        assert (out[real] >= 1).all() and (out[~real] == 0).all() and (new_lengths >= 1).all()
        assert (out != inputs).any()
        again, _ = corrupt_split(dataset, "test", spec, seed=3)
        assert (again == out).all()  # a function of (dataset, settings, seed)
    assert (dataset.inputs("test")[2] == targets).all()  # nothing was modified in place
