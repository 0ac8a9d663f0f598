"""What a tuning run leaves in ``<results>/<suite>/tune/``, rebuilt from the study storage and
the trial store each time (so every process, and a rerun after the fact, writes the same):

- ``summary.json``: per study the search space, the budget, trials complete / pruned / failed,
  the best trial (value and parameters), default vs tuned on validation, parameter importances
  and the history of every trial. ``seqbench report`` reads it; ``seqbench run --tuned`` takes
  the best parameters from it.
- ``best.toml``: the best values as ``[[models]]`` entries a user can paste into a suite (the
  same cell hashes as ``seqbench run --tuned``).

docs/tune.md documents both.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from seqbench import atomic, record
from seqbench.store import read_result
from seqbench.suite import Suite
from seqbench.suite.tune import TuneSettings
from seqbench.tune.driver import (
    DEFAULT_TRIAL,
    EPOCHS,
    ERROR,
    LOST,
    RETRY_OF,
    REUSED,
    TUNE_DIR,
    StudyPlan,
    Tuner,
)
from seqbench.tune.points import tidy

SUMMARY, BEST = "summary.json", "best.toml"
SUMMARY_SCHEMA = 1


def write_outputs(tuner: Tuner) -> tuple[Path, Path]:
    """Write summary.json and best.toml for the tuner's studies; returns their paths."""
    folder = tuner.suite_dir / TUNE_DIR
    folder.mkdir(parents=True, exist_ok=True)
    summary = build_summary(tuner)
    atomic.write_text(folder / SUMMARY, json.dumps(summary, indent=2, allow_nan=False) + "\n")
    atomic.write_text(folder / BEST, best_toml(tuner.suite, tuner.studies, summary))
    return folder / SUMMARY, folder / BEST


def build_summary(tuner: Tuner) -> dict[str, Any]:
    tune = tuner.tune
    return {
        "schema": SUMMARY_SCHEMA,
        "suite": tuner.suite.name,
        "written": record.now(),
        "storage": tuner.storage.shown,
        "dashboard": f"optuna-dashboard {tuner.storage.dashboard_target}",
        "budget": budget(tune),
        "studies": [study_summary(tuner, state.plan, state.study) for state in tuner.studies],
    }


def budget(tune: TuneSettings) -> dict[str, Any]:
    """The budget of every study: the suite's ``[tune]`` is one table, so every model gets
    the same number of trials and the same time."""
    return {
        "trials": tune.trials,
        "timeout": tune.timeout,
        "sampler": tune.sampler,
        "seed": tune.seed,
        "pruner": tune.pruner,
        "warmup": tune.warmup,
        "startup_trials": tune.startup_trials,
        "metric": tune.metric,
        "seeds": tune.seeds,
        "equal": True,
        "text": tune.describe_budget(),
    }


def study_summary(tuner: Tuner, plan: StudyPlan, study: Any) -> dict[str, Any]:
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    counts = {
        "complete": sum(t.state == TrialState.COMPLETE for t in trials),
        "pruned": sum(t.state == TrialState.PRUNED for t in trials),
        "failed": sum(t.state == TrialState.FAIL for t in trials),
        "running": sum(t.state == TrialState.RUNNING for t in trials),
        "waiting": sum(t.state == TrialState.WAITING for t in trials),
    }
    complete = [t for t in trials if t.state == TrialState.COMPLETE and _finite(t.value)]
    best = max(complete, key=lambda t: (t.value, -t.number), default=None)
    history = []
    for t in trials:
        if t.state == TrialState.WAITING:
            continue
        seconds = None
        if t.datetime_start is not None and t.datetime_complete is not None:
            seconds = (t.datetime_complete - t.datetime_start).total_seconds()
        entry: dict[str, Any] = {
            "trial": t.number,
            "state": t.state.name,
            "value": t.value if _finite(t.value) else None,
            "params": tidy(plan.space, t.params),
            "epochs": t.user_attrs.get(EPOCHS),
            "steps": len(t.intermediate_values),
            "seconds": seconds,
            "reused": t.user_attrs.get(REUSED),
        }
        for key, name in ((ERROR, "error"), (LOST, "lost"), (RETRY_OF, "retry_of")):
            if key in t.user_attrs:
                entry[name] = t.user_attrs[key]
        history.append(entry)
    default_value = _default_value(tuner, plan)
    return {
        "study": plan.name,
        "dataset": plan.dataset,
        "variant": plan.label,
        "model": plan.model,
        "entry": plan.entry,
        "space": {
            key: {
                **dim.model_dump(exclude_defaults=True),
                "text": dim.describe(),
                "target": plan.targets[key],
            }
            for key, dim in plan.space.items()
        },
        "trials": counts,
        "epochs": sum(int(h["epochs"] or 0) for h in history),
        "seconds": sum(h["seconds"] or 0.0 for h in history),
        "best": None
        if best is None
        else {"trial": best.number, "value": best.value, "params": tidy(plan.space, best.params)},
        "default": {"params": plan.default, "value": default_value},
        "tuned": {"value": best.value if best is not None else None},
        "importances": _importances(study, len(complete)),
        "history": history,
    }


def _default_value(tuner: Tuner, plan: StudyPlan) -> float | None:
    """The mean over trial seeds of the default cells' value, read from the trial store."""
    state = next(s for s in tuner.studies if s.plan is plan)
    values = []
    for cell in plan.cells:
        job = tuner._job(state, DEFAULT_TRIAL, plan.default, cell)
        result = read_result(job.cell_dir / record.RESULT)
        valid = ((result or {}).get("metrics") or {}).get("valid") or {}
        value = valid.get(tuner.tune.metric)
        if result is None or result.get("status") != "ok" or not _finite(value):
            return None
        values.append(float(value))
    return sum(values) / len(values) if values else None


def _importances(study: Any, complete: int) -> dict[str, float] | None:
    """fANOVA importances of the searched keys (None with fewer than 2 complete trials)."""
    if complete < 2:
        return None
    try:
        import warnings

        import optuna

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            found = optuna.importance.get_param_importances(study)
    except Exception:  # too few distinct points, a single-valued space …
        return None
    return {k: float(v) for k, v in found.items() if _finite(v)}


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


# ----------------------------------------------------------------------- best.toml


def best_toml(suite: Suite, studies: list[Any], summary: dict[str, Any]) -> str:
    """The best values as ``[[models]]`` entries (one per study with a complete trial)."""
    lines = [
        f"# Best settings found by `seqbench tune` for suite {suite.name!r}, one [[models]] entry",
        "# per study (models entry × dataset). Paste an entry into the suite in place of the tuned",
        "# one (or run `seqbench run SUITE --tuned`, which gives the same cell hashes). With",
        "# several datasets, each entry holds the values tuned on its own dataset.",
        f"# Budget per study: {summary['budget']['text']}; metric: valid "
        f"{summary['budget']['metric']}.",
    ]
    several = len({state.plan.dataset for state in studies}) > 1
    by_name = {s["study"]: s for s in summary["studies"]}
    for state in studies:
        plan: StudyPlan = state.plan
        info = by_name[plan.name]
        best = info["best"]
        lines.append("")
        if best is None:
            lines.append(f"# study {plan.name}: no complete trial yet")
            continue
        default = info["default"]["value"]
        shown_default = f"{default:.6g}" if default is not None else "not computed"
        lines.append(
            f"# study {plan.name}: trial {best['trial']}, valid {summary['budget']['metric']} "
            f"{best['value']:.6g} (default settings: {shown_default})"
        )
        lines += _entry(suite, plan, best["params"], several)
    return "\n".join(lines) + "\n"


def _entry(suite: Suite, plan: StudyPlan, params: dict[str, Any], several: bool) -> list[str]:
    """One ``[[models]]`` entry holding the study's variant with the best values."""
    cell = plan.cells[0]
    entry = suite.models[plan.entry]
    variant = cell.variant
    model_params = dict(variant.overrides)
    sweep: dict[str, Any] = {}
    for key, value in variant.sweep.items():  # the study's own sweep point
        if entry.sweep_targets.get(key) != "params":
            sweep[key] = value
    for key, value in params.items():
        if plan.targets[key] == "params":
            model_params[key] = value
        else:
            sweep[key] = value
    name = entry.name or entry.model
    if several:
        name = f"{name}-{plan.dataset}"
    out = ["[[models]]", f"model = {_toml(variant.model)}"]
    if name != variant.model or several or entry.name:
        out.append(f"name = {_toml(name)}")
    if model_params:
        out.append(f"params = {_toml(model_params)}")
    out.append(f"ablations = {_toml([variant.ablation])}")
    if sweep:
        out.append(f"sweep = {_toml({k: [v] for k, v in sweep.items()})}")
    out.append(f"role = {_toml(variant.role)}")
    return out


def _toml(value: Any) -> str:
    """A value as an inline TOML value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value} has no TOML spelling here")
        text = repr(value)
        return text if any(c in text for c in ".en") else text + ".0"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_toml(v)}" for k, v in value.items()) + " }"
    if value is None:
        raise ValueError("None has no TOML spelling")
    return json.dumps(str(value))


def _key(key: str) -> str:
    import re

    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def read_summary(suite_dir: Path) -> dict[str, Any] | None:
    """``<suite_dir>/tune/summary.json`` (None when absent or unreadable)."""
    return read_result(suite_dir / TUNE_DIR / SUMMARY)
