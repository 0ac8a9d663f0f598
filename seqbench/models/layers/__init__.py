"""Blocks shared by several models (RecBole-style transformer, initialisers)."""
