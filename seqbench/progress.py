"""Progress bars with the small tqdm-like interface that pooch accepts, drawn with rich.

Library code takes an optional :data:`BarFactory` and never draws anything itself; the CLI
passes :class:`RichBars` unless ``--quiet``.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)


class Bar(Protocol):
    total: int | None

    def update(self, n: int) -> None: ...
    def reset(self) -> None: ...
    def close(self) -> None: ...


BarFactory = Callable[[str], Bar]


def byte_progress(bars: BarFactory | None, description: str) -> Callable[[int, int], None] | None:
    """Adapt a bar to the (bytes done, bytes total) callback that readers call."""
    if bars is None:
        return None
    bar = bars(description)
    done = 0

    def report(now: int, total: int) -> None:
        nonlocal done
        bar.total = total
        bar.update(now - done)
        done = now
        if now >= total:
            bar.close()

    return report


class _RichBar:
    def __init__(self, progress: Progress, description: str) -> None:
        self._progress = progress
        self._task: TaskID = progress.add_task(description, total=None)
        self._total: int | None = None

    @property
    def total(self) -> int | None:
        return self._total

    @total.setter
    def total(self, value: int | None) -> None:
        self._total = value
        self._progress.update(self._task, total=value or None)  # 0 = unknown size

    def update(self, n: int) -> None:
        self._progress.advance(self._task, n)

    def reset(self) -> None:
        self._progress.reset(self._task)

    def close(self) -> None:
        self._progress.stop_task(self._task)


class RichBars:
    """A :data:`BarFactory` drawing on stderr; use as a context manager around the work."""

    def __init__(self, console: Console | None = None) -> None:
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TimeRemainingColumn(),
            console=console or Console(stderr=True),
            transient=True,
        )

    def __call__(self, description: str) -> Bar:
        return _RichBar(self._progress, description)

    def __enter__(self) -> RichBars:
        self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._progress.stop()
