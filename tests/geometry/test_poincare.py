import geoopt
import pytest
import torch

from hbench.geometry.poincare import (
    exp0_distances,
    logmap0,
    poincare_distance,
    poincare_distance_matrix,
    projection_eps,
)


def _points(n: int, d: int, c: float, max_radius: float, generator: torch.Generator) -> torch.Tensor:
    direction = torch.nn.functional.normalize(torch.randn(n, d, generator=generator, dtype=torch.float64), dim=-1)
    radius = torch.rand(n, 1, generator=generator, dtype=torch.float64) * max_radius / c**0.5
    return direction * radius


@pytest.mark.parametrize("c", [0.1, 1.0, 2.0])
def test_distance_matrix_matches_geoopt(c: float) -> None:
    g = torch.Generator().manual_seed(0)
    x, y = _points(40, 8, c, 0.95, g), _points(60, 8, c, 0.95, g)
    ball = geoopt.PoincareBall(c=c)
    expected = ball.dist(x.unsqueeze(1), y.unsqueeze(0))
    # geoopt keeps c as a float32 tensor, so its float64 distances carry ~1e-7 relative error.
    torch.testing.assert_close(poincare_distance_matrix(x, y, c), expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(poincare_distance(x.unsqueeze(1), y.unsqueeze(0), c), expected, rtol=1e-5, atol=1e-6)


def test_distance_matrix_matches_50_digit_reference() -> None:
    import mpmath

    mpmath.mp.dps = 50
    c = 0.7
    g = torch.Generator().manual_seed(3)
    x, y = _points(4, 5, c, 0.99, g), _points(3, 5, c, 0.99, g)
    got = poincare_distance_matrix(x, y, c)
    for i in range(4):
        for j in range(3):
            xi, yj = [mpmath.mpf(v) for v in x[i].tolist()], [mpmath.mpf(v) for v in y[j].tolist()]
            cc = mpmath.mpf(c)
            sq = sum((a - b) ** 2 for a, b in zip(xi, yj))
            gap = (1 - cc * sum(a * a for a in xi)) * (1 - cc * sum(b * b for b in yj))
            reference = mpmath.acosh(1 + 2 * cc * sq / gap) / mpmath.sqrt(cc)
            assert float(got[i, j]) == pytest.approx(float(reference), rel=1e-10)


def test_float32_near_boundary_matches_float64_reference() -> None:
    """Points as close to the boundary as geoopt's float32 projection allows: the GEMM form stays accurate."""
    c = 1.0
    g = torch.Generator().manual_seed(1)
    x = geoopt.PoincareBall(c=c).projx(_points(50, 16, c, 1.0, g).float() * 1.2)
    y = geoopt.PoincareBall(c=c).projx(_points(70, 16, c, 1.0, g).float() * 1.2)
    reference = geoopt.PoincareBall(c=c).dist(x.double().unsqueeze(1), y.double().unsqueeze(0))
    got = poincare_distance_matrix(x, y, c)
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got.double(), reference, rtol=2e-3, atol=2e-3)



def _exp0_by_hand(u: torch.Tensor, c: float) -> torch.Tensor:
    """exp0 with geoopt's projection written out: tanh(√c‖u‖)/√c · u/‖u‖, the norm capped at (1 − eps)/√c."""
    norm = u.norm(dim=-1, keepdim=True)
    radius = torch.tanh(c**0.5 * norm).clamp_max(1 - projection_eps(u.dtype)) / c**0.5
    return radius * u / norm


def _log0_by_hand(x: torch.Tensor, c: float) -> torch.Tensor:
    """log0 written out (geoopt keeps c in float32, which costs its float64 results about 1e-7)."""
    norm = x.norm(dim=-1, keepdim=True)
    return torch.atanh(c**0.5 * norm) / c**0.5 * x / norm


def _tangent_pairs(g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    # Radii from the origin out past the projection (√c‖u‖ up to about 8), one negative per row nearly equal
    # to the positive's user: the regimes HyperML's loss meets.
    u = torch.randn(64, 1, 8, generator=g, dtype=torch.float64) * torch.rand(64, 1, 1, generator=g, dtype=torch.float64) * 3
    v = torch.randn(64, 3, 8, generator=g, dtype=torch.float64) * torch.rand(64, 3, 1, generator=g, dtype=torch.float64) * 3
    v[:8, 2] = u[:8, 0] + 1e-3 * torch.randn(8, 8, generator=g, dtype=torch.float64)
    return u, v


@pytest.mark.parametrize("c", [0.5, 1.0, 2.0])
def test_exp0_distances_match_points_mapped_by_hand(c: float) -> None:
    """Distances and gradients equal those of the composition exp0 → arcosh distance / log0 difference."""
    u, v = _tangent_pairs(torch.Generator().manual_seed(int(c * 10)))
    u.requires_grad_()
    v.requires_grad_()
    x, y = _exp0_by_hand(u, c), _exp0_by_hand(v, c)
    expected_d = poincare_distance(x, y, c)
    expected_e = (_log0_by_hand(x, c) - _log0_by_hand(y, c)).norm(dim=-1)
    d, e = exp0_distances(u, v, c)
    torch.testing.assert_close(d, expected_d, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(e, expected_e, rtol=1e-9, atol=1e-9)
    loss = lambda d, e: (d.pow(2) * torch.linspace(0.5, 1.5, 3)).sum() + (e * torch.linspace(1, 2, 3)).sum()  # noqa: E731
    got = torch.autograd.grad(loss(d, e), (u, v))
    expected = torch.autograd.grad(loss(expected_d, expected_e), (u, v))
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-7)


def test_exp0_distances_keep_nearby_pairs_precise_in_float32() -> None:
    """Pairs 1e-3 apart: their log0 distance is right to about 1e-5, where an expansion through ⟨u, v⟩ would
    carry cancellation noise of about √(1e-7 · ‖u‖²) ≈ 2e-3, the size of the distance itself."""
    u, v = _tangent_pairs(torch.Generator().manual_seed(5))
    d, e = exp0_distances(u.float(), v.float(), 1.0)
    x, y = _exp0_by_hand(u.float(), 1.0).double(), _exp0_by_hand(v.float(), 1.0).double()  # float32 projection
    near_e = (_log0_by_hand(x[:8, 0], 1.0) - _log0_by_hand(y[:8, 2], 1.0)).norm(dim=-1)
    torch.testing.assert_close(e[:8, 2].double(), near_e, rtol=1e-3, atol=2e-5)
    expected_d = poincare_distance(x, y, 1.0)
    far = torch.ones_like(expected_d, dtype=torch.bool)
    far[:8, 2] = False
    torch.testing.assert_close(d.double()[far], expected_d[far], rtol=1e-4, atol=1e-4)


def _logmap0_by_autograd(x: torch.Tensor, c: float) -> torch.Tensor:
    """log0 x = artanh(√c‖x‖)/(√c‖x‖) · x, differentiated by autograd (the reference for `logmap0`'s backward)."""
    scaled = c**0.5 * torch.linalg.vector_norm(x, dim=-1, keepdim=True)
    return torch.atanh(scaled) / scaled * x


@pytest.mark.parametrize("c", [0.5, 1.0, 1.7])
def test_logmap0_and_its_written_out_backward_match_autograd(c: float) -> None:
    generator = torch.Generator().manual_seed(3)
    ball = geoopt.PoincareBall(c)
    # mostly inside, some projected onto the boundary (where artanh' is about 5e4)
    x = ball.projx(torch.randn(300, 6, dtype=torch.float64, generator=generator) * 0.3 / c**0.5)
    grad = torch.randn(x.shape, dtype=torch.float64, generator=generator)
    ours, reference = x.clone().requires_grad_(), x.clone().requires_grad_()
    out, expected = logmap0(ours, c), _logmap0_by_autograd(reference, c)
    (out * grad).sum().backward()
    (expected * grad).sum().backward()
    torch.testing.assert_close(out, expected, rtol=1e-13, atol=1e-15)
    torch.testing.assert_close(ours.grad, reference.grad, rtol=1e-12, atol=1e-14)
    inside = x[c**0.5 * x.norm(dim=-1) < 0.9][:20]  # finite differences need curvature they can resolve
    assert torch.autograd.gradcheck(lambda t: logmap0(t, c), (inside.clone().requires_grad_(),))
    # geoopt's own logmap0, away from the boundary: its curvature is a float32 tensor, and artanh' magnifies
    # that rounding of √c near the boundary
    torch.testing.assert_close(logmap0(inside, c), ball.logmap0(inside), rtol=1e-6, atol=1e-7)


def test_logmap0_is_the_identity_to_first_order_at_the_origin() -> None:
    """log0 x = x + O(‖x‖³): value and Jacobian at (and next to) the origin are the identity, in float32 too
    (geoopt's artanh, a difference of logs, returns 0 with zero gradient below ‖x‖ ≈ 1e-8 in float32)."""
    for dtype in (torch.float32, torch.float64):
        x = torch.tensor([[0.0, 0.0, 0.0], [1e-20, -2e-20, 0.0], [1e-9, 0.0, 3e-9]], dtype=dtype, requires_grad=True)
        grad = torch.tensor([[1.0, -2.0, 0.5]], dtype=dtype).expand(3, 3)
        out = logmap0(x, 1.0)
        (out * grad).sum().backward()
        torch.testing.assert_close(out.detach(), x.detach(), rtol=1e-6, atol=0.0)
        torch.testing.assert_close(x.grad, grad.contiguous(), rtol=1e-6, atol=0.0)
