"""Poincaré-ball formulas that geoopt does not offer: all-pairs distances by one matrix product.

Ball of curvature −c: B_c = {x : c‖x‖² < 1}. Pointwise operations (Möbius addition, exp/log maps,
projection, `dist`) come from `geoopt.PoincareBall`; this module adds what full ranking needs.
"""

from __future__ import annotations

import torch

# 1 − c‖x‖² can round to zero or below for points geoopt keeps at (1 − 4e-3)/√c in float32; the
# conformal factor is clamped at this floor so that distances stay finite (they are then ≈ 2/√c·artanh(1−4e-3)).
MIN_CONFORMAL_GAP = 1e-7


def poincare_distance_matrix(
    x: torch.Tensor, y: torch.Tensor, c: float, *, y_sq_norms: torch.Tensor | None = None
) -> torch.Tensor:
    """Distances between every row of `x` [m, d] and every row of `y` [n, d] on B_c, shape [m, n].

        d_c(x, y) = (1/√c) · arcosh(1 + 2c‖x − y‖² / ((1 − c‖x‖²)(1 − c‖y‖²)))

    with ‖x − y‖² = ‖x‖² + ‖y‖² − 2⟨x, y⟩, so the whole block costs one GEMM plus per-row and per-column
    factors. Guards: the squared difference is clamped at 0 (cancellation of the expansion), the
    conformal gaps are clamped at `MIN_CONFORMAL_GAP`, and norms are accumulated in float64 because
    1 − c‖x‖² loses all precision near the boundary in float32. `y_sq_norms` (float64) may be passed when
    the same items are scored against many user blocks.
    """
    x_sq = x.double().pow(2).sum(-1)
    y_sq = y.double().pow(2).sum(-1) if y_sq_norms is None else y_sq_norms
    sq_diff = (x_sq.unsqueeze(1).to(x.dtype) + y_sq.unsqueeze(0).to(x.dtype) - 2.0 * (x @ y.T)).clamp_min(0.0)
    x_gap = (1.0 - c * x_sq).clamp_min(MIN_CONFORMAL_GAP).to(x.dtype)
    y_gap = (1.0 - c * y_sq).clamp_min(MIN_CONFORMAL_GAP).to(x.dtype)
    arg = 1.0 + 2.0 * c * sq_diff / (x_gap.unsqueeze(1) * y_gap.unsqueeze(0))
    return torch.acosh(arg) / c**0.5


def poincare_distance(x: torch.Tensor, y: torch.Tensor, c: float) -> torch.Tensor:
    """Row-wise distance d_c(x_i, y_i) (broadcasting), by the arcosh form of `poincare_distance_matrix`.

    Used in training losses, where geoopt's Möbius form `ball.dist` would do the same work with more
    operations; tests check both against each other.
    """
    x_sq = x.pow(2).sum(-1)
    y_sq = y.pow(2).sum(-1)
    sq_diff = (x - y).pow(2).sum(-1)
    gap = (1.0 - c * x_sq).clamp_min(MIN_CONFORMAL_GAP) * (1.0 - c * y_sq).clamp_min(MIN_CONFORMAL_GAP)
    # acosh'(1) is infinite: keep the argument a hair above 1 so gradients of identical points stay finite.
    arg = (1.0 + 2.0 * c * sq_diff / gap).clamp_min(1.0 + 1e-7)
    return torch.acosh(arg) / c**0.5

