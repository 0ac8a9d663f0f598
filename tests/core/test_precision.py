"""``[train] precision``: validated and swept as a train key, hashed at the identity's top level
(fp32 cells keep their hashes), refused on a CPU before any work, and — on a GPU — TF32 flags and
bf16 autocast in training and scoring."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from seqbench import precision, runner, train
from seqbench.cells import Cell, EvalSettings, TrainSettings, check_precision
from seqbench.cli.main import app
from seqbench.errors import ConfigError
from seqbench.models.registry import get_model
from seqbench.suite import SuiteError, load_suite
from tests.core.fixtures import random_dataset
from tests.test_cells import SOURCE, base_cell
from tests.test_suite import GOOD, fake_models, write  # noqa: F401


def with_precision(cell: Cell, value: str) -> Cell:
    return cell.model_copy(update={"train": cell.train.model_copy(update={"precision": value})})


# --------------------------------------------------------------------------- identity and JSON


def test_fp32_keeps_the_identity_shape_and_other_precisions_hash_differently() -> None:
    cell = base_cell()
    identity = cell.identity(SOURCE)
    assert cell.precision == "fp32" and identity["precision"] == "fp32"
    assert "precision" not in identity["train"]  # at the top level only, as before the key
    hashes = {p: with_precision(cell, p).hash(SOURCE) for p in ("fp32", "tf32", "bf16")}
    assert hashes["fp32"] == cell.hash(SOURCE)
    assert len(set(hashes.values())) == 3
    assert with_precision(cell, "bf16").identity(SOURCE)["precision"] == "bf16"


def test_the_json_keeps_precision_at_the_top_and_round_trips() -> None:
    bf16 = with_precision(base_cell(), "bf16")
    data = json.loads(json.dumps(bf16.to_json()))
    assert data["precision"] == "bf16" and data["train"]["precision"] == "bf16"
    assert Cell.from_json(data) == bf16
    old = {**base_cell().to_json()}  # a result written before the train key existed
    del old["train"]["precision"]
    assert Cell.from_json(old).precision == "fp32"
    with pytest.raises(ValueError, match=r"precision 'tf32' disagrees with train\.precision"):
        Cell.from_json({**data, "precision": "tf32"})


# --------------------------------------------------------------------------- the suite key


@pytest.mark.usefixtures("fake_models")
def test_the_suite_key_is_validated_and_sweepable(tmp_path: Path) -> None:
    suite = load_suite(
        write(tmp_path, GOOD.replace("epochs = 3", 'epochs = 3\nprecision = "bf16"'))
    )
    assert {c.precision for c in suite.cells()} == {"bf16"}
    with pytest.raises(SuiteError) as info:
        load_suite(write(tmp_path, GOOD.replace("epochs = 3", 'epochs = 3\nprecision = "fp16"')))
    assert str(info.value).endswith(
        ":11: train.precision: got \"fp16\"; expected one of 'fp32', 'tf32' or 'bf16'"
    )
    swept = load_suite(
        write(
            tmp_path,
            GOOD.replace(
                "params = { hidden_size = 32 }", 'sweep = { precision = ["fp32", "bf16"] }'
            ),
        )
    )
    seq = [c for c in swept.cells() if c.variant.model == "fakeseq"]
    assert [(c.variant.label, c.precision) for c in seq[::2]] == [
        ("fakeseq@precision=fp32", "fp32"),
        ("fakeseq@precision=bf16", "bf16"),
    ]
    assert len({c.hash(SOURCE) for c in seq}) == 4  # 2 precisions × 2 seeds


# --------------------------------------------------------------------------- refused on a CPU


@pytest.mark.parametrize("value", ["tf32", "bf16"])
def test_a_cpu_refuses_anything_but_fp32_naming_the_key_and_the_device(value: str) -> None:
    cell = with_precision(base_cell(), value)
    with pytest.raises(ConfigError) as info:
        check_precision(cell, "cpu")
    assert str(info.value) == (
        f"[train] precision = {value!r} (beauty/fakeseq seed 1) needs a CUDA device, and the "
        "device is 'cpu'; run it with --device cuda on a GPU, or set [train] precision = "
        '"fp32"'
    )
    check_precision(base_cell(), "cpu")  # fp32 runs anywhere


def test_the_runner_refuses_at_planning_time(tmp_path: Path) -> None:
    cell = with_precision(base_cell(), "bf16").model_copy(
        update={"variant": base_cell().variant.model_copy(update={"model": "sasrec"})}
    )
    options = runner.RunOptions(results=tmp_path, device="cpu")
    with pytest.raises(ConfigError, match=r"precision = 'bf16' .* the device is 'cpu'"):
        runner.with_backends([cell], options)
    assert runner.with_backends([with_precision(cell, "fp32")], options)[0].backend == "torch"


def test_seqbench_run_stops_before_any_work(tmp_path: Path) -> None:
    suite = tmp_path / "bf16.toml"
    suite.write_text(
        '[suite]\nname = "bf16"\nseeds = [1]\n\n[train]\nepochs = 1\nprecision = "bf16"\n\n'
        '[[datasets]]\nname = "synthetic"\noptions = { n_users = 50, n_items = 20 }\n\n'
        '[[models]]\nmodel = "pop"\n',
        encoding="utf-8",
    )
    results = tmp_path / "results"
    result = CliRunner().invoke(
        app, ["run", str(suite), "--device", "cpu", "--results", str(results), "--quiet"]
    )
    assert result.exit_code == 1
    assert "[train] precision = 'bf16' (synthetic/pop seed 1) needs a CUDA device" in (
        result.stderr
    )
    assert not results.exists()


def test_the_contexts_change_nothing_on_a_cpu() -> None:
    flags = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    for value in ("fp32", "tf32", "bf16"):
        with precision.numerics(value, torch.device("cpu")), precision.autocast(value, "cpu"):
            assert not torch.is_autocast_enabled("cpu")
            assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == (
                flags
            )


# --------------------------------------------------------------------------- on a GPU


def tiny_model(name: str, n_items: int, max_len: int) -> torch.nn.Module:
    spec = get_model(name)
    params = {"sasrec": {"hidden_size": 16, "n_layers": 1, "n_heads": 1, "inner_size": 32},
              "mamba4rec": {"hidden_size": 16, "d_state": 8}}[name]  # fmt: skip
    return spec.cls(spec.params(**params), n_items=n_items, max_len=max_len)


@pytest.mark.gpu
@pytest.mark.parametrize("model_name", ["sasrec", "mamba4rec"])
@pytest.mark.parametrize("value", ["tf32", "bf16"])
def test_training_and_scoring_run_in_the_chosen_precision(model_name: str, value: str) -> None:
    device = torch.device("cuda")
    check_precision(with_precision(base_cell(), value), "cuda")
    ds = random_dataset(n_users=200, n_items=50, max_len=10)
    torch.manual_seed(0)
    model = tiny_model(model_name, ds.n_items, 10).to(device)
    seen: set[tuple[bool, bool]] = set()  # (autocast on, TF32 on) of every forward pass
    forward = model.forward

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        seen.add((torch.is_autocast_enabled("cuda"), torch.backends.cuda.matmul.allow_tf32))
        return forward(*args, **kwargs)

    model.forward = spy  # type: ignore[method-assign]
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    settings = train.Settings(
        TrainSettings(epochs=2, batch_size=64, precision=value), EvalSettings()
    )
    outcome = train.fit_and_evaluate(model, ds, settings, seed=0, device=device)
    assert seen == {(value == "bf16", value == "tf32")}  # training and scoring alike
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == before
    assert all(math.isfinite(c["loss"]) for c in outcome.curve)
    assert outcome.test is not None and len(outcome.test.higher) == len(ds.data.test)
    assert all(p.dtype == torch.float32 for p in model.parameters())  # bf16 autocast only
