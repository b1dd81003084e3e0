"""Trained representations that cannot rank: detected before a run is tested and reported as diverged.

A learning rate far too large can leave every parameter finite while the model has collapsed: all points
pinned to the boundary of the Poincaré ball (every distance saturates), or every user scoring every item
the same. Such a run would end "completed" with every metric 0; it is a divergence and is named as one.
"""

from __future__ import annotations

import torch

from hbench.geometry import Representations

# 1 − √c‖x‖ below this is "on the boundary": float32 cannot tell such points' distances apart.
BOUNDARY_GAP = 1e-5
SAMPLED_USERS = 256
# A user's scores are "all equal" when their spread is below this, relative to their magnitude.
RELATIVE_SPREAD = 1e-6


def degenerate_reason(representations: Representations) -> str | None:
    """Why these representations cannot rank items (a one-line message), or None when they can."""
    users, items, geometry = representations.users, representations.items, representations.geometry
    curvature = getattr(geometry, "c", None)
    if curvature is not None and len(users) and len(items):
        gaps = [1.0 - float(curvature) ** 0.5 * points.double().norm(dim=-1) for points in (users, items)]
        if all(bool((gap <= BOUNDARY_GAP).all()) for gap in gaps):
            return "every user and item point is on the boundary of the ball (learning rate too large?)"
    if len(items) < 2 or not len(users):
        return None
    index = torch.linspace(0, len(users) - 1, min(len(users), SAMPLED_USERS)).long()
    with torch.no_grad():
        scores = geometry.score_matrix(users[index], geometry.item_cache(items)).double()
    finite = torch.isfinite(scores)
    if not bool(finite.any()):
        return "every score of the sampled users is infinite or not a number"
    high = torch.where(finite, scores, -torch.inf).max(dim=1).values
    low = torch.where(finite, scores, torch.inf).min(dim=1).values
    scale = torch.maximum(high.abs(), low.abs()).clamp_min(1.0)
    if bool(((high - low) <= RELATIVE_SPREAD * scale).all()):
        return f"every one of {len(index)} sampled users scores all items the same (collapsed representations)"
    return None


def degenerate_best(model: torch.nn.Module, best_state: dict[str, torch.Tensor] | None) -> str | None:
    """`degenerate_reason` of `model` with its best (selected) parameters loaded."""
    if best_state is None:
        return None
    model.load_state_dict(best_state)
    return degenerate_reason(model.representations())  # type: ignore[operator]
