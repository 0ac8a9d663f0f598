"""Tests of seqbench.stats: paired tests, corrections, effects and their calibration."""
