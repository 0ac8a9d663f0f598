"""``seqbench data``: the dataset registry, "Table 1" statistics, download and cache."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from seqbench.cli.common import err, out, parse_key_values, reports_errors
from seqbench.data import folder
from seqbench.data.dataset import SequentialDataset, dataset_stats
from seqbench.data.load import DatasetSpec, load_dataset
from seqbench.data.protocol import Protocol
from seqbench.data.readers import READERS
from seqbench.data.registry import DATASETS
from seqbench.data.synthetic import SyntheticConfig
from seqbench.errors import ConfigError
from seqbench.progress import RichBars
from seqbench.validation import validate_options

app = typer.Typer(
    help="Datasets: the registry, statistics, download and cache.", no_args_is_help=True
)

# Options shared by `stats` and `prepare` (protocol options default to None = Protocol's default).
PathOpt = Annotated[
    Path | None,
    typer.Option("--path", help="Read a local file (or folder) instead of the registry's source."),
]
FileOpt = Annotated[
    str | None,
    typer.Option(
        "--file",
        help="Read this file of the data folder (DIR/FILE or DIR/<name>/FILE) instead of the "
        "registry's source.",
    ),
]
DataDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--data-dir", envvar="SEQBENCH_DATA_DIR", help="The data folder that --file is read from."
    ),
]
FormatOpt = Annotated[
    str | None,
    typer.Option("--format", "-f", help="Reader of --path (see `seqbench data formats`)."),
]
ReaderOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--option", "-o", metavar="KEY=VALUE", help="Reader or generator option (repeatable)."
    ),
]


def _knob(name: str) -> str:
    """Help text of a protocol option, from the Protocol field itself (one source of truth)."""
    field = Protocol.model_fields[name]
    default = "unset" if field.default is None else field.default
    return f"{field.description} (default: {default})."


KCoreOpt = Annotated[int | None, typer.Option("--k-core", help=_knob("k_core"))]
MaxLenOpt = Annotated[int | None, typer.Option("--max-len", help=_knob("max_len"))]
MinRatingOpt = Annotated[float | None, typer.Option("--min-rating", help=_knob("min_rating"))]
DedupOpt = Annotated[str | None, typer.Option("--dedup", help=_knob("dedup"))]
TimePrecisionOpt = Annotated[
    str | None, typer.Option("--time-precision", help=_knob("time_precision"))
]
TimeScalingOpt = Annotated[str | None, typer.Option("--time-scaling", help=_knob("time_scaling"))]
SplitOpt = Annotated[str | None, typer.Option("--split", help=_knob("split"))]
PaddingOpt = Annotated[str | None, typer.Option("--padding", help=_knob("padding"))]
CacheOpt = Annotated[
    Path | None,
    typer.Option(
        "--cache-dir", envvar="SEQBENCH_CACHE_DIR", help="Cache folder (default: user cache)."
    ),
]
MirrorOpt = Annotated[
    str | None,
    typer.Option("--mirror", envvar="SEQBENCH_MIRROR", help="Download <URL>/<file> instead."),
]
RefreshOpt = Annotated[
    bool, typer.Option("--refresh", help="Rebuild the processed data even if cached.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]


def _protocol(arguments: dict[str, Any]) -> Protocol:
    """The Protocol from a command's arguments named like its fields (unset ones: defaults)."""
    given = {k: arguments[k] for k in Protocol.model_fields if arguments.get(k) is not None}
    return validate_options(Protocol, given, "protocol")


def _data_folder_path(
    name: str, path: Path | None, file: str | None, data_dir: Path | None
) -> Path | None:
    """``--path``, or where ``--file`` is in the data folder (an error naming both if absent)."""
    if file is None:
        return path
    if path is not None:
        raise ConfigError("--path and --file: give one of them")
    bad = folder.file_problem(file)
    if bad is not None:
        raise ConfigError(f"--file {file!r}: expected {bad}")
    chosen = folder.data_dir(data_dir)
    found = folder.find(chosen, name, file)
    if found is None:
        raise ConfigError(
            f"--file {folder.not_found(chosen, name, file)}; expected "
            f"{folder.where_to_put(name, file)}"
        )
    return found


def _load(
    name: str,
    path: Path | None,
    fmt: str | None,
    options: list[str] | None,
    protocol: Protocol,
    cache_dir: Path | None,
    mirror: str | None,
    refresh: bool,
    quiet: bool,
) -> SequentialDataset:
    spec = DatasetSpec(
        name=name, path=path, format=fmt, options=parse_key_values(options, "--option")
    )
    bars = contextlib.nullcontext(None) if quiet else RichBars(err)
    with bars as b:
        return load_dataset(
            spec, protocol, cache_dir=cache_dir, mirror=mirror, bars=b, refresh=refresh
        )


@app.command("list")
@reports_errors
def list_datasets(json_: JsonOpt = False) -> None:
    """List the named datasets, their source and how their download is checked."""
    rows = []
    for entry in DATASETS.values():
        remote = entry.remote
        if remote is None:
            source, check = "generated", "content sha256"
        else:
            source = remote.url
            check = (
                f"{remote.known_hash.split(':')[0]} published"
                if remote.known_hash
                else "sha256 recorded on first download"
            )
        row: dict[str, Any] = {
            "name": entry.name,
            "format": entry.format,
            "source": source,
            "checksum": check,
            "summary": entry.summary,
            "terms": entry.terms,
        }
        if entry.format == "synthetic":
            row["options"] = SyntheticConfig().model_dump()
        rows.append(row)
    if json_:
        out.print_json(json.dumps(rows))
        return
    for r in rows:
        out.print(f"[bold]{r['name']}[/] ({r['format']}): {escape(r['summary'])}")
        out.print(f"  source: {r['source']} ({r['checksum']})", highlight=False)
        out.print(f"  terms: {escape(r['terms'])}", highlight=False)
        if "options" in r:
            opts = ", ".join(f"{k}={v}" for k, v in r["options"].items())
            out.print(f"  options (-o KEY=VALUE): {opts}", highlight=False)


@app.command("formats")
@reports_errors
def list_formats(json_: JsonOpt = False) -> None:
    """List the file formats (readers) and their options."""
    rows = [
        {"format": name, "summary": r.summary, "options": r.Options().model_dump()}
        for name, r in sorted(READERS.items())
    ]
    if json_:
        out.print_json(json.dumps(rows))
        return
    table = Table("format", "summary", "options (defaults)")
    for r in rows:
        opts = ", ".join(f"{k}={v!r}" for k, v in r["options"].items())
        table.add_row(r["format"], r["summary"], opts)
    out.print(table)


@app.command("stats")
@reports_errors
def stats(
    name: Annotated[str, typer.Argument(help="Registry name, or a label for --path.")],
    path: PathOpt = None,
    file: FileOpt = None,
    data_dir: DataDirOpt = None,
    fmt: FormatOpt = None,
    option: ReaderOpt = None,
    k_core: KCoreOpt = None,
    max_len: MaxLenOpt = None,
    min_rating: MinRatingOpt = None,
    dedup: DedupOpt = None,
    time_precision: TimePrecisionOpt = None,
    time_scaling: TimeScalingOpt = None,
    split: SplitOpt = None,
    padding: PaddingOpt = None,
    cache_dir: CacheOpt = None,
    mirror: MirrorOpt = None,
    refresh: RefreshOpt = False,
    json_: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Print a dataset's statistics under the protocol: users, items, interactions, lengths,
    density and train/valid/test samples (the "Table 1" of a paper).

    Examples:

      seqbench data stats synthetic

      seqbench data stats ml-100k --path ml-100k/ --format recbole --json

      seqbench data stats beauty --path Beauty.txt --format sequences --k-core 5

      seqbench data stats amazon-beauty --file Beauty.txt --format sequences --data-dir DIR
    """
    protocol = _protocol(locals())
    path = _data_folder_path(name, path, file, data_dir)
    ds = _load(name, path, fmt, option, protocol, cache_dir, mirror, refresh, quiet)
    result = dataset_stats(ds)
    if json_:
        out.print_json(json.dumps(result))
    else:
        _print_stats(result)


@app.command("prepare")
@reports_errors
def prepare(
    names: Annotated[list[str], typer.Argument(help="Registry names (or one label with --path).")],
    path: PathOpt = None,
    file: FileOpt = None,
    data_dir: DataDirOpt = None,
    fmt: FormatOpt = None,
    option: ReaderOpt = None,
    k_core: KCoreOpt = None,
    max_len: MaxLenOpt = None,
    min_rating: MinRatingOpt = None,
    dedup: DedupOpt = None,
    time_precision: TimePrecisionOpt = None,
    time_scaling: TimeScalingOpt = None,
    split: SplitOpt = None,
    padding: PaddingOpt = None,
    cache_dir: CacheOpt = None,
    mirror: MirrorOpt = None,
    refresh: RefreshOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Download (where needed), process and cache datasets, e.g. before going offline."""
    for given, flag in ((path, "--path"), (file, "--file")):
        if given is not None and len(names) > 1:
            raise ConfigError(f"{flag} reads one file: give one name (a label) with it")
    protocol = _protocol(locals())
    if names:
        path = _data_folder_path(names[0], path, file, data_dir)
    for name in names:
        ds = _load(name, path, fmt, option, protocol, cache_dir, mirror, refresh, quiet)
        cache = ds.provenance["cache"]
        state = "cached already" if cache["hit"] else "processed"
        out.print(
            f"{name}: {ds.n_interactions:,} interactions, {ds.n_users:,} users, "
            f"{ds.n_items:,} items — {state} in {cache['path']}",
            markup=False,
        )


def _print_stats(s: dict[str, Any]) -> None:
    src = s["source"]
    where = src.get("url") or src.get("file") or f"generator v{src.get('generator_version')}"
    out.print(
        f"[bold]{escape(s['dataset'])}[/]  {src['format']}: {escape(str(where))}  "
        f"(sha256 {src['sha256'][:12]}…)"
    )
    proto = ", ".join(f"{k}={v}" for k, v in s["protocol"].items() if k != "version")
    out.print(f"protocol v{s['protocol']['version']}: {proto}", markup=False)
    table = Table("", "raw", "processed")
    raw = s["raw"]
    table.add_row("users", f"{raw['users']:,}", f"{s['users']:,}")
    table.add_row("items", f"{raw['items']:,}", f"{s['items']:,}")
    table.add_row("interactions", f"{raw['interactions']:,}", f"{s['interactions']:,}")
    table.add_row("length avg / median", "", f"{s['avg_length']:.2f} / {s['median_length']:g}")
    table.add_row("length min / max", "", f"{s['min_length']:,} / {s['max_length']:,}")
    table.add_row("density", "", f"{s['density']:.4%}")
    for split in ("train", "valid", "test"):
        table.add_row(f"{split} samples", "", f"{s[f'{split}_samples']:,}")
    out.print(table)
    cache = s["cache"]
    out.print(f"cache: {'hit' if cache['hit'] else 'built'} ({cache['path']})", markup=False)
