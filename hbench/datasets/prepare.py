"""Preparing a dataset: raw files -> cleaned interactions -> split + sampled candidates -> prepared directory.

This is the Python API behind `hbench prepare`, `hbench info` and every command that loads a dataset.
A prepared directory is written atomically and is reused as long as its options and raw-file hashes are
unchanged, so preparing twice is a no-op and the same seed always gives the same split hash.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, get_args

import numpy as np
import pandas as pd

from hbench.atomic import atomic_directory, remove_stale_temporaries, sha256_file, sha256_json, write_json
from hbench.datasets import formats
from hbench.datasets.images import INDEX as IMAGE_INDEX
from hbench.datasets.images import ImageStore, image_files_fingerprint, item_keys, write_image_store
from hbench.datasets.preprocess import PART_NAMES, Preprocessed, has_time, preprocess
from hbench.datasets.registry import (
    DatasetSpec,
    ImageSource,
    PrepareOptions,
    RawData,
    SplitKind,
    SplitOrder,
    get_dataset,
    list_datasets,
)
from hbench.datasets.splits import (
    SeedStreams,
    Split,
    check_ratios,
    is_member,
    make_split,
    positive_keys,
    sample_negatives,
    sorted_unique,
)
from hbench.datasets.store import MANIFEST, Interactions, PreparedDataset, load_prepared, save_prepared
from hbench.errors import HBenchError, closest_names
from hbench.locks import hold
from hbench.paths import check_slug, mirror_dirs, prepared_dir, raw_dir
from hbench.protocols import PROTOCOLS, get_protocol
from hbench.ui import QUIET, Feedback

# Bump when a change to preparation changes what a prepared dataset holds: older ones are then rebuilt.
PREPARE_VERSION = 1
_QUANTILES = {"min": 0.0, "p25": 0.25, "p50": 0.5, "p75": 0.75, "p90": 0.9, "max": 1.0}


@dataclass(frozen=True)
class CustomFiles:
    """A user's own data: `interactions` (hbench splits it) or `train` + `test` [+ `valid`] (kept as given).

    Files are CSV, TSV or Parquet with a header naming user and item columns and optionally rating and
    timestamp (common aliases such as user_id / userId / item_id / movieId / asin are accepted), or text
    files without a header: `columns` names their columns in order, and a file whose first row is all
    numbers is read as `user item [rating [timestamp]]` (see formats.TableLayout). `sep` overrides the
    separator guessed from the extension.

    Item images, for an image store: `images`, a folder of files named `<original item id>.<jpg|jpeg|png|webp>`,
    or `image_column`, a column of the data file(s) holding each item's image path (relative to that file's
    folder). Items without an image are kept and reported as missing.
    """

    name: str
    interactions: Path | None = None
    train: Path | None = None
    valid: Path | None = None
    test: Path | None = None
    sep: str | None = None
    columns: tuple[str, ...] | None = None
    images: Path | None = None
    image_column: str | None = None

    @property
    def layout(self) -> formats.TableLayout:
        return formats.TableLayout(self.sep, self.columns)

    def roles(self) -> dict[str, Path]:
        """The given files by role (interactions / train / valid / test)."""
        given = {"interactions": self.interactions, "train": self.train, "valid": self.valid, "test": self.test}
        return {role: Path(path).expanduser() for role, path in given.items() if path is not None}


# --- options ---------------------------------------------------------------------------------------------


def _as_int(key: str, value: Any, minimum: int = 0) -> int:
    try:
        number = int(value)
        if isinstance(value, float | str) and float(value) != number:
            raise ValueError
    except (TypeError, ValueError):
        raise HBenchError(f"option {key} must be an integer (got {value!r})") from None
    if number < minimum:
        raise HBenchError(f"option {key} must be >= {minimum} (got {number})")
    return number


def _as_choice(key: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise HBenchError(f"option {key} must be one of {', '.join(choices)} (got {value!r})")
    return str(value)


def _as_threshold(value: Any) -> float | None:
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "null")):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise HBenchError(f"option implicit_threshold must be a number or none (got {value!r})") from None


def _as_ratios(value: Any) -> tuple[float, float, float]:
    parts = value.split(",") if isinstance(value, str) else value
    try:
        ratios = tuple(float(p) for p in parts)
    except (TypeError, ValueError):
        raise HBenchError(f"option ratios must be three numbers train,valid,test (got {value!r})") from None
    if len(ratios) != 3:
        raise HBenchError(f"option ratios must be three numbers train,valid,test (got {value!r})")
    return check_ratios(ratios)  # type: ignore[arg-type]


def _as_bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise HBenchError(f"option {key} must be true or false (got {value!r})")


def _coerce(key: str, value: Any) -> Any:
    """One override value, checked and converted from CLI text where needed."""
    if key == "implicit_threshold":
        return _as_threshold(value)
    if key in ("user_k", "item_k", "negatives", "seed"):
        return _as_int(key, value)
    if key == "split":
        return _as_choice(key, value, get_args(SplitKind))
    if key == "order":
        return _as_choice(key, value, get_args(SplitOrder))
    if key == "protocol":
        return _as_choice(key, value, tuple(PROTOCOLS))
    if key == "ratios":
        return _as_ratios(value)
    if key == "dedup":
        return _as_bool(key, value)
    raise HBenchError(f"unknown prepare option {key!r}")  # unreachable: keys are checked first


def resolve_options(defaults: PrepareOptions, overrides: Mapping[str, Any] | None) -> PrepareOptions:
    """A dataset's defaults with `overrides` applied (`user-k` and `user_k` are both accepted)."""
    known = [f.name for f in dataclasses.fields(PrepareOptions)]
    changes: dict[str, Any] = {}
    for raw_key, value in (overrides or {}).items():
        key = raw_key.replace("-", "_")
        if key not in known:
            raise HBenchError(f"unknown prepare option {raw_key!r}; known: {', '.join(known)}")
        changes[key] = _coerce(key, value)
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


# --- custom data -----------------------------------------------------------------------------------------


def check_name(name: str) -> str:
    """A dataset name is also a folder name."""
    return check_slug(name, "dataset name")


def custom_spec(custom: CustomFiles) -> DatasetSpec:
    """A spec for the user's own files (they are read in place, never copied), after checking them."""
    check_name(custom.name)
    from hbench.datasets.catalog import DATASETS

    if custom.name in DATASETS:
        raise HBenchError(f"custom dataset name {custom.name!r} is taken by a registered dataset; choose another")
    roles = custom.roles()
    if "interactions" in roles and len(roles) > 1:
        raise HBenchError("give either an interactions file, or train and test (and optionally valid) files, not both")
    if "interactions" not in roles and not {"train", "test"} <= set(roles):
        raise HBenchError("a custom dataset needs an interactions file, or both a train and a test file")
    for role, path in roles.items():
        if not path.is_file():
            raise HBenchError(f"custom {role} file {path} does not exist")
    if custom.images is not None and custom.image_column is not None:
        raise HBenchError("give either an image folder or an image-path column, not both")
    if custom.images is not None and not Path(custom.images).expanduser().is_dir():
        raise HBenchError(f"custom image folder {custom.images} does not exist")
    fixed = "interactions" not in roles
    # Full ranking by default: sampled candidates only when asked for (--negatives N --protocol loo).
    defaults = PrepareOptions(
        split="fixed" if fixed else "loo", order="random" if fixed else "temporal", negatives=0, protocol="full"
    )
    return DatasetSpec(
        name=custom.name,
        title=f"{custom.name} (custom)",
        raw_files=(),
        reader=formats.make_custom_reader(custom.layout, custom.images, custom.image_column),
        defaults=defaults,
        notes="user-supplied files: " + ", ".join(f"{role}={path}" for role, path in _custom_inputs(custom).items()),
    )


def _custom_inputs(custom: CustomFiles) -> dict[str, Any]:
    """The user's files by role, and where the item images come from."""
    inputs: dict[str, Any] = dict(custom.roles())
    if custom.images is not None:
        inputs["images"] = Path(custom.images).expanduser()
    if custom.image_column is not None:
        inputs["image_column"] = custom.image_column
    return inputs


def _source_hashes(files: Mapping[str, Path], keys: Mapping[str, str] | None = None) -> dict[str, str]:
    """SHA-256 of every raw file, keyed by file name (`keys` maps entries of `files` to other names)."""
    return {(keys or {}).get(name, name): sha256_file(path) for name, path in sorted(files.items())}


def _custom_source_keys(roles: Mapping[str, Path]) -> dict[str, str]:
    """File names as source keys; prefixed by role only where two roles share a file name."""
    names = [path.name for path in roles.values()]
    return {role: path.name if names.count(path.name) == 1 else f"{role}/{path.name}" for role, path in roles.items()}


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
        "negatives_per_user": {
            "valid": 0 if valid_negatives is None else int(valid_negatives.shape[1]),
            "test": 0 if test_negatives is None else int(test_negatives.shape[1]),
        },
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


def _warn_leaks(split: Split, n_items: int, feedback: Feedback) -> None:
    """Tell the user when evaluation targets also occur in training (a shipped split may do so)."""
    train_keys = sorted_unique(split.train.users * n_items + split.train.items)
    for name, part in (("validation", split.valid), ("test", split.test)):
        overlap = int(is_member(train_keys, part.users * n_items + part.items).sum())
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
    positives = positive_keys(split, n_items)
    with feedback.progress("sampling negatives", total=2 * n_users, unit="users") as task:
        valid = sample_negatives(positives, n_users, n_items, options.negatives, streams.valid_negatives, task.advance)
        test = sample_negatives(positives, n_users, n_items, options.negatives, streams.test_negatives, task.advance)
    return valid, test


def _hbench_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("hbench")
    except PackageNotFoundError:
        import hbench

        return getattr(hbench, "__version__", None)


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
        roles = custom.roles()
        extra_key: dict[str, Any] = {"custom_roles": sorted(roles), "sep": custom.sep}
        if custom.columns is not None:  # only when given, so that earlier preparations keep their key
            extra_key["columns"] = list(custom.columns)
        image_files = formats.custom_image_files(roles, custom.images, custom.image_column, custom.layout)
        if image_files is not None:
            # The images are no raw file: their listing (names, sizes, times) keys the cache instead.
            extra_key["images"] = image_files_fingerprint(image_files)
        return roles, _source_hashes(roles, _custom_source_keys(roles)), extra_key
    from hbench.datasets.download import fetch_raw_files

    files = fetch_raw_files(spec, raw_dir(spec.name, home), mirror_dirs(sources), feedback, trust_records=not force)
    return files, _source_hashes(files), {}


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
    from hbench.datasets.download import forget, record_hashes, unverified_names

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
        manifest_extra["custom"] = {
            "files": {role: str(path) for role, path in files.items()},
            "sep": custom.sep,
            "columns": None if custom.columns is None else list(custom.columns),
            "images": None if custom.images is None else str(Path(custom.images).expanduser()),
            "image_column": custom.image_column,
        }
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
    feedback.log(f"{name}: reading {', '.join(sorted(files))}")
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
    _warn_leaks(split, cleaned.n_items, feedback)
    return split


# --- loading ---------------------------------------------------------------------------------------------


def load_dataset(ref: str | Path, home: Path | None = None) -> PreparedDataset:
    """A prepared dataset by directory path, or by name under the prepared-data folder of `home`."""
    path = Path(ref).expanduser()
    if (path / MANIFEST).is_file():
        return load_prepared(path)
    text = str(ref)
    if isinstance(ref, Path) or "/" in text or "\\" in text:
        raise HBenchError(f"{path} is not a prepared dataset (no {MANIFEST}); run `hbench prepare NAME` first")
    target = prepared_dir(text, home)
    if not (target / MANIFEST).is_file():
        registered = {spec.name for spec in list_datasets()}
        if text in registered:
            raise HBenchError(f"dataset {text!r} is not prepared (nothing at {target}); run `hbench prepare {text}` first")
        prepared = {p.parent.name for p in target.parent.glob(f"*/{MANIFEST}")}
        guesses = closest_names(text, registered | prepared)
        hint = f"did you mean {' or '.join(guesses)}?" if guesses else "`hbench datasets` lists the registered ones"
        raise HBenchError(f"no dataset {text!r}, prepared or registered; {hint}")
    return load_prepared(target)
