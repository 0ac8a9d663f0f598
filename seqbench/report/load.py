"""Find, check and read the cells of a result store (docs/results.md) for a report.

A report must survive a messy store: a damaged or foreign ``result.json`` is skipped with a
warning naming the file, a failed cell is listed rather than averaged, and two results for one
variant × dataset × seed (the cell hash changed after a settings edit) keep the newest, saying so.
Nothing is parsed from directory names; every identity comes from the fields of ``result.json``.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from seqbench import metrics, record
from seqbench.errors import SeqbenchError

RESULT, RANKS = record.RESULT, record.RANKS
# cells being written, lock files, leases, attempts (hidden folders are skipped anyway)
SKIPPED_DIRS = frozenset({".tmp", ".locks", ".leases", ".attempts"})
SPLITS = ("valid", "test")
Split = Literal["valid", "test"]
MetricSource = Literal["result.json", "ranks.npz"]


class ResultFileError(SeqbenchError):
    """A result.json or ranks.npz that cannot be used; the message names the file."""

    def __init__(self, path: Path, problem: str, expected: str | None = None) -> None:
        self.path = path
        tail = f"; expected {expected}" if expected else ""
        super().__init__(f"{path}: {problem}{tail}")


@dataclass(eq=False)
class VariantInfo:
    """A variant's identity as stored in ``cell.variant``; ``display`` tells apart variants that
    share a label but not their parameters (e.g. results left from before a settings edit)."""

    label: str
    model: str
    ablation: str
    sweep: dict[str, Any]
    params: dict[str, Any]
    role: str = "baseline"
    order: tuple[int, ...] = ()
    display: str = ""

    def __post_init__(self) -> None:
        self.display = self.display or self.label

    @property
    def key(self) -> str:
        """Canonical JSON of label, model, ablation, sweep and params: what groups seeds."""
        identity = {
            "label": self.label,
            "model": self.model,
            "ablation": self.ablation,
            "sweep": self.sweep,
            "params": self.params,
        }
        return json.dumps(identity, sort_keys=True, separators=(",", ":"), default=str)


@dataclass(eq=False)
class CellResult:
    """One cell's result.json (ok or failed), with lazy access to its ranks.npz."""

    path: Path  # the result.json
    suite: str
    dataset: str
    variant: VariantInfo
    seed: int
    status: str
    hash: str
    date: dt.datetime | None  # environment.date (or the crash record's time)
    data: dict[str, Any] = field(repr=False)  # the whole file: timing, memory, environment, …
    parsed: record.ResultRecord | None = field(default=None, repr=False)  # the typed record
    _ranks: dict[str, np.ndarray] | None = field(default=None, repr=False)

    @property
    def dir(self) -> Path:
        return self.path.parent

    @property
    def error(self) -> str:
        """``Type: message`` of a failed cell, ``status: reason`` of one ended by a cap or a
        pruner ('' for an ok one)."""
        stopped = self.data.get("stopped")
        if self.status in record.OUTCOMES and isinstance(stopped, dict):
            return f"{self.status}: {stopped.get('reason') or ''}".rstrip(": ")
        error = self.data.get("error")
        if not isinstance(error, dict):
            return "" if self.status == "ok" else "(no error recorded)"
        kind, message = error.get("type") or "", error.get("message") or ""
        return f"{kind}: {message}" if kind and message else str(kind or message)

    def stored_metric(self, name: str, split: Split) -> float | None:
        """The value result.json records for ``name`` (None if absent or null)."""
        recorded = self.data.get("metrics", {}).get(split) or {}
        for key, value in recorded.items():
            if str(key).strip().lower() == name and isinstance(value, (int, float)):
                return float(value) if math.isfinite(value) else None
        return None

    def metric(
        self, name: str, split: Split, from_ranks: bool = False
    ) -> tuple[float | None, MetricSource]:
        """Mean of metric ``name`` over the split's users: from result.json when recorded there
        (unless ``from_ranks``), else recomputed from ranks.npz (which may raise
        :class:`ResultFileError`)."""
        if not from_ranks:
            value = self.stored_metric(name, split)
            if value is not None:
                return value, "result.json"
        values = self.per_user(name, split)
        return (float(values.mean()) if values.size else None), "ranks.npz"

    def per_user(self, name: str, split: Split) -> np.ndarray:
        """Each evaluated user's value of ``name`` on ``split``, in ``users`` order (users without
        a validation sample are dropped for ``valid``): the input of paired tests."""
        ranks = self.ranks()
        keep = self._evaluated(split)
        rank, tied = ranks[f"{split}_rank"][keep], ranks[f"{split}_tied"][keep]
        ties = str(ranks["ties"])
        offset = tied if ties == "pessimistic" else tied / 2.0
        higher = np.rint(rank - 1.0 - offset).astype(np.int64)
        return metrics.per_user(name, higher, tied, ties)  # type: ignore[arg-type]

    def split_users(self, split: Split) -> tuple[np.ndarray, np.ndarray | None]:
        """Ids and history lengths (None if ranks.npz lacks ``history_len``) of the users that
        :meth:`per_user` returns for ``split``, in the same order: what pairs two cells' users."""
        ranks = self.ranks()
        keep = self._evaluated(split)
        history = ranks.get("history_len")
        return ranks["users"][keep], (history[keep] if history is not None else None)

    def _evaluated(self, split: Split) -> np.ndarray:
        """Which users have a target on ``split`` (all on test; valid may lack some)."""
        ranks = self.ranks()
        return np.isfinite(ranks[f"{split}_rank"]) & (ranks[f"{split}_tied"] >= 0)

    def ranks(self) -> dict[str, np.ndarray]:
        """The arrays of ranks.npz, read once and checked against docs/results.md."""
        if self._ranks is None:
            self._ranks = read_ranks(self.dir / RANKS)
        return self._ranks


@dataclass
class Results:
    """What a store holds, ready for aggregation: ok cells, failed cells, and what was skipped."""

    root: Path
    files: int  # result.json files found
    cells: list[CellResult]  # ok cells, one per variant × dataset × seed
    failed: list[CellResult]  # failed cells (their newest attempt), not aggregated
    variants: list[VariantInfo]  # in the suites' order
    datasets: list[str]
    warnings: list[str] = field(default_factory=list)
    skipped: int = 0  # files that could not be used
    _groups: dict[tuple[str, str], list[CellResult]] | None = field(default=None, repr=False)

    @property
    def suites(self) -> list[str]:
        return sorted({c.suite for c in (*self.cells, *self.failed)})

    def metric_names(self, split: Split) -> list[str]:
        """The metrics recorded for ``split``, in the order the first results list them."""
        names: dict[str, None] = {}
        for cell in self.cells:
            for key in cell.data.get("metrics", {}).get(split) or {}:
                names.setdefault(str(key).strip().lower())
        return list(names)

    def group(self, variant: VariantInfo, dataset: str) -> list[CellResult]:
        """The ok cells of one variant on one dataset, by seed."""
        if self._groups is None:
            self._groups = defaultdict(list)
            for cell in sorted(self.cells, key=lambda c: c.seed):
                self._groups[(cell.variant.key, cell.dataset)].append(cell)
        return list(self._groups.get((variant.key, dataset), []))


def load_results(directory: Path | str) -> Results:
    """Every usable cell under ``directory`` (a suite folder or a root of suites).

    Raises :class:`SeqbenchError` when the folder is missing or holds no readable result.
    """
    root = Path(directory).expanduser()
    if not root.is_dir():
        what = "is not a folder" if root.exists() else "does not exist"
        raise SeqbenchError(f"results folder {root} {what}; pass ROOT/<suite> or a results ROOT")
    paths = list(find_result_files(root))
    if not paths:
        raise SeqbenchError(
            f"no results found under {root}: no {RESULT} in it or its subfolders "
            f"({', '.join(sorted(SKIPPED_DIRS))} and hidden folders skipped); "
            "run `seqbench run SUITE.toml --results ROOT` first"
        )
    warnings: list[str] = []
    read: list[CellResult] = []
    for path in paths:
        try:
            read.append(read_result_file(path))
        except ResultFileError as exc:
            warnings.append(f"skipped {exc}")
    if not read:
        raise SeqbenchError(
            f"none of the {len(paths)} {RESULT} files under {root} could be read; first: "
            + warnings[0].removeprefix("skipped ")
        )
    kept = _newest_per_seed(read, warnings)
    variants = _ordered_variants(kept, warnings)
    datasets = sorted({c.dataset for c in kept})
    order = {v.key: i for i, v in enumerate(variants)}
    kept.sort(key=lambda c: (order[c.variant.key], datasets.index(c.dataset), c.seed))
    return Results(
        root=root,
        files=len(paths),
        cells=[c for c in kept if c.status == "ok"],
        failed=[c for c in kept if c.status != "ok"],
        variants=variants,
        datasets=datasets,
        warnings=warnings,
        skipped=len(paths) - len(read),
    )


def find_result_files(root: Path) -> Iterator[Path]:
    """``result.json`` files under ``root``, in path order, outside ``.tmp``, ``.locks`` and
    hidden folders (cells there are incomplete or not cells at all)."""
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = sorted(
            d for d in subfolders if d not in SKIPPED_DIRS and not d.startswith(".")
        )
        if RESULT in files:
            yield Path(folder) / RESULT


def read_result_file(path: Path) -> CellResult:
    """One result.json, parsed as a :class:`seqbench.record.ResultRecord` (schema 1 upgraded;
    raises :class:`ResultFileError`)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ResultFileError(path, f"cannot be read ({exc})") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ResultFileError(path, f"is not valid JSON ({exc})") from None
    try:
        parsed = record.parse(data)
    except record.RecordError as exc:
        raise ResultFileError(path, str(exc)) from None
    cell = parsed.cell
    variant = cell.variant
    info = VariantInfo(
        label=variant.label,
        model=variant.model,
        ablation=variant.ablation,
        sweep=dict(variant.sweep),
        params=dict(variant.params),
        role=variant.role,
        order=tuple(variant.order),
    )
    when = parsed.environment.date if parsed.environment is not None else None
    return CellResult(
        path=path,
        suite=cell.suite,
        dataset=cell.dataset.name,
        variant=info,
        seed=cell.seed,
        status=parsed.status,
        hash=cell.hash,
        date=_parse_date(when) or _parse_date(parsed.recorded),
        data=parsed.to_json(),
        parsed=parsed,
    )


def read_ranks(path: Path) -> dict[str, np.ndarray]:
    """The arrays of a ranks.npz (raises :class:`ResultFileError` naming what is wrong)."""
    names = ("users", "valid_rank", "test_rank", "valid_tied", "test_tied", "ties")
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [n for n in names if n not in npz.files]
            if missing:
                raise ResultFileError(
                    path, f"lacks {', '.join(missing)}", f"the arrays {', '.join(names)}"
                )
            arrays = {n: npz[n] for n in npz.files}
    except ResultFileError:
        raise
    except FileNotFoundError:
        raise ResultFileError(path, "is missing (needed to recompute metrics)") from None
    except Exception as exc:  # zip, pickle and format errors all mean "damaged"
        raise ResultFileError(path, f"cannot be read ({type(exc).__name__}: {exc})") from None
    ties = str(arrays["ties"])
    if ties not in metrics.TIE_POLICIES:
        raise ResultFileError(path, f"tie policy {ties!r}", " or ".join(metrics.TIE_POLICIES))
    sized = [*names[:-1], *(["history_len"] if "history_len" in arrays else [])]
    lengths = {arrays[n].shape for n in sized}
    if len(lengths) != 1 or len(next(iter(lengths))) != 1:
        raise ResultFileError(path, "arrays of different shapes", "one value per user in each")
    return arrays


def _newest_per_seed(cells: list[CellResult], warnings: list[str]) -> list[CellResult]:
    """One result per variant × dataset × seed: the newest, with a warning naming the others."""
    groups: dict[tuple[str, str, int], list[CellResult]] = defaultdict(list)
    for cell in cells:
        groups[(cell.variant.key, cell.dataset, cell.seed)].append(cell)
    kept = []
    for group in groups.values():
        group.sort(key=_age)
        newest = group[-1]
        kept.append(newest)
        if len(group) > 1:
            others = ", ".join(str(c.dir) for c in group[:-1])
            when = newest.date.isoformat() if newest.date else "newest file"
            warnings.append(
                f"{newest.variant.label} on {newest.dataset}, seed {newest.seed}: "
                f"{len(group)} results (cell hash changed?); kept the newest, {newest.dir} "
                f"({newest.status}, {when}); ignored {others}"
            )
    return kept


def _age(cell: CellResult) -> tuple[float, float]:
    """Sort key: the recorded date, then the file's modification time."""
    try:
        mtime = cell.path.stat().st_mtime
    except OSError:
        mtime = 0.0
    return (cell.date.timestamp() if cell.date else -math.inf, mtime)


def _ordered_variants(cells: list[CellResult], warnings: list[str]) -> list[VariantInfo]:
    """Distinct variants in the suites' order; variants sharing a label get their differing
    settings appended to it, so that no two rows look alike."""
    suites = sorted({c.suite for c in cells})
    first: dict[str, tuple[tuple[Any, ...], VariantInfo]] = {}
    for cell in cells:
        v = cell.variant
        rank = (suites.index(cell.suite), v.order, v.label, v.key)
        if v.key not in first or rank < first[v.key][0]:
            first[v.key] = (rank, v)
    variants = [v for _, v in sorted(first.values(), key=lambda item: item[0])]
    by_label: dict[str, list[VariantInfo]] = defaultdict(list)
    for v in variants:
        by_label[v.label].append(v)
    for label, same in by_label.items():
        if len(same) < 2:
            continue
        for v in same:
            v.display = f"{label} [{_difference(v, same)}]"
        warnings.append(
            f"{len(same)} variants are labelled {label!r} with different settings; each is "
            f"shown with its own ({'; '.join(v.display for v in same)}); remove stale results "
            "or name the variants in the suite"
        )
    for cell in cells:  # one shared object per variant, so that display names reach every cell
        cell.variant = first[cell.variant.key][1]
    return variants


def _difference(variant: VariantInfo, others: list[VariantInfo]) -> str:
    """``k=v`` for each setting in which ``variant`` differs from any of ``others``."""

    def settings(v: VariantInfo) -> dict[str, Any]:
        return {"model": v.model, "ablation": v.ablation, **v.sweep, **v.params}

    mine = settings(variant)
    keys = sorted({k for o in others for k, val in settings(o).items() if mine.get(k) != val})
    keys += sorted(k for k in mine if k not in keys and any(k not in settings(o) for o in others))
    return ", ".join(f"{k}={json.dumps(mine.get(k), default=str)}" for k in keys) or "?"


def _parse_date(value: Any) -> dt.datetime | None:
    """An ISO-8601 time (``+00:00`` or ``+0000`` offsets; naive times read as UTC)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        try:  # Python 3.10's fromisoformat does not take "+0000"
            when = dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%S%z")
        except ValueError:
            return None
    return when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)
