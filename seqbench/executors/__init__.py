"""Where cells run: the executor seam (:mod:`seqbench.executors.base`) and its executors."""
