"""The data folder: local dataset files found by name instead of by a path in the suite.

A suite's ``[[datasets]]`` entry may say ``file = "Beauty.txt"`` instead of ``path = "…"``; the
file is then looked up in the data folder (``--data-dir DIR``, else ``$SEQBENCH_DATA_DIR``) as
``DIR/<file>``, else ``DIR/<dataset name>/<file>`` — so a flat folder and one laid out per
dataset (``DIR/amazon-beauty/Beauty.txt``) both work. Suites then name no path that exists on
one machine only, and validate anywhere (saying which files are still needed).
"""

from __future__ import annotations

import os
from pathlib import Path, PurePath

DATA_DIR_ENV = "SEQBENCH_DATA_DIR"


def data_dir(explicit: Path | str | None = None) -> Path | None:
    """``explicit`` (``--data-dir``), else ``$SEQBENCH_DATA_DIR``, else None; absolute."""
    chosen = explicit if explicit is not None else os.environ.get(DATA_DIR_ENV) or None
    return None if chosen is None else Path(chosen).expanduser().absolute()


def candidates(folder: Path, name: str, file: str) -> list[Path]:
    """Where ``file`` of dataset ``name`` may lie in ``folder``, in the order looked at."""
    return [folder / file, folder / name / file]


def find(folder: Path | None, name: str, file: str) -> Path | None:
    """The first existing candidate (None without a folder or when none exists)."""
    if folder is None:
        return None
    return next((path for path in candidates(folder, name, file) if path.exists()), None)


def file_problem(file: str) -> str | None:
    """Why ``file`` cannot name a file in the data folder (None when it can)."""
    pure = PurePath(file)
    if not file or pure.is_absolute() or file.startswith("~") or ".." in pure.parts:
        return "a file name relative to the data folder (no absolute path, '~' or '..')"
    return None


def where_to_put(name: str, file: str) -> str:
    """How to point seqbench at a folder holding ``file``."""
    return f"the file as DIR/{file} or DIR/{name}/{file}, with --data-dir DIR or {DATA_DIR_ENV}=DIR"


def not_found(folder: Path | None, name: str, file: str) -> str:
    """What went wrong when ``file`` was not found."""
    if folder is None:
        return f"{file!r} is read from the data folder, and none is set"
    looked = ", ".join(str(p) for p in candidates(folder, name, file))
    return f"{file!r} is not in the data folder {folder} (looked for {looked})"
