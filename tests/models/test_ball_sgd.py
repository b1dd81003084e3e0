"""The compiled Riemannian SGD on the Poincaré ball against geoopt's RiemannianSGD, the HGCF authors' optimiser."""

from __future__ import annotations

import geoopt
import pytest
import torch

from hbench.models.ball_sgd import BallRiemannianSGD


def _pair(points: torch.Tensor, c: float, **options: float) -> tuple[list, list]:
    """(parameter, optimiser) for ours and geoopt's, from the same points."""
    ball = geoopt.PoincareBall(c)
    ours = geoopt.ManifoldParameter(points.clone(), manifold=ball)
    theirs = geoopt.ManifoldParameter(points.clone(), manifold=ball)
    return [ours, BallRiemannianSGD([ours], **options)], [theirs, geoopt.optim.RiemannianSGD([theirs], **options)]


def _points(dtype: torch.dtype, c: float, generator: torch.Generator, spread: float = 0.8) -> torch.Tensor:
    ball = geoopt.PoincareBall(c)
    return ball.expmap0(torch.randn(400, 7, dtype=dtype, generator=generator) * spread / c**0.5)


def _step(pairs: tuple[list, list], grad: torch.Tensor) -> None:
    for point, optimizer in pairs:
        point.grad = grad.clone()
        optimizer.step()


OPTIONS = [
    {"lr": 0.05, "momentum": 0.95, "weight_decay": 5e-3},  # HGCF's Amazon-CD settings, a larger lr
    {"lr": 0.05, "momentum": 0.0, "weight_decay": 1e-2},
    {"lr": 0.02, "momentum": 0.9, "weight_decay": 0.0, "dampening": 0.3},
]


@pytest.mark.parametrize("options", OPTIONS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_one_step_equals_geoopts_from_anywhere_in_the_ball(options: dict, dtype: torch.dtype) -> None:
    """One step from points inside and on the projection boundary (spread 2: most steps end projected)."""
    generator = torch.Generator().manual_seed(0)
    for c in (1.0, 0.7):
        points = _points(dtype, c, generator, spread=2.0)
        (ours, mine), (theirs, geoopts) = pairs = _pair(points, c, **options)
        # a first step (the buffer starts as the raw gradient), then one from a warm buffer
        for _ in range(2):
            _step(pairs, torch.randn(points.shape, dtype=dtype, generator=generator))
            # Near the boundary the transport's d = 1 − 2k⟨u,v⟩ + … cancels to about (1 − c‖x‖²)² (4e-10 in
            # float64, 6e-5 in float32 at the projection radius): both sides round there, so the buffer is
            # compared relative to its row's size, at what that cancellation leaves (2.5e-7 and 1e-3).
            tolerance = {"rtol": 1e-9, "atol": 1e-12} if dtype == torch.float64 else {"rtol": 2e-5, "atol": 1e-6}
            torch.testing.assert_close(ours.data, theirs.data, **tolerance)
            if options["momentum"] > 0:
                mine_buffer, their_buffer = mine.state[ours]["momentum_buffer"], geoopts.state[theirs]["momentum_buffer"]
                scale = their_buffer.abs().amax(dim=1, keepdim=True)
                torch.testing.assert_close(mine_buffer / scale, their_buffer / scale,
                                           rtol=0, atol=1e-6 if dtype == torch.float64 else 5e-3)
            ours.data.copy_(theirs.data)  # the next step from the same state
            if options["momentum"] > 0:
                mine.state[ours]["momentum_buffer"].copy_(geoopts.state[theirs]["momentum_buffer"])


@pytest.mark.parametrize("options", OPTIONS)
def test_fifty_steps_inside_the_ball_follow_geoopts_trajectory(options: dict) -> None:
    """Away from the boundary the update is well conditioned: fifty steps stay with geoopt's to rounding."""
    generator = torch.Generator().manual_seed(1)
    points = _points(torch.float64, 1.0, generator, spread=0.3)
    (ours, mine), (theirs, geoopts) = pairs = _pair(points, 1.0, **{**options, "lr": 0.002})
    for _ in range(50):
        _step(pairs, torch.randn(points.shape, dtype=torch.float64, generator=generator))
    assert ours.norm(dim=1).max() < 0.99  # stayed inside: the comparison is the one the test means
    torch.testing.assert_close(ours.data, theirs.data, rtol=1e-10, atol=1e-12)
    assert mine.param_groups[0]["step"] == geoopts.param_groups[0]["step"] == 50


def test_state_loads_into_geoopts_optimiser_and_back() -> None:
    """The state is geoopt's: a checkpoint from either continues in the other."""
    generator = torch.Generator().manual_seed(2)
    points = _points(torch.float64, 1.0, generator, spread=0.3)
    options = {"lr": 0.002, "momentum": 0.95, "weight_decay": 5e-3}
    (ours, mine), (theirs, geoopts) = pairs = _pair(points, 1.0, **options)
    for _ in range(3):
        _step(pairs, torch.randn(points.shape, dtype=torch.float64, generator=generator))
    swapped_ours = geoopt.ManifoldParameter(theirs.data.clone(), manifold=theirs.manifold)
    swapped_theirs = geoopt.ManifoldParameter(ours.data.clone(), manifold=ours.manifold)
    continued_mine = BallRiemannianSGD([swapped_ours], **options)
    continued_mine.load_state_dict(geoopts.state_dict())
    continued_geoopts = geoopt.optim.RiemannianSGD([swapped_theirs], **options)
    continued_geoopts.load_state_dict(mine.state_dict())
    grad = torch.randn(points.shape, dtype=torch.float64, generator=generator)
    _step(((swapped_ours, continued_mine), (swapped_theirs, continued_geoopts)), grad)
    torch.testing.assert_close(swapped_ours.data, swapped_theirs.data, rtol=1e-10, atol=1e-12)


def test_nesterov_and_euclidean_parameters_take_geoopts_step() -> None:
    generator = torch.Generator().manual_seed(3)
    points = _points(torch.float64, 1.0, generator)
    pairs = _pair(points, 1.0, lr=0.01, momentum=0.9, nesterov=True)
    _step(pairs, torch.randn(points.shape, dtype=torch.float64, generator=generator))
    assert torch.equal(pairs[0][0].data, pairs[1][0].data)  # the same code ran: bit for bit
    plain = torch.nn.Parameter(points.clone())
    reference = torch.nn.Parameter(points.clone())
    _step(((plain, BallRiemannianSGD([plain], lr=0.01, momentum=0.9)),
           (reference, geoopt.optim.RiemannianSGD([reference], lr=0.01, momentum=0.9))), points * 0.5)
    assert torch.equal(plain.data, reference.data)
