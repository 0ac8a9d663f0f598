"""``seqbench doctor``: a clean CPU report exits 0 with the documented JSON keys; missing or
broken kernels and ``--backend mamba_ssm`` without them exit 1 with the fix; the block parity
check (seqbench.parity), whose tolerances benchmarks/gpu/parity.py shares, can fail."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from seqbench import doctor, parity
from seqbench.cli.main import app
from seqbench.errors import ConfigError
from seqbench.models.layers import kernels
from tests.conftest import REPO

runner = CliRunner()

NO_KERNELS = not kernels.kernels_available() and all(
    doctor._version(d) is None for d in ("mamba-ssm", "causal-conv1d")
)
INSTALL = 'pip install --no-build-isolation "seqbench[cuda]"'


def invoke(*args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, ["doctor", *args])


# --------------------------------------------------------------------------- the report


@pytest.mark.skipif(not NO_KERNELS, reason="kernel packages are installed here")
def test_a_cpu_install_gets_a_clean_report_and_exit_0(tmp_path: Path, cache_dir: Path) -> None:
    result = invoke("--json", "--results", str(tmp_path / "results"), "--data-dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    r = json.loads(result.stdout)
    assert tuple(r) == doctor.REPORT_KEYS
    assert r["ok"] is True and r["problems"] == [] and r["backend"] == "auto"
    assert r["torch"]["version"] == torch.__version__
    assert r["python"]["version"].count(".") == 2
    assert set(r["kernels"]["packages"]) == {"mamba-ssm", "causal-conv1d", "triton"}
    assert r["kernels"]["usable"] is False and r["parity"] is None
    assert r["threads"]["torch_threads"] == torch.get_num_threads()
    assert {"OMP_NUM_THREADS", "MKL_NUM_THREADS", "cpus"} <= set(r["threads"])
    folders = r["folders"]
    assert folders["cache"]["path"] == str(cache_dir)  # $SEQBENCH_CACHE_DIR (conftest)
    assert folders["results"] == {
        "path": str(tmp_path / "results"),
        "exists": False,
        "free_gib": folders["results"]["free_gib"],
    }
    assert folders["results"]["free_gib"] > 0 and folders["data"]["exists"] is True
    assert set(r["extras"]) == {"text", "tune", "cluster", "cuda", "dev"}
    assert r["extras"]["dev"]["installed"] is True  # pytest runs this
    assert r["extras"]["cuda"] == {
        "packages": {"mamba_ssm": None, "causal_conv1d": None},
        "installed": False,
    }
    if not torch.cuda.is_available():
        assert r["gpus"] == [] and r["torch"]["cuda_available"] is False
    table = invoke()
    assert table.exit_code == 0, table.output
    assert "no problem found (backend auto)" in table.stdout
    assert "extra [dev]" in table.stdout and "mamba-ssm" in table.stdout


@pytest.mark.skipif(
    kernels.kernels_available() and torch.cuda.is_available(), reason="mamba_ssm can run here"
)
def test_backend_mamba_ssm_without_the_kernels_exits_1_with_the_install_command() -> None:
    result = invoke("--backend", "mamba_ssm")
    assert result.exit_code == 1
    text = result.stdout
    if NO_KERNELS:
        assert "problem: --backend mamba_ssm needs the fused kernels of mamba-ssm and " in text
        assert f"fix: install them with: {INSTALL}" in text
    if not torch.cuda.is_available():
        assert "problem: --backend mamba_ssm needs a CUDA GPU, and torch sees none here" in text
    report = json.loads(invoke("--backend", "mamba_ssm", "--json").stdout)
    assert report["ok"] is False and all({"problem", "fix"} == set(p) for p in report["problems"])
    bad = invoke("--backend", "triton")
    assert bad.exit_code == 1 and "--backend 'triton': expected one of auto" in bad.stderr


def test_installed_kernels_that_do_not_load_are_a_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    versions = {"mamba-ssm": "2.2.4", "causal-conv1d": "1.5.0"}
    monkeypatch.setattr(doctor, "_version", lambda name: versions.get(name))
    monkeypatch.setattr(
        kernels, "load_kernels", lambda: "ImportError: undefined symbol: _ZN3c104cuda"
    )
    result = invoke()
    assert result.exit_code == 1
    assert (
        "problem: mamba-ssm 2.2.4 and causal-conv1d 1.5.0 installed, but the kernels do not "
        "load: ImportError: undefined symbol" in result.stdout
    )
    assert "fix: rebuild mamba-ssm and causal-conv1d against this torch and GPU" in result.stdout
    del versions["mamba-ssm"]  # half an install: the fix is the missing half
    half = json.loads(invoke("--json").stdout)
    (problem,) = half["problems"]
    assert problem["problem"].startswith("causal-conv1d 1.5.0 installed, but the kernels do not")
    assert problem["fix"] == f"install mamba-ssm too: {kernels.INSTALL}"


def test_kernels_that_disagree_are_a_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    """The doctor's wiring on a (faked) GPU with (faked) kernels that give other numbers."""
    monkeypatch.setattr(
        doctor, "kernel_report", lambda: {"packages": _packages(), "usable": True, "error": None}
    )
    monkeypatch.setattr(doctor, "gpu_report", lambda: [_FAKE_GPU])
    wrong = parity.BlockParity(("torch", "mamba_ssm"), 3e-2, 1.0, {"input": 0.5, "D": 1e-6})
    monkeypatch.setattr(parity, "block_parity", lambda device: wrong)
    result = invoke("--backend", "mamba_ssm")
    assert result.exit_code == 1
    assert (
        "problem: the fused kernels disagree with seqbench's pure-PyTorch Mamba block: forward "
        "max |Δ| 0.03 > 0.0001; gradient of input: max rel Δ 0.5 > 0.001" in result.stdout
    )
    assert "FAIL" in result.stdout and "fix: rebuild mamba-ssm" in result.stdout
    right = parity.BlockParity(("torch", "mamba_ssm"), 2e-6, 1.0, {"input": 1e-5})
    monkeypatch.setattr(parity, "block_parity", lambda device: right)
    again = json.loads(invoke("--backend", "mamba_ssm", "--json").stdout)
    assert again["ok"] is True and again["parity"]["ok"] is True
    assert again["parity"]["tolerances"] == {"forward_max_abs": 1e-4, "grad_max_rel": 1e-3}


_FAKE_GPU = {
    "index": 0,
    "name": "Fake GPU",
    "capability": "9.0",
    "bf16": True,
    "memory_total_mib": 1000,
    "memory_free_mib": 900,
}


def _packages() -> dict[str, dict[str, object]]:
    return {name: {"version": "1.0", "imports": True, "error": None} for name in doctor.KERNELS}


def test_run_without_kernels_points_to_doctor() -> None:
    if kernels.kernels_available():
        pytest.skip("the kernels load here")
    with pytest.raises(ConfigError) as info:
        kernels.resolve_backend("mamba_ssm", "cuda", uses_kernels=True)
    assert INSTALL in str(info.value)
    assert str(info.value).endswith("`seqbench doctor --backend mamba_ssm` checks the install")


# --------------------------------------------------------------------------- the parity check


def test_the_block_parity_passes_for_the_same_arithmetic_and_fails_for_another() -> None:
    same = parity.block_parity("cpu", backends=("torch", "torch"), batch=2, length=12)
    assert same.ok and same.failures() == [] and same.forward_max_abs == 0.0
    assert set(same.grad_max_rel) == {"input", "in_proj.weight", "conv1d.weight",
                                      "conv1d.bias", "x_proj.weight", "dt_proj.weight",
                                      "dt_proj.bias", "A_log", "D", "out_proj.weight"}  # fmt: skip
    assert same.forward_scale > 0

    def nudge(size: float):  # type: ignore[no-untyped-def]
        def prepare(block) -> None:  # type: ignore[no-untyped-def]
            with torch.no_grad():
                block.out_proj.weight.add_(size)

        return prepare

    close = parity.block_parity(
        "cpu", backends=("torch", "torch"), batch=2, length=12, prepare=nudge(1e-8)
    )
    assert close.ok and 0 < close.forward_max_abs <= parity.FORWARD_MAX_ABS
    far = parity.block_parity(
        "cpu", backends=("torch", "torch"), batch=2, length=12, prepare=nudge(1e-3)
    )
    assert not far.ok
    failures = far.failures()
    assert failures[0].startswith("forward max |Δ| ") and failures[0].endswith(" > 0.0001")
    assert failures[1].startswith("gradient of input: max rel Δ ")
    record = far.to_json()
    assert record["ok"] is False and record["failures"] == failures
    assert record["grad_max_rel_worst"] == max(far.grad_max_rel.values())


def test_not_a_number_is_never_within_tolerance() -> None:
    nan = parity.BlockParity(("torch", "mamba_ssm"), math.nan, 1.0, {"input": math.nan})
    assert nan.failures() == [
        "forward max |Δ| nan > 0.0001",
        "gradient of input: max rel Δ nan > 0.001",
    ]


def test_the_gpu_parity_script_uses_the_same_tolerances() -> None:
    spec = importlib.util.spec_from_file_location("gpu_parity", REPO / "benchmarks/gpu/parity.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for name in ("FORWARD_MAX_ABS", "GRAD_MAX_REL", "SAME_RANK_MIN_FRACTION", "BLOCK"):
        assert getattr(module, name) is getattr(parity, name), name
    assert module.rel is parity.relative_error


@pytest.mark.gpu
def test_the_kernels_agree_with_the_torch_path_on_this_gpu() -> None:
    if not kernels.kernels_available():
        pytest.skip("mamba-ssm / causal-conv1d do not load here")
    result = parity.block_parity(torch.device("cuda"))
    assert result.ok, result.failures()
    report = json.loads(invoke("--json", "--backend", "mamba_ssm").stdout)
    assert report["parity"]["ok"] is True and report["gpus"]
    assert report["gpus"][0]["memory_free_mib"] > 0


def test_the_cpu_scan_is_reported_and_a_bad_mode_is_a_problem(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from seqbench.models.layers import scan_cpu

    monkeypatch.setenv("SEQBENCH_CPU_SCAN", "torch")
    report = json.loads(invoke("--json").stdout)
    assert report["kernels"]["cpu_scan"] == {
        "mode": "torch",
        "runs": "torch (SEQBENCH_CPU_SCAN=torch)",
        "error": None,
    }
    monkeypatch.setenv("SEQBENCH_CPU_SCAN", "auto")
    runs = scan_cpu.describe()
    report = json.loads(invoke("--json").stdout)
    assert report["kernels"]["cpu_scan"]["runs"] == runs  # 'compiled' where a compiler is
    assert "cpu scan" in invoke().stdout
    monkeypatch.setenv("SEQBENCH_CPU_SCAN", "fastest")
    result = invoke()
    assert result.exit_code == 1
    assert "problem: the fused CPU scan: SEQBENCH_CPU_SCAN='fastest': expected one of" in (
        result.stdout
    )
    assert "fix: install a C++ compiler" in result.stdout
