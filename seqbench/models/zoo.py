"""Imports every built-in model module so that each registers itself."""

from seqbench.models import (  # noqa: F401
    bert4rec,
    bimamba4rec,
    bimambaformer4rec,
    echomamba4rec,
    fmlprec,
    gru4rec,
    m2rec,
    m2rec_code,
    mamba4rec,
    narm,
    pop,
    sasrec,
)
