"""From raw interactions to a clean table with dense ids: threshold, de-duplication, k-core, remapping.

Every step keeps the surviving rows in their original (file) order, so that ties in time are later broken
by file order, and records the users / items / interactions left after it.

The frame that flows through here has columns `user`, `item` (original ids) and optionally `rating`
(float), `timestamp` (int64), `order` (int64, position in the user's sequence) and `part` (0 train,
1 validation, 2 test: only for datasets that ship a fixed split).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from hbench.datasets.spec import PrepareOptions
from hbench.errors import HBenchError

PART_NAMES = ("train", "valid", "test")


@dataclass(frozen=True)
class Preprocessed:
    """The cleaned frame (dense int64 `user` / `item`), the original id of every dense id, and step stats."""

    frame: pd.DataFrame
    user_ids: np.ndarray
    item_ids: np.ndarray
    steps: list[dict[str, object]]

    @property
    def n_users(self) -> int:
        return int(len(self.user_ids))

    @property
    def n_items(self) -> int:
        return int(len(self.item_ids))


def frame_stats(frame: pd.DataFrame) -> dict[str, int]:
    """Users, items and interactions (rows) of a frame."""
    return {
        "users": int(frame["user"].nunique()),
        "items": int(frame["item"].nunique()),
        "interactions": int(len(frame)),
    }


def apply_implicit_threshold(frame: pd.DataFrame, threshold: float | None) -> pd.DataFrame:
    """Keep interactions with `rating >= threshold`; `None` keeps everything (all ratings are positives)."""
    if threshold is None:
        return frame
    if "rating" not in frame.columns:
        raise HBenchError(f"implicit_threshold={threshold} needs ratings, but this dataset has none; drop the option")
    return frame[frame["rating"].to_numpy() >= threshold]


def time_sort_keys(frame: pd.DataFrame) -> list[np.ndarray]:
    """The keys that order a frame in time, most significant first: timestamp, then sequence order.

    Rows are kept in file order, so a stable sort on these keys breaks remaining ties by file order.
    """
    return [frame[c].to_numpy(np.int64) for c in ("timestamp", "order") if c in frame.columns]


def stable_argsort(keys: list[np.ndarray]) -> np.ndarray:
    """Indices that sort rows by `keys` (most significant first), ties kept in row order.

    Integer keys are packed into one int64 when their ranges allow: one stable argsort of that is
    2-3 times faster than `np.lexsort` on tens of millions of rows.
    """
    if not keys or len(keys[0]) == 0:
        return np.arange(len(keys[0]) if keys else 0)
    packed = np.zeros(len(keys[0]), dtype=np.int64)
    span = 1
    for key in reversed(keys):
        low, high = int(key.min()), int(key.max())
        if span * (high - low + 1) >= 1 << 62:
            return np.lexsort(tuple(reversed(keys)))
        packed += (key - low) * span
        span *= high - low + 1
    return np.argsort(packed, kind="stable")


def has_time(frame: pd.DataFrame) -> bool:
    """Whether the frame knows the order of interactions (timestamps or a sequence position)."""
    return bool(time_sort_keys(frame))


def _pair_keys(frame: pd.DataFrame) -> np.ndarray:
    """One int64 per row identifying its (part, user, item)."""
    users, user_values = pd.factorize(frame["user"])
    items, item_values = pd.factorize(frame["item"])
    keys = users.astype(np.int64) * len(item_values) + items
    if "part" in frame.columns:
        keys += frame["part"].to_numpy(np.int64) * (len(user_values) * len(item_values))
    return keys


def drop_duplicates(frame: pd.DataFrame) -> pd.DataFrame:
    """Keep the earliest interaction of every (user, item) pair; earliest by time, ties by file order.

    With a shipped split (`part` column) pairs are de-duplicated within each part only: the split itself
    is kept as published.
    """
    keys = _pair_keys(frame)
    sorted_keys = np.sort(keys)
    if not (sorted_keys[1:] == sorted_keys[:-1]).any():
        return frame  # the usual case, found by one plain sort
    # Grouping pairs by a stable sort on (pair, time) puts each pair's earliest row first, ties in file order.
    by_pair = stable_argsort([keys, *time_sort_keys(frame)])
    sorted_keys = keys[by_pair]
    first = np.r_[True, sorted_keys[1:] != sorted_keys[:-1]]
    keep = np.zeros(len(frame), dtype=bool)
    keep[by_pair[first]] = True
    return frame[keep]


def k_core(frame: pd.DataFrame, user_k: int, item_k: int) -> pd.DataFrame:
    """Iterative k-core: drop users with fewer than `user_k` and items with fewer than `item_k`
    interactions, repeatedly, until neither changes (0 disables a side)."""
    if user_k <= 0 and item_k <= 0:
        return frame
    users, _ = pd.factorize(frame["user"])
    items, _ = pd.factorize(frame["item"])
    keep = np.ones(len(frame), dtype=bool)
    while True:
        new_keep = keep.copy()
        if user_k > 0:
            degree = np.bincount(users[keep], minlength=users.max(initial=-1) + 1)
            new_keep &= degree[users] >= user_k
        if item_k > 0:
            degree = np.bincount(items[new_keep], minlength=items.max(initial=-1) + 1)
            new_keep &= degree[items] >= item_k
        if np.array_equal(new_keep, keep):
            return frame[keep]
        keep = new_keep


def remap_ids(frame: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Dense 0-based ids, in sorted order of the original ids (integer ids keep their numeric order, so a
    source that is already dense keeps its ids). Returns the frame and the original id of each dense id."""
    users, user_ids = pd.factorize(frame["user"], sort=True)
    items, item_ids = pd.factorize(frame["item"], sort=True)
    out = frame.assign(user=users.astype(np.int64), item=items.astype(np.int64)).reset_index(drop=True)
    return out, np.asarray(user_ids), np.asarray(item_ids)


def preprocess(frame: pd.DataFrame, options: PrepareOptions) -> Preprocessed:
    """Threshold, de-duplicate, k-core and remap `frame`, recording statistics after every step."""
    if len(frame) == 0:  # not the options' doing: nothing to relax
        raise HBenchError("the dataset's files hold no interactions")
    steps: list[dict[str, object]] = [{"step": "raw", **frame_stats(frame)}]

    def record(step: str, current: pd.DataFrame) -> None:
        steps.append({"step": step, **frame_stats(current)})

    if options.implicit_threshold is not None:
        frame = apply_implicit_threshold(frame, options.implicit_threshold)
        record(f"implicit rating >= {options.implicit_threshold:g}", frame)
    if getattr(options, "dedup", True):
        frame = drop_duplicates(frame)
        record("deduplicate (user, item)", frame)
    if options.user_k > 0 or options.item_k > 0:
        frame = k_core(frame, options.user_k, options.item_k)
        record(f"k-core (users >= {options.user_k}, items >= {options.item_k})", frame)
    if len(frame) == 0:
        raise HBenchError("no interactions left after preprocessing; relax implicit_threshold / user_k / item_k")
    frame, user_ids, item_ids = remap_ids(frame)
    return Preprocessed(frame=frame, user_ids=user_ids, item_ids=item_ids, steps=steps)
