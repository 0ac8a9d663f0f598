"""``seqbench doctor``: can this install be trusted? A table, or ``--json`` for machines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from seqbench.cli.common import out, reports_errors
from seqbench.cli.validate import DataDirOption


@reports_errors
def doctor(
    json_: Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")] = False,
    backend: Annotated[
        str,
        typer.Option(help="The backend you mean to run: mamba_ssm makes missing kernels an error."),
    ] = "auto",
    cache_dir: Annotated[
        Path | None,
        typer.Option(help="Dataset cache (default: $SEQBENCH_CACHE_DIR or the user cache)."),
    ] = None,
    results: Annotated[Path, typer.Option("--results", "-r", help="Results root.")] = Path(
        "results"
    ),
    data_dir: DataDirOption = None,
) -> None:
    """Report Python, torch and CUDA, GPUs and free memory, the Mamba kernels (versions, import,
    a few-second parity check of one block against the pure-PyTorch path), threads, folders and
    free disk, and the optional extras.

    Exit status 1, with the fix printed, when the kernels are installed but do not load or
    disagree with the pure-PyTorch path, or when --backend mamba_ssm cannot run here.
    """
    from seqbench.doctor import report

    found = report(backend=backend, cache_dir=cache_dir, results=results, data_dir=data_dir)
    if json_:
        out.print_json(json.dumps(found))
    else:
        _print(found)
    if not found["ok"]:
        raise typer.Exit(1)


def _print(r: dict[str, Any]) -> None:
    table = Table("", "", "", show_header=False, show_edge=False, pad_edge=False)
    row = table.add_row
    torch = r["torch"]
    row("seqbench", r["seqbench"], "")
    row("python", f"{r['python']['version']}  ({r['python']['executable']})", "")
    cuda = f"CUDA {torch['cuda']}" if torch["cuda"] else "CPU build"
    row("torch", f"{torch['version']}  ({cuda}, cuDNN {torch['cudnn'] or '—'})", "")
    if not r["gpus"]:
        row("gpus", "none visible to torch", "")
    for gpu in r["gpus"]:
        row(
            f"gpu {gpu['index']}",
            f"{gpu['name']}, sm {gpu['capability']}, {gpu['memory_free_mib']:,} of "
            f"{gpu['memory_total_mib']:,} MiB free" + ("" if gpu["bf16"] else ", no bf16"),
            "",
        )
    for name, package in r["kernels"]["packages"].items():
        if package["version"] is None:
            row(name, "not installed", "")
        else:
            state = "ok" if package["imports"] else "[red]does not import[/]"
            detail = "" if package["imports"] else f"  {package['error']}"
            row(name, escape(f"{package['version']}{detail}"), state)
    scan = r["kernels"]["cpu_scan"]
    if scan["mode"] is None:
        row("cpu scan", escape(scan["error"]), "[red]FAIL[/]")
    else:
        state = "ok" if scan["runs"] == "compiled" else "—"
        row("cpu scan", escape(f"{scan['runs']}  (SEQBENCH_CPU_SCAN={scan['mode']})"), state)
    parity = r["parity"]
    if parity is None:
        why = "kernels not loaded" if not r["kernels"]["usable"] else "no GPU"
        row("parity", f"not run ({why})", "")
    elif "error" in parity:
        row("parity", escape(parity["error"]), "[red]FAIL[/]")
    else:
        text = (
            f"one block, {parity['backends'][1]} vs {parity['backends'][0]}: forward max |Δ| "
            f"{parity['forward_max_abs']:.2g} (≤ {parity['tolerances']['forward_max_abs']:g}), "
            f"gradients max rel Δ {parity['grad_max_rel_worst']:.2g} "
            f"(≤ {parity['tolerances']['grad_max_rel']:g}), {parity['seconds']:.1f} s"
        )
        row("parity", text, "ok" if parity["ok"] else "[red]FAIL[/]")
    threads = r["threads"]
    env = ", ".join(
        f"{k}={threads[k]}" for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS") if threads[k]
    )
    row(
        "threads",
        f"torch {threads['torch_threads']} (interop {threads['torch_interop_threads']}), "
        f"{threads['cpus_usable']} of {threads['cpus']} CPUs usable" + (f"; {env}" if env else ""),
        "",
    )
    for name, folder in r["folders"].items():
        if folder is None:
            row(f"{name} folder", "not set (--data-dir or SEQBENCH_DATA_DIR)", "")
            continue
        free = "?" if folder["free_gib"] is None else f"{folder['free_gib']:,} GiB free"
        exists = "" if folder["exists"] else " (not created yet)"
        row(f"{name} folder", escape(f"{folder['path']}{exists}, {free}"), "")
    for extra, info in r["extras"].items():
        shown = ", ".join(f"{m} {v}" if v else f"{m} missing" for m, v in info["packages"].items())
        row(escape(f"extra [{extra}]"), escape(shown), "ok" if info["installed"] else "—")
    out.print(table)
    for problem in r["problems"]:
        out.print(f"[bold red]problem:[/] {escape(problem['problem'])}", highlight=False)
        out.print(f"  fix: {escape(problem['fix'])}", highlight=False)
    if r["ok"]:
        out.print(f"no problem found (backend {r['backend']})", highlight=False)
