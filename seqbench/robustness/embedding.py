"""Evaluation-time Gaussian noise on a model's input item embeddings (M2Rec's robustness figure).

The noise is added by a forward hook on the module the model declares through
:meth:`SequentialRecommender.input_item_embedding`, so no model code changes: for each real
(non-padding) slot, ``e + std · RMS · z`` with ``RMS`` the root mean square of the embedding
table's item rows (1..n_items, fixed when the hook is installed) and ``z`` standard normal.

``z`` is a function of (setting, seed, split, sample row, slot, dimension) only: it is drawn on
the CPU in blocks of :data:`BLOCK` rows of the split from a generator seeded by the block's
index, so the batch size, the device and the model do not change it (two models of the same
embedding width get the same draws).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch
from torch import nn

from seqbench.data.noise.apply import noise_seed_sequence
from seqbench.data.noise.spec import NoiseSpec
from seqbench.models.base import SequentialRecommender
from seqbench.robustness.split import NoisySplit

BLOCK = 512  # split rows per block of draws


class EmbeddingNoise:
    """The hook's state: the rows of the batch in flight and the draws of their blocks."""

    def __init__(
        self, spec: NoiseSpec, seed: int, split: str, table: torch.Tensor, n_items: int
    ) -> None:
        assert spec.std is not None
        self.entropy = noise_seed_sequence(spec, seed, split).entropy
        weights = table.detach().float()[1 : n_items + 1]
        self.rms = float(weights.pow(2).mean().sqrt())
        self.scale = spec.std * self.rms
        self.rows: np.ndarray | None = None
        self._blocks: dict[int, torch.Tensor] = {}

    def set_rows(self, rows: torch.Tensor) -> None:
        self.rows = rows.detach().cpu().numpy()

    def block(self, index: int, width: int, dim: int) -> torch.Tensor:
        """Standard-normal draws (BLOCK, width, dim) of block ``index`` (the last few kept)."""
        if index not in self._blocks:
            if len(self._blocks) >= 8:
                self._blocks.pop(next(iter(self._blocks)))
            sequence = np.random.SeedSequence(self.entropy, spawn_key=(index,))
            words = sequence.generate_state(2)
            generator = torch.Generator().manual_seed(int(words[0]) << 32 | int(words[1]))
            self._blocks[index] = torch.randn((BLOCK, width, dim), generator=generator)
        return self._blocks[index]

    def draws(self, width: int, dim: int) -> torch.Tensor:
        """z (B, width, dim) of the rows in flight."""
        if self.rows is None:
            raise RuntimeError("embedding noise: no batch rows were announced (use its split)")
        blocks = self.rows // BLOCK
        unique = np.unique(blocks)
        table = torch.cat([self.block(int(b), width, dim) for b in unique])
        at = np.searchsorted(unique, blocks) * BLOCK + self.rows % BLOCK
        return table[torch.as_tensor(at)]

    def hook(
        self, module: nn.Module, args: tuple[torch.Tensor, ...], output: torch.Tensor
    ) -> torch.Tensor:
        items = args[0]
        if output.dim() != 3 or items.shape != output.shape[:2] or self.rows is None:
            raise RuntimeError(
                f"embedding noise expects the input embedding (B, L) → (B, L, d) of the batch "
                f"in flight; the hooked module gave {tuple(output.shape)} for "
                f"{tuple(items.shape)}"
            )
        if items.shape[0] != self.rows.shape[0]:
            raise RuntimeError(
                f"embedding noise: a batch of {self.rows.shape[0]} rows was announced, the "
                f"embedding saw {items.shape[0]}"
            )
        z = self.draws(items.shape[1], output.shape[-1]).to(output.device, output.dtype)
        real = (items != 0).unsqueeze(-1).to(output.dtype)
        return output + self.scale * z * real


@contextlib.contextmanager
def embedding_noise(
    model: SequentialRecommender, split: NoisySplit, spec: NoiseSpec, seed: int, name: str
) -> Iterator[EmbeddingNoise | None]:
    """While inside, ``model``'s input item embeddings carry the noise of ``spec`` on the
    batches of ``split`` (named ``name``: valid or test). Yields None for a model without an
    input item embedding (its scores do not depend on its inputs' embeddings)."""
    module = model.input_item_embedding()
    if module is None:
        yield None
        return
    n_items = int(getattr(model, "n_items", 0)) or module.weight.shape[0] - 1
    noise = EmbeddingNoise(spec, seed, name, module.weight, n_items)
    handle = module.register_forward_hook(noise.hook)
    split.on_batch = noise.set_rows
    try:
        yield noise
    finally:
        handle.remove()
        split.on_batch = None
