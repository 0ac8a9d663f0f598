"""Validate user-given options against a pydantic model, reporting every problem at once."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from seqbench.errors import ConfigError, suggestion

M = TypeVar("M", bound=BaseModel)


def validate_options(model: type[M], values: dict[str, Any], where: str) -> M:
    """``model(**values)``, or one :class:`ConfigError` naming each bad key and what it expects."""
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise ConfigError(f"{where}: " + "; ".join(describe_errors(exc, model))) from None


def describe_errors(exc: ValidationError, model: type[BaseModel]) -> list[str]:
    """One line per error: the key path, the problem, a 'did you mean' for unknown keys."""
    fields = list(model.model_fields)
    problems = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            problems.append(f"unknown option {key!r}{suggestion(key, fields)}")
        elif key:
            problems.append(f"option {key!r}: {err['msg']} (got {err['input']!r})")
        else:  # a model-level check
            problems.append(err["msg"].removeprefix("Value error, "))
    return problems
