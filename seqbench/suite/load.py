"""Reading a suite file: TOML, then every section checked, then the cells; one error for all."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from seqbench.data import folder
from seqbench.data.protocol import Protocol
from seqbench.errors import ConfigError, closest
from seqbench.suite.context import Context
from seqbench.suite.expand import expand
from seqbench.suite.locator import KeyLocator
from seqbench.suite.problems import Problems, SuiteError
from seqbench.suite.resolved import Suite
from seqbench.suite.sections import NAMES, SECTIONS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


def load_suite(path: Path | str, *, data_dir: Path | str | None = None) -> Suite:
    """Read and validate a suite file; one :class:`SuiteError` lists every problem.

    ``file =`` datasets are looked up in ``data_dir`` (default ``$SEQBENCH_DATA_DIR``). One
    that is not there leaves the suite valid: :meth:`Suite.missing_data` says what to get and
    :meth:`Suite.require_data` stops before a run that needs it.
    """
    file = Path(path)
    shown = str(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{shown}: no such suite file") from None
    except IsADirectoryError:
        raise ConfigError(f"{shown}: is a folder; expected a suite file (TOML)") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{shown}: not UTF-8 text ({exc.reason}); expected TOML") from None
    except OSError as exc:
        raise ConfigError(f"{shown}: cannot read it ({exc.strerror})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(_syntax_message(shown, str(exc))) from None
    ctx = Context(
        file=shown,
        folder=file.absolute().parent,
        data=data,
        problems=Problems(KeyLocator(text)),
        data_dir=folder.data_dir(data_dir),
    )
    return build_suite(ctx, file.absolute())


def build_suite(ctx: Context, file: Path) -> Suite:
    """Check every section of ``ctx.data``, expand the cells, and raise every problem found."""
    problems = ctx.problems
    for key in ctx.data:
        if key not in NAMES:
            problems.add((key,), "unknown table", f"one of {', '.join(NAMES)}", closest(key, NAMES))
    for section in SECTIONS:
        ctx.resolved[section.name] = section.check(ctx)
    got: dict[str, Any] = ctx.resolved
    head, evaluation = got["suite"], got["eval"]
    cells = []
    if head is not None and evaluation is not None:
        cells = expand(
            head,
            got["datasets"],
            got["models"],
            ctx.registry,
            got["protocol"],
            got["train"],
            evaluation,
            problems,
        )
    if problems:
        raise SuiteError(ctx.file, problems.in_file_order())
    suite = Suite(
        file=file,
        name=head.name,
        seeds=head.seeds,
        description=head.description,
        protocol=Protocol.model_validate(got["protocol"]),
        protocol_overrides=got["protocol"],
        train=got["train"],
        eval=evaluation,
        datasets=[plan for _, plan in got["datasets"]],
        models=[plan for _, plan in got["models"]],
        tune=got["tune"],
    )
    suite._cells = tuple(cells)
    return suite


def _syntax_message(file: str, message: str) -> str:
    match = re.search(r"\s*\(at line (\d+), column (\d+)\)$", message)
    if match:
        where = f"{file}:{match[1]}:{match[2]}"
        message = message[: match.start()]
    else:
        where = file
    return f"{where}: invalid TOML: {message}; expected TOML syntax (https://toml.io)"
