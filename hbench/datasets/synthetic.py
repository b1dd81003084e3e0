"""A small synthetic dataset with a known hierarchy, generated from a seed (no network, no files).

Items sit in a category → sub-category → item tree; item popularity within a sub-category follows a
Zipf law. Each user has a favourite sub-category: most of their interactions fall in it, some in sibling
sub-categories of the same category, a few anywhere. Hierarchies like this are what hyperbolic models
are meant to embed well, so the demo shows the whole pipeline on data where geometry can matter.
The data is synthetic and says so everywhere it is shown.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from hbench.datasets.registry import RawData


@dataclass(frozen=True)
class HierarchySpec:
    categories: int = 4
    subcategories: int = 4  # per category
    items_per_subcategory: int = 30
    users: int = 600
    min_interactions: int = 12
    max_interactions: int = 30
    p_favourite: float = 0.7
    p_sibling: float = 0.2  # the rest is uniform over all items
    zipf_exponent: float = 1.1
    seed: int = 20240

    @property
    def n_items(self) -> int:
        return self.categories * self.subcategories * self.items_per_subcategory


def item_hierarchy(spec: HierarchySpec) -> pd.DataFrame:
    """item, category, subcategory (global sub-category id) of every item."""
    item = np.arange(spec.n_items)
    sub = item // spec.items_per_subcategory
    return pd.DataFrame({"item": item, "category": sub // spec.subcategories, "subcategory": sub})


def generate_interactions(spec: HierarchySpec) -> pd.DataFrame:
    """user, item, timestamp of a synthetic implicit-feedback log (distinct items per user)."""
    rng = np.random.default_rng(spec.seed)
    per_sub = spec.items_per_subcategory
    n_subs = spec.categories * spec.subcategories
    zipf = 1.0 / np.arange(1, per_sub + 1) ** spec.zipf_exponent
    zipf /= zipf.sum()
    rows = []
    for user in range(spec.users):
        favourite = rng.integers(n_subs)
        siblings = [s for s in range(favourite - favourite % spec.subcategories,
                                     favourite - favourite % spec.subcategories + spec.subcategories) if s != favourite]
        n = rng.integers(spec.min_interactions, spec.max_interactions + 1)
        chosen: set[int] = set()
        while len(chosen) < n:
            draw = rng.random()
            if draw < spec.p_favourite:
                item = favourite * per_sub + rng.choice(per_sub, p=zipf)
            elif draw < spec.p_favourite + spec.p_sibling:
                item = rng.choice(siblings) * per_sub + rng.choice(per_sub, p=zipf)
            else:
                item = rng.integers(spec.n_items)
            chosen.add(int(item))
        for t, item in enumerate(rng.permutation(sorted(chosen))):
            rows.append((user, int(item), 1_600_000_000 + 3600 * t))
    return pd.DataFrame(rows, columns=["user", "item", "timestamp"])


def read_synthetic(files: Mapping[str, Path]) -> RawData:
    """Reader of the `synthetic-fashion` dataset: it has no raw files, the data comes from the seed."""
    return RawData(interactions=generate_interactions(HierarchySpec()))
