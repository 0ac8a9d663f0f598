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

Optional item text ("<name>: a <adjective> <genre> <noun>") shares its genre word within a
cluster, so text carries real signal about which items follow which.

Rows come out in global time order (integer seconds, no ties within a user), as in a real log.
"""

from __future__ import annotations

import hashlib

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from seqbench.data.raw import RawInteractions

#: Bump when the same config would generate different data.
GENERATOR_VERSION = 1

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
        return self


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

    real = np.arange(steps)[None, :] < lengths[:, None]
    user = np.broadcast_to(rows[:, None], seq.shape)[real]
    item = seq[real]
    start = rng.integers(0, 3 * 365 * 86400, size=n_users)
    gaps = 1 + np.rint(rng.exponential(86400.0, size=seq.shape)).astype(np.int64)
    time = (start[:, None] + np.cumsum(gaps, axis=1))[real].astype(np.float64)
    order = np.argsort(time, kind="stable")

    item_text = _item_text(config, cluster) if config.text else None
    return RawInteractions(
        user=user[order].astype(np.int64),
        item=item[order].astype(np.int64),
        timestamp=time[order],
        rating=None,
        user_tokens=np.array([str(u + 1) for u in range(n_users)]),
        item_tokens=np.array([str(i + 1) for i in range(n_items)]),
        item_text=item_text,
    )


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
