"""``seqbench doctor``: what a user must know to trust an install, as one JSON-able report.

Python, torch and its CUDA build, every GPU with its free memory, the mamba-ssm /
causal-conv1d / triton versions and whether they import, a few-second parity check of one Mamba
block where the kernels import on a GPU (:mod:`seqbench.parity`), thread settings, the cache,
results and data folders with their free disk, and the optional extras. Each problem carries its
fix; any problem makes the command exit 1:

- the kernels are installed but do not import (a build for another torch, CUDA or GPU);
- they import but disagree with the pure-PyTorch path beyond the fixed tolerances;
- ``--backend mamba_ssm`` is asked for where it cannot run (kernels or CUDA missing).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import platform
import shutil
import sys
from pathlib import Path
from typing import Any

import seqbench

#: The optional extras of pyproject.toml (and those planned) and the packages that make them.
EXTRAS: dict[str, tuple[str, ...]] = {
    "text": ("wordllama",),
    "tune": ("optuna",),
    "cluster": ("submitit", "ray"),
    "cuda": ("mamba_ssm", "causal_conv1d"),
    "dev": ("pytest", "ruff"),
}

#: Distribution names of the kernel packages, and the modules they install.
KERNELS = {"mamba-ssm": "mamba_ssm", "causal-conv1d": "causal_conv1d", "triton": "triton"}

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")

#: Keys of the report (``seqbench doctor --json``), documented in docs/gpu.md.
REPORT_KEYS = (
    "seqbench",
    "python",
    "torch",
    "gpus",
    "kernels",
    "parity",
    "threads",
    "folders",
    "extras",
    "backend",
    "problems",
    "ok",
)


def report(
    *,
    backend: str = "auto",
    cache_dir: Path | None = None,
    results: Path = Path("results"),
    data_dir: Path | None = None,
    parity: bool = True,
) -> dict[str, Any]:
    """The whole report; ``problems`` lists ``{"problem", "fix"}``, and ``ok`` is their absence."""
    import torch

    from seqbench.data.cache import cache_root
    from seqbench.data.folder import data_dir as data_folder
    from seqbench.models.layers.kernels import BACKENDS

    if backend not in BACKENDS:
        from seqbench.errors import ConfigError

        raise ConfigError(f"--backend {backend!r}: expected one of {', '.join(BACKENDS)}")
    problems: list[dict[str, str]] = []
    kernels = {**kernel_report(), "cpu_scan": cpu_scan_report()}
    gpus = gpu_report()
    check = None
    if kernels["usable"] and gpus and parity:
        check = parity_report(problems)
    kernel_problems(kernels, backend, bool(gpus), problems)
    return {
        "seqbench": seqbench.__version__,
        "python": {"version": platform.python_version(), "executable": sys.executable},
        "torch": {
            "version": torch.__version__,
            "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version()
            if torch.backends.cudnn.is_available()
            else None,
            "cuda_available": torch.cuda.is_available(),
        },
        "gpus": gpus,
        "kernels": kernels,
        "parity": check,
        "threads": thread_report(),
        "folders": {
            "cache": folder_report(cache_root(cache_dir)),
            "results": folder_report(results),
            "data": None if (folder := data_folder(data_dir)) is None else folder_report(folder),
        },
        "extras": extras_report(),
        "backend": backend,
        "problems": problems,
        "ok": not problems,
    }


# --------------------------------------------------------------------------- parts


def gpu_report() -> list[dict[str, Any]]:
    """Each CUDA device: name, compute capability, bf16, total and free memory (MiB)."""
    import torch

    if not torch.cuda.is_available():
        return []
    gpus = []
    for index in range(torch.cuda.device_count()):
        free, total = torch.cuda.mem_get_info(index)
        major, minor = torch.cuda.get_device_capability(index)
        gpus.append(
            {
                "index": index,
                "name": torch.cuda.get_device_name(index),
                "capability": f"{major}.{minor}",
                "bf16": major >= 8,
                "memory_total_mib": round(total / 2**20),
                "memory_free_mib": round(free / 2**20),
            }
        )
    return gpus


def kernel_report() -> dict[str, Any]:
    """Version and import status of each kernel package, and whether seqbench can use them."""
    from seqbench.models.layers.kernels import load_kernels

    packages = {}
    for distribution, module in KERNELS.items():
        version = _version(distribution)
        error = _import_error(module) if version is not None else None
        packages[distribution] = {
            "version": version,
            "imports": version is not None and error is None,
            "error": error,
        }
    loaded = load_kernels()
    return {
        "packages": packages,
        "usable": not isinstance(loaded, str),
        "error": loaded if isinstance(loaded, str) else None,
    }


def cpu_scan_report() -> dict[str, Any]:
    """The fused CPU scan (``SEQBENCH_CPU_SCAN``): the mode and what a float32 CPU scan runs
    ('compiled', or 'torch (why)'); building it if the mode allows (seconds, once)."""
    from seqbench.errors import ConfigError
    from seqbench.models.layers import scan_cpu

    try:
        chosen = scan_cpu.mode()
    except ConfigError as exc:
        return {"mode": None, "runs": None, "error": str(exc)}
    runs = scan_cpu.describe()
    error = None if runs == "compiled" or chosen == "torch" else runs
    return {"mode": chosen, "runs": runs, "error": error}


def parity_report(problems: list[dict[str, str]]) -> dict[str, Any]:
    """One block, fused kernels vs torch path, on GPU 0 (a problem when beyond tolerance)."""
    import torch

    from seqbench.parity import block_parity

    try:
        result = block_parity(torch.device("cuda")).to_json()
    except Exception as exc:  # a kernel that imports but cannot run on this GPU
        problems.append(
            {
                "problem": f"the fused kernels import but fail to run: {type(exc).__name__}: {exc}",
                "fix": _REBUILD,
            }
        )
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    if not result["ok"]:
        problems.append(
            {
                "problem": "the fused kernels disagree with seqbench's pure-PyTorch Mamba block: "
                + "; ".join(result["failures"]),
                "fix": _REBUILD,
            }
        )
    return result


_REBUILD = (
    "rebuild mamba-ssm and causal-conv1d against this torch and GPU (benchmarks/gpu/"
    "build_kernels.sh, docs/gpu.md), or run with --backend torch (pure PyTorch, same numbers)"
)


def kernel_problems(
    kernels: dict[str, Any], backend: str, has_gpu: bool, problems: list[dict[str, str]]
) -> None:
    """Kernels installed but broken; ``--backend mamba_ssm`` where it cannot run."""
    from seqbench.models.layers.kernels import INSTALL

    packages = kernels["packages"]
    installed = [d for d in ("mamba-ssm", "causal-conv1d") if packages[d]["version"]]
    missing = [d for d in ("mamba-ssm", "causal-conv1d") if not packages[d]["version"]]
    if installed and not kernels["usable"]:
        named = " and ".join(f"{d} {packages[d]['version']}" for d in installed)
        fix = f"install {' and '.join(missing)} too: {INSTALL}" if missing else _REBUILD
        problems.append(
            {
                "problem": f"{named} installed, but the kernels do not load: {kernels['error']}",
                "fix": fix,
            }
        )
    elif backend == "mamba_ssm" and not kernels["usable"]:
        problems.append(
            {
                "problem": "--backend mamba_ssm needs the fused kernels of "
                f"{' and '.join(missing)}, which are not installed",
                "fix": f"install them with: {INSTALL}",
            }
        )
    scan = kernels["cpu_scan"]
    if scan["mode"] is None or (scan["mode"] == "compiled" and scan["error"]):
        problems.append(
            {
                "problem": f"the fused CPU scan: {scan['error']}",
                "fix": "install a C++ compiler (or set CXX), or set SEQBENCH_CPU_SCAN=auto or "
                "torch (the pure-PyTorch scan: same numbers, slower)",
            }
        )
    if backend == "mamba_ssm" and not has_gpu:
        problems.append(
            {
                "problem": "--backend mamba_ssm needs a CUDA GPU, and torch sees none here",
                "fix": "run on a GPU machine with a CUDA build of torch, or use --backend torch",
            }
        )


def thread_report() -> dict[str, Any]:
    import torch

    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        usable = os.cpu_count()
    return {
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "cpus": os.cpu_count(),
        "cpus_usable": usable,
        **{name: os.environ.get(name) for name in THREAD_VARIABLES},
    }


def folder_report(path: Path) -> dict[str, Any]:
    """A folder, whether it exists, and the free disk where it is (or would be created)."""
    path = Path(path).expanduser().absolute()
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        free = round(shutil.disk_usage(probe).free / 2**30, 1)
    except OSError:
        free = None
    return {"path": str(path), "exists": path.exists(), "free_gib": free}


def extras_report() -> dict[str, Any]:
    """Each extra: its key packages with their versions (None: absent or not importable)."""
    out = {}
    for extra, modules in EXTRAS.items():
        found = {m: (_module_version(m) if _import_error(m) is None else None) for m in modules}
        out[extra] = {"packages": found, "installed": all(v is not None for v in found.values())}
    return out


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _module_version(module: str) -> str:
    version = getattr(sys.modules.get(module), "__version__", None)
    return str(version or _version(module.replace("_", "-")) or "installed")


def _import_error(module: str) -> str | None:
    """None when ``module`` imports, else why not (one line)."""
    try:
        importlib.import_module(module)
    except Exception as exc:  # ImportError, or OSError/RuntimeError from a broken build
        return f"{type(exc).__name__}: {exc}".splitlines()[0]
    return None
