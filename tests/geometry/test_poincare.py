import geoopt
import pytest
import torch

from hbench.geometry.poincare import exp0_distances, poincare_distance, poincare_distance_matrix, projection_eps


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
