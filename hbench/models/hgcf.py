"""HGCF (Sun et al., WWW 2021): hyperbolic graph collaborative filtering with a skip-connected GCN.

    x⁰ = points on the hyperbolic manifold (one per user and item), t⁰ = log₀ x⁰
    t⁽ᵏ⁺¹⁾ = Â t⁽ᵏ⁾,   h = exp₀(Σ_{k=1..L} t⁽ᵏ⁾)                       (the paper's "SkipGCN", no weights)
    L = Σ_{(u, i, j)} [d(h_u, h_i)² − d(h_u, h_j)² + m]_+                (summed over the batch, as the authors' code)

trained by Riemannian SGD with momentum, weight decay added to the Euclidean gradient before it is turned
into a Riemannian one (geoopt's `RiemannianSGD`, the authors' optimiser; on the CPU its step runs compiled,
`ball_sgd.BallRiemannianSGD`).

Geometry. The paper works on the hyperboloid (Lorentz model, curvature −1). hbench stores the points on
the Poincaré ball, which is isometric to it (x_P = x_s / (1 + x_0)): a geodesic from the origin of length r
maps to one of length r, so the hyperboloid's exp_o(v) is the ball's expmap0(v / 2) (geoopt's expmap0 has
d(0, expmap0(w)) = 2‖w‖). Initialisation draws v ~ U(−s, s) in the hyperboloid's scale and stores
expmap0(v / 2); propagation is linear, so propagating w = logmap0(x) = v / 2 and mapping by expmap0 gives
the paper's points exactly, and evaluation ranks by Poincaré distance, which orders items as the Lorentz
distance does. What differs: weight decay acts on ball coordinates instead of hyperboloid coordinates (both
pull points towards the origin), and the authors' clamp of d² at 50 is not applied.

Euclidean twin (`--geometry euclidean`, issue 34). The same model with the hyperbolic maps replaced by
their Euclidean counterparts: the tangent space is the space, exp₀ and log₀ are the identity, and d² is the
squared Euclidean distance. So x⁰ = v (the same draw, in the hyperboloid's scale, whose metric at the origin
is the Euclidean one: the twin is the hyperbolic model's limit near the origin), h = Σ_{k=1..L} Â^k x⁰, and
the same hinge on ‖h_u − h_i‖² − ‖h_u − h_j‖², summed, trained by the same SGD with momentum and weight
decay (on a Euclidean parameter geoopt's Riemannian SGD is plain SGD). Evaluation ranks by squared
Euclidean distance. Its loss takes the tensor path (the compiled distances are the ball's).

Â: `(D + I)^{-1}(A + I)` by default (the authors' `normalize(adj + I)`); `--normalisation` offers the others.

Cost. Every step propagates the whole graph, so a step is about table-sized work: the logmap of every
node, 2L sparse products, the batch's distances, an optimiser step over every row. Autograd through geoopt's
logmap0, expmap0 and distance, and geoopt's step, made some seventy passes over the [nodes, D] table per
step (190 ms of which the 2L products were 65, amazon-cd, one thread). Here logmap0 has its backward
written out (`geometry.poincare.logmap0`), only the batch's rows are mapped to the ball, by HyperML's
compiled tangent distances (`hyperml_kernels`), and the step is compiled, which leaves the products most
of the step (`benchmarks/results/step_parts.md`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Literal

import geoopt
import torch

from hbench.geometry import GeometryFamily, PoincareDistance, Representations, SquaredEuclidean
from hbench.geometry.poincare import exp0_distances, logmap0
from hbench.models.ball_sgd import BallRiemannianSGD
from hbench.models.base import LossTerms, ModelContext, Range, Recommender, Twin, option
from hbench.models.graph import Propagation
from hbench.models.hyperml_kernels import table_exp0_distance_gradients, table_exp0_distances
from hbench.models.registry import register_model


@dataclass(frozen=True)
class HGCFOptions:
    # At least one layer: the output sums layers 1..L.
    layers: int = option(3, "propagation layers L (the authors' `--num-layers 4` means 3)", Range(at_least=1))
    margin: float = option(0.1, "hinge margin m on squared distances (Amazon-CD: 0.1)", Range(at_least=0))
    weight_decay: float = option(5e-3, "weight decay of Riemannian SGD (Amazon-CD: 0.005)", Range(at_least=0))
    momentum: float = option(0.95, "momentum of Riemannian SGD", Range(at_least=0, at_most=0.999))
    init_scale: float = option(0.1, "tangent vectors start uniform in [−s, s] (hyperboloid scale)", Range(above=0))
    normalisation: Literal["symmetric", "row", "row_self"] = option(
        "row_self", "adjacency normalisation: (D+I)^-1 (A+I) (the authors'), D^-1 A, or D^-1/2 A D^-1/2")
    # Added after the recorded HGCF runs; the default is the model those runs trained.
    geometry: Literal["hyperbolic", "euclidean"] = option(
        "hyperbolic", "Poincaré ball (the paper's), or its Euclidean twin: exp/log the identity, squared "
        "Euclidean distance, all else equal", added_later=True)


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
    # The same propagation, hinge and optimiser in Euclidean space; the switch is the only geometry option.
    twin = Twin(model="hgcf", options={"geometry": "euclidean"})
    geometry_options = ("geometry",)

    @classmethod
    def family_for(cls, options: HGCFOptions) -> GeometryFamily:
        return options.geometry

    def __init__(self, context: ModelContext, options: HGCFOptions) -> None:
        super().__init__(context, options)
        self.ball = geoopt.PoincareBall(c=1.0)
        n = context.n_users + context.n_items
        tangent = (torch.rand((n, context.dim), generator=context.generator) * 2 - 1) * options.init_scale
        self.euclidean = options.geometry == "euclidean"
        if self.euclidean:  # the space is its own tangent space: the points are the drawn vectors
            self.embedding = torch.nn.Parameter(tangent)
        else:
            self.embedding = geoopt.ManifoldParameter(self._to_ball(tangent / 2), manifold=self.ball)
        self.propagation = Propagation(context.training_graph(), options.normalisation)

    def _to_ball(self, tangent: torch.Tensor) -> torch.Tensor:
        """Ball points of tangent vectors in the ball's scale (geoopt's expmap0, projected)."""
        return self.ball.expmap0(tangent, project=True)

    def _encoded_tangents(self) -> torch.Tensor:
        """Σ_{k=1..L} Â^k log0 x for every node: the paper's skip-connected sum, in the ball's tangent scale
        (half the hyperboloid's: propagation is linear, so exp_o(Σ Â^k v) on the hyperboloid is the ball's
        expmap0 of this). Map rows by `_to_ball`. Euclidean twin: Σ_{k=1..L} Â^k x, the points themselves."""
        start = self.embedding if self.euclidean else logmap0(self.embedding, 1.0)
        layers = self.propagation.layers(start, self.options.layers)
        return functools.reduce(torch.add, layers[1:])  # pairwise: a stack would copy every layer once more

    def configure_optimizers(self, lr: float) -> list[torch.optim.Optimizer]:
        return [BallRiemannianSGD([self.embedding], lr=lr, momentum=self.options.momentum,
                                  weight_decay=self.options.weight_decay)]

    def representations(self) -> Representations:
        if self.euclidean:
            users, items = self.propagation.split(self._encoded_tangents())
            return Representations(users.detach(), items.detach(), SquaredEuclidean())
        users, items = self.propagation.split(self._to_ball(self._encoded_tangents()))
        return Representations(users.detach(), items.detach(), PoincareDistance(1.0))

    def loss(self, users: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor) -> LossTerms:
        nodes = self._encoded_tangents()
        # Positive and negatives in one block, as node rows (items follow the users).
        items = torch.cat([positives.unsqueeze(1), negatives], dim=1) + self.propagation.n_users
        if self.euclidean:  # squared Euclidean distances of the propagated points
            offset = nodes[users].unsqueeze(1) - nodes[items]
            squared = torch.linalg.vecdot(offset, offset)
        else:
            if self._compiled_loss_applies(nodes):
                distances = _NodeExp0Distances.apply(nodes, users, items)
            else:  # the same distances by tensor operations: only the batch's rows are mapped to the ball
                distances = exp0_distances(nodes[users].unsqueeze(1), nodes[items], 1.0)[0]
            squared = distances.pow(2)
        hinge = torch.relu(squared[:, :1] - squared[:, 1:] + self.options.margin).sum()
        return LossTerms(hinge, {"hinge": hinge})

    def _compiled_loss_applies(self, nodes: torch.Tensor) -> bool:
        """The compiled distances serve float CPU tensors; other devices take the tensor path."""
        return nodes.device.type == "cpu" and nodes.dtype in (torch.float32, torch.float64)


class _NodeExp0Distances(torch.autograd.Function):
    """d_1(exp0 w_u, exp0 w_i) for the node rows w = `nodes` of each (user, item) pair, by HyperML's compiled
    tangent distances (`hyperml_kernels.table_exp0_distances`: the same arithmetic as `exp0_distances`),
    with the gradient scattered into a node-sized gradient (`nodes` is computed every step, not a table of
    rows)."""

    @staticmethod
    def forward(ctx: Any, nodes: torch.Tensor, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        distance, _, ctx.pass_ = table_exp0_distances(nodes, nodes, users, items, 1.0)
        return distance

    @staticmethod
    def backward(ctx: Any, grad_distance: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        forward = ctx.pass_
        grad_u, grad_v = table_exp0_distance_gradients(forward, grad_distance, None)  # no log0 distance read
        grad = torch.zeros_like(torch.from_numpy(forward.users_table))
        grad.index_add_(0, torch.from_numpy(forward.users), grad_u)
        grad.index_add_(0, torch.from_numpy(forward.items).reshape(-1), grad_v.reshape(-1, grad.shape[1]))
        return grad, None, None
