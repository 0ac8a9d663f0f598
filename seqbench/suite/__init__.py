"""The suite file: strict validation of every key before any training, and expansion into cells.

A suite is one TOML file (format in the README). :func:`load_suite` checks all of it and raises
ONE :class:`SuiteError` listing every problem, one per line, as
``<file>:<line>: <key.path>: <problem>; expected <…>[; did you mean 'x'?]``: a typo in one
section must not hide a typo in another, and nothing trains until the whole file is right.

Modules, in the order a file goes through them:

- ``locator``   line numbers of keys in the TOML text (tomllib gives none)
- ``problems``  the problem list: one line per problem, pydantic errors in suite words, the
  did-you-mean hint (:func:`seqbench.errors.closest`, shared with every other message)
- ``schemas``   the strict shapes of ``[suite]``, ``[[datasets]]`` and ``[[models]]``
- ``context``   what the checks share: parsed data, problems, results of earlier sections
- ``settings``  checks of ``[suite]``, ``[protocol]``, ``[train]``, ``[eval]``
- ``datasets``  checks of ``[[datasets]]`` (names, files, formats, options, item text)
- ``models``    checks of ``[[models]]`` (registry, parameters, ablations, sweeps)
- ``sections``  the list of top-level tables and their checks, in order
- ``expand``    cells from the checked sections (datasets × models × ablations × sweep × seeds)
- ``resolved``  the validated :class:`Suite`
- ``load``      :func:`load_suite`: read, check every section, expand, raise or return

How to extend:

- A new key in ``[train]`` or ``[eval]``: add the field to
  :class:`~seqbench.cells.TrainSettings` / :class:`~seqbench.cells.EvalSettings` (a
  ``model_validator`` there for checks across keys; its ``ValueError`` text becomes the
  problem). It is then validated, sweepable and hashed; keep old hashes by leaving its default
  out of the identity (``cells._train_identity``).
- A new table, e.g. ``[tune]``: write its schema (a pydantic model with
  ``extra="forbid"``) and a check ``check_tune(ctx) -> TuneSettings | None`` in a module of its
  own (``ctx.problems.validate(TuneSettings, ctx.table("tune"), ("tune",))`` reports every bad
  key with its line), add ``Section("tune", check_tune)`` to ``sections.SECTIONS`` (after the
  sections it reads from ``ctx.resolved``), and a field for it on :class:`Suite` filled in
  ``load.build_suite``.
"""

from __future__ import annotations

from seqbench.cells import EvalSettings, TrainSettings
from seqbench.suite.datasets import dataset_has_text
from seqbench.suite.expand import format_point
from seqbench.suite.load import load_suite
from seqbench.suite.locator import KeyLocator, KeyPath
from seqbench.suite.problems import DataNeededError, Problem, SuiteError, render_path
from seqbench.suite.resolved import DatasetPlan, ModelPlan, Suite

__all__ = [
    "DataNeededError",
    "DatasetPlan",
    "EvalSettings",
    "KeyLocator",
    "KeyPath",
    "ModelPlan",
    "Problem",
    "Suite",
    "SuiteError",
    "TrainSettings",
    "dataset_has_text",
    "format_point",
    "load_suite",
    "render_path",
]
