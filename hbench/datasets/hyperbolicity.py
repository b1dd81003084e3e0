"""Gromov δ-hyperbolicity of a dataset's training graph: how tree-like its shortest-path metric is.

The graph is bipartite: one node per user and per item, an edge per distinct training interaction. On the
shortest-path metric d, the four-point condition gives each quadruple (x, y, z, w) the value

    S₁ = d(x,y) + d(z,w),   S₂ = d(x,z) + d(y,w),   S₃ = d(x,w) + d(y,z)
    δ(x,y,z,w) = (largest S − second largest S) / 2

and the graph's δ is the maximum over all quadruples: 0 for a tree, n/4 for a cycle of n ≡ 0 (mod 4)
nodes. It is usually read relative to the diameter, 2δ/diam ∈ [0, 1] (HGCF, HICF): small means tree-like.

Only the largest connected component is used (δ is defined on a connected metric). Enumerating quadruples
is O(N⁴), so they are sampled: a pool of `nodes` nodes is drawn uniformly from the component, breadth-first
distances are computed from each pool node (scipy.sparse.csgraph), and `samples` quadruples of distinct
pool nodes are drawn uniformly (all of them when there are no more than `samples`, which makes δ exact
when the pool is the whole component). The sampled maximum is a lower bound of the graph's δ; with
confidence 1 − α, quadruples of the pool whose δ exceeds it are a share below 1 − α^(1/n) of all
(the order-statistic bound for the maximum of n draws). The mean δ gets a percentile bootstrap interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import connected_components, dijkstra

from hbench.datasets.store import Interactions
from hbench.errors import HBenchError

DEFAULT_SAMPLES = 100_000
DEFAULT_NODES = 500
_BFS_CHUNK = 64  # sources per shortest-path call: keeps the [chunk, N] distance block small on big graphs


@dataclass(frozen=True)
class Hyperbolicity:
    """The estimate and what it rests on; distances count edges of the user-item graph."""

    delta: float  # max δ over the sampled quadruples (a lower bound of the graph's δ)
    mean_delta: float
    mean_interval: tuple[float, float]  # percentile bootstrap interval of the mean δ
    exceed_bound: float  # with `confidence`, the share of pool quadruples with δ above `delta` is below this
    confidence: float
    diameter: int  # exact when every component node is in the pool, else a lower bound (largest eccentricity seen)
    diameter_exact: bool
    quadruples: int  # quadruples evaluated
    exhaustive: bool  # every quadruple of the pool was evaluated
    pool: int  # nodes the quadruples were drawn from
    component_nodes: int
    component_users: int
    component_items: int
    graph_nodes: int  # users + items with at least one training interaction
    components: int  # connected components among those
    seed: int
    delta_counts: dict[float, int]  # how many sampled quadruples have each δ value

    @property
    def relative(self) -> float:
        """2δ / diam: 0 for a tree, 1 at most."""
        return 2.0 * self.delta / self.diameter if self.diameter else 0.0


def training_graph(train: Interactions, n_users: int, n_items: int) -> sparse.csr_matrix:
    """Symmetric adjacency of the user-item graph: nodes 0..n_users-1 are users, then the items."""
    users = np.asarray(train.users, dtype=np.int64)
    items = np.asarray(train.items, dtype=np.int64) + n_users
    n = n_users + n_items
    ones = np.ones(2 * len(users), dtype=np.int8)
    graph = sparse.coo_matrix((ones, (np.concatenate([users, items]), np.concatenate([items, users]))), shape=(n, n))
    graph = graph.tocsr()
    graph.data[:] = 1  # repeated interactions are one edge
    return graph


def four_point_delta(distances: np.ndarray, quadruples: np.ndarray) -> np.ndarray:
    """δ of each row (x, y, z, w) of `quadruples` [q, 4] (indices into the square `distances`)."""
    x, y, z, w = quadruples.T
    sums = np.stack([distances[x, y] + distances[z, w], distances[x, z] + distances[y, w],
                     distances[x, w] + distances[y, z]], axis=1)
    sums.sort(axis=1)
    return (sums[:, 2] - sums[:, 1]) / 2.0


def _quadruples(pool: int, samples: int, rng: np.random.Generator) -> tuple[np.ndarray, bool]:
    """All quadruples of distinct pool positions when there are at most `samples`, else `samples` drawn
    uniformly (with replacement among quadruples, each one four distinct positions)."""
    if math.comb(pool, 4) <= samples:
        return np.array(list(combinations(range(pool), 4)), dtype=np.int64).reshape(-1, 4), True
    keys = rng.random((samples, pool)) if pool <= 64 else None
    if keys is not None:  # small pools: four distinct positions per row by a random ordering
        return np.argsort(keys, axis=1)[:, :4], False
    drawn = rng.integers(0, pool, size=(samples, 4))
    while True:  # redraw rows with a repeated node (rare when the pool is large)
        ordered = np.sort(drawn, axis=1)
        repeated = (np.diff(ordered, axis=1) == 0).any(axis=1)
        if not repeated.any():
            return drawn, False
        drawn[repeated] = rng.integers(0, pool, size=(int(repeated.sum()), 4))


def _pool_distances(graph: sparse.csr_matrix, pool: np.ndarray) -> tuple[np.ndarray, int]:
    """Distances among the pool nodes [m, m], and the largest eccentricity of a pool node."""
    block_rows, eccentricity = [], 0
    for start in range(0, len(pool), _BFS_CHUNK):
        block = dijkstra(graph, directed=False, unweighted=True, indices=pool[start:start + _BFS_CHUNK])
        eccentricity = max(eccentricity, int(block.max()))
        block_rows.append(block[:, pool])
    return np.concatenate(block_rows), eccentricity


def _bootstrap_mean(values: np.ndarray, counts: np.ndarray, confidence: float, rng: np.random.Generator,
                    resamples: int = 2000) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean; δ takes few distinct values, so resampling draws counts."""
    n = int(counts.sum())
    draws = rng.multinomial(n, counts / n, size=resamples)
    means = draws @ values / n
    tail = (1.0 - confidence) / 2.0
    return float(np.quantile(means, tail)), float(np.quantile(means, 1.0 - tail))


def estimate_hyperbolicity(train: Interactions, n_users: int, n_items: int, *, samples: int = DEFAULT_SAMPLES,
                           nodes: int = DEFAULT_NODES, seed: int = 0, confidence: float = 0.95) -> Hyperbolicity:
    """Gromov δ of the training graph's largest connected component (see the module docstring)."""
    if samples < 1:
        raise HBenchError(f"--samples must be at least 1, got {samples}")
    if nodes < 4:
        raise HBenchError(f"--nodes must be at least 4 (a quadruple), got {nodes}")
    if not 0.0 < confidence < 1.0:
        raise HBenchError(f"the confidence level must lie strictly between 0 and 1, got {confidence}")
    graph = training_graph(train, n_users, n_items)
    connected = np.flatnonzero(np.diff(graph.indptr) > 0)  # users and items with an interaction
    n_components, labels = connected_components(graph, directed=False)
    sizes = np.bincount(labels[connected], minlength=n_components)
    largest = int(sizes.argmax())
    component = np.flatnonzero(labels == largest)
    if len(component) < 4:
        raise HBenchError(f"the training graph's largest connected component has {len(component)} nodes; "
                          "δ needs at least 4")
    rng = np.random.default_rng(seed)
    pool = np.sort(rng.choice(len(component), size=min(nodes, len(component)), replace=False))
    distances, eccentricity = _pool_distances(graph[component][:, component], pool)
    quadruples, exhaustive = _quadruples(len(pool), samples, rng)
    deltas = four_point_delta(distances, quadruples)
    values, counts = np.unique(deltas, return_counts=True)
    n = len(deltas)
    return Hyperbolicity(
        delta=float(deltas.max()),
        mean_delta=float(deltas.mean()),
        mean_interval=_bootstrap_mean(values, counts, confidence, rng),
        exceed_bound=0.0 if exhaustive else 1.0 - (1.0 - confidence) ** (1.0 / n),
        confidence=confidence,
        diameter=eccentricity,
        diameter_exact=len(pool) == len(component),
        quadruples=n,
        exhaustive=exhaustive,
        pool=len(pool),
        component_nodes=len(component),
        component_users=int((component < n_users).sum()),
        component_items=int((component >= n_users).sum()),
        graph_nodes=len(connected),
        components=int((sizes > 0).sum()),
        seed=seed,
        delta_counts={float(v): int(c) for v, c in zip(values, counts, strict=True)},
    )
