"""Leave-one-out, ratio and fixed splits; sampled negatives."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hbench.datasets.graph import UserItemGraph
from hbench.datasets.splits import (
    SeedStreams,
    Split,
    fixed_split,
    leave_one_out,
    make_split,
    ratio_split,
    sample_negatives,
)
from hbench.datasets.store import Interactions
from hbench.errors import HBenchError


def pairs(part: Interactions) -> list[tuple[int, int]]:
    return list(zip(part.users.tolist(), part.items.tolist(), strict=True))


def rng(seed: int = 0) -> np.random.Generator:
    return SeedStreams.from_seed(seed).split


def random_frame(seed: int, n_users: int = 200, n_items: int = 500, per_user: int = 12) -> pd.DataFrame:
    """Users with 1..per_user distinct items each, in random file order, without time information."""
    gen = np.random.default_rng(seed)
    rows = [(u, int(i)) for u in range(n_users) for i in gen.choice(n_items, gen.integers(1, per_user + 1), False)]
    frame = pd.DataFrame(rows, columns=["user", "item"])
    return frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)


def test_loo_temporal_hand_worked() -> None:
    frame = pd.DataFrame(
        {
            # user 0: items by time 11 (ts 10), 12 (20), 10 (30), 13 (40); user 1: two items; user 2: one.
            "user": [0, 0, 0, 0, 1, 1, 2],
            "item": [10, 11, 12, 13, 20, 21, 30],
            "timestamp": [30, 10, 20, 40, 5, 5, 1],
        }
    )
    split = leave_one_out(frame, order="temporal", rng=rng())
    assert split.order == "temporal"
    assert pairs(split.test) == [(0, 13), (1, 21)]  # user 1: equal times, the later row in the file is last
    assert pairs(split.valid) == [(0, 10)]  # user 1 (two items) gives only a test item
    assert pairs(split.train) == [(0, 11), (0, 12), (1, 20), (2, 30)]  # time order within a user
    assert split.train.timestamps is not None and split.train.timestamps.tolist() == [10, 20, 5, 1]


def test_loo_follows_sequence_order() -> None:
    frame = pd.DataFrame({"user": [7, 7, 7, 7], "item": [4, 3, 2, 1], "order": [0, 1, 2, 3]})
    split = leave_one_out(frame, order="temporal", rng=rng())
    assert pairs(split.test) == [(7, 1)] and pairs(split.valid) == [(7, 2)]
    assert split.train.timestamps is None


def test_loo_random_is_seeded() -> None:
    frame = random_frame(0)
    first = leave_one_out(frame, order="temporal", rng=rng(1))  # no time information: random
    again = leave_one_out(frame, order="random", rng=rng(1))
    other = leave_one_out(frame, order="random", rng=rng(2))
    assert first.order == "random"
    assert pairs(first.test) == pairs(again.test) and pairs(first.valid) == pairs(again.valid)
    assert pairs(first.test) != pairs(other.test)
    counts = frame.groupby("user").size()
    assert len(first.test) == int((counts >= 2).sum()) and len(first.valid) == int((counts >= 3).sum())
    everything = sorted(pairs(first.train) + pairs(first.valid) + pairs(first.test))
    assert everything == sorted(zip(frame["user"], frame["item"], strict=True))


def test_ratio_split_temporal() -> None:
    n = 10
    frame = pd.DataFrame({"user": [0] * n + [1] * 3 + [2], "item": list(range(n)) + [0, 1, 2] + [5]})
    frame["timestamp"] = np.arange(len(frame))[::-1]  # later rows are earlier in time
    split = ratio_split(frame, (0.8, 0.1, 0.1), order="temporal", rng=rng())
    assert pairs(split.test) == [(0, 0)] and pairs(split.valid) == [(0, 1)]
    # 3 * 0.1 rounds to 0: users 1 and 2 keep everything in train.
    assert sorted(pairs(split.train)) == [(0, i) for i in range(2, n)] + [(1, 0), (1, 1), (1, 2), (2, 5)]


def test_ratio_split_keeps_a_training_item() -> None:
    frame = pd.DataFrame({"user": [0, 0], "item": [1, 2], "order": [0, 1]})
    split = ratio_split(frame, (0.2, 0.4, 0.4), order="temporal", rng=rng())
    assert pairs(split.train) == [(0, 1)] and pairs(split.test) == [(0, 2)] and len(split.valid) == 0


def test_ratio_split_random_sizes() -> None:
    frame = random_frame(3, per_user=40)
    split = ratio_split(frame, (0.6, 0.2, 0.2), order="random", rng=rng(5))
    sizes = frame.groupby("user").size()
    test_sizes = pd.Series(split.test.users).value_counts().reindex(sizes.index, fill_value=0)
    train_sizes = pd.Series(split.train.users).value_counts().reindex(sizes.index, fill_value=0)
    assert (test_sizes == np.minimum(np.floor(sizes * 0.2 + 0.5), sizes - 1)).all()
    assert (train_sizes >= 1).all()


def test_ratio_split_rejects_bad_ratios() -> None:
    with pytest.raises(HBenchError, match="ratios"):
        ratio_split(random_frame(0), (0.5, 0.1, 0.1), order="random", rng=rng())


def fixed_frame() -> pd.DataFrame:
    train = [(u, i) for u in range(50) for i in range(u % 5 + 1)]  # users with 1..5 training items
    test = [(u, 100 + u) for u in range(50)]
    frame = pd.DataFrame(train + test, columns=["user", "item"])
    frame["part"] = np.array([0] * len(train) + [2] * len(test), dtype=np.int8)
    return frame


def test_fixed_split_carves_validation() -> None:
    frame = fixed_frame()
    split = fixed_split(frame, has_valid=False, rng=rng(0))
    again = fixed_split(frame, has_valid=False, rng=rng(0))
    other = fixed_split(frame, has_valid=False, rng=rng(9))
    assert pairs(split.valid) == pairs(again.valid) and pairs(split.valid) != pairs(other.valid)
    assert pairs(split.test) == [(u, 100 + u) for u in range(50)]
    train_sizes = frame[frame["part"] == 0].groupby("user").size()
    assert split.valid.users.tolist() == [u for u in range(50) if train_sizes[u] >= 2]
    shipped_train = set(zip(frame["user"][frame["part"] == 0], frame["item"][frame["part"] == 0], strict=True))
    assert set(pairs(split.valid)) <= shipped_train
    assert sorted(pairs(split.train) + pairs(split.valid)) == sorted(shipped_train)


def test_fixed_split_with_shipped_validation() -> None:
    frame = fixed_frame()
    frame.loc[frame.index[:3], "part"] = np.int8(1)
    split = make_split(frame, kind="fixed", order="temporal", ratios=(0.8, 0.1, 0.1), has_valid=True, rng=rng())
    assert split.order == "shipped" and len(split.valid) == 3


def test_fixed_needs_a_shipped_split() -> None:
    with pytest.raises(HBenchError, match="ships its own split"):
        make_split(random_frame(0), kind="fixed", order="random", ratios=(0.8, 0.1, 0.1), has_valid=False, rng=rng())


def split_of(frame: pd.DataFrame) -> Split:
    return leave_one_out(frame, order="random", rng=rng())


def check_negatives(negatives: np.ndarray, split: Split, n_users: int, n_items: int, count: int) -> None:
    assert negatives.shape == (n_users, count) and negatives.dtype == np.int32
    assert negatives.min() >= 0 and negatives.max() < n_items
    positives = set(pairs(split.train) + pairs(split.valid) + pairs(split.test))
    for user, row in enumerate(negatives.tolist()):
        assert len(set(row)) == count, "candidates of a user must be distinct"
        assert not any((user, item) in positives for item in row), "a candidate is a positive"


def test_negatives_never_positive_distinct_and_seeded() -> None:
    n_users, n_items = 200, 500
    split = split_of(random_frame(4, n_users, n_items))
    keys = UserItemGraph.from_parts(split.parts(), n_users, n_items)
    negatives = sample_negatives(keys, 100, SeedStreams.from_seed(3).test_negatives)
    check_negatives(negatives, split, n_users, n_items, 100)
    same = sample_negatives(keys, 100, SeedStreams.from_seed(3).test_negatives)
    valid = sample_negatives(keys, 100, SeedStreams.from_seed(3).valid_negatives)
    assert np.array_equal(negatives, same)
    assert not np.array_equal(negatives, valid)


def test_negatives_shortfall_is_filled_exactly() -> None:
    # 40 items; user 0 has 30 positives, so 10 candidates leave it no slack: the exact fix-up path.
    rows = [(0, i) for i in range(30)] + [(u, u) for u in range(1, 60)]
    frame = pd.DataFrame(rows, columns=["user", "item"]).assign(item=lambda f: f["item"] % 40)
    split = split_of(frame)
    negatives = sample_negatives(UserItemGraph.from_parts(split.parts(), 60, 40), 10, rng(1))
    check_negatives(negatives, split, 60, 40, 10)
    assert sorted(negatives[0].tolist()) == list(range(30, 40))


def test_negatives_too_few_items() -> None:
    frame = pd.DataFrame({"user": [0] * 8 + [1], "item": list(range(8)) + [0]})
    split = split_of(frame)
    with pytest.raises(HBenchError, match="fewer than negatives=3"):
        sample_negatives(UserItemGraph.from_parts(split.parts(), 2, 10), 3, rng())


def test_no_negatives() -> None:
    assert sample_negatives(UserItemGraph.from_parts([], 4, 10), 0, rng()).shape == (4, 0)
