"""Uniform negative sampling that never returns one of the user's training items, a whole epoch at a time.

Rejection sampling, vectorised: draw uniformly, look each (user, item) up in the training graph's sorted
keys (`UserItemGraph.contains`), redraw only the rejected entries. With training density far below 1 a
handful of rounds suffice; users who have interacted with almost every item are caught before sampling
starts.

An epoch is drawn in one go (a permutation of the training pairs, then every negative) and the trainer
slices it into batches; `EpochStream` draws the next epoch in a background thread while the current one
trains. Both keep exact reproducibility: the random stream is consumed in the same order whatever the
batch size or the timing, and `EpochStream` reports the generator's state after each delivered epoch,
which is where a resumed run must continue.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from hbench.datasets.graph import UserItemGraph
from hbench.datasets.store import Interactions
from hbench.errors import HBenchError

MAX_REJECTION_ROUNDS = 1000


@dataclass(frozen=True)
class EpochSample:
    """One epoch of training triples in training order, and the sampler's state once they were drawn."""

    users: np.ndarray  # int64 [n]
    positives: np.ndarray  # int64 [n]
    negatives: np.ndarray  # int64 [n, n_negatives]
    rng_state_after: dict[str, Any]


@dataclass
class NegativeSampler:
    train: Interactions
    n_items: int
    rng: np.random.Generator
    graph: UserItemGraph | None = None  # the prepared split's cached graph; built from `train` when None

    def __post_init__(self) -> None:
        if self.graph is None:
            n_users = int(self.train.users.max(initial=-1)) + 1
            self.graph = UserItemGraph.from_parts([self.train], n_users, self.n_items)
        if self.graph.n_edges and self.graph.user_degree.max() >= self.n_items:
            raise HBenchError("a user has interacted with every item: no negative item can be sampled")

    def sample(self, users: np.ndarray, n: int) -> np.ndarray:
        """[len(users), n] items, each uniform over the items the user has not interacted with in training."""
        assert self.graph is not None
        rows = np.repeat(np.asarray(users, dtype=np.int64), n)
        items = self.rng.integers(0, self.n_items, size=rows.size)
        bad = np.flatnonzero(self.graph.contains(rows, items))
        for _ in range(MAX_REJECTION_ROUNDS):
            if bad.size == 0:
                break
            items[bad] = self.rng.integers(0, self.n_items, size=bad.size)
            bad = bad[self.graph.contains(rows[bad], items[bad])]
        else:
            raise HBenchError("negative sampling did not converge: a user has almost no non-interacted item")
        return items.reshape(len(users), n)

    def draw_epoch(self, n_negatives: int) -> EpochSample:
        """Every training pair once, in a fresh random order, with `n_negatives` negatives each."""
        order = self.rng.permutation(len(self.train))
        users = self.train.users[order].astype(np.int64)
        positives = self.train.items[order].astype(np.int64)
        negatives = self.sample(users, n_negatives)
        return EpochSample(users, positives, negatives, self.rng.bit_generator.state)

    def epoch(self, batch_size: int, n_negatives: int) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """One epoch as (users, positives, negatives) batches."""
        drawn = self.draw_epoch(n_negatives)
        for lo in range(0, len(drawn.users), batch_size):
            yield drawn.users[lo : lo + batch_size], drawn.positives[lo : lo + batch_size], \
                drawn.negatives[lo : lo + batch_size]


class EpochStream:
    """Epochs of `sampler`, each drawn in a background thread while the one before it trains.

    The thread is the only user of the sampler's generator while it runs, and epochs are drawn strictly
    one after another, so the sequence is the one `sampler.draw_epoch` would give in a loop.
    """

    def __init__(self, sampler: NegativeSampler, n_negatives: int) -> None:
        self._sampler, self._n_negatives = sampler, n_negatives
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hbench-sampler")
        self._next: Future[EpochSample] = self._pool.submit(sampler.draw_epoch, n_negatives)

    def next_epoch(self, *, prefetch: bool = True) -> EpochSample:
        """The next epoch; with `prefetch`, start drawing the one after it."""
        drawn = self._next.result()
        if prefetch:
            self._next = self._pool.submit(self._sampler.draw_epoch, self._n_negatives)
        return drawn

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> EpochStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
