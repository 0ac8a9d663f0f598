"""Fixed item-text embeddings handed to a model that reads them (M2Rec's semantic branch).

The worker computes them once per (dataset, text, encoder) with :mod:`seqbench.text` and passes
them to the constructor as ``item_text``; models keep them as non-persistent buffers, so they
move with ``.to(device)`` but stay out of checkpoints (they are data, recorded by hash).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ItemText:
    """``vectors`` (n_items + 1, D) float, row 0 = padding; ``has_text`` (n_items + 1,) bool:
    rows of items without text are zero and masked out by the model."""

    vectors: torch.Tensor
    has_text: torch.Tensor

    def __post_init__(self) -> None:
        if self.vectors.dim() != 2 or self.has_text.shape != self.vectors.shape[:1]:
            raise ValueError(
                f"item text: vectors (n_items + 1, D) and has_text (n_items + 1,) expected, got "
                f"{tuple(self.vectors.shape)} and {tuple(self.has_text.shape)}"
            )

    @classmethod
    def from_arrays(cls, vectors: object, has_text: object) -> ItemText:
        """From NumPy arrays (or anything ``torch.as_tensor`` takes): float32 and bool."""
        return cls(
            torch.as_tensor(vectors, dtype=torch.float32),
            torch.as_tensor(has_text, dtype=torch.bool),
        )
