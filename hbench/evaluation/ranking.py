"""Block-wise scoring on the model's device, reduced at once to per-target counts.

For every (user, target) pair the output is `n_ge`, the number of the user's negatives scoring at least
as high as the target, and `n_neg`, the number of negatives (see `metrics.py` for what follows).

Full ranking scores a block of users against all items with one matrix product, sets excluded items
(training items, validation items at test time, and the targets themselves) to −inf from sparse indices,
and compares each target's score with its user's row. Block sizes are chosen so that a block's score
matrix stays within `budget_elements`; nothing of size users × items is ever built, on host or device.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from hbench.datasets.store import Interactions
from hbench.errors import HBenchError
from hbench.geometry import Representations
from hbench.ui import QUIET, Feedback

DEFAULT_BUDGET_ELEMENTS = 1 << 25  # 32M float32 scores ≈ 128 MiB per block on an accelerator
# On a CPU the block is scored, masked and counted in three passes; a block that stays in cache (≈ 4 MiB of
# scores) makes the second and third nearly free, where a 128 MiB block pays main-memory traffic for each.
CPU_BUDGET_ELEMENTS = 1 << 20


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


def _csr_offsets(sorted_users: np.ndarray, n_users: int) -> np.ndarray:
    return np.searchsorted(sorted_users, np.arange(n_users + 1), side="left")


def _ranges(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row index, flat index) of every element in the concatenated slices [starts[i], ends[i])."""
    lengths = ends - starts
    rows = np.repeat(np.arange(len(starts)), lengths)
    flat = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths) + np.repeat(starts, lengths)
    return rows, flat


def _unique_pairs_by_user(parts: Sequence[Interactions], extra_users: np.ndarray, extra_items: np.ndarray,
                          n_items: int) -> tuple[np.ndarray, np.ndarray]:
    """All (user, item) pairs of `parts` plus the extra ones, sorted by user, each pair once.

    A pair listed twice (say in train and test of a noisy custom split) must be excluded once, or the
    number of negatives would be undercounted.
    """
    users = np.concatenate([p.users for p in parts] + [extra_users])
    items = np.concatenate([p.items for p in parts] + [extra_items])
    keys = np.unique(users.astype(np.int64) * n_items + items)
    return keys // n_items, keys % n_items


def _user_blocks(cost_per_user: np.ndarray, budget: int) -> list[tuple[int, int]]:
    """Consecutive index ranges whose summed cost stays near `budget` (at least one user per block)."""
    cumulative = np.cumsum(cost_per_user)
    cuts = np.searchsorted(cumulative, np.arange(1, cumulative[-1] // budget + 2) * budget) if len(cumulative) else []
    bounds = np.unique(np.concatenate([[0], np.clip(cuts, 1, len(cost_per_user)), [len(cost_per_user)]]))
    return list(zip(bounds[:-1].tolist(), bounds[1:].tolist()))


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
    exclude: Sequence[Interactions],
    *,
    budget_elements: int | None = None,
    feedback: Feedback = QUIET,
    description: str = "ranking",
) -> TargetCounts:
    """Rank every target against all items the user has not interacted with in `exclude` or `targets`.

    `budget_elements`: scores per block (default: `default_budget` of the representations' device).
    """
    n_users, n_items = reps.users.shape[0], reps.items.shape[0]
    if n_items >= 1 << 24:
        raise HBenchError(f"full ranking supports fewer than 2^24 items, not {n_items} (its counts are float32 sums)")
    device = reps.items.device
    budget_elements = budget_elements or default_budget(device)
    t_users, t_items = _sorted_by_user(targets)
    ex_users, ex_items = _unique_pairs_by_user(exclude, t_users, t_items, n_items)
    ex_offsets = _csr_offsets(ex_users, n_users)
    t_offsets = _csr_offsets(t_users, n_users)
    n_neg_of_user = n_items - np.diff(ex_offsets)

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
            t_rows, t_flat = _ranges(t_offsets[block_users], t_offsets[block_users + 1])
            target_scores = scores[to_device(t_rows), to_device(t_items[t_flat])]
            e_rows, e_flat = _ranges(ex_offsets[block_users], ex_offsets[block_users + 1])
            scores[to_device(e_rows), to_device(ex_items[e_flat])] = -torch.inf
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
