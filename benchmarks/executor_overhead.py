"""Wall time and per-cell overhead of a suite under different executors.

Runs the suite into a fresh results root once per configuration, in alternation (A B A B …), and
records the wall time, the time the cells themselves report (``timing.total_seconds``: loading,
training, evaluation inside the worker) and the difference per cell: start-up, planning,
scheduling and publishing. Configurations:

- ``old``: a checkout of seqbench before executors (``--old-repo``), one process per cell;
- ``jobs1``, ``jobs2``: the local executor with 1 and 2 workers;
- ``ray``: a Ray cluster started for the run (in a loopback-only network namespace when run
  as root, so that Ray's traffic stays on 127.0.0.1).

    python benchmarks/executor_overhead.py --suite suites/smoke.toml --configs jobs1,jobs2 \\
        --repeats 2 --out benchmarks/results/executor_overhead.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def run_once(config: str, suite: Path, old_repo: Path | None) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="seqbench-overhead-"))
    repo = old_repo if config == "old" else REPO
    command = [sys.executable, "-m", "seqbench", "run", str(suite), "--results", str(root), "-q"]
    if config.startswith("jobs"):
        command += ["--jobs", config.removeprefix("jobs")]
    if config == "ray":
        command += ["--executor", "ray"]
        if os.geteuid() == 0 and shutil.which("unshare"):
            script = "ip link set lo up && exec " + " ".join(f"'{c}'" for c in command)
            command = ["unshare", "--net", "sh", "-c", script]
    env = {**os.environ, "PYTHONPATH": str(repo), "RAY_AUTH_MODE": "disabled"}
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=3600)
    wall = time.perf_counter() - start
    cells = [json.loads(p.read_text()) for p in root.glob("*/*/*/seed-*/result.json")]
    shutil.rmtree(root, ignore_errors=True)
    if done.returncode != 0:
        raise SystemExit(f"{config} failed: {done.stdout}{done.stderr}")
    inside = sum(c["timing"]["total_seconds"] or 0.0 for c in cells)
    return {
        "config": config,
        "wall_seconds": wall,
        "cell_seconds": inside,
        "cells": len(cells),
        "overhead_per_cell": (wall - inside / _parallel(config)) / max(1, len(cells)),
        "load_before": os.getloadavg()[0],
    }


def _parallel(config: str) -> int:
    """How many cells run at once (their own seconds overlap that many times)."""
    if config.startswith("jobs"):
        return int(config.removeprefix("jobs"))
    return 2 if config == "ray" else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", type=Path, default=REPO / "suites" / "smoke.toml")
    parser.add_argument("--configs", default="jobs1,jobs2")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--old-repo", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from seqbench.environment import describe

    configs = args.configs.split(",")
    runs = [run_once(c, args.suite.resolve(), args.old_repo) for _ in range(args.repeats)
            for c in configs]  # fmt: skip
    summary = {}
    for config in configs:
        mine = [r for r in runs if r["config"] == config]
        summary[config] = {
            key: statistics.median(r[key] for r in mine)
            for key in ("wall_seconds", "cell_seconds", "overhead_per_cell")
        }
    record = {
        "benchmark": "executor_overhead",
        "suite": str(args.suite),
        "note": "overhead_per_cell = (wall - cell seconds / cells at once) / cells; medians",
        "environment": describe(),
        "runs": runs,
        "median": summary,
    }
    text = json.dumps(record, indent=2)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
