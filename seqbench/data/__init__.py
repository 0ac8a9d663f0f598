"""Datasets: registry, readers, the evaluation protocol, synthetic data and the on-disk cache.

Entry point: :func:`seqbench.data.load.load_dataset`.
"""
