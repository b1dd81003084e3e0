"""Issue 13.2: a first bad raw file must not become the reference hash.

MovieLens 100K from the real-data mirror stands in for an unpinned dataset (its pinned hash is removed),
so that a truncated copy of the real `u.data` is what a broken download would hand hbench."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from hbench.atomic import sha256_file
from hbench.cli import main
from hbench.datasets import catalog
from hbench.datasets.download import HASHES


@pytest.fixture()
def unpinned_ml100k(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = catalog.DATASETS["movielens-100k"]
    raw_files = tuple(dataclasses.replace(r, sha256=None, members={m: None for m in r.members}) for r in spec.raw_files)
    monkeypatch.setitem(catalog.DATASETS, "movielens-100k", dataclasses.replace(spec, raw_files=raw_files))


def _mirror(shared_data: Path, folder: Path, lines: int | None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rows = (shared_data / "movielens-100k" / "u.data").read_text().splitlines(keepends=True)
    (folder / "u.data").write_text("".join(rows[:lines]))
    return folder


def _prepare(*args: str) -> int:
    with pytest.raises(SystemExit) as done:
        main(["prepare", "movielens-100k", "-q", *args])
    return int(done.value.code)


def test_truncated_unpinned_file_is_refused_and_never_recorded(shared_data, hbench_home, unpinned_ml100k, tmp_path,
                                                               capsys):
    bad = _mirror(shared_data, tmp_path / "bad", 5000)
    assert _prepare("--source", str(bad)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "5,000 interactions (published: 100,000)" in err[0] and "--accept-statistics" in err[0]
    raw = hbench_home / "raw" / "movielens-100k"
    assert not (raw / "u.data").exists() and not (raw / HASHES).exists()
    assert not (hbench_home / "prepared" / "movielens-100k").exists()
    # The advice works: with the right file the same command prepares, and only now is the hash recorded.
    good = _mirror(shared_data, tmp_path / "good", None)
    assert _prepare("--source", str(good)) == 0
    assert json.loads((raw / HASHES).read_text()) == {"u.data": sha256_file(good / "u.data")}


def test_accept_statistics_overrides_explicitly(shared_data, hbench_home, unpinned_ml100k, tmp_path, capsys):
    bad = _mirror(shared_data, tmp_path / "bad", 5000)
    assert _prepare("--source", str(bad), "--accept-statistics") == 0
    assert "accepted (--accept-statistics)" in capsys.readouterr().err


def test_force_verifies_a_poisoned_record_again(shared_data, hbench_home, unpinned_ml100k, tmp_path, capsys):
    """A cache left by an older hbench: the truncated file and its hash recorded as the truth."""
    bad = _mirror(shared_data, tmp_path / "bad", 5000)
    raw = hbench_home / "raw" / "movielens-100k"
    raw.mkdir(parents=True)
    (raw / "u.data").write_bytes((bad / "u.data").read_bytes())
    (raw / HASHES).write_text(json.dumps({"u.data": sha256_file(bad / "u.data")}))
    # Before: --force used the file as recorded and prepared 5,000 ratings with exit 0. Now it is verified,
    # found wrong, and removed with its record; the advice then works.
    assert _prepare("--force") == 2
    assert "published: 100,000" in capsys.readouterr().err
    assert not (raw / "u.data").exists() and json.loads((raw / HASHES).read_text()) == {}
    good = _mirror(shared_data, tmp_path / "good", None)
    assert _prepare("--source", str(good)) == 0
    assert json.loads((raw / HASHES).read_text()) == {"u.data": sha256_file(good / "u.data")}
