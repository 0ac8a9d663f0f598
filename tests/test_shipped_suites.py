"""Every suite shipped in suites/ (searched recursively) validates and expands into cells, and
its cells keep the hashes they had before the suite package (tests/fixtures)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from seqbench.suite import load_suite
from tests.conftest import REPO

SUITES = sorted((REPO / "suites").rglob("*.toml"))
HASHES = Path(__file__).parent / "fixtures" / "shipped_cell_hashes.json"


def test_suites_were_found() -> None:
    assert SUITES, "no suite files found under suites/"
    assert REPO / "suites" / "smoke.toml" in SUITES


@pytest.mark.parametrize("path", SUITES, ids=lambda p: str(p.relative_to(REPO)))
def test_shipped_suite_validates(path: Path) -> None:
    suite = load_suite(path)
    cells = suite.cells()
    assert cells
    assert len({(c.dataset.name, c.variant.label, c.seed) for c in cells}) == len(cells)


def test_every_shipped_cell_keeps_its_hash() -> None:
    """Hashes of every cell of every shipped suite, computed with one fixed dataset source by
    seqbench/suite.py before it became a package (main at bfbb8ec): a refactor of validation
    or expansion, or a new setting, must not change them (the store would re-run every cell).
    A suite added since has no entry and is not compared; a suite edited on purpose needs its
    entry regenerated, with the reason in the commit."""
    frozen = json.loads(HASHES.read_text(encoding="utf-8"))
    source = frozen["source"]
    compared = 0
    for name, expected in frozen["suites"].items():
        path = REPO / name
        if not path.is_file():
            continue
        got = [
            [c.dataset.name, c.variant.label, c.seed, c.hash(source)]
            for c in load_suite(path).cells()
        ]
        assert got == expected, name
        compared += len(got)
    assert compared >= 250  # the six suites of bfbb8ec: 253 cells
