"""HGCF (Sun et al., WWW 2021): hyperbolic graph collaborative filtering with a skip-connected GCN.

    x⁰ = points on the hyperbolic manifold (one per user and item), t⁰ = log₀ x⁰
    t⁽ᵏ⁺¹⁾ = Â t⁽ᵏ⁾,   h = exp₀(Σ_{k=1..L} t⁽ᵏ⁾)                       (the paper's "SkipGCN", no weights)
    L = Σ_{(u, i, j)} [d(h_u, h_i)² − d(h_u, h_j)² + m]_+                (summed over the batch, as the authors' code)

trained by Riemannian SGD with momentum, weight decay added to the Euclidean gradient before it is turned
into a Riemannian one (geoopt's `RiemannianSGD`, the authors' optimiser).

Geometry. The paper works on the hyperboloid (Lorentz model, curvature −1). hbench stores the points on
the Poincaré ball, which is isometric to it (x_P = x_s / (1 + x_0)): a geodesic from the origin of length r
maps to one of length r, so the hyperboloid's exp_o(v) is the ball's expmap0(v / 2) (geoopt's expmap0 has
d(0, expmap0(w)) = 2‖w‖). With the tangent vectors kept in the hyperboloid's scale, `v = 2·logmap0(x)`,
initialisation U(−s, s), propagation and distances are those of the paper exactly, and evaluation ranks
by Poincaré distance, which orders items as the Lorentz distance does. What differs: weight decay acts on
ball coordinates instead of hyperboloid coordinates (both pull points towards the origin), and the
authors' clamp of d² at 50 is not applied.

Â: `(D + I)^{-1}(A + I)` by default (the authors' `normalize(adj + I)`); `--normalisation` offers the others.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Literal

import geoopt
import torch

from hbench.geometry import PoincareDistance, Representations
from hbench.geometry.poincare import poincare_distance
from hbench.models.base import LossTerms, ModelContext, Range, Recommender, option
from hbench.models.graph import Propagation
from hbench.models.registry import register_model


@dataclass(frozen=True)
class HGCFOptions:
    # At least one layer: the output sums layers 1..L.
    layers: int = option(3, "propagation layers L (the authors' `--num-layers 4` means 3)", Range(at_least=1))
    margin: float = option(0.1, "hinge margin m on squared hyperbolic distances (Amazon-CD: 0.1)", Range(at_least=0))
    weight_decay: float = option(5e-3, "weight decay of Riemannian SGD (Amazon-CD: 0.005)", Range(at_least=0))
    momentum: float = option(0.95, "momentum of Riemannian SGD", Range(at_least=0, at_most=0.999))
    init_scale: float = option(0.1, "tangent vectors start uniform in [−s, s] (hyperboloid scale)", Range(above=0))
    normalisation: Literal["symmetric", "row", "row_self"] = option(
        "row_self", "adjacency normalisation: (D+I)^-1 (A+I) (the authors'), D^-1 A, or D^-1/2 A D^-1/2")



@register_model
class HGCF(Recommender):
    name = "hgcf"
    family = "hyperbolic"
    summary = "hyperbolic graph CF: skip-connected GCN in the tangent space, Riemannian SGD"
    Options = HGCFOptions
    # The authors' learning rate and batch (10,000 triples) for their loss summed over the batch.
    default_lr = 1e-3
    default_batch_size = 10_000
    # Log ranges for rates and regularisation (Rendle et al. 2019); the equal-budget search of `hbench tune`.
    search_space = {"lr": {"low": 1e-4, "high": 1e-2, "log": True},
                    "weight_decay": {"low": 1e-4, "high": 1e-1, "log": True}, "margin": {"low": 0.05, "high": 1.0}}

    def __init__(self, context: ModelContext, options: HGCFOptions) -> None:
        super().__init__(context, options)
        self.ball = geoopt.PoincareBall(c=1.0)
        n = context.n_users + context.n_items
        tangent = (torch.rand((n, context.dim), generator=context.generator) * 2 - 1) * options.init_scale
        self.embedding = geoopt.ManifoldParameter(self._to_ball(tangent), manifold=self.ball)
        self.propagation = Propagation(context.training_graph(), options.normalisation)

    def _to_ball(self, tangent: torch.Tensor) -> torch.Tensor:
        return self.ball.expmap0(tangent / 2, project=True)

    def _encoded_tangents(self) -> torch.Tensor:
        """The skip-connected sum of layers 1..L in the tangent space, every node (map rows by `_to_ball`)."""
        tangent = 2 * self.ball.logmap0(self.embedding)
        layers = self.propagation.layers(tangent, self.options.layers)
        return functools.reduce(torch.add, layers[1:])  # pairwise: a stack would copy every layer once more

    def configure_optimizers(self, lr: float) -> list[torch.optim.Optimizer]:
        return [geoopt.optim.RiemannianSGD([self.embedding], lr=lr, momentum=self.options.momentum,
                                           weight_decay=self.options.weight_decay)]

    def representations(self) -> Representations:
        users, items = self.propagation.split(self._to_ball(self._encoded_tangents()))
        return Representations(users.detach(), items.detach(), PoincareDistance(1.0))

    def loss(self, users: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor) -> LossTerms:
        users_all, items_all = self.propagation.split(self._encoded_tangents())
        # Only the batch's rows are mapped to the ball: exp0 and its backward cost what the batch reads.
        u = self._to_ball(users_all[users]).unsqueeze(1)
        d_pos = poincare_distance(u, self._to_ball(items_all[positives]).unsqueeze(1), 1.0)
        d_neg = poincare_distance(u, self._to_ball(items_all[negatives]), 1.0)
        hinge = torch.relu(d_pos.pow(2) - d_neg.pow(2) + self.options.margin).sum()
        return LossTerms(hinge, {"hinge": hinge})
