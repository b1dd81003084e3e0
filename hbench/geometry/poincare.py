"""Poincaré-ball formulas that geoopt does not offer: all-pairs distances by one matrix product.

Ball of curvature −c: B_c = {x : c‖x‖² < 1}. Pointwise operations (Möbius addition, exp/log maps,
projection, `dist`) come from `geoopt.PoincareBall`; this module adds what full ranking needs (distances
by one matrix product) and what losses on tangent parameters need (`exp0_distances`).
"""

from __future__ import annotations

import math

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



COORDINATE_LIMIT = 1e15


def projection_eps(dtype: torch.dtype) -> float:
    """geoopt's projection margin: `PoincareBall.projx` keeps ‖x‖ ≤ (1 − eps)/√c (stereographic `_project`)."""
    return 4e-3 if dtype == torch.float32 else 1e-5


def exp0_distances(u: torch.Tensor, v: torch.Tensor, c: float) -> tuple[torch.Tensor, torch.Tensor]:
    """For tangent vectors u, v at the origin (broadcasting over leading dims, D last), with x = exp0 u and
    y = exp0 v projected as `PoincareBall(c).expmap0(·, project=True)` does:

        d_c(x, y)  and  ‖log0 x − log0 y‖,

    from three inner products per pair (‖u‖², ‖v‖², ‖u − v‖²) and arithmetic on scalars, so that a loss
    over [b, n, D] lookups costs a few passes over them instead of the dozens of element-wise passes of
    exp0, the distance and log0 on points, each with its backward.

    Derivation. exp0 u = tanh(s_u)/√c · u/‖u‖ with s_u = √c‖u‖; projection only shortens the point along
    u, which is s_u clamped at s* = artanh(1 − eps) (`projection_eps`). So √c·x = α_u u with
    α_u = tanh(s_u)/‖u‖, c‖x‖² = tanh²(s_u), and 1 − c‖x‖² = 1/cosh²(s_u). For any scalars a, b,

        ‖a u − b v‖² = a b ‖u − v‖² + (a − b)(a ‖u‖² − b ‖v‖²)

    (expand both sides with 2⟨u, v⟩ = ‖u‖² + ‖v‖² − ‖u − v‖²). The first term carries the pair's
    difference exactly, and the second is small when u ≈ v, so nearby pairs keep their precision; an
    expansion through ⟨u, v⟩ would cancel to noise there. Then

        d_c(x, y) = (1/√c) · arcosh(1 + 2 ‖α_u u − α_v v‖² cosh²(s_u) cosh²(s_v))

    (the arcosh form of `poincare_distance_matrix`), and log0 x = (s_u/√c) u/‖u‖ = β_u u with β_u = s_u/s
    before the clamp (1 for a point that was not projected), so ‖log0 x − log0 y‖ = ‖β_u u − β_v v‖.
    Guards as in `poincare_distance`: the arcosh argument stays a hair above 1, and the log0 distance of
    coincident points is 1e-9 (its gradient is cut there, as a norm's is at 0).
    """
    root_c = c**0.5
    # Squares of coordinates past 1e15 would overflow float32 (a run at a saturating learning rate gets
    # there). Such a vector lies far past the projection radius (s* is about 3), so clamping its coordinates
    # keeps its point on the boundary and its distances finite; only its direction may change.
    u, v = u.clamp(-COORDINATE_LIMIT, COORDINATE_LIMIT), v.clamp(-COORDINATE_LIMIT, COORDINATE_LIMIT)
    u_sq, v_sq = torch.linalg.vecdot(u, u), torch.linalg.vecdot(v, v)
    diff = u - v
    diff_sq = torch.linalg.vecdot(diff, diff)
    u_norm, v_norm = u_sq.clamp_min(1e-30).sqrt(), v_sq.clamp_min(1e-30).sqrt()
    s_max = math.atanh(1.0 - projection_eps(u.dtype))
    s_u, s_v = (root_c * u_norm).clamp_max(s_max), (root_c * v_norm).clamp_max(s_max)

    def scaled_sq_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a * b * diff_sq + (a - b) * (a * u_sq - b * v_sq)).clamp_min(0.0)

    ball_sq = scaled_sq_distance(torch.tanh(s_u) / u_norm, torch.tanh(s_v) / v_norm)  # c‖x − y‖²
    arg = (1.0 + 2.0 * ball_sq * torch.cosh(s_u).pow(2) * torch.cosh(s_v).pow(2)).clamp_min(1.0 + 1e-7)
    distance = torch.acosh(arg) / root_c
    log_sq = scaled_sq_distance(s_u / (root_c * u_norm), s_v / (root_c * v_norm))  # ‖log0 x − log0 y‖²
    return distance, log_sq.clamp_min(1e-18).sqrt()


class _Logmap0(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, c: float) -> torch.Tensor:  # noqa: ANN001 - torch's signature
        root_c = c**0.5
        norm = torch.linalg.vector_norm(x, dim=-1, keepdim=True)
        tiny = norm < 1e-15  # geoopt's clamp of the norm: below it the factor is constant
        safe = norm.clamp_min(1e-15)
        scaled = root_c * safe
        saturated = scaled > 1 - 1e-7  # geoopt's artanh clamp: past it artanh is constant
        scaled = scaled.clamp_max(1 - 1e-7)
        artanh = torch.atanh(scaled)
        factor = artanh / scaled  # log0 x = factor · x
        # d factor / d‖x‖ / ‖x‖, so that ∂(factor x)/∂x · g = factor g + x (slope ⟨x, g⟩)
        slope = ((root_c / (1 - scaled * scaled)).masked_fill(saturated, 0.0) - artanh / safe) / (scaled * safe)
        ctx.save_for_backward(x, factor, slope.masked_fill(tiny, 0.0))
        return x * factor

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # noqa: ANN001 - torch's signature
        x, factor, slope = ctx.saved_tensors
        return torch.addcmul(grad * factor, x, slope * torch.linalg.vecdot(x, grad).unsqueeze(-1)), None


def logmap0(x: torch.Tensor, c: float) -> torch.Tensor:
    """geoopt's `PoincareBall(c).logmap0(x)` (rows of `x`, D last), with its backward written out.

        log0 x = artanh(√c‖x‖) / (√c‖x‖) · x =: f(‖x‖) x,   ∂/∂x (f x)ᵀ g = f g + (f'(‖x‖)/‖x‖) ⟨x, g⟩ x,
        f'(n)/n = (√c / (1 − c n²) − artanh(√c n)/n) / (√c n · n)

    with geoopt's guards: the norm clamped at 1e-15 and √c‖x‖ at 1 − 1e-7, a clamped quantity passing no
    gradient. Autograd through geoopt's form makes a dozen passes over [rows, D] for a logmap over a whole
    table (every step of a graph model); this makes two forward and three backward.
    """
    return _Logmap0.apply(x, c)
