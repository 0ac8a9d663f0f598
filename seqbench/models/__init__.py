"""Models: one file per model, each registered with :func:`register_model`."""

from seqbench.models.registry import FULL, MODELS, ModelParams, ModelSpec, all_models, get_model

__all__ = ["FULL", "MODELS", "ModelParams", "ModelSpec", "all_models", "get_model"]
