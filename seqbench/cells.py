"""Cells, the unit of work of a suite: one dataset × model variant × seed, with a content hash.

A cell carries every resolved setting the worker needs and travels to it as JSON
(:meth:`Cell.to_json` / :meth:`Cell.from_json`). Its hash covers exactly what can change its
numbers (:meth:`Cell.identity`) and nothing else, so that a result is found again under any
results folder, suite name or label, and recomputed whenever the data, the protocol, a setting
or seqbench's arithmetic changes. This module stays light (no torch, no TOML): the worker
imports it.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from seqbench.data.load import DatasetSpec
from seqbench.data.noise.spec import NoiseSpec, check_unique, expand_conditions
from seqbench.data.protocol import Protocol
from seqbench.errors import ConfigError
from seqbench.metrics import TiePolicy, parse_metric

#: Bump whenever model, trainer or evaluator arithmetic changes the numbers of an unchanged
#: cell: every cell hash changes with it, so old results are not reused.
NUMERICS_VERSION = 1

#: What a suite, dataset or variant name may hold: it names a folder (no leading dot, which
#: would hide it or clash with the store's ``.tmp``/``.locks``).
SAFE_NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]*$")
SAFE_NAME_TEXT = "letters, digits, '.', '_' and '-', not starting with '.' (it names a folder)"
_LABEL_UNSAFE = re.compile(r"[^A-Za-z0-9._=,+@-]")

Role = Literal["baseline", "proposed"]
Objective = Literal["last", "all_positions"]
#: The training losses (seqbench.losses, which needs torch, keeps the same list).
Loss = Literal["ce", "bce", "bpr"]
#: Arithmetic of training and scoring (seqbench.precision): full float32, TF32 matmuls and
#: convolutions, or bfloat16 autocast. Only fp32 runs on a CPU.
Precision = Literal["fp32", "tf32", "bf16"]
#: What a cell does: train to convergence and evaluate ("fit"), or time a few training steps
#: and the scoring of some users at a fixed batch and length ("throughput", seqbench.throughput).
Mode = Literal["fit", "throughput"]
#: The throughput keys of ``[train]`` and their values when a throughput cell leaves them unset.
THROUGHPUT_DEFAULTS: dict[str, int] = {"warmup_steps": 2, "steps": 5, "score_users": 256}

#: The keys of a dataset source fingerprint (see :func:`source_fingerprint`).
SOURCE_KEYS = ("sha256", "format", "format_version", "options")


def _canonical_metric(name: str) -> str:
    try:
        kind, k = parse_metric(name)
    except ValueError:
        raise ValueError(
            "a metric NAME@K with NAME one of hr, ndcg, mrr and K ≥ 1, e.g. 'ndcg@10'"
        ) from None
    return f"{kind}@{k}"


class TrainSettings(BaseModel):
    """The suite's ``[train]`` section (RecBole's meaning for every key)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    epochs: int = Field(300, ge=1, description="most epochs to train")
    batch_size: int = Field(2048, ge=1, description="training samples per step")
    lr: float = Field(1e-3, gt=0, description="Adam learning rate")
    weight_decay: float = Field(0.0, ge=0, description="Adam weight decay")
    stopping_step: int = Field(
        10, ge=0, description="stop after stopping_step + 1 epochs without improvement"
    )
    valid_metric: str = Field("ndcg@10", description="validation metric for early stopping")
    clip_grad_norm: float | None = Field(None, gt=0, description="gradient norm clip; unset: none")
    objective: Objective = Field(
        "last",
        description="'last': RecBole's loss at the last slot of every prefix sample; "
        "'all_positions': one pass per sequence window with a loss at every slot (causal "
        "models only)",
    )
    loss: Loss = Field(
        "ce",
        description="'ce': softmax cross-entropy over the whole item table (RecBole's CE); "
        "'bce': binary cross-entropy of the target against sampled negatives (summed over "
        "them); 'bpr': Bayesian personalised ranking of the target over each sampled negative",
    )
    negatives: int | None = Field(
        None,
        ge=1,
        description="uniform negatives per target for loss 'bce' or 'bpr' (the target "
        "excluded); unset: 1",
    )
    precision: Precision = Field(
        "fp32",
        description="'fp32': float32 throughout (TF32 off); 'tf32': TF32 matmuls and cuDNN "
        "convolutions; 'bf16': bfloat16 autocast of the forward passes in training and "
        "scoring, scores compared in float32 (CUDA only, as tf32)",
    )
    noise: NoiseSpec | None = Field(
        None,
        description='noise on the training inputs, e.g. { kind = "replace", ratio = 0.1, '
        'where = "end" } (docs/noise.md); unset: none',
    )
    save_weights: bool | None = Field(
        None,
        description="store the best weights beside the result (weights.safetensors), so that "
        "`seqbench evaluate` can score the cell under new conditions; unset: on when [eval] "
        "noise lists conditions",
    )
    mode: Mode = Field(
        "fit",
        description="'fit': train to convergence (early stopping) and evaluate; 'throughput': "
        "time warmup_steps + steps training steps of batch_size samples at max_len and the "
        "scoring of score_users users, no convergence and no metrics",
    )
    warmup_steps: int | None = Field(
        None,
        ge=0,
        description=f"throughput: untimed training steps first (unset: "
        f"{THROUGHPUT_DEFAULTS['warmup_steps']})",
    )
    steps: int | None = Field(
        None,
        ge=1,
        description=f"throughput: timed training steps (unset: {THROUGHPUT_DEFAULTS['steps']})",
    )
    score_users: int | None = Field(
        None,
        ge=1,
        description=f"throughput: test users scored against every item (unset: "
        f"{THROUGHPUT_DEFAULTS['score_users']})",
    )

    @model_validator(mode="before")
    @classmethod
    def _throughput_defaults(cls, data: Any) -> Any:
        """A throughput cell's unset step counts take their defaults (so that setting a default
        explicitly or not gives the same cell)."""
        if isinstance(data, Mapping) and data.get("mode") == "throughput":
            unset = {k: v for k, v in THROUGHPUT_DEFAULTS.items() if data.get(k) is None}
            data = {**data, **unset}
        return data

    @field_validator("valid_metric")
    @classmethod
    def _metric(cls, value: str) -> str:
        return _canonical_metric(value)

    @model_validator(mode="after")
    def _negatives_need_a_sampled_loss(self) -> TrainSettings:
        if self.negatives is not None and self.loss == "ce":
            raise ValueError(
                f"negatives applies to loss 'bce' or 'bpr' only, loss is {self.loss!r}"
            )
        if self.mode == "fit":
            given = [key for key in THROUGHPUT_DEFAULTS if getattr(self, key) is not None]
            if given:
                raise ValueError(
                    f"{', '.join(given)} applies to mode 'throughput' only, mode is 'fit'"
                )
        return self

    @model_validator(mode="after")
    def _noise_on_sequences(self) -> TrainSettings:
        if self.noise is None:
            return self
        if self.noise.kind == "embedding":
            raise ValueError(
                "noise kind 'embedding' is an evaluation condition ([eval] noise), not a "
                "training setting"
            )
        if self.objective == "all_positions":
            raise ValueError(
                "noise on the training inputs needs objective 'last' (the all-positions "
                "objective reads its targets from the inputs themselves)"
            )
        return self


class EvalSettings(BaseModel):
    """The suite's ``[eval]`` section."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    metrics: list[Annotated[str, AfterValidator(_canonical_metric)]] = Field(
        default_factory=lambda: ["hr@10", "ndcg@10", "mrr@10"],
        min_length=1,
        description="metrics reported (all are derived from the stored ranks)",
    )
    ties: TiePolicy = Field("pessimistic", description="where a target sits among tied scores")
    mask_history: bool = Field(False, description="exclude the user's past items from ranking")
    noise: list[NoiseSpec] = Field(
        default_factory=list,
        description="evaluation conditions: each scores the trained model's test users with "
        'noisy inputs, e.g. [{ kind = "delete", ratio = [0.1, 0.2], where = "end" }] '
        "(lists expand to one condition each; docs/noise.md); not part of the cell's identity",
    )

    @field_validator("noise", mode="before")
    @classmethod
    def _expand_noise(cls, value: Any) -> Any:
        return expand_conditions(value)

    @field_validator("noise")
    @classmethod
    def _unique_noise(cls, value: list[NoiseSpec]) -> list[NoiseSpec]:
        return check_unique(value)

    @field_validator("metrics")
    @classmethod
    def _metrics(cls, names: list[str]) -> list[str]:
        if len(set(names)) != len(names):
            raise ValueError("each metric once")
        return names


class Variant(BaseModel):
    """One model configuration of a suite: a models entry × ablation × sweep point."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    label: str  # names the result folder: name or model, +ablation, @sweep point
    model: str
    ablation: str
    sweep: dict[str, Any] = Field(default_factory=dict)  # this point's value of each swept key
    params: dict[str, Any] = Field(default_factory=dict)  # every model parameter, resolved
    overrides: dict[str, Any] = Field(default_factory=dict)  # model parameters the suite set
    role: Role = "baseline"
    order: tuple[int, ...] = ()  # (models entry, ablation, sweep point) indices
    uses_text: bool = False  # reads item-text embeddings: the dataset's text joins the identity


class Cell(BaseModel):
    """Everything needed to train and evaluate one dataset × variant × seed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    suite: str
    dataset: DatasetSpec  # as the suite gave it, with an absolute path
    protocol: Protocol  # after suite, dataset and sweep overrides
    variant: Variant
    seed: int
    train: TrainSettings
    eval: EvalSettings
    backend: str = "torch"
    #: The device type the cell runs on ("cpu" or "cuda"): random streams (dropout masks,
    #: shuffles on the device) differ between them, so a CPU and a GPU run are different cells.
    device: str = "cpu"

    @property
    def precision(self) -> Precision:
        """``[train] precision``; the identity and the JSON keep it at the top level, where it
        was before the train key set it (so fp32 cells keep their hashes)."""
        return self.train.precision

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict that :meth:`from_json` turns back into an equal cell."""
        return {**self.model_dump(mode="json"), "precision": self.precision}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Cell:
        values = dict(data)
        precision = values.pop("precision", None)
        cell = cls.model_validate(values)
        if precision is not None and precision != cell.precision:
            raise ValueError(
                f"precision {precision!r} disagrees with train.precision {cell.precision!r}"
            )
        return cell

    def identity(self, source: Mapping[str, Any]) -> dict[str, Any]:
        """What can change this cell's numbers, given its dataset's source fingerprint.

        Names, labels, roles, order, the dataset's path and where results go are left out on
        purpose: renaming or moving things must not orphan a result.
        """
        sources = {key: source[key] for key in SOURCE_KEYS}
        if self.variant.uses_text and source.get("text") is not None:
            sources["text"] = source["text"]  # only where it can change numbers
        return {
            "source": sources,
            "protocol": self.protocol.fingerprint(),
            "model": self.variant.model,
            "ablation": self.variant.ablation,
            "params": dict(self.variant.params),
            "train": _train_identity(self.train),
            # the order metrics are listed in changes no number; noise conditions are scored
            # on the trained model afterwards (they are added to a result, never retrain it)
            "eval": {
                **self.eval.model_dump(mode="json", exclude={"noise"}),
                "metrics": sorted(self.eval.metrics),
            },
            "seed": self.seed,
            "backend": self.backend,
            "precision": self.train.precision,
            "numerics_version": NUMERICS_VERSION,
            # CPU cells keep the hashes they had before the device joined the identity
            **({"device": self.device} if self.device != "cpu" else {}),
        }

    def hash(self, source: Mapping[str, Any]) -> str:
        """sha256 (hex) of the canonical JSON of :meth:`identity`."""
        return hashlib.sha256(canonical_json(self.identity(source)).encode()).hexdigest()

    def directory(self, cell_hash: str) -> PurePosixPath:
        """Where the cell's result goes, relative to ``<results root>/<suite>/``."""
        return PurePosixPath(
            self.dataset.name, self.variant.label, f"seed-{self.seed}-{cell_hash[:8]}"
        )


#: ``[train]`` keys added after cells were first hashed, and the value that leaves them out of
#: the identity (the behaviour from before the key existed).
_TRAIN_LATE_DEFAULTS: tuple[tuple[str, Any], ...] = (
    ("objective", "last"),
    ("loss", "ce"),
    ("negatives", None),
    ("noise", None),
    ("mode", "fit"),
    *((key, None) for key in THROUGHPUT_DEFAULTS),
)


def _train_identity(train: TrainSettings) -> dict[str, Any]:
    """The train settings; the default objective ("last"), loss ("ce"), negatives and noise
    (unset), mode ("fit") and the throughput keys (unset in fit mode) are left out, so that cells
    hashed before those keys existed keep their hash (and their results). The precision is hashed
    at the identity's top level instead; whether the weights are saved changes no number."""
    values = train.model_dump(mode="json", exclude={"precision", "save_weights"})
    for key, default in _TRAIN_LATE_DEFAULTS:
        if values[key] == default:
            del values[key]
    if train.noise is not None:
        values["noise"] = train.noise.identity()  # its settings, not its name
    return values


def check_precision(cell: Cell, device: str) -> None:
    """Refuse, before any work, a ``[train] precision`` that ``device`` cannot run: TF32 and
    bfloat16 autocast are CUDA features (seqbench does not emulate them on a CPU), and bf16
    needs a GPU that computes in it."""
    if cell.precision == "fp32":
        return
    where = f"{cell.dataset.name}/{cell.variant.label} seed {cell.seed}"
    if not device.startswith("cuda"):
        raise ConfigError(
            f"[train] precision = {cell.precision!r} ({where}) needs a CUDA device, and the "
            f"device is {device!r}; run it with --device cuda on a GPU, or set [train] "
            'precision = "fp32"'
        )
    if cell.precision == "bf16":
        import torch

        if not torch.cuda.is_bf16_supported():
            raise ConfigError(
                f"[train] precision = 'bf16' ({where}) needs a GPU with bfloat16 arithmetic "
                f"(compute capability 8.0 or newer), and {device!r} has none; set [train] "
                'precision = "tf32" or "fp32"'
            )


def canonical_json(value: Any) -> str:
    """Sorted keys, no spaces, floats as their repr (shortest round-trip form), UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def variant_label(model: str, name: str | None, ablation: str, sweep: Mapping[str, Any]) -> str:
    """``name`` or ``model``, ``+ablation`` unless full, ``@k=v,k2=v2`` for a sweep point.

    Characters that do not belong in a folder name become ``_``.
    """
    label = name or model
    if ablation != "full":
        label += f"+{ablation}"
    if sweep:
        label += "@" + ",".join(f"{k}={format_value(v)}" for k, v in sweep.items())
    return _LABEL_UNSAFE.sub("_", label)


def format_value(value: Any) -> str:
    """A value as a suite would spell it, compactly (``true``, ``0.001``, ``gelu``, ``[1,2]``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, NoiseSpec):
        return value.label
    if isinstance(value, float) and math.isfinite(value):
        return repr(value)
    if isinstance(value, (int, float, str)):
        return str(value)
    return canonical_json(value)


def source_fingerprint(
    spec: DatasetSpec,
    *,
    cache_dir: Path | str | None = None,
    mirror: str | None = None,
    download: bool,
) -> dict[str, Any] | None:
    """The dataset part of a cell's identity: ``{sha256, format, format_version, options}``.

    Hashes local files (remembered in the cache) and generates synthetic data; with a ``text``
    table, adds ``text`` (:func:`text_fingerprint`), which only text-reading cells hash. A registry
    dataset not yet downloaded (or whose download no longer matches its checksum) is fetched
    only with ``download``; otherwise the result is None, so that ``seqbench validate`` and
    ``run --dry-run`` never touch the network. A data-folder file that was not found gives
    None without ``download`` and an error naming the file with it.
    """
    from seqbench.data.cache import cache_root, ensure_writable_dir
    from seqbench.data.load import resolve_source

    root = ensure_writable_dir(cache_root(cache_dir))
    if not download and not _downloaded(spec, root):
        return None
    source = resolve_source(spec, root, mirror=mirror)
    fingerprint: dict[str, Any] = {
        "sha256": source.sha256,
        "format": source.format,
        "format_version": source.version,
        "options": source.options,
    }
    if spec.text is not None:
        fingerprint["text"] = text_fingerprint(spec.text, source.sha256)
    return fingerprint


def text_fingerprint(text: Any, dataset_sha256: str) -> dict[str, Any]:
    """The item text's part of a text-reading cell's identity: the bytes read (the dataset's
    own archive for a member without a path) and how they are read, not where they lie."""
    from seqbench.text.sources import text_source_sha256

    how = text.model_dump(mode="json", exclude={"path", "embeddings", "ids"})
    return {"sha256": text_source_sha256(text) or dataset_sha256, "read": how}


def _downloaded(spec: DatasetSpec, root: Path) -> bool:
    """Whether ``spec`` can be read without a download: a local path, generated data, or a
    registry file already in the cache that matches its checksum (not: a missing data-folder
    file)."""
    from seqbench.data.cache import read_json
    from seqbench.data.registry import DATASETS

    if spec.missing:
        return False  # a data-folder file not found: nothing to hash yet
    entry = DATASETS.get(spec.name)
    if spec.path is not None or entry is None or entry.remote is None:
        return True
    downloads = root / "downloads"
    file = downloads / entry.name / entry.remote.filename
    trusted = read_json(downloads / "trusted-sha256.json").get(entry.name, {}).get("sha256")
    known = entry.remote.known_hash or (f"sha256:{trusted}" if trusted else None)
    if not file.is_file() or known is None:
        return False
    import pooch  # lazy: pulls in requests

    algorithm, _, digest = known.partition(":")
    return bool(pooch.file_hash(str(file), alg=algorithm) == digest.lower())
