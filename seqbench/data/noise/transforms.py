"""Noise transforms on right-padded item sequences, vectorised over a whole split.

Every function takes a batch of sequences as the model sees them — ``inputs`` (S, L) int64,
slot j the j-th oldest item, 0 after the last one, and ``lengths`` (S,) ≥ 1 — and returns new
arrays of the same shape (the inputs are never modified in place). Randomness comes only from
the ``rng`` passed in, consumed in a fixed order, so the output is a function of (inputs,
settings, generator state). Targets are not an argument: no transform can touch them. The
padding id 0 never appears as an item (new items are drawn from 1..n_items), and every sequence
keeps at least one item.
"""

from __future__ import annotations

import numpy as np

Array = np.ndarray


def real_slots(lengths: Array, width: int) -> Array:
    """(S, width) mask of the slots that hold an item."""
    return np.arange(width)[None, :] < np.asarray(lengths)[:, None]


def draw_counts(lengths: Array, ratio: float, rng: np.random.Generator, cap: int = 0) -> Array:
    """How many items each sequence loses/gains: Binomial(length, ratio), at most
    ``length - cap`` (``cap = 1`` keeps one item for deletions)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    counts = rng.binomial(lengths, ratio).astype(np.int64)
    return np.minimum(counts, np.maximum(lengths - cap, 0))


def choose(
    lengths: Array, counts: Array, where: str, rng: np.random.Generator, width: int
) -> Array:
    """(S, width) mask of ``counts`` slots per sequence: a uniformly random subset (``uniform``)
    or one contiguous block of the oldest (``beginning``), central (``middle``, starting at
    ⌊(n − k)/2⌋) or most recent (``end``) items."""
    lengths, counts = np.asarray(lengths), np.asarray(counts)
    slots = np.arange(width)[None, :]
    if where == "uniform":
        keys = rng.random((lengths.shape[0], width))
        keys[~real_slots(lengths, width)] = 2.0  # padding sorts last: never chosen
        rank = np.argsort(np.argsort(keys, axis=1, kind="stable"), axis=1, kind="stable")
        return rank < counts[:, None]
    if where == "beginning":
        start = np.zeros_like(lengths)
    elif where == "end":
        start = lengths - counts
    elif where == "middle":
        start = (lengths - counts) // 2
    else:
        raise ValueError(f"unknown position {where!r}; expected uniform, beginning, middle, end")
    return (slots >= start[:, None]) & (slots < (start + counts)[:, None])


def draw_items(
    rng: np.random.Generator, size: int, n_items: int, popularity: Array | None = None
) -> Array:
    """``size`` item ids in 1..n_items: uniform, or proportional to ``popularity`` (counts
    indexed by id, row 0 ignored; an item never seen in training is never drawn)."""
    if popularity is None:
        return rng.integers(1, n_items + 1, size=size, dtype=np.int64)
    weights = np.asarray(popularity[1 : n_items + 1], dtype=np.float64)
    if weights.sum() <= 0:
        raise ValueError("popularity sampling needs at least one item with a training count")
    return rng.choice(n_items, size=size, p=weights / weights.sum()).astype(np.int64) + 1


def replace(inputs: Array, mask: Array, new_items: Array) -> Array:
    """Items at the ``mask`` slots become ``new_items`` (row-major order); lengths unchanged.
    A new item may by chance equal the one it replaces (probability 1/n_items if uniform)."""
    out = inputs.copy()
    out[mask] = new_items
    return out


def delete(inputs: Array, lengths: Array, mask: Array) -> tuple[Array, Array]:
    """Items at the ``mask`` slots are removed and the rest close up, in order (right-padded
    again). The caller leaves at least one item (``draw_counts(..., cap=1)``)."""
    keep = real_slots(lengths, inputs.shape[1]) & ~mask
    new_lengths = keep.sum(axis=1).astype(np.int64)
    if (new_lengths < 1).any():
        raise ValueError("a deletion would leave an empty sequence")
    out = np.zeros_like(inputs)
    rows = np.nonzero(keep)[0]
    out[rows, (np.cumsum(keep, axis=1) - 1)[keep]] = inputs[keep]
    return out, new_lengths


def insert(
    inputs: Array, lengths: Array, counts: Array, gaps: Array, new_items: Array
) -> tuple[Array, Array]:
    """``counts[s]`` new items enter sequence s, the j-th before the item now at slot
    ``gaps[s, j]`` (``gaps == length``: after the last item, just before the target); items
    inserted into one gap keep their order. Where a sequence outgrows the width, its oldest
    items drop out (the model sees the most recent ``L``, as with any input).

    ``gaps`` (S, max(counts)) and ``new_items`` (S, max(counts)) are read where j < counts[s].
    """
    _s, width = inputs.shape
    extra = int(counts.max()) if counts.size else 0
    if extra == 0:
        return inputs.copy(), np.asarray(lengths, dtype=np.int64).copy()
    used = np.arange(extra)[None, :] < counts[:, None]
    keys = np.concatenate(
        [
            np.where(real_slots(lengths, width), 2.0 * np.arange(width)[None, :] + 1.0, np.inf),
            np.where(used, 2.0 * gaps, np.inf),  # before the item at the gap: an even key
        ],
        axis=1,
    )
    values = np.concatenate([inputs, np.where(used, new_items, 0)], axis=1)
    ordered = np.take_along_axis(values, np.argsort(keys, axis=1, kind="stable"), axis=1)
    total = np.asarray(lengths, dtype=np.int64) + counts
    new_lengths = np.minimum(total, width)
    start = total - new_lengths  # the oldest that do not fit
    slots = np.arange(width)[None, :]
    real = slots < new_lengths[:, None]
    taken = np.take_along_axis(ordered, np.where(real, start[:, None] + slots, 0), axis=1)
    return np.where(real, taken, 0), new_lengths


def insertion_gaps(lengths: Array, counts: Array, where: str, rng: np.random.Generator) -> Array:
    """(S, max(counts)) gap of each inserted item: uniform over the n + 1 gaps of an n-item
    sequence, or all at the beginning (0), middle (⌊n/2⌋) or end (n)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    extra = max(int(counts.max()) if counts.size else 0, 1)
    if where == "uniform":
        return rng.integers(0, lengths[:, None] + 1, size=(lengths.shape[0], extra))
    gap = {"beginning": np.zeros_like(lengths), "middle": lengths // 2, "end": lengths}
    if where not in gap:
        raise ValueError(f"unknown position {where!r}; expected uniform, beginning, middle, end")
    return np.repeat(gap[where][:, None], extra, axis=1)


def shuffle(inputs: Array, mask: Array, window: int | None, rng: np.random.Generator) -> Array:
    """The items at the ``mask`` slots are permuted among those slots at random — within
    consecutive groups of ``window`` chosen slots, or all together (``window = None``);
    everything else stays where it is."""
    rows, cols = np.nonzero(mask)  # row-major: slots in order within a row
    if rows.size == 0:
        return inputs.copy()
    rank = (np.cumsum(mask, axis=1) - 1)[rows, cols]
    group = rank // window if window else np.zeros_like(rank)
    order = np.lexsort((rng.random(rows.size), group, rows))
    out = inputs.copy()
    out[rows, cols] = inputs[rows[order], cols[order]]
    return out


def truncate(inputs: Array, lengths: Array, keep: int) -> tuple[Array, Array]:
    """Only the ``keep`` most recent items stay (moved to the front, right-padded)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    new_lengths = np.minimum(lengths, keep)
    start = lengths - new_lengths
    slots = np.arange(inputs.shape[1])[None, :]
    real = slots < new_lengths[:, None]
    taken = np.take_along_axis(inputs, np.where(real, start[:, None] + slots, 0), axis=1)
    return np.where(real, taken, 0), new_lengths
