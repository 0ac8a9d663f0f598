"""Exceptions that carry a message fit for the user: what was wrong, where, and what was expected.

The CLI prints the message of a :class:`SeqbenchError` on one line and exits with status 1;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path


class SeqbenchError(Exception):
    """Base class for errors caused by the user's input or environment, not by a bug."""


class ConfigError(SeqbenchError):
    """A setting (suite key, CLI option, reader option, protocol knob) has a bad name or value."""


class DataFormatError(SeqbenchError):
    """A data file does not have the format its reader expects."""

    def __init__(self, path: Path | str, line: int | None, problem: str, expected: str) -> None:
        self.path = Path(path)
        self.line = line
        self.problem = problem
        self.expected = expected
        where = f"{self.path}:{line}" if line is not None else str(self.path)
        super().__init__(f"{where}: {problem}; expected {expected}")


class DownloadError(SeqbenchError):
    """A dataset could not be downloaded, or the download did not match its checksum."""


class UnknownNameError(ConfigError):
    """A name (dataset, format, option) that no registry knows; the message lists the valid ones."""

    def __init__(self, kind: str, name: str, available: Iterable[str]) -> None:
        self.kind = kind
        self.name = name
        self.available = sorted(available)
        super().__init__(f"unknown {kind} {name!r}{suggestion(name, self.available)}")


def closest(name: object, available: Iterable[str]) -> str | None:
    """The valid name closest to a misspelt ``name`` (None when nothing is close): the one
    did-you-mean rule of every message, CLI options and suite keys alike."""
    if not isinstance(name, str):
        return None
    match = difflib.get_close_matches(name, list(available), n=1, cutoff=0.6)
    return match[0] if match else None


def suggestion(name: str, available: Iterable[str]) -> str:
    """A '; did you mean …? available: …' tail for an error message about an unknown name."""
    names = sorted(available)
    close = closest(name, names)
    hint = f"; did you mean {close!r}?" if close else ""
    return f"{hint} (available: {', '.join(names)})" if names else hint
