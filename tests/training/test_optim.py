"""RowAdam against geoopt's SparseRiemannianAdam, the lazy Riemannian Adam it re-implements row by row."""

from __future__ import annotations

import geoopt
import pytest
import torch
import torch.nn.functional as F

from hbench.models.rows import RowGradients, gather_rows
from hbench.training.optim import RowAdam

BATCHES = [torch.tensor([[0, 3], [3, 5]]), torch.tensor([[1, 1], [2, 7]]), torch.tensor([[3, 0], [0, 0]])]


def _target(index: torch.Tensor) -> torch.Tensor:
    return torch.linspace(-0.3, 0.3, index.numel() * 4).reshape(*index.shape, 4)


def _table(manifold: str) -> torch.nn.Parameter:
    values = torch.randn(8, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 0.2
    if manifold == "ball":
        ball = geoopt.PoincareBall(c=0.7)
        return geoopt.ManifoldParameter(ball.expmap0(values), manifold=ball)
    return torch.nn.Parameter(values)


@pytest.mark.parametrize("fused", [True, False], ids=["compiled", "tensor ops"])
@pytest.mark.parametrize("manifold", ["euclidean", "ball"])
def test_row_adam_takes_geoopts_sparse_riemannian_adam_steps(manifold: str, fused: bool) -> None:
    ours, reference = _table(manifold), _table(manifold)
    sink = RowGradients()
    row_adam = RowAdam([ours], sink, lr=0.05, fused=fused)
    sparse_adam = geoopt.optim.SparseRiemannianAdam([reference], lr=0.05)
    for index in BATCHES:
        (gather_rows(ours, index, sink) - _target(index)).pow(2).sum().backward()
        row_adam.step()
        sparse_adam.zero_grad()
        (F.embedding(index, reference, sparse=True) - _target(index)).pow(2).sum().backward()
        sparse_adam.step()
        torch.testing.assert_close(ours.detach(), reference.detach(), rtol=1e-10, atol=1e-12)
        assert ours.grad is None  # gradients went to the sink, as rows
    untouched = sorted(set(range(8)) - {int(i) for index in BATCHES for i in index.flatten()})
    assert untouched == [4, 6]
    torch.testing.assert_close(ours.detach()[untouched], _table(manifold).detach()[untouched])
    assert row_adam.state[ours]["step"] == len(BATCHES)


@pytest.mark.parametrize("fused", [True, False], ids=["compiled", "tensor ops"])
def test_row_adam_reports_the_rows_it_changed(fused: bool) -> None:
    table = _table("euclidean")
    sink = RowGradients()
    optimizer = RowAdam([table], sink, lr=0.1, fused=fused)
    gather_rows(table, torch.tensor([5, 2, 5]), sink).sum().backward()
    optimizer.step()
    assert optimizer.touched[id(table)].tolist() == [2, 5]


def test_compiled_and_tensor_steps_agree_in_float32_over_many_repeated_rows() -> None:
    """The training case: float32, large batches, rows read many times per step (their gradients summed)."""
    generator = torch.Generator().manual_seed(3)
    start = torch.randn(50, 8, generator=generator)
    tables = [torch.nn.Parameter(start.clone()) for _ in range(2)]
    sinks = [RowGradients(), RowGradients()]
    optimizers = [RowAdam([t], s, lr=0.01, fused=f) for t, s, f in zip(tables, sinks, (True, False))]
    for _ in range(5):
        index = torch.randint(0, 40, (300,), generator=generator)  # rows 40..49 never read
        weights = torch.randn(300, 8, generator=generator)
        for table, sink, optimizer in zip(tables, sinks, optimizers):
            (gather_rows(table, index, sink) * weights).sum().backward()
            optimizer.step()
        assert optimizers[0].touched[id(tables[0])].tolist() == optimizers[1].touched[id(tables[1])].tolist()
    torch.testing.assert_close(tables[0].detach(), tables[1].detach(), rtol=1e-5, atol=1e-6)
    assert torch.equal(tables[0].detach()[40:], start[40:])
