"""Optimisers of the training loop: lazy Riemannian Adam on embedding rows, Riemannian Adam elsewhere.

`RowAdam` is Adam (Kingma & Ba 2015) applied, at each step, to the rows a batch read and to no others
("lazy" Adam, as TensorFlow's LazyAdam and geoopt's SparseRiemannianAdam): a row's moments decay only when
the row is touched, so an item seen once in an epoch is not dragged by stale momentum. Per touched row r
with summed gradient g_r (from `hbench.models.rows.RowGradients`) and global step count t of the table:

    Euclidean table       m_r ← β₁ m_r + (1 − β₁) g_r,  v_r ← β₂ v_r + (1 − β₂) g_r²  (per coordinate)
                          x_r ← x_r − lr · m̂_r / (√v̂_r + ε)
    ManifoldParameter     ξ_r = egrad2rgrad(x_r, g_r),  m_r ← β₁ m_r + (1 − β₁) ξ_r,
                          v_r ← β₂ v_r + (1 − β₂) ⟨ξ_r, ξ_r⟩_{x_r}                  (one scalar per point)
                          x_r, m_r ← retr_transp(x_r, −lr · m̂_r / (√v̂_r + ε), m_r)

with m̂ = m / (1 − β₁ᵗ), v̂ = v / (1 − β₂ᵗ). This is geoopt's Riemannian Adam (Bécigneul & Ganea, ICLR
2019), row by row. Note what the manifold case implies for step sizes: a point moves about lr in Riemannian
distance per step whatever the dimension D, while a Euclidean row moves about lr per coordinate, i.e.
lr·√D in norm. Models whose parameters live on a manifold therefore recommend larger learning rates
(`Recommender.default_lr_for`).

The cost of a step is that of the touched rows. On the CPU a Euclidean table takes the step in one
compiled pass (`hbench.training.fused`); elsewhere finding the rows is one mark over the table's row count
(no sort), done once for tables read with the same indices, and every other operation is on [touched rows, D].
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import geoopt
import torch

from hbench.models.rows import RowGradients
from hbench.training.fused import fused_row_adam_applies, fused_row_adam_step, group_by_row


class RowAdam(torch.optim.Optimizer):
    """Lazy (Riemannian) Adam over embedding tables whose gradients arrive as rows in `sink`."""

    def __init__(self, tables: Iterable[torch.nn.Parameter], sink: RowGradients, *, lr: float,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, fused: bool = True) -> None:
        super().__init__(list(tables), {"lr": lr, "betas": betas, "eps": eps})
        self.sink = sink
        self.fused = fused  # the compiled step where it applies (False: tensor operations everywhere)
        self.touched: dict[int, torch.Tensor] = {}  # id(table) -> rows updated by the last step
        # id(table) -> the fused step's row-position scratch (not optimiser state: nothing to save or resume)
        self._positions: dict[int, torch.Tensor] = {}

    @torch.no_grad()
    def step(self, closure: Any = None) -> None:  # noqa: ARG002 - torch's signature
        self.touched = {}
        # Tables read with the same index tensors in this step share their touched rows (found once).
        found: dict[tuple[object, ...], tuple[torch.Tensor, Any]] = {}
        for group in self.param_groups:
            lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
            for table in group["params"]:
                read = self.sink.pop(table)
                if read is None:
                    continue
                index, grad, key = read
                manifold = table.manifold if isinstance(table, geoopt.ManifoldParameter) else None
                state = self.state[table]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(table)
                    state["exp_avg_sq"] = torch.zeros_like(table if manifold is None else table[:, :1])
                state["step"] += 1
                key = (table.shape[0], *key)  # same memory read from tables of other sizes: other rows
                fused = self.fused and fused_row_adam_applies(table)
                if fused:
                    if ("grouped", *key) not in found:
                        found[("grouped", *key)] = group_by_row(index, self._scratch(table))
                    rows, groups = found[("grouped", *key)]
                    fused_row_adam_step(table, state["exp_avg"], state["exp_avg_sq"], rows, groups, grad,
                                        lr=lr, beta1=beta1, beta2=beta2, eps=eps, step=state["step"])
                    self.touched[id(table)] = rows
                    continue
                if key not in found:
                    found[key] = _touched_rows(index, table.shape[0])
                rows, inverse = found[key]
                self.touched[id(table)] = rows
                summed = grad.new_zeros(rows.shape[0], table.shape[1]).index_add_(0, inverse, grad)
                bias1, bias2 = 1 - beta1 ** state["step"], 1 - beta2 ** state["step"]
                # index_select / index_copy_ rather than advanced indexing: the same gathers and scatters
                # without the generality (and the cost) of aten::index and index_put.
                if manifold is None:
                    exp_avg = state["exp_avg"].index_select(0, rows).lerp_(summed, 1 - beta1)
                    exp_avg_sq = state["exp_avg_sq"].index_select(0, rows).mul_(beta2)
                    exp_avg_sq.addcmul_(summed, summed, value=1 - beta2)
                    state["exp_avg"].index_copy_(0, rows, exp_avg)
                    state["exp_avg_sq"].index_copy_(0, rows, exp_avg_sq)
                    denom = exp_avg_sq.sqrt_().div_(math.sqrt(bias2)).add_(eps)
                    # Rows are distinct: read, update and write back (a copy, cheaper than index_add_).
                    points = table.index_select(0, rows).addcdiv_(exp_avg, denom, value=-lr / bias1)
                    table.index_copy_(0, rows, points)
                else:
                    points = table.index_select(0, rows)
                    rgrad = manifold.egrad2rgrad(points, summed)
                    exp_avg = state["exp_avg"].index_select(0, rows).lerp_(rgrad, 1 - beta1)
                    exp_avg_sq = state["exp_avg_sq"].index_select(0, rows).mul_(beta2)
                    exp_avg_sq.add_(manifold.component_inner(points, rgrad), alpha=1 - beta2)
                    state["exp_avg_sq"].index_copy_(0, rows, exp_avg_sq)
                    denom = exp_avg_sq.sqrt_().div_(math.sqrt(bias2)).add_(eps)
                    new_points, exp_avg = manifold.retr_transp(points, exp_avg / denom * (-lr / bias1), exp_avg)
                    table.index_copy_(0, rows, new_points)
                    state["exp_avg"].index_copy_(0, rows, exp_avg)
        self.sink.clear()

    def _scratch(self, table: torch.Tensor) -> torch.Tensor:
        """The fused step's row-position scratch for `table` (all −1 between steps)."""
        position = self._positions.get(id(table))
        if position is None:
            position = self._positions[id(table)] = torch.full((table.shape[0],), -1, dtype=torch.long)
        return position


def _touched_rows(index: torch.Tensor, n_rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(distinct rows ascending, position of each index entry among them), by marking instead of sorting."""
    mark = torch.zeros(n_rows, dtype=torch.bool, device=index.device)
    mark[index] = True
    rows = mark.nonzero().squeeze(1)
    position = torch.empty(n_rows, dtype=torch.long, device=index.device)
    position[rows] = torch.arange(rows.shape[0], device=index.device)
    return rows, position[index]
