"""What every section check works on: the parsed file, its problem list, and what the checks
before it resolved (a later section may build on an earlier one, e.g. datasets on [protocol])."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from seqbench.data.protocol import Protocol
from seqbench.models.registry import ModelSpec, all_models
from seqbench.suite.locator import KeyPath
from seqbench.suite.problems import Problems, show


@dataclass
class Context:
    file: str  # the suite file as the user named it (messages)
    folder: Path  # its folder: relative paths start there
    data: dict[str, Any]  # the parsed TOML
    problems: Problems
    data_dir: Path | None = None  # where ``file =`` dataset entries are looked up
    resolved: dict[str, Any] = field(default_factory=dict)  # section name → its check's result

    @functools.cached_property
    def registry(self) -> dict[str, ModelSpec]:
        """The models (built-in and plugins), loaded when a check first needs them."""
        return all_models()

    def table(self, key: str) -> dict[str, Any]:
        """The ``[key]`` table (empty when absent; a problem when it is not a table)."""
        value = self.data.get(key, {})
        if isinstance(value, dict):
            return value
        self.problems.add((key,), f"got {show(value)}", f"a table [{key}]")
        return {}

    def array(self, key: str) -> list[tuple[int, dict[str, Any]]]:
        """The ``[[key]]`` tables with their indices (at least one is required)."""
        value = self.data.get(key)
        if value is None:
            self.problems.add((key,), "missing", f"at least one [[{key}]] table")
            return []
        if not isinstance(value, list) or not value:
            shape = "[" + key + "]" if isinstance(value, dict) else show(value)
            self.problems.add(
                (key,), f"got {shape}", f"one or more [[{key}]] tables (double brackets)"
            )
            return []
        entries = []
        for i, entry in enumerate(value):
            if isinstance(entry, dict):
                entries.append((i, entry))
            else:
                self.problems.add((key, i), f"got {show(entry)}", f"a [[{key}]] table")
        return entries

    def protocol_overrides(
        self, values: dict[str, Any], base: dict[str, Any], where: KeyPath
    ) -> dict[str, Any]:
        """The good ones of ``values`` (protocol overrides on top of ``base``)."""
        try:
            Protocol.model_validate({**base, **values}, strict=True)
            return dict(values)
        except ValidationError as exc:
            bad = self.problems.add_errors(exc, where, Protocol.model_fields, only=values)
        return {k: v for k, v in values.items() if (k,) not in bad}
