"""``[[datasets]]``: each entry's shape, name or file, format, reader options, protocol overrides
and item text; dataset names unique (each names a results folder)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from seqbench.data import folder
from seqbench.data.load import SYNTHETIC, DatasetSpec
from seqbench.data.protocol import Protocol
from seqbench.data.readers import READERS
from seqbench.data.registry import DATASETS
from seqbench.data.synthetic import SyntheticConfig
from seqbench.errors import closest
from seqbench.suite.context import Context
from seqbench.suite.locator import KeyPath
from seqbench.suite.problems import Problem, show
from seqbench.suite.resolved import DatasetPlan
from seqbench.suite.schemas import DatasetSection, expectations
from seqbench.text.sources import TextSpec


def check_datasets(ctx: Context) -> list[tuple[int, DatasetPlan]]:
    """Every good ``[[datasets]]`` entry, with its index, resolved."""
    protocol: dict[str, Any] = ctx.resolved["protocol"]
    datasets = [
        d
        for i, entry in ctx.array("datasets")
        if (d := _dataset(ctx, i, entry, protocol)) is not None
    ]
    _unique_names(ctx, datasets)
    return datasets


def _dataset(
    ctx: Context, i: int, entry: dict[str, Any], protocol: dict[str, Any]
) -> tuple[int, DatasetPlan] | None:
    where: KeyPath = ("datasets", i)
    problems = ctx.problems
    ok = len(problems)
    section = problems.validate(DatasetSection, entry, where, expectations("datasets"))
    if not isinstance(section, DatasetSection):
        return None
    registered = DATASETS.get(section.name)
    formats = sorted([*READERS, SYNTHETIC])
    fmt = section.format
    if fmt is not None and fmt not in formats:
        problems.add(
            (*where, "format"),
            f"unknown format {fmt!r}",
            f"one of {', '.join(formats)}",
            closest(fmt, formats),
        )
    local = section.path is not None or section.file is not None
    path = None
    missing = None
    if not local:
        if registered is None and "path" not in entry and "file" not in entry:
            problems.add(
                (*where, "name"),
                f"unknown dataset {section.name!r}",
                f"a registered dataset ({', '.join(sorted(DATASETS))}) or a local file "
                'given by path = "…" and format = "…"',
                closest(section.name, DATASETS),
            )
        fmt = fmt or (registered.format if registered else None)
        path = _local_copy(ctx, section.name, registered)
    else:
        if section.path is not None:
            key = "path"
            path = Path(os.path.normpath(ctx.folder / Path(section.path).expanduser()))
            if not path.exists():
                problems.add(
                    (*where, "path"),
                    f"{section.path!r} does not exist (looked for {path})",
                    "an existing file or folder (a relative path starts at the suite "
                    "file's folder)",
                )
        else:
            key = "file"
            path, missing = _data_folder_file(ctx, section, where)
        fmt = fmt or (registered.format if registered else None)
        if fmt is None:
            problems.add(
                (*where, "format"),
                "missing",
                f"the format of {'the file at path' if key == 'path' else 'the file'} "
                f"(one of {', '.join(sorted(READERS))})",
            )
        elif fmt == SYNTHETIC:
            problems.add(
                (*where, key),
                "the synthetic dataset is generated and reads no file",
                f"no {key} (or a reader format)",
            )
    _check_file_keys(ctx, section, where)
    _check_options(ctx, section, fmt, local, registered, where)
    overrides = ctx.protocol_overrides(section.protocol, protocol, (*where, "protocol"))
    text = None
    if section.text is not None:
        text = _text(ctx, section.text, fmt, local, registered, (*where, "text"))
    if len(problems) > ok:
        return None
    spec = DatasetSpec(
        name=section.name,
        path=path,
        file=section.file,
        format=section.format,
        options=section.options,
        text=text,
    )
    resolved = Protocol.model_validate({**protocol, **overrides})
    return i, DatasetPlan(spec=spec, protocol=resolved, overrides=overrides, missing=missing)


def _local_copy(ctx: Context, name: str, registered: Any) -> Path | None:
    """A data-folder copy of a registry dataset's file, used instead of its download: only for
    entries that pin the file's sha256 (checked when it is read), so that both give the same
    bytes and the same cell hashes."""
    remote = registered.remote if registered is not None else None
    local_name = remote.local_name() if remote is not None else None
    return folder.find(ctx.data_dir, name, local_name) if local_name else None


def _data_folder_file(
    ctx: Context, section: DatasetSection, where: KeyPath
) -> tuple[Path | None, str | None]:
    """(where ``file`` is in the data folder, None) or (None, what to do while it is missing).

    A missing file is no problem of the suite: it validates, and says what is still needed;
    ``load_suite(..., require_data=True)`` (``seqbench run``) stops on it.
    """
    assert section.file is not None
    bad = folder.file_problem(section.file)
    if bad is not None:
        ctx.problems.add((*where, "file"), f"got {show(section.file)}", bad)
        return None, None
    found = folder.find(ctx.data_dir, section.name, section.file)
    if found is not None:
        return found, None
    at: KeyPath = (*where, "file")
    expected = folder.where_to_put(section.name, section.file)
    if section.fetch:
        expected += f"; get it from: {section.fetch}"
    problem = folder.not_found(ctx.data_dir, section.name, section.file)
    line = ctx.problems.locator.line(at)
    return None, Problem(at, problem, expected, None, line).render(ctx.file)


def _check_file_keys(ctx: Context, section: DatasetSection, where: KeyPath) -> None:
    """``path`` and ``file`` exclude each other; ``fetch`` belongs to ``file``."""
    if section.path is not None and section.file is not None:
        ctx.problems.add(
            (*where, "file"),
            "both path and file are set",
            "one of them: path = a file relative to the suite file, or file = a file in the "
            "data folder",
        )
    if section.fetch is not None and section.file is None:
        ctx.problems.add(
            (*where, "fetch"),
            "fetch says where to get the data-folder file, and this entry has no file",
            'file = "…" (or no fetch)',
        )


def _check_options(
    ctx: Context,
    section: DatasetSection,
    fmt: str | None,
    local: bool,
    registered: Any,
    where: KeyPath,
) -> None:
    """The reader's (or generator's) options, on top of the registry entry's own."""
    if fmt == SYNTHETIC:
        schema: type[BaseModel] | None = SyntheticConfig
        defaults: dict[str, Any] = {}
    elif fmt in READERS:
        schema = READERS[fmt].Options
        same = registered is not None and not local and fmt == registered.format
        defaults = dict(registered.options) if same and registered else {}
    else:
        schema, defaults = None, {}
    if schema is not None:
        try:
            schema.model_validate({**defaults, **section.options}, strict=True)
        except ValidationError as exc:
            ctx.problems.add_errors(exc, (*where, "options"), schema.model_fields)


def _text(
    ctx: Context,
    values: dict[str, Any],
    fmt: str | None,
    local: bool,
    registered: Any,
    where: KeyPath,
) -> TextSpec | None:
    """A dataset's ``text`` table: its shape, and every file it names exists (relative
    paths start at the suite's folder). Without a path, a ``member`` is read from the
    dataset's own download (a registered zip archive)."""
    problems = ctx.problems
    if fmt == SYNTHETIC:
        problems.add(
            where,
            "the synthetic dataset generates its own item text",
            "no text table (the generator's option text = true/false decides)",
        )
        return None
    resolved = dict(values)
    for key in ("path", "embeddings", "ids"):
        if isinstance(resolved.get(key), str):
            file = Path(os.path.normpath(ctx.folder / Path(resolved[key]).expanduser()))
            if not file.exists():
                problems.add(
                    (*where, key),
                    f"{resolved[key]!r} does not exist (looked for {file})",
                    "an existing file (a relative path starts at the suite file's folder)",
                )
            resolved[key] = file
    own_archive = (
        resolved.get("path") is None
        and resolved.get("embeddings") is None
        and resolved.get("member") is not None
    )
    if own_archive:
        remote = getattr(registered, "remote", None)
        if local or remote is None or remote.member is None:  # an archive with members
            problems.add(
                (*where, "member"),
                "a member without a path is read from the dataset's own download, and this "
                "dataset is not a registered zip archive",
                "path = the file (or archive) that holds the item text",
            )
            return None
    spec = problems.validate(TextSpec, resolved, where)
    if not isinstance(spec, TextSpec):
        return None
    if spec.path is None and spec.embeddings is None and spec.member is None:
        problems.add(where, "names no item text", "path (and format), or embeddings")
    return spec


def _unique_names(ctx: Context, datasets: list[tuple[int, DatasetPlan]]) -> None:
    first: dict[str, int] = {}
    for i, plan in datasets:
        name = plan.spec.name
        if name in first:
            ctx.problems.add(
                ("datasets", i, "name"),
                f"{name!r} is also the name of datasets[{first[name]}]",
                "a distinct name per dataset (it names the results folder)",
            )
        else:
            first[name] = i


def dataset_has_text(spec: DatasetSpec) -> bool:
    """Whether a dataset brings item text: a text table, or generated data with text on."""
    if spec.text is not None:
        return True
    fmt = spec.format or (DATASETS[spec.name].format if spec.name in DATASETS else None)
    return fmt == SYNTHETIC and SyntheticConfig.model_validate(spec.options).text
