"""Readers, one per raw format of a registered dataset: `(files: Mapping[str, Path]) -> RawData` with
original ids (a user's own tables are read by `hbench.datasets.custom`).

`files` maps the names a dataset's raw files have (for an archive, the base names of its members) to
local paths. A reader returns rows in file order; columns are `user`, `item` and, when the format has
them, `rating` (float64), `timestamp` (int64) and `order` (int64: file position, used where the file order
is the time order or breaks ties between equal timestamps).
"""

from __future__ import annotations

import ast
import gzip
import json
import operator
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hbench.datasets.safe_pickle import NUMPY_ARRAY_GLOBALS, restricted_load
from hbench.datasets.spec import RawData
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
    except RecursionError:  # nested deeper than any review: a hostile or damaged line
        raise HBenchError(f"{path.name} line {number}: nested too deeply to be a review") from None
    # Some of McAuley's files are Python literals (single quotes); literal_eval evaluates no code.
    try:
        return ast.literal_eval(line)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as exc:
        reason = " ".join(str(exc).split())[:120] or type(exc).__name__
        raise HBenchError(f"{path.name} line {number}: neither JSON nor a Python literal ({reason})") from None


def _append_review(review: Any, path: Path, number: int, users: list[str], items: list[str], ratings: list[float],
                   times: list[int]) -> None:
    try:
        user, item = str(review["reviewerID"]), str(review["asin"])
        rating, time = float(review["overall"]), int(review["unixReviewTime"])
    except (KeyError, TypeError, ValueError, IndexError, OverflowError) as exc:
        raise HBenchError(f"{path.name} line {number}: bad or missing field {exc}") from None
    users.append(user)
    items.append(item)
    ratings.append(rating)
    times.append(time)


def make_amazon2014_reader(file_name: str) -> Reader:
    """Reader of a gzipped JSON-lines review file with `reviewerID`, `asin`, `overall`, `unixReviewTime`."""

    def read_amazon2014(files: Mapping[str, Path]) -> RawData:
        path = _need(files, file_name)
        users: list[str] = []
        items: list[str] = []
        ratings: list[float] = []
        times: list[int] = []
        try:
            with gzip.open(path, "rt", encoding="utf-8") as fh:
                for number, line in enumerate(fh, 1):
                    if line.strip():
                        _append_review(_parse_review(line, path, number), path, number, users, items, ratings, times)
        except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError; a cut stream ends in EOFError
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise HBenchError(f"{path.name}: not a complete gzip file ({reason}); fetch it again") from None
        except UnicodeDecodeError as exc:
            raise HBenchError(f"{path.name}: not UTF-8 text after decompression ({exc.reason})") from None
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


# --- DVBPR .npy with item images (Kang et al., ICDM 2017) -------------------------------------------------

# Keys of an interaction dict that may carry its time; the first one present is kept as the timestamp.
_DVBPR_TIME_KEYS = ("time", "timestamp", "unixReviewTime")


def load_dvbpr_npy(path: Path) -> list[Any]:
    """The six objects of a DVBPR file, `[user_train, user_validation, user_test, Item, usernum, itemnum]`.

    The file is a .npy header followed by a Python 2 pickle of a 6-element object array. It is unpickled
    by the restricted unpickler allowing only numpy array reconstruction, builtin containers and bytes, so
    a file referencing anything else is refused before any of it runs. encoding='latin1' (numpy's rule for
    Python 2 pickles) turns Python 2 `str` keys and JPEG bytes into text of one code point per byte, which
    `_image_bytes` turns back into the exact bytes.
    """
    headers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    with open(path, "rb") as fh:
        try:
            version = np.lib.format.read_magic(fh)
            if version not in headers:
                raise ValueError(f"unsupported .npy version {version[0]}.{version[1]}")
            _, _, dtype = headers[version](fh)
        except ValueError as exc:
            raise HBenchError(f"{path.name}: not a DVBPR .npy file ({exc})") from None
        if not dtype.hasobject:
            raise HBenchError(f"{path.name}: holds a plain {dtype} array, not DVBPR's pickled lists")
        loaded = restricted_load(fh, NUMPY_ARRAY_GLOBALS, encoding="latin1")
    parts = list(loaded) if isinstance(loaded, np.ndarray | list | tuple) else []
    # The array refers to every part: dropping it lets each part go as soon as the reader is done with it.
    del loaded
    if len(parts) != 6:
        raise HBenchError(
            f"{path.name}: expected [user_train, user_validation, user_test, Item, usernum, itemnum], "
            f"found {len(parts)} objects"
        )
    return parts


def _field(entry: Mapping[Any, Any], key: str) -> Any:
    """`entry[key]` or None, whether keys are text (Python 2 `str` read as latin1) or bytes."""
    value = entry.get(key)
    return entry.get(key.encode("ascii")) if value is None else value


def _count(value: Any, name: str, path: Path) -> int:
    try:
        return operator.index(value)
    except TypeError:
        raise HBenchError(f"{path.name}: {name} is a {type(value).__name__}, not an integer") from None


def _by_user(obj: Any, where: str) -> Iterable[tuple[Any, Any]]:
    """(user, entries) of a dict keyed by user or a list indexed by user."""
    if isinstance(obj, dict):
        return obj.items()
    if isinstance(obj, list | tuple | np.ndarray):
        return enumerate(obj)
    raise HBenchError(f"{where}: expected a dict or list indexed by user, found {type(obj).__name__}")


def _dvbpr_part(obj: Any, where: str, limits: Mapping[str, int], *, single: bool) -> pd.DataFrame:
    """One part of the shipped split as a reader frame; `single`: at most one item per user (validation, test)."""
    users: list[int] = []
    items: list[int] = []
    times: list[Any] = []
    for user, entries in _by_user(obj, where):
        if isinstance(entries, dict):
            entries = [entries]  # validation and test may hold the item's dict itself instead of a list of one
        if not isinstance(entries, list | tuple) or (single and len(entries) > 1):
            raise HBenchError(f"{where}[{user}]: expected {'one item' if single else 'a list of items'}")
        for entry in entries:
            item = _field(entry, "productid") if isinstance(entry, dict) else None
            if not isinstance(user, int | np.integer) or not isinstance(item, int | np.integer):
                raise HBenchError(f"{where}[{user}]: expected integer users and dicts with an integer 'productid'")
            users.append(int(user))
            items.append(int(item))
            times.append(next((t for key in _DVBPR_TIME_KEYS if (t := _field(entry, key)) is not None), None))
    # A time on some entries only cannot order the others: then the part has no timestamp.
    timed = bool(times) and all(t is not None for t in times)
    try:
        frame = _frame(np.asarray(users, np.int64), np.asarray(items, np.int64), timestamp=times if timed else None)
    except (TypeError, ValueError):
        raise HBenchError(f"{where}: interaction times are not numbers") from None
    for column, limit in limits.items():
        values = frame[column].to_numpy()
        if len(values) and (values.min() < 0 or values.max() >= limit):
            bad = values.min() if values.min() < 0 else values.max()
            raise HBenchError(f"{where}: {column} {bad} is outside 0..{limit - 1} ({column}num is {limit})")
    return frame


def _image_bytes(value: Any, where: str) -> bytes | None:
    """An item's image as bytes (None or empty: no image)."""
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, str):
        # latin1 made one code point of every byte; any other text cannot be an image and will not decode.
        return value.encode("latin1", errors="replace")
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    if isinstance(value, np.ndarray) and value.dtype == np.uint8:
        return value.tobytes()
    raise HBenchError(f"{where}: 'imgs' is a {type(value).__name__}, not image bytes")


def _dvbpr_images(table: Any, source: str) -> Iterator[tuple[Any, bytes | None]]:
    """(item id, image bytes or None) of every entry of `Item`, in order.

    Each entry is taken out of `table` before its bytes are yielded, so the loaded file shrinks as the
    image store grows: preparing never holds a second copy of the images.
    """
    keys = list(table) if isinstance(table, dict) else range(len(table))
    for key in keys:
        entry, table[key] = table[key], None
        if entry is not None and not isinstance(entry, dict):
            raise HBenchError(f"{source}: Item[{key}] is a {type(entry).__name__}, expected a dict with 'imgs'")
        value = _field(entry, "imgs") if entry is not None else None
        del entry
        data = _image_bytes(value, f"{source}: Item[{key}]")
        del value
        yield key, data


def read_dvbpr_npy(path: Path) -> RawData:
    """A DVBPR file (`load_dvbpr_npy`), its shipped split kept, with the item images as `RawData.images`.

    `user_train[u]` (the user_* objects are dicts or lists indexed by user) is a list of dicts whose
    `productid` is a 0-based item id; other keys are ignored, except a time (`time`, `timestamp`,
    `unixReviewTime`), kept as the timestamp. Validation and test hold one item per user (as a one-element
    list or as the dict itself; a user with none has none, more than one is an error). `Item[j]['imgs']` (`Item` a dict or list indexed by item id) holds item j's
    JPEG bytes; items without them are reported as missing by the image store.
    """
    user_train, user_valid, user_test, table, usernum, itemnum = load_dvbpr_npy(path)
    limits = {"user": _count(usernum, "usernum", path), "item": _count(itemnum, "itemnum", path)}
    split = {
        "train": _dvbpr_part(user_train, f"{path.name}: user_train", limits, single=False),
        "valid": _dvbpr_part(user_valid, f"{path.name}: user_validation", limits, single=True),
        "test": _dvbpr_part(user_test, f"{path.name}: user_test", limits, single=True),
    }
    if not isinstance(table, dict | list | np.ndarray):
        raise HBenchError(f"{path.name}: Item is a {type(table).__name__}, expected a dict or list of item dicts")
    return RawData(fixed_split=split, images=_dvbpr_images(table, path.name))


def make_dvbpr_reader(file_name: str) -> Reader:
    """Reader of one DVBPR `.npy` file named `file_name`."""

    def read_dvbpr(files: Mapping[str, Path]) -> RawData:
        return read_dvbpr_npy(_need(files, file_name))

    return read_dvbpr


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
