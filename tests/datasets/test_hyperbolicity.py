"""Gromov δ of the training graph, against brute force (Floyd–Warshall, every quadruple) on small graphs."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pytest

from hbench.datasets.hyperbolicity import estimate_hyperbolicity
from hbench.datasets.store import Interactions
from hbench.errors import HBenchError


def bipartite(edges: list[tuple[int, int]], n: int) -> tuple[Interactions, int, int, list[int]]:
    """A bipartite graph on nodes 0..n-1 as user-item interactions; returns the node of each internal id
    (users first, then items), the numbering the estimator uses."""
    side = {0: 0}
    for _ in range(n):  # two-colour by repeated relaxation (the graphs here are connected)
        for a, b in edges:
            if a in side and b not in side:
                side[b] = 1 - side[a]
            if b in side and a not in side:
                side[a] = 1 - side[b]
    users = [v for v in range(n) if side[v] == 0]
    items = [v for v in range(n) if side[v] == 1]
    uid, iid = {v: i for i, v in enumerate(users)}, {v: i for i, v in enumerate(items)}
    pairs = [(uid[a], iid[b]) if side[a] == 0 else (uid[b], iid[a]) for a, b in edges]
    assert all(side[a] != side[b] for a, b in edges)
    u, i = np.array(pairs).T
    return Interactions(u, i), len(users), len(items), users + items


def brute_force_delta(edges: list[tuple[int, int]], n: int) -> tuple[float, int]:
    """(δ, diameter) from all-pairs distances by Floyd–Warshall and every quadruple."""
    d = np.full((n, n), np.inf)
    np.fill_diagonal(d, 0)
    for a, b in edges:
        d[a, b] = d[b, a] = 1
    for k in range(n):
        d = np.minimum(d, d[:, [k]] + d[[k], :])
    delta = 0.0
    for x, y, z, w in combinations(range(n), 4):
        s = sorted([d[x, y] + d[z, w], d[x, z] + d[y, w], d[x, w] + d[y, z]])
        delta = max(delta, (s[2] - s[1]) / 2)
    return delta, int(d.max())


def tree(n: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    return [(v, int(rng.integers(0, v))) for v in range(1, n)]


def cycle(n: int) -> list[tuple[int, int]]:
    return [(v, (v + 1) % n) for v in range(n)]


def grid(rows: int, cols: int) -> list[tuple[int, int]]:
    node = lambda r, c: r * cols + c  # noqa: E731
    return ([(node(r, c), node(r, c + 1)) for r in range(rows) for c in range(cols - 1)]
            + [(node(r, c), node(r + 1, c)) for r in range(rows - 1) for c in range(cols)])


GRAPHS = {
    "tree": (tree(14, np.random.default_rng(3)), 14),
    "cycle-12": (cycle(12), 12),
    "cycle-10": (cycle(10), 10),
    "grid-3x5": (grid(3, 5), 15),
    "grid-4x4": (grid(4, 4), 16),
}


@pytest.mark.parametrize("name", list(GRAPHS))
def test_every_quadruple_of_a_small_graph_gives_the_exact_delta(name: str) -> None:
    edges, n = GRAPHS[name]
    train, n_users, n_items, _ = bipartite(edges, n)
    expected, diameter = brute_force_delta(edges, n)
    result = estimate_hyperbolicity(train, n_users, n_items, samples=10_000, nodes=100)
    assert result.exhaustive and result.quadruples == len(list(combinations(range(n), 4)))
    assert result.delta == expected
    assert result.diameter == diameter and result.diameter_exact
    assert result.relative == pytest.approx(2 * expected / diameter)
    assert result.exceed_bound == 0.0


def test_hand_worked_values() -> None:
    """A tree has δ = 0; C₁₂ has δ = 12/4 = 3 (the quadruple 0, 3, 6, 9: sums 12, 6, 6)."""
    assert brute_force_delta(*GRAPHS["tree"])[0] == 0
    assert brute_force_delta(*GRAPHS["cycle-12"])[0] == 3
    train, n_users, n_items, _ = bipartite(*GRAPHS["cycle-12"])
    assert estimate_hyperbolicity(train, n_users, n_items).delta == 3


def test_sampled_quadruples_bound_the_exact_delta_from_below_and_reach_it() -> None:
    edges, n = GRAPHS["grid-4x4"]
    train, n_users, n_items, _ = bipartite(edges, n)
    expected, _ = brute_force_delta(edges, n)
    few = [estimate_hyperbolicity(train, n_users, n_items, samples=20, seed=s) for s in range(5)]
    assert all(r.delta <= expected and not r.exhaustive for r in few)
    assert all(0 < r.exceed_bound < 1 for r in few)
    many = estimate_hyperbolicity(train, n_users, n_items, samples=1500, seed=0)
    assert not many.exhaustive and many.delta == expected
    low, high = many.mean_interval
    assert low <= many.mean_delta <= high
    # The bound for the maximum of n draws: 1 − 0.05^(1/n).
    assert many.exceed_bound == pytest.approx(1 - 0.05 ** (1 / 1500))


def test_a_tree_has_delta_zero_on_any_sample() -> None:
    edges = tree(300, np.random.default_rng(0))
    train, n_users, n_items, _ = bipartite(edges, 300)
    result = estimate_hyperbolicity(train, n_users, n_items, samples=2000, nodes=80, seed=1)
    assert result.delta == 0 and result.mean_delta == 0 and result.pool == 80 and not result.diameter_exact


def test_only_the_largest_component_is_used() -> None:
    # A C₈ (δ = 2) and a separate path of 3 nodes; the path must not enter any quadruple.
    edges = cycle(8) + [(8, 9), (9, 10)]
    side_edges = [(a, b) for a, b in edges]
    users = [0, 2, 4, 6, 8, 10]
    items = [1, 3, 5, 7, 9]
    uid, iid = {v: i for i, v in enumerate(users)}, {v: i for i, v in enumerate(items)}
    pairs = np.array([(uid[a], iid[b]) if a in uid else (uid[b], iid[a]) for a, b in side_edges]).T
    # one more item with no interaction at all: not a graph node
    result = estimate_hyperbolicity(Interactions(pairs[0], pairs[1]), len(users), len(items) + 1, nodes=50)
    assert result.component_nodes == 8 and result.components == 2 and result.graph_nodes == 11
    assert result.component_users == 4 and result.component_items == 4
    assert result.delta == 2 and result.diameter == 4


def test_bad_settings_are_user_errors() -> None:
    train, n_users, n_items, _ = bipartite(*GRAPHS["cycle-10"])
    with pytest.raises(HBenchError, match="--samples"):
        estimate_hyperbolicity(train, n_users, n_items, samples=0)
    with pytest.raises(HBenchError, match="--nodes"):
        estimate_hyperbolicity(train, n_users, n_items, nodes=3)
    with pytest.raises(HBenchError, match="at least 4"):
        estimate_hyperbolicity(Interactions(np.array([0]), np.array([0])), 1, 1)
