"""Lazy Adam on the touched rows of a Euclidean table, fused into one compiled pass (CPU tensors).

`RowAdam` written with tensor operations makes about twenty passes per table and step: mark the rows,
find their positions, sum the gradient per row (`index_add_`), gather the moments and the rows, four
element-wise updates, scatter three results back. Each is a separate dispatch over a few thousand rows, and
on a CPU their overhead and memory traffic were most of a BPR epoch (profile in benchmarks/results/peers.md).
Here the same arithmetic runs as two loops compiled by Numba:

1. mark the rows the index reads, number them in ascending order by one scan over the table's rows, then
   add each index entry's gradient row to its row's sum (in index order, as `index_add_` adds);
2. over the touched rows (ascending, split between the CPU's threads: rows are distinct): Adam's moment
   updates and the step, in place on the table and its moments, one row at a time while it is in cache.

The arithmetic is `RowAdam`'s (tests compare the two, and both with geoopt's SparseRiemannianAdam). Other
devices, and tables on a manifold, keep the tensor path. Numba is compiled on first use and cached on disk.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import torch

from hbench.compiled import PARALLEL_KERNEL


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _sum_rows(index: np.ndarray, grad: np.ndarray, position: np.ndarray, rows: np.ndarray,
              summed: np.ndarray) -> int:
    """The distinct rows of `index`, ascending, into `rows`; their gradient sums, in the same order, into `summed`.

    `position` (one entry per table row, −1 when untouched) is left as it was found. Ascending rows make
    the update pass walk the table forwards, which the memory prefetcher follows; each row's sum is taken
    in index order, as `index_add_` takes it.
    """
    for i in range(index.shape[0]):
        position[index[i]] = 0
    count = 0
    for row in range(position.shape[0]):
        if position[row] == 0:
            position[row] = count
            rows[count] = row
            count += 1
    seen = np.zeros(count, np.bool_)
    width = grad.shape[1]
    for i in range(index.shape[0]):
        at = position[index[i]]
        if seen[at]:
            for d in range(width):
                summed[at, d] += grad[i, d]
        else:
            seen[at] = True
            for d in range(width):
                summed[at, d] = grad[i, d]
    for k in range(count):
        position[rows[k]] = -1
    return count


# error_model="numpy": a division by zero gives inf as in torch instead of a Python exception, which also
# lets the compiler vectorise the loops (the Python model checks every divisor).
@numba.njit(cache=True, nogil=True, error_model="numpy", parallel=True)
def _adam_rows(table: np.ndarray, exp_avg: np.ndarray, exp_avg_sq: np.ndarray, rows: np.ndarray,
               summed: np.ndarray, count: int, step: np.floating, one_minus_beta1: np.floating, beta2: np.floating,
               one_minus_beta2: np.floating, inv_sqrt_bias2: np.floating, eps: np.floating) -> None:
    """Adam on each touched row (scalars in the table's dtype, so float32 tables compute in float32, as torch)."""
    for k in numba.prange(count):  # rows are distinct: no two iterations write the same memory
        row = rows[k]
        p, m, v, g = table[row], exp_avg[row], exp_avg_sq[row], summed[k]
        for d in range(p.shape[0]):
            m[d] += one_minus_beta1 * (g[d] - m[d])  # torch's lerp_ with weight 1 − β₁ < 0.5
            v[d] = v[d] * beta2 + one_minus_beta2 * g[d] * g[d]
            p[d] += step * m[d] / (np.sqrt(v[d]) * inv_sqrt_bias2 + eps)


def fused_row_adam_applies(table: torch.Tensor) -> bool:
    """Whether `fused_row_adam_step` serves this table: a contiguous CPU float table outside a manifold."""
    return (table.device.type == "cpu" and table.dtype in (torch.float32, torch.float64) and table.dim() == 2
            and table.is_contiguous() and not hasattr(table, "manifold"))


def fused_row_adam_step(table: torch.Tensor, exp_avg: torch.Tensor, exp_avg_sq: torch.Tensor, position: torch.Tensor,
                        index: torch.Tensor, grad: torch.Tensor, *, lr: float, beta1: float, beta2: float, eps: float,
                        step: int) -> torch.Tensor:
    """One lazy Adam step on the rows `index` read (gradient rows `grad`, in the same order), in place.

    `position`: int64 scratch with one entry per table row, all −1 (as the call leaves it). Returns the
    touched rows, ascending.
    """
    index_np = index.detach().numpy()
    grad_np = grad.detach().to(table.dtype).contiguous().numpy()
    rows = np.empty(index_np.shape[0], np.int64)
    summed = np.empty((index_np.shape[0], table.shape[1]), grad_np.dtype)
    count = _sum_rows(index_np, grad_np, position.numpy(), rows, summed)
    scalar = grad_np.dtype.type
    with PARALLEL_KERNEL:  # see hbench.compiled
        _adam_rows(table.detach().numpy(), exp_avg.numpy(), exp_avg_sq.numpy(), rows, summed, count,
                   scalar(-lr / (1 - beta1 ** step)), scalar(1 - beta1), scalar(beta2), scalar(1 - beta2),
                   scalar(1 / math.sqrt(1 - beta2 ** step)), scalar(eps))
    return torch.from_numpy(rows[:count])
