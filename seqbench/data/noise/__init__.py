"""Noise injection on item sequences: settings (:mod:`.spec`), transforms (:mod:`.transforms`,
pure numpy functions) and their seeded application to a split (:mod:`.apply`).

Training-time noise (``[train] noise``) corrupts the training inputs of a cell; evaluation-time
noise (``[eval] noise``) is a list of conditions under which one trained model is scored
(:mod:`seqbench.robustness`). docs/noise.md explains both.
"""

from seqbench.data.noise.spec import NoiseSpec

__all__ = ["NoiseSpec"]
