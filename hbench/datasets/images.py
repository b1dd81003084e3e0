"""The image store of a prepared dataset: item images keyed by internal item id, with their hashes.

Layout inside a prepared dataset directory::

    images/<item>.jpg   the source bytes of every image that decodes, unchanged (never re-encoded); <item> is
                        the internal item id, the suffix that of the decoded format (.jpg, .png, .webp...)
    images.parquet      one row per internal item id 0..n_items-1: item, status (ok / missing / undecodable),
                        file (relative to the dataset directory, empty unless ok), sha256 and bytes of the
                        source bytes (also for undecodable ones), format, width, height

The manifest hashes `images.parquet` with the other files, and since it lists every image's SHA-256 that
one hash pins them all; the manifest's `images` entry holds the counts. An item whose image is missing or
undecodable stays in the dataset: it is counted, named in a warning and marked in the index, never dropped.

Why a folder of files rather than one indexed archive: any reader (PIL, torchvision, a DataLoader with
worker processes) opens `path_of(item)` directly, with no shared file handle and no custom format; writing
stays inside the prepared directory's atomic rename; and checking a reused store costs one `stat` per file
instead of re-hashing gigabytes. File systems index large folders, so even Amazon Women's 347K images need
no sub-folders.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hbench.atomic import sha256_file, sha256_json
from hbench.errors import HBenchError
from hbench.ui import Feedback

IMAGE_DIR = "images"
INDEX = "images.parquet"
STATUSES = ("ok", "missing", "undecodable")
_SUFFIXES = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "GIF": ".gif", "BMP": ".bmp", "TIFF": ".tif"}
_EXAMPLES = 5


def image_key(original_id: Any) -> str:
    """The text an item's image is matched by: its original id, integer-like text as a plain integer.

    A CSV id `007` is read by pandas as the integer 7 while its image is named `007.jpg`: both match as `7`.
    """
    text = str(original_id).strip()
    return str(int(text)) if text.isascii() and text.isdigit() else text


def item_keys(item_ids: Iterable[Any]) -> dict[str, int]:
    """`image_key` of every original item id -> its internal id (the position in `item_ids`)."""
    originals = list(item_ids)
    keys: dict[str, int] = {}
    for internal, original in enumerate(originals):
        key = image_key(original)
        if key in keys:
            raise HBenchError(
                f"items {originals[keys[key]]!r} and {original!r} cannot be told apart by image name; rename one"
            )
        keys[key] = internal
    return keys


def read_image_files(paths: Mapping[Any, Path]) -> Iterator[tuple[Any, bytes | None]]:
    """An image source (see `RawData.images`) reading one file at a time; a file that is not there is None."""
    for item, path in paths.items():
        try:
            data = Path(path).read_bytes()
        except FileNotFoundError:
            data = None
        except OSError as exc:
            raise HBenchError(f"cannot read image {path}: {exc.strerror or exc}") from None
        yield item, data


def image_files_fingerprint(paths: Mapping[Any, Path]) -> str:
    """A cheap identity of a set of image files for a cache key: item, path, size and modification time.

    The contents are hashed into `images.parquet` when the store is written; hashing them again on every
    `prepare` just to find the dataset unchanged would read every image.
    """
    listing = []
    for item, path in sorted(paths.items(), key=lambda pair: image_key(pair[0])):
        try:
            stat = Path(path).stat()
            listing.append([image_key(item), str(path), stat.st_size, stat.st_mtime_ns])
        except OSError:
            listing.append([image_key(item), str(path), None, None])
    return sha256_json(listing)


# --- checking and writing --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageInfo:
    format: str
    width: int
    height: int


def inspect_image(data: bytes) -> ImageInfo | None:
    """The format and size of an encoded image, or None when it does not decode to the end.

    Opening reads only the header, and many damaged files (a truncated JPEG) open fine, so every image is
    decoded in full: JPEGs in draft mode at 1/8 scale, which still reads every byte but costs a fraction of
    a full decode and of its memory. One image at a time.
    """
    # Pillow loads only for datasets with images.
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            info = ImageInfo(str(image.format), int(image.size[0]), int(image.size[1]))
            image.verify()  # structure and checksums (PNG CRCs) where the format has them
        with Image.open(io.BytesIO(data)) as image:
            image.draft(image.mode, (max(1, info.width // 8), max(1, info.height // 8)))
            image.load()
    except Exception:  # noqa: BLE001 - PIL raises OSError, SyntaxError, ValueError, struct.error... on bad data
        return None
    return info


def write_image_store(
    directory: Path, items: Mapping[str, int], source: Iterable[tuple[Any, bytes | None]], feedback: Feedback
) -> dict[str, Any]:
    """Write `images/` and `images.parquet` into the prepared dataset `directory`; return what the manifest
    records (counts per status, images that belong to no item, stored bytes, the index's SHA-256).

    `items` maps the `image_key` of every dataset item's original id to its internal id 0..n-1 (see
    `item_keys`). `source` yields (original id, bytes or None) pairs (see `RawData.images`): each image is
    checked, written and let go of before the next one is asked for.
    """
    n = len(items)
    columns: dict[str, np.ndarray] = {
        "item": np.arange(n, dtype=np.int32),
        "status": np.full(n, "missing", dtype=object),
        "file": np.full(n, "", dtype=object),
        "sha256": np.full(n, "", dtype=object),
        "bytes": np.zeros(n, dtype=np.int64),
        "format": np.full(n, "", dtype=object),
        "width": np.zeros(n, dtype=np.int32),
        "height": np.zeros(n, dtype=np.int32),
    }
    (directory / IMAGE_DIR).mkdir(parents=True, exist_ok=True)
    seen = np.zeros(n, dtype=bool)
    unused = 0
    with feedback.progress("storing images", total=n, unit="items") as task:
        for original, data in source:
            item = items.get(image_key(original))
            if item is None:
                unused += 1
                continue
            if seen[item]:
                raise HBenchError(f"the image source names item {original!r} twice")
            seen[item] = True
            task.advance()
            if data:
                _store_one(directory, item, data, columns)
    frame = pd.DataFrame(columns)
    frame.to_parquet(directory / INDEX, index=False)
    summary: dict[str, Any] = {"index": INDEX, "index_sha256": sha256_file(directory / INDEX)}
    summary |= {status: int((columns["status"] == status).sum()) for status in STATUSES}
    summary |= {"unused": unused, "bytes": int(columns["bytes"][columns["status"] == "ok"].sum())}
    _report(summary, columns["status"], items, feedback)
    return summary


def _store_one(directory: Path, item: int, data: bytes, columns: dict[str, np.ndarray]) -> None:
    """Check one image and write it as `images/<item>.<suffix>` when it decodes; record it either way."""
    columns["sha256"][item] = hashlib.sha256(data).hexdigest()
    columns["bytes"][item] = len(data)
    info = inspect_image(data)
    if info is None:
        columns["status"][item] = "undecodable"
        return
    name = f"{IMAGE_DIR}/{item}{_SUFFIXES.get(info.format, '.' + info.format.lower())}"
    (directory / name).write_bytes(data)
    columns["status"][item], columns["file"][item] = "ok", name
    columns["format"][item], columns["width"][item], columns["height"][item] = info.format, info.width, info.height


def _report(summary: dict[str, Any], status: np.ndarray, items: Mapping[str, int], feedback: Feedback) -> None:
    """One log line, and a warning naming a few items for each kind of missing image."""
    feedback.log(
        f"  images: {summary['ok']:,} stored ({summary['bytes'] / 1e6:,.1f} MB), {summary['missing']:,} missing, "
        f"{summary['undecodable']:,} undecodable"
    )
    originals = {internal: key for key, internal in items.items()}
    for kind, what in (("missing", "have no image"), ("undecodable", "have an image that does not decode")):
        bad = np.flatnonzero(status == kind)
        if len(bad):
            examples = ", ".join(originals[int(i)] for i in bad[:_EXAMPLES]) + (", ..." if len(bad) > _EXAMPLES else "")
            feedback.warn(
                f"{len(bad):,} of {len(status):,} items {what} (original ids {examples}); they stay in the "
                f"dataset, marked {kind!r} in {INDEX}"
            )
    if summary["unused"]:
        feedback.log(f"  not stored: images of {summary['unused']:,} ids that are no item of the dataset")


# --- reading ---------------------------------------------------------------------------------------------


class ImageStore:
    """The image store of a prepared dataset directory (see the module docstring for the layout)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        if not self.exists(self.path):
            raise HBenchError(f"{self.path} has no item images (no {INDEX}); this dataset was prepared without them")
        # One row per internal item id: item, status, file, sha256, bytes, format, width, height.
        self.status: pd.DataFrame = pd.read_parquet(self.path / INDEX)
        self._files = self.status["file"].to_numpy()

    @staticmethod
    def exists(path: Path | str) -> bool:
        """Whether the prepared dataset at `path` has an image store."""
        return (Path(path) / INDEX).is_file()

    def __len__(self) -> int:
        return len(self._files)

    def path_of(self, item: int) -> Path | None:
        """The image file of internal item `item`, or None when its image is missing or undecodable."""
        if not 0 <= item < len(self._files):
            raise IndexError(f"item {item} is not in 0..{len(self._files) - 1}")
        name = self._files[item]
        return self.path / name if name else None

    def available_items(self) -> np.ndarray:
        """Internal ids of the items with a stored image, in increasing order."""
        return np.flatnonzero(self.status["status"].to_numpy() == "ok")

    def counts(self) -> dict[str, int]:
        """Items per status (ok / missing / undecodable)."""
        values = self.status["status"].to_numpy()
        return {status: int((values == status).sum()) for status in STATUSES}

    def verify(self, *, content: bool = False) -> None:
        """Raise HBenchError unless every stored image is there with its recorded size (and, with `content`,
        its recorded SHA-256, which reads every image)."""
        ok = self.status[self.status["status"] == "ok"]
        for name, size, digest in zip(ok["file"], ok["bytes"], ok["sha256"], strict=True):
            path = self.path / name
            if not path.is_file() or path.stat().st_size != size or (content and sha256_file(path) != digest):
                raise HBenchError(f"image {path} is missing or changed since the dataset was prepared")
