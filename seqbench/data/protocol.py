"""RecBole's sequential evaluation protocol with every knob named (reference/model-reference.md §1).

Steps, in RecBole's order (``Dataset._data_processing``, then ``SequentialDataset.build``):

1. ``dedup`` (RecBole ``rm_dup_inter``): when on, the whole log is first put in time order (as
   RecBole's ``_remove_duplication`` does, so ids below follow time order), then only the
   first/last of each (user, item) pair is kept;
2. ``min_rating`` (RecBole ``val_interval`` on the rating);
3. iterative ``k_core`` on users and items, repeated until no user or item has fewer than k
   interactions (``_filter_by_inter_num``; the k-core is unique, so the removal order does not
   matter);
4. ids remapped in order of first appearance in the filtered log (``pd.factorize``): users to
   0..U-1 (RecBole's 1..U minus one), items to 1..N with 0 for padding;
5. a stable sort by (user, time key): ties keep file order. RecBole compares timestamps as
   float32 (``torch.FloatTensor``), so times within one float32 step (64 s near 1e9 s) tie;
   ``time_precision = "float64"`` compares them exactly. ``time_scaling = "minmax"`` first scales
   the times of the filtered log to [0, 1], as RecBole's ``normalize_all`` does (its own
   ``ml-100k.yaml`` sets it). Without timestamps, file order *is* time order;
6. one sample per prefix: for each user's k-th interaction (k ≥ 2) the input is the interactions
   before it (the most recent ``max_len`` of them, right-padded with 0 when batched) and the
   target is the k-th;
7. leave-one-out per user on those samples (``_split_index_by_leave_one_out`` with 2 left out):
   last → test, second-to-last → valid, the rest → train; users with fewer samples give
   ``min(2, samples - 1)`` of them to test/valid, test first.

Verified sample for sample against RecBole 1.2.0 on its ml-100k (benchmarks/recbole_parity.py).

Bump :data:`PROTOCOL_VERSION` whenever the numbers this module produces change for the same
settings: it is part of every cache key and recorded in every result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from seqbench.data.raw import RawInteractions

PROTOCOL_VERSION = 1


class Protocol(BaseModel):
    """How interactions become samples. Defaults are RecBole 1.2's sequential settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    k_core: int = Field(
        5,
        ge=0,
        description="iterative k-core on users and items, to convergence "
        "(RecBole user/item_inter_num_interval '[5,inf)'); 0 or 1 keeps everyone",
    )
    max_len: int = Field(
        50, ge=1, description="most recent items in a sample's input (RecBole MAX_ITEM_LIST_LENGTH)"
    )
    min_rating: float | None = Field(
        None,
        description="keep only interactions rated at least this; unset keeps all "
        "(implicit feedback, as in the Mamba papers)",
    )
    dedup: Literal["keep", "first", "last"] = Field(
        "keep",
        description="repeated (user, item) pairs: keep all (RecBole default) or only the "
        "first/last in time",
    )
    time_precision: Literal["float32", "float64"] = Field(
        "float32",
        description="precision at which timestamps are compared when ordering a user's history: "
        "RecBole holds them as float32, so times within one float32 step (64 s near 1e9 s) "
        "tie and keep file order; float64 compares them exactly",
    )
    time_scaling: Literal["none", "minmax"] = Field(
        "none",
        description="min-max scale the filtered log's timestamps to [0, 1] before that "
        "comparison, as RecBole's normalize_all does (set in its own ml-100k.yaml)",
    )
    split: Literal["leave_one_out"] = Field(
        "leave_one_out", description="last sample of each user → test, second-to-last → valid"
    )
    padding: Literal["right"] = Field(
        "right", description="inputs hold the oldest item in slot 0, zeros after the last item"
    )

    def fingerprint(self) -> dict[str, object]:
        """Everything that identifies this protocol, version included (for keys and results)."""
        return {"version": PROTOCOL_VERSION, **self.model_dump()}


@dataclass(frozen=True)
class Split:
    """Samples of one split: the user and the flat position of the target item.

    The input of a sample is ``items[max(offsets[user], end - max_len) : end]``.
    """

    user: np.ndarray  # int64 (S,)
    end: np.ndarray  # int64 (S,)

    def __len__(self) -> int:
        return int(self.end.shape[0])


@dataclass(frozen=True)
class Processed:
    """The protocol's output: flat arrays plus what was filtered away."""

    items: np.ndarray  # int64 (N,) item ids 1..n_items; user-major, chronological
    offsets: np.ndarray  # int64 (n_users + 1,); user u owns items[offsets[u]:offsets[u+1]]
    timestamps: np.ndarray | None  # float64 (N,), aligned with items
    train: Split
    valid: Split
    test: Split
    user_tokens: np.ndarray  # str (n_users,)
    item_tokens: np.ndarray  # str (n_items + 1,); [0] = "[PAD]"
    item_text: np.ndarray | None  # str (n_items + 1,); [0] = ""
    k_core_passes: int


def process(raw: RawInteractions, protocol: Protocol) -> Processed:
    """Apply ``protocol`` to ``raw`` (pure; no I/O)."""
    rows = np.arange(len(raw))  # the log's rows, in the order RecBole would hold them
    if protocol.dedup != "keep":
        if raw.timestamp is not None:
            rows = rows[np.argsort(raw.timestamp, kind="stable")]
        rows = _one_of_each_pair(rows, raw.user, raw.item, protocol.dedup)
    if protocol.min_rating is not None:
        if raw.rating is None:
            raise ValueError("min_rating is set but this source has no ratings")
        rows = rows[raw.rating[rows] >= protocol.min_rating]
    keep, passes = k_core(raw.user[rows], raw.item[rows], protocol.k_core)
    rows = rows[keep]

    user_old, user = _first_appearance_codes(raw.user[rows])
    item_old, item = _first_appearance_codes(raw.item[rows])
    item += 1  # 0 is padding
    time = raw.timestamp[rows] if raw.timestamp is not None else None
    order = chronological_order(user, None if time is None else time_key(time, protocol))

    user, item = user[order], item[order]
    offsets = np.zeros(len(user_old) + 1, dtype=np.int64)
    np.cumsum(np.bincount(user, minlength=len(user_old)), out=offsets[1:])
    train, valid, test = leave_one_out(offsets)
    text = None
    if raw.item_text is not None:
        text = np.concatenate([np.array([""]), raw.item_text[item_old]])
    return Processed(
        items=item,
        offsets=offsets,
        timestamps=time[order] if time is not None else None,
        train=train,
        valid=valid,
        test=test,
        user_tokens=raw.user_tokens[user_old],
        item_tokens=np.concatenate([np.array(["[PAD]"]), raw.item_tokens[item_old]]),
        item_text=text,
        k_core_passes=passes,
    )


def time_key(time: np.ndarray, protocol: Protocol) -> np.ndarray:
    """The values a user's history is sorted by (see ``time_scaling`` and ``time_precision``)."""
    if protocol.time_scaling == "minmax" and time.size:
        low, high = time.min(), time.max()
        # RecBole sets a constant column to 1.0
        time = np.ones_like(time) if high == low else (time - low) / (high - low)
    return time.astype(np.float32) if protocol.time_precision == "float32" else time


def k_core(user: np.ndarray, item: np.ndarray, k: int) -> tuple[np.ndarray, int]:
    """Mask of the interactions left once, until none is left, every interaction whose user or
    item has fewer than k remaining ones is dropped; and the number of passes that dropped any.

    Repeated pairs count once per occurrence, as in RecBole.
    """
    keep = np.ones(len(user), dtype=bool)
    passes = 0
    if k <= 1:
        return keep, passes
    while True:
        users_n = np.bincount(user[keep], minlength=int(user.max(initial=-1)) + 1)
        items_n = np.bincount(item[keep], minlength=int(item.max(initial=-1)) + 1)
        bad = keep & ((users_n[user] < k) | (items_n[item] < k))
        if not bad.any():
            return keep, passes
        keep &= ~bad
        passes += 1


def chronological_order(user: np.ndarray, time: np.ndarray | None) -> np.ndarray:
    """Stable order by (user, time): equal timestamps keep their file order."""
    order = np.arange(len(user)) if time is None else np.argsort(time, kind="stable")
    return order[np.argsort(user[order], kind="stable")]


def leave_one_out(offsets: np.ndarray) -> tuple[Split, Split, Split]:
    """Prefix samples of every user, split as RecBole's ``_split_index_by_leave_one_out``."""
    lengths = np.diff(offsets)
    n = int(offsets[-1])
    user = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
    position = np.arange(n, dtype=np.int64)
    is_sample = position != offsets[user]  # the first interaction is never a target
    from_end = offsets[user + 1] - 1 - position  # 0 = the user's last interaction
    held_out = np.minimum(2, lengths - 2)[user]  # min(2, samples - 1), samples = length - 1
    test = is_sample & (from_end == 0) & (held_out >= 1)
    valid = is_sample & (from_end == 1) & (held_out >= 2)
    train = is_sample & ~test & ~valid
    return tuple(Split(user=user[m], end=position[m]) for m in (train, valid, test))  # type: ignore[return-value]


def _first_appearance_codes(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Renumber ``codes`` 0.. by first appearance; returns (old code of each new one, new codes)."""
    if codes.size == 0:
        return codes.copy(), codes.copy()
    unique, first, inverse = np.unique(codes, return_index=True, return_inverse=True)
    rank = np.empty(len(unique), dtype=np.int64)
    by_first = np.argsort(first, kind="stable")
    rank[by_first] = np.arange(len(unique))
    return unique[by_first], rank[inverse.reshape(-1)]


def _one_of_each_pair(
    rows: np.ndarray, user: np.ndarray, item: np.ndarray, which: str
) -> np.ndarray:
    """``rows`` without repeated (user, item) pairs: the first or last occurrence in that order."""
    pair = user[rows] * (int(item.max(initial=0)) + 1) + item[rows]
    if which == "first":
        _, index = np.unique(pair, return_index=True)
    else:
        _, from_end = np.unique(pair[::-1], return_index=True)
        index = len(rows) - 1 - from_end
    return rows[np.sort(index)]
