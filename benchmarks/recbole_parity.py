"""Check seqbench's samples against RecBole's, sample for sample, on a RecBole ``.inter`` file.

RecBole is not a seqbench dependency (RecBole 1.2 needs numpy < 2): give the interpreter of an
environment that has it. Each case runs RecBole's own dataset pipeline (``create_dataset`` then
``build``, the Mamba papers' settings: 5-core, LS valid_and_test, TO, MAX_ITEM_LIST_LENGTH) and
seqbench's protocol with the matching knobs, and compares digests of the item-id order and of
every split's (user, input items, target) samples::

    python -m venv /tmp/rb && /tmp/rb/bin/pip install recbole==1.2.0 "numpy<2" torch
    python benchmarks/recbole_parity.py --recbole-python /tmp/rb/bin/python \
        --inter ../shared/data/ml-100k-recbole/ml-100k.inter \
        --out benchmarks/results/recbole_parity.json

The digests it prints for ml-100k are pinned in tests/data/test_recbole_parity.py.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from seqbench.data.load import DatasetSpec, load_dataset
from seqbench.data.protocol import Protocol

# (case, file, RecBole dataset name, RecBole config overrides, seqbench protocol)
# RecBole loads properties/dataset/<name>.yaml when it exists: "ml-100k" turns normalize_all on.
# "dups" is the file with repeated pairs added and every timestamp made distinct: RecBole's
# rm_dup_inter first sorts the log with pandas' default quicksort, which is not stable, so on
# tied timestamps its order (and with it the item ids) depends on the numpy version and the CPU;
# seqbench sorts stably. Distinct timestamps make both orders the same, so the rest is comparable.
CASES = [
    ("recbole-ml-100k", "file", "ml-100k", {}, {"time_scaling": "minmax"}),
    ("default", "file", "other", {}, {}),
    ("max-len-10", "file", "other", {"MAX_ITEM_LIST_LENGTH": 10}, {"max_len": 10}),
    ("k-core-10", "file", "other", {"user_inter_num_interval": "[10,inf)",
                                    "item_inter_num_interval": "[10,inf)"}, {"k_core": 10}),
    ("dups-keep", "dups", "other", {}, {}),
    ("dups-dedup-first", "dups", "other", {"rm_dup_inter": "first"}, {"dedup": "first"}),
    ("dups-dedup-last", "dups", "other", {"rm_dup_inter": "last"}, {"dedup": "last"}),
]  # fmt: skip

RECBOLE_CHILD = r"""
import hashlib, json, logging, sys
from recbole.config import Config
from recbole.data import create_dataset
name, data_path, overrides = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
config = {
    "data_path": data_path, "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
    "user_inter_num_interval": "[5,inf)", "item_inter_num_interval": "[5,inf)",
    "train_neg_sample_args": None, "loss_type": "CE", "MAX_ITEM_LIST_LENGTH": 50,
    "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full",
                  "group_by": "user"},
    "show_progress": False, "state": "ERROR", "save_dataset": False,
}
config.update(overrides)
logging.disable(logging.CRITICAL)
dataset = create_dataset(Config(model="SASRec", dataset=name, config_dict=config))
users, items = dataset.field2id_token["user_id"], dataset.field2id_token["item_id"]
result = {"items": hashlib.sha256("\n".join(items.tolist()).encode()).hexdigest()}
for split, d in zip(("train", "valid", "test"), dataset.build()):
    f = d.inter_feat
    rows = zip(f["user_id"].numpy(), f["item_id_list"].numpy(), f["item_length"].numpy(),
               f["item_id"].numpy())
    lines = sorted(json.dumps([users[u], [items[i] for i in s[:n]], items[t]])
                   for u, s, n, t in rows)
    result[split] = [len(lines), hashlib.sha256("\n".join(lines).encode()).hexdigest()]
print(json.dumps(result))
"""


def seqbench_digests(inter: Path, protocol: Protocol, cache: Path) -> dict:
    ds = load_dataset(
        DatasetSpec(name="x", path=inter, format="recbole"), protocol, cache_dir=cache
    )
    tokens = ds.data.item_tokens
    result: dict = {"items": hashlib.sha256("\n".join(tokens.tolist()).encode()).hexdigest()}
    for split in ("train", "valid", "test"):
        seq, length, target = ds.inputs(split)
        users = ds.data.user_tokens[ds.split(split).user]
        lines = sorted(
            json.dumps([str(u), tokens[s[:n]].tolist(), str(tokens[t])])
            for u, s, n, t in zip(users, seq, length, target, strict=True)
        )
        result[split] = [len(lines), hashlib.sha256("\n".join(lines).encode()).hexdigest()]
    return result


def with_repeats_and_distinct_times(inter: Path, out: Path) -> Path:
    """Every 40th interaction repeated a day later; all timestamps made distinct (+row µs)."""
    lines = inter.read_text().splitlines()
    header, rows = lines[0], [line.split("\t") for line in lines[1:]]
    columns = [c.split(":")[0] for c in header.split("\t")]
    time = columns.index("timestamp")
    rows += [[*r[:time], str(float(r[time]) + 86400), *r[time + 1 :]] for r in rows[::40]]
    for k, r in enumerate(rows):
        r[time] = f"{float(r[time]) + k * 1e-6:.6f}"
    out.write_text("\n".join([header, *("\t".join(r) for r in rows)]) + "\n")
    return out


def recbole_digests(python: str, inter: Path, name: str, overrides: dict, work: Path) -> dict:
    data = work / "data" / name
    data.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(inter, data / f"{name}.inter")
    out = subprocess.run(
        [python, "-c", RECBOLE_CHILD, name, str(work / "data"), json.dumps(overrides)],
        cwd=work, check=True, capture_output=True, text=True,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recbole-python", required=True)
    parser.add_argument("--inter", type=Path, required=True)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    version = subprocess.run(
        [args.recbole_python, "-c", "import recbole; print(recbole.__version__)"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        files = {"file": args.inter}
        files["dups"] = with_repeats_and_distinct_times(args.inter, work / "dups.inter")
        for case, file, name, overrides, knobs in CASES:
            theirs = recbole_digests(args.recbole_python, files[file], name, overrides, work)
            ours = seqbench_digests(files[file], Protocol(**knobs), work / "cache")
            same = theirs == ours
            records.append({"case": case, "file": file, "recbole": theirs, "seqbench": ours,
                            "identical": same, "recbole_overrides": overrides,
                            "protocol": knobs})  # fmt: skip
            counts = ", ".join(f"{s} {ours[s][0]}" for s in ("train", "valid", "test"))
            print(f"{case:16s} {'IDENTICAL' if same else 'DIFFERENT'}  ({counts})")
    if args.out:
        report = {
            "benchmark": "recbole_parity",
            "recbole_version": version,
            "inter": str(args.inter),
            "command": " ".join(sys.argv),
            "cases": records,
        }
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    if not all(r["identical"] for r in records):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
