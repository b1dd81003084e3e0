"""Shared fixtures. Real data lives in $HBENCH_TEST_DATA, else ../shared/data beside the checkout (never in
the repository)."""

from __future__ import annotations

import os
from collections.abc import Generator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """Where the real-data mirror is looked for: `$HBENCH_TEST_DATA`, else ../shared/data."""
    explicit = os.environ.get("HBENCH_TEST_DATA")
    return Path(explicit).expanduser().resolve() if explicit else (REPO / ".." / "shared" / "data").resolve()


_NO_REAL_DATA = "real data not found at"  # how a skip for want of the mirror starts (the summary counts them)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real-data mirror. CI sets HBENCH_REQUIRE_SHARED=1 so that a missing mirror fails loudly."""
    found = shared_data_dir()
    if not (found / "README.md").is_file():
        message = f"{_NO_REAL_DATA} {found} (set HBENCH_TEST_DATA to the mirror's directory)"
        if os.environ.get("HBENCH_REQUIRE_SHARED") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return found


@pytest.hookimpl(wrapper=True, tryfirst=True)  # outermost: the line comes after the `-ra` details
def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> Generator[None, None, None]:
    """One line just above pytest's final one when real-data tests were skipped: in a fresh clone there is
    no ../shared/data, and the skips were otherwise visible only as single lines among the `-ra` details."""
    try:
        return (yield)
    finally:
        _say_real_data_skipped(terminalreporter)


def _say_real_data_skipped(terminalreporter: pytest.TerminalReporter) -> None:
    skipped = sum(1 for report in terminalreporter.stats.get("skipped", [])
                  if isinstance(report.longrepr, tuple) and _NO_REAL_DATA in str(report.longrepr[2]))
    if skipped:
        tests, them = ("test was", "it") if skipped == 1 else ("tests were", "them")
        terminalreporter.write_line(
            f"{skipped} real-data {tests} skipped: no data mirror at {shared_data_dir()}. To run {them}, set "
            "HBENCH_TEST_DATA to the mirror's directory (HBENCH_REQUIRE_SHARED=1 makes a missing mirror fail).",
            yellow=True, bold=True)


@pytest.fixture()
def hbench_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty HBENCH_HOME per test, and no mirror from the environment."""
    home = tmp_path / "home"
    monkeypatch.setenv("HBENCH_HOME", str(home))
    monkeypatch.delenv("HBENCH_MIRROR", raising=False)
    return home


@pytest.fixture()
def tiny_dataset(hbench_home: Path, tmp_path: Path):
    """A small hierarchical implicit-feedback dataset prepared through the public `custom` path."""
    from hbench.datasets.custom import CustomFiles
    from hbench.datasets.prepare import prepare_dataset
    from hbench.datasets.synthetic import HierarchySpec, generate_interactions

    spec = HierarchySpec(categories=3, subcategories=3, items_per_subcategory=12, users=150, seed=7)
    csv = tmp_path / "tiny.csv"
    generate_interactions(spec).to_csv(csv, index=False)
    return prepare_dataset("tiny", custom=CustomFiles(name="tiny", interactions=csv), overrides={"negatives": 50},
                           home=hbench_home)
