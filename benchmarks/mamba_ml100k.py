"""Seconds per training epoch of the Mamba models against SASRec on ml-100k on the CPU, measured
in ONE process with the epochs alternating between the models, and each model's peak memory in
a fresh process (optionally also for an older seqbench, for comparison).

    python benchmarks/mamba_ml100k.py --data ../shared/data/ml-100k-recbole \
        --out benchmarks/results/mamba_ml100k_cpu.json [--epochs 3] [--models sasrec,…] \
        [--old-src /tmp/seqbench-old]

Protocol: RecBole's (5-core, leave-one-out, prefix samples), max_len 50, batch 2048, Adam 1e-3,
CE over the whole item table, official model configs (Mamba models: d 64, N 32, one layer,
dropout 0.2; SASRec: RecBole's defaults; M2Rec: item text = ml-100k.item's titles, years and
genres through the offline ``wordllama`` encoder). Timing: every model is built (seed 2020),
then ``--epochs`` rounds each train one epoch of every model in turn (A B C … A B C …), with
the trainer's loop (``seqbench.batches.DeviceSplit`` batches, ``model.loss``, Adam); the
system load is recorded around every epoch, so a disturbed epoch can be seen. The figure is
each model's median epoch and its ratio to SASRec's median. Memory: each model in a fresh
process, ``--memory-steps`` training steps then the ranking of the test split (batch 4096):
peak RSS; ``--old-src`` (a source tree of an older seqbench, e.g. ``git archive``) repeats the
memory runs with that code.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
MODELS = [
    "sasrec", "mamba4rec", "echomamba4rec", "bimamba4rec", "bimambaformer4rec", "m2rec",
    "m2rec_code",
]  # fmt: skip


def load(data: Path) -> Any:
    from seqbench.data.load import DatasetSpec, load_dataset
    from seqbench.data.protocol import Protocol

    spec = DatasetSpec(name="ml-100k", path=str(data), format="recbole")
    return load_dataset(spec, Protocol(k_core=5, max_len=50))


def build(name: str, dataset: Any, data: Path) -> Any:
    import torch

    from seqbench.models.registry import get_model

    spec = get_model(name)
    params = spec.params()
    extra = {}
    if spec.needs_text(params):
        from seqbench.models.item_text import ItemText
        from seqbench.text.embeddings import embed_item_texts
        from seqbench.text.sources import TextSpec, align_texts, read_item_text

        table = read_item_text(TextSpec(path=data / "ml-100k.item", format="recbole"))
        embedded = embed_item_texts(align_texts(table, dataset.data.item_tokens), "wordllama")
        extra["item_text"] = ItemText.from_arrays(embedded.vectors, embedded.has_text)
    torch.manual_seed(2020)
    return spec.cls(params, n_items=dataset.n_items, max_len=50, **extra)


def train_epoch(model: Any, optimizer: Any, split: Any, shuffle: Any, steps: int | None) -> None:
    """The trainer's inner loop (seqbench.train._fit), for one epoch or ``steps`` steps."""
    model.train()
    for i, batch in enumerate(split.batches(2048, shuffle)):
        if steps is not None and i >= steps:
            break
        loss = model.loss(batch.items, batch.lengths, batch.targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


def timing(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from seqbench.batches import DeviceSplit

    dataset = load(args.data)
    split = DeviceSplit(dataset, "train", 50, torch.device("cpu"))
    names = args.models.split(",")
    runs = {}
    for name in names:
        model = build(name, dataset, args.data)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        runs[name] = (model, optimizer, torch.Generator().manual_seed(2020))
    epochs: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    for round_ in range(args.epochs):
        for name in names:
            model, optimizer, shuffle = runs[name]
            load_before = os.getloadavg()[0]
            start = time.perf_counter()
            train_epoch(model, optimizer, split, shuffle, None)
            seconds = time.perf_counter() - start
            epochs[name].append(
                {"seconds": seconds, "load_before": load_before, "load_after": os.getloadavg()[0]}
            )
            print(f"round {round_} {name}: {seconds:.1f} s (load {load_before:.2f})", flush=True)
    medians = {name: statistics.median(e["seconds"] for e in epochs[name]) for name in names}
    return {
        "train_samples": len(dataset.data.train),
        "items": dataset.n_items,
        "epochs": epochs,
        "median_epoch_seconds": medians,
        "ratio_to_sasrec": {n: medians[n] / medians["sasrec"] for n in names}
        if "sasrec" in medians
        else None,
        "parameters": {n: sum(p.numel() for p in runs[n][0].parameters()) for n in names},
    }


def memory_one(args: argparse.Namespace) -> dict[str, Any]:
    """One model in this (fresh) process: ``--memory-steps`` steps, then rank the test split."""
    import torch

    from seqbench.batches import DeviceSplit
    from seqbench.evaluate import rank_split

    dataset = load(args.data)
    model = build(args.one, dataset, args.data)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    split = DeviceSplit(dataset, "train", 50, torch.device("cpu"))
    # Loading and preparing the data peaks above any model's training (ru_maxrss then reads the
    # same for every model): measure from here, resetting the kernel's high-water mark.
    baseline = _reset_peak()
    start = time.perf_counter()
    train_epoch(model, optimizer, split, torch.Generator().manual_seed(0), args.memory_steps)
    step_seconds = (time.perf_counter() - start) / args.memory_steps
    train_peak = _peak_mib()
    _reset_peak()
    rank_split(model, DeviceSplit(dataset, "test", 50, torch.device("cpu")), dataset.n_items)
    return {
        "model": args.one,
        "steps": args.memory_steps,
        "seconds_per_step": step_seconds,
        "rss_mib_before_training": baseline,
        "peak_rss_mib_training": train_peak,
        "peak_rss_mib_ranking": _peak_mib(),
        "peak_reset": baseline is not None,
    }


def _status_mib(field: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return float(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _reset_peak() -> float | None:
    """Reset VmHWM to the current RSS (Linux: write 5 to clear_refs); the RSS, or None."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return None
    return _status_mib("VmRSS")


def _peak_mib() -> float:
    peak = _status_mib("VmHWM")
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory(args: argparse.Namespace, src: Path) -> list[dict[str, Any]]:
    out = []
    for name in args.models.split(","):
        proc = subprocess.run(
            [sys.executable, __file__, "--data", str(args.data), "--out", str(args.out),
             "--memory-steps", str(args.memory_steps), "--one", name],
            capture_output=True, text=True, check=False,
            env={**os.environ, "PYTHONPATH": str(src)},
        )  # fmt: skip
        if proc.returncode:
            out.append({"model": name, "error": proc.stderr[-2000:]})
        else:
            out.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(json.dumps(out[-1]), flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="folder with ml-100k.inter")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--memory-steps", type=int, default=3)
    parser.add_argument("--skip-timing", action="store_true")
    parser.add_argument("--old-src", type=Path, help="an older seqbench's source tree")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(memory_one(args)))
        return
    sys.path.insert(0, str(REPO))
    import torch

    from seqbench import environment

    record: dict[str, Any] = {
        "benchmark": "Mamba models vs SASRec on ml-100k: seconds per training epoch (one "
        "process, epochs alternating) and peak memory (a fresh process per model)",
        "command": " ".join(sys.argv),
        "environment": environment.describe(torch.device("cpu")),
        "settings": {"max_len": 50, "batch_size": 2048, "lr": 1e-3, "k_core": 5, "seed": 2020},
    }
    if args.skip_timing and args.out.exists():  # keep the timing of an earlier run
        kept = json.loads(args.out.read_text(encoding="utf-8"))
        if "timing" in kept:
            record["timing"] = kept["timing"]
            record["timing_command"] = kept.get("command")
    if not args.skip_timing:
        record["timing"] = timing(args)
        print(json.dumps(record["timing"]["ratio_to_sasrec"], indent=2), flush=True)
        # what the timed scans ran on (the fused CPU loops, or why not), known after they ran
        record["environment"] = environment.describe(torch.device("cpu"))
    record["memory"] = memory(args, REPO)
    if args.old_src is not None:
        record["memory_old_src"] = {"src": str(args.old_src), "runs": memory(args, args.old_src)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
