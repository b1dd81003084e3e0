"""HyperML's distances read straight from tangent tables, and their gradient rows, compiled (CPU tensors).

HGCF's loss uses the same kernels on its propagated node table. Both models call them through
`table_exp0_distances` and `table_exp0_distance_gradients`, which own the buffers and the guards; each
model's autograd Function keeps only where its gradient goes.

The tensor path (`geometry.poincare.exp0_distances` after two `lookup`s) is a few passes over the
[B, 1 + n, D] blocks but some forty element-wise operations on the [B, 1 + n] pair scalars, each with
its backward; on a CPU their dispatch and autograd's bookkeeping were most of a HyperML step (4.9 of
7.7 ms in backward alone, amazon-clothing, batch 8,192). Here one loop per batch row reads u and the
v_j where they lie in the tables and computes, per pair, the three inner products A = ‖u‖², V = ‖v‖²,
S = ‖u − v‖², both distances of `exp0_distances`, and their partial derivatives in (A, V, S) (six
scalars). Backward combines those with the upstream gradients and writes the gradient rows in one more
pass over the tables:

    ∂/∂u = Σ_j 2 g^A_j u + 2 g^S_j (u − v_j),   ∂/∂v_j = 2 g^V_j v_j − 2 g^S_j (u − v_j),
    g^X_j = ∂L/∂d_j · ∂d_j/∂X + ∂L/∂e_j · ∂e_j/∂X.

The derivatives follow `exp0_distances`'s formulas (its docstring derives them) and its guards, as
torch's clamp differentiates them: a clamped quantity passes no gradient. Per side, with n = √A (A
clamped at 1e-30), s = √c n clamped at s*, t = tanh s:

    α = t / n,  β = s / (√c n),  cosh² s,  and their derivatives in A through dn/dA = 1 / (2n), ds/dA = √c dn/dA;

per pair, for q = ‖a u − b v‖² = a b S + (a − b)(a A − b V) (clamped at 0) with (a, b) = (α_u, α_v) or
(β_u, β_v):

    ∂q/∂S = a b,  ∂q/∂A = (a − b) a + (b S + (a A − b V) + (a − b) A) ∂a/∂A,
    ∂q/∂V = −(a − b) b + (a S − (a A − b V) − (a − b) V) ∂b/∂V;

d = arcosh(1 + 2 q_α cosh² s_u cosh² s_v) / √c (argument clamped a hair above 1) and e = √q_β (q_β
clamped at 1e-18). Coordinates are clamped at ±`COORDINATE_LIMIT` as there, with zero gradient past it.

Inner products accumulate in the tables' dtype (vectorised, `hbench.compiled.VECTORISE`); the pair
scalars are computed in float64 and the results stored in the tables' dtype. The values therefore differ
from the tensor path's by rounding; tests compare both, values and gradients, in float64 and float32.
Batch rows are split between the CPU's threads (each writes only its own outputs: deterministic);
callers enter under `hbench.compiled.PARALLEL_KERNEL`. Compiled by Numba on first use, cached on disk.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np
import torch

from hbench.compiled import PARALLEL_KERNEL, VECTORISE, prefetch_batch_row
from hbench.geometry.poincare import COORDINATE_LIMIT, projection_eps

_KERNEL = {"cache": True, "nogil": True, "error_model": "numpy", "fastmath": set(VECTORISE)}

# torch's float32 rounding of the arcosh guard 1 + 1e-7 (float64 keeps it as written).
_ARG_FLOOR = {np.dtype(np.float32): float(np.float32(1.0 + 1e-7)), np.dtype(np.float64): 1.0 + 1e-7}


@numba.njit(inline="always", **_KERNEL)
def _side(sq: float, root_c: float, s_max: float) -> tuple[float, float, float, float, float, float]:
    """(α, ∂α/∂A, β, ∂β/∂A, cosh² s, ∂cosh² s/∂A) of one point from its squared tangent norm A."""
    if sq >= 1e-30:
        n = math.sqrt(sq)
        dn = 0.5 / n
    else:
        n = 1e-15
        dn = 0.0
    s = root_c * n
    ds = root_c * dn
    if s > s_max:
        s = s_max
        ds = 0.0
    t = math.tanh(s)
    alpha = t / n
    dalpha = ((1.0 - t * t) * ds * n - t * dn) / (n * n)
    beta = s / (root_c * n)
    dbeta = (ds * n - s * dn) / (root_c * n * n)
    ch = math.cosh(s)
    return alpha, dalpha, beta, dbeta, ch * ch, 2.0 * ch * math.sinh(s) * ds


@numba.njit(inline="always", **_KERNEL)
def _scaled_sq(a: float, da: float, b: float, db: float, sq_u: float, sq_v: float,
               sq_diff: float) -> tuple[float, float, float, float]:
    """(q, ∂q/∂A, ∂q/∂V, ∂q/∂S) for q = ‖a u − b v‖² clamped at 0 (a, b depend on A, V)."""
    cross = a * sq_u - b * sq_v
    q = a * b * sq_diff + (a - b) * cross
    if q < 0.0:
        return 0.0, 0.0, 0.0, 0.0
    dq_du = (a - b) * a + (b * sq_diff + cross + (a - b) * sq_u) * da
    dq_dv = -(a - b) * b + (a * sq_diff - cross - (a - b) * sq_v) * db
    return q, dq_du, dq_dv, a * b


@numba.njit(parallel=True, **_KERNEL)
def exp0_distances_forward(users_table: np.ndarray, items_table: np.ndarray, users: np.ndarray, items: np.ndarray,
                           root_c: float, s_max: float, limit: float, arg_floor: float, distance: np.ndarray,
                           log_distance: np.ndarray, partials: np.ndarray) -> None:
    """distance[b, j] = d_c(exp0 u_b, exp0 v_bj), log_distance[b, j] = ‖log0 x − log0 y‖ (as `exp0_distances`),
    partials[b, j] = (∂d/∂A, ∂d/∂V, ∂d/∂S, ∂e/∂A, ∂e/∂V, ∂e/∂S)."""
    width = users_table.shape[1]
    zero = users_table.dtype.type(0.0)
    lim = users_table.dtype.type(limit)
    for b in numba.prange(users.shape[0]):  # each row writes only its own outputs
        prefetch_batch_row(users_table, items_table, users, items, b)  # see hbench.compiled
        u = users[b]
        acc = zero
        for d in range(width):
            x = min(max(users_table[u, d], -lim), lim)
            acc += x * x
        sq_u = float(acc)
        alpha_u, dalpha_u, beta_u, dbeta_u, cosh2_u, dcosh2_u = _side(sq_u, root_c, s_max)
        for j in range(items.shape[1]):
            i = items[b, j]
            acc_v = zero
            acc_diff = zero
            for d in range(width):
                x = min(max(users_table[u, d], -lim), lim)
                y = min(max(items_table[i, d], -lim), lim)
                acc_v += y * y
                acc_diff += (x - y) * (x - y)
            sq_v, sq_diff = float(acc_v), float(acc_diff)
            alpha_v, dalpha_v, beta_v, dbeta_v, cosh2_v, dcosh2_v = _side(sq_v, root_c, s_max)
            q, dq_du, dq_dv, dq_ds = _scaled_sq(alpha_u, dalpha_u, alpha_v, dalpha_v, sq_u, sq_v, sq_diff)
            arg = 1.0 + 2.0 * q * cosh2_u * cosh2_v
            if arg >= arg_floor:
                dd_darg = 1.0 / (root_c * math.sqrt(arg * arg - 1.0))
            else:
                arg = arg_floor
                dd_darg = 0.0
            distance[b, j] = math.acosh(arg) / root_c
            partials[b, j, 0] = dd_darg * 2.0 * (cosh2_u * cosh2_v * dq_du + q * cosh2_v * dcosh2_u)
            partials[b, j, 1] = dd_darg * 2.0 * (cosh2_u * cosh2_v * dq_dv + q * cosh2_u * dcosh2_v)
            partials[b, j, 2] = dd_darg * 2.0 * cosh2_u * cosh2_v * dq_ds
            p, dp_du, dp_dv, dp_ds = _scaled_sq(beta_u, dbeta_u, beta_v, dbeta_v, sq_u, sq_v, sq_diff)
            if p >= 1e-18:
                e = math.sqrt(p)
                de_dp = 0.5 / e
            else:
                e = 1e-9
                de_dp = 0.0
            log_distance[b, j] = e
            partials[b, j, 3] = de_dp * dp_du
            partials[b, j, 4] = de_dp * dp_dv
            partials[b, j, 5] = de_dp * dp_ds


@numba.njit(parallel=True, **_KERNEL)
def exp0_distances_backward(users_table: np.ndarray, items_table: np.ndarray, users: np.ndarray, items: np.ndarray,
                            limit: float, grad_distance: np.ndarray, grad_log_distance: np.ndarray,
                            partials: np.ndarray, grad_u: np.ndarray, grad_v: np.ndarray) -> None:
    """Gradient rows grad_u [B, D] and grad_v [B, 1 + n, D] from ∂L/∂d and ∂L/∂e ([B, 1 + n] each)."""
    width = users_table.shape[1]
    real = users_table.dtype.type
    lim = real(limit)
    for b in numba.prange(users.shape[0]):  # each row writes only its own outputs
        prefetch_batch_row(users_table, items_table, users, items, b)  # see hbench.compiled
        u = users[b]
        for d in range(width):
            grad_u[b, d] = real(0.0)
        for j in range(items.shape[1]):
            i = items[b, j]
            gd, ge = grad_distance[b, j], grad_log_distance[b, j]
            g_u = real(2.0 * (gd * partials[b, j, 0] + ge * partials[b, j, 3]))
            g_v = real(2.0 * (gd * partials[b, j, 1] + ge * partials[b, j, 4]))
            g_diff = real(2.0 * (gd * partials[b, j, 2] + ge * partials[b, j, 5]))
            for d in range(width):
                raw_x, raw_y = users_table[u, d], items_table[i, d]
                x = min(max(raw_x, -lim), lim)
                y = min(max(raw_y, -lim), lim)
                gx = g_u * x + g_diff * (x - y)
                gy = g_v * y - g_diff * (x - y)
                if abs(raw_x) > lim:  # a clamped coordinate passes no gradient
                    gx = real(0.0)
                if abs(raw_y) > lim:
                    gy = real(0.0)
                grad_u[b, d] += gx
                grad_v[b, j, d] = gy


def arcosh_floor(dtype: np.dtype) -> float:
    """The arcosh argument's lower guard as `exp0_distances` applies it in `dtype`."""
    return _ARG_FLOOR[np.dtype(dtype)]


@dataclass(frozen=True)
class TableDistancePass:
    """What one forward pass of `table_exp0_distances` leaves for its backward: the tables as read (numpy
    views, not copies), the index pairs and the six partial derivatives per pair."""

    users_table: np.ndarray
    items_table: np.ndarray
    users: np.ndarray
    items: np.ndarray
    partials: np.ndarray


def table_exp0_distances(users_table: torch.Tensor, items_table: torch.Tensor, users: torch.Tensor,
                         items: torch.Tensor, c: float) -> tuple[torch.Tensor, torch.Tensor, TableDistancePass]:
    """`exp0_distances(users_table[users][:, None], items_table[items], c)` read where the rows lie:
    (d_c, the log0 distance, the pass for `table_exp0_distance_gradients`), each [B, 1 + n].

    The tables are CPU float tensors of one dtype; `users` is [B] and `items` [B, 1 + n], int64. The two
    tables may be one tensor (HGCF's node table holds users and items)."""
    tables = users_table.detach().contiguous().numpy(), items_table.detach().contiguous().numpy()
    dtype = tables[0].dtype
    distance, log_distance = np.empty(items.shape, dtype), np.empty(items.shape, dtype)
    partials = np.empty((*items.shape, 6), np.float64)
    s_max = float(np.arctanh(1.0 - projection_eps(users_table.dtype)))
    index = users.numpy(), items.numpy()
    with PARALLEL_KERNEL:  # see hbench.compiled
        exp0_distances_forward(*tables, *index, c**0.5, s_max, COORDINATE_LIMIT, arcosh_floor(dtype), distance,
                               log_distance, partials)
    return torch.from_numpy(distance), torch.from_numpy(log_distance), TableDistancePass(*tables, *index, partials)


def table_exp0_distance_gradients(forward: TableDistancePass, grad_distance: torch.Tensor | None,
                                  grad_log_distance: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The gradient rows ([B, D] for the users, [B, 1 + n, D] for the items) of a loss whose upstream
    gradients in d_c and in the log0 distance are given; None for a distance the loss did not read."""
    items_shape = forward.items.shape

    def upstream(grad: torch.Tensor | None) -> np.ndarray:
        return (np.zeros(items_shape, np.float64) if grad is None
                else grad.detach().to(torch.float64).contiguous().numpy())

    dtype, width = forward.users_table.dtype, forward.users_table.shape[1]
    grad_u = np.empty((forward.users.shape[0], width), dtype)
    grad_v = np.empty((*items_shape, width), dtype)
    with PARALLEL_KERNEL:
        exp0_distances_backward(forward.users_table, forward.items_table, forward.users, forward.items,
                                COORDINATE_LIMIT, upstream(grad_distance), upstream(grad_log_distance),
                                forward.partials, grad_u, grad_v)
    return torch.from_numpy(grad_u), torch.from_numpy(grad_v)
