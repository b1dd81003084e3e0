"""Per-user ranking metrics from per-target counts.

Evaluation reduces every (user, target item) pair to one number, `n_ge`: how many of the user's
negative candidates score **greater than or equal to** the target. Everything else follows from it.

Tie rule (pessimistic, used everywhere): a negative scored exactly like the target ranks above it, so a
model that scores everything equally gets the worst rank, never a lucky one. Among a user's own targets
ties are broken arbitrarily but consistently: the k-th best target (k = 0, 1, ...) sits at

    position = 1 + k + n_ge

(all better targets and all negatives scoring at least as high come first). With one target per user
this is the familiar rank = 1 + #{negatives ≥ target}.

Per user u with targets T_u, positions p_t and n_neg negatives:
    HR@K        = 1[min_t p_t ≤ K]
    Recall@K    = |{t : p_t ≤ K}| / |T_u|
    Precision@K = |{t : p_t ≤ K}| / K
    nDCG@K      = Σ_{t: p_t ≤ K} 1/log2(p_t + 1)  /  Σ_{i=1}^{min(|T_u|, K)} 1/log2(i + 1)
    MRR         = 1 / min_t p_t
    AUC         = mean_t (n_neg − n_ge_t) / n_neg   (share of negatives scored strictly below the target)
Table values are means over users (each user counts once).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

RANK_METRICS = ("hr", "recall", "precision", "ndcg")


def per_user_metrics(
    users: np.ndarray,
    n_ge: np.ndarray,
    n_neg: np.ndarray,
    ks: Sequence[int],
    metrics: Sequence[str],
) -> pd.DataFrame:
    """Aggregate per-target counts (parallel arrays) into one row per user.

    `metrics` names the columns to produce: any of `hr@K`, `recall@K`, `precision@K`, `ndcg@K`
    (for every K in `ks`), `mrr`, `auc`. Rows are sorted by user id.
    """
    users = np.asarray(users, dtype=np.int64)
    n_ge = np.asarray(n_ge, dtype=np.int64)
    n_neg = np.asarray(n_neg, dtype=np.int64)
    # Order each user's targets best first: fewer negatives above means a higher score.
    order = np.lexsort((n_ge, users))
    users, n_ge, n_neg = users[order], n_ge[order], n_neg[order]
    unique_users, first, n_targets = np.unique(users, return_index=True, return_counts=True)
    k_within = np.arange(len(users)) - np.repeat(first, n_targets)
    position = 1 + k_within + n_ge

    def per_user_sum(values: np.ndarray) -> np.ndarray:
        return np.add.reduceat(values, first) if len(values) else np.zeros(0)

    out: dict[str, np.ndarray] = {"user": unique_users, "n_targets": n_targets}
    best_position = position[first]  # targets are sorted best first within each user
    for k in ks:
        hit = (position <= k).astype(np.float64)
        hits = per_user_sum(hit)
        gains = per_user_sum(hit / np.log2(position + 1.0))
        ideal = np.cumsum(1.0 / np.log2(np.arange(2, k + 2)))[np.minimum(n_targets, k) - 1]
        values = {
            f"hr@{k}": (best_position <= k).astype(np.float64),
            f"recall@{k}": hits / n_targets,
            f"precision@{k}": hits / k,
            f"ndcg@{k}": gains / ideal,
        }
        for name, value in values.items():
            if name in metrics:
                out[name] = value
    if "mrr" in metrics:
        out["mrr"] = 1.0 / best_position
    if "auc" in metrics:
        out["auc"] = per_user_sum((n_neg - n_ge) / np.maximum(n_neg, 1)) / n_targets
    frame = pd.DataFrame(out)
    missing = [m for m in metrics if m not in frame.columns]
    if missing:
        raise ValueError(f"unknown metric(s) {missing}")
    return frame


_AT_K = ("hr", "recall", "precision", "ndcg")  # the order `per_user_metrics` writes the metrics of one cut-off


def metric_order(name: str) -> tuple[int, int, str]:
    """A sort key that puts metric names in the order `per_user_metrics` writes them (by cut-off, HR, recall,
    precision, nDCG at each; then MRR, AUC), so that a summary read back from JSON (sorted by name) prints as a
    fresh one does."""
    family, _, k = name.partition("@")
    if k.isdigit() and family in _AT_K:
        return (0, int(k), f"{_AT_K.index(family)}")
    return (1, ("mrr", "auc").index(name) if name in ("mrr", "auc") else 2, name)


def summarise(per_user: pd.DataFrame) -> dict[str, float]:
    """User-averaged value of every metric column."""
    return {c: float(per_user[c].mean()) for c in per_user.columns if c not in ("user", "n_targets")}
