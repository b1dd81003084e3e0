"""The user-item CSR that sampling, ranking masks, attentive histories and graph models share."""

from __future__ import annotations

import numpy as np
import pytest

from hbench.datasets.graph import UserItemGraph
from hbench.datasets.store import Interactions


def _pairs(*parts: Interactions) -> set[tuple[int, int]]:
    return {(int(u), int(i)) for p in parts for u, i in zip(p.users, p.items)}


def test_union_of_parts_holds_each_pair_once_in_csr_order() -> None:
    rng = np.random.default_rng(0)
    a = Interactions(rng.integers(0, 7, 40), rng.integers(0, 11, 40))
    b = Interactions(np.concatenate([a.users[:5], rng.integers(0, 7, 10)]),
                     np.concatenate([a.items[:5], rng.integers(0, 11, 10)]))  # five pairs repeated across parts
    graph = UserItemGraph.from_parts([a, b], 7, 11)
    expected = sorted(_pairs(a, b))
    assert list(zip(graph.users.tolist(), graph.items.tolist())) == expected
    assert graph.user_degree.tolist() == [sum(1 for u, _ in expected if u == user) for user in range(7)]


def test_edges_of_lists_each_users_items_in_the_order_asked() -> None:
    rng = np.random.default_rng(1)
    part = Interactions(rng.integers(0, 9, 60), rng.integers(0, 13, 60))
    graph = UserItemGraph.from_parts([part], 9, 13)
    users = np.array([4, 0, 4, 8, 2])  # repeats and any order
    rows, edges = graph.edges_of(users)
    got = list(zip(rows.tolist(), graph.items[edges].tolist()))
    expected = [(row, i) for row, u in enumerate(users.tolist()) for i in sorted({i for v, i in _pairs(part) if v == u})]
    assert got == expected


def test_contains_answers_every_query_as_a_set_lookup_does() -> None:
    rng = np.random.default_rng(2)
    part = Interactions(rng.integers(0, 9, 70), rng.integers(0, 13, 70))
    graph = UserItemGraph.from_parts([part], 9, 13)
    pairs = _pairs(part)
    users, items = np.repeat(np.arange(-1, 10), 15), np.tile(np.arange(-1, 14), 11)  # every pair, and outside
    got = graph.contains(users.reshape(11, 15), items.reshape(11, 15))
    assert got.shape == (11, 15)
    assert got.ravel().tolist() == [(int(u), int(i)) in pairs for u, i in zip(users, items)]
    assert graph.contains(np.array(3), np.arange(13)).tolist() == [(3, i) in pairs for i in range(13)]  # broadcast


def test_empty_graph() -> None:
    graph = UserItemGraph.from_parts([], 3, 4)
    assert graph.n_edges == 0 and graph.user_degree.tolist() == [0, 0, 0]
    assert not graph.contains(np.array([0, 2]), np.array([1, 3])).any()


def test_pairs_through_each_stage_of_a_prepared_split(tiny_dataset) -> None:
    ds = tiny_dataset
    assert ds.pairs_through("train") is ds.train_graph
    for stage, parts in (("train", [ds.train]), ("valid", [ds.train, ds.valid]),
                         ("test", [ds.train, ds.valid, ds.test])):
        graph = ds.pairs_through(stage)
        assert set(zip(graph.users.tolist(), graph.items.tolist())) == _pairs(*parts)
        assert ds.pairs_through(stage) is graph  # built once: validation asks for it every epoch
    with pytest.raises(ValueError, match="stage must be one of"):
        ds.pairs_through("holdout")
