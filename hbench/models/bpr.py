"""BPR-MF (Rendle et al., UAI 2009): s(u, i) = ⟨p_u, q_i⟩ + b_i, loss −ln σ(s(u, i) − s(u, j))."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hbench.compiled import PARALLEL_KERNEL
from hbench.geometry import DotProduct, Representations
from hbench.models.base import (
    LossTerms,
    ModelContext,
    Range,
    Recommender,
    normal_init,
    option,
)
from hbench.models.bpr_kernels import bpr_gradients, bpr_scores_and_gradients
from hbench.models.registry import register_model
from hbench.models.rows import RowGradients


@dataclass(frozen=True)
class BPROptions:
    reg: float = option(1e-2, "L2 weight on the embeddings and biases of each batch", Range(at_least=0))
    item_bias: bool = option(True, "learn an item bias b_i")
    init_std: float = option(0.1, "standard deviation of the normal initialisation", Range(above=0))


@register_model
class BPRMF(Recommender):
    name = "bpr"
    family = "euclidean"
    summary = "BPR matrix factorisation (dot product, Euclidean)"
    Options = BPROptions
    default_lr = 1e-2  # chosen on validation: results/reference/defaults-search-margin-reg
    default_batch_size = 8192
    # Log ranges for rates and regularisation (Rendle et al. 2019); the equal-budget search of `hbench tune`.
    search_space = {"lr": {"low": 1e-3, "high": 1e-1, "log": True}, "reg": {"low": 1e-5, "high": 1e-1, "log": True}}

    def __init__(self, context: ModelContext, options: BPROptions) -> None:
        super().__init__(context, options)
        g = context.generator
        self.user_embedding = nn.Parameter(normal_init((context.n_users, context.dim), options.init_std, g))
        self.item_embedding = nn.Parameter(normal_init((context.n_items, context.dim), options.init_std, g))
        self.item_bias = nn.Parameter(torch.zeros(context.n_items, 1), requires_grad=options.item_bias)

    def embedding_tables(self) -> list[nn.Parameter]:
        return [self.user_embedding, self.item_embedding, self.item_bias]

    def representations(self) -> Representations:
        # The bias rides along as one more coordinate: ⟨[p_u, 1], [q_i, b_i]⟩ = ⟨p_u, q_i⟩ + b_i.
        users = torch.cat([self.user_embedding, torch.ones_like(self.user_embedding[:, :1])], dim=1)
        items = torch.cat([self.item_embedding, self.item_bias], dim=1)
        return Representations(users.detach(), items.detach(), DotProduct())

    def loss(self, users: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor) -> LossTerms:
        # Positive and negatives read in one lookup: one gather and one gradient block per table.
        items = torch.cat([positives.unsqueeze(1), negatives], dim=1)  # [b, 1 + n]
        if self._compiled_path_applies():
            ranking, reg = _TableBPRLoss.apply(self.user_embedding, self.item_embedding, self.item_bias, users,
                                               items, self.options.reg, self.row_gradients)
        else:
            u = self.lookup(self.user_embedding, users)
            q, bias = self.lookup(self.item_embedding, items), self.lookup(self.item_bias, items)[..., 0]
            ranking, reg = _BPRLoss.apply(u, q, bias, self.options.reg)
        return LossTerms(ranking + reg, {"bpr": ranking, "l2": reg})

    def _compiled_path_applies(self) -> bool:
        """Row-gradient training on CPU tables (`bpr_kernels`); dense autograd and other devices take the
        tensor path."""
        return self.row_kernels_apply((self.user_embedding, self.item_embedding, self.item_bias))


class _BPRLoss(torch.autograd.Function):
    """The BPR loss and its L2 term, with the gradient written out (CPU training time is memory traffic).

    With s_bj = ⟨p_b, q_bj⟩ + b_bj for j = 0 (the positive) … n (the negatives), x_bj = s_b0 − s_bj, and
    w = (1, 1/n, …, 1/n) / B (the L2 weight of each read row, negatives averaged):

        ranking = (1 / Bn) Σ_bj softplus(−x_bj)                      (= −ln σ(x_bj))
        l2      = λ [ Σ_b ‖p_b‖² / B + Σ_bj w_j (‖q_bj‖² + b_bj²) ]
        ∂ranking/∂x_bj = −σ(−x_bj) / Bn,   ∂/∂s_b0 = Σ_j ∂/∂x_bj,   ∂/∂s_bj = −∂/∂x_bj
        ∂/∂p_b = Σ_j ∂/∂s_bj q_bj + 2λ p_b / B,   ∂/∂q_bj = ∂/∂s_bj p_b + 2λ w_j q_bj,
        ∂/∂b_bj = ∂/∂s_bj + 2λ w_j b_bj

    Autograd through the same expression makes about three times as many passes over [B, 1 + n, D]
    (each product's backward multiplies both ways); tests check this gradient against autograd's.
    """

    @staticmethod
    def forward(ctx: Any, u: torch.Tensor, q: torch.Tensor, bias: torch.Tensor, reg: float) -> tuple[torch.Tensor, ...]:
        batch, n_negatives = q.shape[0], q.shape[1] - 1
        scores = torch.linalg.vecdot(u.unsqueeze(1), q) + bias  # [b, 1 + n]
        x = scores[:, :1] - scores[:, 1:]
        ranking = F.softplus(-x).mean()
        weights = q.new_full((q.shape[1],), 1.0 / (batch * n_negatives))
        weights[0] = 1.0 / batch
        item_l2 = torch.linalg.vecdot(q, q) + bias.square()
        l2 = torch.linalg.vecdot(u, u).sum() / batch + item_l2.mv(weights).sum()
        ctx.save_for_backward(u, q, bias, x, weights)
        ctx.reg = reg
        return ranking, reg * l2

    @staticmethod
    def backward(ctx: Any, grad_ranking: torch.Tensor, grad_reg: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        u, q, bias, x, weights = ctx.saved_tensors
        batch, n_negatives = q.shape[0], q.shape[1] - 1
        dx = torch.sigmoid(-x).mul_(-grad_ranking / (batch * n_negatives))  # [b, n]
        dscores = torch.cat([dx.sum(1, keepdim=True), dx.neg()], dim=1)  # [b, 1 + n]
        decay = 2 * ctx.reg * grad_reg * weights  # [1 + n]: 2λ w_j
        grad_u = torch.linalg.vecdot(dscores.unsqueeze(2), q, dim=1).addcmul_(u, decay[:1])  # (a batched bmm is slower)
        grad_q = torch.addcmul(q * decay[:, None], dscores.unsqueeze(2), u.unsqueeze(1))
        grad_bias = torch.addcmul(dscores, bias, decay) if ctx.needs_input_grad[2] else None
        return grad_u, grad_q, grad_bias, None


class _TableBPRLoss(torch.autograd.Function):
    """`_BPRLoss` on rows read where they lie in the tables (`bpr_kernels`); gradients go to `sink` as rows.

    Forward also computes the gradient rows for unit upstream gradients (training's `total.backward()`);
    backward scales them when both upstream gradients are equal and otherwise recomputes them. The tables
    are inputs only so that autograd calls backward; like `rows.gather_rows`, backward hands (index,
    gradient rows) to the sink and returns no table gradient.
    """

    @staticmethod
    def forward(ctx: Any, users_table: torch.Tensor, items_table: torch.Tensor, bias_table: torch.Tensor,
                users: torch.Tensor, items: torch.Tensor, reg: float, sink: RowGradients) -> tuple[torch.Tensor, ...]:
        (batch, width), n_negatives = (users.shape[0], users_table.shape[1]), items.shape[1] - 1
        tables = tuple(t.detach().numpy() for t in (users_table, items_table, bias_table))
        dtype = tables[0].dtype
        x, softplus_sums = np.empty((batch, n_negatives), dtype), np.empty(batch, dtype)
        user_sq, item_sq = np.empty(batch, dtype), np.empty((batch, n_negatives + 1), dtype)
        rows = np.empty((batch, width), dtype), np.empty((batch, n_negatives + 1, width), dtype), \
            np.empty((batch, n_negatives + 1), dtype)
        with PARALLEL_KERNEL:
            bpr_scores_and_gradients(*tables, users.numpy(), items.numpy(), reg, x, softplus_sums, user_sq, item_sq,
                                     *rows)
        # The means of `_BPRLoss` from the kernel's per-row sums, added in float64 (numpy: a torch reduction
        # per term cost more than the kernel's share of them on a CPU). ‖q‖² + b² of the negatives averaged.
        ranking = softplus_sums.sum(dtype=np.float64) / (batch * n_negatives)
        l2 = (user_sq.sum(dtype=np.float64) + item_sq[:, 0].sum(dtype=np.float64)) / batch \
            + item_sq[:, 1:].sum(dtype=np.float64) / (batch * n_negatives)
        ctx.save_for_backward(torch.from_numpy(x))
        ctx.tables, ctx.index, ctx.reg, ctx.sink, ctx.rows = (users_table, items_table, bias_table), \
            (users, items), reg, sink, rows
        return torch.tensor(ranking, dtype=users_table.dtype), torch.tensor(reg * l2, dtype=users_table.dtype)

    @staticmethod
    def backward(ctx: Any, grad_ranking: torch.Tensor, grad_reg: torch.Tensor) -> tuple[None, ...]:
        (x,) = ctx.saved_tensors
        (users_table, items_table, bias_table), (users, items) = ctx.tables, ctx.index
        # ctx.rows stay as forward wrote them (a graph kept for a second backward reads them again).
        if bool(grad_ranking == grad_reg):  # the rows forward computed, scaled (rounding aside, the same)
            scale = float(grad_ranking)
            grad_u, grad_q, grad_b = ctx.rows if scale == 1 else tuple(rows * scale for rows in ctx.rows)
        else:
            grad_u, grad_q, grad_b = (np.empty_like(rows) for rows in ctx.rows)
            (batch, n_negatives) = x.shape
            dx = torch.sigmoid(-x).mul_(-grad_ranking / (batch * n_negatives)).numpy()
            weights = torch.full((n_negatives + 1,), 1.0 / (batch * n_negatives), dtype=x.dtype)  # as `_BPRLoss`
            weights[0] = 1.0 / batch
            decay = (2 * ctx.reg * grad_reg * weights).numpy()
            with PARALLEL_KERNEL:
                bpr_gradients(*(t.detach().numpy() for t in ctx.tables), users.numpy(), items.numpy(), dx, decay,
                              grad_u, grad_q, grad_b)
        ctx.sink.add(users_table, users, torch.from_numpy(grad_u))
        ctx.sink.add(items_table, items, torch.from_numpy(grad_q))
        if bias_table.requires_grad:
            ctx.sink.add(bias_table, items, torch.from_numpy(grad_b))
        return (None,) * 7
