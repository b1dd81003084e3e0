"""BPR's loss and gradient read straight from the embedding tables, compiled (CPU tensors).

The tensor path (`bpr._BPRLoss` after two `lookup`s) gathers the batch's rows into [B, 1 + n, D] blocks and
then makes about eight passes over them (scores, squared norms, and in backward the user and item
gradients). Here one loop per batch row reads p_u, q_i, b_i where they lie in the tables, computes the
scores and squared norms (forward), and in backward the gradient rows, so each row is read once per pass
while it is in cache. The arithmetic and the notation are `bpr._BPRLoss`'s (its docstring derives the
gradient); tests compare the two paths. Batch rows are split between the CPU's threads; callers enter
the kernels under `hbench.compiled.PARALLEL_KERNEL`. Compiled by Numba on first use and cached on disk.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True, error_model="numpy", parallel=True)
def bpr_scores(users_table: np.ndarray, items_table: np.ndarray, bias_table: np.ndarray, users: np.ndarray,
               items: np.ndarray, x: np.ndarray, user_sq: np.ndarray, item_sq: np.ndarray) -> None:
    """x[b, j − 1] = s_b0 − s_bj for j = 1 … n; user_sq[b] = ‖p_b‖²; item_sq[b, j] = ‖q_bj‖² + b_bj²
    (sums accumulated in float64, stored in the arrays' dtype)."""
    width = users_table.shape[1]
    for b in numba.prange(users.shape[0]):  # each row writes only its own outputs
        p = users_table[users[b]]
        acc = np.float64(0.0)
        for d in range(width):
            acc += p[d] * p[d]
        user_sq[b] = acc
        positive = np.float64(0.0)
        for j in range(items.shape[1]):
            i = items[b, j]
            q = items_table[i]
            score = np.float64(bias_table[i, 0])
            sq = score * score
            for d in range(width):
                score += p[d] * q[d]
                sq += q[d] * q[d]
            item_sq[b, j] = sq
            if j == 0:
                positive = score
            else:
                x[b, j - 1] = positive - score


@numba.njit(cache=True, nogil=True, error_model="numpy", parallel=True)
def bpr_gradients(users_table: np.ndarray, items_table: np.ndarray, bias_table: np.ndarray, users: np.ndarray,
                  items: np.ndarray, dx: np.ndarray, decay: np.ndarray, grad_u: np.ndarray, grad_q: np.ndarray,
                  grad_b: np.ndarray) -> None:
    """Gradient rows from ∂/∂x (`dx` [B, n]) and the L2 factors 2λ w_j (`decay` [1 + n]):

        ∂/∂s_b0 = Σ_j dx_bj,  ∂/∂s_bj = −dx_bj,  ∂/∂p_b = Σ_j ∂/∂s_bj q_bj + decay_0 p_b,
        ∂/∂q_bj = ∂/∂s_bj p_b + decay_j q_bj,  ∂/∂b_bj = ∂/∂s_bj + decay_j b_bj.
    """
    width = users_table.shape[1]
    for b in numba.prange(users.shape[0]):  # each row writes only its own outputs
        p = users_table[users[b]]
        gu = grad_u[b]
        for d in range(width):
            gu[d] = decay[0] * p[d]
        d_positive = 0.0
        for j in range(dx.shape[1]):
            d_positive += dx[b, j]
        for j in range(items.shape[1]):
            i = items[b, j]
            q = items_table[i]
            dscore = d_positive if j == 0 else -dx[b, j - 1]
            gq = grad_q[b, j]
            for d in range(width):
                gu[d] += dscore * q[d]
                gq[d] = dscore * p[d] + decay[j] * q[d]
            grad_b[b, j] = dscore + decay[j] * bias_table[i, 0]
