import geoopt
import pytest
import torch

from hbench.geometry.poincare import poincare_distance, poincare_distance_matrix


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

