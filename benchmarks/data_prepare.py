"""Time and peak memory to prepare datasets from scratch and from the cache.

Each measurement runs in a fresh Python process (so peak RSS is that of one preparation, and the
second run really reads the on-disk cache). "scratch" = empty cache folder: hash the source, read
and parse it, apply the protocol, write the cache; "cache" = the same call again.

    python benchmarks/data_prepare.py --shared ../shared/data --repeat 3 \
        --out benchmarks/results/data_prepare.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
import numpy
from seqbench.data.load import DatasetSpec, load_dataset
from seqbench.data.protocol import Protocol
rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
name, path, fmt, cache = sys.argv[1:5]
t0 = time.perf_counter()
ds = load_dataset(DatasetSpec(name=name, path=Path(path), format=fmt), Protocol(), cache_dir=cache)
seconds = time.perf_counter() - t0
print(json.dumps({
    "seconds": seconds,
    "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "rss_after_imports_mib": rss_before / 1024,
    "cache_hit": ds.provenance["cache"]["hit"],
    "interactions": ds.n_interactions,
}))
"""

DATASETS = {
    "ml-1m": ("ml-1m/ml-1m.seq.txt", "sequences"),
    "amazon-beauty": ("amazon-beauty/Beauty.txt", "sequences"),
    "ml-100k": ("ml-100k-recbole/ml-100k.inter", "recbole"),
}


def run_child(name: str, path: Path, fmt: str, cache: Path) -> dict:
    wall = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", CHILD, name, str(path), fmt, str(cache)],
        check=True,
        capture_output=True,
        text=True,
    )
    record = json.loads(out.stdout)
    record["process_seconds"] = time.perf_counter() - wall
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path("../shared/data"))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    results = []
    for name, (rel, fmt) in DATASETS.items():
        path = args.shared / rel
        runs: dict[str, list[dict]] = {"scratch": [], "cache": []}
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory() as cache:
                runs["scratch"].append(run_child(name, path, fmt, Path(cache)))
                runs["cache"].append(run_child(name, path, fmt, Path(cache)))
        for mode, records in runs.items():
            assert all(r["cache_hit"] == (mode == "cache") for r in records)
            row = {
                "dataset": name,
                "file": rel,
                "mode": mode,
                "interactions": records[0]["interactions"],
                "seconds_median": statistics.median(r["seconds"] for r in records),
                "process_seconds_median": statistics.median(r["process_seconds"] for r in records),
                "peak_rss_mib_max": max(r["peak_rss_mib"] for r in records),
                "rss_after_imports_mib": statistics.median(
                    r["rss_after_imports_mib"] for r in records
                ),
                "runs": records,
            }
            results.append(row)
            print(
                f"{name:14s} {mode:8s} {row['seconds_median']:6.3f} s in load_dataset, "
                f"{row['process_seconds_median']:6.3f} s whole process, "
                f"peak RSS {row['peak_rss_mib_max']:6.1f} MiB "
                f"(after imports {row['rss_after_imports_mib']:.1f} MiB)"
            )
    report = {
        "benchmark": "data_prepare",
        "command": " ".join(sys.argv),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
        },
        "results": results,
    }
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
