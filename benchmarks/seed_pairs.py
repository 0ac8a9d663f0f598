"""How often two seeds of the SAME model are declared different (a finding, not a test).

Runs one model on the synthetic set with several seeds through `seqbench run`, then compares
every pair of seeds on the same test users with each paired test of seqbench.stats (one seed per
side, so the t-test sees only user-level noise while the seeds also differ by training noise).

    python benchmarks/seed_pairs.py --out benchmarks/results/seed_pairs.json [--seeds 10]
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SUITE = """
[suite]
name = "seed-pairs"
seeds = {seeds}

[protocol]
k_core = 5
max_len = 20

[train]
epochs = 6
batch_size = 512
lr = 3e-3
stopping_step = 2

[[datasets]]
name = "synthetic"
options = {{ n_users = 600 }}

[[models]]
model = "{model}"
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--model", default="gru4rec")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--metric", default="ndcg@10")
    args = parser.parse_args()
    import numpy as np

    from seqbench import stats
    from seqbench.report.load import load_results

    seeds = list(range(1, args.seeds + 1))
    with tempfile.TemporaryDirectory() as tmp:
        suite = Path(tmp) / "suite.toml"
        suite.write_text(SUITE.format(seeds=seeds, model=args.model), encoding="utf-8")
        root = Path(tmp) / "R"
        subprocess.run(
            [sys.executable, "-m", "seqbench", "run", str(suite), "--results", str(root),
             "--quiet", "--device", "cpu"],
            check=True,
        )  # fmt: skip
        results = load_results(root / "seed-pairs")
        per_seed = {c.seed: c.per_user(args.metric, "test") for c in results.cells}
    means = {s: float(np.mean(v)) for s, v in per_seed.items()}
    tests = ["t", "randomization", "bootstrap", "wilcoxon"]
    rejected = dict.fromkeys(tests, 0)
    pairs = list(itertools.combinations(sorted(per_seed), 2))
    for a, b in pairs:
        for test in tests:
            result = stats.compare(per_seed[a], per_seed[b], test=test, seed=a * 1000 + b)  # type: ignore[arg-type]
            rejected[test] += result.test.p_value <= 0.05
    spread = np.std(list(means.values()), ddof=1)
    record = {
        "finding": "share of seed pairs of one model declared different, alpha 0.05, uncorrected",
        "model": args.model, "metric": args.metric, "dataset": "synthetic (n_users 600)",
        "seeds": seeds, "pairs": len(pairs),
        "rejection_rate": {t: rejected[t] / len(pairs) for t in tests},
        "seed_means": means, "seed_std": float(spread),
        "users": int(next(iter(per_seed.values())).size),
    }  # fmt: skip
    args.out.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(record["rejection_rate"]), "seed std", spread)


if __name__ == "__main__":
    main()
