"""Issue 13.3 and 13.11: concurrent `prepare` of one dataset, two `train`s of one run directory, and the
temporary folders an interrupted preparation leaves behind."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from filelock import FileLock

from hbench.config import TrainConfig
from hbench.datasets.synthetic import HierarchySpec, generate_interactions
from hbench.errors import HBenchError
from hbench.training.trainer import plan_run, train

REPO = Path(__file__).resolve().parents[2]


def _prepare_command(csv: Path) -> list[str]:
    return [sys.executable, "-m", "hbench", "prepare", "custom", "--name", "town", "--interactions", str(csv), "-q"]


@pytest.fixture()
def town_csv(tmp_path: Path) -> Path:
    csv = tmp_path / "town.csv"
    generate_interactions(HierarchySpec(categories=3, subcategories=3, items_per_subcategory=12, users=150,
                                        seed=7)).to_csv(csv, index=False)
    return csv


def _env(home: Path) -> dict[str, str]:
    env = {**os.environ, "HBENCH_HOME": str(home), "PYTHONPATH": str(REPO)}
    env.pop("HBENCH_MIRROR", None)
    return env


def test_prepare_waits_while_another_process_prepares_the_dataset(hbench_home: Path, town_csv: Path) -> None:
    lock = FileLock(hbench_home / "prepared" / ".town.lock")
    (hbench_home / "prepared").mkdir(parents=True)
    lock.acquire()
    try:
        proc = subprocess.Popen(_prepare_command(town_csv), env=_env(hbench_home), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        time.sleep(4.0)  # far longer than this preparation takes on its own
        assert proc.poll() is None, "prepare did not wait for the lock"
        assert not (hbench_home / "prepared" / "town").exists()
    finally:
        lock.release()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert (hbench_home / "prepared" / "town" / "manifest.json").is_file()


def test_four_concurrent_prepares_all_succeed_with_one_result(hbench_home: Path, town_csv: Path) -> None:
    """Before: 1 in 5 died with a FileNotFoundError traceback from atomic_directory."""
    procs = [subprocess.Popen(_prepare_command(town_csv), env=_env(hbench_home), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
    results = [(p.wait(timeout=180), p.stderr.read() if p.stderr else "") for p in procs]
    assert [code for code, _ in results] == [0, 0, 0, 0], results
    assert not any("Traceback" in err for _, err in results)
    leftovers = [p.name for p in (hbench_home / "prepared").iterdir() if p.name not in ("town", ".town.lock")]
    assert leftovers == []


def test_stale_temporary_folders_are_removed_and_fresh_ones_kept(hbench_home: Path, town_csv: Path) -> None:
    """What kill -9 during `prepare` leaves (`.NAME.XXXX.tmp/`) is cleaned on the next run."""
    from hbench.datasets.custom import CustomFiles
    from hbench.datasets.prepare import prepare_dataset

    prepared = hbench_home / "prepared"
    stale = prepared / ".town.k3j2x9.tmp"
    (stale / "nested").mkdir(parents=True)
    (stale / "nested" / "train.parquet").write_bytes(b"half written")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    # Newer than the lock: could belong to a live writer (here, a clock ahead); left alone.
    fresh = prepared / ".town.fresh01.tmp"
    fresh.mkdir()
    ahead = time.time() + 3600
    os.utime(fresh, (ahead, ahead))
    other = prepared / ".other.k3j2x9.tmp"  # another dataset's: not this preparation's business
    other.mkdir()
    os.utime(other, (old, old))
    prepare_dataset("town", custom=CustomFiles(name="town", interactions=town_csv), home=hbench_home)
    assert not stale.exists() and fresh.is_dir() and other.is_dir()


def test_second_train_of_a_live_run_refuses_instead_of_resuming(tiny_dataset, tmp_path: Path) -> None:
    config = TrainConfig(dataset=str(tiny_dataset.path), dim=4, epochs=1, batch_size=512)
    out = tmp_path / "results"
    planned = plan_run("bpr", config, out=out)
    with planned.run_dir.exclusive(), pytest.raises(HBenchError, match="being trained by another hbench process"):
        train("bpr", config, out=out)
    assert planned.run_dir.status() is None and not (planned.run_dir.path / "config.json").exists()
    assert train("bpr", config, out=out).status == "completed"  # released: trains normally
