"""seqbench's SASRec, GRU4Rec and Pop against RecBole 1.2.0's own classes, number for number.

RecBole is not a seqbench dependency (RecBole 1.2 needs numpy < 2), so this script runs in an
environment that has it, importing seqbench from this checkout::

    python -m venv /tmp/rbenv && /tmp/rbenv/bin/pip install recbole==1.2.0 "numpy<2" torch \
        pydantic platformdirs filelock typer rich pooch
    /tmp/rbenv/bin/python benchmarks/recbole_model_parity.py \
        --inter ../shared/data/ml-100k-recbole/ml-100k.inter \
        --out benchmarks/results/recbole_model_parity.json

For each configuration, RecBole's model is built from its own ``Config`` (its yaml defaults plus
the overrides below) and a one-method dataset stub (``num(item_id)`` = n_items + 1, all its
constructor reads). Then:

1. initial weights: both built right after ``torch.manual_seed(2020)``; max |difference|;
2. key mapping: the identity. seqbench uses RecBole's module names, so
   ``ours.load_state_dict(recbole.state_dict(), strict=True)`` copies every tensor;
3. eval mode (no dropout), one random right-padded batch: user representation (RecBole's
   ``forward``), the output at every slot (SASRec: RecBole's ``forward`` with the length set to
   t + 1 for each slot t, pads included), the full logits (``full_sort_predict``) and the CE loss
   (``calculate_loss``), each as max |difference|;
4. gradients of that loss for every parameter after one backward (max |difference|, and relative
   to the largest gradient);
5. 20 Adam steps (lr 1e-3, dropout off) on both from the same weights and batches: final loss
   and parameter difference (float rounding does not grow into a different trajectory).

Pop: with ``--inter``, RecBole's own pipeline for Pop (general dataset, 5-core, LS
valid_and_test, TO, no negatives, batch 2048) next to seqbench's protocol on the same file:
the exact item counts of RecBole's training interactions against seqbench's
``training_counts``, and what RecBole's ``Pop.calculate_loss`` actually accumulates in one epoch.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's seqbench, whatever the venv has installed

import numpy as np  # noqa: E402
import recbole  # noqa: E402
import torch  # noqa: E402
from recbole.config import Config  # noqa: E402
from recbole.data.interaction import Interaction  # noqa: E402
from recbole.model.sequential_recommender.gru4rec import GRU4Rec as RecBoleGRU4Rec  # noqa: E402
from recbole.model.sequential_recommender.sasrec import SASRec as RecBoleSASRec  # noqa: E402

from seqbench.models.registry import get_model  # noqa: E402

# Importing recbole.model.sequential_recommender runs sine.py, which calls
# torch.autograd.set_detect_anomaly(True) for the whole process (RecBole 1.2.0): every backward
# then records stack traces and checks for NaN, many times slower. Recorded, then switched off.
RECBOLE_TURNS_ON_ANOMALY_DETECTION = torch.is_anomaly_enabled()
torch.autograd.set_detect_anomaly(False)

SEED = 2020
TOLERANCE = 1e-5
N_ITEMS, MAX_LEN, BATCH = 300, 20, 128

# (case, seqbench model, RecBole class, RecBole name, parameter overrides in both)
CASES = [
    ("sasrec-defaults", "sasrec", RecBoleSASRec, "SASRec", {}),
    ("sasrec-3x4-relu", "sasrec", RecBoleSASRec, "SASRec",
     {"n_layers": 3, "n_heads": 4, "hidden_act": "relu", "inner_size": 128}),
    ("sasrec-1-layer", "sasrec", RecBoleSASRec, "SASRec", {"n_layers": 1}),
    ("gru4rec-defaults", "gru4rec", RecBoleGRU4Rec, "GRU4Rec", {}),
    ("gru4rec-2-layers", "gru4rec", RecBoleGRU4Rec, "GRU4Rec", {"num_layers": 2}),
]  # fmt: skip


class ItemCountStub:
    """All RecBole's sequential constructors read from the dataset: the item-id count."""

    def num(self, field: str) -> int:
        return N_ITEMS + 1


def recbole_config(name: str, overrides: dict[str, Any]) -> Config:
    config = {
        "use_gpu": False,
        "MAX_ITEM_LIST_LENGTH": MAX_LEN,
        "train_neg_sample_args": None,
        "loss_type": "CE",
        "state": "ERROR",
        "show_progress": False,
        **overrides,
    }
    return Config(model=name, dataset="parity", config_dict=config)


def batch(seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, MAX_LEN + 1, (BATCH,), generator=g)
    items = torch.randint(1, N_ITEMS + 1, (BATCH, MAX_LEN), generator=g)
    items = items * (torch.arange(MAX_LEN)[None, :] < lengths[:, None])
    targets = torch.randint(1, N_ITEMS + 1, (BATCH,), generator=g)
    return {"item_id_list": items, "item_length": lengths, "item_id": targets}


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.detach().double() - b.detach().double()).abs().max())


def compare_model(name: str, theirs_cls: type, recbole_name: str, overrides: dict) -> dict:
    config = recbole_config(recbole_name, overrides)
    spec = get_model(name)
    params = spec.params(**{k: config[k] for k in spec.params.model_fields})
    torch.manual_seed(SEED)
    theirs = theirs_cls(config, ItemCountStub())
    torch.manual_seed(SEED)
    ours = spec.cls(params, n_items=N_ITEMS, max_len=MAX_LEN)
    their_state, our_state = theirs.state_dict(), ours.state_dict()
    assert list(their_state) == list(our_state), "state-dict keys differ"
    result: dict[str, Any] = {
        "params": params.model_dump(),
        "state_dict_keys": list(our_state),
        "initial_weights_max_abs_diff": max(
            max_diff(their_state[k], our_state[k]) for k in their_state
        ),
    }
    ours.load_state_dict(their_state, strict=True)  # identity key mapping
    theirs.eval()
    ours.eval()
    data = batch(SEED)
    inter = Interaction(data)
    items, lengths, targets = data["item_id_list"], data["item_length"], data["item_id"]
    with torch.no_grad():
        result["forward_max_abs_diff"] = max_diff(theirs(items, lengths), ours(items, lengths))
        every_slot = torch.stack(
            [theirs(items, torch.full_like(lengths, t + 1)) for t in range(MAX_LEN)], dim=1
        )
        result["all_slots_max_abs_diff"] = max_diff(every_slot, ours.forward_all(items, lengths))
        result["logits_max_abs_diff"] = max_diff(
            theirs.full_sort_predict(inter), ours.score(ours(items, lengths))
        )
    their_loss = theirs.calculate_loss(inter)
    our_loss = ours.loss(items, lengths, targets)
    result["loss"] = float(their_loss)
    result["loss_abs_diff"] = abs(float(their_loss) - float(our_loss))
    their_loss.backward()
    our_loss.backward()
    ours_grads = dict(ours.named_parameters())
    diffs = {n: max_diff(p.grad, ours_grads[n].grad) for n, p in theirs.named_parameters()}
    largest = max(float(p.grad.abs().max()) for p in theirs.parameters())
    result["grad_max_abs_diff"] = max(diffs.values())
    result["grad_max_rel_diff"] = result["grad_max_abs_diff"] / largest
    result["grad_worst_parameter"] = max(diffs, key=diffs.__getitem__)
    result.update(train_together(theirs, ours))
    checked = [k for k in result if k.endswith("abs_diff") and not k.startswith("initial")]
    result["pass"] = all(result[k] <= TOLERANCE for k in checked)
    return result


def train_together(theirs: torch.nn.Module, ours: torch.nn.Module, steps: int = 20) -> dict:
    """The same Adam steps on both (dropout off): does float rounding stay rounding?"""
    opt_theirs = torch.optim.Adam(theirs.parameters(), lr=1e-3)
    opt_ours = torch.optim.Adam(ours.parameters(), lr=1e-3)
    for step in range(steps):
        data = batch(SEED + 1 + step)
        for model, opt in ((theirs, opt_theirs), (ours, opt_ours)):
            opt.zero_grad()
            if model is theirs:
                loss = model.calculate_loss(Interaction(data))
            else:
                loss = model.loss(data["item_id_list"], data["item_length"], data["item_id"])
            loss.backward()
            opt.step()
    data = batch(SEED + 1000)
    with torch.no_grad():
        their_loss = float(theirs.calculate_loss(Interaction(data)))
        our_loss = float(ours.loss(data["item_id_list"], data["item_length"], data["item_id"]))
    ours_params = dict(ours.named_parameters())
    return {
        "adam_steps": steps,
        "after_adam_loss_abs_diff": abs(their_loss - our_loss),
        "after_adam_params_max_abs_diff": max(
            max_diff(p, ours_params[n]) for n, p in theirs.named_parameters()
        ),
    }


POP_CONFIG = {
    "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
    "user_inter_num_interval": "[5,inf)",
    "item_inter_num_interval": "[5,inf)",
    "train_neg_sample_args": None,
    "eval_args": {
        "split": {"LS": "valid_and_test"},
        "order": "TO",
        "mode": "full",
        "group_by": "user",
    },
    "train_batch_size": 2048,
    "use_gpu": False,
    "state": "ERROR",
    "show_progress": False,
    "save_dataset": False,
    "save_dataloaders": False,
}


def compare_pop(inter: Path, work: Path) -> dict:
    from recbole.data import create_dataset, data_preparation
    from recbole.model.general_recommender.pop import Pop as RecBolePop

    from seqbench.data.load import DatasetSpec, load_dataset
    from seqbench.data.protocol import Protocol
    from seqbench.models.pop import training_counts

    data = work / "data" / "pop"
    data.mkdir(parents=True)
    shutil.copyfile(inter, data / "pop.inter")
    config = Config(
        model="Pop", dataset="pop", config_dict={"data_path": str(work / "data"), **POP_CONFIG}
    )
    torch.manual_seed(SEED)
    dataset = create_dataset(config)
    train_data, _, _ = data_preparation(config, dataset)
    tokens = dataset.field2id_token["item_id"]
    exact = np.bincount(train_data.dataset.inter_feat["item_id"].numpy(), minlength=len(tokens))
    pop = RecBolePop(config, dataset)
    n_batches = 0
    for interaction in train_data:  # TraditionalTrainer: one epoch of calculate_loss
        pop.calculate_loss(interaction)
        n_batches += 1
    accumulated = pop.item_cnt.squeeze(1).numpy()

    ds = load_dataset(
        DatasetSpec(name="pop", path=inter, format="recbole"), Protocol(), cache_dir=work / "c"
    )
    ours_by_token = dict(
        zip(ds.data.item_tokens.tolist(), training_counts(ds).tolist(), strict=True)
    )
    ours = np.array([ours_by_token.get(t, 0) for t in tokens.tolist()])
    real = slice(1, None)  # drop the padding id
    top = 10
    rank_exact = np.argsort(-exact[real], kind="stable")[:top]
    rank_pop = np.argsort(-accumulated[real], kind="stable")[:top]
    return {
        "inter": str(inter),
        "items": int(len(tokens) - 1),
        "training_interactions": int(exact.sum()),
        "batches": n_batches,
        "seqbench_counts_equal_recbole_training_interactions": bool(np.array_equal(ours, exact)),
        "recbole_pop_item_cnt": {
            "sum": int(accumulated.sum()),
            "max": int(accumulated.max()),
            "items_differing_from_exact_counts": int((accumulated != exact).sum()),
            "exact_max": int(exact.max()),
            "top10_overlap_with_exact": len(set(rank_exact.tolist()) & set(rank_pop.tolist())),
            "why": "item_cnt[item] = item_cnt[item] + 1 counts an item once per batch",
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inter", type=Path, help="a RecBole .inter file for the Pop check")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)
    warnings.filterwarnings("ignore")  # pandas 3 chained-assignment warnings from RecBole
    torch.set_num_threads(2)
    started = time.perf_counter()
    cases = {}
    for case, name, cls, recbole_name, overrides in CASES:
        cases[case] = compare_model(name, cls, recbole_name, overrides)
        r = cases[case]
        figures = {
            "init": "initial_weights_max_abs_diff",
            "forward": "forward_max_abs_diff",
            "slots": "all_slots_max_abs_diff",
            "logits": "logits_max_abs_diff",
            "loss": "loss_abs_diff",
            "grad": "grad_max_abs_diff",
            "after-adam": "after_adam_params_max_abs_diff",
        }
        line = "  ".join(f"{label} {r[key]:.1e}" for label, key in figures.items())
        print(f"{case:18s} {'PASS' if r['pass'] else 'FAIL'}  {line}")
    report: dict[str, Any] = {
        "benchmark": "recbole_model_parity",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "versions": {
            "recbole": recbole.__version__,
            "torch": torch.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
        "machine": platform.platform(),
        "seed": SEED,
        "tolerance": TOLERANCE,
        "sizes": {"n_items": N_ITEMS, "max_len": MAX_LEN, "batch": BATCH},
        "recbole_import_enables_anomaly_detection": RECBOLE_TURNS_ON_ANOMALY_DETECTION,
        "key_mapping": "identity (seqbench uses RecBole's module and parameter names)",
        "cases": cases,
    }
    if args.inter:
        with tempfile.TemporaryDirectory() as tmp:
            report["pop"] = compare_pop(args.inter, Path(tmp))
        print("pop", json.dumps(report["pop"]))
    report["seconds"] = round(time.perf_counter() - started, 1)
    report["pass"] = all(c["pass"] for c in cases.values()) and report.get("pop", {}).get(
        "seqbench_counts_equal_recbole_training_interactions", True
    )
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    if not report["pass"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
