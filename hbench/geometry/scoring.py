"""Geometries turn representations into scores, higher = more relevant.

A model hands evaluation two matrices (users [n_users, d], items [n_items, d]) and one of these
geometries; evaluation never needs to know which model produced them. Each geometry scores

* a block of users against all items (`score_matrix`, one GEMM per block), and
* each user against its own candidate items (`score_candidates`, for sampled protocols).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Protocol

import torch

from hbench.geometry.poincare import poincare_distance, poincare_distance_matrix, squared_euclidean_matrix


class Geometry(Protocol):
    name: str

    def item_cache(self, items: torch.Tensor) -> Any:
        """Per-item quantities reused by every user block (e.g. squared norms)."""

    def score_matrix(self, users: torch.Tensor, items: torch.Tensor, cache: Any) -> torch.Tensor:
        """Scores [b, n_items] of a user block [b, d] against all items."""

    def score_candidates(self, users: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """Scores [b, n] of users [b, d] against their own candidates [b, n, d]."""

    def to_dict(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class DotProduct:
    """s(u, v) = ⟨u, v⟩ (a bias is folded in as an extra coordinate by the model)."""

    name: str = "dot"

    def item_cache(self, items: torch.Tensor) -> None:
        return None

    def score_matrix(self, users: torch.Tensor, items: torch.Tensor, cache: None) -> torch.Tensor:
        return users @ items.T

    def score_candidates(self, users: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        return torch.einsum("bd,bnd->bn", users, candidates)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SquaredEuclidean:
    """s(u, v) = −‖u − v‖² (CML); ranks exactly as −‖u − v‖."""

    name: str = "squared_euclidean"

    def item_cache(self, items: torch.Tensor) -> None:
        return None

    def score_matrix(self, users: torch.Tensor, items: torch.Tensor, cache: None) -> torch.Tensor:
        return -squared_euclidean_matrix(users, items)

    def score_candidates(self, users: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        return -(users.unsqueeze(1) - candidates).pow(2).sum(-1)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PoincareDistance:
    """s(u, v) = −d_c(u, v) on the Poincaré ball of curvature −c."""

    c: float = 1.0
    name: str = "poincare"

    def item_cache(self, items: torch.Tensor) -> torch.Tensor:
        return items.double().pow(2).sum(-1)

    def score_matrix(self, users: torch.Tensor, items: torch.Tensor, cache: torch.Tensor) -> torch.Tensor:
        return -poincare_distance_matrix(users, items, self.c, y_sq_norms=cache)

    def score_candidates(self, users: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        return -poincare_distance(users.unsqueeze(1), candidates, self.c)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_GEOMETRIES = {"dot": DotProduct, "squared_euclidean": SquaredEuclidean, "poincare": PoincareDistance}


def geometry_from_dict(data: dict[str, Any]) -> Geometry:
    data = dict(data)
    cls = _GEOMETRIES[data.pop("name")]
    return cls(**data)
