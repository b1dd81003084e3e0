"""A user's own files that are malformed, empty or lopsided (issue 33, audit C06, C10, C11, C12, C14): each is
refused with one line naming the file before anything is written, or, where it can be meant (cold start),
prepared with one warning and counted in the statistics.

Every file here is written by hand in the test, small enough to check the expected numbers by eye.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from hbench.cli import main

USERS, ITEMS, PER_USER = 20, 30, 6


def _rows(per_user: int = PER_USER, offset: int = 0) -> list[tuple[str, str]]:
    """(user, item) rows: user k has items 7k + 3j (mod 30), j < per_user, so no pair repeats within a user."""
    return [(f"u{k}", f"i{(7 * k + 3 * (j + offset)) % ITEMS}") for k in range(USERS) for j in range(per_user)]


def _write(path: Path, rows: list[tuple[str, ...]], header: str = "user\titem", sep: str = "\t") -> Path:
    lines = [header] if header else []
    lines += [sep.join(row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def run(args: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def _refused(args: list[str], capsys) -> str:
    """The one stderr line of a command that must fail as a user error."""
    code, out, err = run(args, capsys)
    assert code == 2, err
    errors = [line for line in err.splitlines() if line.startswith("error")]
    assert errors == [err.splitlines()[-1]] and "unexpected" not in err and "Traceback" not in err, err
    return errors[0]


def _nothing_prepared(home: Path, name: str) -> bool:
    return not any(home.rglob(f"*{name}*/manifest.json"))


# --- C06: more fields than the header --------------------------------------------------------------------


@pytest.mark.parametrize("bad_row", [0, 5])  # the first data row (pandas took it as an index) or a later one
def test_a_row_with_more_fields_than_the_header_is_refused_naming_its_line(tmp_path, hbench_home, capsys,
                                                                          bad_row: int) -> None:
    rows = _rows()
    user, item = rows[bad_row]
    rows[bad_row] = ("u", "7", item)  # user id "u<TAB>7", written without quotes
    path = _write(tmp_path / "realtab.tsv", rows)
    line = _refused(["prepare", "custom", "--interactions", str(path), "--name", "c-rtab"], capsys)
    # line 1 is the header, so data row r is line r + 2
    assert f"{path}: line {bad_row + 2} has 3 fields but the header has 2 (separated by a tab)" in line, line
    assert "double quotes" in line
    assert _nothing_prepared(hbench_home, "c-rtab")
    # As the message says: the id in double quotes is read whole.
    rows[bad_row] = ('"u\t7"', item)
    _write(path, rows)
    code, _, err = run(["prepare", "custom", "--interactions", str(path), "--name", "c-rtab", "--quiet"], capsys)
    assert code == 0, err
    users = set(pd.read_parquet(next(hbench_home.rglob("c-rtab/users.parquet"))).iloc[:, 0].astype(str))
    assert "u\t7" in users and "7" not in users and len(users) == USERS + 1  # u0 keeps its other five rows


def test_a_headerless_row_with_more_fields_than_the_first_is_refused(tmp_path, hbench_home, capsys) -> None:
    rows = [(str(k), str((7 * k + 3 * j) % ITEMS)) for k in range(USERS) for j in range(PER_USER)]
    rows[3] = (rows[3][0], rows[3][1], "5", "9")
    path = _write(tmp_path / "plain.txt", rows, header="", sep=" ")
    line = _refused(["prepare", "custom", "--interactions", str(path), "--name", "c-plain", "--sep", "space"], capsys)
    assert f"{path}: line 4 has 4 fields but the first row has 2 (separated by white space)" in line, line


# --- C10, C12: files without interactions ------------------------------------------------------------------


def test_a_header_only_interactions_file_is_named_not_blamed_on_the_options(tmp_path, hbench_home, capsys) -> None:
    path = _write(tmp_path / "empty.csv", [], header="user,item", sep=",")
    line = _refused(["prepare", "custom", "--interactions", str(path), "--name", "c-empty"], capsys)
    assert line == f"error: custom interactions file {path} holds no interactions (a header only)"


@pytest.mark.parametrize("role", ["train", "test"])
@pytest.mark.parametrize("content", ["user\titem\n", "", "\n\n"])
def test_an_empty_train_or_test_file_is_refused_at_prepare(tmp_path, hbench_home, capsys, role, content) -> None:
    files = {"train": _write(tmp_path / "train.tsv", _rows(5)), "test": _write(tmp_path / "test.tsv", _rows(1, 5))}
    files[role].write_text(content)
    line = _refused(["prepare", "custom", "--train", str(files["train"]), "--test", str(files["test"]),
                     "--name", "c-emptypart"], capsys)
    expected = "holds no interactions (a header only)" if content.strip() else "is empty: it holds no interactions"
    assert line == f"error: custom {role} file {files[role]} {expected}"
    assert _nothing_prepared(hbench_home, "c-emptypart")


def test_a_test_part_that_preprocessing_empties_is_refused_at_prepare(tmp_path, hbench_home, capsys) -> None:
    train = _write(tmp_path / "train.tsv", [(u, i, "5") for u, i in _rows(5)], header="user\titem\trating")
    test = _write(tmp_path / "test.tsv", [(u, i, "1") for u, i in _rows(1, 5)], header="user\titem\trating")
    line = _refused(["prepare", "custom", "--train", str(train), "--test", str(test), "--name", "c-lowtest",
                     "--threshold", "4"], capsys)
    assert line.startswith("error: the split has no test interactions, so no run could be tested on it: "), line
    assert "implicit_threshold" in line
    assert _nothing_prepared(hbench_home, "c-lowtest")


# --- C11: users and items only in the test file ------------------------------------------------------------


def test_test_only_users_and_items_are_warned_about_and_counted(tmp_path, hbench_home, capsys) -> None:
    train = _write(tmp_path / "train.tsv", _rows(5))
    # Every user's sixth item, plus a user the training file never names (with a known item) and a known user
    # with an item nobody trained on: 1 cold user and 1 cold item.
    test = _write(tmp_path / "test.tsv", [*_rows(1, 5), ("newbie", "i5"), ("u1", "brand-new")])
    code, _, err = run(["prepare", "custom", "--train", str(train), "--test", str(test), "--name", "c-onlytest"],
                       capsys)
    assert code == 0, err
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1, err
    assert warnings[0].startswith("warning: 1 test user, 1 test item have no training interactions; they are kept "
                                  "and evaluated"), warnings[0]
    code, out, err = run(["info", "c-onlytest"], capsys)
    assert code == 0 and "cold_start.test.users\t1" in out and "cold_start.test.items\t1" in out, out
    from hbench.datasets.load import load_dataset
    from hbench.datasets.prepare import dataset_statistics

    dataset = load_dataset("c-onlytest", hbench_home)
    # validation is carved from training, so it has no cold users or items
    expected = {"valid": {"users": 0, "items": 0}, "test": {"users": 1, "items": 1}}
    assert dataset.manifest["statistics"]["final"]["cold_start"] == expected
    assert dataset_statistics(dataset)["cold_start"] == expected
    assert len(dataset.test) == USERS + 2  # nothing was dropped


def test_a_clean_split_prepares_without_a_cold_start_warning_and_counts_none(tmp_path, hbench_home, capsys) -> None:
    train, test = _write(tmp_path / "train.tsv", _rows(5)), _write(tmp_path / "test.tsv", _rows(1, 5))
    code, _, err = run(["prepare", "custom", "--train", str(train), "--test", str(test), "--name", "c-clean"], capsys)
    assert code == 0 and "warning" not in err, err
    from hbench.datasets.load import load_dataset

    statistics = load_dataset("c-clean", hbench_home).manifest["statistics"]["final"]
    assert statistics["cold_start"] == {"valid": {"users": 0, "items": 0}, "test": {"users": 0, "items": 0}}


# --- C14: a prepared dataset without test interactions ------------------------------------------------------


def test_train_refuses_a_dataset_without_test_interactions_before_training(tmp_path, hbench_home, capsys,
                                                                          monkeypatch) -> None:
    """Datasets prepared before `prepare` refused empty parts can still be in a user's cache."""
    import hbench.datasets.prepare as prepare

    # As an older hbench prepared it: the threshold empties the test part and nothing refuses that.
    monkeypatch.setattr(prepare, "_check_parts", lambda split, options: None, raising=False)
    train = _write(tmp_path / "train.tsv", [(u, i, "5") for u, i in _rows(5)], header="user\titem\trating")
    test = _write(tmp_path / "test.tsv", [(u, i, "1") for u, i in _rows(1, 5)], header="user\titem\trating")
    code, _, err = run(["prepare", "custom", "--train", str(train), "--test", str(test), "--name", "c-notest",
                        "--threshold", "4", "--quiet"], capsys)
    assert code == 0, err
    out = tmp_path / "runs"
    line = _refused(["train", "bpr", "-d", "c-notest", "--epochs", "1", "--dim", "8", "--out", str(out)], capsys)
    assert line.startswith("error: dataset 'c-notest' (") and "has no test interactions" in line, line
    assert not out.exists() or not any(out.rglob("*")), sorted(out.rglob("*"))  # no run folder was started
