"""Imports every built-in model module so that each registers itself."""

from seqbench.models import gru4rec, pop, sasrec  # noqa: F401
