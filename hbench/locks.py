"""Locks between hbench processes: one `prepare` of a dataset at a time, one `train` of a run directory.

The locks are `filelock` locks (flock on POSIX): the operating system releases them when their process
dies, even by kill -9, so a lock file left behind never blocks anyone; a lock that is *held* always
belongs to a live process.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from hbench.errors import HBenchError


@contextlib.contextmanager
def hold(lock_file: Path, *, busy: str, wait: bool, on_wait: Callable[[str], None] | None = None) -> Iterator[float]:
    """Hold the lock at `lock_file` for the block; yields the time (time.time()) it was acquired.

    When another process holds it: with `wait`, `on_wait(busy)` is called and the lock is waited for;
    otherwise an HBenchError says `busy`.
    """
    lock = FileLock(lock_file)
    try:
        lock_file.parent.mkdir(parents=True, exist_ok=True)
        lock.acquire(timeout=0)
    except Timeout:  # (a TimeoutError, hence an OSError: caught first)
        if not wait:
            raise HBenchError(busy) from None
        if on_wait is not None:
            on_wait(busy)
        lock.acquire()
    except OSError as exc:  # --out on a file, a read-only place: the first write fails here
        raise HBenchError(f"cannot write in {lock_file.parent}: {exc.strerror or exc}") from None
    try:
        yield time.time()
    finally:
        lock.release()
