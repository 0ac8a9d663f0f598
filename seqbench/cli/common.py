"""What every command shares: consoles, logging, and turning user errors into one-line messages."""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape

from seqbench.errors import ConfigError, SeqbenchError

F = TypeVar("F", bound=Callable[..., Any])

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


class _Invocation:
    """Flags of the current command line; the root callback sets them on every invocation."""

    debug = False


invocation = _Invocation()


def debug_enabled() -> bool:
    """``seqbench --debug …`` or ``$SEQBENCH_DEBUG``."""
    return invocation.debug or os.environ.get("SEQBENCH_DEBUG", "") not in ("", "0")


def setup_logging(verbose: bool = False) -> None:
    logger = logging.getLogger("seqbench")
    logger.setLevel(logging.INFO if verbose else logging.WARNING)
    if not any(isinstance(h, RichHandler) for h in logger.handlers):
        handler = RichHandler(console=err, show_time=False, show_path=False, markup=False)
        logger.addHandler(handler)


def reports_errors(command: F) -> F:
    """Print a :class:`SeqbenchError` as one line and exit 1 (full traceback under --debug)."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except SeqbenchError as exc:
            if debug_enabled():
                raise
            err.print(f"[bold red]error:[/] {escape(str(exc))}")
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def parse_key_values(pairs: list[str] | None, option: str) -> dict[str, str]:
    """``["a=1", "b=x"]`` → ``{"a": "1", "b": "x"}``; a pair without '=' is an error."""
    result: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"{option} {pair!r}: expected KEY=VALUE")
        result[key.strip()] = value
    return result


def parse_duration(text: str, option: str) -> float:
    """``"90"``, ``"90s"``, ``"10m"``, ``"2h"`` → seconds (> 0)."""
    units = {"s": 1.0, "m": 60.0, "h": 3600.0}
    value = text.strip().lower()
    scale = units.get(value[-1:])
    number = value[:-1] if scale is not None else value
    try:
        seconds = float(number) * (scale or 1.0)
    except ValueError:
        seconds = -1.0
    if not seconds > 0 or seconds == float("inf"):
        raise ConfigError(
            f"{option} {text!r}: expected a positive duration such as 90, 90s, 10m, 2h"
        )
    return seconds


def parse_retry(text: str | None) -> tuple[str, ...]:
    """``--retry oom,timeout`` → the outcomes to run again (failed cells always are)."""
    from seqbench.record import OUTCOMES

    if not text:
        return ()
    chosen = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    unknown = [s for s in chosen if s not in OUTCOMES]
    if unknown:
        raise ConfigError(
            f"--retry {text!r}: {', '.join(map(repr, unknown))} is not an outcome; expected a "
            f"comma-separated list of {', '.join(OUTCOMES)} (failed cells are always retried)"
        )
    return chosen
