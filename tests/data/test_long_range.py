"""The synthetic generator's long-range recall (``long_range = D``): the item D positions back
decides the next item exactly, and a model limited to the last 50 items is at chance on it,
while the default data (and its fingerprint) are unchanged."""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np
import pytest

from seqbench.data.load import DatasetSpec, load_dataset
from seqbench.data.protocol import Protocol
from seqbench.data.synthetic import SyntheticConfig, answers, content_sha256, generate

#: seqbench's synthetic data before the long-range recall existed (main at 5b38783).
DEFAULT_SHA256 = "07067771b530ee410b5ee514c6c5d2bd595615b86871ebebfe97f253fb004bb9"
SMOKE_SHA256 = "d804de0ee2825088d8f6a4a8a7f2f9238d26f5c9db2a245b77581e409ad1d6a9"  # n_users=600
DEFAULT_OPTIONS = {
    "seed": 0, "n_users": 1000, "n_items": 500, "min_length": 10, "mean_length": 25.0,
    "max_length": 80, "clusters": 10, "successors": 3, "p_markov": 0.6, "p_periodic": 0.2,
    "min_period": 4, "max_period": 12, "zipf": 1.0, "text": True,
}  # fmt: skip
DISTANCE, KEYS, WINDOW = 64, 8, 50
LONG = {
    "n_users": 200, "n_items": 100, "min_length": 300, "mean_length": 300, "max_length": 300,
    "long_range": DISTANCE, "long_keys": KEYS, "p_cue": 0.1, "text": False,
}  # fmt: skip


def test_the_default_data_and_its_fingerprint_are_unchanged() -> None:
    assert content_sha256(generate(SyntheticConfig())) == DEFAULT_SHA256
    assert content_sha256(generate(SyntheticConfig(n_users=600))) == SMOKE_SHA256
    assert SyntheticConfig().fingerprint() == DEFAULT_OPTIONS
    assert SyntheticConfig(**LONG).fingerprint()["long_range"] == DISTANCE


def test_long_range_options_need_a_distance() -> None:
    with pytest.raises(ValueError, match="long_keys and p_cue need long_range > 0"):
        SyntheticConfig(long_keys=4, p_cue=0.1)
    with pytest.raises(ValueError, match=r"less than or equal to 0\.5"):
        SyntheticConfig(long_range=10, p_cue=0.9)


def _sequences(config: SyntheticConfig) -> list[np.ndarray]:
    raw = generate(config)
    order = np.lexsort((raw.timestamp, raw.user))
    users, items = raw.user[order], raw.item[order]
    return np.split(items, np.flatnonzero(np.diff(users)) + 1)


def test_the_item_far_back_decides_the_next_one_exactly() -> None:
    config = SyntheticConfig(**LONG)
    answer = answers(config)
    n, cues, answered = config.n_items, 0, 0
    for seq in _sequences(config):
        assert len(seq) == 300 and seq.max() < n + 2 * KEYS
        for t in range(DISTANCE, len(seq)):
            back = seq[t - DISTANCE]
            if n <= back < n + KEYS:  # a cue: its answer follows D positions later
                cues += 1
                answered += seq[t] == answer[back - n]
            else:
                assert not n + KEYS <= seq[t] < n + 2 * KEYS  # answers only answer cues
    assert cues > 3000 and answered == cues


def _lag_table_accuracy(inputs: np.ndarray, lengths: np.ndarray, targets: np.ndarray,
                        lag: int) -> float:  # fmt: skip
    """Held-out accuracy of the best lookup table from the item ``lag`` slots back to the
    target: fitted on even samples, scored on odd ones."""
    value = inputs[np.arange(len(inputs)), lengths - lag]
    table: dict[int, Counter[int]] = defaultdict(Counter)
    for v, y in zip(value[::2], targets[::2], strict=True):
        table[int(v)][int(y)] += 1
    guess = [table[int(v)].most_common(1)[0][0] if table[int(v)] else -1 for v in value[1::2]]
    return float(np.mean(np.asarray(guess) == targets[1::2]))


def _answer_samples(max_len: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    config = SyntheticConfig(**LONG)
    dataset = load_dataset(
        DatasetSpec(name="synthetic", options=LONG), Protocol(max_len=max_len, k_core=0)
    )
    inputs, lengths, targets = dataset.inputs("train")
    tokens = dataset.data.item_tokens  # id j: tokens[j]; generator id i has token str(i + 1)
    first_answer = config.n_items + KEYS + 1
    raw_targets = np.array([int(tokens[t]) for t in targets])
    keep = (raw_targets >= first_answer) & (lengths == max_len)
    return inputs[keep], lengths[keep], targets[keep], int(keep.sum())


def test_a_model_limited_to_the_last_50_items_is_at_chance_on_the_answers() -> None:
    inputs, lengths, targets, count = _answer_samples(WINDOW)
    assert count > 3000
    chance = 1 / KEYS
    accuracies = [_lag_table_accuracy(inputs, lengths, targets, lag) for lag in range(1, 51)]
    # every lag inside the window: chance (≈ 0.125; 6 standard errors above it is a leak)
    assert max(accuracies) < chance + 6 * np.sqrt(chance * (1 - chance) / (count / 2))
    assert np.mean(accuracies) == pytest.approx(chance, abs=0.02)


def test_a_context_of_the_distance_sees_every_answer() -> None:
    inputs, lengths, targets, count = _answer_samples(DISTANCE + 16)
    assert count > 3000
    assert _lag_table_accuracy(inputs, lengths, targets, DISTANCE) > 0.99
    assert _lag_table_accuracy(inputs, lengths, targets, DISTANCE - 10) < 0.25
