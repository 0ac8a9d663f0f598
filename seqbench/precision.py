"""The arithmetic of ``[train] precision`` on a CUDA device, as context managers.

- ``fp32``: float32 throughout; TF32 is switched off for matmuls and cuDNN convolutions (cuDNN
  allows it by default), so "fp32" means the same thing on every GPU.
- ``tf32``: TF32 for matmuls and cuDNN convolutions (float32 storage, 10-bit mantissa products).
- ``bf16``: ``torch.autocast("cuda", dtype=torch.bfloat16)`` around the forward passes (and the
  loss) in training and around the user representation in scoring; weights, optimizer state
  and gradients stay float32 (bf16 needs no loss scaling). Scores are taken in float32 from that
  representation: bf16's 8-bit mantissa would tie many items with the target and change ranks.

On a CPU only fp32 exists (:func:`seqbench.cells.check_precision` refuses the others before any
work), and every context here is a no-op there.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def numerics(precision: str, device: Any) -> Iterator[None]:
    """TF32 on (``tf32``) or off (``fp32``, ``bf16``) for matmuls and cuDNN on a CUDA
    ``device`` (a torch.device) while inside; the previous flags are restored after."""
    if getattr(device, "type", str(device)) != "cuda":
        yield
        return
    import torch

    matmul = torch.backends.cuda.matmul
    before = (matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    allow = precision == "tf32"
    matmul.allow_tf32 = allow
    torch.backends.cudnn.allow_tf32 = allow
    try:
        yield
    finally:
        matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def autocast(precision: str, device: Any) -> contextlib.AbstractContextManager[Any]:
    """bfloat16 autocast for ``bf16`` on a CUDA ``device``; nothing otherwise."""
    if precision != "bf16" or getattr(device, "type", str(device)) != "cuda":
        return contextlib.nullcontext()
    import torch

    return torch.autocast("cuda", dtype=torch.bfloat16)
