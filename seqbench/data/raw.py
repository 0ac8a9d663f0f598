"""Interactions as a reader hands them over: integer codes in file order, plus the raw tokens.

Readers stream their file line by line into an :class:`InteractionAccumulator`, which turns
tokens into integer codes at once (first-appearance order) and stores them in compact typed
arrays, so memory grows by a few bytes per interaction, not by one Python string per token.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RawInteractions:
    """One row per interaction, in the order of the source file.

    ``user`` and ``item`` index ``user_tokens`` and ``item_tokens`` (codes in order of first
    appearance). ``timestamp`` is None when the source has none: file order is then the
    chronological order. ``item_text`` (aligned with ``item_tokens``; "" = no text) is optional.
    """

    user: np.ndarray  # int64 (n,)
    item: np.ndarray  # int64 (n,)
    timestamp: np.ndarray | None  # float64 (n,)
    rating: np.ndarray | None  # float64 (n,)
    user_tokens: np.ndarray  # str (n_users,)
    item_tokens: np.ndarray  # str (n_items,)
    item_text: np.ndarray | None = None  # str (n_items,)

    def __len__(self) -> int:
        return int(self.user.shape[0])


class InteractionAccumulator:
    """Collects interactions row by row (or a user's whole sequence) as integer codes."""

    def __init__(self, *, has_time: bool = False, has_rating: bool = False) -> None:
        self.has_time = has_time
        self.has_rating = has_rating
        self._user_codes: dict[str, int] = {}
        self._item_codes: dict[str, int] = {}
        self._users = array("q")
        self._items = array("q")
        self._times = array("d")
        self._ratings = array("d")

    def add(self, user: str, item: str, time: float = 0.0, rating: float = 0.0) -> None:
        """Append one interaction (time and rating are ignored unless the source has them)."""
        users, items = self._user_codes, self._item_codes
        self._users.append(users.setdefault(user, len(users)))
        self._items.append(items.setdefault(item, len(items)))
        if self.has_time:
            self._times.append(time)
        if self.has_rating:
            self._ratings.append(rating)

    def add_sequence(self, user: str, items: Iterable[str]) -> None:
        """Append one user's items in chronological order (sources without timestamps)."""
        codes = self._item_codes
        before = len(self._items)
        # `len(codes)` is evaluated before setdefault inserts, so a new token gets the next code.
        self._items.extend(codes.setdefault(t, len(codes)) for t in items)
        user_code = self._user_codes.setdefault(user, len(self._user_codes))
        self._users.extend([user_code] * (len(self._items) - before))

    def __len__(self) -> int:
        return len(self._users)

    def finish(self, item_text: dict[str, str] | None = None) -> RawInteractions:
        item_tokens = _tokens(self._item_codes)
        text = None
        if item_text is not None:
            text = np.array([item_text.get(t, "") for t in item_tokens.tolist()], dtype=str)
        return RawInteractions(
            user=np.frombuffer(self._users, dtype=np.int64).copy(),
            item=np.frombuffer(self._items, dtype=np.int64).copy(),
            timestamp=np.frombuffer(self._times, dtype=np.float64).copy()
            if self.has_time
            else None,
            rating=np.frombuffer(self._ratings, dtype=np.float64).copy()
            if self.has_rating
            else None,
            user_tokens=_tokens(self._user_codes),
            item_tokens=item_tokens,
            item_text=text,
        )


def _tokens(table: dict[str, int]) -> np.ndarray:
    # dicts keep insertion order, which is code order
    return np.array(list(table), dtype=str) if table else np.array([], dtype=str)
