"""The suite file: strict validation of every key before any training, and expansion into cells.

A suite is one TOML file (format in docs and the README). :func:`load_suite` checks all of it
and raises ONE :class:`SuiteError` listing every problem, one per line, as
``<file>:<line>: <key.path>: <problem>; expected <…>[; did you mean 'x'?]``: a typo in one
section must not hide a typo in another, and nothing trains until the whole file is right.
tomllib gives no line numbers, so :class:`KeyLocator` finds them in the text (best effort).

Expansion order: datasets, then models entries, their ablations, sweep points, seeds.
"""

from __future__ import annotations

import bisect
import contextlib
import difflib
import itertools
import os
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
)

from seqbench.cells import (
    SAFE_NAME,
    SAFE_NAME_TEXT,
    SOURCE_KEYS,
    Cell,
    EvalSettings,
    Role,
    TrainSettings,
    Variant,
    canonical_json,
    format_value,
    variant_label,
)
from seqbench.data.load import SYNTHETIC, DatasetSpec
from seqbench.data.protocol import Protocol
from seqbench.data.readers import READERS
from seqbench.data.registry import DATASETS
from seqbench.data.synthetic import SyntheticConfig
from seqbench.errors import ConfigError
from seqbench.models.registry import FULL, ModelParams, ModelSpec, all_models
from seqbench.text.sources import TEXT_FORMATS, TextSpec

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = [
    "EvalSettings",
    "KeyLocator",
    "Problem",
    "Suite",
    "SuiteError",
    "TrainSettings",
    "load_suite",
]

KeyPath = tuple[str | int, ...]  # a key path: ("models", 0, "params", "hidden_size")


# --------------------------------------------------------------------------- errors


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a suite file."""

    path: KeyPath
    problem: str
    expected: str | None = None
    hint: str | None = None  # the closest valid name
    line: int | None = None

    def render(self, file: str) -> str:
        where = f"{file}:{self.line}" if self.line is not None else file
        text = f"{where}: {render_path(self.path) or '(top level)'}: {self.problem}"
        if self.expected:
            text += f"; expected {self.expected}"
        if self.hint:
            text += f"; did you mean {self.hint!r}?"
        return text


class SuiteError(ConfigError):
    """A suite file with problems; the message lists each one on its own line."""

    def __init__(self, file: str, problems: list[Problem]) -> None:
        self.file = file
        self.problems = problems
        super().__init__("\n".join(p.render(file) for p in problems))


def render_path(path: KeyPath) -> str:
    """``("models", 0, "params", "n")`` → ``models[0].params.n`` (odd names quoted)."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            name = part if _BARE_KEY.fullmatch(part) else json_quote(part)
            text += f".{name}" if text else name
    return text


def json_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def closest(name: object, names: Iterable[str]) -> str | None:
    if not isinstance(name, str):
        return None
    match = difflib.get_close_matches(name, list(names), n=1, cutoff=0.6)
    return match[0] if match else None


def _show(value: Any) -> str:
    """A value as TOML would spell it, shortened."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = json_quote(value)
    elif isinstance(value, dict):
        text = "{ " + ", ".join(f"{k} = {_show(v)}" for k, v in value.items()) + " }"
    elif isinstance(value, list):
        text = "[" + ", ".join(_show(v) for v in value) + "]"
    else:
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "…"


_TYPE_EXPECTED = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "a string",
    "list_type": "a list",
    "tuple_type": "a list",
    "dict_type": "a table",
    "model_type": "a table",
    "model_attributes_type": "a table",
}


_SHAPE_ERRORS = {*_TYPE_EXPECTED, "too_short"}


def _expected(err: Mapping[str, Any]) -> str:
    kind, ctx = err["type"], err.get("ctx") or {}
    if kind in _TYPE_EXPECTED:
        return _TYPE_EXPECTED[kind]
    if kind == "literal_error":
        return f"one of {ctx['expected']}"
    bounds = {
        "greater_than": ("gt", ">"),
        "greater_than_equal": ("ge", "≥"),
        "less_than": ("lt", "<"),
        "less_than_equal": ("le", "≤"),
    }
    if kind in bounds:
        key, sign = bounds[kind]
        return f"a number {sign} {ctx[key]}"
    if kind == "too_short":
        n = ctx.get("min_length", 1)
        return "a non-empty list" if n == 1 else f"at least {n} items"
    if kind == "value_error":
        return str(ctx.get("error", err["msg"]))
    return str(err["msg"]).removeprefix("Input should be ")


# --------------------------------------------------------------------------- line numbers

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


class KeyLocator:
    """Line numbers of keys in TOML text: ``[x]``/``[[x]]`` headers (with occurrence counts),
    ``key =`` lines, keys inside inline tables and elements of arrays.

    Best effort: the text is known to be valid TOML (tomllib read it first); anything this
    small scanner does not follow just gives fewer line numbers.
    """

    def __init__(self, text: str) -> None:
        self._text = text
        self._pos = 0
        self.offsets: dict[KeyPath, int] = {}  # where each key (or table header) starts
        with contextlib.suppress(IndexError, ValueError):  # best effort: keep what was found
            self._scan()
        starts = [0] + [m.end() for m in re.finditer(r"\n", text)]
        self.lines = {path: bisect.bisect_right(starts, at) for path, at in self.offsets.items()}

    def line(self, path: KeyPath) -> int | None:
        """The line of ``path``, else of its nearest enclosing key or table, else None."""
        found = self.offset(path)
        return None if found is None else self.lines[found[1]]

    def offset(self, path: KeyPath) -> tuple[int, KeyPath] | None:
        """(character offset, path found) of ``path`` or its nearest enclosing key or table."""
        for n in range(len(path), 0, -1):
            found = self.offsets.get(tuple(path[:n]))
            if found is not None:
                return found, tuple(path[:n])
        return None

    # scanning ---------------------------------------------------------------------------

    def _record(self, path: KeyPath, pos: int) -> None:
        self.offsets.setdefault(path, pos)

    def _peek(self, n: int = 1) -> str:
        return self._text[self._pos : self._pos + n]

    def _skip(self, newlines: bool) -> None:
        text = self._text
        while self._pos < len(text):
            c = text[self._pos]
            if c in " \t" or (newlines and c in "\r\n"):
                self._pos += 1
            elif c == "#":
                while self._pos < len(text) and text[self._pos] != "\n":
                    self._pos += 1
            else:
                return

    def _scan(self) -> None:
        text = self._text
        table: KeyPath = ()
        arrays: dict[KeyPath, int] = {}  # array-of-tables path → elements so far
        while True:
            self._skip(newlines=True)
            if self._pos >= len(text):
                return
            start = self._pos
            if text[self._pos] == "[":
                double = self._peek(2) == "[["
                self._pos += 2 if double else 1
                keys = self._key()
                self._pos += 2 if double else 1
                path: KeyPath = ()
                for key in keys[:-1]:
                    path += (key,)
                    if path in arrays:
                        path += (arrays[path] - 1,)
                path += (keys[-1],)
                if double:
                    arrays[path] = arrays.get(path, 0) + 1
                    self._record(path, start)
                    path += (arrays[path] - 1,)
                table = path
                self._record(table, start)
            else:
                keys = self._key()
                for n in range(1, len(keys) + 1):
                    self._record(table + tuple(keys[:n]), start)
                self._skip(newlines=False)
                if self._peek() != "=":
                    raise ValueError("expected '='")
                self._pos += 1
                self._value(table + tuple(keys))

    def _key(self) -> list[str]:
        """A dotted key (bare, "basic" or 'literal' parts)."""
        text, keys = self._text, []
        while True:
            self._skip(newlines=False)
            c = text[self._pos]
            if c == '"':
                end = self._pos + 1
                while text[end] != '"':
                    end += 2 if text[end] == "\\" else 1
                keys.append(tomllib.loads(f"k = {text[self._pos : end + 1]}")["k"])
                self._pos = end + 1
            elif c == "'":
                end = text.index("'", self._pos + 1)
                keys.append(text[self._pos + 1 : end])
                self._pos = end + 1
            else:
                match = _BARE_KEY.match(text, self._pos)
                if match is None:
                    raise ValueError("expected a key")
                keys.append(match.group())
                self._pos = match.end()
            self._skip(newlines=False)
            if self._peek() != ".":
                return keys
            self._pos += 1

    def _value(self, path: KeyPath) -> None:
        self._skip(newlines=False)
        text = self._text
        c = text[self._pos]
        if self._peek(3) in ('"""', "'''"):
            quote = self._peek(3)
            end = self._pos + 3
            while not text.startswith(quote, end):
                end += 2 if quote == '"""' and text[end] == "\\" else 1
            self._pos = end + 3
            while self._peek() == quote[0]:  # up to two quotes may end the content
                self._pos += 1
        elif c == '"':
            end = self._pos + 1
            while text[end] != '"':
                end += 2 if text[end] == "\\" else 1
            self._pos = end + 1
        elif c == "'":
            self._pos = text.index("'", self._pos + 1) + 1
        elif c == "{":
            self._pos += 1
            while True:
                self._skip(newlines=True)
                if self._peek() == "}":
                    self._pos += 1
                    return
                if self._peek() == ",":
                    self._pos += 1
                    continue
                start = self._pos
                keys = self._key()
                for n in range(1, len(keys) + 1):
                    self._record(path + tuple(keys[:n]), start)
                self._skip(newlines=False)
                self._pos += 1  # '='
                self._value(path + tuple(keys))
        elif c == "[":
            self._pos += 1
            index = 0
            while True:
                self._skip(newlines=True)
                if self._peek() == "]":
                    self._pos += 1
                    return
                if self._peek() == ",":
                    self._pos += 1
                    continue
                self._record((*path, index), self._pos)
                self._value((*path, index))
                index += 1
        else:
            match = re.compile(r"[^,\]}\r\n#]*").match(text, self._pos)
            assert match is not None  # the pattern matches the empty string
            if match.end() == self._pos:
                raise ValueError("expected a value")
            self._pos = match.end()


# --------------------------------------------------------------------------- section schemas


def _safe_name(value: str) -> str:
    if not SAFE_NAME.fullmatch(value):
        raise ValueError(f"a name of {SAFE_NAME_TEXT}")
    return value


def _sweep_values(value: Any) -> Any:
    if not isinstance(value, list) or not value:
        raise ValueError(
            "a non-empty list of values to try (a single value is set, not swept: in params, "
            "[protocol] or [train])"
        )
    return value


class SuiteSection(BaseModel):
    """``[suite]``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="results go to <results root>/<name>/")
    seeds: Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1)]
    description: str = ""

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _safe_name(value)

    @field_validator("seeds")
    @classmethod
    def _unique(cls, seeds: list[int]) -> list[int]:
        if len(set(seeds)) != len(seeds):
            raise ValueError("each seed once")
        return seeds


class DatasetSection(BaseModel):
    """One ``[[datasets]]`` table (its shape; names and files are checked afterwards)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    path: str | None = None
    format: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    protocol: dict[str, Any] = Field(default_factory=dict)
    text: dict[str, Any] | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _safe_name(value)


class ModelSection(BaseModel):
    """One ``[[models]]`` table (its shape; names are checked against the model registry)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str
    name: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    ablations: Annotated[list[str], Field(min_length=1)] = Field(default_factory=lambda: [FULL])
    sweep: dict[str, Annotated[list[Any], BeforeValidator(_sweep_values)]] = Field(
        default_factory=dict
    )
    role: Role = "baseline"

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        return None if value is None else _safe_name(value)

    @field_validator("ablations")
    @classmethod
    def _unique(cls, values: list[str]) -> list[str]:
        if len(set(values)) != len(values):
            raise ValueError("each ablation once")
        return values


SECTIONS = ("suite", "protocol", "train", "eval", "datasets", "models")

# What a key expects, for "missing" and for a wrong type of the key itself.
_FIELD_EXPECTED: dict[KeyPath, str] = {
    ("suite", "name"): f"a suite name of {SAFE_NAME_TEXT}",
    ("suite", "seeds"): "a non-empty list of unique integers ≥ 0, e.g. [2020, 2021]",
    ("eval", "metrics"): 'a non-empty list of metrics NAME@K, e.g. ["hr@10", "ndcg@10"]',
    ("datasets", "name"): "a registered dataset name, or a label for a local path",
    ("datasets", "options"): "a table of reader (or generator) options",
    ("datasets", "protocol"): "a table of protocol overrides, e.g. { max_len = 20 }",
    (
        "datasets",
        "text",
    ): 'a table of item text, e.g. { path = "movies.dat", format = "movielens" }',
    ("models", "model"): "a model name",
    ("models", "params"): "a table of model parameters, e.g. { hidden_size = 64 }",
    ("models", "ablations"): 'a non-empty list of ablation names, e.g. ["full"]',
    ("models", "sweep"): "a table of parameter → list of values, e.g. { n_layers = [1, 2] }",
}


# --------------------------------------------------------------------------- resolved suite


class DatasetPlan(BaseModel):
    """A resolved ``[[datasets]]`` entry."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    spec: DatasetSpec
    protocol: Protocol  # suite + dataset overrides (sweeps may change it per cell)
    overrides: dict[str, Any]  # the dataset's own protocol overrides


class ModelPlan(BaseModel):
    """A resolved ``[[models]]`` entry."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str
    name: str | None
    params: dict[str, Any]  # every parameter, defaults included (before sweeps)
    overrides: dict[str, Any]  # what the entry set in params
    ablations: list[str]
    sweep: dict[str, list[Any]]
    sweep_targets: dict[str, Literal["params", "protocol", "train"]]
    role: Role


class Suite(BaseModel):
    """A validated suite: resolved settings of every section, and its cells."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    file: Path
    name: str
    seeds: list[int]
    description: str
    protocol: Protocol
    protocol_overrides: dict[str, Any]
    train: TrainSettings
    eval: EvalSettings
    datasets: list[DatasetPlan]
    models: list[ModelPlan]
    _cells: tuple[Cell, ...] = PrivateAttr(default=())

    def cells(self) -> list[Cell]:
        """Datasets × models entries × ablations × sweep points × seeds, in that order."""
        return list(self._cells)

    def variants(self) -> list[Variant]:
        """The distinct variants, in suite order."""
        seen: dict[str, Variant] = {}
        for cell in self._cells:
            seen.setdefault(cell.variant.label, cell.variant)
        return list(seen.values())

    def describe(self) -> dict[str, Any]:
        """The resolved suite as JSON-able data (``seqbench validate --json``)."""
        return self.model_dump(mode="json")


def load_suite(path: Path | str) -> Suite:
    """Read and validate a suite file; one :class:`SuiteError` lists every problem."""
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
    return _Validator(shown, file.absolute().parent, text, data).suite(file.absolute())


def _syntax_message(file: str, message: str) -> str:
    match = re.search(r"\s*\(at line (\d+), column (\d+)\)$", message)
    if match:
        where = f"{file}:{match[1]}:{match[2]}"
        message = message[: match.start()]
    else:
        where = file
    return f"{where}: invalid TOML: {message}; expected TOML syntax (https://toml.io)"


# --------------------------------------------------------------------------- validation


class _Validator:
    """Collects every problem of one suite file, then builds the suite if there is none."""

    def __init__(self, file: str, folder: Path, text: str, data: dict[str, Any]) -> None:
        self.file = file
        self.folder = folder
        self.locator = KeyLocator(text)
        self.data = data
        self.problems: list[Problem] = []

    def add(
        self, path: KeyPath, problem: str, expected: str | None = None, hint: str | None = None
    ) -> None:
        found = Problem(path, problem, expected, hint, self.locator.line(path))
        if found not in self.problems:
            self.problems.append(found)

    def add_errors(
        self,
        exc: ValidationError,
        base: KeyPath,
        fields: Iterable[str],
        only: Iterable[str] | None = None,
        expected: Mapping[str, str] | None = None,
    ) -> set[tuple[Any, ...]]:
        """Turn pydantic errors into problems under ``base``; returns where they are.

        ``only`` keeps errors whose first key is in it (the others are reported elsewhere);
        ``expected`` overrides what a key expects when missing or of the wrong type.
        """
        fields = list(fields)
        keep = None if only is None else set(only)
        expected = expected or {}
        errors = exc.errors()
        extra = {str(e["loc"][0]) for e in errors if e["type"] == "extra_forbidden" and e["loc"]}
        bad: set[tuple[Any, ...]] = set()
        for err in errors:
            loc = tuple(err["loc"])
            head = str(loc[0]) if loc else None
            if keep is not None and head not in keep:
                continue
            bad.add(loc)
            path = base + loc
            if err["type"] == "extra_forbidden":
                self.add(
                    path, "unknown key", f"one of {', '.join(fields)}", closest(loc[-1], fields)
                )
            elif err["type"] == "missing":
                if any(closest(name, [head]) == head for name in extra):
                    continue  # the misspelt key already says "did you mean head?"
                self.add(path, "missing", expected.get(str(head), "a value"))
            elif not loc:
                self.add(path, str(err["msg"]).removeprefix("Value error, "))
            elif len(loc) == 1 and head in expected and err["type"] in _SHAPE_ERRORS:
                self.add(path, f"got {_show(err['input'])}", expected[str(head)])
            else:
                self.add(path, f"got {_show(err['input'])}", _expected(err))
        return bad

    def validate(
        self,
        schema: type[BaseModel],
        values: dict[str, Any],
        base: KeyPath,
        expected: Mapping[str, str] | None = None,
    ) -> BaseModel | None:
        """``schema`` from ``values``, with every problem recorded; on problems, the schema
        built from the good keys only (None if even that fails), so later checks can go on."""
        fields = list(schema.model_fields)
        try:
            return schema.model_validate(values, strict=True)
        except ValidationError as exc:
            bad = self.add_errors(exc, base, fields, expected=expected)
        good = {k: v for k, v in values.items() if k in fields}
        for loc in bad:  # drop what is wrong: a key of a table, else the whole key
            if len(loc) >= 2 and isinstance(good.get(loc[0]), dict):
                good[loc[0]] = {k: v for k, v in good[loc[0]].items() if k != loc[1]}
            elif loc:
                good.pop(loc[0], None)
        try:
            return schema.model_validate(good, strict=True)
        except ValidationError:
            return None

    def where(self, problem: Problem) -> int:
        """Sort key: a problem's place in the file (no place: first)."""
        found = self.locator.offset(problem.path)
        return -1 if found is None else found[0]

    def table(self, key: str) -> dict[str, Any]:
        value = self.data.get(key, {})
        if isinstance(value, dict):
            return value
        self.add((key,), f"got {_show(value)}", f"a table [{key}]")
        return {}

    def array(self, key: str) -> list[tuple[int, dict[str, Any]]]:
        value = self.data.get(key)
        if value is None:
            self.add((key,), "missing", f"at least one [[{key}]] table")
            return []
        if not isinstance(value, list) or not value:
            shape = "[" + key + "]" if isinstance(value, dict) else _show(value)
            self.add((key,), f"got {shape}", f"one or more [[{key}]] tables (double brackets)")
            return []
        entries = []
        for i, entry in enumerate(value):
            if isinstance(entry, dict):
                entries.append((i, entry))
            else:
                self.add((key, i), f"got {_show(entry)}", f"a [[{key}]] table")
        return entries

    # the sections -----------------------------------------------------------------------

    def suite(self, file: Path) -> Suite:
        for key in self.data:
            if key not in SECTIONS:
                self.add(
                    (key,), "unknown table", f"one of {', '.join(SECTIONS)}", closest(key, SECTIONS)
                )
        head = None
        if "suite" not in self.data:
            self.add(("suite",), "missing", "a [suite] table with name and seeds")
        else:
            head = self.validate(
                SuiteSection, self.table("suite"), ("suite",), _expectations("suite")
            )
        protocol_values = self.protocol_overrides(self.table("protocol"), {}, ("protocol",))
        train = self.validate(TrainSettings, self.table("train"), ("train",))
        if not isinstance(train, TrainSettings):
            train = TrainSettings()
        evaluation = self.validate(
            EvalSettings, self.table("eval"), ("eval",), _expectations("eval")
        )
        datasets = [
            d
            for i, entry in self.array("datasets")
            if (d := self.dataset(i, entry, protocol_values)) is not None
        ]
        self.unique_datasets(datasets)
        models = all_models()
        plans = [
            m
            for i, entry in self.array("models")
            if (m := self.model(i, entry, models, protocol_values, train)) is not None
        ]
        cells: list[Cell] = []
        if isinstance(head, SuiteSection) and isinstance(evaluation, EvalSettings):
            cells = self.expand(head, datasets, plans, models, protocol_values, train, evaluation)
        if self.problems:
            self.problems.sort(key=self.where)
            raise SuiteError(self.file, self.problems)
        assert isinstance(head, SuiteSection) and isinstance(evaluation, EvalSettings)
        suite = Suite(
            file=file,
            name=head.name,
            seeds=head.seeds,
            description=head.description,
            protocol=Protocol.model_validate(protocol_values),
            protocol_overrides=protocol_values,
            train=train,
            eval=evaluation,
            datasets=[plan for _, plan in datasets],
            models=[plan for _, plan in plans],
        )
        suite._cells = tuple(cells)
        return suite

    def protocol_overrides(
        self, values: dict[str, Any], base: dict[str, Any], where: KeyPath
    ) -> dict[str, Any]:
        """The good ones of ``values`` (protocol overrides on top of ``base``)."""
        try:
            Protocol.model_validate({**base, **values}, strict=True)
            return dict(values)
        except ValidationError as exc:
            bad = self.add_errors(exc, where, Protocol.model_fields, only=values)
        return {k: v for k, v in values.items() if (k,) not in bad}

    def dataset(
        self, i: int, entry: dict[str, Any], protocol: dict[str, Any]
    ) -> tuple[int, DatasetPlan] | None:
        where: KeyPath = ("datasets", i)
        ok = len(self.problems)
        section = self.validate(DatasetSection, entry, where, _expectations("datasets"))
        if not isinstance(section, DatasetSection):
            return None
        registered = DATASETS.get(section.name)
        formats = sorted([*READERS, SYNTHETIC])
        fmt = section.format
        if fmt is not None and fmt not in formats:
            self.add(
                (*where, "format"),
                f"unknown format {fmt!r}",
                f"one of {', '.join(formats)}",
                closest(fmt, formats),
            )
        path = None
        if section.path is None:
            if registered is None and "path" not in entry:
                self.add(
                    (*where, "name"),
                    f"unknown dataset {section.name!r}",
                    f"a registered dataset ({', '.join(sorted(DATASETS))}) or a local file "
                    'given by path = "…" and format = "…"',
                    closest(section.name, DATASETS),
                )
            fmt = fmt or (registered.format if registered else None)
        else:
            path = Path(os.path.normpath(self.folder / Path(section.path).expanduser()))
            if not path.exists():
                self.add(
                    (*where, "path"),
                    f"{section.path!r} does not exist (looked for {path})",
                    "an existing file or folder (a relative path starts at the suite "
                    "file's folder)",
                )
            fmt = fmt or (registered.format if registered else None)
            if fmt is None:
                self.add(
                    (*where, "format"),
                    "missing",
                    f"the format of the file at path (one of {', '.join(sorted(READERS))})",
                )
            elif fmt == SYNTHETIC:
                self.add(
                    (*where, "path"),
                    "the synthetic dataset is generated and reads no file",
                    "no path (or a reader format)",
                )
        if fmt == SYNTHETIC:
            options_schema: type[BaseModel] | None = SyntheticConfig
            defaults: dict[str, Any] = {}
        elif fmt in READERS:
            options_schema = READERS[fmt].Options
            same = registered is not None and path is None and fmt == registered.format
            defaults = dict(registered.options) if same and registered else {}
        else:
            options_schema, defaults = None, {}
        if options_schema is not None:
            try:
                options_schema.model_validate({**defaults, **section.options}, strict=True)
            except ValidationError as exc:
                self.add_errors(exc, (*where, "options"), options_schema.model_fields)
        overrides = self.protocol_overrides(section.protocol, protocol, (*where, "protocol"))
        text = None
        if section.text is not None:
            text = self.dataset_text(section.text, fmt, path, registered, (*where, "text"))
        if len(self.problems) > ok:
            return None
        spec = DatasetSpec(
            name=section.name,
            path=path,
            format=section.format,
            options=section.options,
            text=text,
        )
        resolved = Protocol.model_validate({**protocol, **overrides})
        return i, DatasetPlan(spec=spec, protocol=resolved, overrides=overrides)

    def dataset_text(
        self,
        values: dict[str, Any],
        fmt: str | None,
        path: Path | None,
        registered: Any,
        where: KeyPath,
    ) -> TextSpec | None:
        """A dataset's ``text`` table: its shape, and every file it names exists (relative
        paths start at the suite's folder). Without a path, a ``member`` is read from the
        dataset's own download (a registered zip archive)."""
        if fmt == SYNTHETIC:
            self.add(
                where,
                "the synthetic dataset generates its own item text",
                "no text table (the generator's option text = true/false decides)",
            )
            return None
        resolved = dict(values)
        for key in ("path", "embeddings", "ids"):
            if isinstance(resolved.get(key), str):
                file = Path(os.path.normpath(self.folder / Path(resolved[key]).expanduser()))
                if not file.exists():
                    self.add(
                        (*where, key),
                        f"{resolved[key]!r} does not exist (looked for {file})",
                        "an existing file (a relative path starts at the suite file's folder)",
                    )
                resolved[key] = file
        own_archive = (
            resolved.get("path") is None
            and resolved.get("embeddings") is None
            and resolved.get("member") is not None
        )
        if own_archive:
            remote = getattr(registered, "remote", None)
            if path is not None or remote is None or not remote.url.endswith(".zip"):
                self.add(
                    (*where, "member"),
                    "a member without a path is read from the dataset's own download, and this "
                    "dataset is not a registered zip archive",
                    "path = the file (or archive) that holds the item text",
                )
                return None
        spec = self.validate(TextSpec, resolved, where)
        if not isinstance(spec, TextSpec):
            return None
        if spec.path is None and spec.embeddings is None and spec.member is None:
            self.add(where, "names no item text", "path (and format), or embeddings")
        return spec

    def unique_datasets(self, datasets: list[tuple[int, DatasetPlan]]) -> None:
        first: dict[str, int] = {}
        for i, plan in datasets:
            name = plan.spec.name
            if name in first:
                self.add(
                    ("datasets", i, "name"),
                    f"{name!r} is also the name of datasets[{first[name]}]",
                    "a distinct name per dataset (it names the results folder)",
                )
            else:
                first[name] = i

    def model(
        self,
        i: int,
        entry: dict[str, Any],
        models: Mapping[str, ModelSpec],
        protocol: dict[str, Any],
        train: TrainSettings,
    ) -> tuple[int, ModelPlan] | None:
        where: KeyPath = ("models", i)
        ok = len(self.problems)
        section = self.validate(ModelSection, entry, where, _expectations("models"))
        if not isinstance(section, ModelSection):
            return None
        spec = models.get(section.model)
        if spec is None:
            self.add(
                (*where, "model"),
                f"unknown model {section.model!r}",
                f"one of {', '.join(sorted(models))}",
                closest(section.model, models),
            )
            return None
        params = self.model_params(spec, section.params, (*where, "params"))
        for j, ablation in enumerate(section.ablations):
            if ablation not in spec.ablations:
                self.add(
                    (*where, "ablations", j),
                    f"model {spec.name!r} has no ablation {ablation!r}",
                    f"one of {', '.join(spec.ablations)}",
                    closest(ablation, spec.ablations),
                )
        targets = self.sweep(spec, section, protocol, train, (*where, "sweep"))
        self.sweep_disabled(spec, section, targets, where)
        if len(self.problems) > ok or params is None:
            return None
        return i, ModelPlan(
            model=spec.name,
            name=section.name,
            params=params.model_dump(mode="json"),
            overrides=dict(section.params),
            ablations=list(section.ablations),
            sweep={k: list(v) for k, v in section.sweep.items()},
            sweep_targets=targets,
            role=section.role,
        )

    def sweep_disabled(
        self,
        spec: ModelSpec,
        section: ModelSection,
        targets: Mapping[str, str],
        where: KeyPath,
    ) -> None:
        """A swept parameter with an ablation that switches off what it configures would train
        the same model once per value under different labels: an error, not a duplicate."""
        for ablation in section.ablations:
            for key in spec.disables.get(ablation, ()):
                if targets.get(key) == "params":
                    self.add(
                        (*where, "sweep", key),
                        f"sweeping {key!r} with ablation {ablation!r}, which switches off what "
                        f"{key!r} configures (every value would train the same model)",
                        f"ablation {ablation!r} in a models entry of its own, without this sweep",
                    )

    def model_params(
        self, spec: ModelSpec, values: dict[str, Any], where: KeyPath
    ) -> ModelParams | None:
        try:
            return spec.params.model_validate(values, strict=True)
        except ValidationError as exc:
            self.add_errors(exc, where, spec.params.model_fields)
            return None

    def sweep(
        self,
        spec: ModelSpec,
        section: ModelSection,
        protocol: dict[str, Any],
        train: TrainSettings,
        where: KeyPath,
    ) -> dict[str, Literal["params", "protocol", "train"]]:
        """Which section each sweep key belongs to; every value is checked as if set."""
        targets: dict[str, Literal["params", "protocol", "train"]] = {}
        param_fields = list(spec.params.model_fields)
        for key, values in section.sweep.items():
            path = (*where, key)
            target: Literal["params", "protocol", "train"]
            if key in spec.params.model_fields:
                target = "params"
                if key in section.params:
                    self.add(
                        path,
                        f"{key!r} is both set in params and swept",
                        "it in one of them (a list-valued parameter is a single value in "
                        "params, a sweep only under sweep)",
                    )
                    continue
            elif key in Protocol.model_fields:
                target = "protocol"
            elif key in TrainSettings.model_fields:
                target = "train"
            else:
                known = [*param_fields, *Protocol.model_fields, *TrainSettings.model_fields]
                self.add(
                    path,
                    "unknown sweep key",
                    f"a parameter of model {spec.name!r} ({', '.join(param_fields) or 'none'}), "
                    f"a protocol key ({', '.join(Protocol.model_fields)}) or a train key "
                    f"({', '.join(TrainSettings.model_fields)})",
                    closest(key, known),
                )
                continue
            targets[key] = target
            seen: set[str] = set()
            for j, value in enumerate(values):
                text = canonical_json(value)
                if text in seen:
                    self.add((*path, j), f"{_show(value)} is listed twice", "distinct values")
                seen.add(text)
                self.sweep_value(spec, target, key, value, section, protocol, train, (*path, j))
        return targets

    def sweep_value(
        self,
        spec: ModelSpec,
        target: str,
        key: str,
        value: Any,
        section: ModelSection,
        protocol: dict[str, Any],
        train: TrainSettings,
        path: KeyPath,
    ) -> None:
        schema: type[BaseModel]
        if target == "params":
            schema, base = spec.params, dict(section.params)
        elif target == "protocol":
            schema, base = Protocol, dict(protocol)
        else:
            schema, base = TrainSettings, train.model_dump()
        try:
            schema.model_validate({**base, key: value}, strict=True)
        except ValidationError as exc:
            for err in exc.errors():
                if tuple(err["loc"])[:1] == (key,):
                    self.add(path, f"got {_show(value)}", _expected(err))

    # expansion --------------------------------------------------------------------------

    def expand(
        self,
        head: SuiteSection,
        datasets: list[tuple[int, DatasetPlan]],
        models: list[tuple[int, ModelPlan]],
        registry: Mapping[str, ModelSpec],
        protocol: dict[str, Any],
        train: TrainSettings,
        evaluation: EvalSettings,
    ) -> list[Cell]:
        """All cells, in order; label clashes and duplicate cells become problems."""
        variants: list[tuple[int, Variant, dict[str, Any], dict[str, Any]]] = []
        for i, plan in models:
            spec = registry[plan.model]
            for a, ablation in enumerate(plan.ablations):
                for p, point in enumerate(_points(plan.sweep)):
                    built = self.variant(spec, plan, i, a, ablation, p, point, train)
                    if built is not None:
                        variants.append((i, *built))
        self.check_labels(variants)
        cells = []
        for d, dataset in datasets:
            self.check_text(d, dataset, variants)
            for i, variant, proto_point, train_point in variants:
                try:
                    cell_protocol = Protocol.model_validate(
                        {**protocol, **dataset.overrides, **proto_point}, strict=True
                    )
                except ValidationError as exc:
                    self.add(
                        ("models", i, "sweep"),
                        f"sweep point {format_point(variant.sweep)} with datasets[{d}]: "
                        + "; ".join(_expected(e) for e in exc.errors()),
                        "sweep values that work with every dataset's protocol",
                    )
                    continue
                cell_train = TrainSettings.model_validate(  # checked in variant()
                    {**train.model_dump(), **train_point}
                )
                for seed in head.seeds:
                    cells.append(
                        Cell(
                            suite=head.name,
                            dataset=dataset.spec,
                            protocol=cell_protocol,
                            variant=variant,
                            seed=seed,
                            train=cell_train,
                            eval=evaluation,
                        )
                    )
        self.check_duplicates(cells)
        return cells

    def variant(
        self,
        spec: ModelSpec,
        plan: ModelPlan,
        i: int,
        a: int,
        ablation: str,
        p: int,
        point: dict[str, Any],
        train: TrainSettings,
    ) -> tuple[Variant, dict[str, Any], dict[str, Any]] | None:
        """The variant of one sweep point, with the point's protocol and train values."""
        parts: dict[str, dict[str, Any]] = {"params": {}, "protocol": {}, "train": {}}
        for key, value in point.items():
            parts[plan.sweep_targets[key]][key] = value
        overrides = {**plan.overrides, **parts["params"]}
        try:
            params = spec.params.model_validate(overrides, strict=True)
        except ValidationError as exc:
            self.sweep_point_problem(i, point, exc, "params")
            return None
        resolved = params.model_dump(mode="json")
        try:
            train_values = TrainSettings.model_validate({**train.model_dump(), **parts["train"]})
        except ValidationError as exc:
            self.sweep_point_problem(i, point, exc, "[train]")
            return None
        if train_values.objective == "all_positions" and not spec.allows_all_positions(
            params, ablation
        ):
            why = "not causal" if not spec.is_causal(params, ablation) else "no output per slot"
            self.add(
                ("models", i, "ablations", a) if ablation != FULL else ("models", i, "model"),
                f"model {spec.name!r} ablation {ablation!r} cannot train with objective "
                f"'all_positions' ({why}: a slot would see the target of another)",
                'objective = "last" in [train] (or a sweep), or a causal model such as '
                + ", ".join(n for n, m in sorted(all_models().items()) if m.allows_all_positions()),
            )
            return None
        protocol_values = Protocol.model_validate(parts["protocol"])
        shown = {
            key: resolved[key]
            if target == "params"
            else getattr(protocol_values if target == "protocol" else train_values, key)
            for key, target in plan.sweep_targets.items()
        }
        variant = Variant(
            label=variant_label(plan.model, plan.name, ablation, shown),
            model=plan.model,
            ablation=ablation,
            sweep=shown,
            params=resolved,
            overrides=overrides,
            role=plan.role,
            order=(i, a, p),
            uses_text=spec.needs_text(params, ablation),
        )
        return variant, parts["protocol"], parts["train"]

    def sweep_point_problem(
        self, i: int, point: Mapping[str, Any], exc: ValidationError, section: str
    ) -> None:
        problems = "; ".join(f"{e['msg']}" for e in exc.errors())
        self.add(
            ("models", i, "sweep"),
            f"sweep point {format_point(point)}: {problems.removeprefix('Value error, ')}",
            f"sweep values that work together with {section}",
        )

    def check_text(
        self,
        d: int,
        dataset: DatasetPlan,
        variants: list[tuple[int, Variant, dict[str, Any], dict[str, Any]]],
    ) -> None:
        """A variant that reads item text needs a dataset that has some."""
        if dataset_has_text(dataset.spec):
            return
        reported: set[tuple[int, str]] = set()
        for i, variant, _, _ in variants:
            if not variant.uses_text or (i, variant.ablation) in reported:
                continue
            reported.add((i, variant.ablation))
            where: KeyPath = ("models", i, "model")
            if variant.ablation != FULL:
                where = ("models", i, "ablations", variant.order[1])
            self.add(
                where,
                f"model {variant.model!r} (ablation {variant.ablation!r}) reads item text, and "
                f"datasets[{d}] ({dataset.spec.name!r}) has none",
                f'a text table in datasets[{d}], e.g. text = {{ path = "movies.dat", format = '
                '"movielens" } (formats: ' + ", ".join(TEXT_FORMATS) + "), or an ablation "
                "without text (e.g. no_llm)",
            )

    def check_labels(
        self, variants: list[tuple[int, Variant, dict[str, Any], dict[str, Any]]]
    ) -> None:
        """A label names a folder: one label, one configuration."""
        by_label: dict[str, tuple[int, str, Variant]] = {}
        for i, variant, proto_point, train_point in variants:
            identity = canonical_json(
                {
                    "model": variant.model,
                    "ablation": variant.ablation,
                    "params": variant.params,
                    "protocol": proto_point,
                    "train": train_point,
                }
            )
            where: KeyPath = ("models", i)
            if variant.label in by_label:
                j, other_identity, other = by_label[variant.label]
                if other_identity != identity:
                    if j == i:
                        self.add(
                            (*where, "sweep"),
                            f"sweep points {format_point(other.sweep)} and "
                            f"{format_point(variant.sweep)} both give the folder name "
                            f"{variant.label!r}",
                            "values that still differ once characters outside "
                            "[A-Za-z0-9._=,+@-] become '_'",
                        )
                    else:
                        self.add(
                            where,
                            f"its variant {variant.label!r} has the same name as one of "
                            f"models[{j}] but other settings",
                            f'a distinct name: add name = "{variant.model}-{i}" (or another '
                            "name) to one of them",
                        )
            else:
                by_label[variant.label] = (i, identity, variant)

    def check_duplicates(self, cells: list[Cell]) -> None:
        """No cell twice: the same dataset, numbers-changing settings and seed under two labels
        would be trained twice (dataset names are unique, so they stand for the source)."""
        blank = dict.fromkeys(SOURCE_KEYS, "")
        seen: dict[str, Variant] = {}
        for cell in cells:
            key = canonical_json([cell.dataset.name, cell.identity(blank)])
            other = seen.setdefault(key, cell.variant)
            if other is not cell.variant:
                self.add(
                    ("models", cell.variant.order[0]),
                    f"variant {cell.variant.label!r} gives the same cells as variant "
                    f"{other.label!r} of models[{other.order[0]}] (same model, ablation, "
                    "parameters and settings)",
                    "each configuration once: remove one",
                )


def dataset_has_text(spec: DatasetSpec) -> bool:
    """Whether a dataset brings item text: a text table, or generated data with text on."""
    if spec.text is not None:
        return True
    fmt = spec.format or (DATASETS[spec.name].format if spec.name in DATASETS else None)
    return fmt == SYNTHETIC and SyntheticConfig.model_validate(spec.options).text


def _points(sweep: Mapping[str, list[Any]]) -> Iterator[dict[str, Any]]:
    """The cartesian product of the sweep's values, first key slowest."""
    keys = list(sweep)
    for values in itertools.product(*(sweep[k] for k in keys)):
        yield dict(zip(keys, values, strict=True))


def format_point(point: Mapping[str, Any]) -> str:
    return "{" + ", ".join(f"{k} = {format_value(v)}" for k, v in point.items()) + "}"


def _expectations(section: str) -> dict[str, str]:
    return {path[1]: text for path, text in _FIELD_EXPECTED.items() if path[0] == section}
