"""Geometries turn representations into scores, higher = more relevant.

A model hands evaluation two matrices (users [n_users, d], items [n_items, d]) and one of these
geometries; evaluation never needs to know which model produced them. Each geometry scores

* a block of users against all items (`score_matrix`), and
* each user against its own candidate items (`score_candidates`, for sampled protocols).

`score_matrix` returns *ranking scores*: within each user's row they order items exactly as the model's
score does, which is all that ranks, HR, nDCG and AUC need. Every geometry reduces them to **one matrix
product** of augmented vectors, so hyperbolic full ranking costs what a dot product costs:

* squared Euclidean: −‖x − y‖² = 2⟨x, y⟩ − ‖y‖² − ‖x‖²; the last term is constant in a row, so
  ⟨[2x, −1], [y, ‖y‖²]⟩ ranks the same.
* Poincaré: d_c(x, y) = arcosh(1 + 2c‖x − y‖² / (g_x g_y)) / √c with g = 1 − c‖·‖². arcosh is increasing and
  g_x is constant in a row, so −‖x − y‖²/g_y ranks the same, and it equals
  ⟨[2x, −‖x‖², −1], [y/g_y, 1/g_y, ‖y‖²/g_y]⟩.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal, Protocol, get_args

import torch

from hbench.geometry.poincare import MIN_CONFORMAL_GAP, poincare_distance

# The space a geometry's points live in: what a report means by a Euclidean or a hyperbolic model.
GeometryFamily = Literal["euclidean", "hyperbolic"]
GEOMETRY_FAMILIES: tuple[GeometryFamily, ...] = get_args(GeometryFamily)


class Geometry(Protocol):
    """A scoring rule. `name` is written into exported files; `family` is the space its points live in, the
    value a model declares as `Recommender.family`."""

    name: str
    family: ClassVar[GeometryFamily]

    def item_cache(self, items: torch.Tensor) -> torch.Tensor:
        """Augmented item matrix [n_items, d'] reused by every user block."""

    def score_matrix(self, users: torch.Tensor, cache: torch.Tensor) -> torch.Tensor:
        """Ranking scores [b, n_items] of a user block [b, d] (order within each row = the model's order)."""

    def score_candidates(self, users: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """The model's scores [b, n] of users [b, d] against their own candidates [b, n, d]."""


@dataclass(frozen=True)
class DotProduct:
    """s(u, v) = ⟨u, v⟩ (a bias is folded in as an extra coordinate by the model)."""

    name: str = "dot"
    family: ClassVar[GeometryFamily] = "euclidean"

    def item_cache(self, items: torch.Tensor) -> torch.Tensor:
        return items

    def score_matrix(self, users: torch.Tensor, cache: torch.Tensor) -> torch.Tensor:
        return users @ cache.T

    def score_candidates(self, users: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        return torch.einsum("bd,bnd->bn", users, candidates)

@dataclass(frozen=True)
class SquaredEuclidean:
    """s(u, v) = −‖u − v‖² (CML)."""

    name: str = "squared_euclidean"
    family: ClassVar[GeometryFamily] = "euclidean"

    def item_cache(self, items: torch.Tensor) -> torch.Tensor:
        return torch.cat([items, items.pow(2).sum(-1, keepdim=True)], dim=1)

    def score_matrix(self, users: torch.Tensor, cache: torch.Tensor) -> torch.Tensor:
        return torch.cat([2.0 * users, -torch.ones_like(users[:, :1])], dim=1) @ cache.T

    def score_candidates(self, users: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        return -(users.unsqueeze(1) - candidates).pow(2).sum(-1)

@dataclass(frozen=True)
class PoincareDistance:
    """s(u, v) = −d_c(u, v) on the Poincaré ball of curvature −c."""

    c: float = 1.0
    name: str = "poincare"
    family: ClassVar[GeometryFamily] = "hyperbolic"

    def item_cache(self, items: torch.Tensor) -> torch.Tensor:
        # The conformal gap 1 − c‖y‖² is computed in float64: it loses all precision near the boundary in float32.
        sq = items.double().pow(2).sum(-1, keepdim=True)
        inv_gap = 1.0 / (1.0 - self.c * sq).clamp_min(MIN_CONFORMAL_GAP)
        return torch.cat([items.double() * inv_gap, inv_gap, sq * inv_gap], dim=1).to(items.dtype)

    def score_matrix(self, users: torch.Tensor, cache: torch.Tensor) -> torch.Tensor:
        sq = users.pow(2).sum(-1, keepdim=True)
        return torch.cat([2.0 * users, -sq, -torch.ones_like(sq)], dim=1) @ cache.T

    def score_candidates(self, users: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        return -poincare_distance(users.unsqueeze(1), candidates, self.c)
