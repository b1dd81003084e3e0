"""Shared fixtures. Real data lives in $HBENCH_TEST_DATA, else ../shared/data beside the checkout (never in
the repository)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """Where the real-data mirror is looked for: `$HBENCH_TEST_DATA`, else ../shared/data."""
    explicit = os.environ.get("HBENCH_TEST_DATA")
    return Path(explicit).expanduser().resolve() if explicit else (REPO / ".." / "shared" / "data").resolve()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real-data mirror. CI sets HBENCH_REQUIRE_SHARED=1 so that a missing mirror fails loudly."""
    found = shared_data_dir()
    if not (found / "README.md").is_file():
        message = f"real data not found at {found} (set HBENCH_TEST_DATA to the mirror's directory)"
        if os.environ.get("HBENCH_REQUIRE_SHARED") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return found


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
