"""Block-wise scoring on the model's device, reduced at once to per-target counts.

For every (user, target) pair the output is `n_ge`, the number of the user's negatives scoring at least
as high as the target, and `n_neg`, the number of negatives (see `metrics.py` for what follows).

Full ranking scores a block of users against all items with one matrix product and compares each
target's score with its user's row, leaving out the masked pairs (`PreparedDataset.pairs_through(stage)`:
training items, the targets themselves, validation items at test time). Block sizes are chosen so that a
block's score matrix stays within `budget_elements`; nothing of size users × items is ever built, on host
or device.

On the CPU the count is one compiled pass per target over its row while the row is in cache
(`_count_rows`): n_ge = #{j : s_j ≥ t} − #{masked j : s_j ≥ t}, the second term read from the mask's CSR
at the masked entries only, so the block is never written. On other devices the masked pairs are set to
−inf and the block is compared in place (`_count_at_least`), which is what a GPU does fast. The two agree
(tests), except that a target whose score is −inf ranks below every unmasked item on the CPU and below
the masked ones too on a GPU, which changes nothing that a metric reads.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import torch

from hbench.compiled import PARALLEL_KERNEL
from hbench.datasets.graph import UserItemGraph, concatenated_ranges
from hbench.datasets.store import Interactions
from hbench.errors import HBenchError
from hbench.geometry import Representations
from hbench.ui import QUIET, Feedback

DEFAULT_BUDGET_ELEMENTS = 1 << 25  # 32M float32 scores ≈ 128 MiB per block on an accelerator
# On a CPU the block is written by the product and read once by the count; a block within the last-level
# cache (16 MiB of scores) keeps that read off main memory while the product still gets large blocks:
# on the 2-core CI machine 2^22 scores per block were 20% faster than 2^20 (benchmarks/full_ranking.py).
CPU_BUDGET_ELEMENTS = 1 << 22


def default_budget(device: torch.device) -> int:
    """Scores per block: cache-sized on the CPU, large on accelerators (fewer kernel launches)."""
    return CPU_BUDGET_ELEMENTS if device.type == "cpu" else DEFAULT_BUDGET_ELEMENTS


@dataclass(frozen=True)
class TargetCounts:
    """Per-target results, parallel arrays in the order of the sorted targets."""

    users: np.ndarray
    items: np.ndarray
    n_ge: np.ndarray
    n_neg: np.ndarray


def _sorted_by_user(part: Interactions) -> tuple[np.ndarray, np.ndarray]:
    order = np.lexsort((part.items, part.users))
    return part.users[order], part.items[order]


def _user_blocks(cost_per_user: np.ndarray, budget: int) -> list[tuple[int, int]]:
    """Consecutive index ranges whose summed cost stays near `budget` (at least one user per block)."""
    cumulative = np.cumsum(cost_per_user)
    cuts = np.searchsorted(cumulative, np.arange(1, cumulative[-1] // budget + 2) * budget) if len(cumulative) else []
    bounds = np.unique(np.concatenate([[0], np.clip(cuts, 1, len(cost_per_user)), [len(cost_per_user)]]))
    return list(zip(bounds[:-1].tolist(), bounds[1:].tolist()))


@numba.njit(cache=True, nogil=True, error_model="numpy", parallel=True)
def _count_rows(scores: np.ndarray, block_users: np.ndarray, t_offsets: np.ndarray, t_items: np.ndarray,
                mask_indptr: np.ndarray, mask_items: np.ndarray, n_ge: np.ndarray) -> None:
    """n_ge[k] for every target k of the block's users: its row's scores ≥ the target's, less the masked ones
    (NaN compares as below). Row r of `scores` belongs to user block_users[r]."""
    n_items = scores.shape[1]
    for r in numba.prange(block_users.shape[0]):  # each target is written by its row's iteration
        user = block_users[r]
        for k in range(t_offsets[user], t_offsets[user + 1]):
            threshold = scores[r, t_items[k]]
            count = 0
            for j in range(n_items):
                count += scores[r, j] >= threshold
            for e in range(mask_indptr[user], mask_indptr[user + 1]):
                count -= scores[r, mask_items[e]] >= threshold
            n_ge[k] = count


def _compiled_count_applies(scores: torch.Tensor) -> bool:
    """`_count_rows` serves CPU float blocks; other devices take the tensor path."""
    return scores.device.type == "cpu" and scores.dtype in (torch.float32, torch.float64) and scores.is_contiguous()


def _count_at_least(scores: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
    """Per row, how many of `scores[row]` are ≥ `thresholds[row]` (NaN counts as below). Overwrites `scores`.

    In place: the comparison writes 1.0 / 0.0 over the scores and a float row sum counts them, two passes
    over a block that is still in cache. A boolean mask would be a new allocation, and summing it into an
    integer type costs a conversion pass; that was most of the ranking time beyond the matrix product.
    The float sum is exact: a row has fewer than 2²⁴ items (checked by the caller).
    """
    return scores.ge_(thresholds.unsqueeze(1)).sum(1, dtype=torch.float32).to(torch.int64)


def count_full(
    reps: Representations,
    targets: Interactions,
    masked: UserItemGraph,
    *,
    budget_elements: int | None = None,
    feedback: Feedback = QUIET,
    description: str = "ranking",
) -> TargetCounts:
    """Rank every target against all items that `masked` does not pair with the user.

    `masked` must contain every target pair (a target is no negative of itself, nor of the user's other
    targets): at a dataset's stage it is `dataset.pairs_through(stage)`. `budget_elements`: scores per
    block (default: `default_budget` of the representations' device).
    """
    n_users, n_items = reps.users.shape[0], reps.items.shape[0]
    if n_items >= 1 << 24:
        raise HBenchError(f"full ranking supports fewer than 2^24 items, not {n_items} (its counts are float32 sums)")
    device = reps.items.device
    budget_elements = budget_elements or default_budget(device)
    if (masked.n_users, masked.n_items) != (n_users, n_items):
        raise ValueError(f"the mask is {masked.n_users} users × {masked.n_items} items, the representations "
                         f"{n_users} × {n_items}")
    t_users, t_items = _sorted_by_user(targets)
    if not masked.contains(t_users, t_items).all():
        raise ValueError("every target pair must be masked (it would count as a negative of itself)")
    t_offsets = np.searchsorted(t_users, np.arange(n_users + 1))
    n_neg_of_user = n_items - masked.user_degree

    target_users = np.unique(t_users)
    # A block costs its score matrix plus one gathered row per target after a user's first (the first
    # target of every user is compared with the score matrix in place).
    blocks = _user_blocks(n_items * np.diff(t_offsets)[target_users], budget_elements)
    cache = reps.geometry.item_cache(reps.items)
    n_ge = np.empty(len(t_users), np.int64)
    to_device = lambda a: torch.from_numpy(a).to(device)  # noqa: E731
    with torch.no_grad(), feedback.progress(description, total=len(target_users), unit="users") as bar:
        for lo, hi in blocks:
            block_users = target_users[lo:hi]
            scores = reps.geometry.score_matrix(reps.users[to_device(block_users)], cache)
            if _compiled_count_applies(scores):
                with PARALLEL_KERNEL:  # see hbench.compiled
                    _count_rows(scores.numpy(), block_users, t_offsets, t_items, masked.indptr, masked.items, n_ge)
                bar.advance(len(block_users))
                continue
            t_rows, t_flat = concatenated_ranges(t_offsets[block_users], t_offsets[block_users + 1])
            target_scores = scores[to_device(t_rows), to_device(t_items[t_flat])]
            m_rows, m_edges = masked.edges_of(block_users)
            scores[to_device(m_rows), to_device(masked.items[m_edges])] = -torch.inf
            # Targets are grouped by row, so a row's first target is where the row index changes; every
            # row has one. Later targets compare against gathered copies of their rows, before the block
            # itself is overwritten by the in-place comparison of the first targets.
            first = np.ones(len(t_rows), bool)
            first[1:] = t_rows[1:] != t_rows[:-1]
            if not first.all():
                later = ~first
                n_ge[t_flat[later]] = _count_at_least(scores[to_device(t_rows[later])],
                                                      target_scores[to_device(later)]).cpu().numpy()
            n_ge[t_flat[first]] = _count_at_least(scores, target_scores[to_device(first)]).cpu().numpy()
            bar.advance(len(block_users))
    return TargetCounts(t_users, t_items, n_ge, n_neg_of_user[t_users])


def count_sampled(
    reps: Representations,
    targets: Interactions,
    candidates: np.ndarray,
    *,
    budget_elements: int | None = None,
    feedback: Feedback = QUIET,
    description: str = "ranking",
) -> TargetCounts:
    """Rank every target against its user's stored negative candidates (`candidates[user]`)."""
    device = reps.items.device
    t_users, t_items = _sorted_by_user(targets)
    n_cand = candidates.shape[1]
    dim = reps.items.shape[1]
    budget_elements = budget_elements or default_budget(device)
    batch = max(1, budget_elements // ((n_cand + 1) * dim))
    n_ge = np.empty(len(t_users), np.int64)
    with torch.no_grad(), feedback.progress(description, total=len(t_users), unit="targets") as bar:
        for lo in range(0, len(t_users), batch):
            users = t_users[lo : lo + batch]
            items = np.concatenate([t_items[lo : lo + batch, None], candidates[users]], axis=1)
            u = reps.users[torch.from_numpy(users).to(device)]
            v = reps.items[torch.from_numpy(items).to(device)]
            scores = reps.geometry.score_candidates(u, v)
            n_ge[lo : lo + batch] = (scores[:, 1:] >= scores[:, :1]).sum(1).cpu().numpy()
            bar.advance(len(users))
    return TargetCounts(t_users, t_items, n_ge, np.full(len(t_users), n_cand, np.int64))
