"""The fused CPU loops of the selective scan (``scan_cpu.cpp``), compiled on first use.

The pure-PyTorch scan (:mod:`seqbench.models.layers.selective_scan`) is bound by memory passes
over its (slots, N, D) decay tensors on a CPU; ``scan_cpu.cpp`` computes each decay once and uses
it in registers (issue 15). It is plain C++ (no torch headers): the first float32 CPU scan
compiles it with the system's C++ compiler (``$CXX`` or ``c++``; ``-O3 -march=native``, a few
seconds) into ``$SEQBENCH_KERNEL_DIR`` (default: ``kernels/`` in the user cache), keyed by the
source, the flags, the compiler and the CPU, under a file lock so that concurrent cells build it
once; it is called through ctypes on the tensors' memory. Same numbers as the PyTorch
path within float rounding, whatever the thread count; cell hashes do not depend on it.

``SEQBENCH_CPU_SCAN`` chooses: ``auto`` (default: the compiled loops where they build, else the
PyTorch path, with one warning saying why), ``torch`` (always the PyTorch path: nothing is
compiled) or ``compiled`` (an error where they do not build). ``seqbench doctor`` reports which
one a run gets; every result records it in its environment.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import re
import shlex
import subprocess
import warnings
from pathlib import Path

import torch
from torch import Tensor

from seqbench import atomic
from seqbench.errors import ConfigError

SOURCE = Path(__file__).with_name("scan_cpu.cpp")
ENV = "SEQBENCH_CPU_SCAN"
KERNEL_DIR_ENV = "SEQBENCH_KERNEL_DIR"
MODES = ("auto", "torch", "compiled")
FLAGS = ["-std=c++17", "-O3", "-march=native", "-fopenmp-simd", "-shared", "-fPIC", "-pthread"]
_I64, _I32, _PTR = ctypes.c_int64, ctypes.c_int32, ctypes.c_void_p


def mode() -> str:
    """``SEQBENCH_CPU_SCAN``, checked."""
    value = os.environ.get(ENV, "auto").strip().lower() or "auto"
    if value not in MODES:
        raise ConfigError(f"{ENV}={value!r}: expected one of {', '.join(MODES)}")
    return value


class CompiledScan:
    """The compiled entry points over torch tensors: outputs allocated here, inputs expected
    float32 (int64 ``last``), contiguous, on the CPU and checked by the caller."""

    def __init__(self, library: ctypes.CDLL, source: str) -> None:
        self.lib = library
        self.readout_block = _constant(source, "kReadoutBlock")
        self.every_slot_block = _constant(source, "kEverySlotBlock")
        self.lib.seqbench_readout_forward.argtypes = [_PTR] * 8 + [_I64] * 5
        self.lib.seqbench_readout_backward.argtypes = [_PTR] * 9 + [_I32] + [_PTR] * 5 + [_I64] * 5
        self.lib.seqbench_every_slot_forward.argtypes = [_PTR] * 7 + [_I64] * 5
        self.lib.seqbench_every_slot_backward.argtypes = (
            [_PTR] * 8 + [_I32] + [_PTR] * 5 + [_I64] * 5
        )

    def readout_forward(
        self, u: Tensor, dt: Tensor, B: Tensor, C_last: Tensor, last: Tensor, a2: Tensor, D: Tensor
    ) -> Tensor:
        y = u.new_empty(u.shape[0], u.shape[2])
        self.lib.seqbench_readout_forward(
            *_pointers(u, dt, B, C_last, last, a2, D, y), *_sizes(u, a2)
        )
        return y

    def readout_backward(
        self, u: Tensor, dt: Tensor, B: Tensor, C_last: Tensor, last: Tensor, a2: Tensor,
        A_t: Tensor, D: Tensor, grad_y: Tensor, softplus: bool,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:  # fmt: skip
        grads = [torch.empty_like(u), torch.empty_like(u), torch.empty_like(B)]
        grad_c = torch.empty_like(C_last)
        partial = u.new_zeros(_blocks(u.shape[0], self.readout_block), *a2.shape)
        self.lib.seqbench_readout_backward(
            *_pointers(u, dt, B, C_last, last, a2, A_t, D, grad_y), int(softplus),
            *_pointers(*grads, grad_c, partial), *_sizes(u, a2),
        )  # fmt: skip
        return grads[0], grads[1], grads[2], grad_c, partial.sum(0)

    def every_slot_forward(
        self, u: Tensor, dt: Tensor, B: Tensor, C: Tensor, a2: Tensor, D: Tensor
    ) -> Tensor:
        y = torch.empty_like(u)
        self.lib.seqbench_every_slot_forward(*_pointers(u, dt, B, C, a2, D, y), *_sizes(u, a2))
        return y

    def every_slot_backward(
        self, u: Tensor, dt: Tensor, B: Tensor, C: Tensor, a2: Tensor, A_t: Tensor, D: Tensor,
        grad_y: Tensor, softplus: bool,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:  # fmt: skip
        grads = [torch.empty_like(u), torch.empty_like(u), torch.empty_like(B), torch.empty_like(C)]
        partial = u.new_zeros(_blocks(u.shape[0], self.every_slot_block), *a2.shape)
        self.lib.seqbench_every_slot_backward(
            *_pointers(u, dt, B, C, a2, A_t, D, grad_y), int(softplus),
            *_pointers(*grads, partial), *_sizes(u, a2),
        )  # fmt: skip
        return grads[0], grads[1], grads[2], grads[3], partial.sum(0)


def _pointers(*tensors: Tensor) -> list[int]:
    for t in tensors:
        if not t.is_contiguous() or t.device.type != "cpu":
            raise ValueError("the compiled scan needs contiguous CPU tensors")
    return [t.data_ptr() for t in tensors]


def _sizes(u: Tensor, a2: Tensor) -> tuple[int, ...]:
    rows, length, channels = u.shape
    return rows, length, channels, a2.shape[0], torch.get_num_threads()


def _blocks(rows: int, block: int) -> int:
    return max(1, -(-rows // block))


def _constant(source: str, name: str) -> int:
    found = re.search(rf"constexpr int64_t {name} = (\d+);", source)
    if found is None:
        raise RuntimeError(f"{SOURCE.name} does not define {name}")
    return int(found.group(1))


def _compiler() -> list[str]:
    return shlex.split(os.environ.get("CXX", "c++"))


def _library_path(source: bytes) -> Path:
    """Where the build for this source, compiler, flags and CPU lives in :func:`kernel_dir`."""
    version = subprocess.run(
        [*_compiler(), "--version"], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    key = hashlib.sha256()
    for part in (source, " ".join(FLAGS).encode(), version.encode(), _cpu_flags().encode()):
        key.update(part)
        key.update(b"\0")
    return kernel_dir() / f"scan_cpu-{key.hexdigest()[:16]}.so"


def kernel_dir() -> Path:
    """``$SEQBENCH_KERNEL_DIR``, else ``kernels/`` in the user cache (e.g. ~/.cache/seqbench):
    one build per machine, apart from the datasets' ``$SEQBENCH_CACHE_DIR``."""
    env = os.environ.get(KERNEL_DIR_ENV)
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("seqbench")) / "kernels"


def _cpu_flags() -> str:
    """The CPU's model and feature flags (-march=native builds for them), where Linux tells."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.machine() + platform.processor()
    lines = [line for line in info.splitlines() if line.startswith(("model name", "flags"))]
    return platform.machine() + "\n".join(sorted(set(lines)))


@functools.cache
def _build() -> CompiledScan | str:
    """The compiled loops, or why they could not be built or loaded (a message)."""
    from filelock import FileLock

    try:
        source = SOURCE.read_bytes()
        library = _library_path(source)
        library.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(library) + ".lock"):
            if not library.exists():
                partial = atomic.temporary_path(library)
                done = subprocess.run(
                    [*_compiler(), *FLAGS, str(SOURCE), "-o", str(partial)],
                    capture_output=True, text=True, check=False, timeout=600,
                )  # fmt: skip
                if done.returncode:
                    partial.unlink(missing_ok=True)
                    raise RuntimeError(f"{_compiler()[0]} failed: {done.stderr.strip()[-600:]}")
                partial.replace(library)
        return CompiledScan(ctypes.CDLL(str(library)), source.decode())
    except Exception as exc:  # no compiler, a failed build, an unwritable cache, a bad library
        text = " ".join(str(exc).split())
        return f"{type(exc).__name__}: {text[:600]}"


def kernels() -> CompiledScan | None:
    """The compiled loops when the mode allows and they build; None for the PyTorch path."""
    chosen = mode()
    if chosen == "torch":
        return None
    built = _build()
    if isinstance(built, str):
        if chosen == "compiled":
            raise ConfigError(
                f"{ENV}=compiled but the fused CPU scan does not build here ({built}); it needs a "
                f"C++ compiler (c++ on PATH, or $CXX); or set {ENV}=auto or torch"
            )
        _warn_once(built)
        return None
    return built


def usable(*tensors: Tensor) -> CompiledScan | None:
    """The compiled loops if they apply to these tensors (float32, CPU), else None."""
    if any(t.device.type != "cpu" or t.dtype != torch.float32 for t in tensors):
        return None
    return kernels()


def describe() -> str:
    """What a float32 CPU scan runs here: 'compiled', 'torch (SEQBENCH_CPU_SCAN=torch)' or
    'torch (<why the build failed>)'; for ``seqbench doctor`` and the result's environment."""
    chosen = mode()
    if chosen == "torch":
        return f"torch ({ENV}=torch)"
    built = _build()
    return f"torch ({built})" if isinstance(built, str) else "compiled"


def status() -> str | None:
    """What this process's float32 CPU scans ran on, without building anything: 'compiled',
    'torch (<why>)', or None where none has asked yet (no Mamba model, or not on the CPU).
    Recorded as ``environment.kernels["cpu-scan"]`` in every result."""
    try:
        chosen = mode()
    except ConfigError as exc:
        return str(exc)
    if chosen == "torch":
        return f"torch ({ENV}=torch)"
    if not _build.cache_info().currsize:
        return None
    return describe()


@functools.cache
def _warn_once(why: str) -> None:
    warnings.warn(
        f"the fused CPU scan could not be built ({why}); the Mamba models use the slower "
        f"pure-PyTorch scan (same numbers). Install a C++ compiler, or set {ENV}=torch "
        "to silence this",
        RuntimeWarning,
        stacklevel=3,
    )
