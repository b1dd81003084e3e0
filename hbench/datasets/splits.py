"""Train / validation / test splits and sampled negative candidates.

All randomness comes from one seed through `numpy.random.SeedSequence(seed).spawn(3)`: one stream for the
split, one for the validation candidates, one for the test candidates, so that changing the number of
negatives never changes the split, and the same seed always gives the same split and candidates.

Input frames hold dense ids (`user`, `item`) plus optional `timestamp`, `order` and `part` columns, with
rows in file order (see `hbench.datasets.preprocess`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from hbench.datasets.graph import UserItemGraph
from hbench.datasets.preprocess import has_time, stable_argsort, time_sort_keys
from hbench.datasets.spec import SplitOrder
from hbench.datasets.store import Interactions
from hbench.errors import HBenchError

TRAIN, VALID, TEST = 0, 1, 2
# Users per block when sampling negatives: bounds memory and, being fixed, keeps results reproducible.
NEGATIVE_BLOCK = 1 << 15


@dataclass(frozen=True)
class SeedStreams:
    """Independent random generators derived from one seed."""

    split: np.random.Generator
    valid_negatives: np.random.Generator
    test_negatives: np.random.Generator

    @classmethod
    def from_seed(cls, seed: int) -> SeedStreams:
        split, valid, test = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))
        return cls(split=split, valid_negatives=valid, test_negatives=test)


@dataclass(frozen=True)
class Split:
    """The three parts, and how they were cut: `temporal` or `random` (the order actually used), or
    `shipped` (a fixed split, possibly with a random validation part carved from its training part)."""

    train: Interactions
    valid: Interactions
    test: Interactions
    order: str

    def parts(self) -> tuple[Interactions, Interactions, Interactions]:
        return self.train, self.valid, self.test


def effective_order(frame: pd.DataFrame, order: SplitOrder) -> SplitOrder:
    """`temporal` only when the data knows time (timestamps or sequence order); otherwise `random`."""
    return "temporal" if order == "temporal" and has_time(frame) else "random"


def _canonical_order(frame: pd.DataFrame) -> np.ndarray:
    """Row indices by user, then by time when known (timestamp, then sequence order), then file order.

    This is also how every part is stored.
    """
    return stable_argsort([frame["user"].to_numpy(np.int64), *time_sort_keys(frame)])


def _within_user_order(frame: pd.DataFrame, order: SplitOrder, rng: np.random.Generator) -> np.ndarray:
    """Row indices sorted by user and, within a user, by time (ties: file order) or at random."""
    if order == "temporal":
        return _canonical_order(frame)
    return stable_argsort([frame["user"].to_numpy(np.int64), rng.permutation(len(frame))])


def _positions(users_sorted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For rows sorted by user: each row's position within its user and its user's row count."""
    starts = np.flatnonzero(np.r_[True, users_sorted[1:] != users_sorted[:-1]])
    counts = np.diff(np.r_[starts, len(users_sorted)])
    position = np.arange(len(users_sorted)) - np.repeat(starts, counts)
    return position, np.repeat(counts, counts)


def _assemble(frame: pd.DataFrame, labels: np.ndarray, order: str, canonical: np.ndarray | None = None) -> Split:
    """Cut `frame` into parts by per-row labels (TRAIN / VALID / TEST), each stored in canonical order
    (passed in when the caller has already computed it)."""
    if canonical is None:
        canonical = _canonical_order(frame)
    users = frame["user"].to_numpy(np.int64)[canonical]
    items = frame["item"].to_numpy(np.int64)[canonical]
    times = frame["timestamp"].to_numpy(np.int64)[canonical] if "timestamp" in frame.columns else None
    labels = labels[canonical]
    parts = []
    for label in (TRAIN, VALID, TEST):
        mask = labels == label
        parts.append(Interactions(users[mask], items[mask], None if times is None else times[mask]))
    return Split(train=parts[0], valid=parts[1], test=parts[2], order=order)


def _labels_in_frame_order(sorted_rows: np.ndarray, labels_sorted: np.ndarray) -> np.ndarray:
    labels = np.empty_like(labels_sorted)
    labels[sorted_rows] = labels_sorted
    return labels


def leave_one_out(frame: pd.DataFrame, *, order: SplitOrder, rng: np.random.Generator) -> Split:
    """Per user: the last interaction is test, the second-last validation, the rest train.

    "Last" by time when `order` is temporal and the data knows time, else in a seeded random order.
    A user with two interactions gives only a test item; a user with one stays in train only.
    """
    order = effective_order(frame, order)
    sorted_rows = _within_user_order(frame, order, rng)
    position, count = _positions(frame["user"].to_numpy(np.int64)[sorted_rows])
    from_end = count - 1 - position
    labels_sorted = np.full(len(frame), TRAIN, dtype=np.int8)
    labels_sorted[(from_end == 0) & (count >= 2)] = TEST
    labels_sorted[(from_end == 1) & (count >= 3)] = VALID
    labels = _labels_in_frame_order(sorted_rows, labels_sorted)
    return _assemble(frame, labels, order, sorted_rows if order == "temporal" else None)


def check_ratios(ratios: tuple[float, float, float]) -> tuple[float, float, float]:
    """Train / validation / test fractions: three non-negative numbers summing to 1, train > 0."""
    if len(ratios) != 3 or any(r < 0 for r in ratios) or ratios[0] <= 0 or abs(sum(ratios) - 1.0) > 1e-6:
        raise HBenchError(f"ratios must be three non-negative fractions train,valid,test summing to 1 (got {ratios})")
    return (float(ratios[0]), float(ratios[1]), float(ratios[2]))


def ratio_split(
    frame: pd.DataFrame, ratios: tuple[float, float, float], *, order: SplitOrder, rng: np.random.Generator
) -> Split:
    """Per user: the last `round(n * test)` interactions are test, the `round(n * valid)` before them
    validation, the rest train (by time, or in a seeded random order).

    Every user keeps at least one training interaction: when rounding leaves none, validation shrinks
    first, then test.
    """
    _, valid_ratio, test_ratio = check_ratios(ratios)
    order = effective_order(frame, order)
    sorted_rows = _within_user_order(frame, order, rng)
    position, count = _positions(frame["user"].to_numpy(np.int64)[sorted_rows])
    # floor(x + 0.5): round half up, unlike numpy's round-half-to-even.
    n_test = np.floor(count * test_ratio + 0.5).astype(np.int64)
    n_valid = np.floor(count * valid_ratio + 0.5).astype(np.int64)
    n_test = np.minimum(n_test, count - 1)
    n_valid = np.minimum(n_valid, count - 1 - n_test)
    from_end = count - 1 - position
    labels_sorted = np.full(len(frame), TRAIN, dtype=np.int8)
    labels_sorted[from_end < n_test + n_valid] = VALID
    labels_sorted[from_end < n_test] = TEST
    labels = _labels_in_frame_order(sorted_rows, labels_sorted)
    return _assemble(frame, labels, order, sorted_rows if order == "temporal" else None)


def fixed_split(frame: pd.DataFrame, *, has_valid: bool, rng: np.random.Generator) -> Split:
    """The shipped split (`part` column). Without a shipped validation part, one training interaction of
    every user with at least two, chosen at random (seeded), becomes validation."""
    labels = frame["part"].to_numpy(np.int8).copy()
    if has_valid:
        return _assemble(frame, labels, "shipped")
    train_rows = np.flatnonzero(labels == TRAIN)
    train = frame.iloc[train_rows]
    sorted_rows = _within_user_order(train, "random", rng)
    position, count = _positions(train["user"].to_numpy(np.int64)[sorted_rows])
    # The last row of a user in a random within-user order is a uniformly random one of its rows.
    carve = (position == count - 1) & (count >= 2)
    labels[train_rows[sorted_rows[carve]]] = VALID
    return _assemble(frame, labels, "shipped + random validation")


def make_split(
    frame: pd.DataFrame,
    *,
    kind: str,
    order: SplitOrder,
    ratios: tuple[float, float, float],
    has_valid: bool,
    rng: np.random.Generator,
) -> Split:
    """Dispatch on the split kind (`loo`, `ratio`, `fixed`)."""
    if kind == "loo":
        return leave_one_out(frame, order=order, rng=rng)
    if kind == "ratio":
        return ratio_split(frame, ratios, order=order, rng=rng)
    if kind == "fixed":
        if "part" not in frame.columns:
            raise HBenchError("split=fixed needs a dataset that ships its own split; use split=loo or split=ratio")
        return fixed_split(frame, has_valid=has_valid, rng=rng)
    raise HBenchError(f"unknown split {kind!r}; choose loo, ratio or fixed")


def sample_negatives(
    positives: UserItemGraph,
    count: int,
    rng: np.random.Generator,
    advance: Callable[[int], None] | None = None,
) -> np.ndarray:
    """For every user, `count` distinct items that are never among its positives, as int32 [n_users, count].

    `positives` holds every pair of train, validation and test (`UserItemGraph.from_parts(split.parts())`). Users are
    processed in fixed blocks by rejection sampling: draw more candidates than needed, drop positives
    and repeats, keep the first `count` in draw order; a user left short (many positives) is filled by an
    exact draw from its complement. `advance(n)` reports n more users done.
    """
    n_users, n_items = positives.n_users, positives.n_items
    if count <= 0:
        return np.zeros((n_users, 0), dtype=np.int32)
    free = n_items - positives.user_degree
    if (free < count).any():
        user = int(np.argmin(free))
        raise HBenchError(
            f"user {user} (internal id) has only {int(free[user])} items it never interacted with, fewer than "
            f"negatives={count}; lower negatives (or tighten the k-core)"
        )
    out = np.empty((n_users, count), dtype=np.int32)
    # Enough draws that a user with a typical share of positives almost never comes up short.
    draws = int(count * 1.25) + 16
    for start in range(0, n_users, NEGATIVE_BLOCK):
        stop = min(start + NEGATIVE_BLOCK, n_users)
        out[start:stop] = _sample_block(positives, start, stop, count, draws, rng)
        if advance is not None:
            advance(stop - start)
    return out


def _sample_block(
    positives: UserItemGraph, start: int, stop: int, count: int, draws: int, rng: np.random.Generator
) -> np.ndarray:
    """Negatives for users `start..stop-1` (see `sample_negatives`)."""
    n, n_items = stop - start, positives.n_items
    users = np.arange(start, stop, dtype=np.int64)[:, None]
    candidates = rng.integers(0, n_items, size=(n, draws), dtype=np.int64)
    keys = users * n_items + candidates
    is_positive = positives.contains(users, candidates)
    # First occurrence of each key in row-major (draw) order marks the row's distinct candidates.
    first = np.zeros(keys.size, dtype=bool)
    first[np.unique(keys.ravel(), return_index=True)[1]] = True
    good = first.reshape(n, draws) & ~is_positive
    rank = np.cumsum(good, axis=1)
    take = good & (rank <= count)
    block = np.empty((n, count), dtype=np.int32)
    complete = rank[:, -1] >= count
    block[complete] = candidates[take & complete[:, None]].reshape(-1, count)
    for row in np.flatnonzero(~complete):
        block[row] = _exact_negatives(positives, start + int(row), count, rng)
    return block


def _exact_negatives(positives: UserItemGraph, user: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` distinct non-positive items of one user, drawn without replacement from its complement."""
    own = positives.items[positives.indptr[user]:positives.indptr[user + 1]]
    complement = np.setdiff1d(np.arange(positives.n_items), own, assume_unique=True)
    return rng.choice(complement, size=count, replace=False).astype(np.int32)
