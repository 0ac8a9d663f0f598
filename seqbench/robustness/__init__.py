"""Noise studies on trained models: noisy splits, embedding noise, evaluation conditions, stored
weights and the re-evaluation of stored cells.

- ``split``       :class:`NoisySplit`: a split served from fixed (corrupted) inputs
- ``embedding``   Gaussian noise on a model's input item embeddings, through a forward hook
- ``conditions``  one trained model scored under ``[eval] noise`` conditions; their record
  entries (``evaluations``) and rank arrays (``test_rank@NAME``)
- ``weights``     the best weights of a cell as ``weights.safetensors``
- ``stored``      conditions added to finished cells without retraining (``seqbench evaluate``)

The transforms themselves are numpy functions in :mod:`seqbench.data.noise`.
"""
