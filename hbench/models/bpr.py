"""BPR-MF (Rendle et al., UAI 2009): s(u, i) = ⟨p_u, q_i⟩ + b_i, loss −ln σ(s(u, i) − s(u, j))."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from hbench.geometry import DotProduct, Representations
from hbench.models.base import (
    LossTerms,
    ModelContext,
    Range,
    Recommender,
    normal_init,
    option,
)
from hbench.models.registry import register_model


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
    default_lr = 3e-2  # chosen on validation: results/reference/defaults-search
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
        u = self.lookup(self.user_embedding, users)
        p, n = self.lookup(self.item_embedding, positives), self.lookup(self.item_embedding, negatives)
        b_pos, b_neg = self.lookup(self.item_bias, positives)[..., 0], self.lookup(self.item_bias, negatives)[..., 0]
        pos_score = (u * p).sum(-1) + b_pos
        neg_score = (u.unsqueeze(1) * n).sum(-1) + b_neg
        ranking = -F.logsigmoid(pos_score.unsqueeze(1) - neg_score).mean()
        l2 = (u.pow(2).sum(-1) + p.pow(2).sum(-1) + n.pow(2).sum(-1).mean(-1)).mean()
        l2 = l2 + b_pos.pow(2).mean() + b_neg.pow(2).mean()
        reg = self.options.reg * l2
        return LossTerms(ranking + reg, {"bpr": ranking, "l2": reg})
