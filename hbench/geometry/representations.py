"""What every model hands to evaluation: user points, item points and the geometry that scores them.

It sits with the geometries rather than with evaluation because both sides of the join use it: models build
it (`Recommender.representations()`), evaluation, exports and plots consume it, and neither needs the other.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from hbench.geometry.scoring import Geometry


@dataclass(frozen=True)
class Representations:
    """User points [n_users, d], item points [n_items, d] and how to score a user against an item."""

    users: torch.Tensor
    items: torch.Tensor
    geometry: Geometry
