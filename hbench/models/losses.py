"""The metric-learning hinge that CML and HyperML share, parameterised by the distance.

Both models rank by a distance (squared Euclidean for CML, Poincaré for HyperML) and train the same loss on
it; only the distance differs. So that `cml` and `hyperml` can be run with *the same* loss (issue 34:
comparing twins, only the geometry changed), the loss and its options live here once, and each model hands
in its own squared distances. For a pair (u, i) with U sampled negatives j₁ … j_U and
h_k = [m + d(u, i)² − d(u, j_k)²]_+:

    negative = "each"     ℓ(u, i) = (1/U) Σ_k h_k           (every negative; the default)
    negative = "closest"  ℓ(u, i) = max_k h_k              (the closest negative only, as CML's authors' code)
    rank_weight           ℓ(u, i) · ln(1 + n_items · M / U),  M = #{k : h_k > 0}

    L = mean over the batch's pairs of ℓ(u, i).

The rank weight is CML's WARP estimate: M of U uniform draws violate the margin, so about n_items · M / U
items rank above i, and pairs whose positive ranks low weigh more (a constant of the step: no gradient flows
through M). The defaults (each, no weight) are the plain one-negative hinge both models were recorded with.
"""

from __future__ import annotations

from typing import Any, Literal

import torch

from hbench.models.base import option

NegativeChoice = Literal["each", "closest"]


def negative_option() -> Any:
    """The `--negative` option of a model trained with `metric_hinge` (one declaration for every such model).

    Added after runs of CML and HyperML were recorded: its default is the loss they trained with."""
    return option("each", "hinge on every sampled negative (mean), or on the closest of them only (the authors' code)",
                  added_later=True)


def rank_weight_option() -> Any:
    """The `--rank-weight` option of a model trained with `metric_hinge` (see `negative_option`)."""
    return option(False, "weight each pair by ln(1 + n_items · violators / negatives) (WARP estimate)",
                  added_later=True)


def metric_hinge(positive: torch.Tensor, negatives: torch.Tensor, margin: float, *, negative: NegativeChoice,
                 rank_weight: bool, n_items: int) -> torch.Tensor:
    """The mean over the batch of ℓ(u, i) (module docstring) from squared distances: `positive` [b, 1] to
    the positive item, `negatives` [b, U] to the sampled negatives, in whatever geometry the model has."""
    per_negative = torch.relu(margin + positive - negatives)  # [b, U]
    if not rank_weight and negative == "each":
        # The mean over pairs of the mean over negatives, taken at once: U is the same for every pair, so it
        # is the same number, and the reduction HyperML's recorded runs used (bit for bit).
        return per_negative.mean()
    per_pair = per_negative.max(dim=1).values if negative == "closest" else per_negative.mean(dim=1)
    if rank_weight:
        violators = (per_negative > 0).sum(dim=1).to(per_pair.dtype)
        per_pair = per_pair * torch.log1p(n_items * violators / per_negative.shape[1])
    return per_pair.mean()
