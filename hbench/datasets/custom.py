"""A user's own data: which files, how their tables are read, and the spec and cache identity they prepare under.

`hbench prepare custom` (and `hbench.prepare(name, interactions=...)`) takes CSV, TSV or Parquet files in
place, never copied: one interactions file for hbench to split, or a train/test [+ valid] split kept as
given. Tables are read with `read_custom_table`: a header naming the columns under common aliases, or no
header at all (`TableLayout`: `--columns`, `--sep`, and a first row of numbers read as
`user item [rating [timestamp]]`). Item images come from a folder or an image-path column.
`prepare.prepare_dataset` then prepares the `custom_spec` like a registered dataset.
"""

from __future__ import annotations

import csv
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hbench.atomic import sha256_file
from hbench.datasets.catalog import dataset_names
from hbench.datasets.formats import Reader
from hbench.datasets.images import image_files_fingerprint, image_key, read_image_files
from hbench.datasets.spec import DatasetSpec, PrepareOptions, RawData, check_name
from hbench.errors import HBenchError


@dataclass(frozen=True)
class CustomFiles:
    """A user's own data: `interactions` (hbench splits it) or `train` + `test` [+ `valid`] (kept as given).

    Files are CSV, TSV or Parquet with a header naming user and item columns and optionally rating and
    timestamp (common aliases such as user_id / userId / item_id / movieId / asin are accepted), or text
    files without a header: `columns` names their columns in order, and a file whose first row is all
    numbers is read as `user item [rating [timestamp]]` (see TableLayout). `sep` overrides the
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
    def layout(self) -> TableLayout:
        return TableLayout(self.sep, self.columns)

    def roles(self) -> dict[str, Path]:
        """The given files by role (interactions / train / valid / test)."""
        given = {"interactions": self.interactions, "train": self.train, "valid": self.valid, "test": self.test}
        return {role: Path(path).expanduser() for role, path in given.items() if path is not None}


def custom_spec(custom: CustomFiles) -> DatasetSpec:
    """A spec for the user's own files (they are read in place, never copied), after checking them."""
    check_name(custom.name)
    if custom.name in dataset_names():
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
        reader=make_custom_reader(custom.layout, custom.images, custom.image_column),
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


def custom_sources(custom: CustomFiles) -> tuple[dict[str, Path], dict[str, str], dict[str, Any]]:
    """The user's files by role, their SHA-256 by source key, and what else keys the prepared cache."""
    roles = custom.roles()
    extra_key: dict[str, Any] = {"custom_roles": sorted(roles), "sep": custom.sep}
    if custom.columns is not None:  # only when given, so that earlier preparations keep their key
        extra_key["columns"] = list(custom.columns)
    image_files = custom_image_files(roles, custom.images, custom.image_column, custom.layout)
    if image_files is not None:
        # The images are no raw file: their listing (names, sizes, times) keys the cache instead.
        extra_key["images"] = image_files_fingerprint(image_files)
    keys = _custom_source_keys(roles)
    return roles, {keys[role]: sha256_file(path) for role, path in sorted(roles.items())}, extra_key


def _custom_source_keys(roles: Mapping[str, Path]) -> dict[str, str]:
    """File names as source keys; prefixed by role only where two roles share a file name."""
    names = [path.name for path in roles.values()]
    return {role: path.name if names.count(path.name) == 1 else f"{role}/{path.name}" for role, path in roles.items()}


def custom_record(custom: CustomFiles) -> dict[str, Any]:
    """What the prepared manifest records of the user's files (under `custom`)."""
    return {
        "files": {role: str(path) for role, path in custom.roles().items()},
        "sep": custom.sep,
        "columns": None if custom.columns is None else list(custom.columns),
        "images": None if custom.images is None else str(Path(custom.images).expanduser()),
        "image_column": custom.image_column,
    }


# --- custom tables ---------------------------------------------------------------------------------------

# Accepted column names, compared case-insensitively (RecBole atomic files add a `:type` suffix).
COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "user": ("user", "user_id", "userid", "uid", "reviewerid", "customer_id", "visitorid"),
    "item": ("item", "item_id", "itemid", "iid", "movieid", "movie_id", "book_id", "asin", "product_id"),
    "rating": ("rating", "ratings", "score", "overall", "stars", "weight"),
    "timestamp": ("timestamp", "ts", "time", "unixreviewtime", "datetime", "date"),
}


def _find_column(columns: list[str], role: str) -> str | None:
    wanted = COLUMN_ALIASES[role]
    for column in columns:
        if column.strip().lower().split(":")[0] in wanted:
            return column
    return None


@dataclass(frozen=True)
class TableLayout:
    """How to read a user's text table: its separator (None: by extension, else sniffed among `,` tab `;`
    `|` and spaces) and, for a file without a header row, its column names in order (`-` skips a column).

    A file whose first row is all numbers has no header: without `columns` its columns are taken as
    `user item [rating [timestamp]]`, the Cornac/Elliot layout (MovieLens' u.data too).
    """

    sep: str | None = None
    columns: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.columns is not None:
            names = [c.strip() for c in self.columns]
            named = [c for c in names if c != SKIP_COLUMN]
            if not named or any(not c for c in names) or len(set(named)) < len(named):
                raise HBenchError(f"--columns needs distinct non-empty names (or {SKIP_COLUMN} to skip one), "
                                  f"got {','.join(self.columns)!r}")


SKIP_COLUMN = "-"
HEADERLESS_COLUMNS = ("user", "item", "rating", "timestamp")
_SEPARATOR_NAMES = {"\\t": "\t", "tab": "\t", "space": r"\s+", "whitespace": r"\s+"}
_SNIFFED = ",\t;| "


def _separator(path: Path, sep: str | None) -> str:
    """The separator to split `path` with: the given one (`\\t`, `tab`, `space` spelled out), the
    extension's, or the one csv's sniffer finds among the usual ones in the first lines."""
    if sep is not None:
        if not sep:
            raise HBenchError("--sep must not be empty")
        return _SEPARATOR_NAMES.get(sep.lower(), sep)
    by_suffix = {".csv": ",", ".tsv": "\t", ".tab": "\t"}.get(path.suffix.lower())
    if by_suffix is not None:
        return by_suffix
    with open(path, encoding="utf-8", errors="replace", newline="") as handle:
        sample = handle.read(64 * 1024)
    try:
        found = csv.Sniffer().sniff(sample, delimiters=_SNIFFED).delimiter
    except csv.Error:
        raise HBenchError(f"cannot tell the separator of {path.name}; pass --sep (e.g. --sep tab)") from None
    return r"\s+" if found == " " else found


def _first_row(path: Path, sep: str) -> list[str]:
    with open(path, encoding="utf-8", errors="replace") as handle:
        line = handle.readline().strip()
    return re.split(sep, line) if sep == r"\s+" else line.split(sep)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


_SEPARATOR_WORDS = {"\t": "a tab", ",": "a comma", ";": "a semicolon", "|": "a bar", r"\s+": "white space"}


def _split_fields(line: str, sep: str) -> list[str]:
    """The fields of one physical line split as pandas' python engine splits them (a regular expression)."""
    return re.split(sep, line.strip() if sep == r"\s+" else line.rstrip("\r\n"))


def _first_overlong_row(path: Path, sep: str) -> tuple[int, int, int] | None:
    """(line number, its fields, the first row's fields) of the first row with more fields than the first
    (header) row, or None. Line numbers count from 1 with the header, as an editor shows them.

    Read with the same quoting as pandas (csv's `"`), so a quoted field holding the separator is one field.
    Only called once pandas has found something wrong: a second pass over a large file costs seconds."""
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as handle:
        if len(sep) == 1:
            reader = csv.reader(handle, delimiter=sep)
            rows: Any = ((reader.line_num, row) for row in reader)
        else:
            rows = ((number, _split_fields(line, sep)) for number, line in enumerate(handle, 1) if line.strip())
        expected = None
        for number, row in rows:
            if not row:  # a blank line, which pandas skips
                continue
            if expected is None:
                expected = len(row)
            elif len(row) > expected:
                return number, len(row), expected
    return None


def _read_csv_checked(path: Path, sep: str, *, header: bool) -> pd.DataFrame:
    """`pd.read_csv`, refusing rows with more fields than the header (or the first row) has.

    Left to itself pandas takes the extra leading field of such rows as the index (a tab inside an id: user
    `u<TAB>7` silently becomes `7`) or, with `index_col=False`, drops the extra field with a warning: both are
    wrong data. `index_col=False` rules out the implicit index, its warning is turned into the error here,
    and a longer row further down is pandas' own ParserError; both then name the first such line."""
    engine = "c" if len(sep) == 1 else "python"  # `::` and `\s+` are regular expressions to pandas
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("error", message="Length of header or names does not match length of data",
                                    category=pd.errors.ParserWarning)
            return pd.read_csv(path, sep=sep, engine=engine, header=0 if header else None, index_col=False)
    except (pd.errors.ParserWarning, pd.errors.ParserError):
        overlong = _first_overlong_row(path, sep)
        if overlong is None:
            raise
        line, fields, expected = overlong
        word = _SEPARATOR_WORDS.get(sep, repr(sep))
        hint = ("put ids that contain it in double quotes" if len(sep) == 1
                else "ids must not contain it; pass another --sep")
        raise HBenchError(f"{path}: line {line} has {fields} fields but the {'header' if header else 'first row'} has "
                          f"{expected} (separated by {word}); {hint}") from None


def _read_table(path: Path, layout: TableLayout) -> pd.DataFrame:
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        if layout.columns is not None:
            raise HBenchError(f"{path.name}: --columns is for text files without a header (Parquet names its columns)")
        return pd.read_parquet(path)
    sep = _separator(path, layout.sep)
    names = layout.columns
    if names is None:
        first = _first_row(path, sep)
        if not all(_is_number(value) for value in first):
            return _read_csv_checked(path, sep, header=True)
        if len(first) > len(HEADERLESS_COLUMNS):
            raise HBenchError(f"{path.name} has no header row and {len(first)} columns; name them with --columns "
                              f"(e.g. --columns {','.join(HEADERLESS_COLUMNS)}{',-' * (len(first) - 4)})")
        names = HEADERLESS_COLUMNS[: len(first)]
    frame = _read_csv_checked(path, sep, header=False)
    if frame.shape[1] != len(names):
        raise HBenchError(f"{path.name} has {frame.shape[1]} columns, --columns names {len(names)}: "
                          f"{','.join(names)}")
    frame.columns = list(names)
    return frame[[c for c in names if c != SKIP_COLUMN]]


def _timestamps(values: pd.Series, path: Path) -> np.ndarray:
    """Integer timestamps as they are; date-time text as Unix seconds."""
    if pd.api.types.is_numeric_dtype(values):
        if values.isna().any():
            raise HBenchError(f"{path.name}: the timestamp column has missing values")
        return np.round(values.to_numpy(np.float64)).astype(np.int64)
    try:
        parsed = pd.to_datetime(values, utc=True)
    except (ValueError, TypeError) as exc:
        raise HBenchError(f"{path.name}: cannot read the timestamp column as numbers or dates ({exc})") from None
    if parsed.isna().any():
        raise HBenchError(f"{path.name}: the timestamp column has missing values")
    return ((parsed - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)).to_numpy(np.int64)


def _is_blank(path: Path) -> bool:
    """Whether a text file holds nothing but white space (pandas would say "No columns to parse")."""
    with open(path, "rb") as handle:
        return not handle.read(64 * 1024).strip() and not handle.read(1)


def read_custom_table(path: Path, layout: TableLayout = TableLayout(), what: str = "data") -> pd.DataFrame:
    """A CSV / TSV / Parquet file with a header naming user and item (and optionally rating and
    timestamp) columns, under any of the names in `COLUMN_ALIASES`, or a text file without a header
    (see `TableLayout`). A file without rows is refused here, naming it (`what`: which of the user's files
    it is), rather than later as a split with nothing to train or test on."""
    if not path.is_file():
        raise HBenchError(f"custom {what} file {path} does not exist")
    if path.suffix.lower() not in (".parquet", ".pq") and _is_blank(path):
        raise HBenchError(f"custom {what} file {path} is empty: it holds no interactions")
    try:
        raw = _read_table(path, layout)
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise HBenchError(f"cannot read {path}: {exc}") from None
    if len(raw) == 0:
        raise HBenchError(f"custom {what} file {path} holds no interactions (a header only)")
    columns = [str(c) for c in raw.columns]
    raw.columns = columns
    found = {role: _find_column(columns, role) for role in COLUMN_ALIASES}
    for role in ("user", "item"):
        if found[role] is None:
            raise HBenchError(
                f"{path.name} has no {role} column (accepted names: {', '.join(COLUMN_ALIASES[role])}); "
                f"found columns: {', '.join(columns)}"
            )
    frame = raw[[found["user"], found["item"]]].copy()
    frame.columns = ["user", "item"]
    if frame.isna().any().any():
        raise HBenchError(f"{path.name}: user or item ids are missing in some rows")
    if found["rating"] is not None:
        rating = pd.to_numeric(raw[found["rating"]], errors="coerce")
        if rating.isna().any():
            raise HBenchError(f"{path.name}: the rating column {found['rating']!r} has non-numeric values")
        frame["rating"] = rating.to_numpy(np.float64)
    if found["timestamp"] is not None:
        frame["timestamp"] = _timestamps(raw[found["timestamp"]], path)
    return frame.reset_index(drop=True)


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


def image_folder_files(folder: Path) -> dict[str, Path]:
    """The images directly in `folder`, named `<original item id>.<jpg|jpeg|png|webp>`, by item id.

    Other files are ignored; two images for one item are an error (which one was meant is not known).
    """
    if not folder.is_dir():
        raise HBenchError(f"image folder {folder} does not exist")
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in IMAGE_SUFFIXES or not path.is_file():
            continue
        key = image_key(path.stem)
        if key in found:
            raise HBenchError(f"{folder}: two images for item {path.stem!r} ({found[key].name} and {path.name})")
        found[key] = path
    return found


def image_column_files(files: Mapping[str, Path], column: str, layout: TableLayout) -> dict[str, Path]:
    """Item id -> image path from column `column` of the data files that have it; a relative path is
    taken from its file's folder. Empty cells name no image; two different paths for one item are an error."""
    found: dict[str, Path] = {}
    seen: list[str] = []
    for path in (Path(p) for p in files.values()):
        try:
            raw = _read_table(path, layout)
        except (ValueError, OSError, pd.errors.ParserError) as exc:
            raise HBenchError(f"cannot read {path}: {exc}") from None
        raw.columns = [str(c) for c in raw.columns]
        item_column = _find_column(list(raw.columns), "item")
        if column not in raw.columns or item_column is None:
            seen.append(f"{path.name}: {', '.join(raw.columns)}")
            continue
        pairs = raw[[item_column, column]].dropna().drop_duplicates()
        for item, value in zip(pairs[item_column], pairs[column], strict=True):
            if not str(value).strip():
                continue
            image = Path(str(value).strip()).expanduser()
            image = image if image.is_absolute() else path.parent / image
            key = image_key(item)
            if found.setdefault(key, image) != image:
                raise HBenchError(f"{path.name}: item {item!r} has two image paths ({found[key]} and {image})")
    if len(seen) == len(files):
        raise HBenchError(f"no data file has an image column {column!r} (found columns: {'; '.join(seen)})")
    return found


def custom_image_files(
    files: Mapping[str, Path], folder: Path | None, column: str | None, layout: TableLayout
) -> dict[str, Path] | None:
    """The image file of every item a user's image folder or image-path column names, or None without images."""
    if folder is not None:
        return image_folder_files(Path(folder).expanduser())
    if column is not None:
        return image_column_files(files, column, layout)
    return None


def make_custom_reader(layout: TableLayout, images: Path | None = None, image_column: str | None = None) -> Reader:
    """Reader of user-supplied files, keyed by role: `interactions` alone (hbench splits it), or `train`,
    `test` and optionally `valid` (a fixed split); item images from a folder or an image-path column."""

    def read_custom(files: Mapping[str, Path]) -> RawData:
        image_files = custom_image_files(files, images, image_column, layout)
        source = read_image_files(image_files) if image_files is not None else None
        if "interactions" in files:
            return RawData(interactions=read_custom_table(Path(files["interactions"]), layout, "interactions"),
                           images=source)
        parts = {
            role: read_custom_table(Path(files[role]), layout, role) if role in files else None
            for role in ("train", "valid", "test")
        }
        return RawData(fixed_split=parts, images=source)

    return read_custom
