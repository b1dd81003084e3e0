"""Lazy Adam on the touched rows of a Euclidean table, fused into one compiled pass (CPU tensors).

`RowAdam` written with tensor operations makes about twenty passes per table and step: mark the rows,
find their positions, sum the gradient per row (`index_add_`), gather the moments and the rows, four
element-wise updates, scatter three results back. Each is a separate dispatch over a few thousand rows, and
on a CPU their overhead and memory traffic were most of a BPR epoch (profile in benchmarks/results/peers.md).
Here the same arithmetic runs as two loops compiled by Numba:

1. `group_by_row`: mark the rows the index reads, number them in ascending order by one scan over the
   table's rows, and group the index entries by row (a counting sort). Tables read with the same index
   (an item embedding and its bias) share the grouping: `RowAdam` finds it once per step;
2. `_adam_rows`, over the touched rows (ascending, split between the CPU's threads: rows are distinct):
   the row's gradient summed over its entries (in index order, as `index_add_` adds), Adam's moment
   updates and the step, in place on the table and its moments, one row at a time while it is in cache.
   The rows and gradient rows needed a few rows later are prefetched meanwhile (`hbench.compiled`): the
   touched rows are scattered over tables and moments larger than the cache, so their loads would
   otherwise wait for memory one row at a time.

The arithmetic is `RowAdam`'s (tests compare the two, and both with geoopt's SparseRiemannianAdam). Other
devices, and tables on a manifold, keep the tensor path. Numba is compiled on first use and cached on disk.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import torch

from hbench.compiled import PARALLEL_KERNEL, PREFETCH_DISTANCE, VECTORISE, prefetch_row, prefetch_row_for_write


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _group_by_row(index: np.ndarray, position: np.ndarray, rows: np.ndarray, starts: np.ndarray,
                  entries: np.ndarray) -> int:
    """Group the entries of `index` by the row they read; returns the number of distinct rows, `count`.

    Writes the distinct rows, ascending, to `rows[:count]`, and the entries of the k-th one, in index order,
    to `entries[starts[k]:starts[k + 1]]` (a counting sort, stable). `position` (one entry per table row, −1
    when untouched) is left as found. Ascending rows make the update pass walk the table forwards, which
    the memory prefetcher follows; index order makes each row's gradient sum the one `index_add_` takes.
    """
    for i in range(index.shape[0]):
        position[index[i]] = 0
    count = 0
    for row in range(position.shape[0]):
        if position[row] == 0:
            position[row] = count
            rows[count] = row
            count += 1
    starts[: count + 1] = 0
    for i in range(index.shape[0]):
        starts[position[index[i]] + 1] += 1
    for k in range(count):
        starts[k + 1] += starts[k]
    filled = starts[:count].copy()
    for i in range(index.shape[0]):
        at = position[index[i]]
        entries[filled[at]] = i
        filled[at] += 1
    for k in range(count):
        position[rows[k]] = -1
    return count


# error_model="numpy": a division by zero gives inf as in torch instead of a Python exception, which also
# lets the compiler vectorise the loops (the Python model checks every divisor).
@numba.njit(cache=True, nogil=True, error_model="numpy", parallel=True, fastmath=set(VECTORISE))
def _adam_rows(table: np.ndarray, exp_avg: np.ndarray, exp_avg_sq: np.ndarray, rows: np.ndarray,
               starts: np.ndarray, entries: np.ndarray, grad: np.ndarray, summed: np.ndarray, step: np.floating,
               one_minus_beta1: np.floating, beta2: np.floating, one_minus_beta2: np.floating,
               inv_sqrt_bias2: np.floating, eps: np.floating) -> None:
    """Adam on each touched row (scalars in the table's dtype, so float32 tables compute in float32, as torch).

    A row's gradient is summed, in index order, into its row of `summed` (scratch, [rows, D]) first.
    """
    width, count = table.shape[1], rows.shape[0]
    for k in numba.prange(count):  # rows are distinct: no two iterations write the same memory
        if k + PREFETCH_DISTANCE < count:  # the row updated a few iterations on (see hbench.compiled)
            ahead = rows[k + PREFETCH_DISTANCE]
            prefetch_row_for_write(table, ahead)
            prefetch_row_for_write(exp_avg, ahead)
            prefetch_row_for_write(exp_avg_sq, ahead)
            for e in range(starts[k + PREFETCH_DISTANCE], starts[k + PREFETCH_DISTANCE + 1]):
                prefetch_row(grad, entries[e])
        row = rows[k]
        first = entries[starts[k]]
        for d in range(width):
            summed[k, d] = grad[first, d]
        for e in range(starts[k] + 1, starts[k + 1]):
            other = entries[e]
            for d in range(width):
                summed[k, d] += grad[other, d]
        for d in range(width):
            g = summed[k, d]
            m = exp_avg[row, d] + one_minus_beta1 * (g - exp_avg[row, d])  # torch's lerp_, weight 1 − β₁ < 0.5
            v = exp_avg_sq[row, d] * beta2 + one_minus_beta2 * g * g
            exp_avg[row, d] = m
            exp_avg_sq[row, d] = v
            table[row, d] += step * m / (np.sqrt(v) * inv_sqrt_bias2 + eps)


def fused_row_adam_applies(table: torch.Tensor) -> bool:
    """Whether `fused_row_adam_step` serves this table: a contiguous CPU float table outside a manifold."""
    return (table.device.type == "cpu" and table.dtype in (torch.float32, torch.float64) and table.dim() == 2
            and table.is_contiguous() and not hasattr(table, "manifold"))


def group_by_row(index: torch.Tensor, position: torch.Tensor) -> tuple[torch.Tensor, tuple[np.ndarray, np.ndarray]]:
    """(distinct rows of `index` ascending, their entries grouped as `_group_by_row` writes them).

    `position`: int64 scratch with one entry per table row, all −1 (as the call leaves it).
    """
    index_np = index.detach().long().contiguous().numpy()
    rows = np.empty(index_np.shape[0], np.int64)
    starts = np.empty(index_np.shape[0] + 1, np.int64)
    entries = np.empty(index_np.shape[0], np.int64)
    count = _group_by_row(index_np, position.numpy(), rows, starts, entries)
    return torch.from_numpy(rows[:count]), (starts[: count + 1], entries)


def fused_row_adam_step(table: torch.Tensor, exp_avg: torch.Tensor, exp_avg_sq: torch.Tensor, rows: torch.Tensor,
                        groups: tuple[np.ndarray, np.ndarray], grad: torch.Tensor, *, lr: float, beta1: float,
                        beta2: float, eps: float, step: int) -> None:
    """One lazy Adam step, in place, on `rows` with `groups` from `group_by_row` and the gradient rows `grad`
    of the index entries."""
    grad_np = grad.detach().to(table.dtype).contiguous().numpy()
    summed = np.empty((rows.shape[0], table.shape[1]), grad_np.dtype)
    scalar = grad_np.dtype.type
    with PARALLEL_KERNEL:  # see hbench.compiled
        _adam_rows(table.detach().numpy(), exp_avg.numpy(), exp_avg_sq.numpy(), rows.numpy(), *groups, grad_np,
                   summed, scalar(-lr / (1 - beta1 ** step)), scalar(1 - beta1), scalar(beta2), scalar(1 - beta2),
                   scalar(1 / math.sqrt(1 - beta2 ** step)), scalar(eps))
