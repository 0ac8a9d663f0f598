"""``seqbench tune``: Optuna studies over the suite's search spaces, validation only.

Modules, in the order a study goes through them:

- ``points``    a point of a search space applied to a suite cell (trials and ``run --tuned``)
- ``storage``   where studies live (a journal file, or PostgreSQL), study names, the study lock
- ``driver``    the studies: exactly N trials, pruning, dead-trial recovery, the display hooks;
                trial cells fed one at a time to any executor's slots
                (:mod:`seqbench.executors.stream`)
- ``outputs``   ``tune/summary.json`` and ``tune/best.toml`` from the storage
- ``tuned``     ``seqbench run --tuned``: the suite's cells with the best values

Only ``storage``, ``driver`` and ``outputs`` import Optuna (inside functions or as modules that
only ``seqbench tune`` loads); ``points`` and ``tuned`` stay light for ``seqbench run``.
See docs/tune.md.
"""
