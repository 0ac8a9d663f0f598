"""Check that the fused kernels import, run on this GPU and agree with their references.

    python benchmarks/gpu/check_kernels.py [--out .gpu/build/check.json] [--relax-init]
    python benchmarks/gpu/check_kernels.py --only causal-conv1d   # before mamba-ssm is built

Imports ``causal_conv1d`` (and its extension ``causal_conv1d_cuda``), ``selective_scan_cuda`` and
``mamba_ssm.ops.selective_scan_interface`` (the functions seqbench calls), prints their versions,
then runs each kernel once on small inputs and compares it with the package's own pure-PyTorch
reference (``causal_conv1d_ref``, ``selective_scan_ref``): a build for the wrong architecture
fails here ("no kernel image is available"), not in the middle of a benchmark.

``--relax-init``: if ``import mamba_ssm`` fails in its optional model imports (Mamba2, Mamba3,
MambaLMHeadModel: triton, transformers, huggingface_hub versions) while ``selective_scan_cuda``
itself imports, patch the installed ``mamba_ssm/__init__.py`` to make those imports non-fatal
(benchmarks/gpu/patch_arch.py ``relax_init``; the kernels are untouched) and try again.

Exit status: 0 all good, 1 a check failed, 2 no CUDA device.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import importlib.util
import json
import sys
import traceback
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TOLERANCE = 1e-4  # max abs difference of a kernel from its reference (fp32, small inputs)


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _relax_installed_init() -> str:
    spec = importlib.util.find_spec("mamba_ssm")  # finds the package without importing it
    if spec is None or spec.origin is None:
        raise RuntimeError("mamba_ssm is not installed")
    sys.path.insert(0, str(HERE))
    from patch_arch import relax_init

    init = Path(spec.origin)
    init.write_text(relax_init(init.read_text(encoding="utf-8")), encoding="utf-8")
    return str(init)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--relax-init", action="store_true")
    parser.add_argument(
        "--only", choices=("causal-conv1d",), help="check causal-conv1d alone (built first)"
    )
    args = parser.parse_args()
    import torch

    report: dict[str, Any] = {
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "versions": {d: _version(d) for d in ("mamba-ssm", "causal-conv1d", "triton")},
        "checks": {},
    }
    if not torch.cuda.is_available():
        print("check_kernels: no CUDA device (torch.cuda.is_available() is False)", file=sys.stderr)
        return 2
    report["device"] = torch.cuda.get_device_name(0)
    report["capability"] = ".".join(map(str, torch.cuda.get_device_capability(0)))
    checks = report["checks"]

    def attempt(name: str, fn: Any) -> Any:
        try:
            value = fn()
        except Exception as exc:
            checks[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            print(f"  FAIL {name}: {type(exc).__name__}: {exc}")
            traceback.print_exc(limit=3)
            return None
        checks[name] = {"ok": True, **(value if isinstance(value, dict) else {})}
        print(f"  ok   {name} {value if isinstance(value, dict) else ''}")
        return value

    attempt("import causal_conv1d_cuda", lambda: importlib.import_module("causal_conv1d_cuda"))
    attempt("import causal_conv1d", lambda: importlib.import_module("causal_conv1d"))
    mamba = args.only is None
    interface = "mamba_ssm.ops.selective_scan_interface"
    if mamba:
        attempt(
            "import selective_scan_cuda", lambda: importlib.import_module("selective_scan_cuda")
        )
        ok = attempt(f"import {interface}", lambda: importlib.import_module(interface))
    if mamba and ok is None and args.relax_init and checks["import selective_scan_cuda"]["ok"]:
        print("check_kernels: relaxing mamba_ssm/__init__.py's optional imports and retrying")
        where = attempt("relax mamba_ssm/__init__.py", lambda: {"file": _relax_installed_init()})
        if where is not None:
            for name in [m for m in sys.modules if m == "mamba_ssm" or m.startswith("mamba_ssm.")]:
                del sys.modules[name]
            attempt(f"import {interface} (relaxed)", lambda: importlib.import_module(interface))

    def conv() -> dict[str, float]:
        from causal_conv1d.causal_conv1d_interface import causal_conv1d_fn, causal_conv1d_ref

        g = torch.Generator(device="cuda").manual_seed(0)
        x = torch.randn(4, 128, 50, device="cuda", generator=g)
        w = torch.randn(128, 4, device="cuda", generator=g)
        b = torch.randn(128, device="cuda", generator=g)
        out = causal_conv1d_fn(x, w, b, activation="silu")
        ref = causal_conv1d_ref(x, w, b, activation="silu")
        diff = float((out - ref).abs().max())
        if not diff <= TOLERANCE:
            raise AssertionError(f"max abs diff {diff:.3g} > {TOLERANCE}")
        return {"max_abs_diff": diff}

    def scan() -> dict[str, float]:
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn, selective_scan_ref

        g = torch.Generator(device="cuda").manual_seed(0)
        u = torch.randn(4, 128, 50, device="cuda", generator=g)
        delta = torch.rand(4, 128, 50, device="cuda", generator=g) * 0.1
        A = -torch.rand(128, 16, device="cuda", generator=g) - 0.5
        B = torch.randn(4, 16, 50, device="cuda", generator=g)
        C = torch.randn(4, 16, 50, device="cuda", generator=g)
        D = torch.randn(128, device="cuda", generator=g)
        out = selective_scan_fn(u, delta, A, B, C, D, delta_softplus=True)
        ref = selective_scan_ref(u, delta, A, B, C, D, delta_softplus=True)
        diff = float((out - ref).abs().max())
        if not diff <= TOLERANCE:
            raise AssertionError(f"max abs diff {diff:.3g} > {TOLERANCE}")
        return {"max_abs_diff": diff}

    attempt("causal_conv1d_fn vs causal_conv1d_ref", conv)
    if mamba:
        attempt("selective_scan_fn vs selective_scan_ref", scan)
    for module in ("mamba_ssm", "causal_conv1d"):
        if module in sys.modules:
            report["versions"][module + ".__version__"] = getattr(
                sys.modules[module], "__version__", None
            )
    failed = [name for name, check in checks.items() if not check["ok"]]
    if checks.get(f"import {interface} (relaxed)", {}).get("ok"):
        failed.remove(f"import {interface}")  # the relaxed import replaced it
    report["failed"] = failed
    report["ok"] = not failed
    print(json.dumps({k: v for k, v in report.items() if k != "checks"}))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
