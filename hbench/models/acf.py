"""VACF and HVACF: attentive aggregation over sampled neighbours with visual features.

One implementation, registered twice: `vacf` (Euclidean, after ACF, Chen et al. SIGIR 2017) and `hvacf`
(Shimizu et al., CVPR 2024 Workshops, arXiv 2409.02599: the Poincaré ball with a multi-task loss; the paper
gives no equations, so this is a reconstruction from its public description, every choice an option). They
differ only in the default of `--hyperbolic`, so `hvacf --hyperbolic false` *is* `vacf`: same parameters
drawn in the same order, same loss, same representations.

Tangent space at the origin (D = `--dim`):

    item        ṽ_j = v_j + W_f f_j
    user        ũ_i = u_i + Σ_{l ∈ N_i} α(i, l) p_l
    attention   α(i, ·) = softmax_l( w · ReLU(A [u_i; v_l; p_l; W_f f_l] + b) )   (uniform with --attention false)
    points      h_i = exp0(ũ_i), g_j = exp0(ṽ_j) on B_c;  score −d_c(h_i, g_j)   (−‖ũ_i − ṽ_j‖ Euclidean)

N_i: L = `--neighbours` distinct items of i's training history, drawn uniformly without replacement; while
training the current positive is excluded and each triple draws afresh (from the model's own generator,
seeded from the context's: a seed reproduces the run); shorter histories are padded and masked. For
evaluation every user's neighbours are one fixed choice made from a stored seed (a buffer, so a checkpoint
reproduces it), and user representations are built once, in blocks, then scored like any other model's.

Loss over triples (i, j, k), one term per sampled negative k:

    L_hyp = mean [m + d_c(h_i, g_j)² − d_c(h_i, g_k)²]_+          (or BPR: −ln σ(d_c(h_i,g_k) − d_c(h_i,g_j)))
    L_euc = the same on Euclidean distances ‖ũ_i − ṽ_x‖
    L_adj = mean_{x ∈ pos ∪ neg} |d_c(h_i, g_x) − ‖ũ_i − ṽ_x‖| / (‖ũ_i − ṽ_x‖ + ε)
    L     = L_hyp + γ·L_euc + λ_adj·L_adj (+ reg·L2)      hyperbolic;     L = L_euc (+ reg·L2)     Euclidean

Parts are logged weighted, and a part whose weight is 0 is not computed at all (ablations). With
`--parametrization ball`, U, V, P are ManifoldParameters on B_c (Riemannian Adam steps) and their log0
images enter the formulas above, so both parametrizations define the same model at initialisation.

Defaults, where the paper gives no value: γ = 1 (the two ranking losses weighted equally; the paper reports
that small γ is unstable and that dropping L_euc hurts, so the default is not small), λ_adj = 0.2 (HyperML's
published weight for the same distortion term), margin 1 and c = 1 (HyperML's; large c hurts per the paper),
L = 10, hinge loss and tangent-space parameters (as the reconstruction), init std 0.01 (HyperML's), no L2.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import geoopt
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hbench.datasets.graph import UserItemGraph
from hbench.errors import HBenchError
from hbench.geometry import GeometryFamily, PoincareDistance, Representations, SquaredEuclidean
from hbench.geometry.poincare import poincare_distance
from hbench.models.base import (
    LossTerms,
    ModelContext,
    Range,
    Recommender,
    Twin,
    normal_init,
    option,
)
from hbench.models.hyperml import DISTORTION_EPS
from hbench.models.registry import register_model
from hbench.models.vbpr import item_features

USER_BLOCK = 4096  # users aggregated at once by representations()
_SQRT_FLOOR = 1e-18  # ‖·‖ = sqrt(max(‖·‖², floor)): finite gradients for coincident points


@dataclass(frozen=True)
class VACFOptions:
    hyperbolic: bool = option(False, "Poincaré-ball model with the multi-task loss (false: Euclidean only, = vacf)")
    neighbours: int = option(
        10, "L: neighbours sampled from the user's training history (padded and masked if fewer)", Range(at_least=1)
    )
    attention: bool = option(True, "attention weights over the neighbours (false: uniform weights, no attention MLP)")
    attention_hidden: int = option(64, "hidden units of the attention MLP", Range(at_least=1))
    visual: bool = option(True, "add projected image features W_f f to items and attention (false: no features needed)")
    normalize_features: bool = option(True, "divide the features by their mean L2 norm (one scalar) before use")
    loss: Literal["hinge", "bpr"] = option("hinge", "ranking loss: hinge on squared distances, or BPR on −distance")
    margin: float = option(1.0, "hinge margin m on squared distances (HyperML's value)", Range(at_least=0))
    c: float = option(
        1.0, "curvature parameter c > 0 of the ball (hyperbolic only; the paper finds large c hurts)", Range(above=0)
    )
    learnable_c: bool = option(False, "learn c (kept positive through geoopt's softplus; hyperbolic only)")
    gamma: float = option(
        1.0, "γ: weight of the Euclidean loss L_euc next to L_hyp (0: no Euclidean loss; hyperbolic only)",
        Range(at_least=0),
    )
    lambda_adj: float = option(
        0.2, "λ_adj: weight of the adjustment loss L_adj (0: none; hyperbolic only)", Range(at_least=0)
    )
    parametrization: Literal["tangent", "ball"] = option(
        "tangent", "U, V, P as tangent vectors at 0 mapped by exp0, or ManifoldParameters on the ball (hyperbolic only)"
    )
    reg: float = option(0.0, "L2 weight on the batch's final tangent vectors ũ_i, ṽ_j, ṽ_k", Range(at_least=0))
    init_std: float = option(
        0.01, "standard deviation of the normal initialisation of U, V, P and W_f", Range(above=0)
    )


@dataclass(frozen=True)
class HVACFOptions(VACFOptions):
    hyperbolic: bool = option(True, "Poincaré-ball model with the multi-task loss (false: Euclidean only, = vacf)")


class _Histories:
    """Uniform choices of up to L of each user's distinct training items (read from the training graph)."""

    def __init__(self, graph: UserItemGraph) -> None:
        self.graph = graph

    def choose(self, users: np.ndarray, size: int, generator: torch.Generator,
               exclude: np.ndarray | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(items [b, size] int64, mask [b, size] bool): for row r, up to `size` distinct items of user
        users[r] other than exclude[r], uniformly without replacement; padding is item 0 with mask False.

        One random key per history entry (drawn from `generator`); each row keeps its smallest keys.
        """
        rows, edges = self.graph.edges_of(users)
        lengths = self.graph.indptr[users + 1] - self.graph.indptr[users]  # the batch's users only
        first = np.cumsum(lengths) - lengths  # where each row's entries begin in the flat arrays
        items = self.graph.items[edges]
        keys = torch.rand(len(edges), generator=generator, dtype=torch.float64).numpy()
        valid = np.ones(len(edges), dtype=bool) if exclude is None else items != np.asarray(exclude)[rows]
        keys[~valid] = 2.0  # after every valid entry of the row
        order = np.lexsort((keys, rows))  # rows stay grouped (they already are); keys ascending within a row
        rank = np.arange(len(order)) - first[rows[order]]
        keep = order[(rank < size) & valid[order]]
        keep_rank = rank[(rank < size) & valid[order]]
        neighbours = torch.zeros((len(users), size), dtype=torch.int64)
        mask = torch.zeros((len(users), size), dtype=torch.bool)
        neighbours[rows[keep], keep_rank] = torch.from_numpy(items[keep])
        mask[rows[keep], keep_rank] = True
        return neighbours, mask


def _uniform(shape: tuple[int, ...], fan_in: int, generator: torch.Generator) -> torch.Tensor:
    """PyTorch's default Linear initialisation U(−1/√fan_in, 1/√fan_in), from a given generator."""
    bound = 1.0 / fan_in**0.5
    return (torch.rand(shape, generator=generator) * 2.0 - 1.0) * bound


def _norm(squared: torch.Tensor) -> torch.Tensor:
    return squared.clamp_min(_SQRT_FLOOR).sqrt()


@register_model
class VACF(Recommender):
    name = "vacf"
    family = "euclidean"
    summary = "visual attentive CF over sampled neighbours (Euclidean, after ACF)"
    Options = VACFOptions
    default_lr = 1e-3
    ablations = {
        "full": {},
        "uniform attention": {"attention": False},
        "no visual features": {"visual": False},
    }
    needs_features = True

    @classmethod
    def uses_features(cls, options: VACFOptions) -> bool:
        return options.visual

    @classmethod
    def family_for(cls, options: VACFOptions) -> GeometryFamily:
        return "hyperbolic" if options.hyperbolic else "euclidean"

    def __init__(self, context: ModelContext, options: VACFOptions) -> None:
        super().__init__(context, options)
        self._check(options)
        self.n_users, self.n_items = context.n_users, context.n_items
        dim, g, std = context.dim, context.generator, options.init_std
        if options.visual:
            self.register_buffer("features", item_features(context, self.name, normalize=options.normalize_features),
                                 persistent=False)  # frozen input, not saved in checkpoints
        self.ball = geoopt.PoincareBall(c=options.c, learnable=options.learnable_c) if options.hyperbolic else None
        self._histories = _Histories(context.training_graph())
        # Two seeds from the initialisation stream: the training neighbour draws, and the evaluation choice.
        train_seed, eval_seed = (int(s) for s in torch.randint(0, 2**62, (2,), generator=g))
        self._neighbour_generator = torch.Generator().manual_seed(train_seed)
        self.register_buffer("neighbour_seed", torch.tensor(eval_seed, dtype=torch.int64))

        def table(n: int) -> nn.Parameter:
            rows = normal_init((n, dim), std, g)
            if options.parametrization == "ball":
                with torch.no_grad():
                    rows = self.ball.expmap0(rows, project=True)
                return geoopt.ManifoldParameter(rows, manifold=self.ball)
            return nn.Parameter(rows)

        self.user_embedding = table(context.n_users)  # U
        self.item_embedding = table(context.n_items)  # V (target role)
        self.neighbour_embedding = table(context.n_items)  # P (neighbour role)
        if options.visual:
            self.visual_projection = nn.Parameter(normal_init((self.features.shape[1], dim), std, g))  # W_fᵀ
        if options.attention:
            in_dim = (4 if options.visual else 3) * dim
            hidden = options.attention_hidden
            self.attention_weight = nn.Parameter(_uniform((in_dim, hidden), in_dim, g))  # Aᵀ
            self.attention_bias = nn.Parameter(_uniform((hidden,), in_dim, g))  # b
            self.attention_vector = nn.Parameter(_uniform((hidden,), hidden, g))  # w

    @staticmethod
    def _check(options: VACFOptions) -> None:
        # Each option's own range is checked by VACFOptions itself; this is the rule between options.
        if not options.hyperbolic and (options.learnable_c or options.parametrization == "ball"):
            raise HBenchError("--learnable-c and --parametrization ball need --hyperbolic true")

    def embedding_tables(self) -> list[nn.Parameter]:
        return [self.user_embedding, self.item_embedding, self.neighbour_embedding]

    # -- building blocks ---------------------------------------------------------------------------------

    def curvature(self) -> float | torch.Tensor:
        """c for distances: the option itself, or the ball's current (learnable) c as a tensor."""
        return self.ball.c if self.options.learnable_c else self.options.c

    def _tangent(self, table: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
        rows = table if index is None else self.lookup(table, index)
        return self.ball.logmap0(rows) if self.options.parametrization == "ball" else rows

    def _projected_features(self, items: torch.Tensor | None) -> torch.Tensor:
        return (self.features if items is None else self.features[items]) @ self.visual_projection

    def item_tangent(self, items: torch.Tensor | None = None) -> torch.Tensor:
        """ṽ_j = v_j + W_f f_j for the given items (any shape), all items when None."""
        v = self._tangent(self.item_embedding, items)
        return v + self._projected_features(items) if self.options.visual else v

    def user_tangent(self, users: torch.Tensor, neighbours: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """ũ_i = u_i + Σ_l α(i, l) p_l over the masked neighbours [b, L]; only real neighbours are looked up."""
        u = self._tangent(self.user_embedding, users)
        rows, slots = mask.nonzero(as_tuple=True)
        items = neighbours[rows, slots]
        p = self._tangent(self.neighbour_embedding, items)
        if self.options.attention:
            inputs = [u[rows], self._tangent(self.item_embedding, items), p]
            if self.options.visual:
                inputs.append(self._projected_features(items))
            hidden = torch.relu(torch.cat(inputs, dim=-1) @ self.attention_weight + self.attention_bias)
            scores = hidden @ self.attention_vector
            logits = torch.full(mask.shape, torch.finfo(scores.dtype).min, dtype=scores.dtype, device=scores.device)
            weights = torch.softmax(logits.index_put((rows, slots), scores), dim=1)[rows, slots]
        else:
            weights = 1.0 / mask.sum(dim=1).to(p.dtype)[rows]
        return u.index_add(0, rows, weights.unsqueeze(1) * p)

    def sample_neighbours(self, users: torch.Tensor, exclude: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Training draw: up to L distinct history items per row, never the row's `exclude` item."""
        neighbours, mask = self._histories.choose(
            users.cpu().numpy(), self.options.neighbours, self._neighbour_generator,
            None if exclude is None else exclude.cpu().numpy(),
        )
        return neighbours.to(users.device), mask.to(users.device)

    def evaluation_neighbours(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The fixed choice [n_users, L] used by representations(): the same at every call (stored seed)."""
        generator = torch.Generator().manual_seed(int(self.neighbour_seed))
        return self._histories.choose(np.arange(self.n_users), self.options.neighbours, generator)

    # -- protocol ----------------------------------------------------------------------------------------

    def representations(self) -> Representations:
        device = self.user_embedding.device
        neighbours, mask = self.evaluation_neighbours()
        with torch.no_grad():
            items = self.item_tangent()
            blocks = []
            for lo in range(0, self.n_users, USER_BLOCK):
                hi = min(lo + USER_BLOCK, self.n_users)
                blocks.append(self.user_tangent(torch.arange(lo, hi, device=device), neighbours[lo:hi].to(device),
                                                mask[lo:hi].to(device)))
            users = torch.cat(blocks) if blocks else items.new_zeros((0, items.shape[1]))
            if not self.options.hyperbolic:
                return Representations(users.detach(), items.detach(), SquaredEuclidean())
            users, items = self.ball.expmap0(users, project=True), self.ball.expmap0(items, project=True)
        c = float(self.ball.c.detach()) if self.options.learnable_c else self.options.c  # the ball's current c
        return Representations(users.detach(), items.detach(), PoincareDistance(c))

    def _ranking(self, pos_sq: torch.Tensor, neg_sq: torch.Tensor, pos: torch.Tensor | None = None,
                 neg: torch.Tensor | None = None) -> torch.Tensor:
        """Hinge on squared distances or BPR on −distance; pos [b], neg [b, n] (distances computed if absent)."""
        if self.options.loss == "hinge":
            return torch.relu(self.options.margin + pos_sq.unsqueeze(1) - neg_sq).mean()
        pos = _norm(pos_sq) if pos is None else pos
        neg = _norm(neg_sq) if neg is None else neg
        return -F.logsigmoid(neg - pos.unsqueeze(1)).mean()

    def loss(self, users: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor) -> LossTerms:
        neighbours, mask = self.sample_neighbours(users, exclude=positives)
        u = self.user_tangent(users, neighbours, mask)  # [b, D]
        v_pos, v_neg = self.item_tangent(positives), self.item_tangent(negatives)  # [b, D], [b, n, D]
        e_pos_sq = (u - v_pos).pow(2).sum(-1)
        e_neg_sq = (u.unsqueeze(1) - v_neg).pow(2).sum(-1)
        parts: dict[str, torch.Tensor] = {}
        opts = self.options
        if not opts.hyperbolic:
            parts["euclidean"] = self._ranking(e_pos_sq, e_neg_sq)
        else:
            c = self.curvature()
            h = self.ball.expmap0(u, project=True)
            d_pos = poincare_distance(h, self.ball.expmap0(v_pos, project=True), c)
            d_neg = poincare_distance(h.unsqueeze(1), self.ball.expmap0(v_neg, project=True), c)
            parts["hyperbolic"] = self._ranking(d_pos.pow(2), d_neg.pow(2), d_pos, d_neg)
            if opts.gamma > 0:
                parts["euclidean"] = opts.gamma * self._ranking(e_pos_sq, e_neg_sq)
            if opts.lambda_adj > 0:
                e_pos, e_neg = _norm(e_pos_sq), _norm(e_neg_sq)
                ratios = torch.cat([((d_pos - e_pos).abs() / (e_pos + DISTORTION_EPS)).flatten(),
                                    ((d_neg - e_neg).abs() / (e_neg + DISTORTION_EPS)).flatten()])
                parts["adjustment"] = opts.lambda_adj * ratios.mean()
        if opts.reg > 0:
            l2 = (u.pow(2).sum(-1) + v_pos.pow(2).sum(-1) + v_neg.pow(2).sum(-1).mean(-1)).mean()
            parts["l2"] = opts.reg * l2
        values = list(parts.values())
        total = values[0]
        for value in values[1:]:
            total = total + value
        return LossTerms(total, parts)


@register_model
class HVACF(VACF):
    name = "hvacf"
    family = "hyperbolic"  # with the default --hyperbolic true; `--hyperbolic false` scores as vacf does
    proposed = True
    # vacf is hvacf with `--hyperbolic false`: the same parameters, loss and sampler (the hyperbolic-only
    # options are there too, with the same defaults, and unused); the switch is the only geometry option.
    twin = Twin(model="vacf")
    geometry_options = ("hyperbolic",)
    summary = "hyperbolic visual attentive CF: Poincaré ball, multi-task loss (reconstruction of Shimizu et al. 2024)"
    Options = HVACFOptions
    ablations = {
        "full": {},
        "no Euclidean loss (γ = 0)": {"gamma": 0.0},
        "no adjustment loss (λ_adj = 0)": {"lambda_adj": 0.0},
        "uniform attention": {"attention": False},
        "no visual features": {"visual": False},
        "Euclidean only": {"hyperbolic": False},
    }
