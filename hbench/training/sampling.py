"""Uniform negative sampling that never returns one of the user's training items.

Rejection sampling, vectorised: draw uniformly, look each (user, item) key up in the sorted array of
training keys, redraw only the rejected entries. With training density far below 1 a handful of rounds
suffice; users who have interacted with almost every item are caught before sampling starts.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from hbench.datasets.store import Interactions
from hbench.errors import HBenchError

MAX_REJECTION_ROUNDS = 1000


@dataclass
class NegativeSampler:
    train: Interactions
    n_items: int
    rng: np.random.Generator

    def __post_init__(self) -> None:
        self._keys = np.unique(self.train.users.astype(np.int64) * self.n_items + self.train.items)
        degree = np.bincount(self.train.users, minlength=int(self.train.users.max(initial=-1)) + 1)
        if degree.size and degree.max() >= self.n_items:
            raise HBenchError("a user has interacted with every item: no negative item can be sampled")

    def is_positive(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        keys = users.astype(np.int64) * self.n_items + items
        pos = np.searchsorted(self._keys, keys)
        return self._keys[np.minimum(pos, len(self._keys) - 1)] == keys

    def sample(self, users: np.ndarray, n: int) -> np.ndarray:
        """[len(users), n] items, each uniform over the items the user has not interacted with in training."""
        rows = np.repeat(users, n)
        items = self.rng.integers(0, self.n_items, size=rows.size)
        bad = np.flatnonzero(self.is_positive(rows, items))
        for _ in range(MAX_REJECTION_ROUNDS):
            if bad.size == 0:
                break
            items[bad] = self.rng.integers(0, self.n_items, size=bad.size)
            bad = bad[self.is_positive(rows[bad], items[bad])]
        else:
            raise HBenchError("negative sampling did not converge: a user has almost no non-interacted item")
        return items.reshape(len(users), n)

    def epoch(self, batch_size: int, n_negatives: int) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """One pass over the training pairs in a fresh random order: (users, positives, negatives) batches."""
        order = self.rng.permutation(len(self.train))
        for lo in range(0, len(order), batch_size):
            index = order[lo : lo + batch_size]
            users = self.train.users[index]
            yield users, self.train.items[index], self.sample(users, n_negatives)
