"""The result record (``result.json``, schema 2): one typed, frozen definition for every writer and
reader.

The worker writes it, the executors add what only they know (attempts), the report, ``seqbench
tune`` and the cluster executors parse it; none of them re-checks fields by hand. The JSON Schema
generated from :class:`ResultRecord` is printed in docs/results.md (a test keeps the two equal;
``python -m seqbench.record docs/results.md`` rewrites it). Schema 2 is frozen: later versions
may only add optional keys. Schema-1 records (seqbench before executors) are read through
:func:`upgrade`, which maps them onto schema 2 unchanged in meaning.

A cell ends with one :data:`Status`. ``ok`` and ``failed`` are what they say; ``oom``,
``timeout`` and ``pruned`` are *outcomes*, not failures: a memory or time cap, or a tuner's
pruner, ended the cell on purpose and the record says where. A rerun retries ``failed`` cells but
not outcomes, unless ``seqbench run --retry oom,timeout`` asks for it.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from seqbench.cells import Variant

SCHEMA = 2

#: File names inside a cell folder, defined once.
RESULT = "result.json"
RANKS = "ranks.npz"
LOG = "cell.log"
WEIGHTS = "weights.safetensors"

Status = Literal["ok", "failed", "oom", "timeout", "pruned"]
STATUSES: tuple[str, ...] = get_args(Status)
#: Statuses that end a cell on purpose (a cap or a pruner): recorded, not retried by default.
OUTCOMES: tuple[str, ...] = ("oom", "timeout", "pruned")
#: How one try of a cell ended; ``crashed``: its worker died; ``lost``: its holder vanished (a
#: dead process or an expired lease) and another took the cell over; ``interrupted``: Ctrl-C.
AttemptOutcome = Literal[
    "ok", "failed", "oom", "timeout", "pruned", "crashed", "lost", "interrupted"
]


class Section(BaseModel):
    """A part of the record: unknown keys are errors, values immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class DatasetRef(BaseModel):
    """The dataset entry as the suite gave it (``seqbench.data.load.DatasetSpec``)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    name: str = Field(min_length=1)
    path: str | None = None
    format: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    text: dict[str, Any] | None = None


class CellRecord(Section):
    """What ran: the cell's hash, the hashed identity and every resolved setting."""

    hash: str = Field(description="sha256 (hex) of the canonical JSON of `identity`")
    identity: dict[str, Any] = Field(description="everything that can change the cell's numbers")
    suite: str = ""
    dataset: DatasetRef
    protocol: dict[str, Any] = Field(default_factory=dict)
    variant: Variant
    seed: int
    train: dict[str, Any] = Field(default_factory=dict)
    eval: dict[str, Any] = Field(default_factory=dict)
    backend: str = Field("torch", description="what the Mamba blocks ran on: torch or mamba_ssm")
    precision: str = "fp32"
    device: str = Field("cpu", description="device type the cell ran on: cpu or cuda")


class DatasetInfo(Section):
    """The processed dataset the cell trained on."""

    name: str
    sha256: str | None = None
    users: int | None = None
    items: int | None = None
    interactions: int | None = None
    train_samples: int | None = None
    valid_samples: int | None = None
    test_samples: int | None = None
    provenance: dict[str, Any] | None = None


class Environment(Section):
    """Versions, machine and device (``seqbench.environment.describe``)."""

    seqbench: str | None = None
    python: str | None = None
    torch: str | None = None
    numpy: str | None = None
    cuda: str | None = None
    kernels: dict[str, str | None] | None = None
    platform: str | None = None
    cpu: str | None = None
    device: str | None = None
    device_name: str | None = None
    threads: int | None = None
    git_commit: str | None = None
    date: str | None = None
    hostname: str | None = None


MetricValues = dict[str, float | None]


class Metrics(Section):
    """Metric means over a split's users (from the ranks); a tuning trial, and any pruned
    cell, has no ``test``."""

    valid: MetricValues = Field(default_factory=dict)
    test: MetricValues | None = None


class Epoch(Section):
    """One training epoch: mean loss per sample, validation metrics, seconds."""

    epoch: int
    loss: float | None = None
    valid: MetricValues = Field(default_factory=dict)
    seconds: float
    eval_seconds: float | None = None
    diagnostics: dict[str, float | None] | None = None


class Timing(Section):
    seconds_per_epoch: float | None = None
    train_seconds: float | None = None
    total_seconds: float | None = None
    inference_seconds: float | None = None
    users_per_second: float | None = None
    resumed_from_epoch: int | None = Field(
        None,
        description="the epoch whose checkpoint this try resumed from (seqbench.checkpoint); "
        "total_seconds then adds the interrupted tries' training and validation seconds up to "
        "that checkpoint",
    )


class Memory(Section):
    """Peaks in MiB. ``start_rss_mib``: the worker's RSS when the cell began (a worker serves
    several cells; its high-water mark is reset at each start, so the peaks are the cell's own)."""

    peak_rss_mib: float | None = None
    peak_device_mib: float | None = None
    start_rss_mib: float | None = None
    train_rss_mib: float | None = None
    eval_rss_mib: float | None = None
    train_device_mib: float | None = None
    eval_device_mib: float | None = None


class ErrorInfo(Section):
    """Why a cell failed."""

    type: str
    message: str
    traceback: str = ""


class Stopped(Section):
    """Why a cell ended with an outcome (``oom``, ``timeout``, ``pruned``) and where."""

    reason: str
    epoch: int | None = Field(None, description="the last epoch completed (None: none)")
    requested_by: str | None = Field(None, description="who asked: pruner, time-limit, …")


class Tune(Section):
    """A tuning trial's place in its study (``seqbench tune``). Trials are validation-only:
    their records never hold test metrics or test ranks."""

    study: str
    trial: int
    storage: str = Field(description="the study's storage URL, any password replaced by ***")
    sampler: str | None = None
    params: dict[str, Any] = Field(default_factory=dict, description="the sampled values")
    value: float | None = Field(None, description="the trial's value (best validation metric)")
    metric: str | None = None


class TunedFrom(Section):
    """Where a final cell's tuned settings came from (``seqbench run --tuned``): the study and
    its best trial, and the values taken from it. Not part of the cell's identity."""

    study: str
    trial: int
    storage: str = Field(description="the study's storage URL, any password replaced by ***")
    params: dict[str, Any] = Field(default_factory=dict)
    value: float | None = None
    metric: str | None = None


class Evaluation(Section):
    """One evaluation condition of a trained model (e.g. a test-time noise level).

    ``ranks`` names the arrays of ranks.npz that hold this condition, per split:
    ``{"test": "test_rank@NAME", "test_tied": "test_tied@NAME", …}``."""

    condition: dict[str, Any] = Field(default_factory=dict)
    metrics: Metrics
    ranks: dict[str, str] = Field(default_factory=dict)
    seconds: float | None = None
    recorded: str | None = None


class ThroughputMemory(Section):
    """Memory of a throughput cell in MiB: ``kind`` ``cuda`` (allocator peaks, reset per phase)
    or ``rss`` (resident set high-water mark, reset per phase)."""

    kind: Literal["cuda", "rss"]
    baseline: float | None = Field(None, description="before the first training step")
    train_peak: float | None = None
    score_peak: float | None = None


class Throughput(Section):
    """A throughput cell (``[train] mode = "throughput"``): timed steps, no convergence."""

    batch_size: int
    max_len: int
    warmup_steps: int
    steps: int
    step_seconds: list[float] = Field(default_factory=list, description="each timed step")
    seconds_per_step: float | None = Field(None, description="median of step_seconds")
    tokens_per_second: float | None = None
    users_scored: int | None = None
    users_per_second: float | None = None
    memory: ThroughputMemory | None = None


class Attempt(Section):
    """One try of the cell, by one process on one host."""

    host: str
    pid: int
    executor: str = "local"
    worker: str | None = Field(None, description="where it ran, e.g. the worker's pid or node")
    started: str
    ended: str | None = None
    outcome: AttemptOutcome | None = None
    message: str | None = None


class Threads(Section):
    """CPU threads the cell's worker used (not part of the cell's identity)."""

    torch: int
    interop: int | None = None
    workers: int = Field(1, description="workers running at once on this host (--jobs)")
    env: dict[str, str] = Field(default_factory=dict, description="OMP_NUM_THREADS and kin")


class ResultRecord(Section):
    """``result.json`` of one cell (schema 2)."""

    schema_: Literal[2] = Field(2, alias="schema")
    status: Status
    cell: CellRecord
    recorded: str | None = Field(None, description="when the record was written (ISO 8601)")
    dataset: DatasetInfo | None = None
    environment: Environment | None = None
    threads: Threads | None = None
    parameters: int | None = Field(None, description="trainable parameters")
    metrics: Metrics | None = None
    curve: list[Epoch] = Field(default_factory=list)
    best_epoch: int | None = None
    epochs_run: int | None = None
    stopped_early: bool | None = None
    timing: Timing | None = None
    memory: Memory | None = None
    text: dict[str, Any] | None = Field(None, description="item-text embeddings used, if any")
    error: ErrorInfo | None = None
    stopped: Stopped | None = None
    tune: Tune | None = None
    tuned_from: TunedFrom | None = None
    evaluations: dict[str, Evaluation] | None = None
    throughput: Throughput | None = None
    attempts: list[Attempt] = Field(default_factory=list)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _status_has_its_sections(self) -> ResultRecord:
        no_test = self.metrics is None or self.metrics.test is None
        if self.status == "ok" and no_test and self.throughput is None and self.tune is None:
            raise ValueError(
                "metrics.test is missing; expected an object (an ok cell records its valid and "
                "test metrics; a tuning trial its valid metrics only; a throughput cell its "
                "throughput section)"
            )
        if self.tune is not None and self.metrics is not None and self.metrics.test is not None:
            raise ValueError("a tuning trial never records test metrics (it must not read them)")
        if self.status == "failed" and self.error is None:
            raise ValueError("a failed cell records its error")
        if self.status in OUTCOMES and self.stopped is None:
            raise ValueError(f"a cell ended {self.status!r} records why under 'stopped'")
        return self

    def to_json(self) -> dict[str, Any]:
        """The record as written to result.json (``schema`` first; absent sections omitted)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    def with_updates(self, **changes: Any) -> ResultRecord:
        """A validated copy with some top-level fields replaced."""
        return ResultRecord.model_validate({**self.to_json(), **_dump(changes)})


def _dump(changes: dict[str, Any]) -> dict[str, Any]:
    """Field values as JSON-able data (sections and lists of sections dumped)."""

    def plain(value: Any) -> Any:
        if isinstance(value, BaseModel):
            return value.model_dump(mode="json", by_alias=True, exclude_none=True)
        if isinstance(value, list):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return {key: plain(value) for key, value in changes.items()}


class RecordError(ValueError):
    """A result.json that is not a valid record; the message says what and where."""


def parse(data: Any) -> ResultRecord:
    """A result.json's content as a record: schema 2 validated (strictly: a string is no
    number), schema 1 upgraded first. Raises :class:`RecordError` naming the first problem."""
    if not isinstance(data, dict):
        raise RecordError(f"holds a JSON {type(data).__name__}; expected an object")
    schema = data.get("schema")
    if schema == 1 and not isinstance(schema, bool):
        data = upgrade(data)
    elif schema != SCHEMA or isinstance(schema, bool):
        newer = isinstance(schema, int) and not isinstance(schema, bool) and schema > SCHEMA
        hint = " (written by a newer seqbench? upgrade to read it)" if newer else ""
        raise RecordError(f"schema {schema!r}{hint}; expected schema 1 or {SCHEMA}")
    try:
        return ResultRecord.model_validate_json(json.dumps(data), strict=True)
    except ValidationError as exc:
        raise RecordError(explain(exc)) from None


def explain(exc: ValidationError) -> str:
    """The first problem of a validation error as ``where is what; expected …``."""
    problems = exc.errors()
    first = problems[0]
    where = ".".join(str(part) for part in first["loc"])
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "missing":
        text = f"{where} is missing"
    elif not where:
        text = message
    else:
        expected = message.removeprefix("Input should be ")
        text = f"{where} is {first['input']!r}; expected {expected}"
    if len(problems) > 1:
        text += f" (and {len(problems) - 1} more problem{'s' * (len(problems) > 2)})"
    return text


def upgrade(data: dict[str, Any]) -> dict[str, Any]:
    """A schema-1 record mapped onto schema 2: same fields, same meaning; only ``ok`` and
    ``failed`` existed, and nothing is invented."""
    upgraded = {**data, "schema": SCHEMA}
    if "cell" in upgraded and isinstance(upgraded["cell"], dict):
        cell = dict(upgraded["cell"])
        variant = cell.get("variant")
        if isinstance(variant, dict):
            known = set(Variant.model_fields)
            cell["variant"] = {k: v for k, v in variant.items() if k in known}
        upgraded["cell"] = cell
    return upgraded


def read(path: Path | str) -> ResultRecord:
    """Read and parse one result.json (raises OSError, or :class:`RecordError`)."""
    text = Path(path).read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise RecordError(f"is not valid JSON ({exc})") from None
    return parse(data)


def now(timespec: str = "seconds") -> str:
    """The current time, ISO 8601 with offset (to the second unless ``timespec`` says
    ``milliseconds``: attempts of one cell may start within one second)."""
    return dt.datetime.now(dt.timezone.utc).astimezone().isoformat(timespec=timespec)


# ---------------------------------------------------------------------------- documentation

DOC_BEGIN = (
    "<!-- result-schema:begin (generated by `python -m seqbench.record docs/results.md`) -->"
)
DOC_END = "<!-- result-schema:end -->"


def json_schema_text() -> str:
    """The JSON Schema of :class:`ResultRecord`, as printed in docs/results.md."""
    schema = ResultRecord.model_json_schema(by_alias=True, mode="serialization")
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False)


def documented_schema(markdown: str) -> str | None:
    """The JSON Schema text between the markers of docs/results.md (None without markers)."""
    start, end = markdown.find(DOC_BEGIN), markdown.find(DOC_END)
    if start < 0 or end < start:
        return None
    block = markdown[start + len(DOC_BEGIN) : end].strip()
    return block.removeprefix("```json").removesuffix("```").strip()


def write_docs(path: Path) -> None:
    """Rewrite the generated block of ``path`` (docs/results.md) from the model."""
    from seqbench import atomic

    text = path.read_text(encoding="utf-8")
    start, end = text.find(DOC_BEGIN), text.find(DOC_END)
    if start < 0 or end < start:
        raise SystemExit(f"{path}: markers {DOC_BEGIN!r} … {DOC_END!r} not found")
    block = f"{DOC_BEGIN}\n```json\n{json_schema_text()}\n```\n"
    atomic.write_text(path, text[:start] + block + text[end:])


if __name__ == "__main__":
    write_docs(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/results.md"))
