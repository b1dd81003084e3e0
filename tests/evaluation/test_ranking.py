"""Block-wise evaluation against brute-force references written independently of the implementation."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score

from hbench.datasets.graph import UserItemGraph
from hbench.datasets.store import Interactions
from hbench.evaluation.metrics import per_user_metrics
from hbench.evaluation import ranking
from hbench.evaluation.ranking import count_full, count_sampled
from hbench.geometry import (
    DotProduct,
    PoincareDistance,
    Representations,
    SquaredEuclidean,
)

KS = (1, 3, 10)
METRICS = [f"{m}@{k}" for k in KS for m in ("hr", "recall", "precision", "ndcg")] + ["mrr", "auc"]


def _random_split(rng: np.random.Generator, n_users: int, n_items: int) -> tuple[Interactions, Interactions]:
    train_u, train_i, test_u, test_i = [], [], [], []
    for u in range(n_users):
        items = rng.choice(n_items, size=rng.integers(2, 12), replace=False)
        n_test = rng.integers(1, 4)
        test_u += [u] * n_test
        test_i += list(items[:n_test])
        train_u += [u] * (len(items) - n_test)
        train_i += list(items[n_test:])
    as_int = lambda a: np.asarray(a, dtype=np.int64)  # noqa: E731
    return Interactions(as_int(train_u), as_int(train_i)), Interactions(as_int(test_u), as_int(test_i))


def _brute_force(scores: np.ndarray, train: Interactions, test: Interactions) -> pd.DataFrame:
    """Build each user's ranked list explicitly: score descending, negatives before targets on ties."""
    rows = []
    for u in np.unique(test.users):
        targets = set(test.items[test.users == u].tolist())
        seen = set(train.items[train.users == u].tolist())
        candidates = [j for j in range(scores.shape[1]) if j not in seen]
        ranked = sorted(candidates, key=lambda j: (-scores[u, j], j in targets))
        positions = [p + 1 for p, j in enumerate(ranked) if j in targets]
        negatives = [j for j in candidates if j not in targets]
        row = {"user": u}
        for k in KS:
            hits = sum(p <= k for p in positions)
            row[f"hr@{k}"] = float(hits > 0)
            row[f"recall@{k}"] = hits / len(targets)
            row[f"precision@{k}"] = hits / k
            ideal = sum(1 / math.log2(i + 1) for i in range(1, min(len(targets), k) + 1))
            row[f"ndcg@{k}"] = sum(1 / math.log2(p + 1) for p in positions if p <= k) / ideal
        row["mrr"] = 1 / min(positions)
        row["auc"] = np.mean([sum(scores[u, n] < scores[u, t] for n in negatives) / len(negatives) for t in targets])
        rows.append(row)
    return pd.DataFrame(rows)


@pytest.fixture(params=["compiled", "tensor"])
def count_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Full ranking counts in a compiled pass on the CPU and by in-place tensor operations elsewhere:
    the tests using this fixture check both against the reference, on the CPU."""
    if request.param == "tensor":
        monkeypatch.setattr(ranking, "_compiled_count_applies", lambda scores: False)
    return request.param


def _mask(train: Interactions, test: Interactions, n_users: int, n_items: int) -> UserItemGraph:
    """What full ranking at the test stage masks: the training pairs and the targets."""
    return UserItemGraph.from_parts([train, test], n_users, n_items)


def test_full_ranking_refuses_a_mask_without_the_targets() -> None:
    train, test = _random_split(np.random.default_rng(5), 6, 20)
    reps = Representations(torch.randn(6, 2), torch.randn(20, 2), DotProduct())
    with pytest.raises(ValueError, match="every target pair must be masked"):
        count_full(reps, test, UserItemGraph.from_parts([train], 6, 20))


@pytest.mark.parametrize("budget", [1 << 25, 300])  # one block, and many small blocks
def test_full_ranking_matches_brute_force_with_ties(budget: int, count_path: str) -> None:
    rng = np.random.default_rng(0)
    n_users, n_items = 25, 40
    train, test = _random_split(rng, n_users, n_items)
    # Small integer coordinates make many exact ties, exercising the tie rule.
    users = torch.from_numpy(rng.integers(-1, 2, size=(n_users, 3)).astype(np.float32))
    items = torch.from_numpy(rng.integers(-1, 2, size=(n_items, 3)).astype(np.float32))
    counts = count_full(Representations(users, items, DotProduct()), test, _mask(train, test, n_users, n_items),
                        budget_elements=budget)
    got = per_user_metrics(counts.users, counts.n_ge, counts.n_neg, KS, METRICS)
    expected = _brute_force((users @ items.T).numpy(), train, test)
    pd.testing.assert_frame_equal(got[expected.columns], expected, check_dtype=False)


def test_auc_matches_sklearn_without_ties(count_path: str) -> None:
    rng = np.random.default_rng(1)
    n_users, n_items = 20, 30
    train, test = _random_split(rng, n_users, n_items)
    users, items = torch.randn(n_users, 4, dtype=torch.float64), torch.randn(n_items, 4, dtype=torch.float64)
    counts = count_full(Representations(users, items, SquaredEuclidean()), test, _mask(train, test, n_users, n_items))
    got = per_user_metrics(counts.users, counts.n_ge, counts.n_neg, KS, ["auc"]).set_index("user")["auc"]
    scores = -torch.cdist(users, items).pow(2).numpy()
    for u in got.index:
        seen = set(train.items[train.users == u])
        targets = set(test.items[test.users == u])
        candidates = [j for j in range(n_items) if j not in seen]
        labels = [j in targets for j in candidates]
        if len(targets) == 1:  # sklearn's AUC equals the per-target share only for a single positive
            assert got[u] == pytest.approx(roc_auc_score(labels, scores[u, candidates]))
        else:
            pairs = [(t, n) for t in targets for n in candidates if n not in targets]
            assert got[u] == pytest.approx(np.mean([scores[u, t] > scores[u, n] for t, n in pairs]))


def test_poincare_full_ranking_matches_pointwise_geoopt_distances(count_path: str) -> None:
    import geoopt

    rng = np.random.default_rng(2)
    c = 1.5
    ball = geoopt.PoincareBall(c=c)
    train, test = _random_split(rng, 15, 35)
    users = ball.expmap0(torch.randn(15, 6, dtype=torch.float64) * 0.7)
    items = ball.expmap0(torch.randn(35, 6, dtype=torch.float64) * 0.7)
    counts = count_full(Representations(users, items, PoincareDistance(c)), test, _mask(train, test, 15, 35))
    got = per_user_metrics(counts.users, counts.n_ge, counts.n_neg, KS, METRICS)
    scores = -ball.dist(users.unsqueeze(1), items.unsqueeze(0)).numpy()
    expected = _brute_force(scores, train, test)
    pd.testing.assert_frame_equal(got[expected.columns], expected, check_dtype=False)


def test_sampled_candidates_match_brute_force() -> None:
    rng = np.random.default_rng(3)
    n_users, n_items, n_neg = 30, 60, 7
    targets = Interactions(np.arange(n_users), rng.integers(0, n_items, n_users))
    negatives = np.stack([rng.choice(np.setdiff1d(np.arange(n_items), [t]), n_neg, replace=False) for t in targets.items])
    users = torch.from_numpy(rng.integers(-1, 2, size=(n_users, 2)).astype(np.float32))
    items = torch.from_numpy(rng.integers(-1, 2, size=(n_items, 2)).astype(np.float32))
    counts = count_sampled(Representations(users, items, DotProduct()), targets, negatives, budget_elements=50)
    scores = (users @ items.T).numpy()
    for u, t, n_ge in zip(counts.users, counts.items, counts.n_ge):
        assert n_ge == sum(scores[u, j] >= scores[u, t] for j in negatives[u])
    frame = per_user_metrics(counts.users, counts.n_ge, counts.n_neg, (10,), ["hr@10", "ndcg@10"])
    rank = 1 + counts.n_ge
    np.testing.assert_allclose(frame["ndcg@10"], np.where(rank <= 10, 1 / np.log2(rank + 1), 0.0))


def test_hand_worked_single_target() -> None:
    """User 0: target scored 0.5, negatives 0.9, 0.5 (tie), 0.1 -> rank 3 (pessimistic), AUC 1/3."""
    frame = per_user_metrics(np.array([0]), np.array([2]), np.array([3]), (1, 3), ["hr@1", "hr@3", "ndcg@3", "mrr", "auc"])
    row = frame.iloc[0]
    assert row["hr@1"] == 0 and row["hr@3"] == 1
    assert row["ndcg@3"] == pytest.approx(1 / math.log2(4))
    assert row["mrr"] == pytest.approx(1 / 3) and row["auc"] == pytest.approx(1 / 3)


def test_poincare_ranking_in_float32_near_the_boundary_agrees_with_float64(count_path: str) -> None:
    """The augmented-GEMM ranking in float32 misorders at most near-ties, never more than one place."""
    import geoopt

    rng = np.random.default_rng(4)
    c = 1.0
    ball = geoopt.PoincareBall(c=c)
    train, test = _random_split(rng, 40, 300)
    # As close to the boundary as float32 training keeps points (geoopt projects to ‖x‖ ≤ (1 − 4e-3)/√c).
    users = ball.projx(ball.expmap0(torch.randn(40, 16) * 1.5))
    items = ball.projx(ball.expmap0(torch.randn(300, 16) * 1.5))
    assert items.norm(dim=1).max() > 0.99
    mask = _mask(train, test, 40, 300)
    exact = count_full(Representations(users.double(), items.double(), PoincareDistance(c)), test, mask).n_ge
    fast = count_full(Representations(users, items, PoincareDistance(c)), test, mask).n_ge
    assert np.abs(exact - fast).max() <= 1 and np.mean(exact == fast) > 0.95
