"""DVBPR files with item images and the image store: a file built in exactly the real layout (a Python 2
protocol-2 pickle inside a .npy) from real photos, prepared end to end; code-running files refused before
anything runs; custom datasets with an image folder or an image-path column."""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from rich.console import Console

from hbench.atomic import sha256_file
from hbench.cli import main
from hbench.datasets.custom import CustomFiles
from hbench.datasets.formats import read_dvbpr_npy
from hbench.datasets.images import (
    INDEX,
    ImageInfo,
    ImageStore,
    image_key,
    inspect_image,
)
from hbench.datasets.prepare import dataset_statistics, prepare_dataset
from hbench.errors import HBenchError
from hbench.paths import prepared_dir
from hbench.ui import Feedback

MEN = "AmazonMenWithImgPartitioned.npy"
N_USERS = 320


# --- writing the DVBPR layout ----------------------------------------------------------------------------


class Py2Pickler(pickle._Pickler):  # type: ignore[name-defined]
    """Writes what Python 2 wrote at protocol 2: every `str` (keys, JPEG bytes, array data) as
    SHORT_BINSTRING/BINSTRING, and numpy's core module under its numpy 1 name `numpy.core`."""

    dispatch = pickle._Pickler.dispatch.copy()  # type: ignore[attr-defined]

    def _string(self, data: bytes) -> None:
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)

    def save_bytes(self, obj: bytes) -> None:
        self._string(obj)
        self.memoize(obj)

    def save_str(self, obj: str) -> None:
        # Python 2 literals such as 'productid' were byte strings.
        self._string(obj.encode("latin1"))
        self.memoize(obj)

    def save_global(self, obj: Any, name: str | None = None) -> None:
        module = getattr(obj, "__module__", "") or ""
        if not module.startswith("numpy._core"):
            super().save_global(obj, name)
            return
        name = name or obj.__qualname__
        self.write(pickle.GLOBAL + f"{module.replace('numpy._core', 'numpy.core', 1)}\n{name}\n".encode())
        self.memoize(obj)

    dispatch[bytes] = save_bytes
    dispatch[str] = save_str


def write_dvbpr_npy(path: Path, parts: list[Any], *, python2: bool = True) -> None:
    """`np.save` of the object array `parts` as DVBPR's Python 2 did: .npy 1.0 header, protocol-2 pickle.

    `python2=False` writes it as Python 3 would (bytes as `_codecs.encode`, text as unicode).
    """
    array = np.empty(len(parts), dtype=object)
    for index, part in enumerate(parts):
        array[index] = part
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, {"descr": "|O", "fortran_order": False, "shape": array.shape})
        (Py2Pickler(fh, protocol=2) if python2 else pickle.Pickler(fh, protocol=2)).dump(array)


def real_photos(shared_data: Path, count: int) -> list[bytes]:
    """The bytes of the first `count` photos of clothing-cc0 (public domain)."""
    folder = shared_data / "clothing-cc0"
    names = pd.read_csv(folder / "images.csv")["image"].head(count)
    return [(folder / "images" / f"{name}.jpg").read_bytes() for name in names]


@dataclass
class Layout:
    parts: list[Any]
    images: dict[int, bytes]  # item -> the bytes the file holds for it (absent: no image)
    train: set[tuple[int, int]]
    valid: set[tuple[int, int]]
    test: set[tuple[int, int]]
    missing: int
    corrupt: int


def make_layout(photos: list[bytes], *, python2: bool, seed: int = 0) -> Layout:
    """Seeded interactions over the photos plus one item without an image and one with corrupt bytes.

    python2: str keys, user_train a dict, validation/test one-element lists, Item a list whose entries carry
    a numpy category vector and an asin, times on every interaction. Otherwise: bytes keys, lists by user,
    validation/test the dict itself, Item a dict, no times.
    """
    rng = np.random.default_rng(seed)
    n_items = len(photos) + 2
    missing, corrupt = 3, 10
    images: dict[int, bytes] = {}
    photo = iter(photos)
    for item in range(n_items):
        if item == corrupt:
            images[item] = rng.bytes(3000)
        elif item != missing:
            images[item] = next(photo)

    def key(name: str) -> Any:
        return name if python2 else name.encode()

    train: set[tuple[int, int]] = set()
    valid: set[tuple[int, int]] = set()
    test: set[tuple[int, int]] = set()
    user_train: dict[int, list] = {}
    user_valid: dict[int, Any] = {}
    user_test: dict[int, Any] = {}
    for user in range(N_USERS):
        picks = rng.permutation(n_items)[: int(rng.integers(3, 9)) + 2]
        if user % n_items not in picks:
            picks[0] = user % n_items  # every item is somebody's
        times = np.sort(rng.integers(1_300_000_000, 1_400_000_000, len(picks)))
        entries = [
            {key("productid"): int(item), key("rating"): 5, **({key("time"): int(t)} if python2 else {})}
            for item, t in zip(picks, times, strict=True)
        ]
        user_train[user] = entries[:-2]
        user_valid[user] = [entries[-2]] if python2 else entries[-2]
        user_test[user] = [entries[-1]] if python2 else entries[-1]
        train |= {(user, int(i)) for i in picks[:-2]}
        valid.add((user, int(picks[-2])))
        test.add((user, int(picks[-1])))
    item_entries = []
    for item in range(n_items):
        entry: dict[Any, Any] = {key("asin"): f"B{item:09d}".encode() if not python2 else f"B{item:09d}"}
        if python2:
            entry[key("c")] = np.eye(6, dtype=np.float64)[item % 6]
        if item in images:
            entry[key("imgs")] = images[item]
        item_entries.append(entry)
    if python2:
        parts = [user_train, [user_valid[u] for u in range(N_USERS)], user_test, item_entries, N_USERS, n_items]
    else:
        parts = [
            [user_train[u] for u in range(N_USERS)],
            [user_valid[u] for u in range(N_USERS)],
            [user_test[u] for u in range(N_USERS)],
            dict(enumerate(item_entries)),
            N_USERS,
            n_items,
        ]
    return Layout(parts, images, train, valid, test, missing, corrupt)


def recording_feedback() -> tuple[Feedback, io.StringIO]:
    out = io.StringIO()
    return Feedback(quiet=False, console=Console(file=out, width=250)), out


def pairs(ds: Any, part: Any) -> set[tuple[int, int]]:
    """(original user, original item) pairs of a prepared part."""
    users = pd.read_parquet(ds.path / "users.parquet")["original_id"].astype(int).to_numpy()
    items = pd.read_parquet(ds.path / "items.parquet")["original_id"].astype(int).to_numpy()
    return set(zip(users[part.users].tolist(), items[part.items].tolist(), strict=True))


# --- the layout itself -----------------------------------------------------------------------------------


def test_written_file_has_the_python2_layout(shared_data: Path, tmp_path: Path) -> None:
    layout = make_layout(real_photos(shared_data, 20), python2=True)
    path = tmp_path / MEN
    write_dvbpr_npy(path, layout.parts)
    data = path.read_bytes()
    assert data.startswith(b"\x93NUMPY\x01\x00")
    assert b"cnumpy.core.multiarray\n_reconstruct\n" in data and b"_codecs" not in data
    # numpy itself reads it as it reads DVBPR's files: latin1 keys, images as latin1 text.
    loaded = np.load(path, allow_pickle=True, encoding="latin1")
    assert {entry["productid"] for entry in loaded[0][0]} == {item for user, item in layout.train if user == 0}
    assert loaded[3][0]["imgs"].encode("latin1") == layout.images[0]
    raw = read_dvbpr_npy(path)
    assert raw.fixed_split is not None and len(raw.fixed_split["valid"]) == N_USERS
    assert "timestamp" in raw.fixed_split["train"].columns and "rating" not in raw.fixed_split["train"].columns
    assert raw.images is not None
    assert dict(raw.images) == {item: layout.images.get(item) for item in range(len(layout.parts[3]))}


# --- prepared end to end ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("python2", "n_photos"), [(True, 200), (False, 120)])
def test_dvbpr_file_prepares_end_to_end(python2: bool, n_photos: int, shared_data: Path, hbench_home: Path,
                                        tmp_path: Path) -> None:
    layout = make_layout(real_photos(shared_data, n_photos), python2=python2)
    n_items = n_photos + 2
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    write_dvbpr_npy(mirror / MEN, layout.parts, python2=python2)
    feedback, out = recording_feedback()
    ds = prepare_dataset("amazon-men", sources=[mirror], feedback=feedback)

    # The shipped split, as the file has it: one validation and one test item per user.
    assert (ds.n_users, ds.n_items) == (N_USERS, n_items)
    assert (len(ds.train), len(ds.valid), len(ds.test)) == (len(layout.train), N_USERS, N_USERS)
    assert pairs(ds, ds.train) == layout.train and pairs(ds, ds.valid) == layout.valid
    assert pairs(ds, ds.test) == layout.test
    assert (ds.train.timestamps is not None) == python2
    assert ds.default_protocol == "auc" and ds.test_negatives is not None and ds.test_negatives.shape == (N_USERS, 100)
    assert ds.manifest["options"]["split"] == "fixed" and ds.manifest["options"]["user_k"] == 0

    # Every image stored under its internal id with the source's hash; bad ones counted, never dropped.
    store = ImageStore(ds.path)
    counts = {"ok": n_photos, "missing": 1, "undecodable": 1}
    assert store.counts() == counts and dataset_statistics(ds)["images"] == counts
    assert {k: ds.manifest["images"][k] for k in counts} == counts
    assert ds.manifest["files"][INDEX] == sha256_file(ds.path / INDEX)
    originals = pd.read_parquet(ds.path / "items.parquet")["original_id"].astype(int).tolist()
    status = store.status.set_index("item")
    for item, original in enumerate(originals):
        row = status.loc[item]
        if original == layout.missing:
            assert row["status"] == "missing" and store.path_of(item) is None and row["sha256"] == ""
            continue
        expected = hashlib.sha256(layout.images[original]).hexdigest()
        assert row["sha256"] == expected
        if original == layout.corrupt:
            assert row["status"] == "undecodable" and store.path_of(item) is None
            continue
        path = store.path_of(item)
        assert path is not None and path.name == f"{item}.jpg" and row["status"] == "ok"
        assert hashlib.sha256(path.read_bytes()).hexdigest() == expected
        assert row["format"] == "JPEG" and row["width"] > 0 and row["height"] > 0
    assert len(store.available_items()) == n_photos
    assert originals.index(layout.missing) not in store.available_items()
    text = " ".join(out.getvalue().split())
    assert f"1 of {n_items} items have no image (original ids {layout.missing})" in text
    assert f"1 of {n_items} items have an image that does not decode (original ids {layout.corrupt})" in text

    # Reused as long as nothing changed; a damaged store is rebuilt.
    feedback, out = recording_feedback()
    again = prepare_dataset("amazon-men", sources=[mirror], feedback=feedback)
    assert "already prepared" in out.getvalue() and again.manifest == ds.manifest
    first_ok = int(store.available_items()[0])
    path = store.path_of(first_ok)
    assert path is not None
    path.write_bytes(b"changed")
    feedback, out = recording_feedback()
    rebuilt = prepare_dataset("amazon-men", sources=[mirror], feedback=feedback)
    assert "rebuilding" in out.getvalue() and rebuilt.split_hash == ds.split_hash
    assert ImageStore(rebuilt.path).path_of(first_ok).read_bytes() == layout.images[originals[first_ok]]


def test_registered_dvbpr_datasets() -> None:
    from hbench.datasets.catalog import DATASETS

    for name, file_name, size in (
        ("amazon-men", MEN, "2.1 GB"),
        ("amazon-women", "AmazonWomenWithImgPartitioned.npy", "6.2 GB"),
        ("amazon-fashion", "AmazonFashion6ImgPartitioned.npy", ""),
        ("tradesy", "TradesyImgPartitioned.npy", ""),
    ):
        spec = DATASETS[name]
        (raw,) = spec.raw_files
        assert raw.name == file_name and raw.url == "http://cseweb.ucsd.edu/~wckang/DVBPR/" + file_name
        assert raw.sha256 is None and size in raw.size_hint
        options = spec.defaults
        assert (options.split, options.protocol, options.negatives, options.user_k, options.item_k) == (
            "fixed", "auc", 100, 0, 0)
        assert options.dedup


# --- refusing files that run code ------------------------------------------------------------------------


class _Payload:
    def __init__(self, func: object, *args: object) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return self.func, self.args


@pytest.mark.parametrize("where", ["global", "inside-item"])
def test_code_running_dvbpr_file_is_refused_before_it_runs(where: str, shared_data: Path, hbench_home: Path,
                                                           tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    path = mirror / MEN
    if where == "global":
        # GLOBAL os.system, called with a command: what a hostile file would be, byte for byte.
        with open(path, "wb") as fh:
            np.lib.format.write_array_header_1_0(fh, {"descr": "|O", "fortran_order": False, "shape": (6,)})
            fh.write(b"cos\nsystem\n(S'touch %s'\ntR." % str(marker).encode())
    else:
        layout = make_layout(real_photos(shared_data, 12), python2=True)
        layout.parts[3][2]["imgs"] = _Payload(os.system, f"touch {marker}")
        write_dvbpr_npy(path, layout.parts)
    with pytest.raises(HBenchError, match=f"refusing to unpickle {MEN}: it references (os|posix).system"):
        prepare_dataset("amazon-men", sources=[mirror])
    assert not marker.exists()
    assert not prepared_dir("amazon-men").exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not a numpy file at all", "not a DVBPR .npy file"),
        (None, "holds a plain int64 array"),
        (["only", "three", "parts"], "found 3 objects"),
    ],
)
def test_files_that_are_not_dvbpr_are_one_line_errors(content: Any, message: str, tmp_path: Path) -> None:
    path = tmp_path / MEN
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is None:
        np.save(path, np.arange(4, dtype=np.int64))
    else:
        write_dvbpr_npy(path, content)
    with pytest.raises(HBenchError, match=message):
        read_dvbpr_npy(path)


def test_item_ids_outside_itemnum_are_refused(shared_data: Path, tmp_path: Path) -> None:
    layout = make_layout(real_photos(shared_data, 12), python2=True)
    layout.parts[5] = 3  # itemnum smaller than the ids used
    write_dvbpr_npy(tmp_path / MEN, layout.parts)
    with pytest.raises(HBenchError, match=r"item \d+ is outside 0..2 \(itemnum is 3\)"):
        read_dvbpr_npy(tmp_path / MEN)


# --- checking images -------------------------------------------------------------------------------------


def test_inspect_image_decodes_to_the_end(shared_data: Path) -> None:
    photo = real_photos(shared_data, 1)[0]
    info = inspect_image(photo)
    assert info is not None and info.format == "JPEG" and info.width > 0 and info.height > 0
    assert inspect_image(photo[: len(photo) // 2]) is None  # opens fine, but the scan data is cut
    assert inspect_image(b"\xff\xd8\xff\xe0" + bytes(500)) is None
    png = io.BytesIO()
    Image.open(io.BytesIO(photo)).save(png, format="PNG")
    assert inspect_image(png.getvalue()) == ImageInfo("PNG", info.width, info.height)
    damaged = bytearray(png.getvalue())
    damaged[len(damaged) // 2] ^= 0xFF
    assert inspect_image(bytes(damaged)) is None


def test_image_keys_match_csv_ids_and_file_names() -> None:
    assert image_key(7) == image_key("007") == image_key(np.int64(7)) == "7"
    assert image_key("sku-1") == "sku-1" and image_key(" B0001 ") == "B0001"


# --- custom datasets with images -------------------------------------------------------------------------


def write_custom_interactions(path: Path, items: list[Any], image_paths: dict[Any, str] | None = None) -> None:
    rng = np.random.default_rng(1)
    rows = []
    for user in range(30):
        for k, index in enumerate(rng.choice(len(items), 4, replace=False)):
            item = items[int(index)]
            row = {"user_id": f"u{user}", "item_id": item, "timestamp": 1000 + 10 * k}
            if image_paths is not None:
                row["picture"] = image_paths.get(item, "")
            rows.append(row)
    pd.DataFrame(rows).to_csv(path, index=False)


def test_custom_image_folder(shared_data: Path, hbench_home: Path, tmp_path: Path) -> None:
    photos = real_photos(shared_data, 7)
    folder = tmp_path / "pictures"
    folder.mkdir()
    for item in range(1, 6):
        (folder / f"{item:03d}.jpg").write_bytes(photos[item])  # 001.jpg: the CSV's 1
    Image.open(io.BytesIO(photos[6])).save(folder / "6.PNG", format="PNG")
    (folder / "99.jpg").write_bytes(photos[0])  # no such item: ignored
    (folder / "notes.txt").write_text("not an image")
    csv = tmp_path / "town.csv"
    write_custom_interactions(csv, list(range(1, 8)))  # item 7 has no image
    custom = CustomFiles(name="town", interactions=csv, images=folder)
    feedback, out = recording_feedback()
    ds = prepare_dataset("town", custom=custom, feedback=feedback)
    store = ImageStore(ds.path)
    assert dataset_statistics(ds)["images"] == {"ok": 6, "missing": 1, "undecodable": 0}
    originals = pd.read_parquet(ds.path / "items.parquet")["original_id"].tolist()
    assert originals == [str(i) for i in range(1, 8)]
    assert store.path_of(0).read_bytes() == photos[1] and store.path_of(0).suffix == ".jpg"
    png = store.path_of(5)
    assert png is not None and png.suffix == ".png" and png.read_bytes() == (folder / "6.PNG").read_bytes()
    assert store.path_of(6) is None
    assert "items have no image (original ids 7)" in " ".join(out.getvalue().split())

    # The folder keys the cache: unchanged, reused; an image added, prepared again.
    feedback, out = recording_feedback()
    prepare_dataset("town", custom=custom, feedback=feedback)
    assert "already prepared" in out.getvalue()
    (folder / "7.webp").write_bytes(Path(png).read_bytes())  # a PNG under a .webp name: stored as .png
    ds = prepare_dataset("town", custom=custom)
    assert ImageStore(ds.path).counts() == {"ok": 7, "missing": 0, "undecodable": 0}


def test_custom_image_column(shared_data: Path, hbench_home: Path, tmp_path: Path) -> None:
    photos = real_photos(shared_data, 3)
    (tmp_path / "pics").mkdir()
    (tmp_path / "pics" / "a.jpg").write_bytes(photos[0])
    elsewhere = tmp_path / "elsewhere.jpg"
    elsewhere.write_bytes(photos[1])
    items = ["sku-a", "sku-b", "sku-c", "sku-d", "sku-e"]
    paths = {"sku-a": "pics/a.jpg", "sku-b": str(elsewhere), "sku-c": "pics/gone.jpg"}  # d, e: empty cells
    csv = tmp_path / "data" / "shop.csv"
    csv.parent.mkdir()
    write_custom_interactions(csv, items, {k: ("../" + v if not v.startswith("/") else v) for k, v in paths.items()})
    ds = prepare_dataset("shop", custom=CustomFiles(name="shop", interactions=csv, image_column="picture"))
    store = ImageStore(ds.path)
    assert store.counts() == {"ok": 2, "missing": 3, "undecodable": 0}
    assert store.path_of(0).read_bytes() == photos[0] and store.path_of(1).read_bytes() == photos[1]
    assert ds.manifest["custom"]["image_column"] == "picture"

    bad = tmp_path / "bad.csv"
    pd.DataFrame({"user": [1, 2], "item": [5, 5], "picture": ["x.jpg", "y.jpg"]}).to_csv(bad, index=False)
    with pytest.raises(HBenchError, match=r"item 5 has two image paths"):
        prepare_dataset("bad", custom=CustomFiles(name="bad", interactions=bad, image_column="picture"))
    with pytest.raises(HBenchError, match=r"no data file has an image column 'photo'"):
        prepare_dataset("bad", custom=CustomFiles(name="bad", interactions=bad, image_column="photo"))
    with pytest.raises(HBenchError, match="not both"):
        prepare_dataset("bad", custom=CustomFiles(name="bad", interactions=bad, images=tmp_path, image_column="x"))


def test_cli_prepare_custom_with_images(shared_data: Path, hbench_home: Path, tmp_path: Path, capsys) -> None:
    folder = tmp_path / "pictures"
    folder.mkdir()
    for item, photo in enumerate(real_photos(shared_data, 3)):
        (folder / f"{item}.jpg").write_bytes(photo)
    csv = tmp_path / "town.csv"
    write_custom_interactions(csv, list(range(4)))
    with pytest.raises(SystemExit) as info:
        main(["prepare", "custom", "--name", "town", "--interactions", str(csv), "--images", str(folder), "--quiet"])
    out, err = capsys.readouterr()
    assert info.value.code == 0, err
    assert "images.ok" in out and "images.missing" in out
    assert "warning: 1 of 4 items have no image" in " ".join(err.split())
    with pytest.raises(SystemExit) as info:
        main(["prepare", "amazon-men", "--images", str(folder)])
    out, err = capsys.readouterr()
    assert info.value.code != 0 and err.count("\n") == 1 and "are for `hbench prepare custom` only" in err
    shutil.rmtree(folder)
    with pytest.raises(SystemExit) as info:
        main(["prepare", "custom", "--interactions", str(csv), "--images", str(folder)])
    assert info.value.code != 0 and "image folder" in capsys.readouterr().err
