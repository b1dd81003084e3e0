"""Issue 13.12: a saturated run (hyperml --lr 1e30: every metric 0.0000) ends as diverged, not completed."""

from __future__ import annotations

import torch

from hbench.config import TrainConfig
from hbench.geometry import DotProduct, PoincareDistance, Representations
from hbench.training.degenerate import degenerate_reason
from hbench.training.trainer import train


def test_saturating_learning_rate_ends_diverged_with_the_reason(tiny_dataset, tmp_path) -> None:
    config = TrainConfig(dataset=str(tiny_dataset.path), dim=8, epochs=3, lr=1e30)
    result = train("hyperml", config, out=tmp_path)
    assert result.status == "diverged"
    assert "scores all items the same" in result.metrics["message"] or "boundary" in result.metrics["message"]
    assert "test" not in result.metrics
    healthy = train("hyperml", TrainConfig(dataset=str(tiny_dataset.path), dim=8, epochs=2), out=tmp_path)
    assert healthy.status == "completed"


def test_points_on_the_boundary_and_equal_scores_are_named() -> None:
    g = torch.Generator().manual_seed(0)
    directions = torch.randn(20, 4, generator=g)
    on_boundary = directions / directions.norm(dim=-1, keepdim=True) * (1 - 1e-7) / 2.0  # c = 4: radius 1/2
    reason = degenerate_reason(Representations(on_boundary[:8], on_boundary[8:], PoincareDistance(4.0)))
    assert reason is not None and "boundary" in reason
    inside = on_boundary * 0.5
    assert degenerate_reason(Representations(inside[:8], inside[8:], PoincareDistance(4.0))) is None
    # Every user scores every item alike: all item vectors equal.
    same_items = torch.ones(12, 4)
    reason = degenerate_reason(Representations(torch.randn(8, 4, generator=g), same_items, DotProduct()))
    assert reason is not None and "scores all items the same" in reason
    assert degenerate_reason(Representations(torch.randn(8, 4, generator=g), torch.randn(12, 4, generator=g),
                                             DotProduct())) is None
