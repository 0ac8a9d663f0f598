"""Guarded access to the fused CUDA kernels of ``mamba_ssm`` and ``causal_conv1d``.

``mamba_ssm`` cannot even be imported without its compiled extension (model-reference §2.3), and
its kernels refuse CPU tensors, so seqbench never imports it at module level: this module tries
once, remembers why it failed, and turns a request for a missing kernel into an error that says
how to install it. Backends: ``torch`` (seqbench's own pure-PyTorch path, every device),
``mamba_ssm`` (the fused kernels, CUDA tensors only) and ``auto`` (the kernels when they import
and the device is CUDA, else torch), resolved once per cell so that the choice is recorded in
the result and the cell hash.
"""

from __future__ import annotations

import functools
from types import SimpleNamespace
from typing import Literal

from seqbench.errors import ConfigError

Backend = Literal["torch", "mamba_ssm"]
BACKENDS = ("auto", "torch", "mamba_ssm")

INSTALL = (
    'pip install --no-build-isolation "seqbench[cuda]"   (needs a CUDA toolchain matching '
    "torch's CUDA version, or prebuilt mamba-ssm/causal-conv1d wheels for your torch, CUDA and "
    "Python; see the README, section 'GPU kernels')"
)


@functools.cache
def load_kernels() -> SimpleNamespace | str:
    """The kernel functions, or the reason they cannot be used here (a message)."""
    try:
        from causal_conv1d import causal_conv1d_fn
        from mamba_ssm.ops.selective_scan_interface import mamba_inner_fn, selective_scan_fn
    except Exception as exc:  # ImportError, or OSError/RuntimeError from a broken build
        return f"{type(exc).__name__}: {exc}"
    return SimpleNamespace(
        causal_conv1d_fn=causal_conv1d_fn,
        selective_scan_fn=selective_scan_fn,
        mamba_inner_fn=mamba_inner_fn,
    )


def kernels_available() -> bool:
    return not isinstance(load_kernels(), str)


def require_kernels() -> SimpleNamespace:
    """The kernels, or a :class:`ConfigError` with the install command."""
    kernels = load_kernels()
    if isinstance(kernels, str):
        raise ConfigError(
            f"backend 'mamba_ssm' was requested but its kernels cannot be loaded ({kernels}); "
            f"install them with: {INSTALL}; or use --backend torch (pure PyTorch, any device); "
            "`seqbench doctor --backend mamba_ssm` checks the install"
        )
    return kernels


def resolve_backend(requested: str, device: str, uses_kernels: bool) -> Backend:
    """The backend a cell runs with: what ``requested`` means on ``device`` for a model that
    has (``uses_kernels``) or has not got Mamba blocks (the latter always run on torch)."""
    if requested not in BACKENDS:
        raise ConfigError(f"--backend {requested!r}: expected one of {', '.join(BACKENDS)}")
    if not uses_kernels or requested == "torch":
        return "torch"
    on_cuda = device.startswith("cuda")
    if requested == "auto":
        return "mamba_ssm" if on_cuda and kernels_available() else "torch"
    if not on_cuda:
        raise ConfigError(
            f"--backend mamba_ssm needs a CUDA device (the kernels refuse CPU tensors); "
            f"the device is {device!r}: use --backend torch or auto"
        )
    require_kernels()
    return "mamba_ssm"
