"""User-item pairs as one CSR graph: the training graph of a prepared split, and the masks of ranking.

Negative sampling asks "is (u, i) a training pair?", full ranking masks each user's known items, graph
models propagate over the normalised bipartite adjacency, attentive models read each user's history.
All of them read this one structure: `PreparedDataset.train_graph` (the training pairs) and
`PreparedDataset.pairs_through(stage)` (training pairs plus the validation and test pairs up to a stage,
what full ranking masks) build it on first use and keep it; preparation builds it over all parts to
sample the stored negatives.

CSR layout: the items of user u are `items[indptr[u]:indptr[u + 1]]`, ascending, each pair once (a pair
listed twice in a noisy custom split is one edge), so membership is a binary search in the user's row.

Adjacency of the bipartite graph on n = n_users + n_items nodes (users first, then items):

    A = [[0, R], [Rᵀ, 0]],   R the users × items 0/1 matrix of training pairs

    symmetric   Â = D^{-1/2} A D^{-1/2}          (LightGCN; an isolated node keeps a zero row)
    row         Â = D^{-1} A                     (mean of the neighbours)
    row_self    Â = (D + I)^{-1} (A + I)         (mean over the neighbours and the node itself, HGCF's code)

Validation and test pairs never enter the graph.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numba
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


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """`np.unique` by sorting: several times faster than the hash-based path numpy 2 takes for integers."""
    values = np.sort(values)
    return values[np.r_[True, values[1:] != values[:-1]]] if len(values) else values


def concatenated_ranges(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row, index) of every element of the concatenated ranges [starts[row], ends[row]), without a loop."""
    lengths = ends - starts
    rows = np.repeat(np.arange(len(starts)), lengths)
    index = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths) + np.repeat(starts, lengths)
    return rows, index


@numba.njit(cache=True, nogil=True)
def _contains(indptr: np.ndarray, row_items: np.ndarray, users: np.ndarray, items: np.ndarray, found: np.ndarray) -> None:
    """found[k] = items[k] is among the (ascending) items of row users[k]; users outside the rows have none."""
    n_rows = indptr.shape[0] - 1
    for k in range(users.shape[0]):
        user = users[k]
        if user < 0 or user >= n_rows:
            found[k] = False
            continue
        lo, hi = indptr[user], indptr[user + 1]
        while lo < hi:  # the first position whose item is not below items[k]
            mid = (lo + hi) // 2
            if row_items[mid] < items[k]:
                lo = mid + 1
            else:
                hi = mid
        found[k] = lo < indptr[user + 1] and row_items[lo] == items[k]


@dataclass(frozen=True)
class UserItemGraph:
    n_users: int
    n_items: int
    indptr: np.ndarray  # int64 [n_users + 1]
    items: np.ndarray  # int64 [n_edges], ascending within each user's slice
    # Derived arrays (normalised adjacencies), built on first use: the graph itself is immutable.
    _cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_parts(cls, parts: Sequence[UserItemPairs], n_users: int, n_items: int) -> UserItemGraph:
        """The union of the pairs of `parts` (say train and validation), each pair once."""
        if not parts:
            return cls(n_users, n_items, np.zeros(n_users + 1, np.int64), np.zeros(0, np.int64))
        users = np.concatenate([np.asarray(p.users, dtype=np.int64) for p in parts])
        items = np.concatenate([np.asarray(p.items, dtype=np.int64) for p in parts])
        keys = sorted_unique(users * n_items + items)
        return cls(n_users, n_items, np.searchsorted(keys // n_items, np.arange(n_users + 1)).astype(np.int64),
                   keys % n_items)

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

    def edges_of(self, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(row, edge): for every edge of `users[row]`, in order of `users` and CSR order within a user, the
        row it belongs to and its index into `items` (so `items[edge]` are the users' items)."""
        users = np.asarray(users, dtype=np.int64)
        return concatenated_ranges(self.indptr[users], self.indptr[users + 1])

    def contains(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Whether each (users[k], items[k]) is a pair of the graph: a binary search in the user's CSR row.

        Compiled: a search among the user's few items stays in cache, where one among all the sorted pair keys
        did not (48 ms against 6 ms for an epoch's negatives on amazon-clothing; negative sampling calls it).
        """
        users, items = np.broadcast_arrays(np.asarray(users, dtype=np.int64), np.asarray(items, dtype=np.int64))
        found = np.empty(users.shape, dtype=bool)
        _contains(self.indptr, self.items, np.ascontiguousarray(users).reshape(-1),
                  np.ascontiguousarray(items).reshape(-1), found.reshape(-1))
        return found

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
