"""BPR's loss and gradient read straight from the embedding tables, compiled (CPU tensors).

The tensor path (`bpr._BPRLoss` after two `lookup`s) gathers the batch's rows into [B, 1 + n, D] blocks and
then makes about eight passes over them (scores, squared norms, and in backward the user and item
gradients). Here one loop per batch row reads p_u, q_i, b_i where they lie in the tables and computes the
scores, the squared norms and, while the rows are in cache, the gradient rows for the upstream gradients
of `total = ranking + l2` (both 1). Training calls `total.backward()`, so backward hands those rows on; any
other weighting of the two terms gets its rows from a second pass (`bpr_gradients`). The tables are read
from memory once per step: at the embedding sizes of real data they do not stay in cache between the
forward and the backward, and those reads were half of a BPR step. Both kernels write the gradient rows
with one function (`_gradient_rows`). The arithmetic and the notation are `bpr._BPRLoss`'s (its docstring
derives the gradient); tests compare the two paths. Batch rows are split between the CPU's threads;
callers enter the kernels under `hbench.compiled.PARALLEL_KERNEL`. Compiled by Numba on first use and
cached on disk.

Sums are accumulated in the tables' dtype, as torch's float32 dot products are, and may be reassociated
(`hbench.compiled.VECTORISE`): that lets the compiler run the 50-wide inner loops as vector instructions,
which took a batch's scores from about 3 ms to under 1 ms on the 2-vCPU developer VM. NaN and infinity keep
their meaning (a diverged table still shows as non-finite).
"""

from __future__ import annotations

import numba
import numpy as np

from hbench.compiled import PREFETCH_DISTANCE, VECTORISE, prefetch_batch_row, prefetch_row


_KERNEL = {"cache": True, "nogil": True, "error_model": "numpy", "fastmath": set(VECTORISE)}


@numba.njit(inline="always", **_KERNEL)
def _gradient_rows(users_table: np.ndarray, items_table: np.ndarray, bias_table: np.ndarray, u: int,
                   item_row: np.ndarray, dscores: np.ndarray, decay: np.ndarray, grad_u: np.ndarray,
                   grad_q: np.ndarray, grad_b: np.ndarray) -> None:
    """One batch row's gradient rows from ∂/∂s_j (`dscores` [1 + n], j = 0 the positive) and the L2
    factors 2λ w_j (`decay` [1 + n]):

        ∂/∂p = Σ_j ∂/∂s_j q_j + decay_0 p,  ∂/∂q_j = ∂/∂s_j p + decay_j q_j,  ∂/∂b_j = ∂/∂s_j + decay_j b_j.
    """
    for d in range(users_table.shape[1]):
        grad_u[d] = decay[0] * users_table[u, d]
    for j in range(item_row.shape[0]):
        i = item_row[j]
        for d in range(users_table.shape[1]):
            grad_u[d] += dscores[j] * items_table[i, d]
            grad_q[j, d] = dscores[j] * users_table[u, d] + decay[j] * items_table[i, d]
        grad_b[j] = dscores[j] + decay[j] * bias_table[i, 0]


@numba.njit(inline="always", **_KERNEL)
def _prefetch_batch_row(users_table: np.ndarray, items_table: np.ndarray, bias_table: np.ndarray, users: np.ndarray,
                        items: np.ndarray, b: int) -> None:
    """Prefetch the table rows batch row b + PREFETCH_DISTANCE reads, its item biases included
    (`hbench.compiled`): a batch's rows lie anywhere in tables larger than the cache, so each would
    otherwise wait for memory in turn."""
    prefetch_batch_row(users_table, items_table, users, items, b)
    if b + PREFETCH_DISTANCE < users.shape[0]:
        for j in range(items.shape[1]):
            prefetch_row(bias_table, items[b + PREFETCH_DISTANCE, j])


@numba.njit(parallel=True, **_KERNEL)
def bpr_scores_and_gradients(users_table: np.ndarray, items_table: np.ndarray, bias_table: np.ndarray,
                             users: np.ndarray, items: np.ndarray, reg: float, x: np.ndarray, softplus_sums: np.ndarray,
                             user_sq: np.ndarray, item_sq: np.ndarray, grad_u: np.ndarray, grad_q: np.ndarray,
                             grad_b: np.ndarray) -> None:
    """Scores and squared norms: x[b, j − 1] = s_b0 − s_bj for j = 1 … n; softplus_sums[b] = Σ_j softplus(−x_bj)
    (the row's share of the ranking loss, so that the loss needs no pass of its own); user_sq[b] = ‖p_b‖²;
    item_sq[b, j] = ‖q_bj‖² + b_bj². Then the gradient rows of `ranking + l2` (`_gradient_rows` with
    ∂/∂s_bj = σ(−x_bj) / Bn for the negatives, minus their sum for the positive, and decay_0 = 2λ / B,
    decay_j = 2λ / Bn)."""
    batch, width, n_negatives = users.shape[0], users_table.shape[1], items.shape[1] - 1
    real = users_table.dtype.type  # every scalar in the tables' dtype: float32 arithmetic stays float32
    one, zero = real(1.0), real(0.0)
    inv_bn = one / real(batch * n_negatives)
    decay = np.full(1 + n_negatives, real(2.0 * reg) * inv_bn, dtype=users_table.dtype)
    decay[0] = real(2.0 * reg / batch)
    dscores = np.empty((batch, 1 + n_negatives), dtype=users_table.dtype)
    for b in numba.prange(batch):  # each row writes only its own outputs
        _prefetch_batch_row(users_table, items_table, bias_table, users, items, b)
        u = users[b]
        acc = zero
        for d in range(width):
            acc += users_table[u, d] * users_table[u, d]
        user_sq[b] = acc
        positive = zero  # set at j = 0
        for j in range(items.shape[1]):
            i = items[b, j]
            score = bias_table[i, 0]
            sq = score * score
            for d in range(width):
                score += users_table[u, d] * items_table[i, d]
                sq += items_table[i, d] * items_table[i, d]
            item_sq[b, j] = sq
            if j == 0:
                positive = score
            else:
                x[b, j - 1] = positive - score
        dscores[b, 0] = zero
        softplus = zero
        for j in range(n_negatives):
            dscores[b, j + 1] = inv_bn / (one + np.exp(x[b, j]))  # σ(−x) = 1 / (1 + eˣ)
            dscores[b, 0] -= dscores[b, j + 1]
            softplus += max(-x[b, j], zero) + np.log1p(np.exp(-abs(x[b, j])))  # softplus(−x), stable for any x
        softplus_sums[b] = softplus
        _gradient_rows(users_table, items_table, bias_table, u, items[b], dscores[b], decay, grad_u[b], grad_q[b],
                       grad_b[b])


@numba.njit(parallel=True, **_KERNEL)
def bpr_gradients(users_table: np.ndarray, items_table: np.ndarray, bias_table: np.ndarray, users: np.ndarray,
                  items: np.ndarray, dx: np.ndarray, decay: np.ndarray, grad_u: np.ndarray, grad_q: np.ndarray,
                  grad_b: np.ndarray) -> None:
    """Gradient rows from ∂/∂x (`dx` [B, n]) and the L2 factors 2λ w_j (`decay` [1 + n]): `_gradient_rows`
    with ∂/∂s_b0 = Σ_j dx_bj and ∂/∂s_bj = −dx_bj."""
    dscores = np.empty((users.shape[0], 1 + dx.shape[1]), dtype=dx.dtype)
    for b in numba.prange(users.shape[0]):  # each row writes only its own outputs
        _prefetch_batch_row(users_table, items_table, bias_table, users, items, b)
        dscores[b, 0] = dx[b, 0]
        for j in range(1, dx.shape[1]):
            dscores[b, 0] += dx[b, j]
        for j in range(dx.shape[1]):
            dscores[b, j + 1] = -dx[b, j]
        _gradient_rows(users_table, items_table, bias_table, users[b], items[b], dscores[b], decay, grad_u[b],
                       grad_q[b], grad_b[b])
