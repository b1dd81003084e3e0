"""HyperML (Vinh Tran et al., WSDM 2020): metric learning on the Poincaré ball B_c.

    L_P = mean [m + d_c(u, v_i)² − d_c(u, v_j)²]_+                     (pull-push hinge)
    L_D = mean_{(u,v) ∈ pos ∪ neg} |d_c(u, v) − d_E(log0 u, log0 v)| / (d_E(log0 u, log0 v) + ε)
    L   = L_P + γ · L_D

L_P is the metric hinge CML trains with (`hbench.models.losses.metric_hinge`, with CML's options
`--negative` and `--rank-weight`) on squared Poincaré distances: the mean above over every sampled negative
by default (the paper's), so that `hyperml` and `cml` run with the same loss and differ only in the geometry
(`twin`).

Points are geoopt `ManifoldParameter`s on `PoincareBall(c)` trained by Riemannian Adam (`ball`), or
Euclidean parameters mapped by exp0 (`tangent`). Scores are −d_c.

The distortion term's convention. The ball's metric at the origin is λ₀ = 2 times the Euclidean one, and
exp0 only stretches distances on a negatively curved space, so d_c(exp0 a, exp0 b) ≥ 2‖a − b‖ for every c:
with d_E the plain Euclidean norm of the log0 difference (the paper's wording, and the public
reimplementation's), each ratio is ≥ 1 and equals 1 only in the limit at the origin. Measuring d_E with the
Riemannian norm at the origin instead (2‖·‖, ratio 0 for an isometry) gives L_D' with L_D = 2·L_D' + 1: the
same gradients with γ doubled, so the two readings differ by the scale of γ only. hbench keeps the paper's
wording; read its L_D as "1 + twice the relative stretch of exp0", and γ accordingly.

Learning rates. Riemannian Adam moves a ball point about lr in hyperbolic distance per step, whatever D;
Adam on tangent parameters moves every coordinate by about lr, about lr·√D in norm (then doubled by λ₀).
The two parametrisations therefore have their own default rates (`default_lr_for`), both chosen on
validation (results/reference/defaults-search).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import geoopt
import torch
from torch import nn

from hbench.geometry import PoincareDistance, Representations
from hbench.geometry.poincare import exp0_distances, poincare_distance
from hbench.models.base import (
    LossTerms,
    ModelContext,
    Range,
    Recommender,
    Twin,
    normal_init,
    option,
)
from hbench.models.hyperml_kernels import table_exp0_distance_gradients, table_exp0_distances
from hbench.models.losses import NegativeChoice, metric_hinge, negative_option, rank_weight_option
from hbench.models.registry import register_model
from hbench.models.rows import RowGradients

# ε of the distortion ratio: keeps L_D finite for coincident points (the public reimplementation uses 1e-9).
DISTORTION_EPS = 1e-9


@dataclass(frozen=True)
class HyperMLOptions:
    c: float = option(1.0, "curvature parameter c > 0 of the ball (sectional curvature −c)", Range(above=0))
    gamma: float = option(0.2, "weight γ of the distortion term L_D (0 disables it)", Range(at_least=0))
    margin: float = option(1.0, "hinge margin m on squared hyperbolic distances", Range(at_least=0))
    parametrization: Literal["ball", "tangent"] = option(
        "tangent", "points as ManifoldParameters on the ball (Riemannian Adam) or tangent vectors mapped by exp0"
    )
    init_std: float = option(
        0.01, "standard deviation of the normal initialisation (tangent space at 0)", Range(above=0)
    )
    # CML's loss options (issue 34), added after the recorded HyperML runs: their defaults are that loss.
    negative: NegativeChoice = negative_option()
    rank_weight: bool = rank_weight_option()


@register_model
class HyperML(Recommender):
    name = "hyperml"
    family = "hyperbolic"
    proposed = True
    summary = "hyperbolic metric learning on the Poincaré ball"
    Options = HyperMLOptions
    default_lr = 3e-3  # the tangent parametrisation's; see default_lr_for
    default_batch_size = 8192
    # Log ranges for rates and regularisation (Rendle et al. 2019); the equal-budget search of `hbench tune`.
    # The rate reaches down to 1e-4: on amazon-clothing the best trials sat at the old lower edge, 1e-3
    # (results/reference/amazon-clothing-tune).
    search_space = {"lr": {"low": 1e-4, "high": 1e-1, "log": True}, "margin": {"low": 0.1, "high": 2.0},
                    "gamma": {"low": 0.0, "high": 1.0}}
    BALL_LR = 3e-2
    # The same loss, sampler and loss options on squared Euclidean distances in the unit ball. Options only
    # one geometry has: the ball's curvature, the distortion of exp0 (γ), how points live on the ball, and
    # the initial scale (near the origin, where the ball is nearly flat; CML's points are clipped to the
    # unit ball instead, `max_norm`, CML's own geometry option).
    twin = Twin(model="cml")
    geometry_options = ("c", "gamma", "parametrization", "init_std")

    @classmethod
    def default_lr_for(cls, options: HyperMLOptions) -> float:
        return cls.BALL_LR if options.parametrization == "ball" else cls.default_lr
    ablations = {
        "full": {},
        "no distortion term (γ = 0)": {"gamma": 0.0},
        "ball parameters (Riemannian Adam)": {"parametrization": "ball"},
    }

    def __init__(self, context: ModelContext, options: HyperMLOptions) -> None:
        super().__init__(context, options)
        self.n_items = context.n_items
        self.ball = geoopt.PoincareBall(c=options.c)
        g = context.generator
        users = normal_init((context.n_users, context.dim), options.init_std, g)
        items = normal_init((context.n_items, context.dim), options.init_std, g)
        if options.parametrization == "ball":
            self.user_embedding = geoopt.ManifoldParameter(self.ball.expmap0(users), manifold=self.ball)
            self.item_embedding = geoopt.ManifoldParameter(self.ball.expmap0(items), manifold=self.ball)
        else:
            self.user_embedding = nn.Parameter(users)
            self.item_embedding = nn.Parameter(items)

    def embedding_tables(self) -> list[nn.Parameter]:
        return [self.user_embedding, self.item_embedding]

    def _points(self, table: torch.Tensor) -> torch.Tensor:
        return table if self.options.parametrization == "ball" else self.ball.expmap0(table, project=True)

    def representations(self) -> Representations:
        with torch.no_grad():
            users, items = self._points(self.user_embedding), self._points(self.item_embedding)
        return Representations(users.detach(), items.detach(), PoincareDistance(self.options.c))

    def loss(self, users: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor) -> LossTerms:
        # Positive and negatives read in one lookup: one gather, one gradient block, one distance pass.
        items = torch.cat([positives.unsqueeze(1), negatives], dim=1)
        if self._compiled_path_applies():
            d, e = _TableExp0Distances.apply(self.user_embedding, self.item_embedding, users, items, self.options.c,
                                             self.row_gradients)
        else:
            d, e = self._distances(users, items)  # [b, 1 + n] each
        pull_push = metric_hinge(d[:, :1].pow(2), d[:, 1:].pow(2), self.options.margin,
                                 negative=self.options.negative, rank_weight=self.options.rank_weight,
                                 n_items=self.n_items)
        parts = {"pull_push": pull_push}
        total = pull_push
        if self.options.gamma > 0:
            assert e is not None  # computed above whenever γ > 0
            # The mean over every (user, item) pair of the batch, positives and negatives alike.
            ratios = (d - e).abs() / (e + DISTORTION_EPS)
            distortion = ratios.mean()
            parts["distortion"] = self.options.gamma * distortion
            total = total + parts["distortion"]
        return LossTerms(total, parts)

    def _distances(self, users: torch.Tensor, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(d_c, the log0 distance or None when γ = 0) of each (user, item) pair, by tensor operations."""
        c = self.options.c
        u = self.lookup(self.user_embedding, users).unsqueeze(1)
        v = self.lookup(self.item_embedding, items)
        if self.options.parametrization == "tangent":
            # d and e straight from the tangent rows: the values of mapping them by exp0 first, at a fraction
            # of the element-wise passes (`exp0_distances`).
            return exp0_distances(u, v, c)
        d = poincare_distance(u, v, c)
        return d, (self.ball.logmap0(u) - self.ball.logmap0(v)).norm(dim=-1) if self.options.gamma > 0 else None

    def _compiled_path_applies(self) -> bool:
        """Row-gradient training of tangent tables on the CPU (`hyperml_kernels`); ball parameters, dense
        autograd and other devices take the tensor path."""
        return (self.options.parametrization == "tangent"
                and self.row_kernels_apply((self.user_embedding, self.item_embedding)))


class _TableExp0Distances(torch.autograd.Function):
    """`exp0_distances` of the rows `users_table[users]` and `items_table[items]`, read where they lie
    (`hyperml_kernels`); gradients go to `sink` as rows.

    The tables are inputs only so that autograd calls backward; like `rows.gather_rows`, backward hands
    (index, gradient rows) to the sink and returns no table gradient.
    """

    @staticmethod
    def forward(ctx: Any, users_table: torch.Tensor, items_table: torch.Tensor, users: torch.Tensor,
                items: torch.Tensor, c: float, sink: RowGradients) -> tuple[torch.Tensor, torch.Tensor]:
        distance, log_distance, ctx.pass_ = table_exp0_distances(users_table, items_table, users, items, c)
        ctx.tables, ctx.sink = (users_table, items_table), sink
        return distance, log_distance

    @staticmethod
    def backward(ctx: Any, grad_distance: torch.Tensor | None,
                 grad_log_distance: torch.Tensor | None) -> tuple[None, ...]:
        (users_table, items_table), forward = ctx.tables, ctx.pass_
        grad_u, grad_v = table_exp0_distance_gradients(forward, grad_distance, grad_log_distance)
        ctx.sink.add(users_table, torch.from_numpy(forward.users), grad_u)
        ctx.sink.add(items_table, torch.from_numpy(forward.items), grad_v)
        return (None,) * 6
