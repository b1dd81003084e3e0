"""Image features of a prepared dataset: extracted from its image store, kept beside it, found again.

    from hbench.features.dataset import dataset_features, load_features
    artifact = dataset_features(dataset, "efficientnet_lite0")   # <dataset>/features/<encoder>-<key[:10]>/
    features = load_features(dataset)                              # float32 [n_items, dim]

The artifacts are those of the engine (`hbench.features.extract`); this module adds what a dataset
decides: which image each item has, what identifies those images (the cache key's source), where the
artifacts live and which one is current.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hbench.atomic import sha256_file, sha256_json
from hbench.datasets.images import INDEX as IMAGE_STORE
from hbench.datasets.store import PreparedDataset
from hbench.errors import HBenchError
from hbench.features.encoders import DEFAULT_ENCODER, Encoder, get_encoder
from hbench.features.extract import (
    MANIFEST,
    FeatureArtifact,
    artifact_name,
    extract_features,
    feature_key,
)
from hbench.ui import QUIET, Feedback


def image_items(dataset: PreparedDataset) -> list[tuple[int, Path | None]]:
    """(item, image path or None) for every item of a prepared dataset, from its image store.

    The store (see `hbench.datasets.images`) is `images.parquet` with one row per item (item, status in
    ok | missing | undecodable, file relative to the dataset directory, sha256...) and the files under
    `images/`; items whose status is not ok get no path. Without a `file` column, `images/<item>.jpg`.
    """
    store = dataset.path / IMAGE_STORE
    if not store.is_file():
        raise HBenchError(
            f"dataset {dataset.name!r} has no item images (no {IMAGE_STORE} in {dataset.path}); "
            "features can be extracted only for datasets prepared with images"
        )
    frame = pd.read_parquet(store)
    if not {"item", "status"} <= set(frame.columns):
        raise HBenchError(f"{store} is not an image index (it needs item and status columns)")
    files = frame["file"].astype(str) if "file" in frame.columns else frame["item"].map(lambda i: f"images/{i}.jpg")
    paths: list[Path | None] = [None] * dataset.n_items
    for item, status, name in zip(frame["item"].to_numpy(np.int64), frame["status"].astype(str), files, strict=True):
        if not 0 <= item < dataset.n_items:
            raise HBenchError(f"{store} lists item {item}, but {dataset.name} has {dataset.n_items} items")
        if status == "ok" and name:
            paths[item] = dataset.path / name
    return list(enumerate(paths))


def dataset_source(dataset: PreparedDataset) -> dict[str, Any]:
    """What identifies a prepared dataset's images: its item list and its image store (with every image's
    SHA-256), by hash."""
    store = dataset.path / IMAGE_STORE
    if not store.is_file():
        image_items(dataset)  # raises the explanation
    files = dataset.manifest.get("files", {})
    items_hash = files.get("items.parquet") or sha256_file(dataset.path / "items.parquet")
    return {
        "dataset": dataset.name,
        "n_items": dataset.n_items,
        "items_sha256": items_hash,
        "images_sha256": sha256_file(store),
    }


def features_root(dataset: PreparedDataset) -> Path:
    return dataset.path / "features"


def dataset_features(
    dataset: PreparedDataset,
    encoder: str | Encoder | None = None,
    *,
    weights: Path | str | None = None,
    batch_size: int = 64,
    device: str | None = "auto",
    workers: int | None = None,
    force: bool = False,
    feedback: Feedback = QUIET,
    on_batch: Callable[[int], None] | None = None,
) -> FeatureArtifact:
    """Extract (or find cached) features of every item image of `dataset` into
    `<dataset>/features/<encoder>-<key[:10]>/`; `encoder` is a name (default efficientnet_lite0) or an
    `Encoder` already built."""
    items = image_items(dataset)
    source = dataset_source(dataset)
    if isinstance(encoder, str) or encoder is None:
        encoder = get_encoder(encoder or DEFAULT_ENCODER, weights)
    elif weights is not None:
        raise HBenchError("weights apply to an encoder name, not to an encoder already built")
    key = feature_key(sha256_json(source), encoder, dataset.n_items)
    out_dir = features_root(dataset) / artifact_name(encoder.name, key)
    return extract_features(
        items,
        encoder,
        out_dir,
        n_items=dataset.n_items,
        source=source,
        batch_size=batch_size,
        device=device,
        workers=workers,
        force=force,
        feedback=feedback,
        on_batch=on_batch,
    )


def find_features(dataset: PreparedDataset, encoder: str | None = None) -> FeatureArtifact:
    """The newest up-to-date feature artifact of `dataset` (for `encoder`, or the only encoder there is)."""
    current = sha256_json(dataset_source(dataset))
    found: list[FeatureArtifact] = []
    stale = 0
    root = features_root(dataset)
    for manifest_path in sorted(root.glob(f"*/{MANIFEST}")) if root.is_dir() else []:
        try:
            manifest = json.loads(manifest_path.read_text())
            name = manifest["encoder"]["name"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if encoder is not None and name != encoder:
            continue
        if manifest.get("source_hash") != current:
            stale += 1
            continue
        found.append(FeatureArtifact(manifest_path.parent, manifest))
    command = f"hbench features {dataset.name} --encoder {encoder or DEFAULT_ENCODER}"
    if not found:
        what = f"{encoder} features" if encoder else "features"
        why = " (those there are were made from other images)" if stale else ""
        raise HBenchError(f"no {what} for dataset {dataset.name!r}{why}; run `{command}` first")
    names = sorted({artifact.encoder for artifact in found})
    if encoder is None and len(names) > 1:
        raise HBenchError(f"dataset {dataset.name!r} has features of several encoders ({', '.join(names)}); name one")
    return max(found, key=lambda artifact: str(artifact.manifest.get("created", "")))


def load_features(dataset: PreparedDataset, encoder: str | None = None) -> np.ndarray:
    """The `[n_items, dim]` float32 features of `dataset` (zero rows for items without an image)."""
    return find_features(dataset, encoder).features()
