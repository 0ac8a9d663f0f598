"""The published reference results (results/reference-ml100k/, issue 20, and the Bi-Mamba4Rec
flip study beside it, results/bimamba4rec-flip-ml100k/): each committed store is
complete as far as it goes, belongs to the shipped suite, and `seqbench report` regenerates the
committed tables exactly, apart from the lines naming the seqbench version and the results path,
and draws the committed figures (by name: PNG and PDF bytes vary with matplotlib)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from seqbench.data import registry
from seqbench.suite import load_suite
from tests.conftest import REPO

STORE = Path("results") / "reference-ml100k"
#: each published store (results/NAME, run from suites/NAME.toml): the report options its
#: committed report was written with
PUBLISHED = {"reference-ml100k": (), "bimamba4rec-flip-ml100k": ("--reference", "mamba4rec")}
TABLES = ("tables.md", "tables.tex", "tables.csv")
#: report.json keys that name the version or where the store was read from
VOLATILE_KEYS = ("seqbench", "source", "notes")


def _records(store: Path) -> list[dict[str, Any]]:
    paths = sorted((REPO / store).glob("*/*/seed-*/result.json"))
    return [json.loads(p.read_text(encoding="utf-8")) for p in paths]


@pytest.mark.parametrize("name", PUBLISHED)
def test_the_committed_cells_are_ok_and_cells_of_the_shipped_suite(name: str) -> None:
    store = Path("results") / name
    records = _records(store)
    assert records, f"{store} holds no committed cell"
    cells = load_suite(REPO / "suites" / f"{name}.toml", data_dir=None).cells()
    remote = registry.DATASETS["ml-100k-recbole"].remote
    assert remote is not None
    pinned = remote.members_sha256["recbole/dataset_example/ml-100k/ml-100k.inter"]
    for record in records:
        cell_hash = record["cell"]["hash"]
        source = record["cell"]["identity"]["source"]
        assert record["status"] == "ok", cell_hash
        assert source["sha256"] == pinned  # RecBole's file, as the registry pins it
        assert cell_hash in {c.hash(source) for c in cells}  # no stale cell of an edited suite
        assert list((REPO / store).glob(f"*/*/seed-*-{cell_hash[:8]}/ranks.npz")), cell_hash
    assert len(records) == len(cells)  # complete: nothing of the suite is left to train


def _stable(text: str, store: Path) -> list[str]:
    return [line for line in text.splitlines() if "seqbench" not in line and str(store) not in line]


@pytest.mark.parametrize("name", PUBLISHED)
def test_the_report_regenerates_the_committed_tables(tmp_path: Path, name: str) -> None:
    store = Path("results") / name
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "seqbench",
            "report",
            str(store),
            "--out",
            str(tmp_path),
            "-q",
            "--plots",
            *PUBLISHED[name],
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    committed = REPO / store / "report"
    for name in TABLES:
        want = (committed / name).read_text(encoding="utf-8")
        got = (tmp_path / name).read_text(encoding="utf-8")
        assert _stable(got, store) == _stable(want, store), f"{committed / name} differs"
    want_json = json.loads((committed / "report.json").read_text(encoding="utf-8"))
    got_json = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    for data in (want_json, got_json):
        for key in VOLATILE_KEYS:
            data.pop(key, None)
    assert got_json == want_json
    drawn = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert sorted(p.name for p in (committed / "plots").iterdir()) == drawn, (
        "the committed figures are not those the report draws"
    )


README_START, README_END = "<!-- reference-tables:start -->", "<!-- reference-tables:end -->"


def readme_block(tables_md: str) -> str:
    """The README's reference tables: the summary and efficiency sections of the committed
    report's tables.md (tables and legends, verbatim) under the README's own headings."""
    sections = {s.split("\n", 1)[0]: s.split("\n", 1)[1].strip() for s in tables_md.split("\n## ")}
    summary = next(v for k, v in sections.items() if k.startswith("Summary: ml-100k-recbole"))
    return "\n".join([
        README_START,
        "**Accuracy** (test split, every metric):",
        "",
        summary,
        "",
        "**Efficiency** (indicative: the cells ran two at a time, one thread each, beside other "
        "work on a 2-core machine; quiet-machine timings are in `benchmarks/`):",
        "",
        sections["Efficiency"],
        README_END,
    ])  # fmt: skip


def readme_span(readme: str) -> tuple[int, int]:
    """Where the README's reference-tables block starts and ends (markers included)."""
    return readme.index(README_START), readme.index(README_END) + len(README_END)


def test_the_readme_shows_the_committed_tables() -> None:
    tables = (REPO / STORE / "report" / "tables.md").read_text(encoding="utf-8")
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    start, end = readme_span(readme)
    assert readme[start:end] == readme_block(tables), (
        "README.md's reference tables differ from the committed report; update them with "
        "`python -m tests.test_reference_results`"
    )


if __name__ == "__main__":  # rewrite the README's block from the committed report
    path = REPO / "README.md"
    text = path.read_text(encoding="utf-8")
    start, end = readme_span(text)
    block = readme_block((REPO / STORE / "report" / "tables.md").read_text(encoding="utf-8"))
    path.write_text(text[:start] + block + text[end:], encoding="utf-8")
    print(f"rewrote the reference tables of {path}")
