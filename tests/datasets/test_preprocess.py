"""Threshold, de-duplication, iterative k-core and id remapping."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import pytest

from hbench.datasets.preprocess import (
    apply_implicit_threshold,
    drop_duplicates,
    k_core,
    preprocess,
    remap_ids,
    stable_argsort,
)
from hbench.datasets.spec import PrepareOptions
from hbench.errors import HBenchError


def brute_force_k_core(pairs: list[tuple[int, int]], user_k: int, item_k: int) -> tuple[list[tuple[int, int]], int]:
    """The definition, one removal sweep at a time, on plain Python lists; also the number of sweeps."""
    sweeps = 0
    while True:
        sweeps += 1
        users = Counter(u for u, _ in pairs)
        items = Counter(i for _, i in pairs)
        kept = [(u, i) for u, i in pairs if users[u] >= user_k and items[i] >= item_k]
        if kept == pairs:
            return kept, sweeps
        pairs = kept


@pytest.mark.parametrize(("seed", "user_k", "item_k"), [(0, 5, 5), (1, 3, 10), (2, 10, 0), (3, 0, 4), (4, 8, 8)])
def test_k_core_matches_brute_force(seed: int, user_k: int, item_k: int) -> None:
    rng = np.random.default_rng(seed)
    n = 3000
    # Skewed users and items so that removals cascade over several rounds.
    users = (rng.pareto(1.0, n) * 5).astype(int) % 300
    items = (rng.pareto(1.0, n) * 5).astype(int) % 200
    frame = pd.DataFrame({"user": users, "item": items}).drop_duplicates().reset_index(drop=True)
    pairs = list(zip(frame["user"].tolist(), frame["item"].tolist(), strict=True))
    expected, sweeps = brute_force_k_core(pairs, user_k, item_k)
    assert 0 < len(expected) < len(pairs)
    if user_k and item_k:
        assert sweeps > 2  # removals cascaded: one pass would not have been enough
    core = k_core(frame, user_k, item_k)
    assert list(zip(core["user"].tolist(), core["item"].tolist(), strict=True)) == expected
    if user_k:
        assert core.groupby("user").size().min() >= user_k
    if item_k:
        assert core.groupby("item").size().min() >= item_k


def test_k_core_disabled_is_identity() -> None:
    frame = pd.DataFrame({"user": [1, 2], "item": [3, 4]})
    assert k_core(frame, 0, 0) is frame


def test_drop_duplicates_keeps_earliest() -> None:
    frame = pd.DataFrame(
        {
            "user": ["a", "a", "a", "b", "b"],
            "item": ["x", "x", "y", "x", "x"],
            "rating": [1.0, 2.0, 3.0, 4.0, 5.0],
            "timestamp": [20, 10, 5, 7, 7],
        }
    )
    kept = drop_duplicates(frame)
    # (a, x): the ts=10 row is earlier; (b, x): equal times, the first in the file wins; file order kept.
    assert kept["rating"].tolist() == [2.0, 3.0, 4.0]


def test_drop_duplicates_by_sequence_order_and_within_parts() -> None:
    frame = pd.DataFrame({"user": [1, 1, 1, 1], "item": [5, 5, 5, 6], "order": [3, 1, 2, 0], "part": [0, 0, 2, 0]})
    kept = drop_duplicates(frame)
    # Within train, order 1 beats order 3; the test copy is another part and stays.
    assert kept["order"].tolist() == [1, 2, 0]


def test_implicit_threshold() -> None:
    frame = pd.DataFrame({"user": [1, 1, 2], "item": [1, 2, 3], "rating": [3.0, 4.0, 5.0]})
    assert apply_implicit_threshold(frame, 4).index.tolist() == [1, 2]
    assert apply_implicit_threshold(frame, None) is frame
    with pytest.raises(HBenchError, match="needs ratings"):
        apply_implicit_threshold(frame.drop(columns="rating"), 4)


def test_remap_ids_dense_in_sorted_order() -> None:
    frame = pd.DataFrame({"user": [30, 10, 30, 20], "item": ["b", "a", "c", "b"]})
    out, user_ids, item_ids = remap_ids(frame)
    assert user_ids.tolist() == [10, 20, 30] and item_ids.tolist() == ["a", "b", "c"]
    assert out["user"].tolist() == [2, 0, 2, 1] and out["item"].tolist() == [1, 0, 2, 1]
    assert out["user"].dtype == np.int64


def test_preprocess_records_every_step() -> None:
    frame = pd.DataFrame(
        {
            "user": [1, 1, 1, 2, 2, 3],
            "item": [1, 1, 2, 1, 2, 3],
            "rating": [5.0, 5.0, 4.0, 5.0, 4.0, 1.0],
            "timestamp": [1, 2, 3, 4, 5, 6],
        }
    )
    result = preprocess(frame, PrepareOptions(implicit_threshold=4, user_k=2, item_k=2))
    assert [s["interactions"] for s in result.steps] == [6, 5, 4, 4]
    assert result.steps[0] == {"step": "raw", "users": 3, "items": 3, "interactions": 6}
    assert result.n_users == 2 and result.n_items == 2
    assert result.frame["timestamp"].tolist() == [1, 3, 4, 5]


def test_preprocess_without_dedup_keeps_repeats() -> None:
    frame = pd.DataFrame({"user": [1, 1, 1], "item": [2, 2, 3], "order": [0, 1, 2]})
    assert len(preprocess(frame, PrepareOptions(dedup=False)).frame) == 3
    assert len(preprocess(frame, PrepareOptions()).frame) == 2


def test_preprocess_everything_filtered() -> None:
    frame = pd.DataFrame({"user": [1], "item": [2]})
    with pytest.raises(HBenchError, match="no interactions left"):
        preprocess(frame, PrepareOptions(user_k=5))


def test_stable_argsort_matches_lexsort() -> None:
    rng = np.random.default_rng(0)
    small = [rng.integers(0, 5, 1000), rng.integers(-3, 3, 1000)]
    assert np.array_equal(stable_argsort(small), np.lexsort(tuple(reversed(small))))
    # Ranges too wide to pack into one int64 fall back to np.lexsort.
    wide = [rng.integers(0, 1 << 40, 1000), rng.integers(0, 1 << 40, 1000)]
    assert np.array_equal(stable_argsort(wide), np.lexsort(tuple(reversed(wide))))
    assert stable_argsort([np.zeros(0, np.int64)]).size == 0
