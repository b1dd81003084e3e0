"""VBPR (He & McAuley, AAAI 2016): BPR with a visual term from frozen image features f_i.

    s(u, i) = β_i + ⟨γ_u, γ_i⟩ + ⟨θ_u, E f_i⟩ + β'·f_i ,   loss −ln σ(s(u, i) − s(u, j)) + L2

The `--dim` budget is split as in the paper's comparison with BPR-MF (K + K' = the BPR dimension):
γ has K = dim − K' coordinates and θ, E f have K' (half of `--dim` unless `--visual-dim` says otherwise).
Evaluation folds everything into one dot product: users [γ_u, θ_u, 1, 1], items [γ_i, E f_i, β_i, β'·f_i].

`item_features()` is shared with the attentive models (`acf.py`): it checks the features the trainer put
into the context and names the `hbench features` command when they are missing.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from hbench.errors import HBenchError
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


def item_features(context: ModelContext, model_name: str, *, normalize: bool) -> torch.Tensor:
    """The context's image features as float32 [n_items, F], optionally divided by their mean row norm.

    Dividing by one scalar keeps the features' geometry (angles, relative norms) and puts ‖f_i‖ near 1, so
    that a projection initialised with standard deviation σ gives coordinates of size σ, like the
    embeddings (raw CNN pooled features have norms in the tens).
    """
    features = context.item_features
    if features is None:
        raise HBenchError(f"model {model_name!r} needs image features: run `hbench features DATASET` first")
    features = torch.as_tensor(features).detach().to(torch.float32)
    if features.dim() != 2 or features.shape[0] != context.n_items:
        raise HBenchError(
            f"model {model_name!r} got image features of shape {tuple(features.shape)} for {context.n_items} items: "
            "run `hbench features DATASET --force` to extract them again"
        )
    if not torch.isfinite(features).all():
        raise HBenchError(f"model {model_name!r} got non-finite image features: run `hbench features DATASET --force`")
    if normalize:
        scale = features.norm(dim=1).mean()
        if scale > 0:
            features = features / scale
    return features.contiguous()


@dataclass(frozen=True)
class VBPROptions:
    visual_dim: int = option(
        0, "K' = size of θ_u and E f_i (0: half of --dim); γ_u, γ_i get the rest of --dim", Range(at_least=0)
    )
    reg: float = option(
        1e-2, "L2 weight on the batch's γ, θ rows and item biases (as bpr's --reg)", Range(at_least=0)
    )
    reg_visual: float = option(0.0, "L2 weight on the shared projection E and visual bias β'", Range(at_least=0))
    item_bias: bool = option(True, "learn an item bias β_i")
    visual_bias: bool = option(True, "learn the visual bias β' (the term β'·f_i)")
    normalize_features: bool = option(True, "divide the features by their mean L2 norm (one scalar) before use")
    init_std: float = option(0.1, "standard deviation of the normal initialisation (γ, θ, E)", Range(above=0))


@register_model
class VBPR(Recommender):
    name = "vbpr"
    family = "euclidean"
    summary = "visual BPR: matrix factorisation plus a projected image-feature term (Euclidean)"
    Options = VBPROptions
    default_lr = 1e-3
    needs_features = True

    def __init__(self, context: ModelContext, options: VBPROptions) -> None:
        super().__init__(context, options)
        visual_dim = options.visual_dim or context.dim // 2
        latent_dim = context.dim - visual_dim
        if visual_dim < 1 or latent_dim < 1:
            raise HBenchError(
                f"vbpr splits --dim {context.dim} into latent and visual parts: --visual-dim must lie in 1..{context.dim - 1}"
            )
        features = item_features(context, self.name, normalize=options.normalize_features)
        self.register_buffer("features", features, persistent=False)  # frozen input, not saved in checkpoints
        g, std = context.generator, options.init_std
        self.user_factors = nn.Parameter(normal_init((context.n_users, latent_dim), std, g))  # γ_u
        self.item_factors = nn.Parameter(normal_init((context.n_items, latent_dim), std, g))  # γ_i
        self.user_visual = nn.Parameter(normal_init((context.n_users, visual_dim), std, g))  # θ_u
        self.visual_projection = nn.Parameter(normal_init((features.shape[1], visual_dim), std, g))  # Eᵀ
        self.item_bias = nn.Parameter(torch.zeros(context.n_items, 1), requires_grad=options.item_bias)  # β_i
        self.visual_bias = nn.Parameter(torch.zeros(features.shape[1]), requires_grad=options.visual_bias)  # β'

    def embedding_tables(self) -> list[nn.Parameter]:
        return [self.user_factors, self.item_factors, self.user_visual, self.item_bias]

    def _visual(self, items: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(E f_i, β'·f_i) of the given items (all items when None)."""
        f = self.features if items is None else self.features[items]
        return f @ self.visual_projection, f @ self.visual_bias

    def representations(self) -> Representations:
        with torch.no_grad():
            projected, visual_bias = self._visual()
            ones = torch.ones_like(self.user_factors[:, :1])
            users = torch.cat([self.user_factors, self.user_visual, ones, ones], dim=1)
            items = torch.cat([self.item_factors, projected, self.item_bias, visual_bias.unsqueeze(1)], dim=1)
        return Representations(users.detach(), items.detach(), DotProduct())

    def loss(self, users: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor) -> LossTerms:
        gu, tu = self.lookup(self.user_factors, users), self.lookup(self.user_visual, users)
        gp, gn = self.lookup(self.item_factors, positives), self.lookup(self.item_factors, negatives)
        bp, bn = self.lookup(self.item_bias, positives)[..., 0], self.lookup(self.item_bias, negatives)[..., 0]
        ep, vbp = self._visual(positives)
        en, vbn = self._visual(negatives)
        pos_score = bp + (gu * gp).sum(-1) + (tu * ep).sum(-1) + vbp
        neg_score = bn + (gu.unsqueeze(1) * gn).sum(-1) + (tu.unsqueeze(1) * en).sum(-1) + vbn
        ranking = -F.logsigmoid(pos_score.unsqueeze(1) - neg_score).mean()
        parts = {"bpr": ranking}
        total = ranking
        if self.options.reg > 0:
            l2 = (gu.pow(2).sum(-1) + tu.pow(2).sum(-1) + gp.pow(2).sum(-1) + gn.pow(2).sum(-1).mean(-1)).mean()
            l2 = l2 + bp.pow(2).mean() + bn.pow(2).mean()
            parts["l2"] = self.options.reg * l2
            total = total + parts["l2"]
        if self.options.reg_visual > 0:
            parts["l2_visual"] = self.options.reg_visual * (self.visual_projection.pow(2).sum()
                                                            + self.visual_bias.pow(2).sum())
            total = total + parts["l2_visual"]
        return LossTerms(total, parts)
