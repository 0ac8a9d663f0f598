"""The problem list of a suite file: every problem found, rendered one per line.

A problem reads ``<file>:<line>: <key.path>: <problem>; expected <…>[; did you mean 'x'?]``.
:class:`Problems` collects them (once each, with the line of their key) while every section is
checked, turns pydantic's errors into such lines, and sorts them into file order at the end, so
that one :class:`SuiteError` lists them all.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from seqbench.errors import ConfigError, closest
from seqbench.suite.locator import BARE_KEY, KeyLocator, KeyPath


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


class DataNeededError(ConfigError):
    """A valid suite whose data-folder files are not all there (one line per missing file)."""


def render_path(path: KeyPath) -> str:
    """``("models", 0, "params", "n")`` → ``models[0].params.n`` (odd names quoted)."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            name = part if BARE_KEY.fullmatch(part) else json_quote(part)
            text += f".{name}" if text else name
    return text


def json_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def show(value: Any) -> str:
    """A value as TOML would spell it, shortened."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = json_quote(value)
    elif isinstance(value, dict):
        text = "{ " + ", ".join(f"{k} = {show(v)}" for k, v in value.items()) + " }"
    elif isinstance(value, list):
        text = "[" + ", ".join(show(v) for v in value) + "]"
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

_BOUNDS = {
    "greater_than": ("gt", ">"),
    "greater_than_equal": ("ge", "≥"),
    "less_than": ("lt", "<"),
    "less_than_equal": ("le", "≤"),
}


def expected_of(err: Mapping[str, Any]) -> str:
    """What a pydantic error says was expected, in the words of a suite message."""
    kind, ctx = err["type"], err.get("ctx") or {}
    if kind in _TYPE_EXPECTED:
        return _TYPE_EXPECTED[kind]
    if kind == "literal_error":
        return f"one of {ctx['expected']}"
    if kind in _BOUNDS:
        key, sign = _BOUNDS[kind]
        return f"a number {sign} {ctx[key]}"
    if kind == "too_short":
        n = ctx.get("min_length", 1)
        return "a non-empty list" if n == 1 else f"at least {n} items"
    if kind == "value_error":
        return str(ctx.get("error", err["msg"]))
    return str(err["msg"]).removeprefix("Input should be ")


class Problems:
    """Every problem of one suite file, each once, with its line; sorted into file order."""

    def __init__(self, locator: KeyLocator) -> None:
        self.locator = locator
        self.found: list[Problem] = []

    def __len__(self) -> int:
        return len(self.found)

    def add(
        self, path: KeyPath, problem: str, expected: str | None = None, hint: str | None = None
    ) -> None:
        found = Problem(path, problem, expected, hint, self.locator.line(path))
        if found not in self.found:
            self.found.append(found)

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
                self.add(path, f"got {show(err['input'])}", expected[str(head)])
            else:
                self.add(path, f"got {show(err['input'])}", expected_of(err))
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

    def in_file_order(self) -> list[Problem]:
        """The problems by their place in the file (no place: first; ties: as found)."""

        def where(problem: Problem) -> int:
            found = self.locator.offset(problem.path)
            return -1 if found is None else found[0]

        return sorted(self.found, key=where)
