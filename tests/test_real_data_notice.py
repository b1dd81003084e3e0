"""Without the real-data mirror, pytest's summary says how many real-data tests were skipped and how to run
them (issue 33, item 4: in a fresh clone 40 tests skipped with no word beyond the `-ra` details).

Runs pytest on a small generated test folder that uses this repository's conftest.py."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

TESTS = '''
import pytest

def test_one(shared_data): pass
def test_two(shared_data): pass
def test_three(shared_data): pass
def test_plain(): pass
@pytest.mark.skip(reason="skipped for another reason")
def test_other_skip(): pass
'''


def _pytest(tmp_path: Path, tests: str, **env: str) -> str:
    folder = tmp_path / "tests"
    folder.mkdir(exist_ok=True)
    shutil.copy(REPO / "tests" / "conftest.py", folder / "conftest.py")
    (folder / "test_generated.py").write_text(tests)
    environment = {k: v for k, v in os.environ.items() if k not in ("HBENCH_TEST_DATA", "HBENCH_REQUIRE_SHARED")}
    environment.update(PYTEST_DISABLE_PLUGIN_AUTOLOAD="1", **env)  # the conftest needs no plugin: start faster
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-ra", "-p", "no:cacheprovider", str(folder)],
                            cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_the_summary_counts_the_real_data_tests_skipped_and_says_how_to_run_them(tmp_path: Path) -> None:
    missing = tmp_path / "no-mirror"
    out = _pytest(tmp_path, TESTS, HBENCH_TEST_DATA=str(missing))
    lines = out.splitlines()
    notice = [line for line in lines if "real-data" in line]
    assert notice == [f"3 real-data tests were skipped: no data mirror at {missing}. To run them, set "
                      "HBENCH_TEST_DATA to the mirror's directory (HBENCH_REQUIRE_SHARED=1 makes a missing mirror "
                      "fail)."], out
    assert lines.index(notice[0]) == len(lines) - 2, out  # just above pytest's final line, after the -ra details
    assert "1 passed, 4 skipped" in lines[-1], out


def test_no_notice_when_no_real_data_test_was_skipped(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "README.md").write_text("the mirror\n")
    out = _pytest(tmp_path, TESTS, HBENCH_TEST_DATA=str(mirror))
    assert "real-data" not in out and "4 passed, 1 skipped" in out, out
    # Missing mirror, but no test asked for it.
    out = _pytest(tmp_path, "def test_plain(): pass\n", HBENCH_TEST_DATA=str(tmp_path / "no-mirror"))
    assert "real-data" not in out and "1 passed" in out, out
