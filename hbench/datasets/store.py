"""The prepared-dataset artifact: columnar split files, sampled candidates and a manifest.

Layout of a prepared dataset directory::

    manifest.json          name, prepare options, source hashes, statistics, hash of every file below
    train.parquet          user:int32, item:int32 (+ timestamp:int64 when the source has one)
    valid.parquet          same columns (may be empty when a protocol needs no validation)
    test.parquet           same columns
    valid_negatives.npy    int32 [n_users, n_negatives]: sampled candidates (sampled protocols only)
    test_negatives.npy     int32 [n_users, n_negatives]
    users.parquet          original user id (string) of every internal id 0..n_users-1
    items.parquet          original item id (string) of every internal id 0..n_items-1

Internal ids are dense 0-based integers. `split_hash` (in the manifest) hashes the split and candidate
files: two runs may share a table or a significance test only when their split hashes are equal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from hbench.atomic import read_json, sha256_file, sha256_json, write_json
from hbench.datasets.graph import UserItemGraph
from hbench.errors import HBenchError
from hbench.paths import check_slug

Stage = Literal["train", "valid", "test"]
STAGES: tuple[str, ...] = ("train", "valid", "test")

MANIFEST = "manifest.json"
SPLIT_FILES = ("train.parquet", "valid.parquet", "test.parquet")
NEGATIVE_FILES = ("valid_negatives.npy", "test_negatives.npy")
# File name -> (size, mtime, ctime, inode) and hash at its last verification; ctime cannot be set back by
# the user, so a file rewritten in place is always re-hashed.
VERIFIED = ".verified.json"


def _inside(name: str) -> bool:
    parts = Path(name).parts
    return bool(parts) and not Path(name).is_absolute() and ".." not in parts


def check_files(directory: Path, files: dict[str, str], name: str, *, rehash: bool = False) -> None:
    """Every file of a prepared dataset has the hash its manifest records (the split a run is tested on
    is the split its split hash names); only files whose stat changed since their last check are re-hashed."""
    cache_path = directory / VERIFIED
    try:
        cache = {} if rehash or not cache_path.is_file() else read_json(cache_path)
    except HBenchError:
        cache = {}  # a damaged cache only costs re-hashing
    updated = dict(cache)
    for file_name, expected in sorted(files.items()):
        path = directory / file_name
        try:
            st = path.stat()
        except FileNotFoundError:
            raise HBenchError(
                f"{path} is missing from the prepared dataset; run `hbench prepare {name} --force`"
            ) from None
        signature = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
        if cache.get(file_name) == {"stat": signature, "sha256": expected}:
            continue
        actual = sha256_file(path)
        if actual != expected:
            raise HBenchError(
                f"{path} changed since it was prepared (sha256 {actual[:12]}…, manifest says {expected[:12]}…); "
                f"run `hbench prepare {name} --force`"
            )
        updated[file_name] = {"stat": signature, "sha256": expected}
    if updated != cache:
        try:
            write_json(cache_path, updated)
        except OSError:
            pass  # a read-only dataset is checked in full each time


@dataclass(frozen=True)
class Interactions:
    """Parallel arrays of (user, item) pairs with internal ids; `timestamps` when known."""

    users: np.ndarray
    items: np.ndarray
    timestamps: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.users.shape != self.items.shape:
            raise ValueError("users and items must have the same shape")

    def __len__(self) -> int:
        return int(self.users.shape[0])

    def __repr__(self) -> str:
        return f"<Interactions: {len(self):,} pairs{', timestamped' if self.timestamps is not None else ''}>"

    @classmethod
    def empty(cls) -> Interactions:
        return cls(np.zeros(0, np.int64), np.zeros(0, np.int64))

    def to_frame(self) -> pd.DataFrame:
        frame = pd.DataFrame({"user": self.users.astype(np.int32), "item": self.items.astype(np.int32)})
        if self.timestamps is not None:
            frame["timestamp"] = self.timestamps.astype(np.int64)
        return frame

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> Interactions:
        ts = frame["timestamp"].to_numpy(np.int64) if "timestamp" in frame.columns else None
        return cls(frame["user"].to_numpy(np.int64), frame["item"].to_numpy(np.int64), ts)


@dataclass(frozen=True)
class PreparedDataset:
    """A prepared dataset as training and evaluation see it."""

    path: Path
    name: str
    n_users: int
    n_items: int
    train: Interactions
    valid: Interactions
    test: Interactions
    valid_negatives: np.ndarray | None
    test_negatives: np.ndarray | None
    manifest: dict[str, Any] = field(repr=False)
    _pairs_through: dict[str, UserItemGraph] = field(default_factory=dict, init=False, repr=False, compare=False)

    @cached_property
    def train_graph(self) -> UserItemGraph:
        """The training pairs as one CSR graph, built on first use (sampling, masking and graph models read it)."""
        return UserItemGraph.from_parts([self.train], self.n_users, self.n_items)

    def pairs_through(self, stage: Stage) -> UserItemGraph:
        """The pairs known up to and including `stage`: train; train and valid; or train, valid and test.

        Full ranking at a stage masks `pairs_through(stage)` (the training items and the stage's own
        targets, plus the validation items at test); recommendations exclude the pairs before the stage
        they serve. Built once per stage and kept: validation runs every epoch.
        """
        if stage not in STAGES:
            raise ValueError(f"stage must be one of {', '.join(STAGES)}, not {stage!r}")
        if stage == "train":
            return self.train_graph
        if stage not in self._pairs_through:
            parts = [self.train, self.valid] + ([self.test] if stage == "test" else [])
            self._pairs_through[stage] = UserItemGraph.from_parts(parts, self.n_users, self.n_items)
        return self._pairs_through[stage]

    def __repr__(self) -> str:
        return (f"<dataset {self.name}: {self.n_users:,} users, {self.n_items:,} items, train {len(self.train):,} / "
                f"valid {len(self.valid):,} / test {len(self.test):,}, protocol {self.default_protocol}: {self.path}>")

    @property
    def split_hash(self) -> str:
        """The hash of the split files: runs of one split share it, and only they share a table."""
        return str(self.manifest["split_hash"])

    @property
    def manifest_hash(self) -> str:
        """SHA-256 of `manifest.json`: a run records it, so its config names exactly this preparation."""
        return sha256_file(self.path / MANIFEST)

    @property
    def default_protocol(self) -> str:
        """The protocol runs on this dataset use when they name none (the dataset's default, or `--protocol`)."""
        return str(self.manifest["protocol"])


def save_prepared(
    directory: Path,
    *,
    name: str,
    train: Interactions,
    valid: Interactions,
    test: Interactions,
    user_ids: np.ndarray,
    item_ids: np.ndarray,
    valid_negatives: np.ndarray | None,
    test_negatives: np.ndarray | None,
    manifest_extra: dict[str, Any],
) -> dict[str, Any]:
    """Write every file of a prepared dataset into `directory` (which the caller makes atomic).

    Returns the manifest. `manifest_extra` must at least hold `protocol` (the default evaluation protocol)
    and may add `options`, `sources`, `statistics`, `spec` and anything else worth recording.
    """
    directory.mkdir(parents=True, exist_ok=True)
    for file_name, part in zip(SPLIT_FILES, (train, valid, test), strict=True):
        part.to_frame().to_parquet(directory / file_name, index=False)
    pd.DataFrame({"original_id": np.asarray(user_ids).astype(str)}).to_parquet(directory / "users.parquet", index=False)
    pd.DataFrame({"original_id": np.asarray(item_ids).astype(str)}).to_parquet(directory / "items.parquet", index=False)
    for file_name, negatives in zip(NEGATIVE_FILES, (valid_negatives, test_negatives), strict=True):
        if negatives is not None:
            np.save(directory / file_name, np.ascontiguousarray(negatives, dtype=np.int32), allow_pickle=False)
    files = {p.name: sha256_file(p) for p in sorted(directory.iterdir()) if p.name != MANIFEST}
    split_members = [f for f in (*SPLIT_FILES, *NEGATIVE_FILES) if f in files]
    manifest = {
        "format": 1,
        "name": name,
        "n_users": int(len(user_ids)),
        "n_items": int(len(item_ids)),
        "files": files,
        "split_hash": sha256_json({f: files[f] for f in split_members}),
        **manifest_extra,
    }
    if "protocol" not in manifest:
        raise ValueError("manifest_extra must name the default protocol")
    write_json(directory / MANIFEST, manifest)
    return manifest


def load_prepared(directory: Path, *, verify: bool = False) -> PreparedDataset:
    """Load a prepared dataset after checking its files against the manifest's hashes.

    The check is cheap (`check_files`): a file is re-hashed only when its size or times changed since it
    was last verified. `verify` re-hashes every file regardless.
    """
    manifest_path = directory / MANIFEST
    if not manifest_path.is_file():
        raise HBenchError(f"{directory} is not a prepared dataset (no {MANIFEST}); run `hbench prepare` first")
    manifest = read_json(manifest_path, required=("name", "n_users", "n_items", "files"))
    check_slug(manifest["name"], f"{manifest_path}: the dataset name")
    files = manifest["files"]
    if not isinstance(files, dict) or not all(isinstance(v, str) and _inside(k) for k, v in files.items()):
        raise HBenchError(f"{manifest_path} is damaged (its file list is not names and hashes); "
                          f"run `hbench prepare {manifest['name']} --force`")
    check_files(directory, files, str(manifest["name"]), rehash=verify)
    parts = [Interactions.from_frame(pd.read_parquet(directory / f)) for f in SPLIT_FILES]
    negatives = [
        np.load(directory / f, allow_pickle=False).astype(np.int64) if (directory / f).exists() else None
        for f in NEGATIVE_FILES
    ]
    return PreparedDataset(
        path=directory,
        name=str(manifest["name"]),
        n_users=int(manifest["n_users"]),
        n_items=int(manifest["n_items"]),
        train=parts[0],
        valid=parts[1],
        test=parts[2],
        valid_negatives=negatives[0],
        test_negatives=negatives[1],
        manifest=manifest,
    )

