"""A split served from fixed inputs: the corrupted sequences of a noise setting."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from seqbench.batches import Batch, DeviceSplit
from seqbench.data.dataset import SequentialDataset, SplitName
from seqbench.data.noise.apply import corrupt_split
from seqbench.data.noise.spec import NoiseSpec


class NoisySplit(DeviceSplit):
    """A :class:`DeviceSplit` whose batches take their inputs and lengths from given arrays
    (S, max_len) and (S,) in split order, and their targets from the dataset (untouched).

    The flat arrays stay as in :class:`DeviceSplit`, so that history masking still sees the
    user's true history. ``on_batch(rows)``, if set, is called with each batch's rows before it
    is handed out (the embedding-noise hook needs to know them).
    """

    def __init__(
        self,
        dataset: SequentialDataset,
        split: SplitName,
        max_len: int,
        device: torch.device,
        inputs: np.ndarray,
        lengths: np.ndarray,
    ) -> None:
        super().__init__(dataset, split, max_len, device)
        if inputs.shape != (len(self), max_len) or lengths.shape != (len(self),):
            raise ValueError(
                f"inputs {inputs.shape} and lengths {lengths.shape} do not fit the "
                f"{len(self)} samples of split {split!r} at max_len {max_len}"
            )
        if (lengths < 1).any() or (lengths > max_len).any():
            raise ValueError(f"input lengths must lie in 1..{max_len}")
        self.inputs = torch.as_tensor(inputs, dtype=torch.int64, device=device)
        self.lengths = torch.as_tensor(lengths, dtype=torch.int64, device=device)
        self.targets = self.items[self.ends]
        self.on_batch: Callable[[torch.Tensor], None] | None = None

    def batch(self, rows: torch.Tensor) -> Batch:
        if self.on_batch is not None:
            self.on_batch(rows)
        return Batch(self.inputs[rows], self.lengths[rows], self.targets[rows], rows)


def noisy_split(
    dataset: SequentialDataset,
    split: SplitName,
    spec: NoiseSpec | None,
    seed: int,
    device: torch.device,
) -> NoisySplit:
    """``split`` with the sequence noise ``spec`` applied (with ``seed``; see
    :func:`seqbench.data.noise.apply.corrupt_split`), or clean with ``spec`` None or an
    embedding noise (which acts inside the model)."""
    if spec is None or spec.kind == "embedding":
        inputs, lengths, _ = dataset.inputs(split)
    else:
        inputs, lengths = corrupt_split(dataset, split, spec, seed)
    return NoisySplit(dataset, split, dataset.protocol.max_len, device, inputs, lengths)
