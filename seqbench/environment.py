"""What machine and software produced a result (recorded in every result.json)."""

from __future__ import annotations

import datetime as dt
import platform
import socket
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import seqbench


@cache
def git_commit() -> str | None:
    """The commit of the seqbench checkout running, with ``-dirty`` if it has local edits."""
    source = Path(seqbench.__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(source), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit}-dirty" if dirty else commit


@cache
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


KERNEL_PACKAGES = ("mamba-ssm", "causal-conv1d", "triton")


def package_versions(names: tuple[str, ...] = KERNEL_PACKAGES) -> dict[str, str | None]:
    """Installed versions of the distributions ``names`` (None where one is not installed)."""
    import importlib.metadata

    found: dict[str, str | None] = {}
    for name in names:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def describe(device: Any = None) -> dict[str, Any]:
    """Versions, machine, device and date; ``device`` is a torch.device (or None)."""
    import numpy as np
    import torch

    from seqbench.models.layers import scan_cpu

    name = cpu_model()
    if device is not None and device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    return {
        "seqbench": seqbench.__version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "cuda": torch.version.cuda,
        "kernels": {**package_versions(), "cpu-scan": scan_cpu.status()},
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "device": str(device) if device is not None else "cpu",
        "device_name": name,
        "threads": torch.get_num_threads(),
        "git_commit": git_commit(),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "hostname": socket.gethostname(),
    }
