"""Issue 13.10: a refused mirror file is named with the reason; unreachable hosts fail at once."""

from __future__ import annotations

import hashlib
import socket
import time
from pathlib import Path

import pytest

from hbench.datasets.download import fetch_raw_files
from hbench.datasets.spec import DatasetSpec, PrepareOptions, RawData, RawFile
from hbench.errors import HBenchError
from hbench.ui import Feedback


def _spec(raw: RawFile) -> DatasetSpec:
    return DatasetSpec(name="toy", title="toy", raw_files=(raw,), reader=lambda files: RawData(),
                       defaults=PrepareOptions())


def _closed_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/ratings.csv"


class _Warnings(Feedback):
    def __init__(self) -> None:
        super().__init__(quiet=True)
        self.warnings: list[str] = []

    def warn(self, message: str) -> None:
        self.warnings.append(message)


def test_a_refused_connection_is_not_retried(tmp_path: Path) -> None:
    feedback = _Warnings()
    started = time.monotonic()
    with pytest.raises(HBenchError, match="cannot download ratings.csv .*refused"):
        # Before: 4 retries with a growing stall each (here 2 + 4 + 8 + 16 s).
        fetch_raw_files(_spec(RawFile("ratings.csv", _closed_url())), tmp_path / "raw", [], feedback, retries=4,
                        backoff=2.0, timeout=5.0)
    assert time.monotonic() - started < 1.5 and feedback.warnings == []


def test_unresolvable_host_is_not_retried(tmp_path: Path) -> None:
    feedback = _Warnings()
    started = time.monotonic()
    with pytest.raises(HBenchError, match="cannot download ratings.csv"):
        fetch_raw_files(_spec(RawFile("ratings.csv", "http://no-such-host.invalid/ratings.csv")), tmp_path / "raw", [],
                        feedback, retries=4, backoff=2.0, timeout=5.0)
    assert time.monotonic() - started < 10 and feedback.warnings == []


def test_a_mirror_file_refused_by_the_deeper_search_is_named_with_why(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    wrong = mirror / "old" / "copy" / "ratings.csv"
    wrong.parent.mkdir(parents=True)
    wrong.write_bytes(b"user,item\n1,2\n")
    pinned = hashlib.sha256(b"the real file").hexdigest()
    with pytest.raises(HBenchError) as info:
        fetch_raw_files(_spec(RawFile("ratings.csv", _closed_url(), sha256=pinned)), tmp_path / "raw", [mirror],
                        Feedback(quiet=True), retries=0, backoff=0.01, timeout=5.0)
    message = str(info.value)
    actual = hashlib.sha256(wrong.read_bytes()).hexdigest()
    assert f"refused: {wrong} (SHA-256 {actual[:12]}…, expected {pinned[:12]}…)" in message
    assert "pass --source DIR" not in message and str(mirror) in message
