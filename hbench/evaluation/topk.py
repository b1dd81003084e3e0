"""Ranked lists: each user's best-scored items, for recommendations and exported run files.

Users are scored in blocks against all items (one `score_matrix` product per block, as full-ranking
evaluation does), excluded items (a `UserItemGraph`: the user's training items, say) are set to −inf, and each row is sorted.
The sort is stable on the item index, so equal scores list the lower internal item id first (evaluation
itself treats ties pessimistically; with continuous scores ties do not occur in practice).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from hbench.datasets.graph import UserItemGraph
from hbench.geometry import Representations

BLOCK_SCORES = 1 << 24  # scores held at once per block (64 MiB of float32)


def top_k(reps: Representations, users: np.ndarray, exclude: UserItemGraph, k: int) -> pd.DataFrame:
    """The `k` best items of each of `users` (internal ids) that `exclude` does not pair with the user
    (recommendations after training: `dataset.train_graph`; a test run file: `dataset.pairs_through("valid")`).

    A long frame: user, rank (1 = best), item, score (the geometry's ranking score, higher is better);
    a user with fewer than `k` allowed items gets fewer rows.
    """
    n_items = reps.items.shape[0]
    users = np.asarray(users, dtype=np.int64)
    cache = reps.geometry.item_cache(reps.items)
    block = max(1, BLOCK_SCORES // max(n_items, 1))
    k = min(k, n_items)
    frames = []
    with torch.no_grad():
        for lo in range(0, len(users), block):
            block_users = users[lo:lo + block]
            scores = reps.geometry.score_matrix(reps.users[torch.from_numpy(block_users).to(reps.users.device)], cache)
            rows, edges = exclude.edges_of(block_users)
            device = scores.device
            scores[torch.from_numpy(rows).to(device), torch.from_numpy(exclude.items[edges]).to(device)] = -torch.inf
            values, items = torch.sort(scores, dim=1, descending=True, stable=True)
            values, items = values[:, :k].cpu().numpy(), items[:, :k].cpu().numpy()
            keep = np.isfinite(values)
            frames.append(pd.DataFrame({
                "user": np.repeat(block_users, k)[keep.ravel()],
                "rank": np.tile(np.arange(1, k + 1), len(block_users))[keep.ravel()],
                "item": items[keep],
                "score": values[keep].astype(np.float64),
            }))
    columns = {"user": np.int64, "rank": np.int64, "item": np.int64, "score": np.float64}
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(columns)).astype(columns)


def rank_candidates(reps: Representations, users: np.ndarray, candidates: np.ndarray) -> pd.DataFrame:
    """Each user's own candidate items (`candidates[i]` for `users[i]`, e.g. a target and its sampled
    negatives) sorted by the model's score; the same long frame as `top_k`."""
    users = np.asarray(users, dtype=np.int64)
    device = reps.users.device
    with torch.no_grad():
        u = reps.users[torch.from_numpy(users).to(device)]
        v = reps.items[torch.from_numpy(candidates).long().to(device)]
        scores = reps.geometry.score_candidates(u, v)
        values, order = torch.sort(scores, dim=1, descending=True, stable=True)
    order = order.cpu().numpy()
    n = candidates.shape[1]
    return pd.DataFrame({
        "user": np.repeat(users, n),
        "rank": np.tile(np.arange(1, n + 1), len(users)),
        "item": np.take_along_axis(candidates, order, axis=1).ravel().astype(np.int64),
        "score": values.cpu().numpy().ravel().astype(np.float64),
    })
