"""The scaling report of throughput cells: slopes recovered from synthetic timings with known
exponents (with bootstrap intervals that hold them), crossover lengths, caps shown as "OOM" /
"timeout" in the tables, CSV, JSON and plots."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from seqbench import record
from seqbench.report import build_report, load_results, render
from seqbench.report.analysis import analyse
from seqbench.report.options import ReportOptions
from seqbench.report.plots import write_plots
from seqbench.report.report_json import report_dict
from seqbench.report.scaling import crossover, fit_time, loglog_fit, scaling_lines

LENGTHS = (64, 128, 256, 512, 1024, 2048, 4096, 8192)
#: label → (model, params, seconds-per-step law (c, a), memory law (m, b), capped from, status)
MODELS: dict[str, tuple[str, dict[str, Any], tuple[float, float], tuple[float, float],
                        int | None, str]] = {
    "mamba4rec": ("mamba4rec", {"d_state": 32, "hidden_size": 64}, (2e-3, 1.0), (0.5, 1.0),
                  None, ""),
    "sasrec": ("sasrec", {"n_heads": 2, "hidden_size": 64}, (2e-5, 2.0), (2e-3, 2.0), 4096,
               "oom"),
    "gru4rec": ("gru4rec", {"hidden_size": 128}, (1e-3, 1.0), (0.1, 1.0), 8192, "timeout"),
}  # fmt: skip


def _write(root: Path, label: str, length: int, seed: int, status: str,
           section: dict[str, Any] | None) -> None:  # fmt: skip
    model, params = MODELS[label][:2]
    variant = {"label": f"{label}@max_len={length}", "model": model, "ablation": "full",
               "sweep": {"max_len": length}, "params": params, "order": [0, 0, 0]}  # fmt: skip
    identity = {"label": variant["label"], "seed": seed}
    cell_hash = hashlib.sha256(json.dumps(identity).encode()).hexdigest()
    data: dict[str, Any] = {
        "schema": 2,
        "status": status,
        "cell": {"hash": cell_hash, "identity": identity, "suite": "scaling",
                 "dataset": {"name": "synthetic"}, "variant": variant, "seed": seed,
                 "protocol": {"max_len": length},
                 "train": {"mode": "throughput", "batch_size": 4, "steps": 20}},
        "recorded": "2025-01-01T00:00:00+00:00",
    }  # fmt: skip
    if section is not None:
        data["throughput"] = section
    if status != "ok":
        data["stopped"] = {"reason": f"{status} reason", "requested_by": "test"}
    folder = root / "scaling" / "synthetic" / variant["label"] / f"seed-{seed}-{cell_hash[:8]}"
    folder.mkdir(parents=True)
    checked = record.ResultRecord.model_validate(data).to_json()
    (folder / "result.json").write_text(json.dumps(checked), encoding="utf-8")


def scaling_store(root: Path, seeds: tuple[int, ...] = (1,)) -> Path:
    """Times c·L^a (20 steps with ±5% multiplicative noise) and memory m·L^b above a 300 MiB
    baseline, per model, until the model's cap."""
    rng = np.random.default_rng(0)
    for label, (_, _, (c, a), (m, b), capped, status) in MODELS.items():
        for length in LENGTHS:
            for seed in seeds:
                if capped is not None and length >= capped:
                    _write(root, label, length, seed, status, None)
                    continue
                steps = (c * length**a * np.exp(rng.normal(0, 0.05, 20))).tolist()
                section = {"batch_size": 4, "max_len": length, "warmup_steps": 1, "steps": 20,
                           "step_seconds": steps, "seconds_per_step": float(np.median(steps)),
                           "tokens_per_second": 4 * length / float(np.mean(steps)),
                           "users_scored": 16, "users_per_second": 100.0,
                           "memory": {"kind": "rss", "baseline": 300.0,
                                      "train_peak": 300.0 + m * length**b,
                                      "score_peak": 300.0 + m * length**b / 4}}  # fmt: skip
                _write(root, label, length, seed, "ok", section)
    return root / "scaling"


def _report(folder: Path) -> Any:
    built = build_report(load_results(folder))
    return analyse(built, ReportOptions())


def test_slopes_recover_known_exponents_with_intervals_that_hold_them(tmp_path: Path) -> None:
    lines = {line.label: line for line in scaling_lines(load_results(scaling_store(tmp_path)))}
    assert set(lines) == {"mamba4rec", "sasrec", "gru4rec"}
    for label, line in lines.items():
        exponent = MODELS[label][2][1]
        fit = fit_time(line, resamples=4000)
        assert fit.slope == pytest.approx(exponent, abs=0.05)
        assert fit.low is not None and fit.high is not None
        assert fit.low <= exponent <= fit.high and fit.high - fit.low < 0.2
        assert min(fit.lengths) == 512  # shorter lengths are left out of the fit
    assert lines["sasrec"].points[-1].status == "oom" and lines["sasrec"].first_cap() is not None
    assert fit_time(lines["sasrec"]).lengths == [512, 1024, 2048]  # completed lengths only
    assert loglog_fit([1, 2, 4], [3.0, 12.0, 48.0]) == pytest.approx(2.0)
    assert loglog_fit([1, 1], [3.0, 4.0]) is None


def test_a_wrong_exponent_is_outside_the_interval(tmp_path: Path) -> None:
    lines = {line.label: line for line in scaling_lines(load_results(scaling_store(tmp_path)))}
    fit = fit_time(lines["mamba4rec"], resamples=4000)
    assert not fit.low <= 1.2 <= fit.high  # type: ignore[operator]


def test_crossover_lengths_follow_from_the_laws(tmp_path: Path) -> None:
    lines = {line.label: line for line in scaling_lines(load_results(scaling_store(tmp_path)))}
    # time: 2e-3·L = 2e-5·L² at L = 100 (between 64 and 128); memory: 0.5·L = 2e-3·L² at 250
    time = crossover(lines["mamba4rec"], lines["sasrec"], "seconds")
    assert time["how"] == "interpolated" and time["length"] == pytest.approx(100, rel=0.1)
    memory = crossover(lines["mamba4rec"], lines["sasrec"], "memory")
    assert memory["how"] == "interpolated" and memory["length"] == pytest.approx(250, rel=0.02)
    # GRU4Rec (as attention stand-in) is cheaper at every common length: its cap decides
    lines["gru4rec"].family = "attention"
    capped = crossover(lines["mamba4rec"], lines["gru4rec"], "seconds")
    assert capped["how"] == "cap" and capped["length"] == 8192 and capped["cap"] == "timeout"


def test_tables_csv_json_and_plots_show_the_caps(tmp_path: Path) -> None:
    report = _report(scaling_store(tmp_path, seeds=(1, 2)))
    keys = [t.key for t in report.scaling]
    assert keys == ["scaling:seconds", "scaling:memory", "scaling:crossover"]
    markdown = render.to_markdown(report)
    assert "Scaling: time per training step" in markdown
    assert "OOM at L = 4096" in markdown and "timeout at L = 8192" in markdown
    sasrec_row = next(line for line in markdown.splitlines() if line.startswith("| sasrec |"))
    assert sasrec_row.split(" | ").count("OOM") == 2  # 4096 and 8192
    pair = next(line for line in markdown.splitlines() if line.startswith("| mamba4rec vs"))
    assert pair.startswith("| mamba4rec vs sasrec | ≈ ") and "| ≈ 250 |" in pair
    latex = render.to_latex(report)
    assert "Scaling: memory above the baseline" in latex and "OOM at L = 4096" in latex
    rows = list(csv.DictReader(io.StringIO(render.to_csv(report))))
    slope = next(r for r in rows if r["table"] == "scaling" and r["variant"] == "mamba4rec"
                 and r["quantity"] == "slope" and r["column"] == "slope")  # fmt: skip
    assert float(slope["mean"]) == pytest.approx(1.0, abs=0.05)
    assert float(slope["ci_low"]) < 1.0 < float(slope["ci_high"])
    oom = next(r for r in rows if r["quantity"] == "seconds_per_step@4096"
               and r["variant"] == "sasrec")  # fmt: skip
    assert oom["text"] == "OOM" and oom["column"] == "L = 4,096"
    data = report_dict(report)["analysis"]["scaling"]
    assert data["min_length"] == 512
    by_label = {line["label"]: line for line in data["lines"]}
    assert by_label["sasrec"]["first_cap"] == "OOM at L = 4096"
    assert by_label["mamba4rec"]["time_fit"]["slope"] == pytest.approx(1.0, abs=0.05)
    assert len(by_label["mamba4rec"]["points"][3]["step_seconds"]) == 40  # both seeds' steps
    written = write_plots(report, ReportOptions(), tmp_path / "plots")
    assert {p.name for p in written} >= {"scaling-throughput.png", "scaling-throughput.pdf"}
    assert not any(p.name.startswith("scaling-max_len") for p in written)
