"""What a dataset is: where its raw files come from, how to read them and how to prepare them.

These are the types only. Every dataset is declared once, as a `DatasetSpec`, in `hbench.datasets.catalog`,
which also holds the lookups (`get_dataset`, `list_datasets`, `dataset_names`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from hbench.paths import check_slug
from hbench.protocols import ProtocolName

SplitKind = Literal["loo", "ratio", "fixed"]
SplitOrder = Literal["temporal", "random"]
# (original item id, image bytes or None where the source has no image for that item); see RawData.images.
ImageSource = Iterable[tuple[Any, bytes | None]]


@dataclass(frozen=True)
class RawFile:
    """One file a dataset is built from.

    `name` is the file name on disk, in a download cache and in an offline mirror. `sha256` is pinned
    when the bytes are known; otherwise the hash is recorded on first download and verified afterwards.
    For an archive (`.zip`), `members` maps each member the reader needs (path inside the archive) to its
    pinned SHA-256 or None; a mirror may hold those members extracted instead of the archive.
    """

    name: str
    url: str
    sha256: str | None = None
    members: Mapping[str, str | None] = field(default_factory=dict)
    size_hint: str = ""


@dataclass(frozen=True)
class RawData:
    """What a format reader returns, with original (string or int) ids.

    Either `interactions` (columns user, item and optionally rating, timestamp, order) for hbench to
    split, or `fixed_split` (train/valid/test frames with the same columns; valid may be None) kept as given.

    `images`, for datasets with item images, is consumed once, after preprocessing, while the prepared
    dataset's image store is written (`hbench.datasets.images`). It must produce each image's bytes only
    when asked (read a file, or take them out of the structure the reader loaded) and keep no reference
    once they are yielded: preparing then never holds a second copy of all images. Items are matched by
    original id (integers and their decimal text are the same item); dataset items it never names, or
    names with None or empty bytes, count as `missing`; ids that are not dataset items are ignored.
    """

    interactions: pd.DataFrame | None = None
    fixed_split: Mapping[str, pd.DataFrame | None] | None = None
    images: ImageSource | None = None


@dataclass(frozen=True)
class PrepareOptions:
    """How raw interactions become a split. Every dataset has its own defaults; the CLI can override.

    implicit_threshold: keep interactions with rating >= threshold (None keeps all).
    user_k / item_k: iterative k-core (0 disables).
    split: `loo` (one validation and one test item per user), `ratio` (per-user fractions), `fixed`
      (the split that ships with the data; when it has no validation part, one random training item per
      user with at least two becomes validation).
    order: `temporal` (timestamps or sequence order) or `random` (seeded).
    negatives: sampled candidates per user for sampled protocols (0 stores none).
    protocol: default evaluation protocol for this dataset (an entry of `hbench.protocols.PROTOCOLS`).
    dedup: keep only the earliest interaction of each (user, item) pair (within each part of a shipped
      split). Off only for data whose published statistics count repeated consumption (S3Rec's Yelp).
    """

    implicit_threshold: float | None = None
    user_k: int = 0
    item_k: int = 0
    split: SplitKind = "loo"
    order: SplitOrder = "temporal"
    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)
    negatives: int = 100
    seed: int = 0
    protocol: ProtocolName = "loo"
    dedup: bool = True


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    title: str
    raw_files: tuple[RawFile, ...]
    reader: Callable[[Mapping[str, Path]], RawData]
    defaults: PrepareOptions
    homepage: str = ""
    citation: str = ""
    # Folder names under which an offline mirror may keep this dataset's files (besides the top level).
    mirror_dirs: tuple[str, ...] = ()
    # Statistics the source publishes (users, items, interactions), shown beside ours by `hbench info`.
    published: Mapping[str, int] = field(default_factory=dict)
    notes: str = ""


def check_name(name: str) -> str:
    """A dataset name is also a folder name."""
    return check_slug(name, "dataset name")
