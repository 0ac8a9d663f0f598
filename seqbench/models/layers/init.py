"""RecBole's weight initialisation, shared by every model that follows a RecBole ``_init_weights``.

Applied with ``module.apply`` at the end of ``__init__``, as RecBole does, so that a model built
right after ``torch.manual_seed(s)`` draws the same initial weights as RecBole's twin built after
the same call (the modules are created in the same order with the same shapes).
"""

from __future__ import annotations

from torch import nn


def recbole_normal_init(module: nn.Module, std: float = 0.02) -> None:
    """N(0, std²) on every Linear and Embedding weight (padding row included), zero Linear biases,
    LayerNorm (1, 0) — model-reference §1.9 (RecBole v1.2.0 sasrec.py ``_init_weights``)."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        module.weight.data.normal_(mean=0.0, std=std)
    elif isinstance(module, nn.LayerNorm):
        module.bias.data.zero_()
        module.weight.data.fill_(1.0)
    if isinstance(module, nn.Linear) and module.bias is not None:
        module.bias.data.zero_()
