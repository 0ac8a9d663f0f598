"""A cell's trained weights as ``weights.safetensors`` (never pickle: loading runs no code).

The file holds the model's state dict (every tensor copied to the CPU, so tied tensors are
stored twice and load back into either name) and metadata naming the cell hash and the model,
which :func:`load_weights` checks before it touches the model.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load as load_bytes
from safetensors.torch import save as save_bytes

from seqbench import __version__, atomic
from seqbench.errors import SeqbenchError


class WeightsError(SeqbenchError):
    """Stored weights that are missing or do not belong to the cell."""


def save_weights(module: torch.nn.Module, path: Path, *, cell_hash: str, model: str) -> None:
    """Write ``module``'s state dict to ``path`` atomically, with the cell's hash and the
    model's registry name."""
    state = module.state_dict()
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}
    metadata = {"cell_hash": cell_hash, "model": model, "seqbench": __version__}
    atomic.write_bytes(path, save_bytes(tensors, metadata=metadata))


def read_metadata(path: Path) -> dict[str, str]:
    """The metadata of a weights file."""
    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata() or {})


def load_weights(module: torch.nn.Module, path: Path, *, cell_hash: str) -> None:
    """Load ``path`` into ``module`` (strictly: every tensor, nothing else), after checking it
    was written for ``cell_hash``."""
    if not path.is_file():
        raise WeightsError(f"{path} is missing")
    try:
        metadata = read_metadata(path)
        tensors = load_bytes(path.read_bytes())
    except Exception as exc:  # safetensors raises its own errors for a damaged file
        raise WeightsError(f"{path} cannot be read ({type(exc).__name__}: {exc})") from None
    if metadata.get("cell_hash") != cell_hash:
        raise WeightsError(
            f"{path} belongs to cell {metadata.get('cell_hash')!r}, not {cell_hash!r}"
        )
    module.load_state_dict(tensors, strict=True)
