"""CPU checks of the GPU-session scripts in benchmarks/gpu/ (docs/gpu.md): the arch patch of the
kernels' setup.py, parity.py's refusal without CUDA (and its code paths on CPU stand-ins),
throughput.py's record on synthetic data, and the two reproduction suites."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from types import ModuleType

import pytest

from seqbench.suite import load_suite
from tests.conftest import REPO, SHARED_DATA

GPU = REPO / "benchmarks" / "gpu"
SDISTS = REPO / ".gpu" / "sdists"
# one intra-op thread: on a busy 2-core machine, torch's spinning worker threads make these tiny
# CPU runs many times slower
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1"}


def _module(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"gpu_{name}", GPU / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


patch_arch = _module("patch_arch")

# The cc_flag block of mamba-ssm 2.3.2.post1's (and causal-conv1d 1.7.0's) setup.py, made
# runnable: the patched text is executed and the flags it builds are inspected.
SETUP_BLOCK = """\
from packaging.version import Version
bare_metal_version = Version("13.0")
HIP_BUILD = False
SKIP_CUDA_BUILD = False
if not SKIP_CUDA_BUILD:
    cc_flag = []

    if HIP_BUILD:
        cc_flag.append("-DBUILD_PYTHON_PACKAGE")

    else:
        cc_flag.append("-gencode")
        cc_flag.append("arch=compute_75,code=sm_75")
        cc_flag.append("-gencode")
        cc_flag.append("arch=compute_80,code=sm_80")
        cc_flag.append("-gencode")
        cc_flag.append("arch=compute_87,code=sm_87")
        if bare_metal_version >= Version("11.8"):
            cc_flag.append("-gencode")
            cc_flag.append("arch=compute_90,code=sm_90")
        if bare_metal_version >= Version("12.8"):
            cc_flag.append("-gencode")
            cc_flag.append("arch=compute_100,code=sm_100")
            cc_flag.append("-gencode")
            cc_flag.append("arch=compute_120,code=sm_120")
        if bare_metal_version >= Version("13.0"):
            cc_flag.append("-gencode")
            cc_flag.append("arch=compute_103,code=sm_103")
            cc_flag.append("-gencode")
            cc_flag.append("arch=compute_110,code=sm_110")
            cc_flag.append("-gencode")
            cc_flag.append("arch=compute_121,code=sm_121")
    nvcc = ["-O3", "-lineinfo"] + cc_flag
"""


def _flags(text: str) -> list[str]:
    namespace: dict[str, object] = {}
    exec(compile(text, "setup.py", "exec"), namespace)
    return namespace["cc_flag"]  # type: ignore[return-value]


def test_the_fixture_builds_nine_architectures() -> None:
    flags = _flags(SETUP_BLOCK)
    assert flags.count("-gencode") == 9


@pytest.mark.parametrize(("arch", "expected"), [("90", "90"), ("9.0", "90"), ("sm_80", "80")])
def test_the_patch_keeps_exactly_the_local_arch(arch: str, expected: str) -> None:
    patched = patch_arch.patch_setup(SETUP_BLOCK, arch)
    assert _flags(patched) == ["-gencode", f"arch=compute_{expected},code=sm_{expected}"]
    assert patched.count("arch=compute_") == 1
    assert "was: sm_75, sm_80, sm_87, sm_90, sm_100, sm_120, sm_103, sm_110, sm_121" in patched


def test_the_patch_can_raise_the_cxx_standard() -> None:
    text = SETUP_BLOCK.replace('["-O3", "-lineinfo"]', '["-O3", "-std=c++17"]')
    patched = patch_arch.patch_setup(text, "90", cxx_std="20")
    assert "-std=c++20" in patched and "-std=c++17" not in patched


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (SETUP_BLOCK.replace("    cc_flag = []\n", "    cc_flag = list()\n"), "cc_flag = \\[\\]"),
        (
            SETUP_BLOCK.replace("    cc_flag = []\n", "    cc_flag = []\n    cc_flag = []\n"),
            "found 2",
        ),
        (
            'cc_flag = []\nfor a in ["80", "90"]:\n'
            '    cc_flag += ["-gencode", f"arch=compute_{a},code=sm_{a}"]\n',
            "no 'cc_flag.append",
        ),
        (
            SETUP_BLOCK + 'cc_flag += ["-gencode", "arch=compute_89,code=sm_89"]\n',
            "outside the recognised pairs",
        ),
        (patch_arch.patch_setup(SETUP_BLOCK, "90"), "already patched"),
    ],
    ids=["no-empty-list", "two-empty-lists", "loop", "stray-arch", "twice"],
)
def test_the_patch_refuses_an_unknown_layout(text: str, problem: str) -> None:
    with pytest.raises(patch_arch.PatchError, match=problem):
        patch_arch.patch_setup(text, "90")


@pytest.mark.parametrize("arch", ["", "abc", "9", "sm_9.0.1"])
def test_a_bad_arch_is_refused(arch: str) -> None:
    with pytest.raises(patch_arch.PatchError, match=r"expected e\.g\. 90"):
        patch_arch.patch_setup(SETUP_BLOCK, arch)


def test_the_patch_cli_fails_loudly(tmp_path: Path) -> None:
    setup = tmp_path / "setup.py"
    setup.write_text("print('no flags here')\n")
    proc = subprocess.run(
        [sys.executable, GPU / "patch_arch.py", setup, "--arch", "90"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 1
    assert "expected exactly one 'cc_flag = []' line" in proc.stderr
    assert setup.read_text() == "print('no flags here')\n"


INIT = """\
__version__ = "2.3.2.post1"

from mamba_ssm.ops.selective_scan_interface import selective_scan_fn, mamba_inner_fn
from mamba_ssm.modules.mamba_simple import Mamba
from mamba_ssm.modules.mamba2 import Mamba2
from mamba_ssm.modules.mamba3 import Mamba3
from mamba_ssm.models.mixer_seq_simple import MambaLMHeadModel
"""


def test_relax_init_makes_only_the_optional_imports_non_fatal() -> None:
    relaxed = patch_arch.relax_init(INIT)
    assert relaxed.count("except Exception:") == 3
    assert "\nfrom mamba_ssm.ops.selective_scan_interface import" in relaxed
    assert "\nfrom mamba_ssm.modules.mamba_simple import Mamba\n" in relaxed
    assert patch_arch.relax_init(relaxed) == relaxed
    with pytest.raises(patch_arch.PatchError, match="layout changed"):
        patch_arch.relax_init("__version__ = '9'\n")


# -- on the real sdists, where benchmarks/gpu/download_sdists.sh left them ------------------------


def _real_sdists() -> list[Path]:
    found = sorted(SDISTS.glob("*.tar.gz")) if SDISTS.is_dir() else []
    if len(found) < 2:
        pytest.skip(f"no sdists in {SDISTS} (benchmarks/gpu/download_sdists.sh)")
    return found


SIMULATE = """
import json, runpy, sys
import torch
torch.version.cuda = "13.0"
import torch.utils.cpp_extension as ce
ce.CUDA_HOME = sys.argv[1]
import setuptools
captured = {}
setuptools.setup = lambda **kw: captured.update(kw)
sys.argv = ["setup.py", "--version"]
runpy.run_path("setup.py", run_name="__main__")
print(json.dumps({e.name: e.extra_compile_args["nvcc"] for e in captured["ext_modules"]}))
"""


def _nvcc_flags(source: Path, fake_cuda: Path) -> dict[str, list[str]]:
    """Run setup.py with a fake nvcc 13.0 and setuptools.setup captured: the nvcc flags."""
    env = {**os.environ}
    for key in [k for k in env if k.endswith(("_SKIP_CUDA_BUILD", "_FORCE_BUILD"))]:
        del env[key]
    proc = subprocess.run(
        [sys.executable, "-c", SIMULATE, str(fake_cuda)],
        cwd=source, capture_output=True, text=True, check=True, env=env,
    )  # fmt: skip
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_the_patched_real_setups_pass_only_the_local_arch_to_nvcc(tmp_path: Path) -> None:
    fake_cuda = tmp_path / "cuda"
    (fake_cuda / "bin").mkdir(parents=True)
    nvcc = fake_cuda / "bin" / "nvcc"
    nvcc.write_text('#!/bin/sh\necho "Cuda compilation tools, release 13.0, V13.0.88"\n')
    nvcc.chmod(0o755)
    for sdist in _real_sdists():
        with tarfile.open(sdist) as tar:
            tar.extractall(tmp_path, filter="data")
        source = tmp_path / sdist.name.removesuffix(".tar.gz")
        before = _nvcc_flags(source, fake_cuda)
        setup = source / "setup.py"
        setup.write_text(patch_arch.patch_setup(setup.read_text(), "90"))
        after = _nvcc_flags(source, fake_cuda)
        assert before.keys() == after.keys() and len(after) == 1
        for name, flags in after.items():
            assert before[name].count("-gencode") >= 9
            gencodes = [flags[i + 1] for i, f in enumerate(flags) if f == "-gencode"]
            assert gencodes == ["arch=compute_90,code=sm_90"], (sdist.name, flags)
            others = [f for f in before[name] if f not in ("-gencode",) and "compute_" not in f]
            assert [f for f in flags if f != "-gencode" and "compute_" not in f] == others
        init = source / "mamba_ssm" / "__init__.py"
        if init.exists():
            assert "except Exception:" in patch_arch.relax_init(init.read_text())


def test_build_kernels_patch_only_on_the_real_sdists(tmp_path: Path) -> None:
    _real_sdists()
    proc = subprocess.run(
        ["bash", GPU / "build_kernels.sh", "--patch-only", tmp_path, "--arch", "90"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    setups = sorted(tmp_path.glob("*/setup.py"))
    assert len(setups) == 2
    for setup in setups:
        assert setup.read_text().count("arch=compute_90,code=sm_90") == 1


def test_build_kernels_without_sdists_says_how_to_get_them(tmp_path: Path) -> None:
    proc = subprocess.run(
        ["bash", GPU / "build_kernels.sh", "--sdists", tmp_path],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 1
    assert "download_sdists.sh" in proc.stderr


# -- parity.py ----------------------------------------------------------------------------------


def test_parity_without_cuda_exits_2_with_a_message(tmp_path: Path) -> None:
    import torch

    from seqbench.models.layers.kernels import kernels_available

    if torch.cuda.is_available() and kernels_available():
        pytest.skip("CUDA and the kernels are here")
    out = tmp_path / "parity.json"
    proc = subprocess.run(
        [sys.executable, GPU / "parity.py", "--out", out], capture_output=True, text=True,
        check=False,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "parity.py needs" in proc.stderr and "docs/gpu.md" in proc.stderr
    assert not out.exists()


def test_parity_code_paths_on_cpu_stand_ins(tmp_path: Path) -> None:
    out = tmp_path / "parity.json"
    proc = subprocess.run(
        [sys.executable, GPU / "parity.py", "--out", out, "--cpu-selftest",
         "--synthetic-users", "40", "--max-len", "20", "--batch-size", "128"],
        capture_output=True, text=True, check=False, timeout=240, env=ONE_THREAD,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads(out.read_text())
    assert record["selftest"] is True and record["pass"] is True
    assert record["tolerances"] == {
        "forward_max_abs": 1e-4, "grad_max_rel": 1e-3, "same_rank_min_fraction": 0.999,
    }  # fmt: skip
    assert {(b["L"], b["case"]) for b in record["blocks"]} == {
        (length, case)
        for length in (50, 200)
        for case in ("fused", "delta_filter", "pre_activation", "filters_and_norm")
    }
    assert "input" in record["blocks"][0]["grad_max_rel"]
    assert [m["model"] for m in record["models"]] == ["mamba4rec", "echomamba4rec"]
    for m in record["models"]:
        assert m["test"]["same_rank_fraction"] == 1.0
        assert set(m["test"]["metrics"]) == {"torch", "mamba_ssm"}
    assert all(c["pass"] for c in record["checks"])
    assert {"environment", "versions", "dataset", "failed"} <= record.keys()


# -- throughput.py ------------------------------------------------------------------------------

RUN_KEYS = {
    "dataset", "max_len", "model", "backend", "device", "device_name", "versions", "amp",
    "compile", "batch_size", "eval_batch_size", "warmup_steps", "batches_per_epoch",
    "batches_timed", "seconds_per_epoch", "extrapolated", "train_peak_device_mib",
    "eval_peak_device_mib", "eval_seconds", "train_samples", "parameters",
}  # fmt: skip


def test_throughput_on_cpu_writes_the_expected_record(tmp_path: Path) -> None:
    out = tmp_path / "throughput.json"
    proc = subprocess.run(
        [sys.executable, GPU / "throughput.py", "--device", "cpu", "--datasets", "synthetic",
         "--max-batches", "2", "--warmup-steps", "1", "--batch-size", "32",
         "--eval-batch-size", "64", "--synthetic-users", "60", "--max-len", "20",
         "--out", out],
        capture_output=True, text=True, check=False, timeout=240, env=ONE_THREAD,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    record = json.loads(out.read_text())
    assert record["environment"]["device"] == "cpu"
    assert "warm" in record["settings"]["warmup"]
    runs = {(r["model"], r["backend"]): r for r in record["runs"]}
    assert set(runs) == {
        ("sasrec", "torch"), ("mamba4rec", "torch"), ("mamba4rec", "mamba_ssm"),
        ("echomamba4rec", "torch"), ("echomamba4rec", "mamba_ssm"),
    }  # fmt: skip
    for key in [("sasrec", "torch"), ("mamba4rec", "torch"), ("echomamba4rec", "torch")]:
        run = runs[key]
        assert run.keys() >= RUN_KEYS, RUN_KEYS - run.keys()
        assert run["batches_timed"] == 2 and run["extrapolated"] is True
        assert run["seconds_per_epoch"] > 0 and run["train_peak_device_mib"] is None
        assert run["versions"]["torch"] and run["device_name"] == "cpu"
    assert "CUDA" in runs[("mamba4rec", "mamba_ssm")]["skipped"]


def test_throughput_on_a_missing_gpu_exits_2(tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is here")
    proc = subprocess.run(
        [sys.executable, GPU / "throughput.py", "--out", tmp_path / "t.json"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 2 and "--device cpu" in proc.stderr


# -- the reproduction suites --------------------------------------------------------------------

BEAUTY_MODELS = {"sasrec", "mamba4rec", "echomamba4rec"}
SUITES = {
    "reproduce-beauty.toml": ("amazon-beauty/Beauty.txt", 50, 9, BEAUTY_MODELS),
    "reproduce-ml1m.toml": ("ml-1m/ml-1m.seq.txt", 200, 6, {"sasrec", "mamba4rec"}),
}


@pytest.mark.parametrize("name", sorted(SUITES))
@pytest.mark.parametrize("layout", ["flat", "per-dataset"])
def test_the_reproduction_suites_validate_against_a_fixture_copy(
    name: str, layout: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The suite, copied alone into a fake checkout, with a tiny data file in a data folder
    laid out flat (DIR/Beauty.txt) or per dataset (DIR/amazon-beauty/Beauty.txt, as
    ../shared/data and .gpu/data are), loads with the paper's settings."""
    rel, max_len, n_cells, models = SUITES[name]
    suites = tmp_path / "repo" / "suites"
    suites.mkdir(parents=True)
    shutil.copy(REPO / "suites" / name, suites / name)
    data = tmp_path / "data" / (rel if layout == "per-dataset" else Path(rel).name)
    data.parent.mkdir(parents=True)
    data.write_text("".join(f"{u} " + " ".join(str(i) for i in range(1, 8)) + "\n" for u in (1, 2)))
    monkeypatch.setenv("SEQBENCH_DATA_DIR", str(tmp_path / "data"))
    suite = load_suite(suites / name)
    assert suite.seeds == [2020, 2021, 2022]
    assert suite.protocol.max_len == max_len and suite.protocol.k_core == 5
    assert suite.train.batch_size == 2048 and suite.train.lr == 1e-3
    assert suite.train.stopping_step == 10 and suite.train.valid_metric == "ndcg@10"
    assert suite.train.epochs == 300
    (dataset,) = suite.datasets
    assert dataset.spec.format == "sequences" and dataset.spec.path == data
    assert dataset.spec.name == Path(rel).parent.name  # the folder of the per-dataset layout
    assert suite.missing_data() == []
    assert {m.model for m in suite.models} == models
    assert len(suite.cells()) == n_cells


@pytest.mark.parametrize("name", sorted(SUITES))
def test_the_reproduction_suites_validate_in_place(name: str) -> None:
    """With the real data folder (``$SEQBENCH_DATA_DIR``, which .ci/run sets, else the shared
    datasets), every cell has its hash: the files are found and read."""
    folder = Path(os.environ.get("SEQBENCH_DATA_DIR") or SHARED_DATA)
    if not (folder / SUITES[name][0]).is_file():
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but {folder / SUITES[name][0]} is missing")
        pytest.skip(f"{folder / SUITES[name][0]} not found")
    proc = subprocess.run(
        [sys.executable, "-m", "seqbench", "validate", REPO / "suites" / name],
        capture_output=True, text=True, check=False, cwd=REPO,
        env={**os.environ, "SEQBENCH_DATA_DIR": str(folder)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert f"{SUITES[name][2]} cells" in proc.stdout
    assert str(folder / SUITES[name][0]) in proc.stdout
    assert "(data needed)" not in proc.stdout and "(after download)" not in proc.stdout
