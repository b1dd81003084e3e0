"""Atomic writes: all or nothing, and ordinary permissions (not mkstemp's private 0600)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from hbench.atomic import atomic_directory, atomic_path, write_text


@pytest.fixture()
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_written_files_and_directories_follow_the_umask(tmp_path: Path, umask_022) -> None:
    write_text(tmp_path / "a.txt", "x")
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o644
    with atomic_directory(tmp_path / "d") as d:
        (d / "f").write_text("y")
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o755


def test_a_failed_write_leaves_neither_the_target_nor_a_temporary_file(tmp_path: Path) -> None:
    write_text(tmp_path / "keep.txt", "old")
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "keep.txt") as tmp:
            tmp.write_text("half")
            raise RuntimeError
    assert (tmp_path / "keep.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]
