"""The training graph, LightGCN and HGCF against dense brute force and the hyperboloid's own formulas."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hbench.datasets.graph import UserItemGraph
from hbench.datasets.store import Interactions
from hbench.models import ModelContext, create_model

USERS = np.array([0, 0, 1, 2, 2, 2, 0])  # (0, 1) listed twice: one edge
ITEMS = np.array([1, 2, 2, 0, 3, 1, 1])
N_USERS, N_ITEMS = 4, 5  # user 3 and item 4 are isolated


def _graph() -> UserItemGraph:
    return UserItemGraph.from_parts([Interactions(USERS, ITEMS)], N_USERS, N_ITEMS)


def _dense_adjacency() -> np.ndarray:
    n = N_USERS + N_ITEMS
    a = np.zeros((n, n))
    for u, i in zip(USERS, ITEMS):
        a[u, N_USERS + i] = a[N_USERS + i, u] = 1.0
    return a


def test_csr_and_membership_match_the_pair_set() -> None:
    graph = _graph()
    pairs = set(zip(USERS.tolist(), ITEMS.tolist()))
    assert graph.n_edges == len(pairs)
    for u in range(N_USERS):
        assert graph.items[graph.indptr[u]:graph.indptr[u + 1]].tolist() == sorted(i for v, i in pairs if v == u)
    grid_u, grid_i = np.meshgrid(np.arange(N_USERS), np.arange(N_ITEMS), indexing="ij")
    found = graph.contains(grid_u.ravel(), grid_i.ravel())
    assert found.tolist() == [(u, i) in pairs for u, i in zip(grid_u.ravel().tolist(), grid_i.ravel().tolist())]


@pytest.mark.parametrize("normalisation", ["symmetric", "row", "row_self"])
def test_normalised_adjacency_matches_dense_formula(normalisation: str) -> None:
    a = _dense_adjacency()
    degree = a.sum(1)
    with np.errstate(divide="ignore"):
        if normalisation == "symmetric":
            d = np.where(degree > 0, degree ** -0.5, 0.0)
            expected = d[:, None] * a * d[None, :]
        elif normalisation == "row":
            expected = np.where(degree[:, None] > 0, a / np.maximum(degree[:, None], 1), 0.0)
        else:
            loops = a + np.eye(len(a))
            expected = loops / loops.sum(1, keepdims=True)
    actual = _graph().adjacency(normalisation).toarray()
    np.testing.assert_allclose(actual, expected, rtol=1e-6, atol=1e-7)
    graph = _graph()
    assert graph.adjacency(normalisation) is graph.adjacency(normalisation)


def _context(dim: int = 3) -> ModelContext:
    return ModelContext(N_USERS, N_ITEMS, dim, Interactions(USERS, ITEMS), torch.Generator().manual_seed(0))


def test_lightgcn_representations_and_loss_match_dense_propagation() -> None:
    model = create_model("lightgcn", _context(), {"layers": "2", "reg": "0.1"})
    a = _dense_adjacency()
    degree = a.sum(1)
    d = np.divide(1.0, np.sqrt(degree), out=np.zeros_like(degree), where=degree > 0)
    a_hat = d[:, None] * a * d[None, :]
    e0 = model.embedding.detach().double().numpy()
    e = (e0 + a_hat @ e0 + a_hat @ a_hat @ e0) / 3
    with torch.no_grad():
        reps = model.representations()
    np.testing.assert_allclose(reps.users.numpy(), e[:N_USERS], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(reps.items.numpy(), e[N_USERS:], rtol=1e-5, atol=1e-6)
    users, pos, neg = torch.tensor([0, 2]), torch.tensor([1, 3]), torch.tensor([[4], [2]])
    terms = model.loss(users, pos, neg)
    eu, ei = e[:N_USERS], e[N_USERS:]
    x = [eu[u] @ ei[p] - eu[u] @ ei[n[0]] for u, p, n in zip(users.tolist(), pos.tolist(), neg.tolist())]
    bpr = np.mean([np.log1p(np.exp(-v)) for v in x])
    ego_u, ego_i = e0[:N_USERS], e0[N_USERS:]
    l2 = np.mean([0.5 * (ego_u[u] @ ego_u[u] + ego_i[p] @ ego_i[p] + ego_i[n[0]] @ ego_i[n[0]])
                  for u, p, n in zip(users.tolist(), pos.tolist(), neg.tolist())])
    assert terms.parts["bpr"].item() == pytest.approx(bpr, rel=1e-5)
    assert terms.parts["l2"].item() == pytest.approx(0.1 * l2, rel=1e-5)


@pytest.mark.parametrize("normalisation", ["symmetric", "row_self"])
def test_propagation_gradient_is_the_transposed_product(normalisation: str) -> None:
    """Backward multiplies by Âᵀ (built once, not per step): the gradient equals dense autograd's, also for
    the row normalisation, where Âᵀ ≠ Â."""
    model = create_model("lightgcn", _context(), {"layers": "2", "normalisation": normalisation})
    users, pos, neg = torch.tensor([0, 2, 1]), torch.tensor([1, 3, 0]), torch.tensor([[4], [2], [3]])
    model.loss(users, pos, neg).total.backward()
    a = torch.from_numpy(_graph().adjacency(normalisation).toarray()).double()
    assert not torch.equal(a, a.T) or normalisation == "symmetric"
    ego = model.embedding.detach().double().requires_grad_()
    nodes = (ego + a @ ego + a @ (a @ ego)) / 3
    u, items = nodes[:N_USERS][users], nodes[N_USERS:]
    x = (u * items[pos]).sum(-1) - (u * items[neg[:, 0]]).sum(-1)
    ego_u, ego_i = ego[:N_USERS], ego[N_USERS:]
    l2 = 0.5 * (ego_u[users].pow(2).sum(-1) + ego_i[pos].pow(2).sum(-1) + ego_i[neg[:, 0]].pow(2).sum(-1)).mean()
    (torch.nn.functional.softplus(-x).mean() + model.options.reg * l2).backward()
    torch.testing.assert_close(model.embedding.grad.double(), ego.grad, rtol=1e-5, atol=1e-7)


def _lorentz_exp0(v: np.ndarray) -> np.ndarray:
    r = np.linalg.norm(v)
    return np.concatenate([[np.cosh(r)], np.sinh(r) * v / r])


def _lorentz_dist(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.arccosh(max(1.0, x[0] * y[0] - x[1:] @ y[1:])))


def test_hgcf_matches_the_hyperboloid_computation() -> None:
    """Tangent vectors propagated as in the paper, mapped by the hyperboloid's exp_o: same distances."""
    model = create_model("hgcf", _context(), {"layers": "2", "margin": "0.3"})
    ball = model.ball
    tangent = (2 * ball.logmap0(model.embedding.detach().double())).numpy()
    assert np.abs(tangent).max() <= 0.1 + 1e-6  # U(−0.1, 0.1) in the hyperboloid's scale
    a = _dense_adjacency() + np.eye(N_USERS + N_ITEMS)
    a_hat = a / a.sum(1, keepdims=True)
    h = a_hat @ tangent + a_hat @ a_hat @ tangent
    points = [_lorentz_exp0(row) for row in h]
    with torch.no_grad():
        reps = model.representations()
    for u in range(N_USERS):
        for i in range(N_ITEMS):
            expected = _lorentz_dist(points[u], points[N_USERS + i])
            actual = float(ball.dist(reps.users[u].double(), reps.items[i].double()))
            assert actual == pytest.approx(expected, rel=1e-4, abs=1e-6)
    users, pos, neg = torch.tensor([0, 2]), torch.tensor([1, 3]), torch.tensor([[4], [2]])
    expected_loss = sum(max(0.0, _lorentz_dist(points[u], points[N_USERS + p]) ** 2
                            - _lorentz_dist(points[u], points[N_USERS + n[0]]) ** 2 + 0.3)
                        for u, p, n in zip(users.tolist(), pos.tolist(), neg.tolist()))
    assert model.loss(users, pos, neg).total.item() == pytest.approx(expected_loss, rel=1e-4, abs=1e-6)


def test_hgcf_compiled_loss_gradient_is_autograds_through_geoopt() -> None:
    """The CPU path (logmap0's written-out backward, the compiled tangent distances, their gradient scattered
    into the nodes) and the tensor path of other devices, against autograd through geoopt's logmap0 and
    expmap0 and the ball's distance, float64, with duplicate users and items in the batch."""
    import functools

    from hbench.geometry.poincare import poincare_distance

    model = create_model("hgcf", _context(dim=4), {"layers": "2", "margin": "0.5", "init_scale": "0.8"}).double()
    users, pos = torch.tensor([0, 2, 2, 1, 0]), torch.tensor([1, 3, 1, 2, 1])
    neg = torch.tensor([[4, 0], [2, 2], [0, 4], [3, 1], [2, 3]])
    compiled = model.loss(users, pos, neg).total
    compiled.backward()
    grad = model.embedding.grad.clone()
    model.embedding.grad = None
    model._compiled_loss_applies = lambda nodes: False  # the path other devices take, here on the CPU
    tensor_path = model.loss(users, pos, neg).total
    tensor_path.backward()
    tensor_grad = model.embedding.grad.clone()
    model.embedding.grad = None
    ball = model.ball
    layers = model.propagation.layers(ball.logmap0(model.embedding), 2)
    nodes = ball.expmap0(functools.reduce(torch.add, layers[1:]), project=True)
    u, items = nodes[:N_USERS][users].unsqueeze(1), nodes[N_USERS:]
    reference = torch.relu(poincare_distance(u, items[pos].unsqueeze(1), 1.0).pow(2)
                           - poincare_distance(u, items[neg], 1.0).pow(2) + 0.5).sum()
    reference.backward()
    assert 0 < reference.item() == pytest.approx(compiled.item(), rel=1e-7)
    assert grad.abs().max() > 0.1  # the pairs are not all past the margin
    for ours in (grad, tensor_grad):
        torch.testing.assert_close(ours, model.embedding.grad, rtol=1e-6, atol=1e-8)
    assert tensor_path.item() == pytest.approx(reference.item(), rel=1e-7)


def test_hgcf_declares_riemannian_sgd_with_momentum_and_weight_decay() -> None:
    import geoopt

    model = create_model("hgcf", _context(), {"weight_decay": "0.01", "momentum": "0.9"})
    (optimizer,) = model.configure_optimizers(0.05)
    assert isinstance(optimizer, geoopt.optim.RiemannianSGD)
    group = optimizer.param_groups[0]
    assert (group["lr"], group["momentum"], group["weight_decay"]) == (0.05, 0.9, 0.01)
