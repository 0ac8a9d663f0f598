"""Every suite shipped in suites/ (searched recursively) validates and expands into cells."""

from __future__ import annotations

from pathlib import Path

import pytest

from seqbench.suite import load_suite
from tests.conftest import REPO

SUITES = sorted((REPO / "suites").rglob("*.toml"))


def test_suites_were_found() -> None:
    assert SUITES, "no suite files found under suites/"
    assert REPO / "suites" / "smoke.toml" in SUITES


@pytest.mark.parametrize("path", SUITES, ids=lambda p: str(p.relative_to(REPO)))
def test_shipped_suite_validates(path: Path) -> None:
    suite = load_suite(path)
    cells = suite.cells()
    assert cells
    assert len({(c.dataset.name, c.variant.label, c.seed) for c in cells}) == len(cells)
