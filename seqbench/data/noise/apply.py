"""A noise setting applied to a split: the seeded generator and the corrupted inputs.

The corrupted inputs of a split are a function of the dataset (its samples, in split order),
the noise settings (:meth:`NoiseSpec.identity`) and the seed — never of a model, a device, the
batch size or the order in which batches are drawn — so every model evaluated (or trained) with
the same setting and seed sees exactly the same corrupted sequences, and paired tests across
models stay valid.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from seqbench.data.noise import transforms as t
from seqbench.data.noise.spec import NoiseSpec

if TYPE_CHECKING:
    from seqbench.data.dataset import SequentialDataset, SplitName

#: Each split its own stream, so that the valid and test corruptions are independent.
SPLIT_STREAMS = {"train": 0, "valid": 1, "test": 2}


def noise_seed_sequence(spec: NoiseSpec, seed: int, split: str) -> np.random.SeedSequence:
    """The entropy of a setting's noise: (seed, split, sha256 of the settings)."""
    words = np.frombuffer(spec.digest(), dtype=np.uint32)
    return np.random.SeedSequence([int(seed), SPLIT_STREAMS[split], *(int(w) for w in words)])


def noise_generator(spec: NoiseSpec, seed: int, split: str) -> np.random.Generator:
    """A fresh numpy generator for ``spec`` on ``split`` with ``seed`` (PCG64)."""
    return np.random.Generator(np.random.PCG64(noise_seed_sequence(spec, seed, split)))


def corrupt(
    spec: NoiseSpec,
    inputs: np.ndarray,
    lengths: np.ndarray,
    rng: np.random.Generator,
    *,
    n_items: int,
    popularity: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, lengths) after the sequence noise ``spec``; ``popularity`` (item counts by id)
    is needed for ``sample = "popularity"``. Embedding noise is not a sequence transform."""
    lengths = np.asarray(lengths, dtype=np.int64)
    width = inputs.shape[1]
    pop = popularity if spec.sample == "popularity" else None
    if spec.sample == "popularity" and popularity is None:
        raise ValueError("sample = 'popularity' needs the items' training counts")
    if spec.kind == "truncate":
        assert spec.keep is not None
        return t.truncate(inputs, lengths, spec.keep)
    if spec.kind == "embedding":
        raise ValueError("embedding noise acts on a model's embeddings, not on the sequences")
    assert spec.ratio is not None and spec.where is not None
    if spec.kind == "insert":
        counts = t.draw_counts(lengths, spec.ratio, rng)
        gaps = t.insertion_gaps(lengths, counts, spec.where, rng)
        new = t.draw_items(rng, gaps.size, n_items, pop).reshape(gaps.shape)
        return t.insert(inputs, lengths, counts, gaps, new)
    counts = t.draw_counts(lengths, spec.ratio, rng, cap=1 if spec.kind == "delete" else 0)
    mask = t.choose(lengths, counts, spec.where, rng, width)
    if spec.kind == "replace":
        new = t.draw_items(rng, int(mask.sum()), n_items, pop)
        return t.replace(inputs, mask, new), lengths.copy()
    if spec.kind == "delete":
        return t.delete(inputs, lengths, mask)
    if spec.kind == "shuffle":
        return t.shuffle(inputs, mask, spec.window, rng), lengths.copy()
    raise ValueError(f"unknown noise kind {spec.kind!r}")


def corrupt_split(
    dataset: SequentialDataset, split: SplitName, spec: NoiseSpec, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """The corrupted (inputs (S, max_len), lengths (S,)) of a whole split, in split order;
    targets are the split's own (untouched)."""
    inputs, lengths, _ = dataset.inputs(split)
    popularity = None
    if spec.sample == "popularity":
        from seqbench.models.pop import training_counts  # the counts Pop ranks by

        popularity = training_counts(dataset)
    return corrupt(
        spec,
        inputs,
        lengths,
        noise_generator(spec, seed, split),
        n_items=dataset.n_items,
        popularity=popularity,
    )
