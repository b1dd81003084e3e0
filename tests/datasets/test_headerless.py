"""Files without a header row (`user item rating [timestamp]`, MovieLens' u.data), --columns and --sep."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from hbench.cli import main
from hbench.datasets.custom import CustomFiles, TableLayout, read_custom_table
from hbench.datasets.prepare import prepare_dataset
from hbench.errors import HBenchError


def _by_original_id(ds, part: str) -> set[tuple[str, str]]:
    users = pd.read_parquet(ds.path / "users.parquet")["original_id"].astype(str).to_numpy()
    items = pd.read_parquet(ds.path / "items.parquet")["original_id"].astype(str).to_numpy()
    frame = pd.read_parquet(ds.path / f"{part}.parquet")
    return set(zip(users[frame["user"]], items[frame["item"]], strict=True))


@pytest.mark.slow
def test_u_data_without_header_is_read_as_movielens_reads_it(shared_data: Path, hbench_home: Path, capsys) -> None:
    """The real u.data through `prepare custom`: the same split as the registered movielens-100k reader."""
    u_data = shared_data / "movielens-100k" / "u.data"
    with pytest.raises(SystemExit) as done:
        main(["prepare", "custom", "--interactions", str(u_data), "--name", "udata", "--negatives", "0",
              "--protocol", "full", "-q"])
    assert done.value.code == 0, capsys.readouterr().err
    custom = prepare_dataset("udata", custom=CustomFiles(name="udata", interactions=u_data),
                             overrides={"negatives": 0, "protocol": "full"}, home=hbench_home)  # the cached one
    registered = prepare_dataset("movielens-100k", sources=[shared_data], overrides={"negatives": 0, "protocol": "full"},
                                 home=hbench_home)
    assert (custom.n_users, custom.n_items, len(custom.train)) == (943, 1682, 98_114)
    for part in ("train", "valid", "test"):
        assert _by_original_id(custom, part) == _by_original_id(registered, part), part
    # Naming the columns gives the same data; a skipped rating column too (ratings are not used for implicit data).
    named = read_custom_table(u_data, TableLayout("tab", ("user", "item", "-", "timestamp")))
    detected = read_custom_table(u_data)
    assert named.columns.tolist() == ["user", "item", "timestamp"]
    assert detected.columns.tolist() == ["user", "item", "rating", "timestamp"]
    assert named.equals(detected.drop(columns="rating"))
    assert detected.iloc[0].tolist() == [196, 242, 3.0, 881250949]  # the file's first line


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(("name", "sep", "layout"), [
    ("ratings.dat", "::", TableLayout("::")),  # MovieLens 1M
    ("log.txt", " ", TableLayout()),  # Cornac: spaces, detected
    ("log.txt", "\t", TableLayout()),  # Elliot: tabs, detected
    ("log.csv", ",", TableLayout()),
    ("log.psv", "|", TableLayout("|")),
    ("log.txt", "\t", TableLayout("\\t")),  # as typed in a shell: --sep '\t'
])
def test_headerless_files_with_odd_separators(tmp_path: Path, name: str, sep: str, layout: TableLayout) -> None:
    path = _write(tmp_path / name, [sep.join(["1", "10", "4", "100"]), sep.join(["2", "11", "5", "90"])])
    frame = read_custom_table(path, layout)
    assert frame["user"].tolist() == [1, 2] and frame["item"].tolist() == [10, 11]
    assert frame["rating"].tolist() == [4.0, 5.0] and frame["timestamp"].tolist() == [100, 90]


def test_two_and_three_columns_and_named_columns(tmp_path: Path) -> None:
    pairs = read_custom_table(_write(tmp_path / "pairs.tsv", ["1\t10", "2\t11"]))
    assert pairs.columns.tolist() == ["user", "item"]
    rated = read_custom_table(_write(tmp_path / "rated.csv", ["1,10,3.5", "2,11,1"]))
    assert rated["rating"].tolist() == [3.5, 1.0]
    # Ids that are not numbers: no header can be detected, --columns says there is none.
    path = _write(tmp_path / "ids.csv", ["A7,B0001,5,1400000000", "A8,B0002,4,1400000001"])
    with pytest.raises(HBenchError, match="no user column"):
        read_custom_table(path)
    swapped = read_custom_table(path, TableLayout(columns=("item", "user", "rating", "-")))
    assert swapped["user"].tolist() == ["B0001", "B0002"] and "timestamp" not in swapped


def test_layout_mistakes_are_user_errors(tmp_path: Path) -> None:
    wide = _write(tmp_path / "wide.tsv", ["1\t10\t4\t100\t7"])
    with pytest.raises(HBenchError, match="no header row and 5 columns; name them with --columns"):
        read_custom_table(wide)
    with pytest.raises(HBenchError, match="has 5 columns, --columns names 4"):
        read_custom_table(wide, TableLayout(columns=("user", "item", "rating", "timestamp")))
    with pytest.raises(HBenchError, match="distinct non-empty names"):
        TableLayout(columns=("user", "user"))
    with pytest.raises(HBenchError, match="--sep must not be empty"):
        read_custom_table(wide, TableLayout(""))


def test_prepare_custom_columns_and_sep_from_the_cli(tmp_path: Path, hbench_home: Path, capsys) -> None:
    lines = [f"{item};{user};{t}" for user in range(12) for t, item in enumerate(range(user % 3, user % 3 + 6))]
    path = _write(tmp_path / "log.dat", lines)
    with pytest.raises(SystemExit) as done:
        main(["prepare", "custom", "--interactions", str(path), "--columns", "item,user,timestamp", "--sep", ";",
              "--negatives", "0", "-q"])
    out, err = capsys.readouterr()
    assert done.value.code == 0, err
    rows = dict(line.split("\t")[:2] for line in out.splitlines() if "\t" in line)
    assert rows["users"] == "12" and rows["items"] == "8" and rows["interactions"] == "72"
    with pytest.raises(SystemExit) as done:
        main(["prepare", "movielens-100k", "--columns", "user,item"])
    assert done.value.code == 2 and "for `hbench prepare custom` only" in capsys.readouterr().err
