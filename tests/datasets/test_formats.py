"""Format readers on small files written in exactly the real layouts."""

from __future__ import annotations

import dataclasses
import gzip
import json
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hbench.datasets import custom, formats
from hbench.datasets.catalog import DATASETS
from hbench.datasets.download import fetch_raw_files
from hbench.datasets.spec import DatasetSpec
from hbench.errors import HBenchError
from hbench.ui import QUIET


def unpinned(spec: DatasetSpec) -> DatasetSpec:
    """The spec with no pinned hashes, so that a small test file stands in for the real one."""
    raw_files = tuple(
        dataclasses.replace(raw, sha256=None, members={m: None for m in raw.members}) for raw in spec.raw_files
    )
    return dataclasses.replace(spec, raw_files=raw_files)


def fetch(spec: DatasetSpec, mirror: Path, tmp_path: Path) -> dict[str, Path]:
    return fetch_raw_files(unpinned(spec), tmp_path / "raw", [mirror], QUIET)


def write_zip(path: Path, member: str, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(member, text)


def test_movielens_100k_zip(tmp_path: Path) -> None:
    write_zip(tmp_path / "mirror" / "ml-100k.zip", "ml-100k/u.data", "196\t242\t3\t881250949\n186\t302\t3\t891717742\n")
    spec = DATASETS["movielens-100k"]
    raw = spec.reader(fetch(spec, tmp_path / "mirror", tmp_path)).interactions
    assert raw is not None
    assert raw["user"].tolist() == [196, 186]
    assert raw["item"].tolist() == [242, 302]
    assert raw["rating"].tolist() == [3.0, 3.0]
    assert raw["timestamp"].dtype == np.int64 and raw["timestamp"].tolist() == [881250949, 891717742]


def test_movielens_1m_zip(tmp_path: Path) -> None:
    write_zip(tmp_path / "mirror" / "ml-1m.zip", "ml-1m/ratings.dat", "1::1193::5::978300760\n1::661::3::978302109\n")
    spec = DATASETS["movielens-1m"]
    raw = spec.reader(fetch(spec, tmp_path / "mirror", tmp_path)).interactions
    assert raw is not None
    assert raw[["user", "item", "rating", "timestamp"]].values.tolist() == [
        [1, 1193, 5.0, 978300760],
        [1, 661, 3.0, 978302109],
    ]


def test_movielens_20m_zip(tmp_path: Path) -> None:
    text = "userId,movieId,rating,timestamp\n1,2,3.5,1112486027\n1,29,3.5,1112484676\n"
    write_zip(tmp_path / "mirror" / "ml-20m.zip", "ml-20m/ratings.csv", text)
    spec = DATASETS["movielens-20m"]
    raw = spec.reader(fetch(spec, tmp_path / "mirror", tmp_path)).interactions
    assert raw is not None
    assert raw["item"].tolist() == [2, 29] and raw["rating"].tolist() == [3.5, 3.5]


def mcauley_line(user: str, asin: str, rating: float, ts: int) -> str:
    review = {
        "reviewerID": user,
        "asin": asin,
        "reviewerName": "A Reviewer",
        "helpful": [0, 0],
        "reviewText": "Fits well.",
        "overall": rating,
        "summary": "Good",
        "unixReviewTime": ts,
        "reviewTime": "08 17, 2011",
    }
    return json.dumps(review) + "\n"


def test_amazon2014_json_gz(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    lines = [
        mcauley_line("A2IBPI20UZIR0U", "1384719342", 5.0, 1393545600),
        mcauley_line("A14VAT5EAX3D9S", "1384719342", 4.0, 1363392000),
        # A Python-literal line, as some of McAuley's files have.
        "{'reviewerID': 'A2IBPI20UZIR0U', 'asin': 'B000068NW5', 'overall': 3.0, 'unixReviewTime': 1393545600}\n",
    ]
    with gzip.open(mirror / "reviews_Automotive_5.json.gz", "wt", encoding="utf-8") as fh:
        fh.writelines(lines)
    spec = DATASETS["amazon2014-automotive"]
    raw = spec.reader(fetch(spec, mirror, tmp_path)).interactions
    assert raw is not None
    assert raw["user"].tolist() == ["A2IBPI20UZIR0U", "A14VAT5EAX3D9S", "A2IBPI20UZIR0U"]
    assert raw["item"].tolist() == ["1384719342", "1384719342", "B000068NW5"]
    assert raw["rating"].tolist() == [5.0, 4.0, 3.0]
    assert raw["timestamp"].tolist() == [1393545600, 1363392000, 1393545600]
    # File order is kept so that equal review times are ordered by it.
    assert raw["order"].tolist() == [0, 1, 2]


def test_amazon2014_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "reviews_Automotive_5.json.gz"
    with gzip.open(path, "wt") as fh:
        fh.write('{"reviewerID": "A", "asin": "B"}\n')
    with pytest.raises(HBenchError, match="line 1"):
        formats.make_amazon2014_reader(path.name)({path.name: path})


def test_sequence_file(tmp_path: Path) -> None:
    path = tmp_path / "Sports_and_Outdoors.txt"
    path.write_text("1 1 2 3 4 5 6 7 8\n2 9 10 11 12 13 1\n")
    raw = DATASETS["amazon-sports"].reader({path.name: path}).interactions
    assert raw is not None
    assert raw["user"].tolist() == [1] * 8 + [2] * 6
    assert raw["item"].tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 1]
    assert raw["order"].tolist() == list(range(8)) + list(range(6))
    assert "timestamp" not in raw.columns


def test_sequence_file_errors(tmp_path: Path) -> None:
    path = tmp_path / "Beauty.txt"
    path.write_text("1 2 x\n")
    with pytest.raises(HBenchError, match="integers"):
        formats.read_sequence_file(path)


def test_sisinflab_tsv(tmp_path: Path) -> None:
    parts = {
        "trainingset.tsv": "0\t1037\t1.0\t1470096000\n0\t682\t1.0\t1526342400\n1\t5\t1.0\t1400000000\n",
        "validationset.tsv": "0\t7\t1.0\t1526342401\n",
        "testset.tsv": "0\t8\t1.0\t1526342402\n1\t9\t1.0\t1400000001\n",
    }
    files = {}
    for name, text in parts.items():
        (tmp_path / name).write_text(text)
        files[name] = tmp_path / name
    raw = DATASETS["amazon-men-2018"].reader(files)
    assert raw.interactions is None and raw.fixed_split is not None
    train, valid, test = (raw.fixed_split[k] for k in ("train", "valid", "test"))
    assert train is not None and valid is not None and test is not None
    assert train[["user", "item", "timestamp"]].values.tolist() == [
        [0, 1037, 1470096000],
        [0, 682, 1526342400],
        [1, 5, 1400000000],
    ]
    assert valid["item"].tolist() == [7] and test["item"].tolist() == [8, 9]


def test_sisinflab_tsv_without_timestamps(tmp_path: Path) -> None:
    path = tmp_path / "train.txt"
    path.write_text("0\t1\t1.0\n2\t3\t1.0\n")
    frame = formats.read_sisinflab_tsv(path)
    assert frame.columns.tolist() == ["user", "item", "rating"]


def write_hgcf(directory: Path, train: dict, test: dict, full: list) -> dict[str, Path]:
    files = {}
    for name, obj in (("train.pkl", train), ("test.pkl", test), ("user_item_list.pkl", full)):
        with open(directory / name, "wb") as fh:
            pickle.dump(obj, fh, protocol=3)  # the protocol of HGCF's files
        files[name] = directory / name
    return files


def test_hgcf_pickles(tmp_path: Path) -> None:
    files = write_hgcf(tmp_path, {0: [5, 3], 1: [2]}, {0: [4], 1: [0, 1]}, [[5, 4, 3], [2, 1, 0]])
    raw = DATASETS["amazon-cd"].reader(files)
    assert raw.fixed_split is not None and raw.fixed_split["valid"] is None
    train, test = raw.fixed_split["train"], raw.fixed_split["test"]
    assert train is not None and test is not None
    assert list(zip(train["user"], train["item"], strict=True)) == [(0, 5), (0, 3), (1, 2)]
    assert list(zip(test["user"], test["item"], strict=True)) == [(0, 4), (1, 0), (1, 1)]


def test_hgcf_pickles_must_agree(tmp_path: Path) -> None:
    files = write_hgcf(tmp_path, {0: [5, 3]}, {0: [4]}, [[5, 4, 9]])
    with pytest.raises(HBenchError, match="disagrees"):
        DATASETS["amazon-cd"].reader(files)


def test_hgcf_pickles_refuse_globals(tmp_path: Path) -> None:
    files = write_hgcf(tmp_path, {0: [5]}, {0: [4]}, [[5, 4]])
    with open(files["train.pkl"], "wb") as fh:
        pickle.dump({0: np.array([5])}, fh, protocol=3)  # any global (here numpy's) is refused
    with pytest.raises(HBenchError):
        DATASETS["amazon-cd"].reader(files)


def test_goodbooks(tmp_path: Path) -> None:
    path = tmp_path / "ratings.csv"
    path.write_text("user_id,book_id,rating\n1,258,5\n2,4081,4\n2,260,5\n")
    raw = DATASETS["goodbooks-10k"].reader({"ratings.csv": path}).interactions
    assert raw is not None
    assert raw["item"].tolist() == [258, 4081, 260] and raw["order"].tolist() == [0, 1, 2]


@pytest.mark.parametrize(
    ("file_name", "sep", "header"),
    [
        ("ratings.csv", ",", ["userId", "movieId", "rating", "timestamp"]),
        ("log.tsv", "\t", ["user_id", "item_id", "score", "ts"]),
        ("log.txt", ";", ["USER", "ITEM", "Rating", "Time"]),
        ("atomic.inter", "\t", ["user_id:token", "item_id:token", "rating:float", "timestamp:float"]),
    ],
)
def test_custom_tables(tmp_path: Path, file_name: str, sep: str, header: list[str]) -> None:
    path = tmp_path / file_name
    rows = [["u1", "i1", "4", "100"], ["u2", "i1", "5", "90"]]
    path.write_text("\n".join(sep.join(r) for r in [header, *rows]) + "\n")
    frame = custom.read_custom_table(path, custom.TableLayout("\t" if file_name.endswith(".inter") else None))
    assert frame["user"].tolist() == ["u1", "u2"]
    assert frame["item"].tolist() == ["i1", "i1"]
    assert frame["rating"].tolist() == [4.0, 5.0]
    assert frame["timestamp"].tolist() == [100, 90]


def test_custom_parquet_and_dates(tmp_path: Path) -> None:
    path = tmp_path / "log.parquet"
    dates = ["2020-01-01T00:00:00Z", "2020-01-02T00:00:00Z"]
    pd.DataFrame({"user": [1, 2], "item": [3, 4], "datetime": dates}).to_parquet(path)
    frame = custom.read_custom_table(path)
    assert frame.columns.tolist() == ["user", "item", "timestamp"]
    assert frame["timestamp"].tolist() == [1577836800, 1577923200]


def test_custom_missing_column(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text("customer,product\n1,2\n")
    with pytest.raises(HBenchError, match="no user column"):
        custom.read_custom_table(path)
