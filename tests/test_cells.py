"""Cells: the hash covers exactly what can change a cell's numbers; JSON round trip; sources."""

from __future__ import annotations

import hashlib
import json
import typing
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from seqbench import cells as cells_module
from seqbench.cells import (
    NUMERICS_VERSION,
    SOURCE_KEYS,
    Cell,
    EvalSettings,
    TrainSettings,
    Variant,
    canonical_json,
    source_fingerprint,
    variant_label,
)
from seqbench.data import protocol as protocol_module
from seqbench.data.cache import write_json_atomic
from seqbench.data.load import DatasetSpec
from seqbench.data.noise.spec import NoiseSpec
from seqbench.data.protocol import Protocol
from seqbench.data.registry import DATASETS
from seqbench.suite import load_suite
from tests.data.test_cache import ALTERNATIVES as PROTOCOL_ALTERNATIVES
from tests.data.test_cache import SINGLE_VALUED as PROTOCOL_SINGLE_VALUED
from tests.test_suite import GOOD, FakeSeqParams, fake_models, write  # noqa: F401

pytestmark = pytest.mark.usefixtures("fake_models")

SOURCE: dict[str, Any] = {
    "sha256": "a" * 64,
    "format": "sequences",
    "format_version": 1,
    "options": {"encoding": "utf-8", "sep": None},
}


def base_cell() -> Cell:
    return Cell(
        suite="s",
        dataset=DatasetSpec(name="beauty", path=Path("/data/Beauty.txt"), format="sequences"),
        protocol=Protocol(),
        variant=Variant(
            label="fakeseq",
            model="fakeseq",
            ablation="full",
            params=FakeSeqParams().model_dump(mode="json"),
            role="baseline",
            order=(0, 0, 0),
        ),
        seed=1,
        train=TrainSettings(),
        eval=EvalSettings(),
    )


def changed(cell: Cell, section: str, **update: Any) -> Cell:
    """``cell`` with fields of one of its parts (or of itself, section "") replaced."""
    if not section:
        return cell.model_copy(update=update)
    part = getattr(cell, section)
    return cell.model_copy(update={section: part.model_copy(update=update)})


# One alternative value per field: a new field without an entry here fails the tests below.
# The protocol's come from the cache test, which guards the same knobs for the cache key.
TRAIN_ALTERNATIVES = {
    "epochs": 5,
    "batch_size": 16,
    "lr": 0.5,
    "weight_decay": 0.1,
    "stopping_step": 3,
    "valid_metric": "hr@5",
    "clip_grad_norm": 1.0,
    "objective": "all_positions",
    "loss": "bpr",
    "negatives": 5,  # model_copy skips validation: alone, with loss "ce", it would be refused
    "precision": "bf16",  # hashed at the identity's top level (tests/core/test_precision.py)
    "noise": NoiseSpec(kind="delete", ratio=0.2, where="end"),
    "mode": "throughput",
    # model_copy skips validation: alone, in fit mode, each would be refused
    "warmup_steps": 1,
    "steps": 3,
    "score_users": 7,
}
# Whether weights are stored, and the evaluation conditions scored afterwards, change no number
# of the cell itself (conditions are added to a result without retraining).
TRAIN_NEUTRAL = {"save_weights": True}
EVAL_ALTERNATIVES = {"metrics": ["hr@5"], "ties": "expected", "mask_history": True}
EVAL_NEUTRAL = {"noise": [NoiseSpec(kind="replace", ratio=0.1)]}
PARAM_ALTERNATIVES = {
    "hidden_size": 32,
    "n_layers": 3,
    "n_heads": 4,
    "dropout_prob": 0.1,
    "hidden_act": "relu",
    "kernel_sizes": [3],
    "init": "xavier",
}
SOURCE_ALTERNATIVES = {
    "sha256": "b" * 64,
    "format": "pairs",
    "format_version": 2,
    "options": {"encoding": "latin-1", "sep": None},
}
VARIANT_CHANGING = {"model": "other", "ablation": "no_pos"}  # and params, below
VARIANT_NEUTRAL = {
    "label": "renamed",
    "sweep": {"n_layers": 3},
    "overrides": {"hidden_size": 8},
    "role": "proposed",
    "order": (4, 5, 6),
}
CELL_CHANGING = {"seed": 2, "backend": "other-backend", "device": "cuda"}  # precision: a train key
CELL_NEUTRAL = {
    "suite": "another-suite",
    # the dataset's name, path, format and options reach the hash only through its source
    "dataset": DatasetSpec(
        name="b2", path=Path("/else/B.txt"), file="B.txt", format="pairs", options={"a": 1}
    ),
}
CELL_NESTED = {"protocol", "train", "eval", "variant"}
VARIANT_DERIVED = {"uses_text"}  # decides whether the source's item text joins the identity


def test_every_field_is_classified() -> None:
    assert set(Protocol.model_fields) == set(PROTOCOL_ALTERNATIVES) | PROTOCOL_SINGLE_VALUED
    for name in PROTOCOL_SINGLE_VALUED:
        assert len(typing.get_args(Protocol.model_fields[name].annotation)) == 1
    assert set(TrainSettings.model_fields) == set(TRAIN_ALTERNATIVES) | set(TRAIN_NEUTRAL)
    assert set(EvalSettings.model_fields) == set(EVAL_ALTERNATIVES) | set(EVAL_NEUTRAL)
    assert set(FakeSeqParams.model_fields) == set(PARAM_ALTERNATIVES)
    assert set(SOURCE_KEYS) == set(SOURCE_ALTERNATIVES)
    assert set(Variant.model_fields) == {
        *VARIANT_CHANGING,
        "params",
        *VARIANT_NEUTRAL,
        *VARIANT_DERIVED,
    }
    assert set(Cell.model_fields) == {*CELL_CHANGING, *CELL_NEUTRAL, *CELL_NESTED}


def test_each_number_changing_setting_changes_the_hash() -> None:
    cell = base_cell()
    variants: dict[str, str] = {"base": cell.hash(SOURCE)}
    for section, alternatives in [
        ("protocol", PROTOCOL_ALTERNATIVES),
        ("train", TRAIN_ALTERNATIVES),
        ("eval", EVAL_ALTERNATIVES),
        ("variant", VARIANT_CHANGING),
        ("", CELL_CHANGING),
    ]:
        for name, value in alternatives.items():
            other = changed(cell, section, **{name: value})
            variants[f"{section}.{name}"] = other.hash(SOURCE)
    for name, value in PARAM_ALTERNATIVES.items():
        params = {**cell.variant.params, name: value}
        variants[f"params.{name}"] = changed(cell, "variant", params=params).hash(SOURCE)
    for name, value in SOURCE_ALTERNATIVES.items():
        variants[f"source.{name}"] = cell.hash({**SOURCE, name: value})
    assert len(set(variants.values())) == len(variants), variants


def test_versions_change_the_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    cell = base_cell()
    base = cell.hash(SOURCE)
    monkeypatch.setattr(cells_module, "NUMERICS_VERSION", NUMERICS_VERSION + 1)
    numerics = cell.hash(SOURCE)
    monkeypatch.setattr(protocol_module, "PROTOCOL_VERSION", protocol_module.PROTOCOL_VERSION + 1)
    both = cell.hash(SOURCE)
    assert len({base, numerics, both}) == 3


def test_names_labels_roles_order_and_paths_do_not_change_the_hash() -> None:
    cell = base_cell()
    base = cell.hash(SOURCE)
    for name, value in VARIANT_NEUTRAL.items():
        assert changed(cell, "variant", **{name: value}).hash(SOURCE) == base, name
    for name, value in CELL_NEUTRAL.items():
        assert changed(cell, "", **{name: value}).hash(SOURCE) == base, name
    for section, neutral in (("train", TRAIN_NEUTRAL), ("eval", EVAL_NEUTRAL)):
        for name, value in neutral.items():
            assert changed(cell, section, **{name: value}).hash(SOURCE) == base, name
    # nor does anything beyond the four source keys (e.g. where the file was found)
    assert cell.hash({**SOURCE, "file": "/somewhere/else"}) == base
    # nor the order the metrics are listed in
    metrics = list(reversed(cell.eval.metrics))
    assert changed(cell, "eval", metrics=metrics).hash(SOURCE) == base


def test_identity_holds_exactly_the_number_changing_parts() -> None:
    identity = base_cell().identity(SOURCE)
    assert set(identity) == {
        "source",
        "protocol",
        "model",
        "ablation",
        "params",
        "train",
        "eval",
        "seed",
        "backend",
        "precision",
        "numerics_version",
    }
    assert identity["protocol"]["version"] == protocol_module.PROTOCOL_VERSION
    assert identity["numerics_version"] == NUMERICS_VERSION
    text = canonical_json(identity)
    for absent in ("Beauty.txt", "beauty", 'fakeseq","label', '"s"', "baseline"):
        assert absent not in text
    assert base_cell().hash(SOURCE) == hashlib.sha256(text.encode()).hexdigest()


def test_canonical_json_sorts_keys_and_writes_floats_as_repr() -> None:
    assert canonical_json({"b": 1e-3, "a": [1.0, 2, 1e-7], "c": "é"}) == (
        '{"a":[1.0,2,1e-07],"b":0.001,"c":"é"}'
    )


def test_json_round_trip_keeps_the_cell_and_its_hash() -> None:
    cell = base_cell().model_copy(
        update={
            "variant": base_cell().variant.model_copy(
                update={"sweep": {"lr": 0.01, "max_len": 10}, "overrides": {"n_layers": 1}}
            ),
            "train": TrainSettings(lr=0.01, clip_grad_norm=5.0),
        }
    )
    data = json.loads(json.dumps(cell.to_json()))  # through real JSON, as to a worker
    again = Cell.from_json(data)
    assert again == cell
    assert again.hash(SOURCE) == cell.hash(SOURCE)
    assert again.variant.order == (0, 0, 0) and isinstance(again.dataset.path, Path)
    assert data["dataset"] == {
        "name": "beauty",
        "path": "/data/Beauty.txt",
        "file": None,
        "format": "sequences",
        "options": {},
        "text": None,
    }
    assert set(data["variant"]) == {
        "label",
        "model",
        "ablation",
        "sweep",
        "params",
        "overrides",
        "role",
        "order",
        "uses_text",
    }  # docs/results.md, cell.variant


def test_item_text_joins_the_identity_of_text_reading_variants_only() -> None:
    cell = base_cell()
    with_text = {**SOURCE, "text": {"sha256": "c" * 64, "read": {"format": "movielens"}}}
    other_text = {**SOURCE, "text": {"sha256": "d" * 64, "read": {"format": "movielens"}}}
    assert cell.hash(with_text) == cell.hash(SOURCE) == cell.hash(other_text)
    reader = changed(cell, "variant", uses_text=True)
    assert reader.hash(with_text) != reader.hash(other_text)
    assert reader.hash(SOURCE) == cell.hash(SOURCE)  # generated text: in the source's sha256
    assert reader.identity(with_text)["source"]["text"]["sha256"] == "c" * 64


def test_directory_is_dataset_label_seed_and_hash8() -> None:
    cell = base_cell()
    digest = cell.hash(SOURCE)
    assert cell.directory(digest) == PurePosixPath(f"beauty/fakeseq/seed-1-{digest[:8]}")


def test_variant_labels() -> None:
    assert variant_label("sasrec", None, "full", {}) == "sasrec"
    assert variant_label("sasrec", "deep", "no_pos", {}) == "deep+no_pos"
    sweep = {"lr": 1e-3, "n_layers": 2, "bidirectional": True, "act": "a b/c"}
    assert (
        variant_label("m", None, "full", sweep)
        == "m@lr=0.001,n_layers=2,bidirectional=true,act=a_b_c"
    )


# --------------------------------------------------------------------------- from a suite file


def suite_hashes(folder: Path, text: str) -> list[str]:
    suite = load_suite(write(folder, text))
    out = []
    for cell in suite.cells():
        source = source_fingerprint(cell.dataset, download=False)
        assert source is not None
        out.append(cell.hash(source))
    return out


def test_suite_name_labels_roles_and_dataset_location_leave_hashes_alone(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for folder in ("a", "b"):
        (tmp_path / folder / "Beauty.txt").write_text("1 2 3 4\n2 3 4 5\n")
    local = GOOD.replace(
        'name = "synthetic"\noptions = { n_users = 100, n_items = 50 }',
        'name = "beauty"\npath = "Beauty.txt"\nformat = "sequences"',
    )
    base = suite_hashes(tmp_path / "a", local)
    renamed = (
        local.replace('name = "smoke"', 'name = "other"')
        .replace('name = "beauty"', 'name = "copy"')
        .replace('role = "proposed"', 'role = "baseline"\nname = "mine"')
    )
    assert suite_hashes(tmp_path / "b", renamed) == base
    assert suite_hashes(tmp_path / "a", local.replace("epochs = 3", "epochs = 4")) != base
    (tmp_path / "a" / "Beauty.txt").write_text("1 2 3 4\n2 3 4 6\n")
    changed_data = suite_hashes(tmp_path / "a", local)
    assert not set(changed_data) & set(base)


# --------------------------------------------------------------------------- sources


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    import pooch.downloaders

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(pooch.downloaders.HTTPDownloader, "__call__", refuse)


@pytest.mark.usefixtures("no_network")
def test_source_of_generated_and_local_data(tmp_path: Path) -> None:
    synthetic = DatasetSpec(name="synthetic", options={"n_users": 50})
    got = source_fingerprint(synthetic, download=False)
    assert got is not None and set(got) == set(SOURCE_KEYS)
    assert got["format"] == "synthetic" and got["options"]["n_users"] == 50
    assert got == source_fingerprint(synthetic, download=True)

    path = tmp_path / "Beauty.txt"
    path.write_bytes(b"1 2 3\n")
    local = source_fingerprint(DatasetSpec(name="b", path=path, format="sequences"), download=False)
    assert local == {
        "sha256": hashlib.sha256(b"1 2 3\n").hexdigest(),
        "format": "sequences",
        "format_version": 1,
        "options": {"encoding": "utf-8", "sep": None},
    }


@pytest.mark.usefixtures("no_network")
def test_registry_data_is_hashed_only_once_downloaded(cache_dir: Path) -> None:
    spec = DatasetSpec(name="amazon-beauty")
    assert source_fingerprint(spec, download=False) is None
    remote = DATASETS["amazon-beauty"].remote
    assert remote is not None
    file = cache_dir / "downloads" / "amazon-beauty" / remote.filename
    file.parent.mkdir(parents=True)
    content = b'{"reviewerID": "u", "asin": "i", "unixReviewTime": 1}\n'
    file.write_bytes(content)
    digest = hashlib.sha256(content).hexdigest()
    assert source_fingerprint(spec, download=False) is None  # its checksum is not known yet
    trust = cache_dir / "downloads" / "trusted-sha256.json"
    write_json_atomic(trust, {"amazon-beauty": {"sha256": digest}})
    got = source_fingerprint(spec, download=False)
    assert got is not None and got["sha256"] == digest and got["format"] == "amazon"
    file.write_bytes(content + b"tampered")  # would have to be downloaded again
    assert source_fingerprint(spec, download=False) is None


def test_the_device_type_joins_the_identity_but_cpu_cells_keep_their_hashes() -> None:
    """Dropout masks and shuffles come from different random streams on CPU and CUDA, so the
    same settings on the two are two cells; CPU cells hashed before the device joined the
    identity keep their hash."""
    cell = base_cell()
    assert cell.device == "cpu" and "device" not in cell.identity(SOURCE)
    gpu = changed(cell, "", device="cuda")
    assert gpu.identity(SOURCE)["device"] == "cuda"
    assert gpu.hash(SOURCE) != cell.hash(SOURCE)


def test_the_default_objective_keeps_hashes_from_before_it_existed() -> None:
    """Cells hashed before ``objective`` existed were all 'last': their identity must not change
    (the result store would otherwise re-run every finished cell)."""
    cell = base_cell()
    assert cell.train.objective == "last"
    assert "objective" not in cell.identity(SOURCE)["train"]
    other = changed(cell, "train", objective="all_positions")
    assert other.identity(SOURCE)["train"]["objective"] == "all_positions"


def test_the_default_loss_keeps_hashes_and_a_sampled_loss_changes_them() -> None:
    """Cells hashed before ``loss``/``negatives`` existed all trained with CE and had no
    negatives: their identity must not change; any other loss or count must."""
    cell = base_cell()
    assert cell.train.loss == "ce" and cell.train.negatives is None
    identity = cell.identity(SOURCE)["train"]
    assert "loss" not in identity and "negatives" not in identity

    def with_train(**values: Any) -> Cell:
        return cell.model_copy(update={"train": TrainSettings(**values)})

    assert with_train(loss="ce").hash(SOURCE) == cell.hash(SOURCE)
    bce = with_train(loss="bce")
    assert bce.identity(SOURCE)["train"]["loss"] == "bce"
    assert "negatives" not in bce.identity(SOURCE)["train"]
    one, five = with_train(loss="bce", negatives=1), with_train(loss="bce", negatives=5)
    assert five.identity(SOURCE)["train"]["negatives"] == 5
    hashes = [
        cell.hash(SOURCE),
        bce.hash(SOURCE),
        with_train(loss="bpr").hash(SOURCE),
        one.hash(SOURCE),
        five.hash(SOURCE),
        with_train(loss="bpr", negatives=5).hash(SOURCE),
    ]
    assert len(set(hashes)) == len(hashes)


def test_negatives_need_a_sampled_loss() -> None:
    with pytest.raises(ValueError, match="negatives applies to loss 'bce' or 'bpr' only, loss"):
        TrainSettings(negatives=2)
    with pytest.raises(ValueError, match="negatives applies to loss 'bce' or 'bpr' only"):
        TrainSettings(loss="ce", negatives=1)
    with pytest.raises(ValueError, match="greater than or equal to 1"):
        TrainSettings(loss="bce", negatives=0)
    with pytest.raises(ValueError, match="'ce', 'bce' or 'bpr'"):
        TrainSettings(loss="softmax")  # type: ignore[arg-type]
    settings = TrainSettings(loss="bpr", negatives=3)
    assert (settings.loss, settings.negatives) == ("bpr", 3)
    again = Cell.from_json(changed(base_cell(), "train", loss="bpr", negatives=3).to_json())
    assert again.train == settings
