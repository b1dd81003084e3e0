"""Most popular: every user gets the items ranked by training popularity. No training; the floor of a table."""

from __future__ import annotations

import numpy as np
import torch

from hbench.geometry import DotProduct, Representations
from hbench.models.base import ModelContext, NoOptions, Recommender
from hbench.models.registry import register_model


@register_model
class Popularity(Recommender):
    name = "pop"
    family = "euclidean"
    summary = "most popular items (training interaction counts); no training"
    trainable = False

    def __init__(self, context: ModelContext, options: NoOptions) -> None:
        super().__init__(context, options)
        counts = np.bincount(context.train.items, minlength=context.n_items).astype(np.float32)
        self.register_buffer("item_counts", torch.from_numpy(counts).unsqueeze(1))
        self.register_buffer("user_ones", torch.ones(context.n_users, 1))

    def representations(self) -> Representations:
        return Representations(self.user_ones, self.item_counts, DotProduct())
