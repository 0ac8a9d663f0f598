"""Synthetic interaction logs with planted sequential structure, deterministic by seed.

Each user walks over the items. At every step, with probability ``p_markov`` the next item is one
of the previous item's ``successors`` (a sparse first-order Markov chain whose edges stay mostly
inside the item's cluster, with weights halving from the first successor to the last); with
probability ``p_periodic`` the user repeats the item chosen ``period`` steps earlier (a per-user
period in [min_period, max_period]: long-range structure a first-order model cannot see);
otherwise the item is drawn from a Zipf popularity law. A model that learns the transitions
beats popularity by a wide margin (tests pin the ratio), and one that also uses long contexts can
do better still. Sequence lengths are ``min_length`` plus an exponential tail (mean
``mean_length``), capped at ``max_length``: raise all three for sequence-length scaling studies.

Long-range recall (``long_range = D > 0``; off by default, which leaves the data unchanged): a
second vocabulary of ``long_keys`` cue items and as many answer items is laid over the walk.
Position t holds the answer of a cue (a fixed permutation of the keys) whenever position t − D
holds that cue; any other position holds a fresh cue with probability ``p_cue`` (a uniform draw
from its own random stream), else the walk's item. So the item D positions back decides the
next item exactly, while nothing within the last D − 1 items says anything about it: the walk
never reads a cue, cue values are independent draws, and the answers in those positions belong
to other cues. A model that sees fewer than D items is at chance (1 / long_keys) on answer
targets; one that sees D or more can be right on every one (tests/data/test_long_range.py).

Optional item text ("<name>: a <adjective> <genre> <noun>") shares its genre word within a
cluster, so text carries real signal about which items follow which.

Rows come out in global time order (integer seconds, no ties within a user), as in a real log.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from seqbench.data.raw import RawInteractions

#: Bump when the same config would generate different data.
GENERATOR_VERSION = 1
#: The options of the long-range recall (left out of the fingerprint while it is off).
LONG_RANGE_KEYS = ("long_range", "long_keys", "p_cue")

_GENRES = (
    "mystery", "science fiction", "romance", "documentary", "western", "horror", "comedy",
    "fantasy", "thriller", "animation", "jazz", "folk", "travel", "cooking", "history",
    "sports", "poetry", "gardening", "chess", "astronomy",
)  # fmt: skip
_ADJECTIVES = (
    "quiet", "bold", "classic", "modern", "gentle", "dark", "bright", "strange", "warm",
    "epic", "tiny", "vivid",
)  # fmt: skip
_NOUNS = ("story", "collection", "guide", "album", "series", "edition", "tale", "journal")
_SYLLABLES = ("ka", "lo", "mi", "ren", "sa", "tor", "vel", "zu", "dra", "pim", "qua", "nes")


class SyntheticConfig(BaseModel):
    """Options of the ``synthetic`` dataset (``options = { … }`` in a suite, ``-o`` on the CLI)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = Field(0, ge=0)
    n_users: int = Field(1000, ge=1)
    n_items: int = Field(500, ge=2)
    min_length: int = Field(10, ge=2)
    mean_length: float = Field(25.0, gt=0)
    max_length: int = Field(80, ge=2)
    clusters: int = Field(10, ge=1)
    successors: int = Field(3, ge=1)
    p_markov: float = Field(0.6, ge=0, le=1)
    p_periodic: float = Field(0.2, ge=0, le=1)
    min_period: int = Field(4, ge=1)
    max_period: int = Field(12, ge=1)
    zipf: float = Field(1.0, ge=0, description="popularity exponent of the noise draws")
    text: bool = Field(True, description="generate item text")
    long_range: int = Field(
        0,
        ge=0,
        description="long-range recall: position t answers the cue at t − long_range (0: off)",
    )
    long_keys: int = Field(16, ge=2, description="cue items (and answer items) of long_range")
    p_cue: float = Field(0.05, gt=0, le=0.5, description="chance of a cue at a free position")

    @model_validator(mode="after")
    def _consistent(self) -> SyntheticConfig:
        if self.p_markov + self.p_periodic > 1:
            raise ValueError("p_markov + p_periodic must be at most 1")
        if not self.min_length <= self.mean_length <= self.max_length:
            raise ValueError("need min_length <= mean_length <= max_length")
        if self.min_period > self.max_period:
            raise ValueError("need min_period <= max_period")
        if self.successors >= self.n_items:
            raise ValueError("successors must be smaller than n_items")
        given = [key for key in ("long_keys", "p_cue") if key in self.model_fields_set]
        if self.long_range == 0 and given:
            raise ValueError(f"{' and '.join(given)} need long_range > 0")
        return self

    def fingerprint(self) -> dict[str, Any]:
        """The options as a dataset fingerprint records them: long-range keys only when on, so
        that data generated before they existed keeps its fingerprint (and cells their hash)."""
        values = self.model_dump()
        if self.long_range == 0:
            for key in LONG_RANGE_KEYS:
                del values[key]
        return values

    @property
    def total_items(self) -> int:
        """Items of the log: the walk's, plus the cues and answers of the long-range recall."""
        return self.n_items + (2 * self.long_keys if self.long_range else 0)


def generate(config: SyntheticConfig) -> RawInteractions:
    """The interaction log described by ``config`` (same config, same numpy: same bytes)."""
    rng = np.random.default_rng([config.seed, GENERATOR_VERSION])
    n_users, n_items = config.n_users, config.n_items
    cluster = rng.integers(0, config.clusters, size=n_items)
    popularity = 1.0 / (rng.permutation(n_items) + 1.0) ** config.zipf
    popularity /= popularity.sum()
    successors = _successors(rng, cluster, config.successors)
    weights = 0.5 ** np.arange(config.successors)
    cumulative = np.cumsum(weights / weights.sum())
    cumulative[-1] = 1.0

    extra = rng.exponential(config.mean_length - config.min_length, size=n_users)
    lengths = np.clip(config.min_length + np.rint(extra), config.min_length, config.max_length)
    lengths = lengths.astype(np.int64)
    period = rng.integers(config.min_period, config.max_period + 1, size=n_users)
    steps = int(lengths.max())
    rows = np.arange(n_users)
    seq = np.empty((n_users, steps), dtype=np.int64)
    seq[:, 0] = rng.choice(n_items, size=n_users, p=popularity)
    for t in range(1, steps):
        draw = rng.random(n_users)
        slot = np.searchsorted(cumulative, rng.random(n_users), side="right")
        slot = np.minimum(slot, config.successors - 1)  # guards the float edge at 1.0
        nxt = successors[seq[:, t - 1], slot]
        periodic = (draw >= config.p_markov) & (draw < config.p_markov + config.p_periodic)
        periodic &= t >= period
        nxt = np.where(periodic, seq[rows, np.maximum(t - period, 0)], nxt)
        noise = draw >= config.p_markov + config.p_periodic
        nxt = np.where(noise, rng.choice(n_items, size=n_users, p=popularity), nxt)
        seq[:, t] = nxt

    if config.long_range:
        seq = _long_range(config, seq)
    real = np.arange(steps)[None, :] < lengths[:, None]
    user = np.broadcast_to(rows[:, None], seq.shape)[real]
    item = seq[real]
    start = rng.integers(0, 3 * 365 * 86400, size=n_users)
    gaps = 1 + np.rint(rng.exponential(86400.0, size=seq.shape)).astype(np.int64)
    time = (start[:, None] + np.cumsum(gaps, axis=1))[real].astype(np.float64)
    order = np.argsort(time, kind="stable")

    item_text = _item_text(config, cluster) if config.text else None
    if item_text is not None and config.long_range:
        keys = range(config.long_keys)
        item_text = np.concatenate(
            [item_text, [f"Cue {k + 1}: a long-range cue" for k in keys],
             [f"Answer {k + 1}: a long-range answer" for k in keys]]
        )  # fmt: skip
    return RawInteractions(
        user=user[order].astype(np.int64),
        item=item[order].astype(np.int64),
        timestamp=time[order],
        rating=None,
        user_tokens=np.array([str(u + 1) for u in range(n_users)]),
        item_tokens=np.array([str(i + 1) for i in range(config.total_items)]),
        item_text=item_text,
    )


def answers(config: SyntheticConfig) -> np.ndarray:
    """The answer item (0-based generator id) of each cue item, in cue order."""
    rng = np.random.default_rng([config.seed, GENERATOR_VERSION, 2])
    return config.n_items + config.long_keys + rng.permutation(config.long_keys)


def _long_range(config: SyntheticConfig, seq: np.ndarray) -> np.ndarray:
    """The walk ``seq`` (users × steps) with the long-range recall laid over it (its own random
    stream, drawn after the permutation of :func:`answers`)."""
    rng = np.random.default_rng([config.seed, GENERATOR_VERSION, 2])
    keys, distance = config.long_keys, config.long_range
    answer = config.n_items + keys + rng.permutation(keys)  # = answers(config)
    n_users, steps = seq.shape
    fresh = rng.random((n_users, steps)) < config.p_cue
    value = rng.integers(0, keys, size=(n_users, steps))
    cue = np.zeros((n_users, steps), dtype=bool)
    out = seq.copy()
    for t in range(steps):
        answering = cue[:, t - distance] if t >= distance else np.zeros(n_users, dtype=bool)
        out[answering, t] = answer[value[answering, t - distance]]
        cue[:, t] = fresh[:, t] & ~answering
        out[cue[:, t], t] = config.n_items + value[cue[:, t], t]
    return out


def content_sha256(raw: RawInteractions) -> str:
    """sha256 of the generated content: what the cache key and results record as the source."""
    digest = hashlib.sha256(f"seqbench-synthetic-v{GENERATOR_VERSION}".encode())
    for array in (raw.user, raw.item, raw.timestamp):
        if array is not None:
            digest.update(np.ascontiguousarray(array).tobytes())
    if raw.item_text is not None:
        digest.update("\n".join(raw.item_text.tolist()).encode())
    return digest.hexdigest()


def _successors(rng: np.random.Generator, cluster: np.ndarray, k: int) -> np.ndarray:
    """k distinct successors per item (never itself), each from its cluster with prob. 0.8."""
    n = len(cluster)
    members = [np.flatnonzero(cluster == c) for c in range(int(cluster.max()) + 1)]
    out = np.empty((n, k), dtype=np.int64)
    for i in range(n):
        pool = members[cluster[i]]
        chosen: list[int] = []
        while len(chosen) < k:
            local = len(pool) > 1 and rng.random() < 0.8
            j = int(pool[rng.integers(len(pool))] if local else rng.integers(n))
            if j != i and j not in chosen:
                chosen.append(j)
        out[i] = chosen
    return out


def _item_text(config: SyntheticConfig, cluster: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng([config.seed, GENERATOR_VERSION, 1])  # own stream: text is optional
    texts = []
    for c in cluster.tolist():
        genre = _GENRES[c % len(_GENRES)] + (
            f" {c // len(_GENRES) + 1}" if c >= len(_GENRES) else ""
        )
        name = "".join(_SYLLABLES[s] for s in rng.integers(len(_SYLLABLES), size=3)).capitalize()
        adjective = _ADJECTIVES[rng.integers(len(_ADJECTIVES))]
        noun = _NOUNS[rng.integers(len(_NOUNS))]
        texts.append(f"{name}: a {adjective} {genre} {noun}")
    return np.array(texts)
