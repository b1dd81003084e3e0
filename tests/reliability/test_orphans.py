"""Issue 13.4: kill -9 of a `hbench sweep --jobs 2` parent must take its workers with it (before, both
workers and the resource tracker lived on, blocked on a pipe)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_workers_die_with_a_killed_sweep_parent(tiny_dataset, tmp_path: Path) -> None:
    spec = tmp_path / "long.toml"
    spec.write_text(f'name = "long"\ndatasets = ["{tiny_dataset.path}"]\nseeds = 2\n'
                    'train = { dim = 8, epochs = 500, patience = 500, batch_size = 32 }\n'
                    '[[models]]\nname = "hyperml"\n')
    out = tmp_path / "sweep"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    parent = subprocess.Popen([sys.executable, "-m", "hbench", "sweep", str(spec), "--executor", "processes",
                               "--jobs", "2", "--out", str(out), "-q"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers: set[int] = set()
    try:
        deadline = time.monotonic() + 180
        # Both cells running: each worker has passed its initializer and opened its run's log.
        while len(list(out.rglob("train.log"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(list(out.rglob("train.log"))) == 2, "the sweep never started both cells"
        workers = _children(parent.pid)
        assert len(workers) >= 2  # two workers (and the resource tracker)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 20
        while any(_alive(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert [w for w in workers if _alive(w)] == []
    finally:
        if parent.poll() is None:
            parent.kill()
        for worker in workers:  # only the processes this test started
            if _alive(worker):
                os.kill(worker, signal.SIGKILL)
