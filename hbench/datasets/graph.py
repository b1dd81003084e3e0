"""The training graph of a prepared split: one user-item CSR, built once, shared by every stage.

Negative sampling asks "is (u, i) a training pair?", full ranking masks each user's training items, graph
models propagate over the normalised bipartite adjacency. All of them read this one structure, which
`PreparedDataset.train_graph` builds on first use and keeps.

CSR layout: the items of user u are `items[indptr[u]:indptr[u + 1]]`, ascending, each pair once (a pair
listed twice in a noisy custom split is one edge). Flattened, the pairs in CSR order are exactly the sorted
keys u · n_items + i, so membership is one binary search per query.

Adjacency of the bipartite graph on n = n_users + n_items nodes (users first, then items):

    A = [[0, R], [Rᵀ, 0]],   R the users × items 0/1 matrix of training pairs

    symmetric   Â = D^{-1/2} A D^{-1/2}          (LightGCN; an isolated node keeps a zero row)
    row         Â = D^{-1} A                     (mean of the neighbours)
    row_self    Â = (D + I)^{-1} (A + I)         (mean over the neighbours and the node itself, HGCF's code)

Validation and test pairs never enter the graph.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np
import scipy.sparse as sp


class UserItemPairs(Protocol):
    """What the graph reads of a split part (a `store.Interactions`). Typed by shape, not by class, because
    store.py builds the graph: the graph importing store back would make a circle."""

    @property
    def users(self) -> np.ndarray: ...

    @property
    def items(self) -> np.ndarray: ...


Normalisation = Literal["symmetric", "row", "row_self"]
NORMALISATIONS: tuple[str, ...] = ("symmetric", "row", "row_self")


@dataclass(frozen=True)
class TrainingGraph:
    n_users: int
    n_items: int
    indptr: np.ndarray  # int64 [n_users + 1]
    items: np.ndarray  # int64 [n_edges], ascending within each user's slice
    # Derived arrays (sorted keys, normalised adjacencies), built on first use: the graph itself is immutable.
    _cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_interactions(cls, part: UserItemPairs, n_users: int, n_items: int) -> TrainingGraph:
        keys = np.unique(part.users.astype(np.int64) * n_items + part.items.astype(np.int64))
        users, items = keys // n_items, keys % n_items
        indptr = np.searchsorted(users, np.arange(n_users + 1), side="left").astype(np.int64)
        return cls(n_users, n_items, indptr, items)

    @property
    def n_edges(self) -> int:
        return int(self.items.shape[0])

    @property
    def users(self) -> np.ndarray:
        """The user of every edge, in CSR order."""
        return np.repeat(np.arange(self.n_users, dtype=np.int64), np.diff(self.indptr))

    @property
    def user_degree(self) -> np.ndarray:
        return np.diff(self.indptr)

    @property
    def item_degree(self) -> np.ndarray:
        return np.bincount(self.items, minlength=self.n_items)

    def keys(self) -> np.ndarray:
        """Sorted pair keys u · n_items + i (CSR order), computed once."""
        if "keys" not in self._cache:
            self._cache["keys"] = self.users * self.n_items + self.items
        return self._cache["keys"]

    def contains(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Whether each (users[k], items[k]) is a training pair (a binary search among the sorted keys)."""
        keys = self.keys()
        query = np.asarray(users, dtype=np.int64) * self.n_items + np.asarray(items, dtype=np.int64)
        pos = np.minimum(np.searchsorted(keys, query), max(len(keys) - 1, 0))
        return keys[pos] == query if len(keys) else np.zeros(query.shape, dtype=bool)

    def adjacency(self, normalisation: Normalisation = "symmetric") -> sp.csr_matrix:
        """The normalised (n_users + n_items)² adjacency, float32 CSR, cached (models move it to their device)."""
        if normalisation not in NORMALISATIONS:
            raise ValueError(f"normalisation must be one of {', '.join(NORMALISATIONS)}, not {normalisation!r}")
        key = f"adjacency:{normalisation}"
        if key not in self._cache:
            self._cache[key] = self._build_adjacency(normalisation)
        return self._cache[key]

    def _build_adjacency(self, normalisation: str) -> sp.csr_matrix:
        n = self.n_users + self.n_items
        u, i = self.users, self.items + self.n_users
        rows = np.concatenate([u, i])
        cols = np.concatenate([i, u])
        degree = np.bincount(rows, minlength=n).astype(np.float64)
        if normalisation == "symmetric":
            inv_sqrt = np.zeros(n)
            np.divide(1.0, np.sqrt(degree), out=inv_sqrt, where=degree > 0)
            values = inv_sqrt[rows] * inv_sqrt[cols]
        elif normalisation == "row":
            values = 1.0 / degree[rows]
        else:
            loops = np.arange(n, dtype=np.int64)
            rows, cols = np.concatenate([rows, loops]), np.concatenate([cols, loops])
            values = 1.0 / (degree[rows] + 1.0)
        matrix = sp.csr_matrix((values.astype(np.float32), (rows, cols)), shape=(n, n))
        matrix.sort_indices()
        return matrix
