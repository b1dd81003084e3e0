"""Readers, one per raw format: `(files: Mapping[str, Path]) -> RawData` with original ids.

`files` maps the names a dataset's raw files have (for an archive, the base names of its members) to
local paths. A reader returns rows in file order; columns are `user`, `item` and, when the format has
them, `rating` (float64), `timestamp` (int64) and `order` (int64: file position, used where the file order
is the time order or breaks ties between equal timestamps).
"""

from __future__ import annotations

import ast
import gzip
import json
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hbench.datasets.registry import RawData
from hbench.errors import HBenchError

Reader = Callable[[Mapping[str, Path]], RawData]


def _need(files: Mapping[str, Path], name: str) -> Path:
    if name not in files:
        raise HBenchError(f"raw file {name!r} is missing (have: {', '.join(sorted(files)) or 'nothing'})")
    return Path(files[name])


def _frame(users: Any, items: Any, rating: Any = None, timestamp: Any = None, order: Any = None) -> pd.DataFrame:
    """A reader frame with the standard column names and dtypes."""
    columns: dict[str, Any] = {"user": users, "item": items}
    if rating is not None:
        columns["rating"] = np.asarray(rating, dtype=np.float64)
    if timestamp is not None:
        columns["timestamp"] = np.asarray(timestamp, dtype=np.int64)
    if order is not None:
        columns["order"] = np.asarray(order, dtype=np.int64)
    return pd.DataFrame(columns)


# --- MovieLens -------------------------------------------------------------------------------------------


def _read_movielens(path: Path, sep: str, columns: list[int], header: int | None) -> RawData:
    try:
        raw = pd.read_csv(path, sep=sep, header=header, usecols=columns, engine="c")
    except (ValueError, pd.errors.ParserError) as exc:
        raise HBenchError(f"{path.name}: expected user, item, rating, timestamp columns ({exc})") from None
    user, item, rating, ts = (raw.iloc[:, i] for i in range(4))
    return RawData(interactions=_frame(user.to_numpy(np.int64), item.to_numpy(np.int64), rating, ts))


def read_movielens_100k(files: Mapping[str, Path]) -> RawData:
    """`u.data` of ml-100k: `user<TAB>item<TAB>rating<TAB>unix_ts`, no header."""
    return _read_movielens(_need(files, "u.data"), "\t", [0, 1, 2, 3], None)


def read_movielens_1m(files: Mapping[str, Path]) -> RawData:
    """`ratings.dat` of ml-1m: `user::item::rating::unix_ts`, no header."""
    # Splitting on a single ':' turns '::' into an empty field between values, so the fast C parser
    # can read the file: the values are columns 0, 2, 4 and 6.
    return _read_movielens(_need(files, "ratings.dat"), ":", [0, 2, 4, 6], None)


def read_movielens_20m(files: Mapping[str, Path]) -> RawData:
    """`ratings.csv` of ml-20m: header `userId,movieId,rating,timestamp`."""
    return _read_movielens(_need(files, "ratings.csv"), ",", [0, 1, 2, 3], 0)


# --- Amazon 2014 (McAuley) -------------------------------------------------------------------------------


def _parse_review(line: str, path: Path, number: int) -> dict[str, Any]:
    try:
        return json.loads(line)
    except json.JSONDecodeError:
        pass
    # Some of McAuley's files are Python literals (single quotes); literal_eval evaluates no code.
    try:
        return ast.literal_eval(line)
    except (ValueError, SyntaxError) as exc:
        raise HBenchError(f"{path.name} line {number}: neither JSON nor a Python literal ({exc})") from None


def make_amazon2014_reader(file_name: str) -> Reader:
    """Reader of a gzipped JSON-lines review file with `reviewerID`, `asin`, `overall`, `unixReviewTime`."""

    def read_amazon2014(files: Mapping[str, Path]) -> RawData:
        path = _need(files, file_name)
        users, items, ratings, times = [], [], [], []
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            for number, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                review = _parse_review(line, path, number)
                try:
                    users.append(str(review["reviewerID"]))
                    items.append(str(review["asin"]))
                    ratings.append(float(review["overall"]))
                    times.append(int(review["unixReviewTime"]))
                except (KeyError, TypeError, ValueError) as exc:
                    raise HBenchError(f"{path.name} line {number}: bad or missing field {exc}") from None
        # Reviews of one day share a unixReviewTime: the file position breaks those ties.
        return RawData(interactions=_frame(users, items, ratings, times, np.arange(len(users))))

    return read_amazon2014


# --- sequence files (S3Rec / ICLRec) ---------------------------------------------------------------------


def read_sequence_file(path: Path) -> pd.DataFrame:
    """`user item item ...` per line, items in time order: one row per (user, item) with `order` = position."""
    users: list[np.ndarray] = []
    items: list[np.ndarray] = []
    orders: list[np.ndarray] = []
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) < 2:
                raise HBenchError(f"{path.name} line {number}: a user without items")
            try:
                sequence = np.array(fields[1:], dtype=np.int64)
                user = int(fields[0])
            except ValueError:
                raise HBenchError(f"{path.name} line {number}: ids must be integers") from None
            users.append(np.full(len(sequence), user, dtype=np.int64))
            items.append(sequence)
            orders.append(np.arange(len(sequence), dtype=np.int64))
    if not users:
        raise HBenchError(f"{path.name} holds no sequences")
    return _frame(np.concatenate(users), np.concatenate(items), order=np.concatenate(orders))


def make_sequence_reader(file_name: str) -> Reader:
    """Reader of one sequence file named `file_name`."""

    def read_sequences(files: Mapping[str, Path]) -> RawData:
        return RawData(interactions=read_sequence_file(_need(files, file_name)))

    return read_sequences


# --- sisinflab TSV splits --------------------------------------------------------------------------------


def read_sisinflab_tsv(path: Path) -> pd.DataFrame:
    """`user<TAB>item<TAB>rating[<TAB>unix_ts]`, no header."""
    raw = pd.read_csv(path, sep="\t", header=None)
    if raw.shape[1] not in (3, 4):
        raise HBenchError(f"{path.name}: expected user, item, rating[, timestamp] columns, found {raw.shape[1]}")
    timestamp = raw.iloc[:, 3] if raw.shape[1] == 4 else None
    return _frame(raw.iloc[:, 0].to_numpy(np.int64), raw.iloc[:, 1].to_numpy(np.int64), raw.iloc[:, 2], timestamp)


def make_sisinflab_reader(train: str, valid: str | None, test: str) -> Reader:
    """Reader of a split shipped as sisinflab TSV files (Elliot's layout)."""

    def read_sisinflab(files: Mapping[str, Path]) -> RawData:
        return RawData(
            fixed_split={
                "train": read_sisinflab_tsv(_need(files, train)),
                "valid": read_sisinflab_tsv(_need(files, valid)) if valid else None,
                "test": read_sisinflab_tsv(_need(files, test)),
            }
        )

    return read_sisinflab


# --- HGCF pickles ----------------------------------------------------------------------------------------


def _load_pickle(path: Path) -> Any:
    # Imported here so that reading any other format works while that module is absent or broken.
    from hbench.datasets.safe_pickle import restricted_load

    return restricted_load(path)


def _user_lists(obj: Any, name: str) -> dict[int, list[int]]:
    """A dict user -> list of items, or a list of lists indexed by user, as {user: [items]}."""
    pairs: Iterable[tuple[Any, Any]]
    if isinstance(obj, dict):
        pairs = obj.items()
    elif isinstance(obj, list):
        pairs = enumerate(obj)
    else:
        raise HBenchError(f"{name}: expected a dict or list of item lists, found {type(obj).__name__}")
    out: dict[int, list[int]] = {}
    for user, items in pairs:
        if not isinstance(user, int) or not isinstance(items, list | tuple | set):
            raise HBenchError(f"{name}: expected integer users mapped to item lists")
        if not all(isinstance(i, int) for i in items):
            raise HBenchError(f"{name}: items of user {user} are not all integers")
        out[user] = list(items)
    return out


def _lists_frame(lists: Mapping[int, list[int]]) -> pd.DataFrame:
    users = np.fromiter((u for u, items in lists.items() for _ in items), dtype=np.int64)
    items = np.fromiter((i for _, items in lists.items() for i in items), dtype=np.int64)
    return _frame(users, items)


def read_hgcf_pickles(files: Mapping[str, Path]) -> RawData:
    """HGCF's `train.pkl` / `test.pkl` (dict user -> item list) and `user_item_list.pkl` (list of all
    items per user), loaded with a restricted unpickler. The full lists must equal train ∪ test."""
    train = _user_lists(_load_pickle(_need(files, "train.pkl")), "train.pkl")
    test = _user_lists(_load_pickle(_need(files, "test.pkl")), "test.pkl")
    full = _user_lists(_load_pickle(_need(files, "user_item_list.pkl")), "user_item_list.pkl")
    users = set(train) | set(test) | set(full)
    mismatched = [u for u in sorted(users) if set(full.get(u, ())) != set(train.get(u, ())) | set(test.get(u, ()))]
    if mismatched:
        raise HBenchError(
            f"user_item_list.pkl disagrees with train.pkl ∪ test.pkl for {len(mismatched)} users "
            f"(first: user {mismatched[0]}); the files do not belong together"
        )
    return RawData(fixed_split={"train": _lists_frame(train), "valid": None, "test": _lists_frame(test)})


# --- goodbooks-10k ---------------------------------------------------------------------------------------


def read_goodbooks(files: Mapping[str, Path]) -> RawData:
    """goodbooks-10k `ratings.csv`: header `user_id,book_id,rating`, rows in time order (no timestamps)."""
    path = _need(files, "ratings.csv")
    raw = pd.read_csv(path, dtype={"user_id": np.int64, "book_id": np.int64, "rating": np.float64})
    missing = {"user_id", "book_id", "rating"} - set(raw.columns)
    if missing:
        raise HBenchError(f"{path.name}: missing columns {', '.join(sorted(missing))}")
    order = np.arange(len(raw))
    frame = _frame(raw["user_id"].to_numpy(), raw["book_id"].to_numpy(), raw["rating"], order=order)
    return RawData(interactions=frame)


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


def _read_table(path: Path, sep: str | None) -> pd.DataFrame:
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return pd.read_parquet(path)
    if sep is None:
        sep = {".csv": ",", ".tsv": "\t", ".tab": "\t"}.get(suffix)
    if sep is None:
        # Unknown extension: let the csv sniffer guess the separator from the first lines.
        return pd.read_csv(path, sep=None, engine="python")
    return pd.read_csv(path, sep=sep)


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


def read_custom_table(path: Path, sep: str | None = None) -> pd.DataFrame:
    """A CSV / TSV / Parquet file with a header naming user and item (and optionally rating and
    timestamp) columns, under any of the names in `COLUMN_ALIASES`."""
    if not path.is_file():
        raise HBenchError(f"custom data file {path} does not exist")
    try:
        raw = _read_table(path, sep)
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise HBenchError(f"cannot read {path}: {exc}") from None
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


def make_custom_reader(sep: str | None) -> Reader:
    """Reader of user-supplied files, keyed by role: `interactions` alone (hbench splits it), or `train`,
    `test` and optionally `valid` (a fixed split)."""

    def read_custom(files: Mapping[str, Path]) -> RawData:
        if "interactions" in files:
            return RawData(interactions=read_custom_table(Path(files["interactions"]), sep))
        parts = {
            role: read_custom_table(Path(files[role]), sep) if role in files else None
            for role in ("train", "valid", "test")
        }
        return RawData(fixed_split=parts)

    return read_custom
