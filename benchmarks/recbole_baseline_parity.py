"""seqbench's BERT4Rec and NARM against RecBole 1.2.0's classes, FMLP-Rec against the official code.

RecBole is not a seqbench dependency (RecBole 1.2 needs numpy < 2), so this script runs in an
environment that has it, importing seqbench from this checkout (set-up as in
benchmarks/recbole_model_parity.py)::

    git clone https://github.com/Woeee/FMLP-Rec /tmp/fmlp-rec   # optional, commit 51acc8c
    /tmp/rbenv/bin/python benchmarks/recbole_baseline_parity.py --fmlp-rec /tmp/fmlp-rec \
        --out benchmarks/results/recbole_baseline_parity.json

For each configuration, RecBole's model is built from its own ``Config`` (its yaml defaults plus
the overrides below) and a one-method dataset stub (``num(item_id)`` = n_items + 1); BERT4Rec
also gets RecBole's ``MaskItemSequence`` transform, which writes the field names the model reads
into the config (as RecBole's dataloader does before the model is built). Then:

1. initial weights: both built right after ``torch.manual_seed(2020)``; max |difference|;
2. ``ours.load_state_dict(recbole.state_dict(), strict=True)`` (identity key mapping);
3. eval mode (no dropout), one random right-padded batch: user representation, the full logits
   (``full_sort_predict`` against ``score``) and, for NARM, the CE loss; for BERT4Rec also the
   inference input (``reconstruct_test_data``, exact);
4. BERT4Rec's cloze loss: RecBole's transform masks a batch (Python's ``random``, seeded; once
   in its fine-tuning branch, once in its random-mask branch, for two mask ratios so that the
   int(mask_ratio · L) cap binds); seqbench's ``cloze_loss`` gets the same masked slots. The
   trained slots (RecBole's ``MASK_INDEX`` entries > 0 against ``trained_slots``, exact), the
   loss and every parameter's gradient are compared;
5. 20 Adam steps (lr 1e-3, dropout off) on both from the same weights and batches (BERT4Rec:
   the same masks): final loss and parameter difference;
6. BERT4Rec's mask distribution: RecBole's transform against ``draw_masks`` over many batches
   (different random numbers by design, so a statistical comparison: share of fine-tuning
   batches, masked share of real items, trained slots per sequence);
7. padding semantics, RecBole's model alone: does junk (item ids) in the slots ≥ length change
   its output, and does the padding row's embedding? seqbench's tests assert the same.

FMLP-Rec (with ``--fmlp-rec``, a checkout of Woeee/FMLP-Rec): the official ``FMLPRecModel`` with
the same arguments, same seed: initial weights, state-dict keys (identity), its ``forward``
gathered at length − 1 against seqbench's readout on the same right-padded batch, the CE loss of
that readout and its gradients (the official BCE-with-one-negative loss is not seqbench's
protocol), 20 Adam steps on that loss; and its TF-style LayerNorm against ``nn.LayerNorm``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import platform
import random
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's seqbench, whatever the venv has installed

import numpy as np  # noqa: E402
import recbole  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from recbole.config import Config  # noqa: E402
from recbole.data.interaction import Interaction  # noqa: E402
from recbole.data.transform import MaskItemSequence  # noqa: E402
from recbole.model.sequential_recommender.bert4rec import BERT4Rec as RecBoleBERT4Rec  # noqa: E402
from recbole.model.sequential_recommender.narm import NARM as RecBoleNARM  # noqa: E402

from seqbench.models.registry import get_model  # noqa: E402

# Importing recbole.model.sequential_recommender turns on anomaly detection for the whole process
# (RecBole 1.2.0, sine.py); recorded, then switched off (see recbole_model_parity.py).
RECBOLE_TURNS_ON_ANOMALY_DETECTION = torch.is_anomaly_enabled()
torch.autograd.set_detect_anomaly(False)

SEED = 2020
TOLERANCE = 1e-5
N_ITEMS, MAX_LEN, BATCH = 300, 20, 128

# (case, seqbench model, RecBole class, RecBole name, parameter overrides in both)
CASES = [
    ("bert4rec-defaults", "bert4rec", RecBoleBERT4Rec, "BERT4Rec", {}),
    ("bert4rec-mask-0.5-3-layers-relu", "bert4rec", RecBoleBERT4Rec, "BERT4Rec",
     {"mask_ratio": 0.5, "n_layers": 3, "n_heads": 4, "hidden_act": "relu"}),
    ("narm-defaults", "narm", RecBoleNARM, "NARM", {}),
    ("narm-2-layers", "narm", RecBoleNARM, "NARM",
     {"n_layers": 2, "hidden_size": 32, "dropout_probs": [0.1, 0.3]}),
]  # fmt: skip


class ItemCountStub:
    """All these RecBole constructors (and the mask transform) read from the dataset: the
    number of item ids, padding included."""

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
    lengths[:4] = torch.tensor([1, 2, MAX_LEN, MAX_LEN])  # the edge cases, always present
    items = torch.randint(1, N_ITEMS + 1, (BATCH, MAX_LEN), generator=g)
    items = items * (torch.arange(MAX_LEN)[None, :] < lengths[:, None])
    targets = torch.randint(1, N_ITEMS + 1, (BATCH,), generator=g)
    return {"item_id_list": items, "item_length": lengths, "item_id": targets}


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.detach().double() - b.detach().double()).abs().max())


def grads(theirs: torch.nn.Module, ours: torch.nn.Module) -> dict[str, Any]:
    """Max |difference| of every parameter's gradient (absolute, relative to the largest)."""
    ours_params = dict(ours.named_parameters())
    diffs = {n: max_diff(p.grad, ours_params[n].grad) for n, p in theirs.named_parameters()}
    largest = max(float(p.grad.abs().max()) for p in theirs.parameters())
    worst = max(diffs, key=diffs.__getitem__)
    return {
        "grad_max_abs_diff": diffs[worst],
        "grad_max_rel_diff": diffs[worst] / largest,
        "grad_worst_parameter": worst,
    }


def build_pair(name: str, theirs_cls: type, recbole_name: str, overrides: dict) -> tuple:
    config = recbole_config(recbole_name, overrides)
    transform = MaskItemSequence(config) if name == "bert4rec" else None
    spec = get_model(name)
    params = spec.params(**{k: config[k] for k in spec.params.model_fields})
    torch.manual_seed(SEED)
    theirs = theirs_cls(config, ItemCountStub())
    torch.manual_seed(SEED)
    ours = spec.cls(params, n_items=N_ITEMS, max_len=MAX_LEN)
    return theirs, ours, params, transform


def initial_and_load(theirs: torch.nn.Module, ours: torch.nn.Module) -> dict[str, Any]:
    their_state, our_state = theirs.state_dict(), ours.state_dict()
    assert list(their_state) == list(our_state), "state-dict keys differ"
    result = {
        "state_dict_keys": list(our_state),
        "initial_weights_max_abs_diff": max(
            max_diff(their_state[k], our_state[k]) for k in their_state
        ),
    }
    ours.load_state_dict(their_state, strict=True)  # identity key mapping
    return result


def masked_batch(transform: MaskItemSequence, data: dict, ft: bool, seed: int) -> Interaction:
    """RecBole's transform applied to ``data`` in its fine-tuning or its random-mask branch."""
    transform.ft_ratio = 1.0 if ft else 0.0
    random.seed(seed)
    return transform(ItemCountStub(), Interaction(dict(data)))


def our_masks(inter: Interaction, transform: MaskItemSequence) -> torch.Tensor:
    return inter[transform.MASK_ITEM_SEQ] == N_ITEMS + 1


def compare_bert4rec(case: tuple) -> dict[str, Any]:
    _, name, cls, recbole_name, overrides = case
    theirs, ours, params, transform = build_pair(name, cls, recbole_name, overrides)
    result: dict[str, Any] = {"params": params.model_dump(), **initial_and_load(theirs, ours)}
    theirs.eval()
    ours.eval()
    data = batch(SEED)
    inter = Interaction(data)
    items, lengths = data["item_id_list"], data["item_length"]
    result["inference_input_equal"] = bool(
        torch.equal(
            theirs.reconstruct_test_data(items, lengths), ours.inference_input(items, lengths)
        )
    )
    with torch.no_grad():
        their_user = theirs.gather_indexes(
            theirs(theirs.reconstruct_test_data(items, lengths)), lengths - 1
        )
        result["forward_max_abs_diff"] = max_diff(their_user, ours(items, lengths))
        result["logits_max_abs_diff"] = max_diff(
            theirs.full_sort_predict(inter), ours.score(ours(items, lengths))
        )

    # The cloze loss on RecBole's own masks, both branches; gradients on the random branch.
    for branch, ft in (("ft", True), ("random", False)):
        masked_inter = masked_batch(transform, data, ft, seed=SEED)
        masked = our_masks(masked_inter, transform)
        slots, weight = ours.trained_slots(masked)
        theirs_index = masked_inter[transform.MASK_INDEX]
        result[f"{branch}_trained_slots_equal"] = bool(
            torch.equal(
                torch.sort(torch.where(weight, slots, 0), dim=1).values,
                torch.sort(theirs_index, dim=1).values,
            )
        )
        result[f"{branch}_masked_items"] = int(masked.sum())
        result[f"{branch}_trained_positions"] = int(weight.sum())
        theirs.zero_grad()
        ours.zero_grad()
        their_loss = theirs.calculate_loss(masked_inter)
        our_loss = ours.cloze_loss(items, masked)
        result[f"{branch}_loss"] = float(their_loss)
        result[f"{branch}_loss_abs_diff"] = abs(float(their_loss) - float(our_loss))
        their_loss.backward()
        our_loss.backward()
        result.update({f"{branch}_{k}": v for k, v in grads(theirs, ours).items()})
    capped = int((masked_inter[transform.MASK_INDEX] > 0).sum(1).eq(ours.mask_item_length).sum())
    result["random_rows_at_the_cap"] = capped

    result.update(train_together(theirs, ours, transform))
    result["mask_distribution"] = mask_distribution(ours, transform)
    theirs.eval()
    result["padding_semantics_recbole"] = padding_semantics(
        lambda seq, n: theirs.gather_indexes(theirs(theirs.reconstruct_test_data(seq, n)), n - 1),
        theirs.item_embedding,
    )
    checked = [k for k in result if k.endswith("abs_diff") and not k.startswith("initial")]
    result["pass"] = (
        all(result[k] <= TOLERANCE for k in checked)
        and result["initial_weights_max_abs_diff"] == 0.0
        and result["inference_input_equal"]
        and result["ft_trained_slots_equal"]
        and result["random_trained_slots_equal"]
    )
    return result


def compare_narm(case: tuple) -> dict[str, Any]:
    _, name, cls, recbole_name, overrides = case
    theirs, ours, params, _ = build_pair(name, cls, recbole_name, overrides)
    result: dict[str, Any] = {"params": params.model_dump(), **initial_and_load(theirs, ours)}
    theirs.eval()
    ours.eval()
    data = batch(SEED)
    inter = Interaction(data)
    items, lengths, targets = data["item_id_list"], data["item_length"], data["item_id"]
    with torch.no_grad():
        result["forward_max_abs_diff"] = max_diff(theirs(items, lengths), ours(items, lengths))
        result["logits_max_abs_diff"] = max_diff(
            theirs.full_sort_predict(inter), ours.score(ours(items, lengths))
        )
    their_loss = theirs.calculate_loss(inter)
    our_loss = ours.loss(items, lengths, targets)
    result["loss"] = float(their_loss)
    result["loss_abs_diff"] = abs(float(their_loss) - float(our_loss))
    their_loss.backward()
    our_loss.backward()
    result.update(grads(theirs, ours))
    result.update(train_together(theirs, ours, None))
    theirs.eval()
    result["padding_semantics_recbole"] = padding_semantics(theirs, theirs.item_embedding)
    checked = [k for k in result if k.endswith("abs_diff") and not k.startswith("initial")]
    result["pass"] = (
        all(result[k] <= TOLERANCE for k in checked)
        and result["initial_weights_max_abs_diff"] == 0.0
    )
    return result


def train_together(
    theirs: torch.nn.Module, ours: torch.nn.Module, transform: MaskItemSequence | None
) -> dict[str, Any]:
    """The same Adam steps on both (dropout off; BERT4Rec: RecBole's masks given to both)."""
    opt_theirs = torch.optim.Adam(theirs.parameters(), lr=1e-3)
    opt_ours = torch.optim.Adam(ours.parameters(), lr=1e-3)

    def losses(data: dict, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        items, lengths, targets = data["item_id_list"], data["item_length"], data["item_id"]
        if transform is None:
            return theirs.calculate_loss(Interaction(data)), ours.loss(items, lengths, targets)
        inter = masked_batch(transform, data, ft=step % 3 == 0, seed=SEED + step)
        return theirs.calculate_loss(inter), ours.cloze_loss(items, our_masks(inter, transform))

    steps = 20
    for step in range(steps):
        their_loss, our_loss = losses(batch(SEED + 1 + step), step)
        for loss, opt in ((their_loss, opt_theirs), (our_loss, opt_ours)):
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        their_loss, our_loss = losses(batch(SEED + 1000), 1)
    ours_params = dict(ours.named_parameters())
    return {
        "adam_steps": steps,
        "after_adam_loss_abs_diff": abs(float(their_loss) - float(our_loss)),
        "after_adam_params_max_abs_diff": max(
            max_diff(p, ours_params[n]) for n, p in theirs.named_parameters()
        ),
    }


def mask_distribution(ours: torch.nn.Module, transform: MaskItemSequence) -> dict[str, Any]:
    """RecBole's transform and ``draw_masks`` over the same batches, as frequencies."""
    n_batches = 300
    stats: dict[str, dict[str, list[float]]] = {"recbole": {}, "seqbench": {}}
    transform.ft_ratio = ours.params.ft_ratio
    random.seed(SEED)
    torch.manual_seed(SEED)
    for i in range(n_batches):
        data = batch(SEED + 5000 + i)
        items, lengths = data["item_id_list"], data["item_length"]
        inter = transform(ItemCountStub(), Interaction(dict(data)))
        theirs_masked = our_masks(inter, transform)
        ours_masked = ours.draw_masks(items, lengths)
        for who, masked in (("recbole", theirs_masked), ("seqbench", ours_masked)):
            row = stats[who]
            ft = bool(torch.equal(masked.sum(1), torch.ones_like(lengths))) and bool(
                masked.gather(1, (lengths - 1)[:, None]).all()
            )
            row.setdefault("ft_batch", []).append(float(ft))
            if not ft:
                row.setdefault("masked_share_of_real_items", []).append(
                    float(masked.sum() / lengths.sum())
                )
                _, weight = ours.trained_slots(masked)
                row.setdefault("trained_slots_per_sequence", []).append(
                    float(weight.sum(1).float().mean())
                )
    return {
        "batches": n_batches,
        "batch_size": BATCH,
        **{
            who: {k: round(float(np.mean(v)), 4) for k, v in row.items()}
            for who, row in stats.items()
        },
        "note": "random-mask batches only for the shares; different random numbers by design",
    }


def padding_semantics(
    output: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], table: torch.nn.Embedding
) -> dict[str, float]:
    """One reference model (eval mode): how much its output ``output(items, lengths)`` changes
    with junk item ids in the slots ≥ length, and with another padding-row embedding."""
    data = batch(SEED + 7)
    items, lengths = data["item_id_list"], data["item_length"]
    padded = torch.arange(MAX_LEN)[None, :] >= lengths[:, None]
    g = torch.Generator().manual_seed(SEED)
    junk = torch.where(padded, torch.randint(1, N_ITEMS + 1, items.shape, generator=g), items)
    with torch.no_grad():
        clean = output(items, lengths)
        junk_out = output(junk, lengths)
        saved = table.weight[0].clone()
        table.weight[0] = torch.randn(saved.shape, generator=g)
        repadded = output(items, lengths)
        table.weight[0] = saved
    return {
        "junk_after_length_max_abs_change": max_diff(junk_out, clean),
        "padding_row_max_abs_change": max_diff(repadded, clean),
    }


def compare_fmlprec(checkout: Path) -> dict[str, Any]:
    sys.path.insert(0, str(checkout))
    official = importlib.import_module("models")
    modules = importlib.import_module("modules")
    spec = get_model("fmlprec")
    params = spec.params()
    args = SimpleNamespace(
        item_size=N_ITEMS + 1,
        hidden_size=params.hidden_size,
        num_hidden_layers=params.num_hidden_layers,
        hidden_dropout_prob=params.hidden_dropout_prob,
        attention_probs_dropout_prob=0.5,
        num_attention_heads=2,
        hidden_act=params.hidden_act,
        initializer_range=params.initializer_range,
        max_seq_length=MAX_LEN,
        no_filters=False,
        cuda_condition=False,
    )
    torch.manual_seed(SEED)
    theirs = official.FMLPRecModel(args)
    torch.manual_seed(SEED)
    ours = spec.cls(params, n_items=N_ITEMS, max_len=MAX_LEN)
    result: dict[str, Any] = {
        "official_commit": "51acc8c (Woeee/FMLP-Rec)",
        "params": params.model_dump(),
        **initial_and_load(theirs, ours),
    }
    weights = [layer.filterlayer.complex_weight for layer in ours.item_encoder.layer]
    result["complex_weights_identical_across_layers_at_init"] = all(
        torch.equal(weights[0], w) for w in weights
    )
    theirs.eval()
    ours.eval()
    data = batch(SEED)
    items, lengths, targets = data["item_id_list"], data["item_length"], data["item_id"]

    def their_user(seq: torch.Tensor, length: torch.Tensor) -> torch.Tensor:
        out = theirs(seq)  # (B, L, d), every slot
        return out.gather(1, (length - 1).view(-1, 1, 1).expand(-1, 1, out.shape[-1])).squeeze(1)

    def their_loss(seq: torch.Tensor, length: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(their_user(seq, length) @ theirs.item_embeddings.weight.T, tgt)

    with torch.no_grad():
        result["forward_max_abs_diff"] = max_diff(their_user(items, lengths), ours(items, lengths))
    loss_theirs = their_loss(items, lengths, targets)
    loss_ours = ours.loss(items, lengths, targets)
    result["loss"] = float(loss_theirs)
    result["loss_abs_diff"] = abs(float(loss_theirs) - float(loss_ours))
    loss_theirs.backward()
    loss_ours.backward()
    result.update(grads(theirs, ours))
    opt_theirs = torch.optim.Adam(theirs.parameters(), lr=1e-3)
    opt_ours = torch.optim.Adam(ours.parameters(), lr=1e-3)
    steps = 20
    for step in range(steps):
        d = batch(SEED + 1 + step)
        for loss, opt in (
            (their_loss(d["item_id_list"], d["item_length"], d["item_id"]), opt_theirs),
            (ours.loss(d["item_id_list"], d["item_length"], d["item_id"]), opt_ours),
        ):
            opt.zero_grad()
            loss.backward()
            opt.step()
    ours_params = dict(ours.named_parameters())
    result["adam_steps"] = steps
    d = batch(SEED + 1000)
    with torch.no_grad():
        result["after_adam_loss_abs_diff"] = abs(
            float(their_loss(d["item_id_list"], d["item_length"], d["item_id"]))
            - float(ours.loss(d["item_id_list"], d["item_length"], d["item_id"]))
        )
    result["after_adam_params_max_abs_diff"] = max(
        max_diff(p, ours_params[n]) for n, p in theirs.named_parameters()
    )
    result["padding_semantics_official"] = padding_semantics(their_user, theirs.item_embeddings)
    g = torch.Generator().manual_seed(SEED)
    x = torch.randn(4096, params.hidden_size, generator=g) * 3 + 1
    tf_ln = modules.LayerNorm(params.hidden_size, eps=1e-12)
    torch_ln = torch.nn.LayerNorm(params.hidden_size, eps=1e-12)
    with torch.no_grad():
        result["tf_layernorm_vs_nn_layernorm_float32_max_abs_diff"] = max_diff(
            tf_ln(x), torch_ln(x)
        )
        result["tf_layernorm_vs_nn_layernorm_float64_max_abs_diff"] = max_diff(
            tf_ln.double()(x.double()), torch_ln.double()(x.double())
        )
    checked = [k for k in result if k.endswith("abs_diff") and not k.startswith("initial")]
    result["pass"] = (
        all(result[k] <= TOLERANCE for k in checked)
        and result["initial_weights_max_abs_diff"] == 0.0
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fmlp-rec", type=Path, help="a checkout of Woeee/FMLP-Rec")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)
    warnings.filterwarnings("ignore")
    torch.set_num_threads(2)
    started = time.perf_counter()
    cases: dict[str, dict[str, Any]] = {}
    for case in CASES:
        compare = compare_bert4rec if case[1] == "bert4rec" else compare_narm
        cases[case[0]] = r = compare(case)
        diffs = {k: v for k, v in r.items() if k.endswith("abs_diff")}
        line = "  ".join(f"{k.removesuffix('_max_abs_diff')} {v:.1e}" for k, v in diffs.items())
        print(f"{case[0]:32s} {'PASS' if r['pass'] else 'FAIL'}  {line}")
    report: dict[str, Any] = {
        "benchmark": "recbole_baseline_parity",
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
        "key_mapping": "identity (seqbench uses RecBole's / the official module names)",
        "cases": cases,
    }
    if args.fmlp_rec:
        report["fmlprec"] = r = compare_fmlprec(args.fmlp_rec)
        diffs = {k: v for k, v in r.items() if k.endswith("abs_diff")}
        line = "  ".join(f"{k.removesuffix('_max_abs_diff')} {v:.1e}" for k, v in diffs.items())
        print(f"{'fmlprec-official':32s} {'PASS' if r['pass'] else 'FAIL'}  {line}")
    report["seconds"] = round(time.perf_counter() - started, 1)
    report["pass"] = all(c["pass"] for c in cases.values()) and report.get("fmlprec", {}).get(
        "pass", True
    )
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    if not report["pass"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
