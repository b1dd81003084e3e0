"""A small synthetic dataset with a known hierarchy, generated from a seed (no network, no files).

Items sit in a category → sub-category → item tree; item popularity within a sub-category follows a
Zipf law. Each user has a favourite sub-category: most of their interactions fall in it, some in sibling
sub-categories of the same category, a few anywhere. Hierarchies like this are what hyperbolic models
are meant to embed well, so the demo shows the whole pipeline on data where geometry can matter.

Every item also gets a procedurally drawn picture whose look follows its place in the hierarchy: the
category sets the garment's silhouette, the sub-category its colour, and the item a pattern and a small
jitter. An image encoder therefore sees the hierarchy, as it would in a real fashion catalogue.
The data is synthetic and says so everywhere it is shown.
"""

from __future__ import annotations

import colorsys
import io
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from hbench.datasets.spec import RawData


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


# Sub-category colours: evenly spaced hues, so siblings differ and every sub-category is recognisable.
def _colour(sub: int, n_subs: int, rng: np.random.Generator) -> tuple[int, int, int]:
    hue = (sub / n_subs + rng.normal(0, 0.01)) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.75, 0.85)
    return int(r * 255), int(g * 255), int(b * 255)


def _silhouette(category: int, size: int) -> list[tuple[float, float]]:
    """A garment outline per category: t-shirt, dress, trousers, bag, then repeating with a twist."""
    s = size
    shapes = [
        [(0.3, 0.15), (0.7, 0.15), (0.95, 0.35), (0.8, 0.45), (0.72, 0.38), (0.72, 0.9), (0.28, 0.9), (0.28, 0.38), (0.2, 0.45), (0.05, 0.35)],
        [(0.4, 0.1), (0.6, 0.1), (0.65, 0.4), (0.85, 0.92), (0.15, 0.92), (0.35, 0.4)],
        [(0.3, 0.1), (0.7, 0.1), (0.75, 0.92), (0.55, 0.92), (0.5, 0.4), (0.45, 0.92), (0.25, 0.92)],
        [(0.2, 0.4), (0.8, 0.4), (0.85, 0.88), (0.15, 0.88)],
    ]
    outline = shapes[category % len(shapes)]
    if category >= len(shapes):
        outline = [(1 - x, y) for x, y in outline]
    return [(x * s, y * s) for x, y in outline]


def render_item_image(item: int, spec: HierarchySpec, size: int = 128) -> bytes:
    """JPEG bytes of item `item`'s picture (deterministic in the item id and the spec's seed)."""
    # Pillow loads only when a picture is drawn, not to read the interactions.
    from PIL import Image, ImageDraw

    rng = np.random.default_rng([spec.seed, item])
    sub = item // spec.items_per_subcategory
    category = sub // spec.subcategories
    background = tuple(int(v) for v in rng.integers(225, 256, 3))
    image = Image.new("RGB", (size, size), background)
    draw = ImageDraw.Draw(image)
    colour = _colour(sub, spec.categories * spec.subcategories, rng)
    jitter = rng.normal(0, size * 0.02, 2)
    outline = [(x + jitter[0], y + jitter[1]) for x, y in _silhouette(category, size)]
    draw.polygon(outline, fill=colour, outline=(40, 40, 40))
    pattern = int(rng.integers(3))  # stripes, dots or plain: variation within a sub-category
    dark = tuple(max(0, c - 70) for c in colour)
    if pattern == 0:
        for y in range(int(size * 0.3), int(size * 0.9), 10):
            draw.line([(size * 0.3, y), (size * 0.7, y)], fill=dark, width=3)
    elif pattern == 1:
        for _ in range(12):
            x, y = rng.uniform(0.35, 0.65) * size, rng.uniform(0.45, 0.85) * size
            draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=dark)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def generate_images(spec: HierarchySpec) -> Iterator[tuple[int, bytes]]:
    """(item, JPEG bytes) for every item, drawn one at a time."""
    for item in range(spec.n_items):
        yield item, render_item_image(item, spec)


def read_synthetic(files: Mapping[str, Path]) -> RawData:
    """Reader of the `synthetic-fashion` dataset: it has no raw files, the data comes from the seed."""
    spec = HierarchySpec()
    return RawData(interactions=generate_interactions(spec), images=generate_images(spec))
