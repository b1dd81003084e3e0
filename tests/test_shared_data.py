"""The real-data mirror is found through HBENCH_TEST_DATA as well as beside the checkout."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import REPO, shared_data_dir


def test_hbench_test_data_names_the_mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HBENCH_TEST_DATA", str(tmp_path / "mirror"))
    assert shared_data_dir() == (tmp_path / "mirror").resolve()
    monkeypatch.delenv("HBENCH_TEST_DATA")
    assert shared_data_dir() == (REPO / ".." / "shared" / "data").resolve()
