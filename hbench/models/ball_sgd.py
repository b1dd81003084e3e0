"""Riemannian SGD with momentum on the Poincaré ball, one compiled pass per table and step (CPU tensors).

geoopt's `RiemannianSGD` (the HGCF authors' optimiser) takes, for a point x with Euclidean gradient g and
momentum buffer b (curvature −c, k = −c, λ_x = 2 / (1 + k‖x‖²) clamped at 1e-15):

    ξ = (g + w x) / λ_x²                                        (weight decay w, then `egrad2rgrad`)
    b ← μ b + (1 − τ) ξ                                          (momentum μ, dampening τ)
    y = proj(x − η b)                                            (`retr`: a step in the chart, projected to
                                                                  ‖y‖ ≤ (1 − ε)/√c, ε = 4e-3 in float32)
    b ← gyr[y, −x] b · λ_x / λ_y                                 (`transp`: parallel transport to y)
    x ← y

with the gyration gyr[u, v] w = w + 2 (a u + b v) / d for the inner products of u, v, w (geoopt's
simplified form, `stereographic.math._gyration`):

    a = −k² ⟨u,w⟩‖v‖² − k ⟨v,w⟩ + 2k² ⟨u,v⟩⟨v,w⟩,   b = −k² ⟨v,w⟩‖u‖² + k ⟨u,w⟩,   d = 1 − 2k⟨u,v⟩ + k²‖u‖²‖v‖²

(d clamped at 1e-15). On the first step the buffer starts as a copy of the raw gradient g, as geoopt's does,
so the first buffer is μ g + (1 − τ) ξ. Without momentum the point takes y = proj(x − η ξ) and nothing is
transported.

geoopt computes these as some forty operations over the whole [rows, D] table, each a pass through memory
(the step was a quarter of an HGCF step on amazon-cd, 45 of 190 ms). `_ball_sgd_rows` does the same
arithmetic row by row while the row is in cache: four short passes over its D coordinates, inner products
accumulated in float64. The results differ from geoopt's by rounding; tests compare both over many steps.
Rows are independent and split between the CPU's threads (each writes only its own row: deterministic).
"""

from __future__ import annotations

import math
from typing import Any

import geoopt
import numba
import numpy as np
import torch

from hbench.compiled import PARALLEL_KERNEL, VECTORISE
from hbench.geometry.poincare import projection_eps

_MIN = 1e-15  # geoopt's clamps of λ's denominator, of the norm before projection and of d


@numba.njit(cache=True, nogil=True, error_model="numpy", parallel=True, fastmath=set(VECTORISE))
def _ball_sgd_rows(points: np.ndarray, grad: np.ndarray, buffer: np.ndarray, k: float, k2: float, lr: float,
                   momentum: float, dampening: float, weight_decay: float, max_norm: float) -> None:
    """One step of geoopt's RiemannianSGD (no Nesterov) on every row, in place on `points` and `buffer`
    (`buffer` is unused when `momentum` is 0). `k2` is k² as geoopt rounds it."""
    width = points.shape[1]
    real = points.dtype.type
    transported = momentum > 0.0
    for r in numba.prange(points.shape[0]):  # each iteration reads and writes only row r
        xx = 0.0
        for d in range(width):
            xx += float(points[r, d]) * float(points[r, d])
        lambda_x = 2.0 / max(1.0 + k * xx, _MIN)
        to_riemannian = 1.0 / (lambda_x * lambda_x)
        step_sq = 0.0
        for d in range(width):
            x = float(points[r, d])
            rgrad = (float(grad[r, d]) + weight_decay * x) * to_riemannian
            if transported:
                direction = momentum * float(buffer[r, d]) + (1.0 - dampening) * rgrad
                buffer[r, d] = real(direction)
                direction = float(buffer[r, d])  # the step uses the buffer as stored, as geoopt's
            else:
                direction = rgrad
            moved = x - lr * direction
            step_sq += moved * moved
        norm = max(math.sqrt(step_sq), _MIN)
        scale = max_norm / norm if norm > max_norm else 1.0
        if not transported:
            for d in range(width):
                x = float(points[r, d])
                rgrad = (float(grad[r, d]) + weight_decay * x) * to_riemannian
                points[r, d] = real((x - lr * rgrad) * scale)
            continue
        yy = 0.0
        xy = 0.0
        yb = 0.0
        xb = 0.0
        for d in range(width):
            x, b = float(points[r, d]), float(buffer[r, d])
            y = float(real((x - lr * b) * scale))
            yy += y * y
            xy += x * y
            yb += y * b
            xb += x * b
        # gyr[u = y, v = −x] w = b: ⟨u,v⟩ = −⟨x,y⟩, ⟨u,w⟩ = ⟨y,b⟩, ⟨v,w⟩ = −⟨x,b⟩, ‖v‖² = ‖x‖².
        uv, uw, vw = -xy, yb, -xb
        a = -k2 * uw * xx - k * vw + 2.0 * k2 * uv * vw
        c = -k2 * vw * yy + k * uw
        denominator = max(1.0 - 2.0 * k * uv + k2 * yy * xx, _MIN)
        lambda_y = 2.0 / max(1.0 + k * yy, _MIN)
        ratio = lambda_x / lambda_y
        for d in range(width):
            x, b = float(points[r, d]), float(buffer[r, d])
            y = float(real((x - lr * b) * scale))
            buffer[r, d] = real((b + 2.0 * (a * y - c * x) / denominator) * ratio)
            points[r, d] = real(y)


def _compiled_step_applies(point: torch.Tensor, grad: torch.Tensor | None) -> bool:
    return (grad is not None and not grad.is_sparse and isinstance(point, geoopt.ManifoldParameter)
            and isinstance(point.manifold, geoopt.PoincareBall) and point.device.type == "cpu"
            and point.dtype in (torch.float32, torch.float64) and point.dim() == 2 and point.is_contiguous()
            and grad.dtype == point.dtype and grad.is_contiguous())


class BallRiemannianSGD(geoopt.optim.RiemannianSGD):
    """geoopt's `RiemannianSGD`, whose step on Poincaré-ball tables on the CPU runs compiled (`_ball_sgd_rows`).

    Other parameters, other devices and Nesterov momentum take geoopt's own step. The state (a
    `momentum_buffer` per parameter, the group's `step`) is geoopt's, so checkpoints load into either.
    """

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        params = [p for group in self.param_groups for p in group["params"]]
        if any(group["nesterov"] or group["stabilize"] is not None for group in self.param_groups) or not all(
                _compiled_step_applies(p, p.grad) for p in params if p.grad is not None):
            return super().step(closure)
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            group["step"] = group.get("step", 0) + 1
            momentum = group["momentum"]
            for point in group["params"]:
                if point.grad is None:
                    continue
                state = self.state[point]
                if not state and momentum > 0:
                    state["momentum_buffer"] = point.grad.clone()  # as geoopt: the first buffer is the raw gradient
                buffer = state["momentum_buffer"] if momentum > 0 else point.grad  # (unused without momentum)
                # geoopt keeps k as a float32 tensor and squares it there (`_gyration`); the same numbers here.
                k, k2 = float(point.manifold.k), float(point.manifold.k ** 2)
                # geoopt's projection radius as `_project` computes it, in the dtype of the curvature tensor: near
                # the boundary λ_y = 2 / (1 − c‖y‖²) magnifies any difference in the radius.
                max_norm = float((1 - projection_eps(point.dtype)) / point.manifold.k.abs() ** 0.5)
                with PARALLEL_KERNEL:  # see hbench.compiled
                    _ball_sgd_rows(point.detach().numpy(), point.grad.numpy(), buffer.numpy(), k, k2, group["lr"],
                                   momentum, group["dampening"], group["weight_decay"], max_norm)
        return loss
