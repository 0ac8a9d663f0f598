"""Models that fail on purpose, loaded into worker processes through $SEQBENCH_PLUGINS."""

from __future__ import annotations

import torch

from seqbench.models.registry import ModelParams, register_model
from tests.core.fixtures import LastItem


class ExplodingParams(ModelParams):
    pass


@register_model("exploding", params=ExplodingParams, summary="raises in training (tests only)")
class Exploding(LastItem):
    """Raises in its first training step: the runner must record the failure and go on."""

    def __init__(self, params: ExplodingParams, *, n_items: int, max_len: int, ablation: str):
        super().__init__(n_items)

    def loss(self, items: torch.Tensor, lengths: torch.Tensor, targets: torch.Tensor):
        raise RuntimeError("exploding model: boom")
