"""Make the setup.py of mamba-ssm / causal-conv1d compile for one GPU architecture only.

Both setup.py files build a fixed list of ``-gencode arch=compute_XX,code=sm_XX`` pairs (sm_75 up
to sm_121, depending on nvcc's version) whatever TORCH_CUDA_ARCH_LIST says, and torch's
cpp_extension then adds none of its own (it skips its arch flags when the extension already has
some). Compiling nine architectures of the selective-scan kernels takes an hour or more; one
takes minutes. This module rewrites the list:

* every ``cc_flag.append("-gencode")`` line directly followed by
  ``cc_flag.append("arch=compute_XX,code=sm_XX")`` becomes ``pass`` (so the ``if`` blocks around
  them stay valid Python);
* the local pair is added right after the one ``cc_flag = []`` line;
* the result must parse, and ``arch=compute_`` must then appear exactly once (ours).

Any other layout (a loop over architectures, f-strings, a second ``cc_flag = []``, no pair at all)
is refused with :class:`PatchError` naming what was not found: a silent no-op would build all
architectures again, and a half-patched file could drop ours.

``relax_init`` is the fallback for a ``mamba_ssm/__init__.py`` whose convenience imports
(Mamba2, Mamba3, MambaLMHeadModel: triton, transformers, huggingface_hub) fail on a machine,
which makes ``import mamba_ssm.ops.selective_scan_interface`` fail too: it wraps those imports
in ``try``/``except Exception``. The kernels and the Mamba (v1) interface are untouched.

    python benchmarks/gpu/patch_arch.py SETUP_PY --arch 90 [--cxx-std 20] [--dry-run]
    python benchmarks/gpu/patch_arch.py --detect        # prints the local GPU's arch, e.g. 90
    python benchmarks/gpu/patch_arch.py --relax-init PATH/mamba_ssm/__init__.py
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path

MARK = "seqbench"
GENCODE = re.compile(
    r"^(?P<indent>[ \t]*)cc_flag\.append\(\s*[\"']-gencode[\"']\s*\)[ \t]*\n"
    r"(?P=indent)cc_flag\.append\(\s*[\"']arch=compute_(?P<arch>\w+),code=(?P<code>\w+)[\"']\s*\)"
    r"[ \t]*$",
    re.MULTILINE,
)
EMPTY = re.compile(r"^(?P<indent>[ \t]*)cc_flag\s*=\s*\[\s*\][ \t]*$", re.MULTILINE)
STD = re.compile(r"-std=c\+\+17")
OPTIONAL_IMPORTS = (
    "from mamba_ssm.modules.mamba2 import Mamba2",
    "from mamba_ssm.modules.mamba3 import Mamba3",
    "from mamba_ssm.models.mixer_seq_simple import MambaLMHeadModel",
)


class PatchError(RuntimeError):
    """The file does not have the layout this patch knows; nothing was changed."""


def check_arch(arch: str) -> str:
    """'90', '9.0', 'sm_90' or '90a' → '90' / '90a' (what follows compute_ and sm_)."""
    text = arch.strip().lower().removeprefix("sm_").removeprefix("compute_")
    if re.fullmatch(r"\d+\.\d+", text):
        major, minor = text.split(".")
        text = f"{major}{minor}"
    if not re.fullmatch(r"\d{2,3}a?", text):
        raise PatchError(f"architecture {arch!r}: expected e.g. 90, 9.0, sm_90 or 90a")
    return text


def patch_setup(text: str, arch: str, cxx_std: str | None = None) -> str:
    """``text`` (a setup.py) compiling for ``arch`` only; :class:`PatchError` if not possible."""
    arch = check_arch(arch)
    if MARK + ": local GPU only" in text:
        raise PatchError("this setup.py was already patched (unpack the sdist afresh)")
    empties = EMPTY.findall(text)
    if len(empties) != 1:
        raise PatchError(
            f"expected exactly one 'cc_flag = []' line, found {len(empties)}: the setup.py "
            "layout changed; read its arch flags and update benchmarks/gpu/patch_arch.py"
        )
    pairs = list(GENCODE.finditer(text))
    if not pairs:
        raise PatchError(
            "no 'cc_flag.append(\"-gencode\")' + 'cc_flag.append(\"arch=compute_XX,code=sm_XX\")' "
            "pairs found: the setup.py layout changed; update benchmarks/gpu/patch_arch.py"
        )
    dropped = [m.group("arch") for m in pairs]
    patched = GENCODE.sub(
        lambda m: f"{m.group('indent')}pass  # {MARK}: dropped sm_{m.group('arch')}", text
    )
    stray = patched.count("arch=compute_")
    if stray:
        raise PatchError(
            f"{stray} 'arch=compute_' occurrence(s) outside the recognised pairs remain: the "
            "setup.py adds architectures some other way; update benchmarks/gpu/patch_arch.py"
        )
    local = f'["-gencode", "arch=compute_{arch},code=sm_{arch}"]'
    patched = EMPTY.sub(
        lambda m: (
            f"{m.group(0)}\n{m.group('indent')}cc_flag += {local}  # {MARK}: local GPU only "
            f"(was: {', '.join('sm_' + a for a in dropped)})"
        ),
        patched,
    )
    if cxx_std is not None:
        if not re.fullmatch(r"\d\d", cxx_std):
            raise PatchError(f"--cxx-std {cxx_std!r}: expected e.g. 17 or 20")
        if not STD.search(patched):
            raise PatchError("no '-std=c++17' flag to replace in this setup.py")
        patched = STD.sub(f"-std=c++{cxx_std}", patched)
    try:
        ast.parse(patched)
    except SyntaxError as exc:
        raise PatchError(f"the patched setup.py does not parse ({exc})") from None
    if patched.count(f"arch=compute_{arch},code=sm_{arch}") != 1:
        raise PatchError("the local architecture did not end up in the file exactly once")
    return patched


def relax_init(text: str) -> str:
    """``mamba_ssm/__init__.py`` with its optional model imports made non-fatal."""
    if f"# {MARK}: optional" in text:
        return text
    found = [line for line in OPTIONAL_IMPORTS if re.search(rf"^{re.escape(line)}\s*$", text, re.M)]
    if not found:
        raise PatchError(
            "none of the expected imports (Mamba2, Mamba3, MambaLMHeadModel) is in this "
            "mamba_ssm/__init__.py: its layout changed"
        )
    for line in found:
        name = line.rsplit(" ", 1)[-1]
        text = re.sub(
            rf"^{re.escape(line)}\s*$",
            f"try:  # {MARK}: optional\n    {line}\nexcept Exception:\n    {name} = None",
            text,
            count=1,
            flags=re.M,
        )
    ast.parse(text)
    return text


def detect_arch() -> str:
    """The compute capability of CUDA device 0 as 'XY' (e.g. '90'); PatchError without CUDA."""
    import torch

    if not torch.cuda.is_available():
        raise PatchError("torch sees no CUDA device here (torch.cuda.is_available() is False)")
    major, minor = torch.cuda.get_device_capability(0)
    return f"{major}{minor}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("file", nargs="?", type=Path, help="setup.py (or __init__.py)")
    parser.add_argument("--arch", help="e.g. 90 (H100/H200), 80 (A100); default: detect")
    parser.add_argument("--cxx-std", help="replace -std=c++17 by -std=c++NN (e.g. 20)")
    parser.add_argument("--dry-run", action="store_true", help="print the result, write nothing")
    parser.add_argument("--detect", action="store_true", help="print the local GPU's arch")
    parser.add_argument("--relax-init", action="store_true", help="FILE is mamba_ssm/__init__.py")
    args = parser.parse_args(argv)
    try:
        if args.detect:
            print(detect_arch())
            return 0
        if args.file is None:
            parser.error("FILE is required")
        text = args.file.read_text(encoding="utf-8")
        if args.relax_init:
            new = relax_init(text)
        else:
            new = patch_setup(text, args.arch or detect_arch(), args.cxx_std)
    except PatchError as exc:
        where = f"{args.file}: " if args.file else ""
        print(f"patch_arch: {where}{exc}", file=sys.stderr)
        return 1
    if args.dry_run:
        sys.stdout.write(new)
    else:
        args.file.write_text(new, encoding="utf-8")
        changed = [line for line in new.splitlines() if MARK + ":" in line]
        print(f"patch_arch: {args.file}: {len(changed)} line(s) marked '{MARK}:'")
        for line in changed:
            print("    " + line.strip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
