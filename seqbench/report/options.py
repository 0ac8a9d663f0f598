"""What the statistics of a report may be asked to do, checked once, with errors naming the option.

The values mirror ``seqbench report``'s options; :class:`ReportOptions` is what the analysis
functions take, so that the library and the command line cannot drift apart.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from seqbench.errors import ConfigError
from seqbench.stats import CORRECTIONS, MIN_RESAMPLES, TESTS, Alternative, Correction, TestName

ALTERNATIVES = ("two-sided", "greater", "less")
FAMILIES = ("table", "column")
Family = Literal["table", "column"]
DEFAULT_STRATA = (5, 10, 20, 50)  # ≤5, 6–10, 11–20, 21–50, >50 items of history

#: Marks: significantly better / worse than the reference, and the reference itself. LaTeX
#: renders them as $\uparrow$, $\downarrow$ and $\dagger$ (base LaTeX, no extra package).
BETTER, WORSE, REFERENCE = "▲", "▼", "†"


@dataclass(frozen=True)
class ReportOptions:
    """How to compare variants: the reference, the test, the multiple-comparison family, α, the
    history-length strata, which pair to plot. Defaults are ``seqbench report``'s defaults."""

    reference: str | None = None  # a variant's label; None: the best-on-valid baseline
    test: TestName = "t"
    alternative: Alternative = "two-sided"
    correction: Correction = "holm"
    alpha: float = 0.05
    family: Family = "table"
    marks: bool = True  # False hides the marks only; comparisons are still made and exported
    level: float = 0.95  # of every confidence interval
    n_resamples: int = MIN_RESAMPLES  # of the bootstrap intervals and resampling tests
    seed: int = 0  # of the resampling tests
    strata: tuple[int, ...] | None = DEFAULT_STRATA  # upper edges of the history buckets
    compare: tuple[str, str] | None = None  # the pair whose per-user differences are plotted

    def __post_init__(self) -> None:
        _choice("--test", self.test, TESTS)
        _choice("--alternative", self.alternative, ALTERNATIVES)
        _choice("--correction", self.correction, CORRECTIONS)
        _choice("--family", self.family, FAMILIES)
        if not (isinstance(self.alpha, (int, float)) and 0 < self.alpha < 1):
            raise ConfigError(f"--alpha: {self.alpha!r} is not a probability; expected 0 < α < 1")
        if not (0 < self.level < 1):
            raise ConfigError(f"level {self.level!r}; expected 0 < level < 1")
        if self.n_resamples < MIN_RESAMPLES:
            raise ConfigError(f"--resamples: {self.n_resamples}; expected at least {MIN_RESAMPLES}")
        if self.strata is not None:
            check_strata(self.strata)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["strata"] = list(self.strata) if self.strata is not None else None
        data["compare"] = list(self.compare) if self.compare is not None else None
        return data


def _choice(option: str, value: str, valid: Sequence[str] | dict[str, str]) -> None:
    if value not in valid:
        raise ConfigError(f"{option}: {value!r} is not one of {', '.join(valid)}")


def check_strata(edges: Sequence[int]) -> tuple[int, ...]:
    """Upper bucket edges: positive, strictly increasing integers."""
    if not edges or any(not isinstance(e, int) or e < 1 for e in edges):
        raise ConfigError(f"--strata: {list(edges)}; expected positive integers, e.g. 5,10,20,50")
    if any(b <= a for a, b in itertools.pairwise(edges)):
        raise ConfigError(f"--strata: {list(edges)} is not strictly increasing; e.g. 5,10,20,50")
    return tuple(edges)


def parse_strata(text: str) -> tuple[int, ...] | None:
    """``"5,10,20,50"`` → ``(5, 10, 20, 50)``; ``"none"`` → None (no stratified tables)."""
    if text.strip().lower() in ("none", "off", ""):
        return None
    try:
        edges = [int(part) for part in text.split(",")]
    except ValueError:
        raise ConfigError(
            f"--strata: {text!r}; expected comma-separated upper edges such as 5,10,20,50 "
            "(buckets ≤5, 6–10, 11–20, 21–50, >50) or none"
        ) from None
    return check_strata(edges)


def parse_pair(text: str, option: str = "--compare") -> tuple[str, str]:
    """``"A,B"`` → ``("A", "B")``."""
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 2 or not all(parts) or parts[0] == parts[1]:
        raise ConfigError(f"{option}: {text!r}; expected two different variant labels, 'A,B'")
    return parts[0], parts[1]


def finite(value: float | None) -> float | None:
    """``value`` unless it is None, NaN or infinite (JSON and tables have no NaN)."""
    return float(value) if value is not None and math.isfinite(value) else None
