"""Preparing a dataset: raw files -> cleaned interactions -> split + sampled candidates -> prepared directory.

This is the Python API behind `hbench prepare`, `hbench info` and every command that loads a dataset.
A prepared directory is written atomically and is reused as long as its options and raw-file hashes are
unchanged, so preparing twice is a no-op and the same seed always gives the same split hash.
"""

from __future__ import annotations

import dataclasses
import time
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hbench.atomic import (
    atomic_directory,
    remove_stale_temporaries,
    sha256_file,
    sha256_json,
    write_json,
)
from hbench.config import coerce_setting
from hbench.datasets.catalog import get_dataset
from hbench.datasets.custom import (
    CustomFiles,
    custom_record,
    custom_sources,
    custom_spec,
)
from hbench.datasets.download import (
    fetch_raw_files,
    forget,
    record_hashes,
    unverified_names,
)
from hbench.datasets.graph import UserItemGraph
from hbench.datasets.images import INDEX as IMAGE_INDEX
from hbench.datasets.images import ImageStore, item_keys, write_image_store
from hbench.datasets.preprocess import PART_NAMES, Preprocessed, has_time, preprocess
from hbench.datasets.spec import (
    DatasetSpec,
    ImageSource,
    PrepareOptions,
    RawData,
    check_name,
)
from hbench.datasets.splits import (
    SeedStreams,
    Split,
    check_ratios,
    make_split,
    sample_negatives,
)
from hbench.datasets.store import (
    MANIFEST,
    Interactions,
    PreparedDataset,
    load_prepared,
    save_prepared,
)
from hbench.errors import HBenchError
from hbench.locks import hold
from hbench.paths import mirror_dirs, prepared_dir, raw_dir
from hbench.protocols import get_protocol
from hbench.ui import QUIET, Feedback
from hbench.version import __version__

# Bump when a change to preparation changes what a prepared dataset holds: older ones are then rebuilt.
PREPARE_VERSION = 1
# Options that count (k-cores, candidates) or seed: none can be negative.
_COUNTS = ("user_k", "item_k", "negatives", "seed")
_QUANTILES = {"min": 0.0, "p25": 0.25, "p50": 0.5, "p75": 0.75, "p90": 0.9, "max": 1.0}


# --- options ---------------------------------------------------------------------------------------------


def resolve_options(defaults: PrepareOptions, overrides: Mapping[str, Any] | None) -> PrepareOptions:
    """A dataset's defaults with `overrides` applied (`user-k` and `user_k` are both accepted)."""
    hints = typing.get_type_hints(PrepareOptions)
    changes: dict[str, Any] = {}
    for raw_key, value in (overrides or {}).items():
        key = raw_key.replace("-", "_")
        if key not in hints:
            raise HBenchError(f"unknown prepare option {raw_key!r}; known: {', '.join(hints)}")
        # Converted from command-line text as every other setting is (hbench.config), then checked.
        changes[key] = coerce_setting(value, hints[key], f"option {key}")
        if key in _COUNTS and changes[key] < 0:
            raise HBenchError(f"option {key} must be >= 0 (got {changes[key]})")
        if key == "ratios" and len(changes[key]) != 3:
            raise HBenchError(f"option ratios must be three numbers train,valid,test (got {value!r})")
    options = dataclasses.replace(defaults, **changes)
    check_ratios(options.ratios)
    if get_protocol(options.protocol).needs_sampled_negatives and options.negatives <= 0:
        raise HBenchError(f"protocol {options.protocol} ranks each target among sampled negatives: "
                          "set negatives > 0 (e.g. 100)")
    return options


def options_dict(options: PrepareOptions) -> dict[str, Any]:
    """Options as JSON-ready values (ratios as a list)."""
    values = dataclasses.asdict(options)
    values["ratios"] = list(values["ratios"])
    return values


# --- statistics ------------------------------------------------------------------------------------------


def _quantiles(values: np.ndarray) -> dict[str, float]:
    if values.size == 0:
        return {k: 0.0 for k in _QUANTILES}
    return {k: float(np.quantile(values, q)) for k, q in _QUANTILES.items()}


def gini(values: np.ndarray) -> float:
    """Gini coefficient of non-negative counts: 0 when all equal, towards 1 when one item has everything."""
    x = np.sort(np.asarray(values, dtype=np.float64))
    n, total = x.size, x.sum()
    if n == 0 or total == 0:
        return 0.0
    return float(2.0 * np.sum(np.arange(1, n + 1) * x) / (n * total) - (n + 1) / n)


def split_statistics(
    n_users: int,
    n_items: int,
    parts: tuple[Interactions, Interactions, Interactions],
    valid_negatives: np.ndarray | None,
    test_negatives: np.ndarray | None,
) -> dict[str, Any]:
    """Size, density, degree quantiles, item-popularity Gini, split sizes and negatives per user."""
    users = np.concatenate([p.users for p in parts]).astype(np.int64)
    items = np.concatenate([p.items for p in parts]).astype(np.int64)
    user_degree = np.bincount(users, minlength=n_users)
    item_degree = np.bincount(items, minlength=n_items)
    return {
        "users": n_users,
        "items": n_items,
        "interactions": int(users.size),
        "density": float(users.size / (n_users * n_items)) if n_users and n_items else 0.0,
        "user_degree": _quantiles(user_degree),
        "item_degree": _quantiles(item_degree),
        "item_gini": gini(item_degree),
        "split": {name: len(part) for name, part in zip(PART_NAMES, parts, strict=True)},
        "cold_start": cold_start(n_users, n_items, parts),
        "negatives_per_user": {
            "valid": 0 if valid_negatives is None else int(valid_negatives.shape[1]),
            "test": 0 if test_negatives is None else int(test_negatives.shape[1]),
        },
    }


def cold_start(
    n_users: int, n_items: int, parts: tuple[Interactions, Interactions, Interactions]
) -> dict[str, dict[str, int]]:
    """Users and items of the validation and test parts that have no training interaction (cold start).

    They stay in the split and are evaluated like the others, but no model ever trains on them: a user's
    embedding stays as initialised and an item is only ever a sampled negative. hbench's own splits keep
    every user in training (items may still be cold); a shipped split can hold both."""
    train = parts[0]
    in_train_users = np.zeros(n_users, dtype=bool)
    in_train_users[train.users] = True
    in_train_items = np.zeros(n_items, dtype=bool)
    in_train_items[train.items] = True
    return {
        name: {"users": int((~in_train_users[np.unique(part.users)]).sum()),
               "items": int((~in_train_items[np.unique(part.items)]).sum())}
        for name, part in (("valid", parts[1]), ("test", parts[2]))
    }


def dataset_statistics(ds: PreparedDataset) -> dict[str, Any]:
    """Statistics of a prepared dataset (see `split_statistics`), with items per image status
    (ok / missing / undecodable) when it has an image store."""
    stats = split_statistics(
        ds.n_users, ds.n_items, (ds.train, ds.valid, ds.test), ds.valid_negatives, ds.test_negatives
    )
    if images := ds.manifest.get("images"):
        stats["images"] = {status: int(images[status]) for status in ("ok", "missing", "undecodable")}
    return stats


# --- preparation -----------------------------------------------------------------------------------------


def _interaction_frame(raw: RawData, split_kind: str) -> tuple[pd.DataFrame, bool]:
    """The reader's data as one frame (with a `part` column when a shipped split is kept), and whether a
    shipped validation part exists."""
    if raw.fixed_split is None:
        if raw.interactions is None:
            raise HBenchError("the dataset reader returned no interactions")
        if split_kind == "fixed":
            raise HBenchError("this dataset ships no split: use split=loo or split=ratio")
        return raw.interactions, False
    given = {name: raw.fixed_split.get(name) for name in PART_NAMES}
    if given["train"] is None or given["test"] is None:
        raise HBenchError("a shipped split needs both a train and a test part")
    present = [(PART_NAMES.index(name), frame) for name, frame in given.items() if frame is not None]
    # Keep only columns every part has (a timestamp in one part alone cannot order the others).
    common = [c for c in present[0][1].columns if all(c in frame.columns for _, frame in present)]
    frames = [frame[common].assign(part=np.int8(index)) for index, frame in present]
    for column in ("user", "item"):
        if len({str(frame[column].dtype) for frame in frames}) > 1:
            # Ids read as numbers in one file and as text in another: compare them as text.
            frames = [frame.assign(**{column: frame[column].astype(str)}) for frame in frames]
    frame = pd.concat(frames, ignore_index=True)
    if split_kind != "fixed":
        # Re-splitting a shipped split: its parts are pooled and split again.
        frame = frame.drop(columns="part")
    return frame, given["valid"] is not None


def _warn_leaks(split: Split, n_users: int, n_items: int, feedback: Feedback) -> None:
    """Tell the user when evaluation targets also occur in training (a shipped split may do so)."""
    train = UserItemGraph.from_parts([split.train], n_users, n_items)
    for name, part in (("validation", split.valid), ("test", split.test)):
        overlap = int(train.contains(part.users, part.items).sum())
        if overlap:
            feedback.warn(
                f"{overlap} {name} targets are also training interactions of the same user (repeats, or as "
                "shipped); full ranking, which masks training items, can never rank them"
            )


def _sample_all_negatives(
    split: Split, n_users: int, n_items: int, options: PrepareOptions, streams: SeedStreams, feedback: Feedback
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Validation and test candidates (separate draws), or none when `negatives` is 0."""
    if options.negatives <= 0:
        return None, None
    positives = UserItemGraph.from_parts(split.parts(), n_users, n_items)
    with feedback.progress("sampling negatives", total=2 * n_users, unit="users") as task:
        valid = sample_negatives(positives, options.negatives, streams.valid_negatives, task.advance)
        test = sample_negatives(positives, options.negatives, streams.test_negatives, task.advance)
    return valid, test


def _hbench_version() -> str:
    try:
        return version("hbench")
    except PackageNotFoundError:  # run from a source checkout that was never installed
        return __version__


def _spec_record(spec: DatasetSpec) -> dict[str, Any]:
    return {
        "name": spec.name,
        "title": spec.title,
        "homepage": spec.homepage,
        "citation": spec.citation,
        "published": dict(spec.published),
        "notes": spec.notes,
    }


def _raw_files(
    spec: DatasetSpec, custom: CustomFiles | None, home: Path | None, sources: list[Path] | None, feedback: Feedback,
    force: bool,
) -> tuple[dict[str, Path], dict[str, str], dict[str, Any]]:
    """The raw files (fetched, or the user's files in place), their hashes, and what else keys the cache."""
    if custom is not None:
        return custom_sources(custom)
    files = fetch_raw_files(spec, raw_dir(spec.name, home), mirror_dirs(sources), feedback, trust_records=not force)
    return files, {name: sha256_file(path) for name, path in sorted(files.items())}, {}


def _cached(target: Path, cache_key: str, feedback: Feedback) -> PreparedDataset | None:
    """The prepared dataset at `target` if it was made from the same options and raw bytes and is intact."""
    manifest_path = target / MANIFEST
    if not manifest_path.is_file():
        return None
    try:
        dataset = load_prepared(target, verify=True)
        if "images" in dataset.manifest:
            ImageStore(target).verify()
    except (HBenchError, OSError, ValueError, KeyError) as exc:
        feedback.warn(f"rebuilding {target}: {exc}")
        return None
    return dataset if dataset.manifest.get("cache_key") == cache_key else None


@dataclass(frozen=True)
class _Built:
    """Everything a prepared directory is written from."""

    cleaned: Preprocessed
    split: Split
    valid_negatives: np.ndarray | None
    test_negatives: np.ndarray | None
    statistics: dict[str, Any]
    # The reader's item images, written into the image store after everything else (None: no images).
    images: ImageSource | None = None


def prepare_dataset(
    name: str,
    *,
    overrides: Mapping[str, Any] | None = None,
    sources: list[Path] | None = None,
    home: Path | None = None,
    force: bool = False,
    feedback: Feedback = QUIET,
    custom: CustomFiles | None = None,
    accept_statistics: bool = False,
) -> PreparedDataset:
    """Prepare dataset `name` (or the user's `custom` files) under `home` and return it.

    Raw files are looked up in `sources` (offline mirrors) before any download. Nothing is rebuilt when
    the prepared directory already matches the options and the raw files' hashes, unless `force`.

    Raw files without a pinned hash are verified by their content: with the dataset's default options
    they must give the published users, items and interactions. Only then is their hash recorded; a file
    that fails (or that its reader refuses) is deleted from the raw cache. `force` verifies recorded files
    again; `accept_statistics` records files whose statistics differ (a source that changed on purpose).
    """
    if custom is not None and custom.name != name:
        raise HBenchError(f"custom dataset is called {custom.name!r}, not {name!r}")
    spec = custom_spec(custom) if custom is not None else get_dataset(check_name(name))
    # Options are checked before anything is downloaded.
    options = resolve_options(spec.defaults, overrides)
    target = prepared_dir(name, home)
    # One preparation of a dataset at a time: a second process waits, then finds the first one's result.
    with hold(target.parent / f".{name}.lock", busy=f"{name}: another hbench process is preparing it; waiting",
              wait=True, on_wait=feedback.log) as locked_at:
        leftovers = remove_stale_temporaries(target.parent, locked_at, name)
        if custom is None:
            leftovers += remove_stale_temporaries(raw_dir(name, home), locked_at)
        for leftover in leftovers:
            feedback.log(f"removed {leftover}, left by an interrupted preparation")
        return _prepare_locked(name, spec, options, custom, sources, home, force, feedback, accept_statistics)


def _prepare_locked(
    name: str, spec: DatasetSpec, options: PrepareOptions, custom: CustomFiles | None, sources: list[Path] | None,
    home: Path | None, force: bool, feedback: Feedback, accept_statistics: bool,
) -> PreparedDataset:
    files, source_hashes, extra_key = _raw_files(spec, custom, home, sources, feedback, force)
    cache_key = sha256_json(
        {"prepare_version": PREPARE_VERSION, "options": options_dict(options), "sources": source_hashes, **extra_key}
    )
    target = prepared_dir(name, home)
    if not force and (cached := _cached(target, cache_key, feedback)) is not None:
        feedback.log(f"{name}: already prepared at {target} (use --force to rebuild)")
        return cached

    started = time.perf_counter()
    raw_cache = raw_dir(spec.name, home)
    unverified = [] if custom is not None else unverified_names(spec, raw_cache)
    check = None if custom is not None or not (force or unverified) else _PublishedCheck(spec, accept_statistics)
    try:
        built = _build(name, spec, files, options, feedback, check)
    except Exception:
        # The file is refused or wrong: it must not stay in the cache to be taken as the source next time.
        if custom is None and (deleted := forget(spec, raw_cache, recorded_too=force)):
            feedback.log(f"removed {', '.join(deleted)} from {raw_cache}: not verified")
        raise
    if custom is None:
        record_hashes(spec, raw_cache, source_hashes)
    manifest_extra = {
        "protocol": options.protocol,
        "options": options_dict(options),
        "split_order": built.split.order,
        "sources": source_hashes,
        "statistics": built.statistics,
        "spec": _spec_record(spec),
        "hbench_version": _hbench_version(),
        "prepare_version": PREPARE_VERSION,
        "cache_key": cache_key,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if custom is not None:
        manifest_extra["custom"] = custom_record(custom)
    _write(target, name, built, manifest_extra, feedback)
    final = built.statistics["final"]
    feedback.log(
        f"{name}: prepared {final['users']:,} users, {final['items']:,} items, {final['interactions']:,} "
        f"interactions (train {final['split']['train']:,} / valid {final['split']['valid']:,} / "
        f"test {final['split']['test']:,}) in {time.perf_counter() - started:.1f}s -> {target}"
    )
    return load_prepared(target)


@dataclass(frozen=True)
class _PublishedCheck:
    """Raw files are checked against the statistics their source publishes (with its default options)."""

    spec: DatasetSpec
    accept: bool

    def __call__(self, raw: RawData, cleaned: Preprocessed, options: PrepareOptions, feedback: Feedback) -> None:
        published = {k: v for k, v in self.spec.published.items() if k in ("users", "items", "interactions")}
        if not published:
            return
        if options != self.spec.defaults:
            cleaned = preprocess(_interaction_frame(raw, self.spec.defaults.split)[0], self.spec.defaults)
        ours = {"users": cleaned.n_users, "items": cleaned.n_items, "interactions": len(cleaned.frame)}
        differ = [f"{ours[k]:,} {k} (published: {v:,})" for k, v in published.items() if ours[k] != v]
        if not differ:
            return
        message = (f"{self.spec.name}: the raw files give {', '.join(differ)}; they are truncated or not the "
                   "published files")
        if not self.accept:
            raise HBenchError(f"{message}. They are removed from the cache: fetch them again or pass --source DIR "
                              "with the right files (--accept-statistics prepares them anyway)")
        feedback.warn(f"{message}; accepted (--accept-statistics)")


def _build(
    name: str, spec: DatasetSpec, files: Mapping[str, Path], options: PrepareOptions, feedback: Feedback,
    check: _PublishedCheck | None = None,
) -> _Built:
    """Read, preprocess, split and sample candidates (after `check` of the raw files' statistics, if any)."""
    # A generated dataset (the demo's) has no raw files to name.
    feedback.log(f"{name}: reading {', '.join(sorted(files))}" if files else f"{name}: generating from its seed")
    raw = spec.reader(files)
    images = raw.images
    frame, has_valid = _interaction_frame(raw, options.split)
    cleaned = preprocess(frame, options)
    if check is not None:
        check(raw, cleaned, options, feedback)
    del raw  # the reader's frames; only the image source lives on, until the store is written
    for step in cleaned.steps:
        feedback.log(
            f"  {step['step']}: {step['users']:,} users, {step['items']:,} items, {step['interactions']:,} interactions"
        )
    streams = SeedStreams.from_seed(options.seed)
    split = _split(cleaned, options, has_valid, streams, feedback)
    valid_neg, test_neg = _sample_all_negatives(split, cleaned.n_users, cleaned.n_items, options, streams, feedback)
    statistics = {
        "preprocessing": cleaned.steps,
        "final": split_statistics(cleaned.n_users, cleaned.n_items, split.parts(), valid_neg, test_neg),
    }
    return _Built(cleaned, split, valid_neg, test_neg, statistics, images)


def _write(target: Path, name: str, built: _Built, manifest_extra: dict[str, Any], feedback: Feedback) -> None:
    """Write the prepared directory so that it appears complete or not at all."""
    with atomic_directory(target) as tmp:
        manifest = save_prepared(
            tmp,
            name=name,
            train=built.split.train,
            valid=built.split.valid,
            test=built.split.test,
            user_ids=built.cleaned.user_ids,
            item_ids=built.cleaned.item_ids,
            valid_negatives=built.valid_negatives,
            test_negatives=built.test_negatives,
            manifest_extra=manifest_extra,
        )
        if built.images is not None:
            _write_images(tmp, manifest, built.cleaned.item_ids, built.images, feedback)


def _write_images(
    directory: Path, manifest: dict[str, Any], item_ids: np.ndarray, images: ImageSource, feedback: Feedback
) -> None:
    """The image store beside the split; its index joins the manifest's hashed files (the index lists every
    image's SHA-256, so its hash pins them all) and its counts are recorded under `images`."""
    summary = write_image_store(directory, item_keys(item_ids), images, feedback)
    manifest["files"][IMAGE_INDEX] = summary["index_sha256"]
    manifest["images"] = summary
    write_json(directory / MANIFEST, manifest)


def _split(
    cleaned: Preprocessed, options: PrepareOptions, has_valid: bool, streams: SeedStreams, feedback: Feedback
) -> Split:
    """Split the cleaned frame, telling the user when the requested order cannot be or should not be used."""
    timed = has_time(cleaned.frame)
    if options.split != "fixed":
        if options.order == "temporal" and not timed:
            feedback.log("  no timestamps or sequence order: splitting in a seeded random order")
        elif options.order == "random" and timed:
            feedback.warn("random split of time-ordered data: training may hold interactions later than the test ones")
    split = make_split(
        cleaned.frame,
        kind=options.split,
        order=options.order,
        ratios=options.ratios,
        has_valid=has_valid,
        rng=streams.split,
    )
    _check_parts(split, options)
    _warn_leaks(split, cleaned.n_users, cleaned.n_items, feedback)
    if options.split == "fixed":
        _warn_cold_start(split, cleaned.n_users, cleaned.n_items, feedback)
    return split


def _check_parts(split: Split, options: PrepareOptions) -> None:
    """Refuse a split with an empty part: a run trains on train, selects its epoch on validation and is
    tested on test, so any empty part would fail only after training (or, for train, train on nothing)."""
    why = {
        "fixed": "preprocessing removed all of that part's interactions (implicit_threshold / user_k / item_k)",
        "loo": "leave-one-out needs users with at least 2 interactions for a test item and 3 for a validation one",
        "ratio": f"ratios {','.join(f'{r:g}' for r in options.ratios)} round to none for users this small",
    }.get(options.split, "")
    uses = {"train": ("training", "trained"), "valid": ("validation", "validated"), "test": ("test", "tested")}
    for name, part in zip(PART_NAMES, split.parts(), strict=True):
        if len(part) == 0:
            noun, verb = uses[name]
            raise HBenchError(f"the split has no {noun} interactions, so no run could be {verb} on it: "
                              f"{why or 'check the files and options'}")


def _warn_cold_start(split: Split, n_users: int, n_items: int, feedback: Feedback) -> None:
    """Tell the user when a shipped split evaluates users or items that its training part never saw (often
    ids spelled differently in two files, e.g. `7` and `07`), and what hbench does with them."""
    counts = cold_start(n_users, n_items, split.parts())
    found = [f"{counts[part][kind]:,} {where} {kind if counts[part][kind] > 1 else kind[:-1]}"
             for part, where in (("test", "test"), ("valid", "validation")) for kind in ("users", "items")
             if counts[part][kind]]
    if found:
        feedback.warn(
            f"{', '.join(found)} have no training interactions; they are kept and evaluated like the others, but "
            "nothing is learnt about them (a user keeps its initial embedding, an item is only ever a sampled "
            "negative), so personalised models score them near chance; check that ids are written alike in every file"
        )
